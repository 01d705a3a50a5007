"""Reliability figures (issue #3): faults, reruns, kills, and a 1 GB input.

    python benchmarks/bench_reliability.py                      # faults, rerun, kills
    python benchmarks/bench_reliability.py --big-gb 1.0         # also stream a ~1 GB JSONL
    python benchmarks/bench_reliability.py --only big --big-gb 1.0
    python benchmarks/bench_reliability.py --only fsync                # durability costs

* faults: 1,000 records against the test server failing 20% of calls at random (429 with and
  without Retry-After, 500/502/503, hangs past the client timeout, junk bodies, bad, off-shape and
  truncated JSON); counts lost, duplicated and unexplained records (all must be 0).
* rerun: a finished job run again in the same folder, and in a fresh folder served from the
  response cache: LLM calls (must be 0) and wall time against the first run's.
* kills: the CLI SIGKILLed five times at random moments, then resumed; compares the output files
  byte for byte with an uninterrupted run, and counts committed records sent again (must be 0).
* fsync (issue 10): per-commit cost of fsyncing outputs and progress at every commit, batched
  every second (the default) and never; and the speed of the whole-input fingerprint hash.
* big: writes a ~N GB JSONL to /tmp, streams it through `read_records`, prints throughput and
  the peak RSS of this process (must stay well under 300 MB); the file is deleted afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vqa_gen.records import read_records  # noqa: E402
from vqa_gen.runner import EndpointSettings, Run, RunOptions  # noqa: E402
from vqa_gen.testing import ALL_FAULTS, FakeOpenAIServer, FaultPlan  # noqa: E402

MODALITIES = ["clinical", "dermoscopic", "pathology"]


def make_rows(n: int) -> list[dict]:
    return [{"id": f"r{i:06d}", "image": f"img/{i}.jpg", "modality": MODALITIES[i % 3],
             "caption": f"Erythematous plaque number {i} on the left forearm. "
                        f"Fine white scale over {i % 5 + 1} papules."} for i in range(n)]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    with path.open("w") as fh:
        for r in rows:
            fh.write(json.dumps(r) + "\n")
    return path


def read_lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x] if path.exists() else []


def audit(out: Path, ids: set[str]) -> dict:
    """Lost, duplicated and unexplained records of a finished output folder."""
    qa = []
    for prefix in ("data", "rejected"):
        for shard in sorted(out.glob(f"{prefix}-*.jsonl")):
            qa += read_lines(shard)
    qa_ids = [r["id"] for r in qa]
    done = {r["record_id"] for r in qa}
    failed = read_lines(out / "failed.jsonl")
    failed_ids = [r["record_id"] for r in failed]
    c = json.loads((out / "manifest.json").read_text())["counts"]
    return {
        "lost": len(ids - done - set(failed_ids)),
        "duplicated_qa": len(qa_ids) - len(set(qa_ids)),
        "done_and_failed": len(done & set(failed_ids)),
        "unexplained_failures": sum(1 for r in failed
                                    if not (r["error"]["kind"] and r["error"]["message"])),
        "counts_add_up": (c["records_read"] == c["records_done"] + c["records_failed"]
                          + c["records_invalid"] and c["records_failed"] == len(failed)
                          and c["records_done"] == len(done)),
        "failed_by_kind": dict(Counter(r["error"]["kind"] for r in failed)),
        "done": len(done), "failed": len(failed),
    }


def bench_faults(tmp: Path, n: int) -> None:
    print(f"\n## {n:,} records, 20% of calls failing at random")
    rows = make_rows(n)
    path = write_jsonl(tmp / "faults.jsonl", rows)
    for retries in (6, 1):
        out = tmp / f"faults-out-{retries}"
        plan = FaultPlan.spread(0.2, hang_seconds=5, seed=1)
        with FakeOpenAIServer(faults=plan, latency_ms=5) as srv:
            t0 = time.perf_counter()
            Run(RunOptions(input=path, out_dir=out, use_cache=False, endpoint=EndpointSettings(
                base_url=srv.base_url, model="m", concurrency=32, timeout=1.0,
                max_retries=retries))).run()
            wall = time.perf_counter() - t0
            injected = {k: srv.stats[k] for k in ALL_FAULTS if srv.stats[k]}
            calls = srv.stats["requests"]
        a = audit(out, {r["id"] for r in rows})
        print(f"--max-retries {retries}: {calls:,} calls, {sum(injected.values()):,} faults "
              f"injected ({len(injected)} kinds), {wall:.1f}s")
        print(f"  done {a['done']:,} · failed {a['failed']:,} {a['failed_by_kind']} · "
              f"lost {a['lost']} · duplicated QA {a['duplicated_qa']} · done-and-failed "
              f"{a['done_and_failed']} · unexplained {a['unexplained_failures']} · counts add "
              f"up: {a['counts_add_up']}")


def bench_rerun(tmp: Path, n: int, latency_ms: float) -> None:
    print(f"\n## rerun of a finished job ({n:,} records, endpoint latency {latency_ms:g} ms, "
          "concurrency 32)")
    path = write_jsonl(tmp / "rerun.jsonl", make_rows(n))
    cache = tmp / "rerun-cache.sqlite"
    with FakeOpenAIServer(latency_ms=latency_ms) as srv:
        def run(out: Path) -> tuple[float, int, dict]:
            before = srv.stats["requests"]
            t0 = time.perf_counter()
            m = Run(RunOptions(input=path, out_dir=out, cache_path=cache,
                               endpoint=EndpointSettings(base_url=srv.base_url, model="m",
                                                         concurrency=32))).run()
            return time.perf_counter() - t0, srv.stats["requests"] - before, m["counts"]

        first, calls, _ = run(tmp / "rerun-out")
        print(f"first run:                  {first:6.2f}s  {calls:,} LLM calls")
        for name, out in (("same folder", tmp / "rerun-out"),
                          ("fresh folder, from cache", tmp / "rerun-fresh")):
            wall, calls, counts = run(out)
            print(f"rerun, {name + ':':<20}{wall:6.2f}s  {calls} LLM calls  "
                  f"({wall / first:.1%} of the first run; cache hits {counts['cache_hits']:,})")


def bench_kills(tmp: Path, n: int, kills: int, seed: int) -> None:
    print(f"\n## {kills} SIGKILLs at random moments, then resume ({n:,} records, --no-cache)")
    rows = make_rows(n)
    path = write_jsonl(tmp / "kills.jsonl", rows)
    caption_to_id = {r["caption"]: r["id"] for r in rows}
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    rng = random.Random(seed)
    with FakeOpenAIServer(latency_ms=20, max_recorded=10 * n) as srv:
        def args(out: Path) -> list[str]:
            return [sys.executable, "-m", "vqa_gen", "run", str(path), "--out", str(out),
                    "--base-url", srv.base_url, "--model", "m", "--concurrency", "8",
                    "--shard-size", "100", "--no-cache", "--quiet"]

        subprocess.run(args(tmp / "kills-ref"), env=env, check=True, capture_output=True)
        srv.reset()
        out = tmp / "kills-out"
        committed: list[int] = []
        resent = 0
        from vqa_gen.testing import extract_caption

        def done_ids() -> set[str]:
            p = out / ".vqa-gen" / "progress.jsonl"
            if not p.exists():
                return set()
            return {e["record_id"] for e in (json.loads(x) for x in p.read_bytes().splitlines()
                                             if x.endswith(b"}")) if e["status"] == "done"}

        # kill points: once the server has answered this many calls in all (random, spread over
        # the first 80% of the job), plus a random few milliseconds
        targets = sorted(rng.sample(range(10, n * 4 // 5), kills))
        for k in range(kills + 1):
            before = done_ids()
            srv.requests.clear()
            proc = subprocess.Popen(args(out), env=env, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            if k < kills:
                while srv.stats["ok"] < targets[k] and proc.poll() is None:
                    time.sleep(0.001)
                time.sleep(rng.uniform(0.0, 0.05))
                proc.send_signal(signal.SIGKILL)
            proc.wait()
            resent += sum(1 for r in list(srv.requests) if caption_to_id.get(
                extract_caption(r.body["messages"][-1]["content"])) in before)
            if k < kills:
                committed.append(len(done_ids()))
        total_calls = srv.stats["requests"]

    def files(o: Path) -> dict[str, bytes]:
        f = {p.name: p.read_bytes() for p in sorted(o.glob("*.jsonl"))}
        f["responses"] = (o / ".vqa-gen" / "responses.jsonl").read_bytes()
        return f

    same = files(out) == files(tmp / "kills-ref")
    a = audit(out, {r["id"] for r in rows})
    print(f"records committed when killed: {committed}")
    print(f"final output byte-identical to an uninterrupted run: {same} "
          f"({len(files(out))} files) · lost {a['lost']} · duplicated QA {a['duplicated_qa']}")
    print(f"LLM calls over all {kills + 1} runs: {total_calls:,} for {n:,} records · committed "
          f"records sent again: {resent}")


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def bench_big(gb: float, keep: bool) -> None:
    print(f"\n## streaming a {gb:g} GB JSONL through read_records")
    path = Path(tempfile.gettempdir()) / f"vqa_gen_bench_{gb:g}gb.jsonl"
    target = int(gb * 1e9)
    t0 = time.perf_counter()
    if not path.exists() or path.stat().st_size < target:
        with path.open("w") as fh:
            size, i = 0, 0
            while size < target:
                chunk = []
                for _ in range(10_000):
                    chunk.append(json.dumps({
                        "id": f"big-{i}", "image": f"images/{i}.jpg",
                        "modality": MODALITIES[i % 3],
                        "caption": (f"Case {i}. Well-demarcated erythematous plaques with "
                                    "silvery-white scale on the extensor aspect of both elbows "
                                    "and knees in a 54-year-old man. Dermoscopy shows dotted "
                                    "vessels in a regular distribution."),
                        "meta": {"source": "book", "page": i % 900, "figure": f"{i % 40}.{i}"},
                    }))
                    i += 1
                data = "\n".join(chunk) + "\n"
                fh.write(data)
                size += len(data)
        print(f"wrote {path} ({path.stat().st_size / 1e9:.2f} GB) in "
              f"{time.perf_counter() - t0:.0f}s")
    rss_before = rss_mb()
    t0 = time.perf_counter()
    n = bad = 0
    for item in read_records(path):
        n += 1
        bad += item.invalid is not None
    wall = time.perf_counter() - t0
    size = path.stat().st_size
    print(f"read {n:,} records ({bad} invalid) in {wall:.1f}s: {n / wall:,.0f} records/s, "
          f"{size / wall / 1e6:.0f} MB/s")
    print(f"peak RSS of this process: {rss_mb():.0f} MB (before reading: {rss_before:.0f} MB)")
    if not keep:
        path.unlink()


def bench_fsync(tmp: Path, n: int, hash_mb: int) -> None:
    """What durability costs per commit: the writer committing `n` real record results (3 QA
    lines each) with fsync after every commit, batched every second (the default), and never;
    then the whole-input hash a run takes at every start (input fingerprint)."""
    from vqa_gen.grounding import Verdict
    from vqa_gen.output import RunWriter
    from vqa_gen.pipeline import QASample, RecordResult
    from vqa_gen.records import CaptionRecord
    from vqa_gen.runner import input_identity

    def result(i: int) -> RecordResult:
        rec = CaptionRecord(id=f"r{i:06d}", image=f"img/{i}.jpg", caption=f"Plaque {i}.")
        qa = [QASample(id=f"r{i:06d}/open_vqa/{k}", record_id=rec.id, image=rec.image,
                       modality=None, question="What is on the forearm?" * 2,
                       answer="An erythematous plaque with fine white scale.", type="finding",
                       template="open_vqa", model="m", grounding=Verdict(1.0, True, ()),
                       index=k) for k in range(3)]
        return RecordResult(line=i + 1, record=rec, kept=qa, calls=1,
                            raw_responses=['{"qa_pairs": []}' * 10])

    results = [result(i) for i in range(n)]
    for label, interval in (("every commit", 0.0), ("batched, 1 s (default)", 1.0),
                            ("never (flush only)", float("inf"))):
        writer = RunWriter(tmp / f"fsync-{interval}", shard_size=10_000,
                           fsync_interval=interval)
        writer.start_fresh()
        t0 = time.perf_counter()
        for r in results:
            writer.commit(r)
        elapsed = time.perf_counter() - t0
        t1 = time.perf_counter()
        writer.sync()  # what one batched fsync of all open files costs
        one_sync = time.perf_counter() - t1
        writer.close()
        print(f"fsync {label:>24}: {elapsed / n * 1e6:8.1f} us/commit "
              f"({n / elapsed:,.0f} commits/s, {writer.fsyncs - 1} fsyncs); one fsync of "
              f"all files after it: {one_sync * 1e3:.1f} ms")
    path = tmp / "hash-input.jsonl"
    with path.open("wb") as fh:
        block = os.urandom(1 << 20)
        for _ in range(hash_mb):
            fh.write(block)
    t0 = time.perf_counter()
    input_identity(path)
    elapsed = time.perf_counter() - t0
    print(f"input fingerprint (sha256 of the whole file): {hash_mb} MB in {elapsed:.2f} s "
          f"({hash_mb / elapsed:,.0f} MB/s)")
    path.unlink()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", choices=["faults", "rerun", "kills", "big", "fsync"],
                   action="append")
    p.add_argument("--fsync-commits", type=int, default=2000)
    p.add_argument("--hash-mb", type=int, default=256)
    p.add_argument("--records", type=int, default=1000)
    p.add_argument("--rerun-latency-ms", type=float, default=500.0)
    p.add_argument("--kills", type=int, default=5)
    p.add_argument("--kill-records", type=int, default=1000)
    p.add_argument("--seed", type=int, default=3)
    p.add_argument("--big-gb", type=float, default=0.0, help="also stream a file this large")
    p.add_argument("--keep-big-file", action="store_true")
    a = p.parse_args()
    only = set(a.only or ["faults", "rerun", "kills"] + (["big"] if a.big_gb else []))
    tmp = Path(tempfile.mkdtemp(prefix="vqa-gen-bench-"))
    os.environ["VQA_GEN_CACHE"] = str(tmp / "cache.sqlite")
    try:
        if "faults" in only:
            bench_faults(tmp, a.records)
        if "rerun" in only:
            bench_rerun(tmp, a.records, a.rerun_latency_ms)
        if "kills" in only:
            bench_kills(tmp, a.kill_records, a.kills, a.seed)
        if "big" in only:
            bench_big(a.big_gb or 1.0, a.keep_big_file)
        if "fsync" in only:
            bench_fsync(tmp, a.fsync_commits, a.hash_mb)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
