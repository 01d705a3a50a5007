"""Writing a run's output folder: rotating JSONL shards, side files, a progress log, a manifest.

Layout of `--out DIR`::

    data-00000.jsonl …       kept QA, rotated every `shard_size` lines
    rejected-00000.jsonl …   rejected QA with their grounding reasons
    invalid.jsonl            input lines that are not valid records (file, line, why)
    failed.jsonl             records whose generation failed (with the error)
    manifest.json            counts, settings, template, model, usage, times
    .vqa-gen/progress.jsonl  one line per input line once all of its output is written
    .vqa-gen/responses.jsonl the raw model replies per record (for refiltering without calls)
    .vqa-gen/lock            flock-ed by the run that owns the folder (pid, host, start time)
    .vqa-gen/calls           one byte per HTTP call sent (llm_calls survives kills and retries)
    .vqa-gen/replay.jsonl    during --retry-failed: done records to commit again in input order

Files being written carry a `.partial` suffix and are renamed only when complete, so a crash never
leaves a half-written shard under a final name. Each progress line records where the data and
rejected shards stood (shard, lines, running SHA-256), so a resume checks the shards before it
trusts them and cuts everything back to what is provably committed. Results are committed in
input order; a record counts as done only once its progress line is written after its output
lines, which is what lets a later run resume exactly where this one stopped.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import socket
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson

from .errors import RunFolderError
from .records import iter_rows

PARTIAL = ".partial"
STAGED = ".staged"
"""Suffix of a hidden shard written by refilter, published only once the whole set is."""
STATE_DIR = ".vqa-gen"
PROGRESS_FILE = "progress.jsonl"
RESPONSES_FILE = "responses.jsonl"
"""The raw model replies of every done or failed record, so parsing and filtering can be redone
later (`vqa-gen refilter`) without a single call."""
MANIFEST = "manifest.json"
STATE_FILE = "state.json"
"""The run's identity under STATE_DIR: the settings snapshot and its fingerprint."""
REPLAY_FILE = "replay.jsonl"
"""Under STATE_DIR, during a `--retry-failed` run: the records after the first failed one, with
their stored replies, so they are committed again in input order without a single call."""
LOCK_FILE = "lock"
"""Under STATE_DIR: flock-ed by the run that owns the folder; holds its pid, host and start."""
CALLS_FILE = "calls"
"""Under STATE_DIR: one byte per HTTP call sent, appended before the call ("." for a first
attempt, "r" for an HTTP retry), so `llm_calls` and `http_retries` count the calls of every run
on the folder, also those whose record was never committed (a kill, a `--retry-failed`)."""
DEFAULT_FSYNC_INTERVAL = 1.0
"""Seconds between fsyncs of the output files and the progress log (0: at every commit).
See benchmarks/bench_reliability.py `--only fsync` for the cost per commit."""


class OutputError(RunFolderError, RuntimeError):
    """The output folder cannot be used as it is (held by another run, or damaged in a way
    that cannot be repaired from what is provably committed). One line, names the file."""


@contextlib.contextmanager
def naming(path: Path) -> Iterator[None]:
    """Give an OSError raised while writing `path` the path (`No space left on device` alone
    does not say where)."""
    try:
        yield
    except OSError as err:
        if err.filename is None:
            raise OSError(err.errno, err.strerror or str(err), str(path)) from None
        raise


class FolderLock:
    """One folder, one writer: an exclusive `flock` on `.vqa-gen/lock`, held for the whole run.

    The kernel drops the lock when the process dies however it dies, so a lock left by a
    killed run is never in the way; the file's leftover content (pid, host, start time) is
    how the next run notices and reports that it took over from a run that did not finish."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.path = out_dir / STATE_DIR / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> str | None:
        """Take the lock or raise OutputError naming the holder. Returns a note when the lock
        of a run that ended without releasing it was taken over."""
        with naming(self.path):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe_holder(_read_fd(fd))
            os.close(fd)
            raise OutputError(f"{self.out_dir} is in use by another vqa-gen run ({holder}); "
                              "wait for it to finish or choose another --out") from None
        except OSError as err:  # a file system without locks (some network mounts)
            os.close(fd)
            return (f"{self.path}: cannot lock ({err.strerror or err}); nothing stops a second "
                    "run on this folder, so start only one")
        previous = _read_fd(fd)
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        self._fd = fd
        if previous:
            return (f"{self.out_dir}: took over the lock of an earlier run that ended without "
                    f"releasing it ({_describe_holder(previous)}, no longer running)")
        return None

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)  # an empty lock file: the last run ended cleanly
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def _read_fd(fd: int) -> dict[str, Any]:
    try:
        data = os.pread(fd, 4096, 0)
        info = json.loads(data) if data.strip() else {}
        return info if isinstance(info, dict) else {}
    except (OSError, ValueError):
        return {"pid": "?"}


def _describe_holder(info: dict[str, Any]) -> str:
    if not info:
        return "holder unknown"
    return (f"pid {info.get('pid', '?')} on {info.get('host', '?')}, started "
            f"{info.get('started', '?')}")


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
    two shards, so every sealed shard holds only whole, committed records.

    `staged=True` (refilter) writes every shard under a hidden name and gives them their final
    names only in `publish()`, so the folder's old shards stay whole until the new set is."""

    def __init__(self, out_dir: Path, prefix: str, shard_size: int, *,
                 staged: bool = False) -> None:
        self.out_dir = out_dir
        self.prefix = prefix
        self.shard_size = max(1, shard_size)
        self.index = 0
        self.lines_in_shard = 0
        self.sealed: list[str] = []
        self.staged = staged
        self._staged_paths: list[Path] = []
        self._fh: IO[bytes] | None = None
        self._hash = hashlib.sha256()
        """Running hash of the open shard's lines: each progress entry records (shard, lines,
        hash), which is what lets a resume verify the shards before trusting them."""

    def position(self) -> list[Any]:
        """[shard index, lines in it, running hash] after the last write."""
        return [self.index, self.lines_in_shard, self._hash.hexdigest()[:16]]

    def _partial_path(self, index: int) -> Path:
        if self.staged:
            return self.out_dir / f".{shard_name(self.prefix, index)}{STAGED}"
        return self.out_dir / (shard_name(self.prefix, index) + PARTIAL)

    def _open(self) -> IO[bytes]:
        if self._fh is None:
            # a staged shard starts empty (a stale one from a crashed refilter is overwritten);
            # a partial one is appended to (a resume continues it)
            self._fh = self._partial_path(self.index).open("wb" if self.staged else "ab")
        return self._fh

    def write_group(self, lines: list[bytes]) -> None:
        if not lines:
            return
        if self.lines_in_shard and self.lines_in_shard + len(lines) > self.shard_size:
            self.seal()
            self.index += 1
        with naming(self._partial_path(self.index)):
            self._open().writelines(lines)
        for line in lines:
            self._hash.update(line)
        self.lines_in_shard += len(lines)

    def flush(self) -> None:
        if self._fh is not None:
            with naming(self._partial_path(self.index)):
                self._fh.flush()

    def sync(self) -> None:
        if self._fh is not None:
            with naming(self._partial_path(self.index)):
                self._fh.flush()
                os.fsync(self._fh.fileno())

    def seal(self) -> None:
        """Close the open shard and give it its final name."""
        if self._fh is None and not self._partial_path(self.index).exists():
            return
        if self._fh is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
            self._fh = None
        self.lines_in_shard = 0
        self._hash = hashlib.sha256()
        if self.staged:
            self._staged_paths.append(self._partial_path(self.index))
            return
        final = self.out_dir / shard_name(self.prefix, self.index)
        os.replace(self._partial_path(self.index), final)
        self.sealed.append(final.name)

    def publish(self) -> list[str]:
        """Staged shards: seal the open one, give every one its final name and delete the
        shards of this prefix that the new set does not have. Returns the final names."""
        self.seal()
        names = []
        for index, staged in enumerate(self._staged_paths):
            final = self.out_dir / shard_name(self.prefix, index)
            os.replace(staged, final)
            names.append(final.name)
        for stale in self.out_dir.glob(f"{self.prefix}-*.jsonl"):
            if stale.name not in names:
                stale.unlink()
        self.sealed, self._staged_paths = names, []
        return names

    def close(self) -> None:
        if self._fh is not None:
            fh, self._fh = self._fh, None
            fh.close()  # flushes; the file is closed even if that fails

    def resume(self, index: int, lines_in_shard: int, sealed: Iterable[str],
               running_hash: Any = None) -> None:
        self.index = index
        self.lines_in_shard = lines_in_shard
        self.sealed = list(sealed)
        self._hash = running_hash if running_hash is not None else hashlib.sha256()


class SideFile:
    """An append-only JSONL side file (invalid.jsonl, failed.jsonl), `.partial` until sealed."""

    def __init__(self, out_dir: Path, name: str) -> None:
        self.final = out_dir / name
        self.partial = out_dir / (name + PARTIAL)
        self._fh: IO[bytes] | None = None
        self.lines = 0

    def write(self, obj: Any) -> None:
        with naming(self.partial):
            if self._fh is None:
                self._fh = self.partial.open("ab")
            self._fh.write(dumps_line(obj))
        self.lines += 1

    def flush(self) -> None:
        if self._fh is not None:
            with naming(self.partial):
                self._fh.flush()

    def sync(self) -> None:
        if self._fh is not None:
            with naming(self.partial):
                self._fh.flush()
                os.fsync(self._fh.fileno())

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
            fh, self._fh = self._fh, None
            fh.close()  # flushes; the file is closed even if that fails


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
    retries: int = 0
    """HTTP attempts repeated after a 429, 5xx, timeout or dropped connection; part of
    llm_calls."""

    def to_dict(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in self.__slots__}

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
        self.retries += e.get("retries", 0)
        self.cache_hits += e.get("cache_hits", 0)
        self.cache_misses += e.get("cache_misses", 0)

    def check(self) -> None:
        """Raise if the accounting does not add up (a bug, never a user error)."""
        if self.records_read != self.records_invalid + self.records_failed + self.records_done:
            raise AssertionError(f"record counts do not add up: {self.to_dict()}")
        if self.qa_generated != self.qa_kept + self.qa_rejected:
            raise AssertionError(f"QA counts do not add up: {self.to_dict()}")


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """The objects of a JSONL file of a run folder (blank lines skipped; nothing if the file does
    not exist), read with the input's line-capped reader; a damaged line is a one-line
    `RunFolderError` naming the file and line."""
    if not path.exists():
        return
    for line, obj, error in iter_rows(path, "jsonl"):
        if error is None and not isinstance(obj, dict):
            error = f"expected a JSON object, got {type(obj).__name__}"
        if error is not None:
            raise RunFolderError(f"{path}:{line}: {error}")
        yield obj


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


_STATUSES = frozenset({"done", "failed", "invalid"})


def _shards_ok(shards: Any) -> bool:
    """A progress entry's shard positions: two [index, lines, hash] (or absent: older logs)."""
    return shards == () or (
        isinstance(shards, list) and len(shards) == 2 and all(
            isinstance(p, list) and len(p) == 3 and isinstance(p[0], int)
            and isinstance(p[1], int) and p[0] >= 0 and p[1] >= 0 and isinstance(p[2], str)
            for p in shards))


def read_progress(path: Path) -> tuple[list[dict[str, Any]], int | None]:
    """The entries of a progress log up to its first unusable line, and that line's number if
    whole lines follow it (a damaged line in the middle, not just a torn end from a kill)."""
    entries: list[dict[str, Any]] = []
    if not path.exists():
        return entries, None
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            e: Any = None
            if raw.endswith(b"\n"):
                with contextlib.suppress(orjson.JSONDecodeError):
                    e = orjson.loads(raw)
            if not (isinstance(e, dict) and isinstance(e.get("line"), int)
                    and e.get("status") in _STATUSES and _shards_ok(e.get("shards", ()))):
                rest = fh.read(1 << 16)
                return entries, (lineno if rest.strip() else None)
            entries.append(e)
    return entries, None


_SHARD_PREFIXES = ("data", "rejected")


@dataclass(slots=True)
class _ShardCheck:
    """What a resume found in one shard file: how many of the progress log's claims on it hold
    (`good` entries, counted from the start of the log)."""

    path: Path | None
    sealed: bool
    good: int


def _shard_files(out_dir: Path, prefix: str) -> dict[int, tuple[Path, bool]]:
    """index -> (path, sealed) of the shards on disk (a sealed name wins over a partial one)."""
    found: dict[int, tuple[Path, bool]] = {}
    for p in out_dir.glob(f"{prefix}-*.jsonl{PARTIAL}"):
        with contextlib.suppress(ValueError):
            found[int(p.name[len(prefix) + 1:].split(".")[0])] = (p, False)
    for p in out_dir.glob(f"{prefix}-*.jsonl"):
        with contextlib.suppress(ValueError):
            index = int(p.name[len(prefix) + 1:].split(".")[0])
            if index in found:
                found[index][0].unlink()  # a stale partial under a sealed shard
            found[index] = (p, True)
    return found


def _hash_lines(path: Path, claims: list[tuple[int, str, int]]) -> int:
    """Check `claims` (lines, running hash, entry number; in log order) against the file;
    the entry number of the first claim that does not hold, or -1."""
    h = hashlib.sha256()
    n = i = 0
    with path.open("rb") as fh:
        while i < len(claims):
            while i < len(claims) and claims[i][0] == n:
                if claims[i][1] != h.hexdigest()[:16]:
                    return claims[i][2]
                i += 1
            if i == len(claims):
                break
            raw = fh.readline()
            if not raw.endswith(b"\n"):
                return claims[i][2]  # the file ends before the claim
            h.update(raw)
            n += 1
    return -1


def _truncate_lines(path: Path, n: int) -> tuple[bool, Any]:
    """Cut a file after its first `n` lines: (whether anything was cut, running hash of the
    lines kept)."""
    h = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        for _ in range(n):
            raw = fh.readline()
            if not raw:
                break
            h.update(raw)
            size += len(raw)
    if path.stat().st_size == size:
        return False, h
    with path.open("r+b") as fh:
        fh.truncate(size)
        fh.flush()
        os.fsync(fh.fileno())
    return True, h


class RunWriter:
    """Commits `RecordResult`s to an output folder, in order, and can pick up a torn run.

    Commit order for one record: its QA lines and side-file line, flush, then its progress line
    (which records where each shard stood: lines and running hash). A record whose progress
    line is missing is treated as never processed; a resume checks the shards against the log
    before trusting either. Files are fsynced every `fsync_interval` seconds (0: every commit)
    and when the run ends, shard data before the progress log.
    """

    def __init__(self, out_dir: Path, shard_size: int,
                 fsync_interval: float = DEFAULT_FSYNC_INTERVAL) -> None:
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
        self.notes: list[str] = []
        """What a resume repaired (one line each), for the user and the manifest."""
        self.fsync_interval = fsync_interval
        self.fsyncs = 0
        self._last_sync = time.monotonic()
        self._progress: IO[bytes] | None = None
        self._calls_fd: int | None = None
        self.calls_sent = 0
        """HTTP calls sent for this folder over all its runs (see CALLS_FILE)."""
        self.retries_sent = 0
        """The HTTP retries among them."""

    @property
    def _files(self) -> tuple[ShardSet | SideFile, ...]:
        return (self.data, self.rejected, self.invalid, self.failed, self.responses)

    @property
    def _progress_path(self) -> Path:
        return self.state_dir / PROGRESS_FILE

    # -- starting -------------------------------------------------------------------------
    def start_fresh(self) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.state_dir.mkdir(exist_ok=True)
        with naming(self._progress_path):
            self._progress_path.write_bytes(b"")
            (self.state_dir / CALLS_FILE).write_bytes(b"")
        self._progress = self._progress_path.open("ab")
        self._open_calls()

    def _open_calls(self) -> None:
        path = self.state_dir / CALLS_FILE
        self._calls_fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        earlier = path.read_bytes()  # (a byte a call: small)
        self.calls_sent, self.retries_sent = len(earlier), earlier.count(b"r")

    def note_call(self, retry: bool = False) -> None:
        """Count one HTTP call about to be sent (a byte appended: survives a kill)."""
        self.calls_sent += 1
        self.retries_sent += retry
        if self._calls_fd is not None:
            with naming(self.state_dir / CALLS_FILE):
                os.write(self._calls_fd, b"r" if retry else b".")

    def start_resume(self, *, retry_failed: bool = False) -> None:
        """Rebuild counts and shard positions from the progress log after checking the shards
        against it; cut every file back to the records that are provably committed."""
        progress_path = self._progress_path
        entries, damaged_at = read_progress(progress_path)
        if damaged_at is not None:
            self.notes.append(f"{progress_path}:{damaged_at}: damaged line; the records after "
                              "it are done again (from the response cache when it has them)")
        if all("shards" in e for e in entries):
            good = self._check_side_files(entries, self._check_shards(entries))
            if good < len(entries):
                self.notes.append(
                    f"{progress_path}: the files hold less than the log says (a power cut, a "
                    f"deleted last shard); the {len(entries) - good} record(s) from entry "
                    f"{good + 1} on are done again (from the response cache when it has them)")
                entries = entries[:good]
            for p, prefix in enumerate(_SHARD_PREFIXES):
                self._cut_shards(p, prefix, entries, _shard_files(self.out_dir, prefix))
            if retry_failed and not self.replay_path.exists():
                entries = self._set_aside_for_retry(entries)
        else:  # a log from before shard positions were recorded
            self._resume_by_ids(entries)
        if retry_failed:
            self.retry_lines = {int(e["line"]) for e in entries if e.get("status") == "failed"}
            entries = [e for e in entries if e.get("status") != "failed"]
        atomic_write_bytes(progress_path, b"".join(dumps_line(e) for e in entries))
        for e in entries:
            self._count(e)
        self.committed_lines = {int(e["line"]) for e in entries}
        lines = self.committed_lines
        for side in (self.invalid, self.failed, self.responses):
            if side.final.exists() and not side.partial.exists():
                os.replace(side.final, side.partial)
            seen: set[int] = set()

            def keep(r: dict[str, Any], seen: set[int] = seen) -> bool:
                line = r.get("line")
                if line in lines and line not in seen:
                    seen.add(line)
                    return True
                return False

            side.lines = _filter_jsonl(side.partial, keep)
        self._progress = progress_path.open("ab")
        self._open_calls()

    def _check_shards(self, entries: list[dict[str, Any]]) -> int:
        """Check every shard against the (shard, lines, hash) each entry recorded, reading only.
        Returns how many entries the files prove. A mismatch in the last shard (a power cut, a
        deleted last shard) lowers that; one in an earlier, finished shard is refused."""
        files = {prefix: _shard_files(self.out_dir, prefix) for prefix in _SHARD_PREFIXES}
        good = len(entries)
        earlier: list[tuple[int, Path, bool]] = []
        for p, prefix in enumerate(_SHARD_PREFIXES):
            claims: dict[int, list[tuple[int, str, int]]] = {}
            for k, e in enumerate(entries):
                index, n, h = e["shards"][p]
                claims.setdefault(int(index), []).append((int(n), str(h), k))
            last = max(claims, default=0)
            for index, rows in sorted(claims.items()):
                path = files[prefix].get(index, (None, False))[0]
                if path is None:
                    bad = next((k for n, _, k in rows if n > 0), -1)
                else:
                    bad = _hash_lines(path, rows)
                if bad == -1:
                    continue
                if index == last:
                    good = min(good, bad)
                else:
                    earlier.append((bad, self.out_dir / shard_name(prefix, index), path is None))
        for bad, name, missing in sorted(earlier):
            if bad < good:
                what = "is missing" if missing else "does not match the progress log"
                raise OutputError(f"{name} {what}: it held QA of records the log says are done; "
                                  "restore the file, or start again with --overwrite")
        return good

    def _check_side_files(self, entries: list[dict[str, Any]], good: int) -> int:
        """Every invalid or failed entry must have its row in invalid.jsonl / failed.jsonl. A row
        missing from a file still being written lowers `good`; from a sealed file it is refused."""
        for status, side in (("invalid", self.invalid), ("failed", self.failed)):
            expected = {int(e["line"]): k for k, e in enumerate(entries[:good])
                        if e["status"] == status}
            if not expected:
                continue
            sealed = side.final.exists() and not side.partial.exists()
            found = {r.get("line") for r in _read_jsonl_lenient(
                side.final if sealed else side.partial)}
            missing = [k for line, k in expected.items() if line not in found]
            if not missing:
                continue
            if sealed:
                raise OutputError(f"{side.final} is missing {len(missing)} of the {status} "
                                  "records the progress log lists; restore the file, or start "
                                  "again with --overwrite")
            good = min(good, min(missing))
        return good

    @property
    def replay_path(self) -> Path:
        return self.state_dir / REPLAY_FILE

    def _set_aside_for_retry(self, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """`--retry-failed` keeping input order: cut the run back to its first failed record;
        the done records after it go to the replay file with their stored replies (committed
        again from those, without a call), the failed ones are retried."""
        first = next((k for k, e in enumerate(entries) if e["status"] == "failed"), None)
        if first is None:
            return entries
        tail = entries[first:]
        done = {int(e["line"]): e for e in tail if e["status"] == "done"}
        failed = {int(e["line"]) for e in tail if e["status"] == "failed"}
        responses = self.responses.partial if self.responses.partial.exists() else (
            self.responses.final)
        tmp = self.replay_path.with_name(f".{REPLAY_FILE}.tmp")
        with tmp.open("wb") as out, naming(tmp):
            rows = (r for r in read_jsonl(responses) if r.get("line") in done)
            row = next(rows, None)
            for e in tail:
                line = int(e["line"])
                if line in failed:
                    out.write(dumps_line({"line": line, "retry": True}))
                    continue
                while row is not None and row["line"] < line:
                    row = next(rows, None)
                if line in done and row is not None and row["line"] == line:
                    out.write(dumps_line({"line": line, "entry": e,
                                          "responses": row["responses"]}))
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self.replay_path)
        entries = entries[:first]
        for p, prefix in enumerate(_SHARD_PREFIXES):
            self._cut_shards(p, prefix, entries, _shard_files(self.out_dir, prefix))
        return entries

    def replay_rows(self) -> Iterator[dict[str, Any]]:
        """The rows of the replay file (none when there is no retry under way)."""
        yield from read_jsonl(self.replay_path)

    def _cut_shards(self, p: int, prefix: str, entries: list[dict[str, Any]],
                    files: dict[int, tuple[Path, bool]]) -> None:
        """Cut one shard set back to the last entry's position and resume the writer there."""
        shards = self.data if prefix == "data" else self.rejected
        ends: dict[int, int] = {}
        for e in entries:
            ends[int(e["shards"][p][0])] = int(e["shards"][p][1])
        index, n = (int(entries[-1]["shards"][p][0]), int(entries[-1]["shards"][p][1])
                    ) if entries else (0, 0)
        sealed_names: list[str] = []
        state: Any = None
        resume_at = index
        for i, (path, sealed) in sorted(files.items()):
            if i > index:
                path.unlink()
                continue
            cut, h = _truncate_lines(path, ends.get(i, 0))
            final = self.out_dir / shard_name(prefix, i)
            if i < index:
                if not sealed:
                    os.replace(path, final)
                sealed_names.append(final.name)
            elif ends.get(i, 0) == 0:
                path.unlink()
            elif sealed and not cut and (i + 1) in files:
                sealed_names.append(final.name)  # sealed when the next record rotated
                resume_at = index + 1
            else:  # open, cut back, or sealed when the run finished: writing goes on in it
                if sealed:
                    os.replace(path, self.out_dir / (final.name + PARTIAL))
                state = h
        if resume_at > index:
            shards.resume(resume_at, 0, sealed_names)
        else:
            shards.resume(index, n if index in files and ends.get(index, 0) else 0,
                          sealed_names, state)

    def _resume_by_ids(self, entries: list[dict[str, Any]]) -> None:
        committed_ids = {e["record_id"] for e in entries if e.get("record_id") is not None
                         and e.get("status") == "done"}
        for shards in (self.data, self.rejected):
            self._resume_shards(shards, committed_ids)

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
                 "retries": getattr(result, "retries", 0),
                 "cache_hits": result.cache_hits,
                 "cache_misses": result.cache_misses,
                 "usage": [u.prompt_tokens, u.completion_tokens, u.total_tokens]}
        if getattr(result, "skipped", None):
            entry["skipped"] = result.skipped
        entry["shards"] = [self.data.position(), self.rejected.position()]
        with naming(self._progress_path):
            self._progress.write(dumps_line(entry))
            self._progress.flush()
        self._count(entry)
        self.committed_lines.add(result.line)
        if time.monotonic() - self._last_sync >= self.fsync_interval:
            self.sync()

    def sync(self) -> None:
        """fsync the output files, then the progress log (a commit boundary made durable)."""
        for f in self._files:
            f.sync()
        if self._progress is not None:
            with naming(self._progress_path):
                self._progress.flush()
                os.fsync(self._progress.fileno())
        self.fsyncs += 1
        self._last_sync = time.monotonic()

    # -- finishing ------------------------------------------------------------------------
    def finish(self) -> None:
        """Seal every file under its final name (the run is complete)."""
        for f in self._files:
            f.seal()
        self.close()
        self.replay_path.unlink(missing_ok=True)

    def seal_side_files(self) -> None:
        """Give invalid.jsonl and failed.jsonl their final names although the run stopped early
        (endpoint down), so the failures are where the message says; a resume moves them back
        to `.partial` (see start_resume)."""
        for f in (self.invalid, self.failed):
            f.seal()

    def close(self) -> None:
        """Flush and close without sealing (interrupted run: partial files stay partial).
        Outputs are fsynced before the progress log, so the log never claims more than a power
        cut right after leaves on disk."""
        errors: list[OSError] = []
        for f in self._files:  # every file is closed, even when the disk is full
            try:
                f.sync()
            except OSError as err:
                errors.append(err)
            try:
                f.close()
            except OSError as err:
                errors.append(err)
        if self._progress is not None:
            progress, self._progress = self._progress, None
            try:
                progress.flush()
                os.fsync(progress.fileno())
            except OSError as err:
                errors.append(err)
            finally:
                with contextlib.suppress(OSError):
                    progress.close()
        if self._calls_fd is not None:
            os.close(self._calls_fd)
            self._calls_fd = None
        if errors:
            raise errors[0]

    def outputs(self) -> dict[str, list[str]]:
        return {"data": list(self.data.sealed), "rejected": list(self.rejected.sealed)}


def side_file_rows(out_dir: Path, name: str) -> Iterator[dict[str, Any]]:
    """Rows of a side file under its final name, else its `.partial` (a stopped run)."""
    path = out_dir / name
    yield from read_jsonl(path if path.exists() else out_dir / (name + PARTIAL))


def failure_kinds(out_dir: Path) -> dict[str, int]:
    """Failed records per failure kind (`rate_limit`, `wrong_shape`, …), most frequent first."""
    kinds: dict[str, int] = {}
    for row in side_file_rows(out_dir, "failed.jsonl"):
        kind = str((row.get("error") or {}).get("kind") or "unknown")
        kinds[kind] = kinds.get(kind, 0) + 1
    return dict(sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0])))


def skip_reasons(out_dir: Path) -> dict[str, int]:
    """Skipped records per reason (a template's `when` condition or its `modalities`), from the
    progress log."""
    reasons: dict[str, int] = {}
    for e in _read_jsonl_lenient(out_dir / STATE_DIR / PROGRESS_FILE):
        if e.get("skipped"):
            reasons[str(e["skipped"])] = reasons.get(str(e["skipped"]), 0) + 1
    return dict(sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0])))
