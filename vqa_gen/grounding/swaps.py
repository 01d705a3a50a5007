"""Swapped entities: a name or number the answer writes where the caption, in the same words
around it, writes another one. A minimal edit ("producer Sam Wilson" for "producer Sam
Phillips", "began there in 1950" for "began there in 1954") keeps every other word, so most
of the answer is supported and the one swapped word weighs little in the support score;
here it is read as what it is, a contradiction."""

from __future__ import annotations

from collections.abc import Callable

from .analysis import CaptionFacts
from .support import names_in


def caption_slots(cap: CaptionFacts) -> tuple[frozenset[str], dict[str, list[int]]]:
    """The caption's proper names (`names_in`) and the positions of each of its tokens,
    built on first use (memoised per caption)."""
    memo = cap.facts.memo
    hit = memo.get("names_at")
    if hit is None:
        at: dict[str, list[int]] = {}
        for i, t in enumerate(cap.facts.view.tokens):
            at.setdefault(t, []).append(i)
        hit = memo["names_at"] = (names_in(cap.facts.view.raw), at)
    return hit


def swapped_for(cap: CaptionFacts, tokens: list[str], i: int, fits: Callable[[str], bool],
                opens: frozenset[str] = frozenset()) -> str | None:
    """The caption token that the answer token `tokens[i]` replaces, if any: the two answer
    words before it (or the two after it) stand together in the caption, beside a token
    that `fits` (a name, a number) and that the answer never writes. One word before it is
    enough when that word is in `opens` (the caption's names: "Sam Wilson" for "Sam
    Phillips"); one word after it is not ("Torquay United" does not replace "Galway
    United"). A name added beside the caption's ("Anna Keller" for "Keller") keeps the
    caption's and replaces nothing."""
    ctoks, n = cap.facts.view.tokens, len(tokens)
    at = caption_slots(cap)[1]
    last = len(ctoks) - 1
    own: set[str] | None = None
    for d in (-1, 1):  # context before the token, then after it
        a, b = i + d, i + 2 * d
        if not 0 <= a < n:
            continue
        ctx = tokens[a]
        two = d == 1 or ctx not in opens
        if two and not 0 <= b < n:
            continue
        for j in at.get(ctx, ()):
            c = j - d  # the caption's slot beside the context
            if not (0 <= c <= last and fits(ctoks[c])):
                continue
            if two and not (0 <= j + d <= last and ctoks[j + d] == tokens[b]):
                continue
            if own is None:
                own = set(tokens)
            if ctoks[c] not in own:
                return ctoks[c]
    return None
