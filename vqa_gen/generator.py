"""The importable API: `Generator` turns caption records into typed, grounded results.

    with Generator(template="open_vqa", base_url="http://localhost:8000/v1", model="qwen") as gen:
        for result in gen.generate(records):
            ...

`generate` is synchronous (it drives its own event loop in a helper thread, so it also works
inside notebooks); `agenerate` is the async variant for code that already has a loop. Both call
`pipeline.process_record`, the same function the CLI's batch runner uses.

Grading runs in this process unless `workers` > 1 asks for a pool of grading processes
(vqa_gen.workers), as the CLI uses by default. It is opt-in here because the pool forks the
calling process, which in an application (threads holding locks, a notebook kernel) the caller
should decide.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, Iterable, Iterator
from pathlib import Path
from typing import Any

from .cache import ResponseCache, open_cache
from .embedded import EmbeddedServer
from .grounding import FilterConfig
from .grounding.config import validate_filter_config
from .llm import ChatClient, ClientConfig, EndpointSettings
from .ordered import ordered_map
from .pipeline import GenerationContext, GenerationSettings, RecordResult, process_record
from .records import CaptionRecord, InputItem, InvalidRecord, coerce_record
from .templates import Template, load_template
from .workers import WorkerPool, WorkerSpec
from .workers import available as workers_available


def _to_item(index: int, value: CaptionRecord | dict[str, Any]) -> InputItem:
    line = index + 1
    try:
        return InputItem(line, record=coerce_record(value, index=line))
    except ValueError as err:
        rid = value.get("id") if isinstance(value, dict) else None
        return InputItem(line, invalid=InvalidRecord("<records>", line,
                                                     str(err).split(": ", 1)[-1],
                                                     str(rid) if rid else None))


class Generator:
    """Generate grounded QA for caption records with one template and one endpoint.

    With no `base_url` (and no OPENAI_BASE_URL) and no `model`, or with `model_path`, the
    embedded llama.cpp model is started on first use and stopped by `close()`.
    Results come back in input order, one `RecordResult` per record: `.kept` and `.rejected`
    QA samples (each with its grounding verdict), or `.failure` / `.invalid` saying why not.
    `workers` > 1: replies are parsed and grounded in that many forked processes (Linux and
    other Unixes but macOS; elsewhere, and with the LLM judge, in this process); same results.
    """

    def __init__(
        self,
        template: str | Path | Template = "open_vqa",
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        model: str | None = None,
        model_path: str | Path | None = None,
        qa_per_caption: int | None = None,
        temperature: float = 0.7,
        seed: int = 0,
        max_tokens: int = 1024,
        concurrency: int = 8,
        timeout: float = 120.0,
        max_retries: int = 6,
        filter: FilterConfig | dict[str, Any] | None = None,
        cache: bool | str | Path = False,
        settings: GenerationSettings | None = None,
        workers: int = 1,
    ) -> None:
        if concurrency < 1:  # a semaphore of 0 would wait forever
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.workers = workers
        self.last_pool_graded = (0, 0)
        """Replies graded by the worker pool and in this process in the last `generate`
        with workers > 1."""
        self.template = template if isinstance(template, Template) else load_template(template)
        self.settings = settings or GenerationSettings(
            qa_per_caption=qa_per_caption, temperature=temperature, seed=seed,
            max_tokens=max_tokens)
        self.filter = validate_filter_config(filter)
        self.endpoint = EndpointSettings(
            base_url=base_url, api_key=api_key, model=model,
            model_path=str(model_path) if model_path else None, timeout=timeout,
            max_retries=max_retries, concurrency=concurrency)
        self._cache_setting = cache
        self._cache: ResponseCache | None = None
        self._embedded: EmbeddedServer | None = None
        self._client_config: ClientConfig | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.model = model or ""

    # -- endpoint -------------------------------------------------------------------------
    def _resolve(self) -> ClientConfig:
        if self._client_config is not None:
            return self._client_config
        self._client_config, self._embedded = self.endpoint.connect()
        self.model = self._client_config.model
        if self._cache_setting and self._cache is None:
            path = None if self._cache_setting is True else self._cache_setting
            self._cache = open_cache(path)
        return self._client_config

    # -- async API ------------------------------------------------------------------------
    async def agenerate(self, records: Iterable[CaptionRecord | dict[str, Any]]
                        ) -> AsyncGenerator[RecordResult, None]:
        """Yield one result per record, in input order, calling the endpoint concurrently."""
        config = self._resolve()
        pool = None
        if self.workers > 1 and workers_available() and not self.filter.judge:
            # forked before the client opens connections; the QA come back as QASamples
            spec = WorkerSpec(self.template, self.settings, self.filter, self.model)
            pool = WorkerPool(spec, self.workers, lines=False).start()
        try:
            async with ChatClient(config) as client:
                ctx = GenerationContext.build(
                    self.template, self.settings, client, self.model, self.filter,
                    cache=self._cache,
                    grounding=pool.context["grounding"] if pool is not None else None)
                ctx.grader = pool

                async def work(item: InputItem) -> RecordResult:
                    return await process_record(item, ctx)

                items = (_to_item(i, r) for i, r in enumerate(records))
                async for result in ordered_map(work, items, concurrency=config.concurrency):
                    yield result
        finally:
            if pool is not None:
                pool.close()
                self.last_pool_graded = (pool.graded, pool.graded_here)

    # -- sync API -------------------------------------------------------------------------
    def _background_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="vqa-gen-loop", daemon=True)
            thread.start()
            self._loop, self._thread = loop, thread
        return self._loop

    def generate(self, records: Iterable[CaptionRecord | dict[str, Any]]
                 ) -> Iterator[RecordResult]:
        """Synchronous `agenerate`: yields results as they are ready, in input order."""
        loop = self._background_loop()
        agen = self.agenerate(records)
        try:
            while True:
                future = asyncio.run_coroutine_threadsafe(agen.__anext__(), loop)
                try:
                    yield future.result()
                except StopAsyncIteration:
                    return
        finally:
            asyncio.run_coroutine_threadsafe(agen.aclose(), loop).result()

    # -- lifecycle ------------------------------------------------------------------------
    def close(self) -> None:
        """Stop the embedded model (if started), the helper loop and the cache."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            if self._thread is not None:
                self._thread.join(timeout=5)
            self._loop.close()
            self._loop = self._thread = None
        if self._embedded is not None:
            self._embedded.stop()
            self._embedded = None
        if self._cache is not None:
            self._cache.close()
            self._cache = None
        self._client_config = None

    def __enter__(self) -> Generator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Generator:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()
