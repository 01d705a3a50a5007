"""Regex building helpers: faster patterns that match exactly what the plain ones match.

Python's regex engine tries each branch of an alternation in turn at every position; long word
lists and cue lists are the grounding checks' main regex cost. These helpers build the same
language with fewer branches tried.
"""

from __future__ import annotations

import re


def trie_pattern(words: list[str]) -> str:
    """An alternation of literal `words` factored by shared prefixes ("t(?:en|w(?:o|elve))"):
    the engine follows one branch per character instead of trying every word. At one position
    it prefers the longest word that fits, as "|".join(sorted by length, longest first) does."""
    heads: dict[str, list[str]] = {}
    for w in words:
        heads.setdefault(w[0], []).append(w[1:])
    parts = []
    for head, tails in sorted(heads.items()):
        rest = [t for t in tails if t]
        if not rest:
            parts.append(re.escape(head))
            continue
        sub = trie_pattern(rest)
        if len(rest) < len(tails):  # a word also ends here: the longer ones first (greedy)
            sub = f"(?:{sub})?"
        elif "|" in sub:
            sub = f"(?:{sub})"
        parts.append(re.escape(head) + sub)
    return "|".join(parts)


def first_letters(pattern: str) -> str:
    r"""The letters a match of `pattern` can start with, for a `(?=[...])` lookahead that lets
    the engine skip every other position. Reads only the shapes the cue lists use: an optional
    `\b` or `^`, then a letter or a group of alternatives each starting with a letter
    (`\b(?:is|are) ...`); anything else raises ValueError, so a new cue of another shape fails
    loudly instead of being skipped."""
    rest = pattern.removeprefix("^").removeprefix(r"\b")
    if rest[:1].isalpha():
        return rest[0]
    if not rest.startswith("("):
        raise ValueError(f"cannot tell how {pattern!r} starts")
    # split the first group into its top-level alternatives (an escaped character is literal)
    alternatives: list[str] = []
    depth, start, end, escaped = 0, 1, -1, False
    for i, ch in enumerate(rest):
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                end = i
                break
        elif ch == "|" and depth == 1:
            alternatives.append(rest[start:i])
            start = i + 1
    if end < 0 or rest[end + 1:end + 2] in ("?", "*", "{"):
        raise ValueError(f"cannot tell how {pattern!r} starts")
    alternatives.append(rest[start:end])
    if alternatives[0].startswith("?:"):
        alternatives[0] = alternatives[0][2:]
    if not all(a[:1].isalpha() for a in alternatives):
        raise ValueError(f"cannot tell how {pattern!r} starts")
    return "".join(sorted({a[0] for a in alternatives}))
