"""A batch job: stream an input file through `process_record` into an output folder.

This is the library side of `vqa-gen run`; the CLI only parses flags and shows progress. The
runner owns the things a single record does not: the endpoint (or the embedded model), the
output folder and its resume state, the manifest, and interruption.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import logging
import signal
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from . import __version__
from .embedded import EmbeddedServer
from .errors import EndpointError, InputError, RunFolderError
from .grounding import FilterConfig
from .llm import (
    ChatClient,
    ClientConfig,
    Completion,
    EndpointSettings,
    Usage,
    redact,
)
from .ordered import ordered_map
from .output import (
    DEFAULT_FSYNC_INTERVAL,
    LOCK_FILE,
    MANIFEST,
    STATE_DIR,
    STATE_FILE,
    FolderLock,
    OutputError,
    RunWriter,
    atomic_write_json,
)
from .pipeline import (
    Failure,
    GenerationContext,
    GenerationSettings,
    RecordResult,
    process_record,
)
from .records import DEFAULT_MAX_CAPTION_CHARS, FieldMap, csv_delimiter, read_records
from .templates import load_template
from .workers import WorkerPool, WorkerSpec, default_workers
from .workers import available as workers_available

log = logging.getLogger(__name__)


class RunError(RunFolderError):
    """The run itself cannot proceed (bad flags, unusable output folder, endpoint down for
    good). The message is meant for the user, one line."""


class Interrupted(KeyboardInterrupt):
    """The run was stopped by a signal (SIGINT or SIGTERM); `exit_code` is 128 + its number,
    the shell's convention (130, 143)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
        self.exit_code = 128 + signum


class EndpointDownError(EndpointError):
    """The circuit breaker tripped: the endpoint failed every call of several records in a row
    (after their retries). Everything committed so far is kept and the folder is resumable; the
    CLI exits with code 3."""

    exit_code = 3


ENDPOINT_DOWN_KINDS = frozenset({"connection", "timeout", "server_error", "rate_limit", "auth",
                                 "not_found", "malformed_response"})
"""Failure kinds that say nothing about the record and everything about the endpoint."""
DEFAULT_MAX_CONSECUTIVE_FAILURES = 10


@dataclass(slots=True)
class CircuitBreaker:
    """Counts records in a row (in input order) that failed with an endpoint-level kind after
    their retries; any record the endpoint answered resets it. `threshold` 0 disables it."""

    threshold: int = DEFAULT_MAX_CONSECUTIVE_FAILURES
    consecutive: int = 0
    last: Failure | None = None

    def observe(self, result: RecordResult) -> bool:
        """Account for one committed result; True when the breaker trips."""
        failure = result.failure
        if failure is not None and failure.kind in ENDPOINT_DOWN_KINDS:
            self.consecutive += 1
            self.last = failure
            log.debug("circuit breaker: %d of %d records in a row failed at the endpoint (%s)",
                      self.consecutive, self.threshold, failure.kind)
        elif result.calls > 0:
            # the endpoint answered; records that made no call (invalid, skipped, served from
            # the cache) say nothing about it either way
            if self.consecutive:
                log.info("circuit breaker: the endpoint answered again after %d failed "
                         "record(s) in a row", self.consecutive)
            self.consecutive = 0
        tripped = 0 < self.threshold <= self.consecutive
        if tripped:
            log.warning("circuit breaker tripped: %d records in a row failed at the endpoint "
                        "(last: %s)", self.consecutive, self.last.kind if self.last else "?")
        return tripped


@dataclass(slots=True)
class RunOptions:
    """Everything `vqa-gen run` takes."""

    input: Path
    out_dir: Path
    template: str = "open_vqa"
    generation: GenerationSettings = field(default_factory=GenerationSettings)
    filter: FilterConfig = field(default_factory=FilterConfig)
    endpoint: EndpointSettings = field(default_factory=EndpointSettings)
    shard_size: int = 10_000
    limit: int | None = None
    fields: FieldMap = field(default_factory=FieldMap)
    max_caption_chars: int = DEFAULT_MAX_CAPTION_CHARS
    overwrite: bool = False
    retry_failed: bool = False
    cache_path: Path | None = None
    use_cache: bool = True
    workers: int | None = None
    """Processes that parse, ground and serialise replies (None or 1: in this process, no
    pool). Output is byte-identical whatever the number."""
    max_consecutive_failures: int = DEFAULT_MAX_CONSECUTIVE_FAILURES
    """Circuit breaker: stop the run when this many records in a row fail with connection,
    timeout, 5xx, rate-limit, auth, not-found or malformed-response errors after their retries
    (0: never)."""
    delimiter: str | None = None
    """CSV field delimiter (default: tab for .tsv, comma otherwise)."""
    fsync_interval: float = DEFAULT_FSYNC_INTERVAL
    """Seconds between fsyncs of outputs and progress (0: at every commit)."""


ProgressCallback = Callable[[RecordResult, RunWriter], None]


def input_identity(path: Path) -> dict[str, Any]:
    """What must not change under a resumable run: path, size and a hash of the whole file.

    The whole file, streamed, not mtime and a sample: an edit past any sample with the same size
    would go unnoticed, and mtime is reset by `cp -p`, rsync and checkouts. SHA-256 streams at
    roughly 1 GB/s: a second per GB at each start (`bench_reliability.py --only fsync`)."""
    stat = path.stat()
    with path.open("rb") as fh:
        digest = hashlib.file_digest(fh, "sha256").hexdigest()[:32]
    return {"path": str(path.resolve()), "size": stat.st_size, "sha256": digest}


def settings_fingerprint(settings: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(settings, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def filter_for_manifest(config: FilterConfig) -> dict[str, Any]:
    """The filter settings as the manifest shows them: `checks.judge.enabled` follows the
    `judge` switch (which alone decides whether the judge runs), so the two never disagree."""
    data = config.model_dump()
    judge = (data.get("checks") or {}).get("judge")
    if isinstance(judge, dict):
        judge["enabled"] = bool(data.get("judge"))
    return data


class _StoredReplies:
    """A completion source serving a record's stored replies in order (then the real one)."""

    def __init__(self, replies: list[str], fallback: Any) -> None:
        self.replies = list(replies)
        self.fallback = fallback

    async def complete(self, messages: list[dict[str, str]], **params: Any) -> Completion:
        if self.replies:
            return Completion(content=self.replies.pop(0), finish_reason=None, usage=Usage(),
                              attempts=0)
        return await self.fallback.complete(messages, **params)


async def _replay(item: Any, ctx: GenerationContext, stored: dict[str, Any]) -> RecordResult:
    """Commit a record done before again from its stored replies: the same QA, no call, and
    its original calls, tokens and cache use (what the replies cost when they were paid)."""
    source = _StoredReplies(stored["responses"], ctx.client)
    result = await process_record(item, dataclasses.replace(ctx, client=source, cache=None))
    e = stored["entry"]
    result.calls = int(e.get("calls", 0))
    result.cache_hits = int(e.get("cache_hits", 0))
    result.cache_misses = int(e.get("cache_misses", 0))
    result.usage = Usage(*e.get("usage", (0, 0, 0)))
    return result


def _one_line(err: BaseException) -> str:
    """An exception as one line for the manifest (an OSError with its path)."""
    if isinstance(err, OSError) and err.filename:
        return f"{err.filename}: {err.strerror or err}"
    text = str(err)
    return text.splitlines()[0][:500] if text.strip() else type(err).__name__


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Run:
    """One execution of a job over an output folder (fresh, resumed or already complete)."""

    def __init__(self, options: RunOptions,
                 client_factory: Callable[[ClientConfig], Any] | None = None) -> None:
        self.options = options
        self.client_factory = client_factory or ChatClient
        """What answers the calls: the HTTP client, or (`vqa_gen.batch` ingest) one that
        replays the replies of a finished batch job."""
        self.template = load_template(options.template)
        if not options.input.is_file():
            raise InputError(f"input file not found: {options.input}")
        try:
            csv_delimiter(options.input, options.delimiter)
        except ValueError as err:
            raise InputError(f"--delimiter: {err}") from None
        self.writer = RunWriter(options.out_dir, options.shard_size, options.fsync_interval)
        self.lock = FolderLock(options.out_dir)
        self.notes: list[str] = []
        """Warnings for the user (a stale lock taken over, a repair made at resume)."""
        self.started_at = utc_now()
        self.status = "running"
        self.resumed = False
        self.endpoint_info: dict[str, Any] = {}
        self.model = options.endpoint.model or ""
        self.error: str | None = None
        self.pool: WorkerPool | None = None
        self.last_pool_graded = 0
        """Replies the worker pool graded in the last run (0: graded in this process)."""
        self.last_graded_here = 0
        """Replies graded in this process while the last run had a pool (before a worker was
        ready)."""

    # -- settings that must match for a resume ----------------------------------------------
    def settings_snapshot(self) -> dict[str, Any]:
        o = self.options
        return {
            "input": input_identity(o.input),
            "template": self.template.describe() | {"path": None},
            "generation": o.generation.model_dump(),
            "filter": o.filter.model_dump(),
            "model": self.model,
            "shard_size": o.shard_size,
            "limit": o.limit,
            "fields": o.fields.to_dict(),
            "max_caption_chars": o.max_caption_chars,
        } | ({"delimiter": o.delimiter} if o.delimiter else {})

    def _prepare_out_dir(self) -> None:
        o = self.options
        state_path = o.out_dir / STATE_DIR / STATE_FILE
        snapshot = self.settings_snapshot()
        fingerprint = settings_fingerprint(snapshot)
        if state_path.exists() and not o.overwrite:
            try:
                previous = orjson.loads(state_path.read_bytes())
                if not isinstance(previous, dict):
                    raise ValueError("not a JSON object")
            except (ValueError, OSError) as err:
                raise RunError(f"{state_path} is damaged ({str(err).splitlines()[0][:80]}): this "
                               "folder's run cannot be identified to resume it; pass "
                               "--overwrite to start again, or use another --out") from None
            if previous.get("fingerprint") != fingerprint:
                changed = sorted(k for k in snapshot if previous.get("settings", {}).get(k)
                                 != orjson.loads(orjson.dumps(snapshot[k])))
                raise RunError(
                    f"{o.out_dir} holds a run made with different settings "
                    f"({', '.join(changed) or 'unknown'} changed); use another --out or pass "
                    "--overwrite to start again")
            try:
                self.writer.start_resume(retry_failed=o.retry_failed)
            except OutputError as err:
                raise RunError(str(err)) from None
            self.notes.extend(self.writer.notes)
            self.resumed = True
            return
        # the state folder alone (the lock, a start-up cut short) does not make a folder a run
        if o.out_dir.exists() and any(p.name != STATE_DIR for p in o.out_dir.iterdir()):
            if not o.overwrite:
                raise RunError(self._foreign_folder_message())
            self._clear_out_dir()
        o.out_dir.mkdir(parents=True, exist_ok=True)
        (o.out_dir / STATE_DIR).mkdir(exist_ok=True)
        atomic_write_json(state_path, {"fingerprint": fingerprint, "settings": snapshot,
                                       "created_at": self.started_at})
        self.writer.start_fresh()

    def _foreign_folder_message(self) -> str:
        return (f"{self.options.out_dir} is not empty and holds no vqa-gen run; choose an empty "
                "folder or pass --overwrite")

    def _clear_out_dir(self) -> None:
        out = self.options.out_dir
        # the run's identity goes first: a kill while clearing must not leave a folder that
        # looks resumable but still holds shards of the old run
        (out / STATE_DIR / STATE_FILE).unlink(missing_ok=True)
        for p in out.iterdir():
            if p.name == STATE_DIR:
                for q in p.iterdir():
                    if q.is_file() and q.name != LOCK_FILE:  # ours, held for this run
                        q.unlink()
            elif p.is_file() and (p.suffix in {".jsonl", ".json", ".partial", ".html"}):
                p.unlink()

    # -- manifest ----------------------------------------------------------------------------
    def manifest(self) -> dict[str, Any]:
        o = self.options
        counts = self.writer.counts
        # every HTTP call sent for this folder, also those of records never committed
        calls = {"llm_calls": max(counts.llm_calls, self.writer.calls_sent)}
        return {
            "vqa_gen_version": __version__,
            "status": self.status,
            "counts": counts.to_dict() | calls,
            "input": str(o.input),
            "template": self.template.describe(),
            "model": self.model,
            "endpoint": self.endpoint_info,
            "generation": o.generation.model_dump(),
            "filter": filter_for_manifest(o.filter),
            "shard_size": o.shard_size,
            "limit": o.limit,
            "usage": dict(self.writer.usage),
            "http_retries": self.writer.retries_sent,  # (every run on the folder)
            "outputs": self.writer.outputs(),
            "resumed": self.resumed,
            "error": redact(self.error, o.endpoint.api_key) if self.error else self.error,
            "notes": [redact(n) for n in self.notes],
            "started_at": self.started_at,
            "ended_at": utc_now() if self.status != "running" else None,
        }

    def write_manifest(self) -> None:
        path = self.options.out_dir / MANIFEST
        data = self.manifest()
        try:
            atomic_write_json(path, data)
        except OSError:
            if self.status == "running" or not path.exists():
                raise
            # disk full: a second file cannot be created, but the manifest's own blocks can be
            # overwritten, so the final status still reaches it
            blob = json.dumps(data, ensure_ascii=False).encode() + b"\n"
            with path.open("r+b") as fh:
                fh.write(blob)
                fh.truncate(len(blob))

    # -- running -----------------------------------------------------------------------------
    def worker_count(self) -> int:
        """Grading processes for this run (default: one per usable core); 1 (in-process) when
        asked, on one core, with the LLM judge (it needs the verdicts in this process), or
        where a pool cannot run (no fork)."""
        o = self.options
        n = o.workers if o.workers is not None else default_workers()
        return 1 if o.filter.judge or not workers_available() else max(1, n)

    def _was_complete(self) -> bool:
        """The folder holds a complete run (read before this run rewrites the manifest)."""
        try:
            previous = orjson.loads((self.options.out_dir / MANIFEST).read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return False
        return isinstance(previous, dict) and previous.get("status") == "complete"

    def _start_pool(self, was_complete: bool) -> None:
        # a rerun of a complete run on the same input (the settings fingerprint checked it)
        # grades nothing: no pool for it
        nothing_left = self.resumed and was_complete and not self.options.retry_failed
        n = self.worker_count()
        if n > 1 and not nothing_left:
            # started before the client opens its connections (workers fork this process)
            spec = WorkerSpec(self.template, self.options.generation, self.options.filter,
                              self.model)
            self.pool = WorkerPool(spec, n).start()

    def _endpoint_down_message(self, breaker: CircuitBreaker) -> str:
        last = breaker.last.message if breaker.last else "unknown error"
        c = self.writer.counts
        return (f"the endpoint looks down: {breaker.consecutive} records in a row failed after "
                f"their retries (last: {last}); stopped. The {c.records_done} records done so "
                f"far are kept in {self.options.out_dir}; when the endpoint is back, run the "
                "same command with --retry-failed to resume")

    async def _run_with_client(self, client_config: ClientConfig,
                               on_result: ProgressCallback | None) -> None:
        o = self.options
        cache = None
        if o.use_cache:
            from .cache import default_cache_path, open_cache

            try:
                cache = open_cache(o.cache_path)
            except (sqlite3.Error, OSError) as err:
                raise RunError(f"response cache {o.cache_path or default_cache_path()} is not "
                               f"usable ({err}); pass --cache FILE or --no-cache") from None
        breaker = CircuitBreaker(o.max_consecutive_failures)
        try:
            async with self.client_factory(client_config) as client:
                client.on_call = self.writer.note_call
                shared = self.pool.context if self.pool is not None else None
                ctx = GenerationContext.build(self.template, o.generation, client, self.model,
                                              o.filter, cache=cache,
                                              grounding=shared["grounding"] if shared else None)
                ctx.grader = self.pool
                retry_ctx = dataclasses.replace(ctx, refresh_cache=True)
                retry_lines = self.writer.retry_lines
                items = read_records(o.input, fields=o.fields,
                                     max_caption_chars=o.max_caption_chars,
                                     delimiter=o.delimiter)
                skip = self.writer.committed_lines
                done_before = self.writer.counts.records_read

                replays = self.writer.replay_rows()  # --retry-failed: see RunWriter
                replay = next(replays, None)

                def todo():
                    nonlocal replay
                    budget = None if o.limit is None else o.limit - done_before
                    for item in items:
                        if budget is not None and budget <= 0:
                            return
                        if item.line in skip:
                            continue
                        if budget is not None:
                            budget -= 1
                        while replay is not None and replay["line"] < item.line:
                            replay = next(replays, None)
                        if replay is not None and replay["line"] == item.line:
                            yield item, replay
                        else:
                            yield item, None

                async def work(job):
                    item, stored = job
                    if stored is not None and "entry" in stored:
                        return await _replay(item, ctx, stored)
                    retry = item.line in retry_lines or stored is not None
                    # a retried record must not be served the cached replies that failed
                    return await process_record(item, retry_ctx if retry else ctx)

                last_manifest = time.monotonic()
                # records in flight stay bounded by --concurrency, pool or not: more would let
                # calls finish far ahead of the commit cursor, and a kill would lose paid work
                results = ordered_map(work, todo(), concurrency=client_config.concurrency)
                async with contextlib.aclosing(results):
                    async for result in results:
                        self.writer.commit(result)
                        if on_result is not None:
                            on_result(result, self.writer)
                        if breaker.observe(result):
                            raise EndpointDownError(self._endpoint_down_message(breaker))
                        now = time.monotonic()
                        if now - last_manifest > 10:
                            self.write_manifest()
                            last_manifest = now
        finally:
            if cache is not None:
                cache.close()

    async def run_async(self, on_result: ProgressCallback | None = None) -> dict[str, Any]:
        """Run to completion (or interruption); returns the manifest. The output folder is
        locked for the whole run: a second run on it stops before touching anything."""
        o = self.options
        if (not o.overwrite and o.out_dir.is_dir() and not (o.out_dir / STATE_DIR).exists()
                and any(o.out_dir.iterdir())):
            raise RunError(self._foreign_folder_message())  # before the lock file goes in it
        try:
            note = self.lock.acquire()
        except OutputError as err:
            raise RunError(str(err)) from None
        if note:
            self.notes.append(note)
        try:
            return await self._run_locked(on_result)
        finally:
            self.lock.release()

    async def _run_locked(self, on_result: ProgressCallback | None) -> dict[str, Any]:
        o = self.options
        was_complete = self._was_complete()
        self._prepare_out_dir()
        log.info("%s %s", "resuming the run in" if self.resumed else "starting a run in",
                 o.out_dir)
        embedded: EmbeddedServer | None = None
        try:
            client_config, embedded = o.endpoint.connect()
            self.model = client_config.model
            self.endpoint_info = client_config.describe() | (
                embedded.describe() if embedded is not None else {"embedded": False})
            self.write_manifest()
            self._start_pool(was_complete)
            await self._run_with_client(client_config, on_result)
            self.status = "complete"
            self.writer.finish()
        except (asyncio.CancelledError, KeyboardInterrupt):
            self.status = "interrupted"
            self.writer.close()
            raise
        except EndpointDownError as err:
            self.status = "endpoint_down"
            self.error = str(err)
            self.writer.close()
            self.writer.seal_side_files()
            raise
        except BaseException as err:
            self.status = "failed"
            self.error = _one_line(err)
            with contextlib.suppress(OSError):  # a full disk must not hide the first error
                self.writer.close()
            raise
        finally:
            if self.pool is not None:
                self.pool.close()
                self.last_pool_graded = self.pool.graded
                self.last_graded_here = self.pool.graded_here
                self.pool = None
            if embedded is not None:
                embedded.stop()
            self.writer.counts.check()
            self.write_manifest()
        return self.manifest()

    def run(self, on_result: ProgressCallback | None = None) -> dict[str, Any]:
        """Synchronous entry point; Ctrl-C (SIGINT) or SIGTERM stop it cleanly: committed work is
        kept, the manifest says `interrupted`, and KeyboardInterrupt is raised to the caller."""
        return asyncio.run(_run_interruptible(self, on_result))


async def _run_interruptible(run: Run, on_result: ProgressCallback | None) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    interrupted = 0

    def _stop(signum: int) -> None:
        nonlocal interrupted
        interrupted = signum
        if task is not None:
            task.cancel()

    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, _stop, int(sig))
            installed.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):
            pass
    try:
        return await run.run_async(on_result)
    except asyncio.CancelledError:
        if interrupted:
            raise Interrupted(interrupted) from None
        raise
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
