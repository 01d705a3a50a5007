"""How much of the score's ranking comes from matching words by key rather than as written.

    python benchmarks/grounding_overlap_variants.py [--data SET.jsonl ...]

Per set, the AUROC of six plain support shares of the answer's content words (the filter's
content units, numbers left out), each row its own record:

- `written`: found in the evidence as written;
- `keys`: as written, or by the filter's key (light stem, synonym group, implied name);
- `supported`: by everything the content check's unit support uses (keys, hyphen parts,
  word families, initialisms, spelling variants);

each with equal weights (`/eq`) and with the informativeness weights of the score (`/inf`). On
a set where the claims share their topic with every evidence text whatever the label, a wider
match can rank worse: it finds the topic, not the claim. Default sets: those of
`bench_grounding.py`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(1, str(HERE))

from bench_grounding import auroc, default_sets, load  # noqa: E402

from vqa_gen.grounding import GroundingFilter  # noqa: E402
from vqa_gen.grounding.support import informativeness  # noqa: E402

MATCHES = ("written", "keys", "supported")
WEIGHTS: dict[str, Callable[[str], float]] = {"eq": lambda _t: 1.0, "inf": informativeness}


def shares(f: GroundingFilter, caption: str, question: str, answer: str) -> dict[str, float]:
    """The six support shares of one row (1.0 each for an answer with no content word)."""
    an = f.analyser
    f.forget_caption()
    cap = f.caption_facts(caption)
    units = an.qa(question, answer).answer_content
    cutoff = float(f.config.fuzzy_cutoff or 88.0)
    found = {
        "written": [t in cap.all_tokens for _, t, _ in units],
        "keys": [t in cap.all_tokens or k in cap.support_keys or t in cap.support_keys
                 for _, t, k in units],
        "supported": [an.supported(t, k, cap, cutoff) for _, t, k in units],
    }
    out = {}
    for wname, weigh in WEIGHTS.items():
        w = [weigh(t) for _, t, _ in units]
        for m in MATCHES:
            out[f"{m}/{wname}"] = (sum(x for x, ok in zip(w, found[m], strict=True) if ok)
                                   / sum(w)) if units else 1.0
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, action="append", default=None)
    args = ap.parse_args(argv)
    f = GroundingFilter()
    names = [f"{m}/{w}" for w in WEIGHTS for m in MATCHES]
    print("| set | items | " + " | ".join(names) + " |")
    print("| --- | --- | " + " | ".join("---" for _ in names) + " |")
    for path in [p for p in (args.data or default_sets()) if p.is_file()]:
        rows = load(path)
        per = [shares(f, r["caption"], r.get("question") or "", r["answer"]) for r in rows]
        grounded = [r["label"] == "grounded" for r in rows]
        cells = []
        for n in names:
            pos = [s[n] for s, g in zip(per, grounded, strict=True) if g]
            neg = [s[n] for s, g in zip(per, grounded, strict=True) if not g]
            cells.append(f"{auroc(pos, neg):.3f}")
        print(f"| {path.name} | {len(rows)} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
