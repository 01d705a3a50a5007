"""A fake OpenAI-compatible chat completions server for tests and benchmarks.

Why it exists: the pipeline's retry, parsing and grounding logic must be exercised against every
way a real endpoint misbehaves (429s, 5xx, hangs, dropped connections, junk bodies, truncated or
off-shape JSON) — deterministically, offline, and fast enough to benchmark the client at hundreds
of requests per second. So per-request work is kept tiny: no logging, orjson, cached responders.

Three ways to run it:

* in-process, in a background thread: ``with FakeOpenAIServer(...) as srv: srv.base_url``;
* in the caller's event loop: ``async with FakeOpenAIServer(...) as srv: ...``;
* as a subprocess: ``python -m vqa_gen.testing --port 0`` (or :func:`start_subprocess_server`),
  which prints ``READY http://127.0.0.1:PORT/v1`` once listening.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import os
import random
import re
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from functools import lru_cache
from typing import Any

import orjson
from aiohttp import web

__all__ = [
    "ALL_FAULTS",
    "DEFAULT_FAULT_MIX",
    "FakeOpenAIServer",
    "FaultPlan",
    "RecordedRequest",
    "Responder",
    "canned",
    "extract_caption",
    "qa_from_caption",
    "scripted",
    "start_subprocess_server",
]

#: A responder maps the request body to the assistant content (str) or to a complete response
#: body (dict, sent verbatim as JSON with HTTP 200; content faults such as ``truncated`` are
#: then not applied). It may also be ``async``.
Responder = Callable[[dict[str, Any]], str | dict[str, Any] | Awaitable[Any]]

#: Every fault kind the server can inject, in a stable order.
ALL_FAULTS: tuple[str, ...] = (
    "rate_limit",
    "rate_limit_no_header",
    "server_error",
    "bad_gateway",
    "unavailable",
    "timeout",
    "drop",
    "malformed_body",
    "bad_json_content",
    "wrong_shape",
    "empty_choices",
    "truncated",
    "refusal",
    "bad_request",
    "auth_error",
    # endpoints that lie: HTTP 200 with something that is not a chat completion
    "html_200",
    "empty_body",
    "non_utf8_body",
    "content_parts",
    "usage_string",
    "choice_string",
    "huge_usage",
    "huge_body",
    "key_echo",
)

#: Retryable transport faults plus recoverable content faults: what ``--fault-rate`` spreads over.
DEFAULT_FAULT_MIX: tuple[str, ...] = (
    "rate_limit",
    "rate_limit_no_header",
    "server_error",
    "bad_gateway",
    "unavailable",
    "timeout",
    "malformed_body",
    "bad_json_content",
    "wrong_shape",
    "truncated",
)

DEFAULT_MODEL = "fake-model"

# --------------------------------------------------------------------------------------------
# Fault plan
# --------------------------------------------------------------------------------------------


@dataclass
class FaultPlan:
    """Which faults to inject: a deterministic ``script`` first, then seeded random draws.

    ``script`` lists, for the first ``len(script)`` chat requests in arrival order, the fault to
    inject (a name from :data:`ALL_FAULTS`) or ``None`` for a normal answer. After the script is
    used up, each request gets fault ``k`` with probability given by the field of that name.
    The RNG is seeded (``seed``) so a benchmark run is reproducible.
    """

    rate_limit: float = 0.0
    rate_limit_no_header: float = 0.0
    server_error: float = 0.0
    bad_gateway: float = 0.0
    unavailable: float = 0.0
    timeout: float = 0.0
    drop: float = 0.0
    malformed_body: float = 0.0
    bad_json_content: float = 0.0
    wrong_shape: float = 0.0
    empty_choices: float = 0.0
    truncated: float = 0.0
    refusal: float = 0.0
    bad_request: float = 0.0
    auth_error: float = 0.0
    html_200: float = 0.0
    empty_body: float = 0.0
    non_utf8_body: float = 0.0
    content_parts: float = 0.0
    usage_string: float = 0.0
    choice_string: float = 0.0
    huge_usage: float = 0.0
    huge_body: float = 0.0
    key_echo: float = 0.0
    script: list[str | None] = field(default_factory=list)
    seed: int | None = 0
    #: Seconds advertised by 429 ``Retry-After`` (fractional allowed) and ``retry-after-ms``.
    retry_after: float = 0.05
    #: How long a ``timeout`` fault stalls before answering (the client should give up first).
    hang_seconds: float = 30.0
    #: Size of a ``huge_body`` reply (sent in chunks, without Content-Length).
    huge_body_bytes: int = 64 * 1024 * 1024

    def __post_init__(self) -> None:
        for name in self.script:
            if name is not None and name not in ALL_FAULTS:
                raise ValueError(f"unknown fault in script: {name!r}; known: {ALL_FAULTS}")
        total = sum(self.probabilities().values())
        if total > 1.0 + 1e-9:
            raise ValueError(f"fault probabilities sum to {total:.3f} > 1")
        self.reset()

    @classmethod
    def spread(
        cls, rate: float, kinds: Iterable[str] = DEFAULT_FAULT_MIX, **kwargs: Any
    ) -> FaultPlan:
        """Spread a total fault ``rate`` evenly over ``kinds`` (what ``--fault-rate`` does)."""
        kinds = tuple(kinds)
        for k in kinds:
            if k not in ALL_FAULTS:
                raise ValueError(f"unknown fault kind {k!r}")
        if not 0.0 <= rate <= 1.0:
            raise ValueError("rate must be within [0, 1]")
        share = rate / len(kinds) if kinds else 0.0
        return cls(**{k: share for k in kinds}, **kwargs)

    def probabilities(self) -> dict[str, float]:
        """The per-kind probabilities as a dict (only the non-zero ones)."""
        return {k: p for k in ALL_FAULTS if (p := getattr(self, k))}

    def reset(self) -> None:
        """Rewind the script and reseed the RNG, so a plan can be replayed exactly."""
        self._pos = 0
        self._rng = random.Random(self.seed)

    @property
    def script_remaining(self) -> int:
        """How many scripted entries have not been used yet."""
        return max(0, len(self.script) - self._pos)

    def pick(self) -> str | None:
        """Return the fault for the next request, or ``None`` for a normal answer."""
        if self._pos < len(self.script):
            fault = self.script[self._pos]
            self._pos += 1
            return fault
        x = self._rng.random()
        acc = 0.0
        for k in ALL_FAULTS:
            p = getattr(self, k)
            if p:
                acc += p
                if x < acc:
                    return k
        return None


_PLAN_PARAMS = {f.name for f in fields(FaultPlan)}

# --------------------------------------------------------------------------------------------
# Responders
# --------------------------------------------------------------------------------------------


def _content_text(content: Any) -> str:
    """Text of a message ``content``: a string, or the text parts of a multimodal part list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"
        )
    return ""


def _last_user_text(body: dict[str, Any]) -> str:
    for msg in reversed(body.get("messages") or ()):
        if isinstance(msg, dict) and msg.get("role") == "user":
            return _content_text(msg.get("content"))
    return ""


_CAPTION_RE = re.compile(r"^[ \t]*Caption[ \t]*:[ \t]*(.*?)(?=\n[ \t]*\n|\Z)", re.M | re.S | re.I)
_WORD_NUMBERS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5,
    "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10,
}  # fmt: skip
_N_RE = re.compile(
    r"\b(\d{1,3}|" + "|".join(_WORD_NUMBERS) + r")\s+(?:[\w-]+\s+){0,2}?"
    r"(?:questions?|q\s*&\s*a|q/a|qas?|question[- ]answer)\b",
    re.I,
)
_SENTENCE_RE = re.compile(r"(?<=[.!?;])\s+|\n+")
_CLAUSE_RE = re.compile(r",\s+|\s+(?:and|with|while|but)\s+")
_MODALITY_RE = re.compile(
    r"\b(?:ct|mri|mr|x-?ray|radiograph\w*|ultraso\w*|sonograph\w*|pet|angiogra\w*|mammogra\w*|"
    r"endoscop\w*|histolog\w*|h&e|stain\w*|microscop\w*|scan|imaging|t1\w*|t2\w*)\b",
    re.I,
)
_LOCATION_RE = re.compile(
    r"\b(?:left|right|upper|lower|anterior|posterior|medial|lateral|proximal|distal|lobe|"
    r"quadrant|segment|apex|apical|basal|bilateral\w*|superior|inferior)\b",
    re.I,
)
_CAPTION_TAG_RE = re.compile(r"</?caption>", re.I)
_DEFAULT_N = 3
_MAX_N = 50


def extract_caption(text: str) -> str:
    """The caption inside a prompt: the text after a ``Caption:`` line up to the next blank line.

    Falls back to the whole text, so a bare caption as the user message also works.
    """
    m = _CAPTION_RE.search(text)
    cap = m.group(1) if m else text
    cap = _CAPTION_TAG_RE.sub("", cap)  # prompts may fence the caption in <caption> tags
    return cap.strip().strip("\"'`").strip()


def _requested_n(text: str) -> int:
    m = _N_RE.search(text)
    if not m:
        return _DEFAULT_N
    tok = m.group(1).lower()
    n = _WORD_NUMBERS.get(tok) or int(tok)
    return max(1, min(n, _MAX_N))


def _split_clauses(caption: str, n: int) -> list[str]:
    """Sentences of the caption; split further at commas/conjunctions if fewer than ``n``."""

    def clean(parts: Iterable[str]) -> list[str]:
        out = []
        for p in parts:
            p = p.strip().rstrip(".;:!?,").strip()
            if p and any(c.isalnum() for c in p):
                out.append(p)
        return out

    clauses = clean(_SENTENCE_RE.split(caption))
    if len(clauses) < n:
        finer = clean(part for c in clauses for part in _CLAUSE_RE.split(c))
        if len(finer) > len(clauses):
            clauses = finer
    return clauses


def _keyword(clause: str) -> str:
    words = re.findall(r"[A-Za-z][\w-]*", clause)
    return max(words, key=len).lower() if words else clause.lower()


@lru_cache(maxsize=8192)
def _qa_json(caption: str, n: int) -> str:
    """Deterministic ``{"qa_pairs": [...]}`` whose answers are verbatim caption spans."""
    clauses = _split_clauses(caption, n)
    pairs: list[dict[str, str]] = []
    seen: set[str] = set()
    for i in range(n if clauses else 0):
        clause = clauses[i % len(clauses)]
        kw = _keyword(clause)
        if m := _MODALITY_RE.search(clause):
            qtype, question = "modality", f"What does the {m.group(0)} show?"
        elif _LOCATION_RE.search(clause):
            qtype, question = "location", f"Where is the {kw} located?"
        else:
            qtype, question = "finding", f"What does the image show regarding {kw}?"
        if i >= len(clauses):  # cycling: rephrase so questions stay distinct
            question = f"According to the caption, what is noted about {kw}?"
        if question in seen:
            question = f"{question[:-1]} (item {i + 1})?"
        seen.add(question)
        pairs.append({"question": question, "answer": clause, "type": qtype})
    return orjson.dumps({"qa_pairs": pairs}).decode()


def qa_from_caption(body: dict[str, Any]) -> str:
    """Default responder: QA pairs whose answers are copied from the caption in the prompt.

    Grounded by construction (answers are caption substrings), deterministic for the same input,
    and cached, so it costs almost nothing per request. N comes from "N questions"/"N QA" in the
    prompt outside the caption (default 3).
    """
    user = _last_user_text(body)
    m = _CAPTION_RE.search(user)
    if not m:  # a re-ask ("your reply could not be used …"): the caption is further up
        for msg in reversed(body.get("messages") or ()):
            text = _content_text(msg.get("content")) if isinstance(msg, dict) else ""
            if msg.get("role") == "user" and (m := _CAPTION_RE.search(text)):
                user = text
                break
    if m:
        caption = extract_caption(m.group(0))
        rest = user[: m.start()] + "\n" + user[m.end() :]
    else:
        caption, rest = extract_caption(user), ""
    n_src = rest
    if not _N_RE.search(n_src):
        n_src = "\n".join(
            _content_text(msg.get("content"))
            for msg in body.get("messages") or ()
            if isinstance(msg, dict) and msg.get("role") in ("system", "developer")
        )
    return _qa_json(caption, _requested_n(n_src))


def canned(*contents: str | dict[str, Any]) -> Responder:
    """Responder cycling through fixed contents (str) or full response bodies (dict)."""
    if not contents:
        raise ValueError("canned() needs at least one content")
    it = itertools.cycle(contents)

    def respond(body: dict[str, Any]) -> str | dict[str, Any]:
        return next(it)

    return respond


def scripted(
    items: Sequence[str | dict[str, Any] | Callable[[dict[str, Any]], Any]],
    then: Responder | None = qa_from_caption,
) -> Responder:
    """Responder answering request i with ``items[i]`` (a str, dict, or responder callable).

    Once the items are used up, ``then`` answers; with ``then=None`` an extra request gets an
    HTTP 500 (the responder raises), which makes over-calling visible in a test.
    """
    queue = deque(items)

    def respond(body: dict[str, Any]) -> Any:
        if queue:
            item = queue.popleft()
            return item(body) if callable(item) else item
        if then is None:
            raise IndexError("scripted responder exhausted")
        return then(body)

    return respond


# --------------------------------------------------------------------------------------------
# Server
# --------------------------------------------------------------------------------------------


@dataclass(slots=True)
class RecordedRequest:
    """One received request, for assertions. ``headers`` are raw: Authorization is NOT redacted."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    fault: str | None
    time: float


_JSON = "application/json"
_ERRORS: dict[str, tuple[int, str, str, str | None]] = {
    # fault: (status, message, type, code)
    "rate_limit": (429, "Rate limit reached (injected fault).", "requests", "rate_limit_exceeded"),
    "rate_limit_no_header": (
        429, "Rate limit reached (injected fault).", "requests", "rate_limit_exceeded"),
    "server_error": (
        500, "The server had an error while processing your request.", "server_error", None),
    "bad_gateway": (502, "Bad gateway.", "server_error", "bad_gateway"),
    "unavailable": (
        503, "The engine is currently overloaded, please try again later.", "server_error",
        "overloaded"),
    "bad_request": (
        400, "Invalid request (injected fault).", "invalid_request_error", "invalid_request"),
    "auth_error": (
        401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key"),
}  # fmt: skip
_MALFORMED_BODY = b'{"id": "chatcmpl-broken", "object": "chat.completion", "choices": [{"mess'
_BAD_JSON_CONTENT = (
    "Sure! Here are some questions about the image:\n"
    "1. What is shown? The image shows a finding.\n"
    "2. Where is it? It is in the image."
)
_WRONG_SHAPE = '{"questions": ["What does the image show?", "Where is the finding?"]}'
_REFUSAL = "I'm sorry, I can't help with that."
_HTML_200 = (b"<!DOCTYPE html><html><head><title>Sign in</title></head><body><h1>Please sign in"
             b"</h1><p>Your session has expired.</p></body></html>")
#: Faults that answer HTTP 200 with a body of the wrong shape, built from a normal completion.
_SHAPE_FAULTS = ("content_parts", "usage_string", "choice_string", "huge_usage")


def _error_body(message: str, etype: str, code: str | None) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": etype, "param": None, "code": code}})


def _dumps_big_ints(data: dict[str, Any]) -> bytes:
    """JSON with integers beyond 64 bits (orjson refuses them; the stdlib does not)."""
    import json

    return json.dumps(data).encode()


def _count_tokens(body: dict[str, Any]) -> int:
    return sum(
        len(_content_text(m.get("content")).split())
        for m in body.get("messages") or ()
        if isinstance(m, dict)
    )


class FakeOpenAIServer:
    """An aiohttp server speaking enough of the OpenAI API, with injectable latency and faults.

    ``responder``, ``faults``, ``latency_ms`` and ``jitter_ms`` are read on every request, so a
    test may change them between requests. ``stats`` counts outcomes (``requests``, ``ok``, one
    key per fault kind, ``in_flight``/``max_in_flight``...), ``requests`` keeps the last
    ``max_recorded`` :class:`RecordedRequest` (raw headers). Stats are plain ints updated on the
    server loop; reading them after your requests completed is safe.
    """

    def __init__(
        self,
        responder: Responder = qa_from_caption,
        faults: FaultPlan | None = None,
        *,
        latency_ms: float = 0.0,
        jitter_ms: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
        model: str = DEFAULT_MODEL,
        api_key: str | None = None,
        seed: int | None = 0,
        max_recorded: int = 1000,
        record: bool = True,
    ) -> None:
        self.responder = responder
        self.faults = faults if faults is not None else FaultPlan()
        self.latency_ms = latency_ms
        self.jitter_ms = jitter_ms
        self.host = host
        self.port = port
        self.model = model
        #: If set, chat requests must carry ``Authorization: Bearer <api_key>`` or get a 401.
        self.api_key = api_key
        self.record = record
        self._seed = seed
        self._jitter_rng = random.Random(seed)
        self.requests: deque[RecordedRequest] = deque(maxlen=max_recorded)
        self.stats: dict[str, int] = self._fresh_stats()
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop_event: asyncio.Event | None = None
        #: Files and batches endpoints (``files.create``, ``batches.create/retrieve``,
        #: ``files.content``): uploaded files, batches by id.
        self.files: dict[str, dict[str, Any]] = {}
        self._file_data: dict[str, bytes] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        #: How many ``batches.retrieve`` calls see a new batch ``in_progress`` before it
        #: completes (its requests are answered by the responder, faults applied per line).
        self.batch_polls = 1
        #: Make the next created batches fail validation (status ``failed``, no output file).
        self.batch_fail = False
        self._batch_polls_left: dict[str, int] = {}
        #: Cleared by :meth:`hold`: chat requests wait (counted in ``stats``) until
        #: :meth:`release`, so a test can keep a run busy for as long as it needs.
        self._open = threading.Event()
        self._open.set()

    def hold(self) -> None:
        """Make chat requests wait, from now on, until :meth:`release`."""
        self._open.clear()

    def release(self) -> None:
        """Let held and later chat requests go on."""
        self._open.set()

    # ---- introspection -----------------------------------------------------------------------

    @staticmethod
    def _fresh_stats() -> dict[str, int]:
        keys = ("requests", "ok", "models", "invalid", "unauthorized", "responder_error",
                "files_uploaded", "batches_created", "batch_polls", "batch_lines")
        stats = dict.fromkeys(keys, 0)
        stats.update(dict.fromkeys(ALL_FAULTS, 0))
        stats["in_flight"] = stats["max_in_flight"] = 0
        return stats

    def reset(self) -> None:
        """Zero the stats, forget recorded requests, rewind the fault plan and jitter RNG."""
        in_flight = self.stats.get("in_flight", 0)
        self.stats = self._fresh_stats()
        self.stats["in_flight"] = in_flight
        self.requests.clear()
        self.faults.reset()
        self._jitter_rng = random.Random(self._seed)

    @property
    def url(self) -> str:
        """Root URL, e.g. ``http://127.0.0.1:PORT``."""
        if not self.port:
            raise RuntimeError("server not started")
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """OpenAI ``base_url``, e.g. ``http://127.0.0.1:PORT/v1``."""
        return self.url + "/v1"

    # ---- app ---------------------------------------------------------------------------------

    def make_app(self) -> web.Application:
        """The aiohttp application (exposed for embedding in another app or aiohttp test utils)."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/models", self._models)
        app.router.add_get("/health", self._health)
        app.router.add_post("/v1/files", self._upload_file)
        app.router.add_get("/v1/files/{file_id}", self._get_file)
        app.router.add_get("/v1/files/{file_id}/content", self._file_content)
        app.router.add_post("/v1/batches", self._create_batch)
        app.router.add_get("/v1/batches/{batch_id}", self._get_batch)
        app.router.add_get("/v1/batches", self._list_batches)
        return app

    async def _health(self, request: web.Request) -> web.Response:
        return web.Response(body=b'{"status":"ok"}', content_type=_JSON)

    async def _models(self, request: web.Request) -> web.Response:
        self.stats["models"] += 1
        data = {
            "object": "list",
            "data": [{"id": self.model, "object": "model", "created": 0, "owned_by": "vqa-gen"}],
        }
        return web.Response(body=orjson.dumps(data), content_type=_JSON)

    def _error(self, kind: str, headers: dict[str, str] | None = None) -> web.Response:
        status, message, etype, code = _ERRORS[kind]
        return web.Response(
            status=status, body=_error_body(message, etype, code), content_type=_JSON,
            headers=headers,
        )  # fmt: skip

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        stats = self.stats
        stats["requests"] += 1
        stats["in_flight"] += 1
        if stats["in_flight"] > stats["max_in_flight"]:
            stats["max_in_flight"] = stats["in_flight"]
        try:
            return await self._chat_inner(request)
        finally:
            self.stats["in_flight"] -= 1

    async def _chat_inner(self, request: web.Request) -> web.StreamResponse:
        stats = self.stats
        raw = await request.read()
        bad = ""
        try:
            body = orjson.loads(raw)
            if not isinstance(body, dict):
                raise TypeError("body must be a JSON object")
        except (orjson.JSONDecodeError, TypeError) as exc:
            body = None
            bad = str(exc)
        plan = self.faults
        fault = plan.pick() if body is not None else None
        if self.record:
            self.requests.append(
                RecordedRequest(
                    request.method, request.path, dict(request.headers), body, fault, time.time()
                )
            )
        if body is None:
            stats["invalid"] += 1
            return web.Response(
                status=400,
                body=_error_body(f"Invalid JSON body: {bad}", "invalid_request_error", None),
                content_type=_JSON,
            )
        if self.api_key is not None and (
            request.headers.get("Authorization") != f"Bearer {self.api_key}"
        ):
            stats["unauthorized"] += 1
            return self._error("auth_error")

        while not self._open.is_set():
            await asyncio.sleep(0.01)
        delay = self.latency_ms
        if self.jitter_ms:
            delay += self._jitter_rng.uniform(-self.jitter_ms, self.jitter_ms)
        if delay > 0:
            await asyncio.sleep(delay / 1000.0)

        if fault is not None:
            stats[fault] += 1
            if fault == "timeout":
                await asyncio.sleep(plan.hang_seconds)
                return await self._complete(body, None)
            if fault == "rate_limit":
                ra = plan.retry_after
                return self._error(
                    fault,
                    {"Retry-After": f"{ra:g}", "retry-after-ms": str(round(ra * 1000))},
                )
            if fault in _ERRORS:
                return self._error(fault)
            if fault == "drop":
                return await self._drop(request)
            if fault == "malformed_body":
                return web.Response(body=_MALFORMED_BODY, content_type=_JSON)
            if fault == "html_200":
                return web.Response(body=_HTML_200, content_type="text/html")
            if fault == "empty_body":
                return web.Response(body=b"", content_type=_JSON)
            if fault == "non_utf8_body":
                return web.Response(body=b'{"choices": [{"message": {"content": "\xff\xfe"}}]}',
                                    content_type=_JSON)
            if fault == "key_echo":  # an error page echoing the request's headers back
                echo = request.headers.get("Authorization", "(none)")
                return web.Response(status=400, body=_error_body(
                    f"Bad request. Headers received: Authorization: {echo}",
                    "invalid_request_error", None), content_type=_JSON)
            if fault == "huge_body":
                return await self._huge_body(request, plan.huge_body_bytes)
            return await self._complete(body, fault)
        return await self._complete(body, None)

    # ---- files and batches (OpenAI Batch API) -----------------------------------------------

    def _authorized(self, request: web.Request) -> bool:
        return self.api_key is None or (
            request.headers.get("Authorization") == f"Bearer {self.api_key}")

    def _not_found(self, what: str) -> web.Response:
        return web.Response(status=404, body=_error_body(
            f"No such {what}.", "invalid_request_error", "not_found"), content_type=_JSON)

    def _store_file(self, name: str, purpose: str, data: bytes) -> dict[str, Any]:
        file_id = f"file-fake-{next(self._ids)}"
        meta = {"id": file_id, "object": "file", "bytes": len(data), "created_at": int(time.time()),
                "filename": name, "purpose": purpose, "status": "processed"}
        self.files[file_id] = meta
        self._file_data[file_id] = data
        return meta

    async def _upload_file(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            self.stats["unauthorized"] += 1
            return self._error("auth_error")
        form = await request.post()
        upload, purpose = form.get("file"), str(form.get("purpose") or "")
        if not isinstance(upload, web.FileField):
            return web.Response(status=400, body=_error_body(
                "multipart field 'file' missing", "invalid_request_error", None),
                content_type=_JSON)
        self.stats["files_uploaded"] += 1
        meta = self._store_file(upload.filename, purpose, upload.file.read())
        return web.Response(body=orjson.dumps(meta), content_type=_JSON)

    async def _get_file(self, request: web.Request) -> web.Response:
        meta = self.files.get(request.match_info["file_id"])
        if meta is None:
            return self._not_found("file")
        return web.Response(body=orjson.dumps(meta), content_type=_JSON)

    async def _file_content(self, request: web.Request) -> web.Response:
        data = self._file_data.get(request.match_info["file_id"])
        if data is None:
            return self._not_found("file")
        return web.Response(body=data, content_type="application/octet-stream")

    async def _create_batch(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            self.stats["unauthorized"] += 1
            return self._error("auth_error")
        body = orjson.loads(await request.read())
        file_id = body.get("input_file_id")
        if file_id not in self._file_data:
            return self._not_found("file")
        self.stats["batches_created"] += 1
        batch_id = f"batch_fake_{next(self._ids)}"
        lines = [ln for ln in self._file_data[file_id].splitlines() if ln.strip()]
        batch = {"id": batch_id, "object": "batch", "endpoint": body.get("endpoint"),
                 "input_file_id": file_id, "completion_window": body.get("completion_window"),
                 "status": "validating", "created_at": int(time.time()),
                 "output_file_id": None, "error_file_id": None, "errors": None,
                 "metadata": body.get("metadata"),
                 "request_counts": {"total": len(lines), "completed": 0, "failed": 0}}
        if self.batch_fail:
            batch["status"] = "failed"
            batch["errors"] = {"object": "list", "data": [{
                "code": "invalid_request", "message": "Batch failed validation (injected).",
                "param": None, "line": 1}]}
        self.batches[batch_id] = batch
        self._batch_polls_left[batch_id] = self.batch_polls
        return web.Response(body=orjson.dumps(batch), content_type=_JSON)

    async def _get_batch(self, request: web.Request) -> web.Response:
        batch = self.batches.get(request.match_info["batch_id"])
        if batch is None:
            return self._not_found("batch")
        self.stats["batch_polls"] += 1
        if batch["status"] in ("validating", "in_progress"):
            left = self._batch_polls_left[batch["id"]]
            if left > 0:
                self._batch_polls_left[batch["id"]] = left - 1
                batch["status"] = "in_progress"
            else:
                await self._run_batch(batch)
        return web.Response(body=orjson.dumps(batch), content_type=_JSON)

    async def _list_batches(self, request: web.Request) -> web.Response:
        """Newest first, paginated by ``after`` (a batch id) and ``limit``."""
        batches = list(reversed(self.batches.values()))
        after = request.query.get("after")
        if after:
            ids = [b["id"] for b in batches]
            batches = batches[ids.index(after) + 1 :] if after in ids else []
        limit = int(request.query.get("limit", 20))
        page = batches[:limit]
        data = {"object": "list", "data": page, "has_more": len(batches) > limit,
                "first_id": page[0]["id"] if page else None,
                "last_id": page[-1]["id"] if page else None}
        return web.Response(body=orjson.dumps(data), content_type=_JSON)

    async def _batch_answer(self, body: dict[str, Any]) -> tuple[int, Any]:
        """(status, response body) for one batch line: the chat handler's answer, with the
        fault plan applied per line (transport faults become a 500 for that line)."""
        fault = self.faults.pick()
        if fault is not None:
            self.stats[fault] += 1
        if fault in _ERRORS:
            status, message, etype, code = _ERRORS[fault]
            return status, orjson.loads(_error_body(message, etype, code))
        if fault in ("timeout", "drop", "malformed_body"):
            status, message, etype, code = _ERRORS["server_error"]
            return status, orjson.loads(_error_body(message, etype, code))
        resp = await self._complete(body, fault)
        return resp.status, orjson.loads(resp.body)  # type: ignore[arg-type]

    async def _run_batch(self, batch: dict[str, Any]) -> None:
        out: list[bytes] = []
        errors: list[bytes] = []
        counts = batch["request_counts"]
        for n, raw in enumerate(self._file_data[batch["input_file_id"]].splitlines()):
            if not raw.strip():
                continue
            self.stats["batch_lines"] += 1
            line = orjson.loads(raw)
            status, body = await self._batch_answer(line.get("body") or {})
            row = {"id": f"batch_req_{n}", "custom_id": line.get("custom_id"),
                   "response": {"status_code": status, "request_id": f"req_{n}", "body": body},
                   "error": None}
            (out if status == 200 else errors).append(orjson.dumps(row))
            counts["completed" if status == 200 else "failed"] += 1
        if out:
            batch["output_file_id"] = self._store_file(
                f"{batch['id']}_output.jsonl", "batch_output", b"\n".join(out) + b"\n")["id"]
        if errors:
            batch["error_file_id"] = self._store_file(
                f"{batch['id']}_error.jsonl", "batch_output", b"\n".join(errors) + b"\n")["id"]
        batch["status"] = "completed"
        batch["completed_at"] = int(time.time())

    async def _drop(self, request: web.Request) -> web.StreamResponse:
        """Close the socket without answering: the client sees a disconnect/connection error."""
        transport = request.transport
        if transport is not None:
            transport.abort()  # no FIN-after-flush; RST-ish close, nothing is written
        # Raising CancelledError makes aiohttp tear the handler down quietly.
        raise asyncio.CancelledError

    async def _huge_body(self, request: web.Request, size: int) -> web.StreamResponse:
        """A 200 completion whose content is `size` bytes, streamed (no Content-Length)."""
        resp = web.StreamResponse(headers={"Content-Type": _JSON})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        chunk = b"x" * (1 << 16)
        with contextlib.suppress(ConnectionError, RuntimeError):
            await resp.write(b'{"choices": [{"index": 0, "message": {"role": "assistant", '
                             b'"content": "')
            for _ in range(max(1, size // len(chunk))):
                await resp.write(chunk)
            await resp.write(b'"}, "finish_reason": "stop"}]}')
            await resp.write_eof()
        return resp

    async def _complete(self, body: dict[str, Any], fault: str | None) -> web.Response:
        finish_reason = "stop"
        if fault is None or fault in ("truncated", "empty_choices", *_SHAPE_FAULTS):
            try:
                result = self.responder(body)
                if inspect.isawaitable(result):
                    result = await result
            except Exception as exc:
                self.stats["responder_error"] += 1
                return web.Response(
                    status=500,
                    body=_error_body(f"responder failed: {exc!r}", "server_error", None),
                    content_type=_JSON,
                )
            if isinstance(result, dict):
                if fault is None:
                    self.stats["ok"] += 1
                return web.Response(body=orjson.dumps(result), content_type=_JSON)
            content = str(result)
            if fault == "truncated":
                content = content[: max(1, len(content) // 2)]
                finish_reason = "length"
        elif fault == "bad_json_content":
            content = _BAD_JSON_CONTENT
        elif fault == "wrong_shape":
            content = _WRONG_SHAPE
        elif fault == "refusal":
            content = _REFUSAL
        else:  # pragma: no cover - every fault kind is handled above
            raise AssertionError(fault)
        if fault is None:
            self.stats["ok"] += 1
        prompt_tokens = _count_tokens(body)
        completion_tokens = len(content.split())
        data = {
            "id": f"chatcmpl-fake-{next(self._ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model") or self.model,
            "choices": []
            if fault == "empty_choices"
            else [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content, "refusal": None},
                    "logprobs": None,
                    "finish_reason": finish_reason,
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }
        if fault == "content_parts":  # content as a list of text parts (some APIs do this)
            half = len(content) // 2
            data["choices"][0]["message"]["content"] = [
                {"type": "text", "text": content[:half]}, {"type": "text", "text": content[half:]}]
        elif fault == "usage_string":
            data["usage"] = "n/a"
        elif fault == "choice_string":
            data["choices"] = [content]
        elif fault == "huge_usage":
            data["usage"] = {"prompt_tokens": 2**70, "completion_tokens": 1, "total_tokens": 2**70}
            return web.Response(body=_dumps_big_ints(data), content_type=_JSON)
        return web.Response(body=orjson.dumps(data), content_type=_JSON)

    # ---- lifecycle: in the current event loop --------------------------------------------------

    async def start_async(self) -> FakeOpenAIServer:
        """Start listening in the running event loop; sets ``port`` to the bound port."""
        runner = web.AppRunner(
            self.make_app(),
            access_log=None,
            handler_cancellation=True,  # a client hanging up cancels a "timeout" hang
            shutdown_timeout=0.5,
        )
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, backlog=1024)
        await site.start()
        self._runner = runner
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or ()
        for sock in sockets:
            self.port = sock.getsockname()[1]
            break
        return self

    async def stop_async(self) -> None:
        """Stop listening and cancel in-flight handlers (e.g. hung ``timeout`` faults)."""
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> FakeOpenAIServer:
        return await self.start_async()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop_async()

    # ---- lifecycle: background thread ----------------------------------------------------------

    def start(self, timeout: float = 10.0) -> FakeOpenAIServer:
        """Start in a daemon thread with its own event loop; returns once listening."""
        if self._thread is not None:
            raise RuntimeError("already started")
        ready = threading.Event()
        failure: list[BaseException] = []

        async def serve() -> None:
            self._stop_event = asyncio.Event()
            try:
                await self.start_async()
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                return
            ready.set()
            try:
                await self._stop_event.wait()
            finally:
                await self.stop_async()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(serve())
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name="fake-openai-server", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise RuntimeError("fake server did not start in time")
        if failure:
            self._thread.join()
            self._thread = None
            raise failure[0]
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the background thread (idempotent)."""
        thread, loop, event = self._thread, self._loop, self._stop_event
        if thread is None or loop is None or event is None:
            return
        with contextlib.suppress(RuntimeError):  # loop already closed
            loop.call_soon_threadsafe(event.set)
        thread.join(timeout)
        self._thread = None

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --------------------------------------------------------------------------------------------
# Subprocess helper
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def start_subprocess_server(
    *, ready_timeout: float = 20.0, stderr: Any = None, **kwargs: Any
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """Run ``python -m vqa_gen.testing`` in a subprocess; yield ``(proc, base_url)``.

    Keyword arguments become CLI flags (``latency_ms=100`` -> ``--latency-ms 100``; ``True``
    -> bare flag; lists -> repeated flag, e.g. ``script=["rate_limit", None]``; dicts -> repeated
    ``k=v``, e.g. ``fault={"drop": 0.1}``). Why a subprocess: benchmarks must not share a GIL
    or event loop with the client they measure. The process gets SIGTERM on exit.
    """
    argv = [sys.executable, "-m", "vqa_gen.testing"]
    kwargs.setdefault("port", 0)
    for key, value in kwargs.items():
        flag = "--" + key.replace("_", "-")
        if value is None or value is False:
            continue
        if value is True:
            argv.append(flag)
        elif isinstance(value, dict):
            for k, v in value.items():
                argv += [flag, f"{k}={v}"]
        elif isinstance(value, (list, tuple)):
            for v in value:
                argv += [flag, str(v)]
        else:
            argv += [flag, str(value)]
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=stderr, stdin=subprocess.DEVNULL, text=True, env=env
    )
    try:
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
        reader.start()
        reader.join(ready_timeout)
        first = line[0].strip() if line else ""
        if not first.startswith("READY "):
            raise RuntimeError(
                f"fake server subprocess did not get ready (exit code {proc.poll()}, "
                f"first line {first!r})"
            )
        yield proc, first.split(" ", 1)[1]
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
