"""Benchmark the grounding filter on a labelled set: AUROC, P/R/F1, per-kind and per-check
figures, and speed (QA checks per second on one core).

    python benchmarks/bench_grounding.py [--data benchmarks/data/grounding_eval.jsonl]
                                         [--threshold X] [--strictness default] [--errors N]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vqa_gen.grounding import FilterConfig, GroundingFilter

DEFAULT_DATA = Path(__file__).resolve().parent / "data" / "grounding_eval.jsonl"


def auroc(pos: list[float], neg: list[float]) -> float:
    """Mann-Whitney AUROC with average ranks for ties (pos should score higher)."""
    items = sorted([(s, 1) for s in pos] + [(s, 0) for s in neg])
    ranks = [0.0] * len(items)
    i = 0
    while i < len(items):
        j = i
        while j + 1 < len(items) and items[j + 1][0] == items[i][0]:
            j += 1
        avg = (i + j) / 2 + 1
        for k in range(i, j + 1):
            ranks[k] = avg
        i = j + 1
    r_pos = sum(r for r, (_, lab) in zip(ranks, items, strict=True) if lab == 1)
    n_p, n_n = len(pos), len(neg)
    if not n_p or not n_n:
        return float("nan")
    return (r_pos - n_p * (n_p + 1) / 2) / (n_p * n_n)


def load(path: Path) -> list[dict]:
    rows = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if line:
                rows.append(json.loads(line))
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--threshold", type=float, default=None)
    ap.add_argument("--strictness", default="default", choices=["lenient", "default", "strict"])
    ap.add_argument("--errors", type=int, default=0, help="print N misclassified items per side")
    ap.add_argument("--min-checks", type=int, default=20_000)
    args = ap.parse_args(argv)

    cfg = FilterConfig(strictness=args.strictness, threshold=args.threshold)
    filt = GroundingFilter(cfg)
    rows = load(args.data)
    verdicts = [filt.check(r["caption"], r["question"], r["answer"], meta=r.get("meta"),
                           qa_type=r.get("qa_type")) for r in rows]
    is_h = [r["label"] == "hallucinated" for r in rows]
    h_scores = [1 - v.score for v, h in zip(verdicts, is_h, strict=True) if h]
    g_scores = [1 - v.score for v, h in zip(verdicts, is_h, strict=True) if not h]
    rejected = [not v.passed for v in verdicts]
    tp = sum(1 for h, rj in zip(is_h, rejected, strict=True) if h and rj)
    fp = sum(1 for h, rj in zip(is_h, rejected, strict=True) if not h and rj)
    fn = sum(1 for h, rj in zip(is_h, rejected, strict=True) if h and not rj)
    n_h, n_g = sum(is_h), len(rows) - sum(is_h)
    prec = tp / (tp + fp) if tp + fp else 0.0
    rec = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0

    print(f"data: {args.data}  items: {len(rows)} (hallucinated {n_h}, grounded {n_g})")
    print(f"config: strictness={cfg.strictness} threshold={cfg.threshold}")
    print(f"AUROC (hallucinated vs grounded, rank method): {auroc(h_scores, g_scores):.4f}")
    print(f"hallucinated @ threshold: precision {prec:.3f}  recall {rec:.3f}  F1 {f1:.3f}")
    print(f"rejection rate: hallucinated {tp / max(1, n_h):.1%}  grounded {fp / max(1, n_g):.1%}")

    print("\nper kind (label/kind: rejected/total):")
    by_kind: dict[tuple[str, str], list[bool]] = defaultdict(list)
    for r, rj in zip(rows, rejected, strict=True):
        by_kind[(r["label"], r.get("kind", "?"))].append(rj)
    for (label, kind), vals in sorted(by_kind.items()):
        what = "caught" if label == "hallucinated" else "wrongly rejected"
        print(f"  {label:12} {kind:22} {sum(vals):4}/{len(vals):<4} {what} "
              f"({sum(vals) / len(vals):.0%})")

    print("\nper check (items flagged: hallucinated / grounded):")
    flag_h: Counter[str] = Counter()
    flag_g: Counter[str] = Counter()
    code_h: Counter[str] = Counter()
    code_g: Counter[str] = Counter()
    for v, h in zip(verdicts, is_h, strict=True):
        checks = {r.check for r in v.reasons}
        codes = {r.code for r in v.reasons}
        (flag_h if h else flag_g).update(checks)
        (code_h if h else code_g).update(codes)
    for name in sorted(set(flag_h) | set(flag_g)):
        print(f"  {name:14} {flag_h[name]:4} / {flag_g[name]:<4}")
    print("per code (items: hallucinated / grounded):")
    for code in sorted(set(code_h) | set(code_g)):
        print(f"  {code:22} {code_h[code]:4} / {code_g[code]:<4}")

    if args.errors:
        for want, title in ((False, "missed hallucinations"), (True, "rejected grounded")):
            print(f"\n{title}:")
            shown = 0
            for r, v, h in zip(rows, verdicts, is_h, strict=True):
                if h != want and (not v.passed) == want and shown < args.errors:
                    shown += 1
                    print(f"  [{r.get('kind')}] {v.score:.2f} C: {r['caption'][:110]}")
                    print(f"      Q: {r['question']}  A: {r['answer']}")
                    print(f"      {[(x.code, x.evidence) for x in v.reasons]}")

    # speed: one core, loop over the set until >= min_checks
    reps = max(1, -(-args.min_checks // len(rows)))
    t0 = time.perf_counter()
    n = 0
    for _ in range(reps):
        for r in rows:
            filt.check(r["caption"], r["question"], r["answer"])
            n += 1
    dt = time.perf_counter() - t0
    cold = GroundingFilter(cfg)
    t1 = time.perf_counter()
    m = 0
    for _ in range(max(1, reps // 4)):
        for r in rows:
            cap = cold.analyser.caption(r["caption"])  # no caption reuse at all
            cold._check_facts(cap, r["question"], r["answer"], None)
            m += 1
    dt_cold = time.perf_counter() - t1
    print(f"\nspeed: {n / dt:,.0f} QA checks/s ({n} checks, caption analysed once per run of "
          f"same-caption items); {m / dt_cold:,.0f} checks/s re-analysing the caption every "
          f"time ({m} checks); one core, single thread")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
