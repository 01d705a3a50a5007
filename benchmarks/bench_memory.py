"""Peak memory of a whole run over a large input (issue: "The generation pipeline, end to end").

Writes N caption records (default 200,000) to a temporary JSONL, runs the full pipeline
(read → render → call → parse → ground → write shards) against the project's test server in a
subprocess, and prints the run's peak resident memory. Streaming means the figure should not
grow with N: run it with --records 20000 and 200000 to see.

    python benchmarks/bench_memory.py [--records 200000] [--concurrency 64] [--workers N]

The grading workers (`--workers`, default one per core) are sampled too: their RSS summed with
the main process's (an upper bound: pages shared after fork count in every process) and PSS.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vqa_gen.records import read_records  # noqa: E402
from vqa_gen.runner import EndpointSettings, Run, RunOptions  # noqa: E402
from vqa_gen.testing import start_subprocess_server  # noqa: E402


def _kb(pid: int, file: str, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/{file}").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


class Sampler(threading.Thread):
    """Peak memory of this process plus its grading workers (children other than the test
    server), sampled every 0.2 s: RSS summed (pages shared after fork counted in every
    process: an upper bound) and PSS summed (shared pages split between the processes)."""

    def __init__(self, exclude: int) -> None:
        super().__init__(daemon=True)
        self.exclude = exclude
        self.peak_rss = self.peak_pss = 0
        self.max_workers = 0
        self.stop = threading.Event()

    def run(self) -> None:
        me = os.getpid()
        while not self.stop.wait(0.2):
            kids = [int(p) for p in Path(f"/proc/{me}/task/{me}/children").read_text().split()
                    if int(p) != self.exclude]
            pids = [me, *kids]
            self.max_workers = max(self.max_workers, len(kids))
            self.peak_rss = max(self.peak_rss, sum(_kb(p, "status", "VmRSS") for p in pids))
            self.peak_pss = max(self.peak_pss, sum(_kb(p, "smaps_rollup", "Pss") for p in pids))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--shard-size", type=int, default=10_000)
    ap.add_argument("--workers", type=int, default=os.cpu_count(), help="default: one per core")
    args = ap.parse_args()
    captions = [i.record for i in read_records(ROOT / "samples" / "captions.jsonl") if i.record]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "in.jsonl"
        with path.open("w") as fh:
            for i in range(args.records):
                r = captions[i % len(captions)]
                fh.write(json.dumps({"id": f"r{i:07d}", "image": f"img/{i}.jpg",
                                     "caption": f"{r.caption} (case {i})",
                                     "modality": r.modality, "meta": r.meta}) + "\n")
        size_mb = path.stat().st_size / 1e6
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        with start_subprocess_server(latency_ms=0, no_record=True,
                                     stderr=subprocess.DEVNULL) as (server, url):
            opts = RunOptions(input=path, out_dir=Path(tmp) / "out", use_cache=False,
                              shard_size=args.shard_size, workers=args.workers,
                              endpoint=EndpointSettings(base_url=url, model="m",
                                                        concurrency=args.concurrency))
            sampler = Sampler(exclude=server.pid)
            sampler.start()
            t0 = time.perf_counter()
            manifest = Run(opts).run()
            wall = time.perf_counter() - t0
            sampler.stop.set()
            sampler.join()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        out_mb = sum(p.stat().st_size for p in (Path(tmp) / "out").rglob("*")
                     if p.is_file()) / 1e6
    c = manifest["counts"]
    print(f"input: {args.records:,} records ({size_mb:.0f} MB); output {out_mb:.0f} MB in "
          f"{len(manifest['outputs']['data'])} data shards")
    print(f"records done {c['records_done']:,}, QA {c['qa_generated']:,} "
          f"({c['qa_kept']:,} kept) in {wall:.0f} s ({args.records / wall:.0f} records/s)")
    print(f"peak RSS: {peak:.0f} MB (before the run: {rss_before:.0f} MB)   target < 300 MB")
    print(f"with the {sampler.max_workers} grading workers (sampled every 0.2 s): peak RSS "
          f"summed {sampler.peak_rss / 1024:.0f} MB (shared pages counted in every process), "
          f"PSS summed {sampler.peak_pss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
