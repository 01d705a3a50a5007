"""Dump every grounding verdict of the labelled sets, one JSON line each, to compare two
versions of the filter line by line (a speed change must leave every line identical).

    python benchmarks/grounding_verdicts.py [--tree DIR] [--data SET.jsonl ...] > new.jsonl
    python benchmarks/grounding_verdicts.py --tree ../old-checkout > old.jsonl
    cmp old.jsonl new.jsonl

Each line: [preset, set, row, score, passed, [[code, penalty, detail, evidence], ...]], for the
default and strict presets, each row checked as its own record and then every 4 rows as one
record sharing the first row's caption (caches and the duplicate check in play). Default sets:
those of `bench_grounding.py` (the team set, the general set and
../shared/grounding-dev/{q2,faithbench,summedits}.jsonl when present).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tree", type=Path, default=HERE.parent, help="checkout whose vqa_gen to use")
    ap.add_argument("--installed", action="store_true",
                    help="use the installed vqa_gen (e.g. a compiled regular install)")
    ap.add_argument("--data", type=Path, action="append", default=None)
    args = ap.parse_args(argv)
    if not args.installed:
        sys.path.insert(0, str(args.tree.resolve()))
    from vqa_gen.grounding import FilterConfig, GroundingFilter  # the tree's, imported first

    sys.path.insert(1, str(HERE))
    from bench_grounding import default_sets

    sets = [p for p in (args.data or default_sets()) if p.is_file()]
    out = sys.stdout
    for preset in ("default", "strict"):
        filt = GroundingFilter(FilterConfig(strictness=preset))
        for path in sets:
            rows = [json.loads(line) for line in path.open(encoding="utf-8") if line.strip()]

            def line(kind: str, i: int, v, name: str = path.stem) -> None:
                reasons = [[r.code, round(r.penalty, 9), r.detail, r.evidence] for r in v.reasons]
                out.write(json.dumps([kind, name, i, round(v.score, 9), v.passed, reasons]) + "\n")

            for i, r in enumerate(rows):
                filt.forget_caption()
                v = filt.check_record(r["caption"], [(r.get("question") or "", r["answer"])],
                                      meta=r.get("meta"))[0]
                line(preset, i, v)
            filt.analyser.clear_cache()
            for j in range(0, len(rows), 4):
                group = rows[j:j + 4]
                filt.forget_caption()
                verdicts = filt.check_record(
                    group[0]["caption"], [(r.get("question") or "", r["answer"]) for r in group],
                    meta=group[0].get("meta"))
                for k, v in enumerate(verdicts):
                    line("grp-" + preset, j + k, v)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
