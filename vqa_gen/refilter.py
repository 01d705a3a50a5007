"""Re-apply (possibly changed) grounding-filter settings to a finished run, with zero LLM calls.

A run keeps every record's raw model replies in `.vqa-gen/responses.jsonl`; the reply that was
used is the last one of a done record (earlier ones were re-asked). Refiltering re-reads the
input for the captions, parses that reply again with the template's declared answer format (the
multiple-choice shuffle is seeded from the record, so it comes out the same), grounds the QA with
the new settings and rewrites the data/rejected shards, the progress log, the resume state and
the manifest. Failed, invalid and skipped records are carried over unchanged.

Each file is replaced atomically (write aside, then rename); shards are replaced before the
manifest, which is written last and records the new filter settings and `refiltered`.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from .answers import AnswerFormatError
from .grounding import FilterConfig, GroundingFilter
from .output import (
    MANIFEST,
    PROGRESS_FILE,
    RESPONSES_FILE,
    STATE_DIR,
    STATE_FILE,
    Counts,
    FolderLock,
    OutputError,
    atomic_write_bytes,
    atomic_write_json,
    dumps_line,
    read_jsonl,
    shard_name,
)
from .pipeline import GenerationContext, GenerationSettings, judge_pairs, record_seed
from .records import DEFAULT_MAX_CAPTION_CHARS, FieldMap, read_records
from .runner import filter_for_manifest, input_identity, settings_fingerprint, utc_now
from .templates import OUTPUT_FORMATS, Template, TemplateError, load_template


class RefilterError(RuntimeError):
    """The folder cannot be refiltered (not a finished run, input gone or changed …)."""


@dataclass(slots=True)
class RefilterSummary:
    before: dict[str, int]
    after: dict[str, int]
    records: int
    reparse_failures: int
    manifest: dict[str, Any]


def _load_json(path: Path) -> dict[str, Any]:
    try:
        return orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as err:
        raise RefilterError(f"{path}: cannot read ({err})") from None


def _template_for(manifest: dict[str, Any], state: dict[str, Any]) -> Template:
    """The run's template if it can still be loaded, else a stand-in that carries the name and
    answer format (all that parsing and grounding need)."""
    info = manifest.get("template") or state.get("settings", {}).get("template") or {}
    for ref in (info.get("path"), info.get("name")):
        if not ref:
            continue
        try:
            t = load_template(ref)
        except TemplateError:
            continue
        if t.name == info.get("name") and t.output == info.get("output", t.output):
            return t
    output = info.get("output", "qa_pairs")
    if output not in OUTPUT_FORMATS:
        raise RefilterError(f"unknown answer format {output!r} in the run's manifest")
    return Template(name=str(info.get("name", "template")), version=str(info.get("version")),
                    description="", output=output, path=Path(info.get("path") or "."),
                    content_hash=str(info.get("content_hash")), header={})


def refilter_run(out_dir: Path, filter_config: FilterConfig | None = None) -> RefilterSummary:
    """Regrade a finished run in `out_dir` with `filter_config` (default: the run's own
    settings, e.g. after the filter's code changed); see the module docstring. Holds the
    folder's lock, like a run: it rewrites the same files."""
    if not (out_dir / STATE_DIR).is_dir():
        return _refilter_locked(out_dir, filter_config)  # not a run: refused below
    lock = FolderLock(out_dir)
    try:
        lock.acquire()
    except OutputError as err:
        raise RefilterError(str(err)) from None
    try:
        return _refilter_locked(out_dir, filter_config)
    finally:
        lock.release()


def _refilter_locked(out_dir: Path, filter_config: FilterConfig | None) -> RefilterSummary:
    state_dir = out_dir / STATE_DIR
    manifest_path, state_path = out_dir / MANIFEST, state_dir / STATE_FILE
    if not manifest_path.is_file() or not state_path.is_file():
        raise RefilterError(f"{out_dir} holds no vqa-gen run (no manifest.json or "
                            f"{STATE_DIR}/{STATE_FILE})")
    manifest, state = _load_json(manifest_path), _load_json(state_path)
    if manifest.get("status") != "complete":
        raise RefilterError(f"the run in {out_dir} is {manifest.get('status')!r}, not complete: "
                            "resume it with the same `vqa-gen run` command first")
    settings = state.get("settings", {})
    if filter_config is None:
        try:
            filter_config = FilterConfig.model_validate(manifest.get("filter") or {})
        except ValueError as err:
            raise RefilterError(f"the run's filter settings are not valid ({err})") from None
    if getattr(filter_config, "judge", False):
        raise RefilterError("these filter settings enable the LLM judge, which needs calls; "
                            "refilter makes none: disable `judge` or rerun with `vqa-gen run`")
    input_path = Path(settings.get("input", {}).get("path") or manifest.get("input", ""))
    if not input_path.is_file():
        raise RefilterError(f"the run's input {input_path} is gone (captions are needed to "
                            "ground the QA again)")
    if input_identity(input_path) != settings.get("input"):
        raise RefilterError(f"the run's input {input_path} changed since the run")
    template = _template_for(manifest, state)
    generation = GenerationSettings.model_validate(settings.get("generation", {}))
    fields = FieldMap.from_dict(settings.get("fields") or {})
    ctx = GenerationContext(template=template, settings=generation, client=None,  # type: ignore[arg-type]
                            grounding=GroundingFilter(filter_config),
                            model=str(manifest.get("model", "")))
    progress = list(read_jsonl(state_dir / PROGRESS_FILE))
    replies = {int(r["line"]): r["responses"] for r in read_jsonl(state_dir / RESPONSES_FILE)}
    done_lines = {int(e["line"]) for e in progress if e.get("status") == "done"
                  and not e.get("skipped")}
    records = {}
    if done_lines:
        for item in read_records(input_path, fields=fields,
                                 max_caption_chars=int(settings.get("max_caption_chars")
                                                       or DEFAULT_MAX_CAPTION_CHARS)):
            if item.line in done_lines and item.record is not None:
                records[item.line] = item.record
    shard_size = int(manifest.get("shard_size") or settings.get("shard_size") or 10_000)
    writers = {"data": _ShardBuffer(out_dir, "data", shard_size),
               "rejected": _ShardBuffer(out_dir, "rejected", shard_size)}
    new_progress: list[dict[str, Any]] = []
    reparse_failures = 0
    for e in progress:
        e = dict(e)
        line = int(e["line"])
        if line in done_lines:
            record = records.get(line)
            reply = (replies.get(line) or [None])[-1]
            if record is None or reply is None:
                raise RefilterError(f"line {line}: the record or its stored reply is missing; "
                                    "cannot refilter this run")
            try:
                pairs = template.finalize(template.parse(reply),
                                          record_seed(generation.seed, record.id))
            except AnswerFormatError as err:
                # the parser changed since the run and no longer accepts the reply
                reparse_failures += 1
                e.update(kept=0, rejected=0, status="failed")
                e["refilter_error"] = err.reason
                if "shards" in e:
                    e["shards"] = [writers["data"].position(), writers["rejected"].position()]
                new_progress.append(e)
                continue
            kept, rejected = judge_pairs(record, pairs, ctx)
            writers["data"].add([dumps_line(s.to_dict()) for s in kept])
            writers["rejected"].add([dumps_line(s.to_dict()) for s in rejected])
            e.update(kept=len(kept), rejected=len(rejected))
        if "shards" in e:  # where the shards stand now, for a later resume to verify
            e["shards"] = [writers["data"].position(), writers["rejected"].position()]
        new_progress.append(e)
    counts = Counts()
    for e in new_progress:
        counts.add_entry(e)
    counts.check()
    # replace outputs: new shards first, then stale shards removed, then logs, state, manifest
    outputs = {prefix: w.commit() for prefix, w in writers.items()}
    atomic_write_bytes(state_dir / PROGRESS_FILE, b"".join(dumps_line(e) for e in new_progress))
    if reparse_failures:
        _append_failures(out_dir, new_progress)
    before_filter = manifest.get("filter")
    new_filter = filter_config.model_dump()
    settings["filter"] = new_filter
    state["settings"] = settings
    state["fingerprint"] = settings_fingerprint(settings)
    atomic_write_json(state_path, state)
    before_counts = dict(manifest.get("counts") or {})
    history = list(manifest.get("refiltered_history") or [])
    now = utc_now()
    history.append({"at": now, "previous_filter": before_filter,
                    "previous_counts": {k: before_counts.get(k) for k in
                                        ("qa_generated", "qa_kept", "qa_rejected")}})
    manifest.update(counts=counts.to_dict() | {k: before_counts[k] for k in
                                               ("llm_calls", "reasks", "cache_hits",
                                                "cache_misses") if k in before_counts},
                    filter=filter_for_manifest(filter_config), outputs=outputs, refiltered=now,
                    refiltered_history=history)
    atomic_write_json(manifest_path, manifest)
    return RefilterSummary(before_counts, manifest["counts"], len(done_lines),
                           reparse_failures, manifest)


def _append_failures(out_dir: Path, progress: list[dict[str, Any]]) -> None:
    path = out_dir / "failed.jsonl"
    rows = list(read_jsonl(path))
    have = {r.get("line") for r in rows}
    for e in progress:
        if e.get("refilter_error") and e["line"] not in have:
            rows.append({"line": e["line"], "record_id": e.get("record_id"), "image": None,
                         "error": {"kind": "refilter_parse",
                                   "message": e["refilter_error"], "attempts": 0}})
    rows.sort(key=lambda r: r.get("line", 0))
    atomic_write_bytes(path, b"".join(dumps_line(r) for r in rows))


class _ShardBuffer:
    """Writes regraded QA into hidden temp shards, then swaps them in under the final names.
    A record's lines never straddle two shards (as in the runner)."""

    def __init__(self, out_dir: Path, prefix: str, shard_size: int) -> None:
        self.out_dir, self.prefix, self.size = out_dir, prefix, max(1, shard_size)
        self.index, self.lines = 0, 0
        self.tmp: list[Path] = []
        self._fh: Any = None
        self._hash = hashlib.sha256()

    def position(self) -> list[Any]:
        """[shard, lines, running hash], as the runner's progress entries record it."""
        return [self.index, self.lines, self._hash.hexdigest()[:16]]

    def _path(self, index: int) -> Path:
        return self.out_dir / f".{shard_name(self.prefix, index)}.refilter"

    def add(self, lines: list[bytes]) -> None:
        if not lines:
            return
        if self.lines and self.lines + len(lines) > self.size:
            self._fh.close()
            self._fh = None
            self.index += 1
            self.lines = 0
            self._hash = hashlib.sha256()
        if self._fh is None:
            p = self._path(self.index)
            self.tmp.append(p)
            self._fh = p.open("wb")
        self._fh.writelines(lines)
        for line in lines:
            self._hash.update(line)
        self.lines += len(lines)

    def commit(self) -> list[str]:
        if self._fh is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
            self._fh = None
        names = []
        for i, tmp in enumerate(self.tmp):
            final = self.out_dir / shard_name(self.prefix, i)
            os.replace(tmp, final)
            names.append(final.name)
        for stale in self.out_dir.glob(f"{self.prefix}-*.jsonl"):
            if stale.name not in names:
                stale.unlink()
        return names
