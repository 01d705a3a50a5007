"""The response cache: one SQLite file, keyed by a hash of everything that determines an answer.

A rerun of the same job makes zero calls; after a template edit only the prompts that changed are
sent. The stored value is the completion's text, finish reason, usage and model, which is all
that parsing and filtering need, so those steps can be redone later without any call. The key
never includes the API key, and nothing else about the endpoint's credentials is stored.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import orjson

from .errors import VqaGenError
from .llm import Completion, Usage

log = logging.getLogger(__name__)
T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS completions (
    key TEXT PRIMARY KEY,
    content TEXT NOT NULL,
    finish_reason TEXT,
    usage BLOB,
    model TEXT,
    created REAL NOT NULL
)
"""


class CacheError(VqaGenError, RuntimeError):
    """The cache file is damaged or unusable mid-run; the message names it and the way out."""

    summary = "the response cache is unusable: pass --cache FILE or --no-cache"


def _damaged(path: Path, err: sqlite3.Error) -> CacheError:
    log.warning("response cache %s: %s", path, err)
    return CacheError(f"response cache {path} is damaged or unusable ({err}); pass --cache "
                      "FILE to use another one, or --no-cache")


_LOCK_WAIT = 30.0  # seconds a run waits, in all, for another run's lock on the cache file


def _locked(err: sqlite3.Error) -> bool:
    return isinstance(err, sqlite3.OperationalError) and (
        "locked" in str(err) or "busy" in str(err))


def retry_while_locked(step: Callable[[], T], wait: float = _LOCK_WAIT,
                       sleep: Callable[[float], None] = time.sleep) -> T:
    """`step()`, tried again while SQLite says the file is locked, for up to `wait` seconds.
    SQLite's own busy timeout covers most contention, but a WAL database answers "database is
    locked" at once, without waiting, while the last connection to close cleans up the WAL
    file or the first to open recovers it (SQLite's "WAL mode" page, "Sometimes queries
    return SQLITE_BUSY"): one run opening the cache as another finishes hit it."""
    deadline = time.monotonic() + wait
    delay = 0.005
    while True:
        try:
            return step()
        except sqlite3.OperationalError as err:
            if not _locked(err) or time.monotonic() >= deadline:
                raise
        sleep(delay)
        delay = min(0.25, delay * 2)


def cache_key(model: str, messages: list[dict[str, str]], params: dict[str, Any]) -> str:
    """Hash of everything that determines the answer (never the API key)."""
    blob = orjson.dumps({"model": model, "messages": messages, "params": params},
                        option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(blob).hexdigest()


def default_cache_path() -> Path:
    """`$VQA_GEN_CACHE`, else `$XDG_CACHE_HOME/vqa-gen/responses.sqlite` (~/.cache by default)."""
    env = os.environ.get("VQA_GEN_CACHE")
    if env:
        return Path(env)
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "vqa-gen" / "responses.sqlite"


class ResponseCache:
    """SQLite-backed completion cache. WAL mode and a busy timeout make it safe to share between
    concurrent runs; within a run, calls come from one event loop thread (a lock guards the
    rare cross-thread use)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=_LOCK_WAIT, isolation_level=None,
                                   check_same_thread=False)
        retry_while_locked(self._set_up)
        self._lock = threading.Lock()

    def _set_up(self) -> None:
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(_SCHEMA)

    def get(self, key: str) -> Completion | None:
        try:
            with self._lock:
                row = retry_while_locked(lambda: self._db.execute(
                    "SELECT content, finish_reason, usage, model FROM completions WHERE key = ?",
                    (key,)).fetchone())
        except sqlite3.Error as err:
            raise _damaged(self.path, err) from None
        if row is None:
            return None
        try:
            usage = Usage(*orjson.loads(row[2])) if row[2] else Usage()
        except (orjson.JSONDecodeError, TypeError):
            usage = Usage()
        return Completion(content=row[0], finish_reason=row[1], usage=usage, model=row[3],
                          attempts=0)

    def put(self, key: str, completion: Completion) -> None:
        usage = orjson.dumps([completion.usage.prompt_tokens, completion.usage.completion_tokens,
                              completion.usage.total_tokens])
        try:
            row = (key, completion.content, completion.finish_reason, usage, completion.model,
                   time.time())
            with self._lock:
                retry_while_locked(lambda: self._db.execute(
                    "INSERT OR REPLACE INTO completions VALUES (?, ?, ?, ?, ?, ?)", row))
        except sqlite3.Error as err:
            raise _damaged(self.path, err) from None

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM completions").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()


def open_cache(path: str | Path | None = None) -> ResponseCache:
    return ResponseCache(path or default_cache_path())
