"""Peak memory and speed of `vqa-gen export` on a 1,000,000-QA run folder, per format.

Makes a small real run against the project's test server (multiple-choice template, so lines
carry options), replicates its kept lines into a run folder of --qa lines (5 QA per record and
image, 10,000 per shard, with a manifest that adds up), then exports it in a fresh process per
format and prints each process's peak RSS and QA/s. With --images (default on) every image is a
tiny PNG on disk and `hf --image-root` embeds the bytes.

    python benchmarks/bench_export.py [--qa 1000000] [--formats llava,openai,csv,hf,hf-images]
    python benchmarks/bench_export.py --qa 50000 --formats hf-images --image-kb 100
    python benchmarks/bench_export.py --formats ""      # only the split-proportion figure
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

QA_PER_IMAGE = 5
SHARD = 10_000


def _png(i: int, pad_kb: int = 0) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    raw = b"\x00" + bytes([i % 256, (i >> 8) % 256, (i >> 16) % 256])
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw))
            + (chunk(b"tEXt", b"pad\x00" + os.urandom(pad_kb * 1024)) if pad_kb else b"")
            + chunk(b"IEND", b""))


def make_run(tmp: Path, n_qa: int, images: bool, image_kb: int = 0) -> Path:
    """A run folder of n_qa kept lines cloned from a real run's lines."""
    from vqa_gen.runner import EndpointSettings, Run, RunOptions
    from vqa_gen.testing import FakeOpenAIServer
    from vqa_gen.testing.formats import format_aware

    seed_run = tmp / "seed-run"
    with FakeOpenAIServer(responder=format_aware) as srv:
        manifest = Run(RunOptions(input=ROOT / "samples" / "captions.jsonl", out_dir=seed_run,
                                  template="multiple_choice", use_cache=False,
                                  endpoint=EndpointSettings(base_url=srv.base_url,
                                                            model="m"))).run()
    lines = [json.loads(x) for p in sorted(seed_run.glob("data-*.jsonl"))
             for x in p.read_text().splitlines()]
    run = tmp / "run"
    run.mkdir()
    names = []
    fh = None
    for i in range(n_qa):
        if i % SHARD == 0:
            if fh:
                fh.close()
            names.append(f"data-{i // SHARD:05d}.jsonl")
            fh = (run / names[-1]).open("w")
        rec = i // QA_PER_IMAGE
        row = dict(lines[i % len(lines)])
        row.update(id=f"r{rec:07d}/multiple_choice/{i % QA_PER_IMAGE}", record_id=f"r{rec:07d}",
                   image=f"img/{rec // 1000:04d}/{rec}.png")
        fh.write(json.dumps(row) + "\n")  # type: ignore[union-attr]
    fh.close()  # type: ignore[union-attr]
    n_records = -(-n_qa // QA_PER_IMAGE)
    counts = dict(manifest["counts"], records_read=n_records, records_done=n_records,
                  records_invalid=0, records_failed=0, qa_generated=n_qa, qa_kept=n_qa,
                  qa_rejected=0)
    (run / "manifest.json").write_text(json.dumps(
        dict(manifest, counts=counts, outputs={"data": names, "rejected": []})))
    if images:
        root = tmp / "images"
        for rec in range(n_records):
            path = root / f"img/{rec // 1000:04d}/{rec}.png"
            if rec % 1000 == 0:
                path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(_png(rec, image_kb))
    return run


def split_figures(seeds: int, images: int = 10_000) -> None:
    """How far the hash-based split lands from train=0.8,val=0.1,test=0.1 on `images` images."""
    from collections import Counter

    from vqa_gen.export import assign_split, parse_split

    splits = parse_split("train=0.8,val=0.1,test=0.1")
    devs = []
    for seed in range(seeds):
        got = Counter(assign_split(f"images/{i}.jpg", seed, splits) for i in range(images))
        devs.append(max(abs(got[n] / images - f) for n, f in splits))
    devs.sort()
    print(f"split train=0.8,val=0.1,test=0.1 on {images:,} images, {seeds} seeds: largest "
          f"deviation {devs[-1]:.2%} (median {devs[len(devs) // 2]:.2%}); seeds above 1 point: "
          f"{sum(d > 0.01 for d in devs)}")


def child(fmt: str, run: str, out: str, images: str) -> None:
    """One export in this process; prints a JSON line with its figures."""
    from vqa_gen.export import ExportOptions, export_run

    t0 = time.perf_counter()
    extra: dict = {}
    if fmt == "openai":
        extra = {"image_base_url": "https://example.org/data"}
    if fmt == "hf-images":
        fmt, extra = "hf", {"image_root": Path(images)}
    summary = export_run(Path(run), ExportOptions(fmt, Path(out), **extra,
                                                  split=(("train", 0.9), ("test", 0.1))))
    wall = time.perf_counter() - t0
    size = sum(p.stat().st_size for p in Path(out).parent.rglob("*") if p.is_file())
    print(json.dumps({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "wall_s": wall, "exported": summary.exported, "out_mb": size / 1e6,
                      "items": sum(s.items for s in summary.splits.values()),
                      "images": sum(s.images for s in summary.splits.values())}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--qa", type=int, default=1_000_000)
    ap.add_argument("--formats", default="llava,openai,csv,hf,hf-images")
    ap.add_argument("--image-kb", type=int, default=0,
                    help="pad every image file to about this size (default: ~70-byte PNGs)")
    ap.add_argument("--split-seeds", type=int, default=100,
                    help="seeds for the split-proportion figure (0: skip)")
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return
    if args.split_seeds:
        split_figures(args.split_seeds)
    formats = [f for f in args.formats.split(",") if f]
    if not formats:
        return
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        t0 = time.perf_counter()
        run = make_run(tmp, args.qa, "hf-images" in formats, args.image_kb)
        run_mb = sum(p.stat().st_size for p in run.iterdir()) / 1e6
        print(f"run folder: {args.qa:,} kept QA in {args.qa // SHARD} shards, {run_mb:.0f} MB "
              f"(made in {time.perf_counter() - t0:.0f} s); split train=0.9,test=0.1")
        for fmt in formats:
            out_dir = tmp / f"out-{fmt}"
            out_dir.mkdir()
            name = {"llava": "x.json", "openai": "x.jsonl", "csv": "x.csv"}.get(fmt, "ds")
            proc = subprocess.run([sys.executable, __file__, "--child", fmt, str(run),
                                   str(out_dir / name), str(tmp / "images")],
                                  capture_output=True, text=True, check=False)
            if proc.returncode:
                print(f"{fmt}: failed\n{proc.stderr[-2000:]}")
                continue
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            print(f"{fmt:<10} exported {r['exported']:,} QA ({r['items']:,} items, "
                  f"{r['images']:,} images) in {r['wall_s']:.1f} s = "
                  f"{r['exported'] / r['wall_s']:,.0f} QA/s; output {r['out_mb']:.0f} MB; "
                  f"peak RSS {r['peak_rss_mb']:.0f} MB   (target < 300 MB)")


if __name__ == "__main__":
    main()
