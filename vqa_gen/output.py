"""Writing a run's output folder: rotating JSONL shards, side files, a progress log, a manifest.

Layout of `--out DIR`::

    data-00000.jsonl …       kept QA, rotated every `shard_size` lines
    rejected-00000.jsonl …   rejected QA with their grounding reasons
    invalid.jsonl            input lines that are not valid records (file, line, why)
    failed.jsonl             records whose generation failed (with the error)
    manifest.json            counts, settings, template, model, usage, times
    .vqa-gen/progress.jsonl  one line per input line once all of its output is written
    .vqa-gen/responses.jsonl the raw model replies per record (for refiltering without calls)

Files being written carry a `.partial` suffix and are renamed only when complete, so a crash never
leaves a half-written shard under a final name. Results are committed in input order; a record
counts as done only once its progress line is written after its output lines, which is what lets
a later run resume exactly where this one stopped.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson

PARTIAL = ".partial"
STATE_DIR = ".vqa-gen"
PROGRESS_FILE = "progress.jsonl"
RESPONSES_FILE = "responses.jsonl"
"""The raw model replies of every done or failed record, so parsing and filtering can be redone
later (`vqa-gen refilter`) without a single call."""
MANIFEST = "manifest.json"
STATE_FILE = "state.json"
"""The run's identity under STATE_DIR: the settings snapshot and its fingerprint."""


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write a whole file so that readers see the old or the new version, never a mix."""
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, json.dumps(obj, indent=2, ensure_ascii=False).encode() + b"\n")


def dumps_line(obj: Any) -> bytes:
    return orjson.dumps(obj) + b"\n"


def shard_name(prefix: str, index: int) -> str:
    """Stable shard names: data-00000.jsonl, data-00001.jsonl, …"""
    return f"{prefix}-{index:05d}.jsonl"


class ShardSet:
    """Rotating JSONL shards with one prefix. A group of lines (one record's QA) never straddles
    two shards, so every sealed shard holds only whole, committed records."""

    def __init__(self, out_dir: Path, prefix: str, shard_size: int) -> None:
        self.out_dir = out_dir
        self.prefix = prefix
        self.shard_size = max(1, shard_size)
        self.index = 0
        self.lines_in_shard = 0
        self.sealed: list[str] = []
        self._fh: IO[bytes] | None = None

    def _partial_path(self, index: int) -> Path:
        return self.out_dir / (shard_name(self.prefix, index) + PARTIAL)

    def _open(self) -> IO[bytes]:
        if self._fh is None:
            self._fh = self._partial_path(self.index).open("ab")
        return self._fh

    def write_group(self, lines: list[bytes]) -> None:
        if not lines:
            return
        if self.lines_in_shard and self.lines_in_shard + len(lines) > self.shard_size:
            self.seal()
            self.index += 1
        self._open().writelines(lines)
        self.lines_in_shard += len(lines)

    def flush(self) -> None:
        if self._fh is not None:
            self._fh.flush()

    def seal(self) -> None:
        """Close the open shard and give it its final name."""
        if self._fh is None and not self._partial_path(self.index).exists():
            return
        if self._fh is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
            self._fh = None
        final = self.out_dir / shard_name(self.prefix, self.index)
        os.replace(self._partial_path(self.index), final)
        self.sealed.append(final.name)
        self.lines_in_shard = 0

    def close(self) -> None:
        if self._fh is not None:
            self._fh.flush()
            self._fh.close()
            self._fh = None

    def resume(self, index: int, lines_in_shard: int, sealed: Iterable[str]) -> None:
        self.index = index
        self.lines_in_shard = lines_in_shard
        self.sealed = list(sealed)


class SideFile:
    """An append-only JSONL side file (invalid.jsonl, failed.jsonl), `.partial` until sealed."""

    def __init__(self, out_dir: Path, name: str) -> None:
        self.final = out_dir / name
        self.partial = out_dir / (name + PARTIAL)
        self._fh: IO[bytes] | None = None
        self.lines = 0

    def write(self, obj: Any) -> None:
        if self._fh is None:
            self._fh = self.partial.open("ab")
        self._fh.write(dumps_line(obj))
        self.lines += 1

    def flush(self) -> None:
        if self._fh is not None:
            self._fh.flush()

    def seal(self) -> None:
        if self._fh is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
            self._fh = None
        if self.partial.exists():
            os.replace(self.partial, self.final)
        elif not self.final.exists():
            self.final.touch()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.flush()
            self._fh.close()
            self._fh = None


@dataclass(slots=True)
class Counts:
    """The manifest's accounting. Invariants: records_read = invalid + failed + done, and
    qa_generated = qa_kept + qa_rejected."""

    records_read: int = 0
    records_invalid: int = 0
    records_failed: int = 0
    records_done: int = 0
    qa_generated: int = 0
    qa_kept: int = 0
    qa_rejected: int = 0
    llm_calls: int = 0
    reasks: int = 0
    cache_hits: int = 0
    cache_misses: int = 0
    records_skipped: int = 0
    """Done records the template's `when` condition excluded (zero QA, no call); part of
    records_done."""

    def to_dict(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in self.__slots__}  # type: ignore[attr-defined]

    def add_entry(self, e: dict[str, Any]) -> None:
        """Count one progress-log entry (one input line and where it ended)."""
        self.records_read += 1
        status = e["status"]
        if status == "invalid":
            self.records_invalid += 1
        elif status == "failed":
            self.records_failed += 1
        else:
            self.records_done += 1
            if e.get("skipped"):
                self.records_skipped += 1
        kept, rejected = e.get("kept", 0), e.get("rejected", 0)
        self.qa_kept += kept
        self.qa_rejected += rejected
        self.qa_generated += kept + rejected
        self.llm_calls += e.get("calls", 0)
        self.reasks += e.get("reasks", 0)
        self.cache_hits += e.get("cache_hits", 0)
        self.cache_misses += e.get("cache_misses", 0)

    def check(self) -> None:
        """Raise if the accounting does not add up (a bug, never a user error)."""
        if self.records_read != self.records_invalid + self.records_failed + self.records_done:
            raise AssertionError(f"record counts do not add up: {self.to_dict()}")
        if self.qa_generated != self.qa_kept + self.qa_rejected:
            raise AssertionError(f"QA counts do not add up: {self.to_dict()}")


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """The objects of a JSONL file (blank lines skipped; nothing if the file does not exist)."""
    if not path.exists():
        return
    with path.open("rb") as fh:
        for raw in fh:
            if raw.strip():
                yield orjson.loads(raw)


def _whole_lines(fh: IO[bytes]) -> Iterator[tuple[bytes, dict[str, Any]]]:
    """(raw line, object) of a JSONL file written by us, stopping at a torn last line."""
    for raw in fh:
        if not raw.endswith(b"\n"):
            break
        try:
            row = orjson.loads(raw)
        except orjson.JSONDecodeError:
            break
        yield raw, row


def _read_jsonl_lenient(path: Path) -> list[dict[str, Any]]:
    """Parse a JSONL file written by us, dropping a torn last line."""
    if not path.exists():
        return []
    with path.open("rb") as fh:
        return [row for _, row in _whole_lines(fh)]


def _filter_jsonl(path: Path, keep: Any) -> int:
    """Rewrite `path` atomically keeping the whole lines whose object satisfies `keep`, line by
    line (a run's raw-reply log can be far larger than memory). A torn last line is dropped."""
    tmp = path.with_name(f".{path.name}.tmp")
    kept = 0
    with tmp.open("wb") as out:
        if path.exists():
            with path.open("rb") as fh:
                for raw, row in _whole_lines(fh):
                    if keep(row):
                        out.write(raw)
                        kept += 1
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
    return kept


class RunWriter:
    """Commits `RecordResult`s to an output folder, in order, and can pick up a torn run.

    Commit order for one record: its QA lines and side-file line, flush, then its progress line.
    A record whose progress line is missing is treated as never processed.
    """

    def __init__(self, out_dir: Path, shard_size: int) -> None:
        self.out_dir = out_dir
        self.state_dir = out_dir / STATE_DIR
        self.data = ShardSet(out_dir, "data", shard_size)
        self.rejected = ShardSet(out_dir, "rejected", shard_size)
        self.invalid = SideFile(out_dir, "invalid.jsonl")
        self.failed = SideFile(out_dir, "failed.jsonl")
        self.responses = SideFile(self.state_dir, RESPONSES_FILE)
        self.counts = Counts()
        self.usage = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        self.committed_lines: set[int] = set()
        self.retry_lines: set[int] = set()
        """Input lines of records that failed before and are retried (`--retry-failed`)."""
        self._progress: IO[bytes] | None = None
        self._since_flush = 0

    @property
    def _files(self) -> tuple[ShardSet | SideFile, ...]:
        return (self.data, self.rejected, self.invalid, self.failed, self.responses)

    # -- starting -------------------------------------------------------------------------
    def start_fresh(self) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.state_dir.mkdir(exist_ok=True)
        (self.state_dir / PROGRESS_FILE).write_bytes(b"")
        self._progress = (self.state_dir / PROGRESS_FILE).open("ab")

    def start_resume(self, *, retry_failed: bool = False) -> None:
        """Rebuild counts and shard positions from the progress log, and cut every partial file
        back to the records that were committed."""
        progress_path = self.state_dir / PROGRESS_FILE
        entries = _read_jsonl_lenient(progress_path)
        if retry_failed:
            self.retry_lines = {int(e["line"]) for e in entries if e.get("status") == "failed"}
            entries = [e for e in entries if e.get("status") != "failed"]
        atomic_write_bytes(progress_path, b"".join(dumps_line(e) for e in entries))
        for e in entries:
            self._count(e)
        self.committed_lines = {int(e["line"]) for e in entries}
        committed_ids = {e["record_id"] for e in entries if e.get("record_id") is not None
                         and e.get("status") == "done"}
        lines = self.committed_lines
        for side in (self.invalid, self.failed, self.responses):
            if side.final.exists() and not side.partial.exists():
                os.replace(side.final, side.partial)
            side.lines = _filter_jsonl(side.partial, lambda r: r.get("line") in lines)
        for shards in (self.data, self.rejected):
            self._resume_shards(shards, committed_ids)
        self._progress = progress_path.open("ab")

    def _resume_shards(self, shards: ShardSet, committed_ids: set[str]) -> None:
        prefix = shards.prefix
        sealed = sorted(p.name for p in self.out_dir.glob(f"{prefix}-*.jsonl"))
        partials = sorted(self.out_dir.glob(f"{prefix}-*.jsonl{PARTIAL}"))
        open_index, open_lines = None, 0
        for p in partials:
            n = _filter_jsonl(p, lambda r: r.get("record_id") in committed_ids)
            index = int(p.name[len(prefix) + 1 :].split(".")[0])
            if n == 0:
                p.unlink()
            elif open_index is None or index > open_index:
                open_index, open_lines = index, n
        last_sealed = int(sealed[-1][len(prefix) + 1 :].split(".")[0]) if sealed else -1
        if open_index is not None and open_index > last_sealed:
            shards.resume(open_index, open_lines, sealed)
        else:
            shards.resume(last_sealed + 1, 0, sealed)

    # -- committing -----------------------------------------------------------------------
    def _count(self, e: dict[str, Any]) -> None:
        self.counts.add_entry(e)
        for key, value in zip(self.usage, e.get("usage", (0, 0, 0)), strict=False):
            self.usage[key] += value

    def commit(self, result: Any) -> None:
        """Write one RecordResult and then its progress line."""
        assert self._progress is not None, "call start_fresh() or start_resume() first"
        status = result.status
        if status == "invalid":
            self.invalid.write(result.invalid.to_dict())
        elif status == "failed":
            rec = result.record
            self.failed.write({"line": result.line, "record_id": rec.id, "image": rec.image,
                               "error": result.failure.to_dict()})
        if result.raw_responses:
            self.responses.write({"line": result.line, "record_id": result.record_id,
                                  "responses": result.raw_responses})
        # to_line: QA serialised where they were graded (possibly a worker process)
        self.data.write_group([s.to_line() for s in result.kept])
        self.rejected.write_group([s.to_line() for s in result.rejected])
        for f in self._files:
            f.flush()
        u = result.usage
        entry = {"line": result.line, "record_id": result.record_id, "status": status,
                 "kept": len(result.kept), "rejected": len(result.rejected),
                 "calls": result.calls, "reasks": result.reasks,
                 "cache_hits": result.cache_hits,
                 "cache_misses": result.cache_misses,
                 "usage": [u.prompt_tokens, u.completion_tokens, u.total_tokens]}
        if getattr(result, "skipped", None):
            entry["skipped"] = result.skipped
        self._progress.write(dumps_line(entry))
        self._progress.flush()
        self._count(entry)
        self.committed_lines.add(result.line)

    # -- finishing ------------------------------------------------------------------------
    def finish(self) -> None:
        """Seal every file under its final name (the run is complete)."""
        for f in self._files:
            f.seal()
        self.close()

    def close(self) -> None:
        """Flush and close without sealing (interrupted run: partial files stay partial)."""
        for f in self._files:
            f.close()
        if self._progress is not None:
            self._progress.flush()
            os.fsync(self._progress.fileno())
            self._progress.close()
            self._progress = None

    def outputs(self) -> dict[str, list[str]]:
        return {"data": list(self.data.sealed), "rejected": list(self.rejected.sealed)}
