"""Benchmark the grounding filter on labelled sets: per set, AUROC of the score, AUROC within
answer-length deciles, the word-overlap floor (and its binned AUROC) computed in the same run,
rejection rates (hallucinated / grounded rejected) at each preset, and checks per CPU-second.

    python benchmarks/bench_grounding.py [--data SET.jsonl ...] [--strictness default]
                                         [--threshold X] [--details] [--errors N]
                                         [--min-checks N] [--judge [--judge-base-url URL ...]]

Default sets: the team set (benchmarks/data/grounding_eval.jsonl), the general set
(benchmarks/data/general_eval.jsonl) and ../shared/grounding-dev/{q2,faithbench,summedits}.jsonl
found relative to the repository (skipped with a note when absent). Each row is its own record.

The floor is the share of the answer's content words (lower-cased alphanumeric tokens minus ~40
stop words) found in the evidence. Length-binned AUROC: items split into deciles of answer word
count, AUROC per bin, averaged over the bins holding both labels (what the score ranks beyond
answer length). Speed: a new evidence text every 3-5 QA (check_record per group, duplicates
check included), CPU time of this one single-threaded process, median of 3 runs, caches emptied
before each pass. `--judge` also measures the optional LLM judge (the embedded model unless an
endpoint is given).
"""

from __future__ import annotations

import argparse
import bisect
import json
import re
import statistics
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

try:  # the installed package (compiled by a regular install with a C compiler), else this checkout
    import vqa_gen  # noqa: F401
except ImportError:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vqa_gen.grounding import COMPILED, FilterConfig, GroundingFilter
from vqa_gen.grounding.lexicon import words

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


def caption_groups(rows: list[dict]) -> list[tuple[str, list[dict]]]:
    """Split the items into records of 3, 4, 5, 3, ... QA sharing one caption: the worst
    realistic case, a VQA set whose captions each carry a handful of QA."""
    by_caption: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_caption[r["caption"]].append(r)
    sizes = (3, 4, 5)
    groups: list[tuple[str, list[dict]]] = []
    k = 0
    for caption, items in by_caption.items():
        i = 0
        while i < len(items):
            n = sizes[k % len(sizes)]
            k += 1
            groups.append((caption, items[i:i + n]))
            i += n
    return groups


def measure_speed(cfg: FilterConfig, rows: list[dict], min_checks: int, repeats: int = 5
                  ) -> tuple[float, int, float, int]:
    """(checks per CPU-second, checks) for caption groups of 3-5 QA and for a new caption
    every QA: the median of `repeats` runs, each timed with the process's CPU time (one
    single-threaded process = one core; other load on a shared machine does not count)."""
    groups = caption_groups(rows)
    passes = max(1, -(-min_checks // (len(rows) * repeats)))

    def grouped(filt: GroundingFilter) -> int:
        n = 0
        for _ in range(passes):
            filt.analyser.clear_cache()
            for caption, items in groups:
                filt.forget_caption()  # each group is a new evidence text, analysed anew
                filt.check_record(caption, [(r["question"], r["answer"]) for r in items],
                                  meta=items[0].get("meta"))
                n += len(items)
        return n

    def every_new(filt: GroundingFilter) -> int:
        n = 0
        for _ in range(max(1, passes // 2)):
            filt.analyser.clear_cache()
            for r in rows:
                filt.forget_caption()
                filt.check_record(r["caption"], [(r["question"], r["answer"])],
                                  meta=r.get("meta"))
                n += 1
        return n

    out: list[float | int] = []
    for fn in (grouped, every_new):
        filt = GroundingFilter(cfg)
        rates: list[float] = []
        total = 0
        for _ in range(repeats):
            t0 = time.process_time()
            n = fn(filt)
            rates.append(n / max(1e-9, time.process_time() - t0))
            total += n
        out += [statistics.median(rates), total]
    return out[0], int(out[1]), out[2], int(out[3])


def summary_line(rows: list[dict], verdicts: list) -> str:
    """AUROC and rejection rates of one set of verdicts."""
    is_h = [r["label"] == "hallucinated" for r in rows]
    h = [1 - v.score for v, x in zip(verdicts, is_h, strict=True) if x]
    g = [1 - v.score for v, x in zip(verdicts, is_h, strict=True) if not x]
    rh = sum(1 for v, x in zip(verdicts, is_h, strict=True) if x and not v.passed)
    rg = sum(1 for v, x in zip(verdicts, is_h, strict=True) if not x and not v.passed)
    return (f"AUROC {auroc(h, g):.4f}; rejection rate: hallucinated {rh / max(1, len(h)):.1%}  "
            f"grounded {rg / max(1, len(g)):.1%}")


def run_judge(cfg: FilterConfig, rows: list[dict], verdicts: list, base_url: str | None,
              model: str | None, api_key: str | None, cache_path: Path | None,
              concurrency: int) -> tuple[list, dict[str, int]]:
    """Verdicts with the optional LLM judge folded in (the embedded model when no endpoint is
    given), and what it cost."""
    import asyncio

    from vqa_gen.cache import ResponseCache
    from vqa_gen.grounding import GroundingJudge
    from vqa_gen.grounding.judge import JudgeStats
    from vqa_gen.llm import ChatClient, ClientConfig

    filt = GroundingFilter(cfg)
    cache = ResponseCache(cache_path) if cache_path else None
    stats = JudgeStats()

    async def go(url: str, name: str) -> list:
        out = list(verdicts)
        sem = asyncio.Semaphore(concurrency)
        async with ChatClient(ClientConfig(base_url=url, model=name, api_key=api_key,
                                           timeout=300.0, concurrency=concurrency)) as client:
            judge = GroundingJudge(client, model=name, cache=cache, config=cfg)

            async def one(i: int) -> None:
                r, v = rows[i], verdicts[i]
                if not v.passed:
                    return
                async with sem:
                    res = await judge.judge(r["caption"], r["question"], r["answer"], stats)
                extra = judge.reasons(res)
                if extra:
                    out[i] = filt.combine((*v.reasons, *extra))

            await asyncio.gather(*(one(i) for i in range(len(rows))))
        return out

    if base_url:
        judged = asyncio.run(go(base_url, model or "default"))
    else:
        from vqa_gen.embedded import EmbeddedServer

        with EmbeddedServer() as srv:
            judged = asyncio.run(go(srv.base_url, srv.model_name))
    return judged, {"calls": stats.calls, "cache_hits": stats.cache_hits,
                    "unusable_replies": stats.errors}


FLOOR_STOP = frozenset(words("a an the and or but if of to in on at by for with from as is are was "
                             "were be been being it its this that these those he she they his her "
                             "their we you i not no do does did has have had"))
_FLOOR_TOKEN = re.compile(r"[a-z0-9]+")


def _shared_dev() -> Path:
    """../shared/grounding-dev relative to the repository (a worktree sits one level deeper
    than the main checkout, so walk up until found)."""
    here = Path(__file__).resolve().parents[1]
    for base in (here, *here.parents):
        cand = base / "shared" / "grounding-dev"
        if cand.is_dir():
            return cand
    return here.parent / "shared" / "grounding-dev"


def default_sets() -> list[Path]:
    """The team set, the general set and the three public dev sets (which may be absent)."""
    dev = _shared_dev()
    return [DEFAULT_DATA, DEFAULT_DATA.parent / "general_eval.jsonl", dev / "q2.jsonl",
            dev / "faithbench.jsonl", dev / "summedits.jsonl"]


def overlap_floor(evidence: str, answer: str) -> float:
    """The word-overlap baseline: share of the answer's content words (lower-cased alphanumeric
    tokens minus ~40 stop words) that occur in the evidence (1.0 when there are none)."""
    ev = set(_FLOOR_TOKEN.findall(evidence.lower()))
    words = [w for w in _FLOOR_TOKEN.findall(answer.lower()) if w not in FLOOR_STOP]
    if not words:
        return 1.0
    return sum(w in ev for w in words) / len(words)


def binned_auroc(rows: list[dict], scores: list[float], n_bins: int = 10) -> float:
    """AUROC within answer-length deciles (answer word count), averaged over the bins that
    hold both labels: what the score ranks beyond what answer length alone gives."""
    lengths = [len(r["answer"].split()) for r in rows]
    order = sorted(lengths)
    cuts = sorted({order[min(len(order) - 1, (len(order) * k) // n_bins)]
                   for k in range(1, n_bins)})
    bins: dict[int, tuple[list[float], list[float]]] = defaultdict(lambda: ([], []))
    for r, n, s in zip(rows, lengths, scores, strict=True):
        b = bisect.bisect_right(cuts, n)
        bins[b][0 if r["label"] == "grounded" else 1].append(s)
    vals = [auroc(g, h) for g, h in bins.values() if g and h]
    return sum(vals) / len(vals) if vals else float("nan")


def evaluate(path: Path, rows: list[dict], args: argparse.Namespace) -> dict:
    """All figures of one labelled set."""
    is_h = [r["label"] == "hallucinated" for r in rows]
    floor = [overlap_floor(r["caption"], r["answer"]) for r in rows]
    res: dict = {"set": path.name, "items": len(rows), "hallucinated": sum(is_h),
                 "floor": auroc([f for f, h in zip(floor, is_h, strict=True) if not h],
                                [f for f, h in zip(floor, is_h, strict=True) if h]),
                 "floor_binned": binned_auroc(rows, floor)}
    for preset in ("lenient", "default", "strict"):
        cfg = FilterConfig(strictness=preset,
                           threshold=args.threshold if preset == args.strictness else None)
        filt = GroundingFilter(cfg)
        verdicts = [filt.check_record(r["caption"], [(r.get("question") or "", r["answer"])],
                                      meta=r.get("meta"))[0] for r in rows]
        rh = sum(1 for v, h in zip(verdicts, is_h, strict=True) if h and not v.passed)
        rg = sum(1 for v, h in zip(verdicts, is_h, strict=True) if not h and not v.passed)
        res[preset] = (rh / max(1, sum(is_h)), rg / max(1, len(rows) - sum(is_h)))
        if preset == args.strictness:
            scores = [v.score for v in verdicts]
            res["auroc"] = auroc([s for s, h in zip(scores, is_h, strict=True) if not h],
                                 [s for s, h in zip(scores, is_h, strict=True) if h])
            res["auroc_binned"] = binned_auroc(rows, scores)
            res["verdicts"] = verdicts
            res["threshold"] = cfg.threshold
    if args.min_checks:
        res["speed"] = measure_speed(FilterConfig(strictness=args.strictness), rows,
                                     args.min_checks, repeats=3)[0]
    return res


def print_details(rows: list[dict], verdicts: list, errors: int) -> None:
    """Per kind and per code counts, and the first misclassified items."""
    is_h = [r["label"] == "hallucinated" for r in rows]
    rejected = [not v.passed for v in verdicts]
    print("  per kind (label/kind: rejected/total):")
    by_kind: dict[tuple[str, str], list[bool]] = defaultdict(list)
    for r, rj in zip(rows, rejected, strict=True):
        by_kind[(r["label"], r.get("kind", "?"))].append(rj)
    for (label, kind), vals in sorted(by_kind.items()):
        print(f"    {label:12} {kind:22} {sum(vals):4}/{len(vals):<4} "
              f"({sum(vals) / len(vals):.0%})")
    code_h: Counter[str] = Counter()
    code_g: Counter[str] = Counter()
    for v, h in zip(verdicts, is_h, strict=True):
        (code_h if h else code_g).update({r.code for r in v.reasons})
    print("  per code (items: hallucinated / grounded):")
    for code in sorted(set(code_h) | set(code_g)):
        print(f"    {code:22} {code_h[code]:4} / {code_g[code]:<4}")
    for want, title in ((False, "missed hallucinations"), (True, "rejected grounded")):
        print(f"  {title}:")
        shown = 0
        for r, v, h in zip(rows, verdicts, is_h, strict=True):
            if h != want and (not v.passed) == want and shown < errors:
                shown += 1
                print(f"    [{r.get('kind')}] {v.score:.2f} C: {r['caption'][:110]}")
                print(f"        Q: {(r.get('question') or '')[:100]}  A: {r['answer'][:200]}")
                print(f"        {[(x.code, x.evidence) for x in v.reasons]}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, action="append", default=None,
                    help="labelled JSONL set (repeatable; default: the team set, the general "
                         "set and ../shared/grounding-dev/{q2,faithbench,summedits}.jsonl)")
    ap.add_argument("--threshold", type=float, default=None)
    ap.add_argument("--strictness", default="default", choices=["lenient", "default", "strict"])
    ap.add_argument("--errors", type=int, default=0, help="print N misclassified items per side")
    ap.add_argument("--details", action="store_true", help="per kind / per code counts")
    ap.add_argument("--min-checks", type=int, default=6_000,
                    help="checks per speed measurement (0: skip speed)")
    ap.add_argument("--judge", action="store_true",
                    help="also measure the optional LLM judge (embedded model unless "
                         "--judge-base-url is given)")
    ap.add_argument("--judge-base-url", default=None)
    ap.add_argument("--judge-model", default=None)
    ap.add_argument("--judge-api-key", default=None)
    ap.add_argument("--judge-cache", type=Path, default=None, help="response cache file")
    ap.add_argument("--judge-concurrency", type=int, default=4)
    args = ap.parse_args(argv)

    paths = args.data or default_sets()
    results = []
    for path in paths:
        if not path.is_file():
            print(f"note: {path} not found, skipped")
            continue
        rows = load(path)
        res = evaluate(path, rows, args)
        results.append(res)
        print(f"{res['set']}: {res['items']} items ({res['hallucinated']} hallucinated); "
              f"AUROC {res['auroc']:.3f} (length-binned {res['auroc_binned']:.3f}); word-overlap "
              f"floor {res['floor']:.3f} (binned {res['floor_binned']:.3f})", flush=True)
        if args.details or args.errors:
            print_details(rows, res["verdicts"], args.errors)
        if args.judge:
            cfg = FilterConfig(strictness=args.strictness, threshold=args.threshold)
            judged, cost = run_judge(cfg, rows, res["verdicts"], args.judge_base_url,
                                     args.judge_model, args.judge_api_key, args.judge_cache,
                                     args.judge_concurrency)
            print(f"  with the LLM judge ({args.judge_model or 'embedded model'}; {cost}):\n"
                  f"    lexical only: {summary_line(rows, res['verdicts'])}\n"
                  f"    with judge:   {summary_line(rows, judged)}")

    build = "compiled with mypyc" if COMPILED else "pure Python"
    print(f"\ngrounding filter: {build} (Python {sys.version.split()[0]}); "
          f"strictness for AUROC: {args.strictness}; rejection rates as hallucinated / "
          "grounded rejected; speed = QA checks per CPU-second of this one process, a new "
          "evidence text every 3-5 QA, caches emptied per pass (median of 3)")
    head = ("| set | items | AUROC | binned | floor | floor binned | lenient | default | strict "
            "| checks/s |")
    print(head)
    print("|" + " --- |" * 10)
    for r in results:
        rates = " | ".join(f"{r[p][0]:.1%} / {r[p][1]:.1%}"
                           for p in ("lenient", "default", "strict"))
        speed = f"{r['speed']:,.0f}" if "speed" in r else "-"
        print(f"| {r['set']} | {r['items']} | {r['auroc']:.3f} | {r['auroc_binned']:.3f} | "
              f"{r['floor']:.3f} | {r['floor_binned']:.3f} | {rates} | {speed} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
