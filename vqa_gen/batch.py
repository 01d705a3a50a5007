"""Batch jobs: the same work as `vqa-gen run`, sent as OpenAI Batch files instead of live calls.

Why: providers' batch APIs cost half and use no concurrency budget, and vLLM's `run_batch` runs
open models offline from the same files. The flow is

    prepare INPUT --out DIR   write requests-NNNNN.jsonl (the exact bodies `run` would send)
    submit / status / fetch   upload, create, poll and download through the `openai` client
    ingest DIR                turn the result files into the run folder `run` would write

`ingest` is `runner.Run` with a client that replays the batch replies instead of calling an
endpoint, so parsing, grounding, the output folder, the manifest and the response cache are the
very code `run` uses. A batch has no second turn, so there are no re-asks: a reply that does not
parse is a failed record, which `prepare --retry-failed` sends again.

Each request's `custom_id` is the response-cache key of its body (a hash of model, messages and
parameters), so a result can only ever be matched to the request that produced it, and a template
edited between prepare and ingest shows up as missing results instead of wrong ones.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from . import __version__
from .grounding import FilterConfig
from .llm import ClientConfig, Completion, LLMError, parse_completion
from .output import (
    MANIFEST,
    PARTIAL,
    PROGRESS_FILE,
    STATE_DIR,
    atomic_write_json,
    dumps_line,
    read_jsonl,
    shard_name,
)
from .pipeline import GenerationSettings, cache_key
from .records import DEFAULT_MAX_CAPTION_CHARS, FieldMap, read_records
from .runner import (
    EndpointSettings,
    ProgressCallback,
    Run,
    RunError,
    RunOptions,
    input_identity,
    utc_now,
)
from .templates import Template, load_template

BATCH_MANIFEST = "batch.json"
"""What was prepared: the settings every round must share, and each requests file."""
SUBMISSIONS = "submissions.json"
"""Per requests file: uploaded file id, batch id, last known status, fetched result files."""
RESULTS_DIR = "results"
RUN_DIR = "run"
"""Default run folder of `ingest`, inside the batch folder."""
REQUESTS_PREFIX = "requests"
CHAT_URL = "/v1/chat/completions"
MAX_REQUESTS_PER_FILE = 50_000
MAX_BYTES_PER_FILE = 200 * 1024 * 1024
"""OpenAI's limits for one batch input file (vLLM has none; smaller files are fine for it)."""
FINAL_STATES = frozenset({"completed", "failed", "expired", "cancelled"})


class BatchError(RunError):
    """The batch folder or a batch call cannot go on; the message is one line for the user."""


# -- prepare ----------------------------------------------------------------------------------
@dataclass(slots=True)
class PrepareOptions:
    """What `vqa-gen batch prepare` takes: the generation flags of `run`, minus the endpoint
    (only the model name matters: it is part of every request body)."""

    input: Path
    out_dir: Path
    model: str
    template: str = "open_vqa"
    generation: GenerationSettings = field(default_factory=GenerationSettings)
    filter: FilterConfig = field(default_factory=FilterConfig)
    fields: FieldMap = field(default_factory=FieldMap)
    max_caption_chars: int = DEFAULT_MAX_CAPTION_CHARS
    limit: int | None = None
    shard_size: int = 10_000
    retry_failed: bool = False
    run_dir: Path | None = None
    """The ingested run whose failed records `retry_failed` re-prepares (default DIR/run)."""
    max_requests_per_file: int = MAX_REQUESTS_PER_FILE
    max_bytes_per_file: int = MAX_BYTES_PER_FILE


@dataclass(slots=True)
class PrepareSummary:
    round: int
    records_read: int = 0
    requests: int = 0
    invalid: int = 0
    skipped: int = 0
    template_errors: int = 0
    duplicate_requests: int = 0
    """Records whose request is identical to an earlier one (one request answers both)."""
    files: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


def request_body(model: str, messages: list[dict[str, str]], params: dict[str, Any]
                 ) -> dict[str, Any]:
    """The chat-completions body `ChatClient.complete` posts for these messages."""
    return {"model": model, "messages": messages, **params}


def batch_line(custom_id: str, body: dict[str, Any]) -> bytes:
    return dumps_line({"custom_id": custom_id, "method": "POST", "url": CHAT_URL, "body": body})


class RequestFiles:
    """requests-NNNNN.jsonl files, each `.partial` until full, rotated at the provider's
    request-count and size limits."""

    def __init__(self, out_dir: Path, first_index: int, max_requests: int, max_bytes: int,
                 round_no: int) -> None:
        self.out_dir = out_dir
        self.index = first_index
        self.max_requests = max(1, max_requests)
        self.max_bytes = max_bytes
        self.round = round_no
        self.files: list[dict[str, Any]] = []
        self._fh: IO[bytes] | None = None
        self._requests = 0
        self._bytes = 0

    def _path(self) -> Path:
        return self.out_dir / shard_name(REQUESTS_PREFIX, self.index)

    def write(self, line: bytes) -> None:
        if len(line) > self.max_bytes:
            raise BatchError(f"one request is {len(line):,} bytes, over the "
                             f"{self.max_bytes:,}-byte file limit")
        if self._fh is not None and (self._requests >= self.max_requests
                                     or self._bytes + len(line) > self.max_bytes):
            self.seal()
        if self._fh is None:
            self._fh = self._path().with_name(self._path().name + PARTIAL).open("wb")
        self._fh.write(line)
        self._requests += 1
        self._bytes += len(line)

    def seal(self) -> None:
        if self._fh is None:
            return
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        self._fh = None
        final = self._path()
        os.replace(final.with_name(final.name + PARTIAL), final)
        self.files.append({"name": final.name, "requests": self._requests,
                           "bytes": self._bytes, "round": self.round})
        self.index += 1
        self._requests = self._bytes = 0

    def abort(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
            with contextlib.suppress(OSError):
                self._path().with_name(self._path().name + PARTIAL).unlink()


def _settings(o: PrepareOptions, template: Template) -> dict[str, Any]:
    return {"input": input_identity(o.input), "template": o.template,
            "template_info": template.describe() | {"path": None},
            "model": o.model, "generation": o.generation.model_dump(),
            "filter": o.filter.model_dump(), "fields": o.fields.to_dict(),
            "max_caption_chars": o.max_caption_chars, "limit": o.limit,
            "shard_size": o.shard_size}


def load_batch(batch_dir: Path) -> dict[str, Any]:
    path = batch_dir / BATCH_MANIFEST
    if not path.is_file():
        raise BatchError(f"{batch_dir} holds no prepared batch ({BATCH_MANIFEST} missing); run "
                         "`vqa-gen batch prepare` first")
    return orjson.loads(path.read_bytes())


def failed_lines(run_dir: Path) -> set[int]:
    """Input lines whose record failed in an ingested (or live) run folder: their last progress
    entry says `failed`."""
    last: dict[int, str] = {}
    for e in read_jsonl(run_dir / STATE_DIR / PROGRESS_FILE):
        last[int(e["line"])] = e.get("status", "")
    return {line for line, status in last.items() if status == "failed"}


def prepare(o: PrepareOptions) -> PrepareSummary:
    """Write the request files for every record of the input (or, with `retry_failed`, only for
    the records that failed in the ingested run) and record them in batch.json."""
    template = load_template(o.template)
    if not o.input.is_file():
        raise BatchError(f"input file not found: {o.input}")
    if o.filter.judge:
        raise BatchError("the LLM judge asks follow-up questions live; it cannot run from "
                         "batch files (turn `judge` off in the filter settings)")
    manifest_path = o.out_dir / BATCH_MANIFEST
    settings = _settings(o, template)
    only: set[int] | None = None
    if o.retry_failed:
        previous = load_batch(o.out_dir)
        if previous["settings"] != orjson.loads(orjson.dumps(settings)):
            changed = sorted(k for k in settings if previous["settings"].get(k)
                             != orjson.loads(orjson.dumps(settings[k])))
            raise BatchError(f"{o.out_dir} was prepared with different settings "
                             f"({', '.join(changed)} changed); --retry-failed needs the same "
                             "input and flags")
        run_dir = o.run_dir or o.out_dir / RUN_DIR
        if not (run_dir / STATE_DIR / PROGRESS_FILE).is_file():
            raise BatchError(f"{run_dir} holds no ingested run; run `vqa-gen batch ingest` "
                             "before --retry-failed")
        only = failed_lines(run_dir)
        files = list(previous["files"])
        rounds = list(previous["rounds"])
    else:
        if manifest_path.exists() or (o.out_dir.exists() and any(o.out_dir.iterdir())):
            raise BatchError(f"{o.out_dir} is not empty; choose an empty folder (or pass "
                             "--retry-failed to re-prepare the failed records of this batch)")
        o.out_dir.mkdir(parents=True, exist_ok=True)
        files, rounds = [], []
    summary = PrepareSummary(round=len(rounds))
    writer = RequestFiles(o.out_dir, len(files), o.max_requests_per_file,
                          o.max_bytes_per_file, summary.round)
    from .authoring import render_request

    seen: set[str] = set()
    try:
        for item in read_records(o.input, fields=o.fields,
                                 max_caption_chars=o.max_caption_chars):
            if o.limit is not None and summary.records_read >= o.limit:
                break
            summary.records_read += 1
            if only is not None and item.line not in only:
                continue
            if item.record is None:
                summary.invalid += 1
                continue
            try:
                req = render_request(template, item.record, o.generation)
            except ValueError:
                summary.template_errors += 1  # ingest reports it, as run would
                continue
            if req.skipped is not None:
                summary.skipped += 1
                continue
            key = cache_key(o.model, req.messages, req.params)
            if key in seen:
                summary.duplicate_requests += 1
                continue
            seen.add(key)
            writer.write(batch_line(key, request_body(o.model, req.messages, req.params)))
            summary.requests += 1
        writer.seal()
    except BaseException:
        writer.abort()
        for f in writer.files:  # batch.json never listed them: leave the folder as it was
            (o.out_dir / f["name"]).unlink(missing_ok=True)
        raise
    summary.files = writer.files
    atomic_write_json(manifest_path, {
        "vqa_gen_version": __version__, "settings": settings,
        "created_at": rounds[0]["created_at"] if rounds else utc_now(),
        "files": files + writer.files,
        "rounds": [*rounds, summary.to_dict() | {"retry_failed": o.retry_failed,
                                                 "created_at": utc_now()}]})
    return summary


# -- submit / status / fetch ------------------------------------------------------------------
def load_submissions(batch_dir: Path) -> dict[str, dict[str, Any]]:
    path = batch_dir / SUBMISSIONS
    return orjson.loads(path.read_bytes()) if path.is_file() else {}


def _save_submissions(batch_dir: Path, subs: dict[str, dict[str, Any]]) -> None:
    atomic_write_json(batch_dir / SUBMISSIONS, subs)


def _api_error(action: str, err: Exception) -> BatchError:
    message = getattr(err, "message", None) or str(err) or type(err).__name__
    return BatchError(f"{action}: {message.splitlines()[0][:300]}")


def submit(batch_dir: Path, client: Any, completion_window: str = "24h"
           ) -> list[dict[str, Any]]:
    """Upload and start one batch per requests file that has none yet. The file id is recorded
    before the batch is created and the batch id right after, so rerunning after a crash or on
    a folder already submitted never uploads or submits a file twice."""
    import openai

    prepared = load_batch(batch_dir)
    subs = load_submissions(batch_dir)
    started = []
    for f in prepared["files"]:
        name = f["name"]
        sub = subs.setdefault(name, {})
        if sub.get("batch_id"):
            continue
        try:
            if not sub.get("file_id"):
                with (batch_dir / name).open("rb") as fh:
                    uploaded = client.files.create(file=(name, fh), purpose="batch")
                sub["file_id"] = uploaded.id
                _save_submissions(batch_dir, subs)
            batch = _existing_batch(client, sub["file_id"]) or client.batches.create(
                input_file_id=sub["file_id"], endpoint=CHAT_URL,
                completion_window=completion_window,  # type: ignore[arg-type]
                metadata={"vqa_gen_file": name})
        except openai.OpenAIError as err:
            raise _api_error(f"submitting {name}", err) from None
        sub.update(_batch_state(batch))
        sub["submitted_at"] = utc_now()
        _save_submissions(batch_dir, subs)
        started.append({"file": name, **sub})
    return started


def _existing_batch(client: Any, file_id: str, scan: int = 1000) -> Any:
    """A batch already created for this uploaded file: the one a crash between creating it and
    recording its id left behind (the most recent `scan` batches are searched)."""
    for i, batch in enumerate(client.batches.list(limit=100)):
        if batch.input_file_id == file_id:
            return batch
        if i + 1 >= scan:
            break
    return None


def _batch_state(batch: Any) -> dict[str, Any]:
    counts = getattr(batch, "request_counts", None)
    errors = getattr(batch, "errors", None)
    messages = [f"line {e.line}: {e.message}" if getattr(e, "line", None) else str(e.message)
                for e in (getattr(errors, "data", None) or [])]
    return {"batch_id": batch.id, "status": batch.status,
            "output_file_id": batch.output_file_id, "error_file_id": batch.error_file_id,
            "request_counts": counts.model_dump() if counts is not None else None,
            "errors": messages}


def status(batch_dir: Path, client: Any) -> list[dict[str, Any]]:
    """Ask the provider about every submitted batch not yet in a final state; returns one row
    per requests file (unsubmitted files have status `not submitted`)."""
    import openai

    prepared = load_batch(batch_dir)
    subs = load_submissions(batch_dir)
    rows = []
    for f in prepared["files"]:
        name = f["name"]
        sub = subs.get(name, {})
        if sub.get("batch_id") and sub.get("status") not in FINAL_STATES:
            try:
                batch = client.batches.retrieve(sub["batch_id"])
            except openai.OpenAIError as err:
                raise _api_error(f"status of {name} ({sub['batch_id']})", err) from None
            sub.update(_batch_state(batch))
            subs[name] = sub
            _save_submissions(batch_dir, subs)
        rows.append({"file": name, "requests": f["requests"],
                     "status": sub.get("status", "not submitted"), **sub})
    return rows


def fetch(batch_dir: Path, client: Any) -> list[Path]:
    """Download the output and error files of every finished batch (once each), streamed to
    DIR/results/. Returns every result file fetched so far."""
    import openai

    status(batch_dir, client)
    subs = load_submissions(batch_dir)
    results_dir = batch_dir / RESULTS_DIR
    for name, sub in subs.items():
        if sub.get("status") not in FINAL_STATES:
            continue
        got = sub.setdefault("results", [])
        for kind in ("output", "error"):
            file_id = sub.get(f"{kind}_file_id")
            target = results_dir / f"{Path(name).stem}-{kind}.jsonl"
            if not file_id or target.name in got:
                continue
            results_dir.mkdir(exist_ok=True)
            partial = target.with_name(target.name + PARTIAL)
            try:
                with client.files.with_streaming_response.content(file_id) as resp:
                    resp.stream_to_file(partial)
            except openai.OpenAIError as err:
                raise _api_error(f"downloading {kind} file of {name} ({file_id})", err
                                 ) from None
            os.replace(partial, target)
            got.append(target.name)
            _save_submissions(batch_dir, subs)
    return fetched_results(batch_dir)


def fetched_results(batch_dir: Path) -> list[Path]:
    subs = load_submissions(batch_dir)
    return [batch_dir / RESULTS_DIR / r for sub in subs.values() for r in sub.get("results", [])]


# -- ingest -----------------------------------------------------------------------------------
class ResultIndex:
    """Where each custom_id's result line is, across result files (later files win, so a retry
    round's results replace the first round's). Memory: one small entry per result; the replies
    themselves are read from disk when used."""

    def __init__(self, paths: list[Path]) -> None:
        self.paths = paths
        self.problems: list[str] = []
        self._where: dict[str, tuple[int, int, int]] = {}
        for i, path in enumerate(paths):
            if not path.is_file():
                raise BatchError(f"results file not found: {path}")
            with path.open("rb") as fh:
                lineno, offset = 0, 0
                for raw in fh:
                    lineno += 1
                    start, offset = offset, offset + len(raw)
                    if not raw.strip():
                        continue
                    try:
                        custom_id = orjson.loads(raw).get("custom_id")
                    except (orjson.JSONDecodeError, AttributeError):
                        self.problems.append(f"{path}:{lineno}: not a JSON object; line ignored")
                        continue
                    if not isinstance(custom_id, str):
                        self.problems.append(f"{path}:{lineno}: field 'custom_id' missing; "
                                             "line ignored")
                        continue
                    self._where[custom_id] = (i, lineno, start)

    def __len__(self) -> int:
        return len(self._where)

    def lookup(self, custom_id: str) -> tuple[str, dict[str, Any]] | None:
        """(`file:line`, the result object) or None."""
        where = self._where.get(custom_id)
        if where is None:
            return None
        i, lineno, offset = where
        with self.paths[i].open("rb") as fh:
            fh.seek(offset)
            return f"{self.paths[i]}:{lineno}", orjson.loads(fh.readline())


def completion_from_result(where: str, row: dict[str, Any]) -> Completion:
    """The completion in one Batch output line (OpenAI's or vLLM run_batch's), or LLMError with
    kind `batch_error` saying why that request has none."""
    error = row.get("error")
    response = row.get("response") or {}
    if error:
        message = error.get("message") if isinstance(error, dict) else str(error)
        code = error.get("code") if isinstance(error, dict) else None
        raise LLMError("batch_error", f"{where}: {code + ': ' if code else ''}{message}")
    status_code = response.get("status_code")
    body = response.get("body")
    if status_code != 200 or not isinstance(body, dict):
        detail = ""
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            detail = f": {body['error'].get('message', '')}"
        raise LLMError("batch_error", f"{where}: request failed with HTTP {status_code}{detail}",
                       status=status_code if isinstance(status_code, int) else None)
    try:
        completion = parse_completion(orjson.dumps(body))
    except LLMError as err:
        raise LLMError(err.kind, f"{where}: {err.args[0]}") from None
    completion.attempts = 1
    return completion


# Ingested runs send nothing: the replies come from result files (the manifest's `engine` names
# them). A reserved `.invalid` host (RFC 2606) stands in for the endpoint, so no real one is named.
REPLAY_BASE_URL = "http://batch-results.invalid/v1"


class ReplayClient:
    """Answers `complete()` from batch results: the result whose custom_id is this request's
    cache key. Used by `Run` in place of the HTTP client (same interface)."""

    def __init__(self, config: ClientConfig, index: ResultIndex) -> None:
        self.config = config
        self.index = index
        self.calls = 0
        self.retries = 0
        self.missing = 0

    async def __aenter__(self) -> ReplayClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def complete(self, messages: list[dict[str, str]], **params: Any) -> Completion:
        key = cache_key(self.config.model, messages, params)
        found = self.index.lookup(key)
        if found is None:
            self.missing += 1
            err = LLMError("batch_missing", f"no batch result for this request (custom_id "
                                            f"{key}); re-prepare it with --retry-failed")
            err.attempts = 0
            raise err
        self.calls += 1
        try:
            return completion_from_result(*found)
        except LLMError as err:
            err.attempts = 1
            raise


def ingest(batch_dir: Path, results: list[Path] | None = None, *, out_dir: Path | None = None,
           cache_path: Path | None = None, use_cache: bool = True,
           on_result: ProgressCallback | None = None) -> tuple[dict[str, Any], list[str]]:
    """Build the run folder (default DIR/run) from batch results, exactly as `run` would from
    live replies, storing every reply in the response cache under the key `run` uses. Rerun on
    the same folder after a retry round: the records that failed are redone from the new
    results. Returns the manifest and one line per unusable results line."""
    prepared = load_batch(batch_dir)
    s = prepared["settings"]
    paths = results if results else fetched_results(batch_dir)
    if not paths:
        raise BatchError(f"no results to ingest: pass --results FILE or `vqa-gen batch fetch "
                         f"{batch_dir}` first")
    index = ResultIndex(paths)
    template = load_template(s["template"])
    if template.content_hash != s["template_info"]["content_hash"]:
        raise BatchError(f"template {s['template']} changed since the batch was prepared; "
                         "its replies answer the old prompts (prepare again)")
    inp = Path(s["input"]["path"])
    if not inp.is_file() or input_identity(inp) != s["input"]:
        raise BatchError(f"input {inp} is missing or changed since the batch was prepared")
    generation = GenerationSettings.model_validate(s["generation"] | {"max_reasks": 0})
    out = out_dir or batch_dir / RUN_DIR
    options = RunOptions(
        input=inp, out_dir=out, template=s["template"], generation=generation,
        filter=FilterConfig.model_validate(s["filter"]),
        endpoint=EndpointSettings(base_url=REPLAY_BASE_URL, api_key="unused",
                                  model=s["model"], max_retries=0),
        shard_size=s["shard_size"], limit=s["limit"], fields=FieldMap.from_dict(s["fields"]),
        max_caption_chars=s["max_caption_chars"], retry_failed=True, cache_path=cache_path,
        use_cache=use_cache, max_consecutive_failures=0)
    clients: list[ReplayClient] = []

    def replay(config: ClientConfig) -> ReplayClient:
        clients.append(ReplayClient(config, index))
        return clients[-1]

    job = _IngestRun(options, client_factory=replay)
    job.engine = {"name": "batch", "batch_dir": str(batch_dir),
                  "results": [str(p) for p in paths], "results_lines": len(index)}
    manifest = job.run(on_result=on_result)
    problems = list(index.problems)
    if len(index) and not any(c.calls for c in clients) and any(c.missing for c in clients):
        problems.append(f"none of the {len(index)} result lines answers a request of this "
                        "batch: results of another job, or of files prepared differently?")
    return manifest, problems


class _IngestRun(Run):
    """A `Run` whose manifest also says which batch and result files it was built from."""

    engine: dict[str, Any]

    def manifest(self) -> dict[str, Any]:
        return super().manifest() | {"engine": self.engine}


def iter_requests(batch_dir: Path) -> Iterator[dict[str, Any]]:
    """Every prepared request line (for tests and tools that run the files elsewhere)."""
    for f in load_batch(batch_dir)["files"]:
        yield from read_jsonl(batch_dir / f["name"])


__all__ = ["BATCH_MANIFEST", "MANIFEST", "BatchError", "PrepareOptions", "PrepareSummary",
           "ReplayClient", "ResultIndex", "completion_from_result", "failed_lines", "fetch",
           "ingest", "iter_requests", "load_batch", "prepare", "status", "submit"]
