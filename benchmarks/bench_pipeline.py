"""Speed of the generation path (issue: "The generation pipeline, end to end").

Prints four figures, measured in one run against the project's test server in a subprocess (so
the server's CPU is not counted against the client):

1. client CPU per LLM call: vqa-gen's ChatClient vs a bare `openai.AsyncOpenAI` loop;
2. throughput of the whole pipeline (render, call, parse, ground, commit in order) over N records
   at a given concurrency against a server answering in LATENCY ± JITTER ms, beside the ideal
   rate (concurrency / latency) and a bare AsyncOpenAI loop's rate in the same conditions;
3. per-QA work outside the LLM call (parse + ground + serialise), per QA pair.

    python benchmarks/bench_pipeline.py [--records 2000] [--concurrency 64] [--latency-ms 100]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import openai  # noqa: E402

from vqa_gen.answers import parse_qa_pairs  # noqa: E402
from vqa_gen.grounding import FilterConfig, GroundingFilter  # noqa: E402
from vqa_gen.llm import ChatClient, ClientConfig  # noqa: E402
from vqa_gen.output import dumps_line  # noqa: E402
from vqa_gen.pipeline import QASample  # noqa: E402
from vqa_gen.records import read_records  # noqa: E402
from vqa_gen.runner import EndpointSettings, Run, RunOptions  # noqa: E402
from vqa_gen.testing import start_subprocess_server  # noqa: E402
from vqa_gen.testing.server import qa_from_caption  # noqa: E402

SAMPLES = ROOT / "samples" / "captions.jsonl"


def _messages(caption: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": "You write QA pairs."},
            {"role": "user", "content": f"Caption:\n{caption}\n\nWrite 3 question-answer pairs."}]


def _captions() -> list[str]:
    return [i.record.caption for i in read_records(SAMPLES) if i.record]


async def _bare_openai(base_url: str, n: int, concurrency: int) -> tuple[float, float]:
    client = openai.AsyncOpenAI(base_url=base_url, api_key="bench", max_retries=0)
    caps = _captions()
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with sem:
            r = await client.chat.completions.create(model="m", messages=_messages(
                caps[i % len(caps)]), temperature=0.7, max_tokens=512)
            _ = r.choices[0].message.content

    cpu0, t0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
    await client.close()
    return cpu, wall


async def _ours(base_url: str, n: int, concurrency: int) -> tuple[float, float]:
    cfg = ClientConfig(base_url=base_url, model="m", api_key="bench", concurrency=concurrency)
    caps = _captions()
    async with ChatClient(cfg) as client:
        async def one(i: int) -> None:
            r = await client.complete(_messages(caps[i % len(caps)]), temperature=0.7,
                                      max_tokens=512)
            _ = r.content

        cpu0, t0 = time.process_time(), time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        return time.process_time() - cpu0, time.perf_counter() - t0


def _pipeline(base_url: str, n: int, concurrency: int) -> tuple[float, float, dict]:
    caps = _captions()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "in.jsonl"
        with path.open("w") as fh:
            for i in range(n):
                fh.write(json.dumps({"id": f"r{i}", "caption": caps[i % len(caps)],
                                     "modality": "clinical"}) + "\n")
        opts = RunOptions(input=path, out_dir=Path(tmp) / "out", use_cache=False,
                          endpoint=EndpointSettings(base_url=base_url, model="m",
                                                    concurrency=concurrency))
        run = Run(opts)
        cpu0, t0 = time.process_time(), time.perf_counter()
        manifest = run.run()
        return time.process_time() - cpu0, time.perf_counter() - t0, manifest["counts"]


def _per_qa_cost(rounds: int = 3) -> float:
    """Seconds per QA for parse + grounding + serialising one output line."""
    caps = _captions()
    replies = [(c, qa_from_caption({"messages": [{"role": "user", "content":
                                                  f"Caption: {c}\n\nWrite 5 questions."}]}))
               for c in caps]
    grounding = GroundingFilter(FilterConfig())
    best = float("inf")
    for _ in range(rounds):
        n_qa = 0
        t0 = time.process_time()
        for _ in range(10):
            grounding.analyser.clear_cache()  # no credit for having seen these texts before
            for caption, reply in replies:
                pairs = parse_qa_pairs(reply)
                verdicts = grounding.check_record(caption, [(p.question, p.answer)
                                                            for p in pairs])
                for i, (p, v) in enumerate(zip(pairs, verdicts, strict=True)):
                    dumps_line(QASample(f"x/{i}", "x", None, None, p.question, p.answer, p.type,
                                        "t", "m", v, i).to_dict())
                n_qa += len(pairs)
        best = min(best, (time.process_time() - t0) / n_qa)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=2000)
    ap.add_argument("--calls", type=int, default=3000, help="calls for the CPU-per-call figure")
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--latency-ms", type=float, default=100.0)
    ap.add_argument("--jitter-ms", type=float, default=20.0)
    args = ap.parse_args()
    print(f"machine: {os.cpu_count()} cores, python {sys.version.split()[0]}")

    with start_subprocess_server(latency_ms=0, no_record=True,
                                 stderr=subprocess.DEVNULL) as (_, url):
        asyncio.run(_ours(url, 200, 32))  # warm-up
        cpu_bare, _ = asyncio.run(_bare_openai(url, args.calls, 32))
        cpu_ours, _ = asyncio.run(_ours(url, args.calls, 32))
    print(f"\n1. client CPU per call ({args.calls} calls, zero-latency server, concurrency 32)")
    print(f"   bare AsyncOpenAI loop : {cpu_bare / args.calls * 1e3:6.3f} ms/call")
    print(f"   vqa-gen ChatClient    : {cpu_ours / args.calls * 1e3:6.3f} ms/call   "
          f"(target ≤ 1 ms)")

    ideal = args.concurrency / (args.latency_ms / 1000)
    with start_subprocess_server(latency_ms=args.latency_ms, jitter_ms=args.jitter_ms,
                                 no_record=True, stderr=subprocess.DEVNULL) as (_, url):
        _, wall_bare = asyncio.run(_bare_openai(url, args.records, args.concurrency))
        cpu_p, wall_p, counts = _pipeline(url, args.records, args.concurrency)
    rate_bare, rate_p = args.records / wall_bare, args.records / wall_p
    print(f"\n2. throughput: {args.records} records, concurrency {args.concurrency}, server "
          f"{args.latency_ms:g}±{args.jitter_ms:g} ms")
    print(f"   ideal (concurrency/latency)     : {ideal:7.1f} records/s")
    print(f"   bare AsyncOpenAI loop (calls)   : {rate_bare:7.1f} calls/s  "
          f"({rate_bare / ideal:.0%} of ideal)")
    print(f"   vqa-gen pipeline (whole records): {rate_p:7.1f} records/s "
          f"({rate_p / ideal:.0%} of ideal; target ≥ 80%)  CPU {cpu_p / args.records * 1e3:.2f}"
          f" ms/record; {counts['qa_generated']} QA, {counts['qa_kept']} kept")

    per_qa = _per_qa_cost()
    print("\n3. per-QA work outside the LLM call (parse + ground + serialise)")
    print(f"   {per_qa * 1e3:.3f} ms per QA pair   (target < 1 ms)")


if __name__ == "__main__":
    main()
