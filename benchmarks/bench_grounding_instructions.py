"""Count the CPU instructions one grounding check costs, with valgrind's callgrind.

Seconds on a shared machine swing by half from one minute to the next; instruction counts do
not (the same code and input give the same count, whatever else the machine runs). This runs
the speed workload of `bench_grounding.py` (a new evidence text every 3-5 QA, caches emptied per
pass) under callgrind twice, with `--passes` and with 0 passes after one warm-up pass, and
prints the difference per check, so start-up and imports do not count.

    python benchmarks/bench_grounding_instructions.py [--data SET.jsonl ...] [--passes 2]
                                                      [--tree DIR | --installed] [--gc off]
                                                      [--profile N]

`--tree` measures another checkout (e.g. a worktree of an older commit) with this script's
workload, so two versions compare in one run. `--gc off` disables the garbage collector after
the warm-up pass (the collector's share is the difference to a run with it on). `--installed`
measures the vqa_gen this interpreter has installed instead of a checkout: run it with the
interpreter of a compiled install (`pip install .` with a C compiler) to count the compiled build;
`--profile N` then also lists its N costliest functions by inclusive instructions per check
(read from the C functions mypyc names after them; the pure build shows only the interpreter). Needs
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
import tempfile
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


def count(tree: Path | None, data: Path, passes: int, gc_off: bool,
          out_file: str = "/dev/null") -> int:
    """Instructions of a whole run of this script's workload under callgrind (its profile
    written to `out_file`)."""
    where = ["--installed"] if tree is None else ["--tree", str(tree)]
    cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out_file}", sys.executable,
           __file__, "--workload", *where, "--data", str(data),
           "--passes", str(passes)] + (["--gc", "off"] if gc_off else [])
    env = {**os.environ, "PYTHONHASHSEED": "0"}  # set order and so the work: repeatable
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stderr
    m = re.search(r"Collected : (\d+)", out)
    if not m:
        raise SystemExit(f"no instruction count in valgrind's output:\n{out[-2000:]}")
    return int(m.group(1))


_INCLUSIVE = re.compile(r"^\s*([\d,]+) \([^)]*\)\s+\*\s+.*?CPyDef_(\S+)")


def compiled_functions(profile: str) -> dict[str, int]:
    """Inclusive instructions per function of the compiled filter in one callgrind profile
    (mypyc names its C functions `CPyDef_<module>___<Class>___<method>`)."""
    text = subprocess.run(["callgrind_annotate", "--tree=calling", "--inclusive=yes",
                           "--threshold=100", profile], capture_output=True, text=True,
                          check=True).stdout
    out: dict[str, int] = {}
    for line in text.splitlines():
        m = _INCLUSIVE.match(line)
        if m:
            name = m.group(2).replace("___", ".")
            n = int(m.group(1).replace(",", ""))
            if n > out.get(name, 0):
                out[name] = n
    return out


def profile(data: Path, passes: int, gc_off: bool, top: int) -> None:
    """Print the compiled build's functions by inclusive instructions per check (the passes
    run minus the warm-up run, as for the totals): where a check's work goes, exactly."""
    n = sum(1 for line in data.open(encoding="utf-8") if line.strip())
    with tempfile.TemporaryDirectory() as tmp:
        full, base = f"{tmp}/full.out", f"{tmp}/base.out"
        total = count(None, data, passes, gc_off, full) - count(None, data, 0, gc_off, base)
        after, before = compiled_functions(full), compiled_functions(base)
    per = {k: (v - before.get(k, 0)) / (passes * n) for k, v in after.items()}
    print(f"{data.name}: {total / (passes * n):,.0f} instructions per check; inclusive per "
          "function (a caller includes its callees):")
    for name, v in sorted(per.items(), key=lambda kv: -kv[1])[:top]:
        print(f"{v:10,.0f}  {100 * v * passes * n / total:5.1f}%  {name}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, action="append", default=None)
    ap.add_argument("--passes", type=int, default=2)
    ap.add_argument("--tree", type=Path, default=ROOT, help="checkout whose vqa_gen to measure")
    ap.add_argument("--installed", action="store_true",
                    help="measure this interpreter's installed vqa_gen (e.g. a compiled build)")
    ap.add_argument("--gc", choices=["on", "off"], default="on")
    ap.add_argument("--profile", type=int, default=0, metavar="N",
                    help="with --installed on a compiled build: print its N costliest "
                         "functions (inclusive instructions per check)")
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
        if args.profile:
            if not COMPILED:
                print("--profile reads the compiled build's function names: run it with the "
                      "interpreter of a compiled install (pip install . with a C compiler)",
                      file=sys.stderr)
                return 2
            print(f"{where}, gc {args.gc}, {args.passes} passes minus 0 (after one warm-up)")
            for data in sets:
                profile(data, args.passes, args.gc == "off", args.profile)
            return 0
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
