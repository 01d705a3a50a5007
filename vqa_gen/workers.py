"""Parse + ground + serialise in worker processes, so the event loop only does I/O.

Why: grounding a record's QA costs about a millisecond of CPU. Done on the thread that also
drives 64 connections, it starves the event loop and calls queue behind it (issue 9); done in
one process it caps a run at one core. `WorkerPool` runs `pipeline.grade_reply` in N forked
processes, each inheriting the template and `GroundingFilter` built once in the main process,
fed in batches: replies that arrive in the same turn of the event loop travel together, and the
QA come back already serialised as output lines (`QALine`), so the main process only writes
bytes.

Each worker talks to the event loop over its own pair of pipes (length-prefixed pickles), read
and written by the loop itself (`add_reader`/`add_writer`): a reply reaches a worker and its
result the loop with one wake-up each way, with no helper thread in between. That hand-off
latency matters at the start of every run: until a worker has warmed up (faulted in the pages
it shares with the main process, run the filter once) and said so, replies are graded in this
process, so a run's first commits come as early as without a pool. Output never depends on
where a reply was graded: results are awaited per record and committed by the caller in input
order, so it is byte-identical whatever the number of workers.

Workers never outlive the run: they ignore Ctrl-C (the main process handles it and closes the
pool), die with the parent on Linux (PR_SET_PDEATHSIG), and otherwise exit within half a second
of noticing that their parent is gone (a SIGKILLed main process). A worker that dies during a
run loses nothing: its unfinished replies are graded in this process.

The pool needs `os.fork` (Linux and other Unixes but macOS, where forking a process that has
loaded system frameworks is unsafe); elsewhere `available()` is False and callers grade in
process.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import logging
import os
import pickle
import signal
import struct
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .answers import AnswerFormatError
from .grounding import FilterConfig
from .records import CaptionRecord

if TYPE_CHECKING:
    from .templates import Template

log = logging.getLogger(__name__)

BATCH_MAX = 32
"""Replies sent to a worker in one message at most (more wait for the next batch)."""
BATCH_MIN = 4
"""Replies per batch at least when a turn brings that many per worker."""
SPREAD = 4
"""Batches per worker that the replies of one event-loop turn are split into (at least one
reply each)."""

_HEADER = struct.Struct(">I")
_READ_CHUNK = 1 << 18

WARM_CAPTION = ("Clinical photograph of a 54-year-old man: well-demarcated erythematous plaques "
                "with silvery scale on the extensor surface of the left elbow, no ulceration.")
WARM_PAIRS = [("Where are the plaques?", "On the extensor surface of the left elbow."),
              ("What covers the plaques?", "Silvery scale, with a fungal infection underneath.")]


def default_workers() -> int:
    """One worker per core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def available() -> bool:
    """Whether this platform can run a pool (it forks the main process; see the module doc)."""
    return hasattr(os, "fork") and sys.platform != "darwin"


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
    """What the grading context is built from (in the main process: workers inherit it)."""

    template: Template
    generation: Any  # pipeline.GenerationSettings (a pydantic model)
    filter: FilterConfig
    model: str


def build_context(spec: WorkerSpec) -> dict[str, Any]:
    """What `grade_reply` needs besides the reply: no client, no generation context."""
    from .grounding import GroundingFilter

    return {"template": spec.template, "grounding": GroundingFilter(spec.filter),
            "model": spec.model, "seed": spec.generation.seed}


Outcome = tuple[list[Any], list[Any]] | tuple[str, str]
"""A graded reply as it travels back: (kept, rejected), as (line, index) pairs or as
`QASample`s, or the (code, reason) of the AnswerFormatError that makes it unusable."""


def grade_batch(ctx: dict[str, Any], batch: list[tuple[CaptionRecord, str]], lines: bool = True
                ) -> list[Outcome]:
    """Grade replies (in a worker): one `Outcome` per reply, in order; `lines`: the QA as
    output lines (what the run writer needs), else as `QASample`s (the `Generator` API)."""
    from .pipeline import grade_reply

    out: list[Outcome] = []
    for record, content in batch:
        try:
            kept, rejected = grade_reply(record, content, **ctx)
        except AnswerFormatError as err:
            out.append((err.code, err.reason))
            continue
        if lines:
            out.append(([(s.to_line(), s.index) for s in kept],
                        [(s.to_line(), s.index) for s in rejected]))
        else:
            out.append((kept, rejected))
    return out


# -- in the worker process -----------------------------------------------------------------


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


def _read_exact(fd: int, n: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        chunk = os.read(fd, n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _send(fd: int, message: object) -> None:
    payload = pickle.dumps(message, pickle.HIGHEST_PROTOCOL)
    _write_all(fd, _HEADER.pack(len(payload)) + payload)


def warm_up(ctx: dict[str, Any]) -> None:
    """Touch what grading touches (the filter's tables, its code paths), so that the first real
    batch is as fast as any other: the pages shared with the parent are copied here, not then."""
    with contextlib.suppress(Exception):
        ctx["grounding"].check_record(WARM_CAPTION, WARM_PAIRS)
    with contextlib.suppress(Exception):
        ctx["template"].parse('{"qa": []}')


def _worker_main(rfd: int, wfd: int, ctx: dict[str, Any], lines: bool,
                 warm: Callable[[dict[str, Any]], None]) -> None:
    with contextlib.suppress(ValueError, OSError):
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process handles Ctrl-C
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.set_wakeup_fd(-1)  # the parent's event loop's, not ours
    _die_with_parent()
    warm(ctx)
    _send(wfd, ("ready", os.getpid()))
    while True:
        header = _read_exact(rfd, _HEADER.size)
        if header is None:  # the pool closed our pipe: the run is over
            return
        payload = _read_exact(rfd, _HEADER.unpack(header)[0])
        if payload is None:
            return
        try:
            message: tuple[str, object] = ("done", grade_batch(ctx, pickle.loads(payload), lines))
        except Exception as err:  # a bug in grading: the main process raises it for the records
            try:
                pickle.dumps(err)
                message = ("error", err)
            except Exception:
                message = ("error", RuntimeError(f"{type(err).__name__}: {err}"))
        _send(wfd, message)


# -- in the main process -------------------------------------------------------------------

_Job = tuple[CaptionRecord, str, "asyncio.Future[Any]"]


class _Worker:
    """One worker process as the main process sees it: its pipes and the batches it holds."""

    def __init__(self, pid: int, to_worker: int, from_worker: int) -> None:
        self.pid = pid
        self.to_worker = to_worker
        self.from_worker = from_worker
        self.ready = False
        self.alive = True
        self.in_flight: deque[list[_Job]] = deque()
        """Batches sent and not yet answered, oldest first (a worker answers in order)."""
        self.load = 0
        """Replies in those batches."""
        self.inbox = bytearray()
        self.outbox = bytearray()
        self.writing = False


class WorkerPool:
    """A pool of grading processes with an async, batching `grade` (a `pipeline.ReplyGrader`).

    `start()` builds the grading context and forks the workers, which inherit it: call it
    before the client opens connections (children would inherit the sockets too). `close()` it
    at the end of the run. `grade` must always be awaited from the same event loop.
    `lines`: workers return each QA as its output line (`QALine`, all the run writer needs,
    and the cheapest to send), else as a whole `QASample`. `warm_up`: what a worker runs on
    its grading context before it takes replies.
    """

    def __init__(self, spec: WorkerSpec, workers: int, batch_max: int = BATCH_MAX,
                 lines: bool = True,
                 warm_up: Callable[[dict[str, Any]], None] = warm_up) -> None:
        self.spec = spec
        self.workers = workers
        self.batch_max = batch_max
        self.lines = lines
        self.warm_up = warm_up
        self.context: Any = None
        """The grading context the workers inherited, also used in this process (the replies
        graded before a worker is ready, the template's caption analysis)."""
        self._workers: list[_Worker] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: list[_Job] = []
        self._flush_scheduled = False
        self.closed = False
        self.batches = 0
        self.graded = 0
        """Replies graded by the workers."""
        self.graded_here = 0
        """Replies graded in this process (before any worker was ready, or a worker died)."""

    def start(self) -> WorkerPool:
        self.context = build_context(self.spec)
        # tables the filter loads on first use (word frequencies: ~0.1 s) are loaded once,
        # here, and inherited by every worker, rather than once per worker after the fork
        # (and again here for the replies graded before a worker is ready)
        warm_up(self.context)
        # objects that exist at the fork are frozen out of the workers' garbage collection: a
        # collection that walked them would write to (and so copy) every inherited page. (No
        # gc.collect() first: it takes ~45 ms of start-up and finds a few dozen objects.)
        gc.freeze()
        try:
            for _ in range(self.workers):
                self._workers.append(self._fork())
        finally:
            gc.unfreeze()  # this process collects its own objects as before
        return self

    def _fork(self) -> _Worker:
        down_r, down_w = os.pipe()  # requests: main -> worker
        up_r, up_w = os.pipe()  # results: worker -> main
        pid = os.fork()
        if pid == 0:  # the worker
            code = 0
            try:
                # only its own pipe ends: a sibling's would keep that sibling's pipe open
                for w in self._workers:
                    os.close(w.to_worker)
                    os.close(w.from_worker)
                os.close(down_w)
                os.close(up_r)
                _worker_main(down_r, up_w, self.context, self.lines, self.warm_up)
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        os.close(down_r)
        os.close(up_w)
        os.set_blocking(down_w, False)
        os.set_blocking(up_r, False)
        return _Worker(pid, down_w, up_r)

    def close(self) -> None:
        """Stop the workers (pending work is dropped: nothing uncommitted is ever written)."""
        if self.closed:
            return
        self.closed = True
        for w in self._workers:
            self._detach(w)
            with contextlib.suppress(OSError):
                os.close(w.to_worker)  # end of input: the worker exits
            with contextlib.suppress(OSError):
                os.close(w.from_worker)
            w.alive = False
            for batch in w.in_flight:
                _cancel(batch)
            w.in_flight.clear()
        _cancel(self._pending)
        self._pending = []
        deadline = time.monotonic() + 5
        for w in self._workers:
            while True:
                try:
                    done, _ = os.waitpid(w.pid, os.WNOHANG)
                except ChildProcessError:
                    break
                if done:
                    break
                if time.monotonic() > deadline:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(w.pid, signal.SIGKILL)
                    with contextlib.suppress(ChildProcessError):
                        os.waitpid(w.pid, 0)
                    break
                time.sleep(0.002)

    def __enter__(self) -> WorkerPool:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- grading ------------------------------------------------------------------------------
    async def grade(self, record: CaptionRecord, content: str) -> tuple[list[Any], list[Any]]:
        """Grade one reply in a worker (or here, while none is ready); raises
        AnswerFormatError like `grade_reply`."""
        if self.closed:
            raise RuntimeError("the worker pool is closed")
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._attach(loop)
        if not any(w.ready for w in self._workers):
            self._poll()  # a worker may have said it is ready since the last turn
            if not any(w.ready for w in self._workers):
                return self._grade_here(record, content)
        fut: asyncio.Future[Any] = loop.create_future()
        self._pending.append((record, content, fut))
        if len(self._pending) >= self.batch_max * len(self._workers):
            self._flush()
        elif not self._flush_scheduled:
            # everything that arrives in this turn of the loop goes out together
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        outcome = await fut
        if isinstance(outcome, _Local):  # graded here after a worker died
            return outcome.kept, outcome.rejected
        if isinstance(outcome[0], str):
            raise AnswerFormatError(outcome[0], outcome[1])
        kept, rejected = outcome
        if not self.lines:
            return kept, rejected
        return ([QALine(line, i, True) for line, i in kept],
                [QALine(line, i, False) for line, i in rejected])

    def _grade_here(self, record: CaptionRecord, content: str) -> tuple[list[Any], list[Any]]:
        from .pipeline import grade_reply

        self.graded_here += 1
        return grade_reply(record, content, **self.context)

    @property
    def pids(self) -> list[int]:
        return [w.pid for w in self._workers]

    def ready(self) -> int:
        """How many workers have warmed up and take replies (until then: graded here)."""
        if not self.closed:
            self._poll()
        return sum(w.ready for w in self._workers if w.alive)

    def _attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        for w in self._workers:
            if w.alive:
                loop.add_reader(w.from_worker, self._on_readable, w)

    def _detach(self, w: _Worker) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(w.from_worker)
            if w.writing:
                self._loop.remove_writer(w.to_worker)
        w.writing = False

    def _poll(self) -> None:
        for w in self._workers:
            if w.alive and not w.ready:
                self._on_readable(w)

    def _flush(self) -> None:
        self._flush_scheduled = False
        jobs, self._pending = self._pending, []
        ready = [w for w in self._workers if w.alive and w.ready]
        if not ready:  # every worker died: grade here
            self._regrade_here(jobs)
            return
        # spread the turn's replies over the workers, the least busy first, in a few batches
        # each: the first results come back (and their records commit, and new calls start)
        # while the workers grade the rest, instead of everything waiting for one big batch
        # (but not below a few replies per batch: each message costs a wake-up on both sides)
        per = -(-len(jobs) // (len(ready) * SPREAD))
        per = max(per, min(BATCH_MIN, -(-len(jobs) // len(ready))))
        per = max(1, min(self.batch_max, per))
        for start in range(0, len(jobs), per):
            worker = min(ready, key=lambda w: w.load)
            self._send(worker, jobs[start:start + per])

    def _send(self, w: _Worker, batch: list[_Job]) -> None:
        payload = pickle.dumps([(r, c) for r, c, _ in batch], pickle.HIGHEST_PROTOCOL)
        w.in_flight.append(batch)
        w.load += len(batch)
        self.batches += 1
        w.outbox += _HEADER.pack(len(payload))
        w.outbox += payload
        self._write(w)

    def _write(self, w: _Worker) -> None:
        try:
            while w.outbox:
                n = os.write(w.to_worker, w.outbox)
                del w.outbox[:n]
        except BlockingIOError:
            pass
        except OSError as err:  # EPIPE: the worker is gone (its reader sees that too)
            if err.errno != errno.EPIPE:
                raise
            w.outbox.clear()
        want = bool(w.outbox)
        if want != w.writing and self._loop is not None:
            if want:
                self._loop.add_writer(w.to_worker, self._write, w)
            else:
                self._loop.remove_writer(w.to_worker)
            w.writing = want

    def _on_readable(self, w: _Worker) -> None:
        eof = False
        try:
            while True:
                chunk = os.read(w.from_worker, _READ_CHUNK)
                if not chunk:
                    eof = True
                    break
                w.inbox += chunk
                if len(chunk) < _READ_CHUNK:
                    break
        except BlockingIOError:
            pass
        inbox = w.inbox
        pos = 0
        while len(inbox) - pos >= _HEADER.size:
            size = _HEADER.unpack_from(inbox, pos)[0]
            end = pos + _HEADER.size + size
            if len(inbox) < end:
                break
            self._on_message(w, pickle.loads(inbox[pos + _HEADER.size:end]))
            pos = end
        del inbox[:pos]
        if eof:
            self._on_exit(w)

    def _on_message(self, w: _Worker, message: tuple[str, Any]) -> None:
        kind, body = message
        if kind == "ready":
            w.ready = True
            return
        batch = w.in_flight.popleft()
        w.load -= len(batch)
        self.graded += len(batch)
        for i, (*_, fut) in enumerate(batch):
            if fut.done():
                continue
            if kind == "error":
                fut.set_exception(body)
            else:
                fut.set_result(body[i])

    def _on_exit(self, w: _Worker) -> None:
        """The worker's pipe closed: it died (the pool is not closing). What it held is graded
        here; the other workers (or this process) take the next replies."""
        self._detach(w)
        w.alive = False
        with contextlib.suppress(OSError):
            os.close(w.to_worker)
        with contextlib.suppress(OSError):
            os.close(w.from_worker)
        status = None
        with contextlib.suppress(ChildProcessError):
            _, status = os.waitpid(w.pid, 0)
        log.warning("grading worker %d exited unexpectedly (%s); its %d replies are graded in "
                    "the main process", w.pid, _describe_status(status), w.load)
        jobs = [job for batch in w.in_flight for job in batch]
        w.in_flight.clear()
        w.load = 0
        self._regrade_here(jobs)

    def _regrade_here(self, jobs: list[_Job]) -> None:
        for record, content, fut in jobs:
            if fut.done():
                continue
            try:
                fut.set_result(_Local(*self._grade_here(record, content)))
            except Exception as err:  # AnswerFormatError above all: the caller re-asks
                fut.set_exception(err)


@dataclass(slots=True)
class _Local:
    """A reply graded in this process in place of a worker."""

    kept: list[Any]
    rejected: list[Any]


def _cancel(jobs: list[_Job]) -> None:
    for *_, fut in jobs:
        if not fut.done():
            fut.cancel()


def _describe_status(status: int | None) -> str:
    if status is None:
        return "status unknown"
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)}"
    return f"exit code {os.waitstatus_to_exitcode(status)}"
