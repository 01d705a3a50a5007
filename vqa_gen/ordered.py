"""Run an async function over a stream with bounded concurrency, yielding results in input order.

In-order output is what makes runs comparable line by line and resumable from a simple cursor;
the `window` bounds how far work may run ahead of the oldest unfinished item, which bounds
memory whatever the input size.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


async def ordered_map(
    fn: Callable[[T], Awaitable[R]],
    items: Iterable[T],
    *,
    concurrency: int,
    window: int | None = None,
) -> AsyncGenerator[R, None]:
    """Yield `await fn(item)` for each item, in order, with at most `concurrency` running and at
    most `window` started but not yet yielded. Exceptions from `fn` propagate (after the tasks
    still running are cancelled)."""
    concurrency = max(1, concurrency)
    window = max(concurrency, window or concurrency * 4)
    semaphore = asyncio.Semaphore(concurrency)
    pending: deque[asyncio.Task[R]] = deque()

    async def _run(item: T) -> R:
        async with semaphore:
            return await fn(item)

    iterator = iter(items)
    exhausted = False
    try:
        while True:
            while not exhausted and len(pending) < window:
                try:
                    item = next(iterator)
                except StopIteration:
                    exhausted = True
                    break
                pending.append(asyncio.ensure_future(_run(item)))
            if not pending:
                return
            head = pending.popleft()
            yield await head
    finally:
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
