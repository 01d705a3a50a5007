"""Count the CPU instructions one grounding check costs, with valgrind's callgrind.

Seconds on a shared machine swing by half from one minute to the next; instruction counts do
not (the same code and input give the same count, whatever else the machine runs). This runs
the speed workload of `bench_grounding.py` (a new evidence text every 3-5 QA, caches emptied per
pass) under callgrind twice, with `--passes` and with 0 passes after one warm-up pass, and
prints the difference per check, so start-up and imports do not count.

    python benchmarks/bench_grounding_instructions.py [--data SET.jsonl ...] [--passes 2]
                                                      [--tree DIR | --installed] [--gc off]

`--tree` measures another checkout (e.g. a worktree of an older commit) with this script's
workload, so two versions compare in one run. `--gc off` disables the garbage collector after
the warm-up pass (the collector's share is the difference to a run with it on). `--installed`
measures the vqa_gen this interpreter has installed instead of a checkout: run it with the
interpreter of an install built with `VQA_GEN_COMPILE=1` to count the compiled build. Needs
`valgrind` on PATH; takes about a minute per set.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_SETS = [HERE / "data" / "grounding_eval.jsonl", HERE / "data" / "general_eval.jsonl"]


def workload(tree: Path | None, data: Path, passes: int, gc_off: bool) -> None:
    """One warm-up pass, then `passes` timed passes of the grouped workload (run inside
    callgrind by `main`). `tree` None: the installed vqa_gen."""
    if tree is not None:
        sys.path.insert(0, str(tree))
    from vqa_gen.grounding import FilterConfig, GroundingFilter  # the tree's, imported first

    sys.path.insert(1, str(HERE))
    from bench_grounding import caption_groups

    rows = [json.loads(line) for line in data.open(encoding="utf-8") if line.strip()]
    groups = caption_groups(rows)
    filt = GroundingFilter(FilterConfig())

    def one_pass() -> None:
        filt.analyser.clear_cache()
        for caption, items in groups:
            filt.forget_caption()
            filt.check_record(caption, [(r.get("question") or "", r["answer"]) for r in items],
                              meta=items[0].get("meta"))

    one_pass()  # per-word tables filled, as in the timed benchmark's first pass
    if gc_off:
        gc.disable()
    for _ in range(passes):
        one_pass()


def count(tree: Path | None, data: Path, passes: int, gc_off: bool) -> int:
    """Instructions of a whole run of this script's workload under callgrind."""
    where = ["--installed"] if tree is None else ["--tree", str(tree)]
    cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
           __file__, "--workload", *where, "--data", str(data),
           "--passes", str(passes)] + (["--gc", "off"] if gc_off else [])
    env = {**os.environ, "PYTHONHASHSEED": "0"}  # set order and so the work: repeatable
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stderr
    m = re.search(r"Collected : (\d+)", out)
    if not m:
        raise SystemExit(f"no instruction count in valgrind's output:\n{out[-2000:]}")
    return int(m.group(1))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, action="append", default=None)
    ap.add_argument("--passes", type=int, default=2)
    ap.add_argument("--tree", type=Path, default=ROOT, help="checkout whose vqa_gen to measure")
    ap.add_argument("--installed", action="store_true",
                    help="measure this interpreter's installed vqa_gen (e.g. a compiled build)")
    ap.add_argument("--gc", choices=["on", "off"], default="on")
    ap.add_argument("--workload", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    sets = args.data or DEFAULT_SETS
    tree = None if args.installed else args.tree.resolve()
    if args.workload:
        workload(tree, sets[0], args.passes, args.gc == "off")
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind not found on PATH", file=sys.stderr)
        return 2
    if tree is None:
        from vqa_gen.grounding import COMPILED
        where = f"installed vqa_gen ({'compiled' if COMPILED else 'pure Python'})"
    else:
        where = f"tree {tree}"
    print(f"{where}, gc {args.gc}, {args.passes} passes minus 0 (after one warm-up pass)")
    for data in sets:
        n = sum(1 for line in data.open(encoding="utf-8") if line.strip())
        full = count(tree, data, args.passes, args.gc == "off")
        base = count(tree, data, 0, args.gc == "off")
        print(f"{data.name}: {(full - base) / (args.passes * n):,.0f} instructions per check")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
