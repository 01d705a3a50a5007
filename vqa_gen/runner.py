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
import os
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
from .grounding import FilterConfig
from .llm import ChatClient, ClientConfig, resolve_client_config
from .ordered import ordered_map
from .output import MANIFEST, STATE_DIR, STATE_FILE, RunWriter, atomic_write_json
from .pipeline import (
    Failure,
    GenerationContext,
    GenerationSettings,
    RecordResult,
    process_record,
)
from .records import DEFAULT_MAX_CAPTION_CHARS, FieldMap, read_records
from .templates import load_template
from .workers import WorkerPool, WorkerSpec, default_workers


class RunError(RuntimeError):
    """The run itself cannot proceed (bad flags, unusable output folder, endpoint down for
    good). The message is meant for the user, one line."""


class EndpointDownError(RunError):
    """The circuit breaker tripped: the endpoint failed every call of several records in a row
    (after their retries). Everything committed so far is kept and the folder is resumable; the
    CLI exits with code 3."""


ENDPOINT_DOWN_KINDS = frozenset({"connection", "timeout", "server_error", "rate_limit", "auth",
                                 "not_found"})
"""Failure kinds that say nothing about the record and everything about the endpoint."""
DEFAULT_MAX_CONSECUTIVE_FAILURES = 10
DEFAULT_MODEL = "gpt-4o-mini"
"""The model asked for on the OpenAI API when only a key is given."""


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
        elif result.calls > 0:
            # the endpoint answered; records that made no call (invalid, skipped, served from
            # the cache) say nothing about it either way
            self.consecutive = 0
        return 0 < self.threshold <= self.consecutive


@dataclass(slots=True)
class EndpointSettings:
    """Where completions come from. With no base URL, no OPENAI_BASE_URL and no model, or with
    `model_path`, the embedded llama.cpp server is used."""

    base_url: str | None = None
    api_key: str | None = None
    model: str | None = None
    model_path: str | None = None
    timeout: float = 120.0
    max_retries: int = 6
    concurrency: int = 8
    embedded_parallel: int | None = None

    def use_embedded(self) -> bool:
        if self.model_path:
            return True
        return not (self.base_url or os.environ.get("OPENAI_BASE_URL") or self.model)

    def connect(self) -> tuple[ClientConfig, EmbeddedServer | None]:
        """The client settings for this endpoint. When that is the embedded model, its server
        is started here and returned for the caller to stop."""
        if not self.use_embedded():
            return resolve_client_config(
                base_url=self.base_url, api_key=self.api_key, model=self.model or DEFAULT_MODEL,
                timeout=self.timeout, max_retries=self.max_retries,
                concurrency=self.concurrency), None
        server = EmbeddedServer(self.model_path,
                                parallel=self.embedded_parallel or min(self.concurrency, 4))
        try:
            base_url = server.start()
        except BaseException:
            server.stop()
            raise
        return ClientConfig(base_url=base_url, model=server.model_name, api_key=None,
                            timeout=self.timeout, max_retries=self.max_retries,
                            concurrency=self.concurrency), server


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
    """Processes that parse, ground and serialise replies (None: one per core; 1: in this
    process, no pool). Output is byte-identical whatever the number."""
    max_consecutive_failures: int = DEFAULT_MAX_CONSECUTIVE_FAILURES
    """Circuit breaker: stop the run when this many records in a row fail with connection,
    timeout, 5xx, rate-limit, auth or not-found errors after their retries (0: never)."""


ProgressCallback = Callable[[RecordResult, RunWriter], None]


def input_identity(path: Path) -> dict[str, Any]:
    """Enough to notice that the input changed under a resumable run, without reading it all."""
    stat = path.stat()
    with path.open("rb") as fh:
        head = hashlib.sha256(fh.read(1 << 16)).hexdigest()[:16]
    return {"path": str(path.resolve()), "size": stat.st_size, "head_sha256": head}


def settings_fingerprint(settings: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(settings, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Run:
    """One execution of a job over an output folder (fresh, resumed or already complete)."""

    def __init__(self, options: RunOptions) -> None:
        self.options = options
        self.template = load_template(options.template)
        if not options.input.is_file():
            raise RunError(f"input file not found: {options.input}")
        self.writer = RunWriter(options.out_dir, options.shard_size)
        self.started_at = utc_now()
        self.status = "running"
        self.resumed = False
        self.endpoint_info: dict[str, Any] = {}
        self.model = options.endpoint.model or ""
        self.client_calls = 0
        self.client_retries = 0
        self.error: str | None = None
        self.pool: WorkerPool | None = None
        self.last_pool_graded = 0
        """Replies the worker pool graded in the last run (0: graded in this process)."""

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
        }

    def _prepare_out_dir(self) -> None:
        o = self.options
        state_path = o.out_dir / STATE_DIR / STATE_FILE
        snapshot = self.settings_snapshot()
        fingerprint = settings_fingerprint(snapshot)
        if state_path.exists() and not o.overwrite:
            previous = orjson.loads(state_path.read_bytes())
            if previous.get("fingerprint") != fingerprint:
                changed = sorted(k for k in snapshot if previous.get("settings", {}).get(k)
                                 != orjson.loads(orjson.dumps(snapshot[k])))
                raise RunError(
                    f"{o.out_dir} holds a run made with different settings "
                    f"({', '.join(changed) or 'unknown'} changed); use another --out or pass "
                    "--overwrite to start again")
            self.writer.start_resume(retry_failed=o.retry_failed)
            self.resumed = True
            return
        if o.out_dir.exists() and any(o.out_dir.iterdir()):
            if not o.overwrite:
                raise RunError(f"{o.out_dir} is not empty and holds no vqa-gen run; choose an "
                               "empty folder or pass --overwrite")
            self._clear_out_dir()
        o.out_dir.mkdir(parents=True, exist_ok=True)
        (o.out_dir / STATE_DIR).mkdir(exist_ok=True)
        atomic_write_json(state_path, {"fingerprint": fingerprint, "settings": snapshot,
                                       "created_at": self.started_at})
        self.writer.start_fresh()

    def _clear_out_dir(self) -> None:
        out = self.options.out_dir
        # the run's identity goes first: a kill while clearing must not leave a folder that
        # looks resumable but still holds shards of the old run
        (out / STATE_DIR / STATE_FILE).unlink(missing_ok=True)
        for p in out.iterdir():
            if p.name == STATE_DIR:
                for q in p.iterdir():
                    if q.is_file():
                        q.unlink()
            elif p.is_file() and (p.suffix in {".jsonl", ".json", ".partial", ".html"}):
                p.unlink()

    # -- manifest ----------------------------------------------------------------------------
    def manifest(self) -> dict[str, Any]:
        o = self.options
        counts = self.writer.counts
        return {
            "vqa_gen_version": __version__,
            "status": self.status,
            "counts": counts.to_dict(),
            "input": str(o.input),
            "template": self.template.describe(),
            "model": self.model,
            "endpoint": self.endpoint_info,
            "generation": o.generation.model_dump(),
            "filter": o.filter.model_dump(),
            "shard_size": o.shard_size,
            "limit": o.limit,
            "usage": dict(self.writer.usage),
            "outputs": self.writer.outputs(),
            "resumed": self.resumed,
            "error": self.error,
            "started_at": self.started_at,
            "ended_at": utc_now() if self.status != "running" else None,
        }

    def write_manifest(self) -> None:
        atomic_write_json(self.options.out_dir / MANIFEST, self.manifest())

    # -- running -----------------------------------------------------------------------------
    def worker_count(self) -> int:
        """Grading processes for this run: 1 (in-process) when asked, or with the LLM judge
        (it needs the verdicts in this process)."""
        o = self.options
        n = o.workers if o.workers is not None else default_workers()
        return 1 if o.filter.judge else max(1, n)

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
            spec = WorkerSpec(self.template.path, self.options.generation, self.options.filter,
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
            async with ChatClient(client_config) as client:
                shared = self.pool.context if self.pool is not None else None
                ctx = GenerationContext.build(self.template, o.generation, client, self.model,
                                              o.filter, cache=cache,
                                              grounding=shared.grounding if shared else None)
                ctx.grader = self.pool
                retry_ctx = dataclasses.replace(ctx, refresh_cache=True)
                retry_lines = self.writer.retry_lines
                items = read_records(o.input, fields=o.fields,
                                     max_caption_chars=o.max_caption_chars)
                skip = self.writer.committed_lines
                done_before = self.writer.counts.records_read

                def todo():
                    budget = None if o.limit is None else o.limit - done_before
                    for item in items:
                        if budget is not None and budget <= 0:
                            return
                        if item.line in skip:
                            continue
                        if budget is not None:
                            budget -= 1
                        yield item

                async def work(item):
                    # a retried record must not be served the cached replies that failed
                    return await process_record(item,
                                                retry_ctx if item.line in retry_lines else ctx)

                last_manifest = time.monotonic()
                # the client bounds calls in flight; with a pool, records served from the cache
                # or waiting for a worker must not hold a call's slot (the workers would idle)
                in_flight = client_config.concurrency + (
                    self.pool.workers * self.pool.batch_max if self.pool is not None else 0)
                results = ordered_map(work, todo(), concurrency=in_flight)
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
                self.client_calls = client.calls
                self.client_retries = client.retries
        finally:
            if cache is not None:
                cache.close()

    async def run_async(self, on_result: ProgressCallback | None = None) -> dict[str, Any]:
        """Run to completion (or interruption); returns the manifest."""
        o = self.options
        was_complete = self._was_complete()
        self._prepare_out_dir()
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
            raise
        except BaseException as err:
            self.status = "failed"
            self.error = str(err).splitlines()[0][:500] if str(err) else type(err).__name__
            self.writer.close()
            raise
        finally:
            if self.pool is not None:
                self.pool.close()
                self.last_pool_graded = self.pool.graded
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
    interrupted = False

    def _stop() -> None:
        nonlocal interrupted
        interrupted = True
        if task is not None:
            task.cancel()

    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, _stop)
            installed.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):
            pass
    try:
        return await run.run_async(on_result)
    except asyncio.CancelledError:
        if interrupted:
            raise KeyboardInterrupt from None
        raise
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
