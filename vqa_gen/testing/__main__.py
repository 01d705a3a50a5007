"""Run the fake OpenAI server as a process: ``python -m vqa_gen.testing --port 0 ...``.

Prints exactly one line ``READY http://HOST:PORT/v1`` to stdout once listening, serves until
SIGTERM/SIGINT, then writes one ``STATS {...}`` JSON line to stderr. A separate process keeps the
server's CPU out of the client's GIL and event loop when benchmarking.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence

import orjson

from vqa_gen.testing.formats import format_aware
from vqa_gen.testing.realistic import realistic_responder
from vqa_gen.testing.server import (
    ALL_FAULTS,
    DEFAULT_FAULT_MIX,
    DEFAULT_MODEL,
    FakeOpenAIServer,
    FaultPlan,
    canned,
)

_NO_FAULT = {"", "none", "ok", "-"}


def build_parser() -> argparse.ArgumentParser:
    """The CLI; flags mirror :class:`FakeOpenAIServer` and :class:`FaultPlan` parameters."""
    p = argparse.ArgumentParser(prog="python -m vqa_gen.testing", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    p.add_argument("--latency-ms", type=float, default=0.0)
    p.add_argument("--jitter-ms", type=float, default=0.0, help="uniform +/- around latency")
    p.add_argument(
        "--fault-rate",
        type=float,
        default=0.0,
        help=f"total fault probability, spread evenly over: {', '.join(DEFAULT_FAULT_MIX)}",
    )
    p.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="KIND=P",
        help=f"extra per-kind probability (repeatable); kinds: {', '.join(ALL_FAULTS)}",
    )
    p.add_argument(
        "--script",
        action="append",
        default=[],
        help="comma-separated faults for the first requests, in order (repeatable: appends); "
        "'ok', 'none' or empty = normal answer",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--hang-seconds", type=float, default=30.0, help="stall of a timeout fault")
    p.add_argument("--retry-after", type=float, default=0.05, help="429 Retry-After seconds")
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--api-key", default=None, help="require this bearer token (else 401)")
    p.add_argument(
        "--canned", action="append", default=[], help="fixed reply content (repeatable: cycles)"
    )
    p.add_argument("--no-record", action="store_true", help="do not keep received requests")
    p.add_argument(
        "--realistic",
        action="store_true",
        help="serve realistic replies (vqa_gen.testing.realistic: answers of 3-40 words mixing "
        "caption phrases, paraphrases and invented content) instead of caption spans",
    )
    return p


def plan_from_args(args: argparse.Namespace) -> FaultPlan:
    """Translate CLI flags into a :class:`FaultPlan` (raises ``SystemExit`` on bad input)."""
    probs: dict[str, float] = {}
    if args.fault_rate:
        share = args.fault_rate / len(DEFAULT_FAULT_MIX)
        probs = dict.fromkeys(DEFAULT_FAULT_MIX, share)
    for item in args.fault:
        kind, _, value = item.partition("=")
        kind = kind.strip()
        if kind not in ALL_FAULTS:
            raise SystemExit(f"unknown fault kind {kind!r}; known: {', '.join(ALL_FAULTS)}")
        probs[kind] = probs.get(kind, 0.0) + float(value)
    script: list[str | None] = [
        None if s.strip().lower() in _NO_FAULT else s.strip()
        for chunk in args.script
        for s in chunk.split(",")
    ]
    try:
        return FaultPlan(
            **probs,
            script=script,
            seed=args.seed,
            retry_after=args.retry_after,
            hang_seconds=args.hang_seconds,
        )
    except ValueError as exc:
        raise SystemExit(str(exc)) from exc


async def serve(args: argparse.Namespace) -> FakeOpenAIServer:
    """Serve until SIGTERM/SIGINT; returns the server so the caller can report stats."""
    server = FakeOpenAIServer(
        # format_aware answers qa_pairs like qa_from_caption, and every other answer format
        # (yes_no, multiple_choice, conversation, description) in its own shape
        responder=(canned(*args.canned) if args.canned
                   else realistic_responder if args.realistic else format_aware),
        faults=plan_from_args(args),
        latency_ms=args.latency_ms,
        jitter_ms=args.jitter_ms,
        host=args.host,
        port=args.port,
        model=args.model,
        api_key=args.api_key,
        seed=args.seed,
        record=not args.no_record,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await server.start_async()
    try:
        sys.stdout.write(f"READY {server.base_url}\n")
        sys.stdout.flush()
        await stop.wait()
    finally:
        await server.stop_async()
    return server


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point for ``python -m vqa_gen.testing``."""
    args = build_parser().parse_args(argv)
    server = asyncio.run(serve(args))
    stats = dict(server.stats)
    stats.pop("in_flight", None)
    sys.stderr.write("STATS " + orjson.dumps(stats).decode() + "\n")
    sys.stderr.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
