"""A lean async client for OpenAI-compatible chat completions.

Why not call `openai.AsyncOpenAI.chat.completions.create` directly? At scale the client's own CPU
per call is the limit: building and validating the typed request and response costs ~4 ms per
call, which caps a 2-core machine near 250 calls/s whatever the endpoint can do. Configuration
is resolved as the openai package does it (API key, base URL from the usual environment
variables), without importing it (a third of a second of start-up); the hot call is one
aiohttp POST with orjson, and errors map onto the same semantics: retry 429, 5xx, timeouts and
dropped connections with exponential backoff and jitter (honouring Retry-After); fail other
4xx at once with the endpoint's message.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiohttp
import orjson

from .errors import EndpointError, InputError

if TYPE_CHECKING:
    from .embedded import EmbeddedServer

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 120.0
OPENAI_API_BASE = "https://api.openai.com/v1"
MAX_RETRY_AFTER = 60.0
DEFAULT_MAX_RESPONSE_BYTES = 8 * 1024 * 1024
"""A reply body larger than this is cut off while being read (`malformed_response`): a chat
completion of a few QA pairs is a few KB, and a 60 MB body must not cost 60 MB per call."""

_SECRET_RE = re.compile(
    r"(?i)(bearer\s+)[^\s\"',;]+|\b(?:sk|rk|pk)-[A-Za-z0-9_\-]{8,}|"
    r"((?:api[_-]?key|x-api-key|authorization)[\"']?\s*[:=]\s*[\"']?)(?:bearer\s+)?[^\s\"',;]+")
REDACTED = "[REDACTED]"


def redact(text: str, *secrets: str | None) -> str:
    """`text` with API keys removed: the given secret values, `Bearer ...` tokens, `sk-...`-like
    keys and `api_key=...` pairs. Applied to every message that is stored or printed (an
    endpoint's error body may echo the request's Authorization header)."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, REDACTED)

    def sub(m: re.Match[str]) -> str:
        prefix = m.group(1) or m.group(2) or ""
        return prefix + REDACTED

    return _SECRET_RE.sub(sub, text)


class LLMError(EndpointError):
    """A call that did not produce a completion. `retryable` says whether trying again may help;
    `kind` is a stable short name (rate_limit, server_error, timeout, connection, bad_request,
    auth, not_found, malformed_response)."""

    def __init__(self, kind: str, message: str, *, status: int | None = None,
                 retryable: bool = False, retry_after: float | None = None) -> None:
        super().__init__(redact(message))
        self.kind = kind
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after
        #: How many HTTP attempts were made before giving up (set by ChatClient.complete).
        self.attempts = 0

    def __str__(self) -> str:
        prefix = f"HTTP {self.status} " if self.status else ""
        return f"{prefix}{self.kind}: {self.args[0]}"


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0

    def add(self, other: Usage) -> None:
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.total_tokens += other.total_tokens

    def to_dict(self) -> dict[str, int]:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "total_tokens": self.total_tokens}


@dataclass(slots=True)
class Completion:
    """The parts of a chat completion that vqa-gen uses, plus the raw body for the cache."""

    content: str
    finish_reason: str | None
    usage: Usage
    model: str | None = None
    raw: bytes = b""
    attempts: int = 1


@dataclass(slots=True)
class ClientConfig:
    """Where and how to call. `api_key` is used for the Authorization header only and is never
    written anywhere (see `describe`)."""

    base_url: str
    model: str
    api_key: str | None = field(default=None, repr=False)
    timeout: float = DEFAULT_TIMEOUT
    max_retries: int = 6
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    concurrency: int = 16
    extra_headers: dict[str, str] = field(default_factory=dict)
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {self.concurrency}")

    def describe(self) -> dict[str, Any]:
        """What may be recorded about the endpoint: host and model, never the key."""
        parts = urlsplit(self.base_url)
        return {"endpoint_host": parts.hostname or "", "endpoint_port": parts.port,
                "model": self.model, "timeout": self.timeout, "max_retries": self.max_retries}


def resolve_client_config(*, base_url: str | None, api_key: str | None, model: str,
                          **kwargs: Any) -> ClientConfig:
    """Resolve base URL and key the way the openai package does (flag, then OPENAI_BASE_URL /
    OPENAI_API_KEY, then the OpenAI API), so users configure vqa-gen exactly like any OpenAI
    client. Done here rather than by building an `openai.AsyncOpenAI`: importing the openai
    package costs a third of a second of every run's start-up."""
    import os

    if base_url and "://" not in base_url:
        base_url = "http://" + base_url  # `localhost:8000/v1`: the usual local server
    if base_url:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"base URL {base_url!r} is not an http(s) URL; write it "
                             "like http://host:8000/v1")
    url = base_url or os.environ.get("OPENAI_BASE_URL") or OPENAI_API_BASE
    resolved_key = api_key if api_key is not None else _env_key()
    return ClientConfig(base_url=url.rstrip("/"), api_key=resolved_key, model=model, **kwargs)


DEFAULT_MODEL = "gpt-4o-mini"
"""The model asked for on the OpenAI API when only a key is given."""


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
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES

    def use_embedded(self) -> bool:
        if self.model_path:
            return True
        return not (self.base_url or os.environ.get("OPENAI_BASE_URL") or self.model)

    def connect(self) -> tuple[ClientConfig, EmbeddedServer | None]:
        """The client settings for this endpoint. When that is the embedded model, its server
        is started here and returned for the caller to stop."""
        from .embedded import EmbeddedServer

        if self.concurrency < 1:  # a semaphore of 0 would wait forever
            raise InputError(f"concurrency must be at least 1, got {self.concurrency}")
        if not self.use_embedded():
            try:
                return resolve_client_config(
                    base_url=self.base_url, api_key=self.api_key,
                    model=self.model or DEFAULT_MODEL, timeout=self.timeout,
                    max_retries=self.max_retries, concurrency=self.concurrency,
                    max_response_bytes=self.max_response_bytes), None
            except ValueError as err:
                raise InputError(str(err)) from None
        server = EmbeddedServer(self.model_path,
                                parallel=self.embedded_parallel or min(self.concurrency, 4))
        try:
            base_url = server.start()
        except BaseException:
            server.stop()
            raise
        # No more calls in flight than the server has slots: a call queued inside llama.cpp
        # would spend its --timeout waiting, and on a busy machine whole records would fail.
        return ClientConfig(base_url=base_url, model=server.model_name, api_key=None,
                            timeout=self.timeout, max_retries=self.max_retries,
                            concurrency=min(self.concurrency, server.parallel),
                            max_response_bytes=self.max_response_bytes), server


def _env_key() -> str | None:
    import os

    return os.environ.get("OPENAI_API_KEY") or None


def _retry_after_seconds(headers: Any) -> float | None:
    for name in ("retry-after-ms", "Retry-After-Ms"):
        value = headers.get(name)
        if value:
            try:
                return max(0.0, float(value) / 1000.0)
            except ValueError:
                pass
    value = headers.get("Retry-After")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            from email.utils import parsedate_to_datetime

            try:
                import time

                return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
            except (TypeError, ValueError):
                return None
    return None


def _error_message(body: bytes) -> str:
    try:
        data = orjson.loads(body)
        err = data.get("error", data) if isinstance(data, dict) else data
        if isinstance(err, dict):
            return str(err.get("message") or err)[:300]
        return str(err)[:300]
    except (orjson.JSONDecodeError, AttributeError):
        return body[:300].decode("utf-8", errors="replace").strip() or "(empty body)"


def _status_error(status: int, body: bytes, headers: Any) -> LLMError:
    message = _error_message(body)
    if status == 429:
        return LLMError("rate_limit", message, status=status, retryable=True,
                        retry_after=_retry_after_seconds(headers))
    if status >= 500:
        return LLMError("server_error", message, status=status, retryable=True,
                        retry_after=_retry_after_seconds(headers))
    if status == 408:
        return LLMError("timeout", message, status=status, retryable=True)
    if status in (401, 403):
        return LLMError("auth", message, status=status)
    if status == 404:
        return LLMError("not_found", message, status=status)
    return LLMError("bad_request", message, status=status)


_MAX_TOKEN_COUNT = 2**53
"""Usage numbers above this are not token counts (a reply claiming 2^64 tokens is broken)."""


def _malformed(reason: str) -> LLMError:
    return LLMError("malformed_response", reason, retryable=True)


def _content_text(content: Any) -> str | None:
    """The text of a message's `content`: a string, or a list of text parts (joined)."""
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif (isinstance(part, dict) and part.get("type") in ("text", "output_text")
                  and isinstance(part.get("text"), str)):
                texts.append(part["text"])
            else:
                raise _malformed("the reply's content holds a part that is not text")
        return "".join(texts)
    raise _malformed(f"the reply's content is a {type(content).__name__}, not text")


def _usage(raw: Any) -> Usage:
    if raw is None:
        return Usage()
    if not isinstance(raw, dict):
        raise _malformed(f"the reply's usage is a {type(raw).__name__}, not an object")
    values = []
    for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
        v = raw.get(key)
        if v is None:
            v = 0
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < _MAX_TOKEN_COUNT:
            raise _malformed(f"the reply's usage.{key} is not a token count ({str(v)[:40]})")
        values.append(v)
    return Usage(*values)


def parse_completion(body: bytes) -> Completion:
    """Pick content, finish reason and usage out of a chat.completion body. Every part is
    checked for its type here, at the boundary: anything but the expected shape (HTML, an
    empty body, a string where an object belongs, a 2^64 token count) is a retryable
    `malformed_response`, never a crash further in."""
    if not body.strip():
        raise _malformed("the endpoint's response body is empty")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        head = body[:60].decode("utf-8", errors="replace").strip().splitlines()
        raise _malformed("the endpoint's response body is not JSON"
                         + (f" (starts with {head[0][:40]!r})" if head else "")) from None
    if not isinstance(data, dict):
        raise _malformed("the endpoint's response is not a JSON object")
    if "error" in data and not data.get("choices"):
        raise LLMError("server_error", _error_message(body), retryable=True)
    choices = data.get("choices")
    if choices is not None and not isinstance(choices, list):
        raise _malformed(f"the reply's choices is a {type(choices).__name__}, not a list")
    if not choices:
        raise LLMError("empty_choices", "the response has no choices", retryable=True)
    choice = choices[0]
    if not isinstance(choice, dict):
        raise _malformed(f"the reply's first choice is a {type(choice).__name__}, not an object")
    message = choice.get("message")
    if message is None:
        message = {}
    if not isinstance(message, dict):
        raise _malformed(f"the reply's message is a {type(message).__name__}, not an object")
    content = _content_text(message.get("content"))
    refusal = message.get("refusal")
    if content is None and refusal:
        content = str(refusal)
    finish_reason = choice.get("finish_reason")
    if finish_reason is not None and not isinstance(finish_reason, str):
        raise _malformed("the reply's finish_reason is not a string")
    model = data.get("model")
    return Completion(content=content or "", finish_reason=finish_reason,
                      usage=_usage(data.get("usage")),
                      model=model if isinstance(model, str) else None, raw=body)


class ChatClient:
    """Async chat-completions client with bounded concurrency and retries.

    One instance per run (it owns a connection pool); use it as an async context manager.
    """

    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        self._url = config.base_url.rstrip("/") + "/chat/completions"
        self._headers = {"Content-Type": "application/json", **config.extra_headers}
        if config.api_key:
            self._headers["Authorization"] = f"Bearer {config.api_key}"
        self._session: aiohttp.ClientSession | None = None
        self._semaphore = asyncio.Semaphore(config.concurrency)
        self.calls = 0
        self.retries = 0
        self.on_call: Callable[[bool], None] | None = None
        """Called before every HTTP call is sent, with whether it is a retry (the runner counts
        calls durably with it)."""

    async def __aenter__(self) -> ChatClient:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def open(self) -> None:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self.config.concurrency + 4,
                                             ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(
                connector=connector, json_serialize=lambda o: orjson.dumps(o).decode(),
                timeout=aiohttp.ClientTimeout(total=self.config.timeout),
            )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _post_once(self, payload: bytes, retry: bool) -> Completion:
        assert self._session is not None, "use ChatClient as an async context manager"
        self.calls += 1
        if self.on_call is not None:
            self.on_call(retry)
        try:
            async with self._session.post(self._url, data=payload, headers=self._headers) as resp:
                body = await self._read_capped(resp)
                if resp.status >= 400:
                    err = _status_error(resp.status, body, resp.headers)
                    err.args = (redact(err.args[0], self.config.api_key),)
                    raise err
                return parse_completion(body)
        except TimeoutError:
            raise LLMError("timeout", f"no response within {self.config.timeout:g}s",
                           retryable=True) from None
        except aiohttp.ClientPayloadError as err:
            raise LLMError("connection", f"response cut off ({err})", retryable=True) from None
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError,
                aiohttp.ClientConnectionError) as err:
            raise LLMError("connection", str(err) or type(err).__name__,
                           retryable=True) from None

    async def _read_capped(self, resp: aiohttp.ClientResponse) -> bytes:
        """The body, read in chunks and abandoned past `max_response_bytes` (so a huge body
        costs at most the cap in memory)."""
        cap = self.config.max_response_bytes
        error = resp.status >= 400  # an error keeps its status: its message is cut, not lost
        too_big = _malformed(f"the response body is larger than {cap:,} bytes "
                             "(--max-response-bytes)")
        if not error and resp.content_length is not None and resp.content_length > cap:
            raise too_big
        chunks: list[bytes] = []
        size = 0
        async for chunk in resp.content.iter_chunked(1 << 16):
            size += len(chunk)
            if size > cap:
                if error:
                    chunks.append(chunk[: len(chunk) - (size - cap)])
                    break
                raise too_big
            chunks.append(chunk)
        return b"".join(chunks)

    def _wait(self, attempt: int, exc: LLMError) -> float:
        """Backoff before attempt `attempt + 1`: exponential with full jitter, at least the
        endpoint's Retry-After (capped)."""
        ceiling = min(self.config.backoff_max,
                      self.config.backoff_initial * (2 ** (attempt - 1)))
        delay = random.uniform(0, ceiling)  # full jitter
        if exc.retry_after is not None:
            delay = max(delay, min(exc.retry_after, MAX_RETRY_AFTER))
        return delay

    async def complete(self, messages: list[dict[str, str]], **params: Any) -> Completion:
        """One chat completion with retries. `params` are passed through (temperature, seed,
        max_tokens, response_format, ...). Raises LLMError when it gives up.

        The retry loop is written out rather than driven by tenacity: tenacity's per-call
        machinery cost about a fifth of the client's CPU per call (issue 9's profile)."""
        payload = orjson.dumps({"model": self.config.model, "messages": messages, **params})
        attempts = 0
        async with self._semaphore:
            while True:
                attempts += 1
                try:
                    result = await self._post_once(payload, attempts > 1)
                except LLMError as err:
                    status = f" (HTTP {err.status})" if err.status else ""
                    if not err.retryable or attempts > self.config.max_retries:
                        err.attempts = attempts
                        log.debug("call failed after %d attempt(s): %s%s", attempts, err.kind,
                                  status)
                        raise
                    self.retries += 1
                    delay = self._wait(attempts, err)
                    # kind and status only: an endpoint's error text may echo request headers
                    log.info("retrying a call after %s%s (attempt %d of %d, waiting %.2fs)",
                             err.kind, status, attempts, self.config.max_retries + 1, delay)
                    await asyncio.sleep(delay)
                    continue
                result.attempts = attempts
                return result
