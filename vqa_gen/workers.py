"""Parse + ground + serialise in worker processes, so the event loop only does I/O.

Why: grounding a record's QA costs about a millisecond of CPU. Done on the thread that also
drives 64 connections, it starves the event loop and calls queue behind it (issue 9); done in
one process it caps a run at one core. `WorkerPool` runs `pipeline.grade_reply` in N processes,
each holding its own template and `GroundingFilter` (built once per worker), fed in batches:
replies that arrive in the same turn of the event loop travel together, and the QA come back
already serialised as output lines (`QALine`), so the main process only writes bytes.

Results are awaited per record and committed by the caller in input order, exactly as with
in-process grading, so the output is byte-identical whatever the number of workers.

Workers never outlive the run: they ignore Ctrl-C (the main process handles it and shuts the
pool down), die with the parent on Linux (PR_SET_PDEATHSIG), and otherwise exit within half a
second of noticing that their parent is gone (a SIGKILLed main process).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import multiprocessing
import os
import signal
import sys
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .answers import AnswerFormatError
from .grounding import FilterConfig
from .records import CaptionRecord

BATCH_MAX = 32
"""Replies sent to a worker in one message at most (more wait for the next batch)."""


def default_workers() -> int:
    """One worker per core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


@dataclass(slots=True)
class QALine:
    """A QA pair graded in a worker, already serialised: what the run writer needs of it."""

    line: bytes
    index: int
    passed: bool

    def to_line(self) -> bytes:
        return self.line


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    """What a worker builds its grading context from (picklable: sent to spawned workers)."""

    template_path: Path
    generation: Any  # pipeline.GenerationSettings (a pydantic model)
    filter: FilterConfig
    model: str


# -- in the worker process -----------------------------------------------------------------

_CTX: Any = None
"""The worker's grading context, built once per worker process (see `_context`)."""


def _watch_parent(parent: int) -> None:
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            os._exit(1)


def _die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()


def _init_worker(spec: WorkerSpec, ctx: Any = None) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process handles Ctrl-C
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _die_with_parent()
    global _SPEC, _CTX
    _SPEC, _CTX = spec, ctx


_SPEC: WorkerSpec | None = None


def _context() -> Any:
    """The worker's grading context: inherited from the parent (fork) or built on the first
    batch (spawn)."""
    global _CTX
    if _CTX is None:
        assert _SPEC is not None
        _CTX = _build_context(_SPEC)
    return _CTX


def _build_context(spec: WorkerSpec) -> Any:
    from .pipeline import GenerationContext
    from .templates import load_template

    return GenerationContext.build(load_template(spec.template_path), spec.generation,
                                   client=None, model=spec.model,  # type: ignore[arg-type]
                                   filter_config=spec.filter)


def _warm() -> int:
    return os.getpid()


def grade_batch(batch: list[tuple[CaptionRecord, str]]
                ) -> list[tuple[list[tuple[bytes, int]], list[tuple[bytes, int]]]
                          | tuple[str, str]]:
    """Grade replies in the worker: per reply either (kept, rejected) as (line, index) pairs,
    or (code, reason) of the AnswerFormatError that makes it unusable."""
    from .pipeline import grade_reply

    ctx = _context()
    out: list[Any] = []
    for record, content in batch:
        try:
            kept, rejected = grade_reply(record, content, ctx)
        except AnswerFormatError as err:
            out.append((err.code, err.reason))
            continue
        out.append(([(s.to_line(), s.index) for s in kept],
                    [(s.to_line(), s.index) for s in rejected]))
    return out


# -- in the main process -------------------------------------------------------------------


class WorkerPool:
    """A pool of grading processes with an async, batching `grade` (a `pipeline.ReplyGrader`).

    Start it before the client opens connections (`start()` builds the grading context and
    forks the workers, which inherit it), and `close()` it at the end of the run.
    """

    def __init__(self, spec: WorkerSpec, workers: int, batch_max: int = BATCH_MAX) -> None:
        self.spec = spec
        self.workers = workers
        self.batch_max = batch_max
        self._executor: ProcessPoolExecutor | None = None
        self.context: Any = None
        """The grading context the workers inherited (fork), also usable in this process."""
        self._pending: list[tuple[CaptionRecord, str, asyncio.Future[Any]]] = []
        self._flush_scheduled = False
        self.batches = 0
        self.graded = 0

    def start(self) -> WorkerPool:
        fork = "fork" in multiprocessing.get_all_start_methods()
        # fork: the grading context is built once here and inherited, ready, by every worker
        # (the first replies are graded at once); elsewhere spawn, and each worker builds it
        # from the picklable spec on its first batch
        self.context = _build_context(self.spec) if fork else None
        initargs = (self.spec, self.context)
        mp = multiprocessing.get_context("fork" if fork else "spawn")
        self._executor = ProcessPoolExecutor(self.workers, mp_context=mp,
                                             initializer=_init_worker, initargs=initargs)
        # fork every worker now, before the client opens sockets (they would be inherited).
        # Objects that exist at the fork are frozen out of the workers' garbage collection: a
        # collection that walked them would write to (and so copy) every inherited page
        gc.collect()
        gc.freeze()
        try:
            for _ in range(self.workers):
                self._executor.submit(_warm)
        finally:
            gc.unfreeze()  # this process collects its own objects as before
        return self

    def close(self) -> None:
        """Stop the workers (pending work is dropped: nothing uncommitted is ever written)."""
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> WorkerPool:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def grade(self, record: CaptionRecord, content: str
                    ) -> tuple[list[QALine], list[QALine]]:
        """Grade one reply in a worker; raises AnswerFormatError like `grade_reply`."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        self._pending.append((record, content, fut))
        if len(self._pending) >= self.batch_max:
            self._flush()
        elif not self._flush_scheduled:
            # everything that arrives in this turn of the loop goes in one batch
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        outcome = await fut
        if isinstance(outcome[0], str):
            raise AnswerFormatError(outcome[0], outcome[1])
        kept, rejected = outcome
        return ([QALine(line, i, True) for line, i in kept],
                [QALine(line, i, False) for line, i in rejected])

    def _flush(self) -> None:
        self._flush_scheduled = False
        batch, self._pending = self._pending, []
        if not batch:
            return
        if self._executor is None:
            for *_, fut in batch:
                if not fut.done():
                    fut.set_exception(RuntimeError("the worker pool is closed"))
            return
        self.batches += 1
        self.graded += len(batch)
        done = self._executor.submit(grade_batch, [(r, c) for r, c, _ in batch])
        loop = asyncio.get_running_loop()
        futures = [fut for *_, fut in batch]

        def _back(f: Future[Any]) -> None:
            # the loop may be gone (run interrupted): then nobody is waiting
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_deliver, f, futures)

        done.add_done_callback(_back)


def _deliver(done: Future[Any], futures: list[asyncio.Future[Any]]) -> None:
    if done.cancelled():
        for fut in futures:
            fut.cancel()
        return
    err = done.exception()
    for i, fut in enumerate(futures):
        if fut.done():
            continue
        if err is not None:
            fut.set_exception(err)
        else:
            fut.set_result(done.result()[i])
