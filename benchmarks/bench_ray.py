"""Ray's overhead per record on one machine vs the local runner (issue 12).

Both engines run the same job (same input, same template, the project's test server in a
subprocess answering in LATENCY ms) into fresh folders, at two input sizes, so the wall time
splits into a fixed part (cluster connection, actor start-up, dataset planning) and a per-record
part: per_record = (t_large - t_small) / (n_large - n_small). The local runner uses
`--concurrency ACTORS*CONC`, Ray `ACTORS` actors of `CONC` calls each, so both have the same
calls in flight. It also checks that both engines kept the same QA.

    python benchmarks/bench_ray.py [--small 200] [--large 2000] [--actors 2] [--conc 8]
                                   [--latency-ms 20] [--cpus 2]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import ray  # noqa: E402

from vqa_gen.distributed import RayRun, RaySettings  # noqa: E402
from vqa_gen.runner import EndpointSettings, Run, RunOptions  # noqa: E402
from vqa_gen.testing import start_subprocess_server  # noqa: E402

SAMPLES = ROOT / "samples" / "captions.jsonl"


def write_input(path: Path, n: int) -> Path:
    base = [json.loads(x) for x in SAMPLES.read_text().splitlines() if x.strip()]
    with path.open("w") as fh:
        for i in range(n):
            fh.write(json.dumps({**base[i % len(base)], "id": f"r{i:06d}"}) + "\n")
    return path


def timed(job) -> tuple[float, dict]:
    t0 = time.perf_counter()
    manifest = job.run()
    return time.perf_counter() - t0, manifest


def kept(out: Path) -> list[str]:
    return [line for p in sorted(out.glob("data-*.jsonl")) for line in p.read_text().splitlines()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", type=int, default=200)
    ap.add_argument("--large", type=int, default=2000)
    ap.add_argument("--actors", type=int, default=2)
    ap.add_argument("--conc", type=int, default=8, help="calls in flight per actor")
    ap.add_argument("--latency-ms", type=float, default=20.0)
    ap.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray cluster")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp, \
            start_subprocess_server(latency_ms=args.latency_ms, no_record=True) as (_, url):
        tmp_path = Path(tmp)
        t0 = time.perf_counter()
        ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
        init_s = time.perf_counter() - t0
        times: dict[tuple[str, int], float] = {}
        for n in (args.small, args.large):
            inp = write_input(tmp_path / f"in-{n}.jsonl", n)
            for engine in ("local", "ray"):
                out = tmp_path / f"{engine}-{n}"
                endpoint = EndpointSettings(
                    base_url=url, model="fake-model", api_key="bench",
                    concurrency=args.conc if engine == "ray" else args.conc * args.actors)
                opts = RunOptions(input=inp, out_dir=out, endpoint=endpoint, use_cache=False)
                job = (Run(opts) if engine == "local"
                       else RayRun(opts, RaySettings(actors=args.actors)))
                times[engine, n], manifest = timed(job)
                assert manifest["counts"]["records_done"] == n, manifest["counts"]
            same = kept(tmp_path / f"local-{n}") == kept(tmp_path / f"ray-{n}")
            print(f"{n} records: local {times['local', n]:.2f} s, ray {times['ray', n]:.2f} s; "
                  f"same kept QA: {same}")
        ray.shutdown()

    dn = args.large - args.small
    print(f"\nray.init (local cluster, {args.cpus} CPUs): {init_s:.1f} s (once per driver)")
    print(f"server latency {args.latency_ms:g} ms; {args.actors * args.conc} calls in flight for "
          f"both engines ({args.actors} actors x {args.conc} for ray)")
    per = {}
    for engine in ("local", "ray"):
        per[engine] = (times[engine, args.large] - times[engine, args.small]) / dn
        fixed = times[engine, args.small] - per[engine] * args.small
        print(f"{engine:>5}: {per[engine] * 1000:.2f} ms per record "
              f"({1 / per[engine]:.0f} records/s), fixed cost {fixed:.2f} s")
    print(f"ray overhead per record vs local: {(per['ray'] - per['local']) * 1000:+.2f} ms")


if __name__ == "__main__":
    main()
