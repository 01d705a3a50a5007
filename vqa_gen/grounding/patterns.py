"""Regex helpers: faster patterns that match exactly what the plain ones match, and the readers
of a pattern's text that the fast paths are derived from.

Python's regex engine tries each branch of an alternation in turn at every position; long word
lists and cue lists are the grounding checks' main regex cost. These helpers build the same
language with fewer branches tried (`trie_pattern`), or read from a cue pattern what a cheaper
test can look for first: the letters a match starts with (`first_letters`), its top-level
alternatives (`top_level_alternatives`), the literal texts every match opens with
(`literal_heads`)."""

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
    (`\b(?:is|are) ...`), which may be optional (`(?:it is )?not`: its letters and those of
    what follows it); anything else raises ValueError, so a new cue of another shape fails
    loudly instead of being skipped."""
    rest = pattern.removeprefix("^").removeprefix(r"\b")
    if rest[:1].isalpha():
        return rest[0]
    if not rest.startswith("("):
        raise ValueError(f"cannot tell how {pattern!r} starts")
    # the first group, split into its top-level alternatives (an escaped character is literal)
    depth, end, escaped = 0, -1, False
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
    if end < 0 or rest[end + 1:end + 2] in ("*", "{"):
        raise ValueError(f"cannot tell how {pattern!r} starts")
    alternatives = top_level_alternatives(rest[1:end])
    if alternatives[0].startswith("?:"):
        alternatives[0] = alternatives[0][2:]
    if not all(a[:1].isalpha() for a in alternatives):
        raise ValueError(f"cannot tell how {pattern!r} starts")
    letters = {a[0] for a in alternatives}
    if rest[end + 1:end + 2] == "?":  # an optional group: or the match starts after it
        letters.update(first_letters(rest[end + 2:]))
    return "".join(sorted(letters))


def with_first_letters(patterns: list[str] | tuple[str, ...]) -> re.Pattern[str]:
    """The alternation of `patterns` behind a lookahead on the letters they can start with:
    the same matches, found faster (the branches are tried only where a match can start)."""
    starts = "".join(sorted({c for p in patterns for c in first_letters(p)}))
    return re.compile(rf"(?=[{starts}])(?:" + "|".join(f"(?:{p})" for p in patterns) + ")")


def top_level_alternatives(pattern: str) -> list[str]:
    """`pattern` split at the `|` outside groups and classes."""
    out, depth, start, i, in_class = [], 0, 0, 0, False
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            i += 1
        elif in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
            i += pattern.startswith("^", i + 1)
            i += pattern.startswith("]", i + 1)  # a leading "]" is a member
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "|" and depth == 0:
            out.append(pattern[start:i])
            start = i + 1
        i += 1
    out.append(pattern[start:])
    return out


_Head = tuple[str, bool, str]  # (literal so far, may go on, "b"/"^" when at a word start)


def literal_heads(pattern: str, limit: int = 256) -> list[tuple[str, str]]:
    r"""Literal texts one of which starts every match of `pattern`, each with "^" or "b" when
    the match opens there with `^` or with `\b` before a letter ("" otherwise): a gate that
    searches only for them rules most texts out in one scan. Reads literals, groups,
    alternatives, classes, quantifiers and the anchors `\b`, `^`, `$`; a match that can start
    with anything, or a group it cannot read (lookarounds), raises ValueError, so a cue of a
    new shape fails loudly instead of being skipped."""
    n, pos = len(pattern), 0

    def extend(cur: list[_Head], sub: list[_Head] | None) -> list[_Head]:
        if sub is None or len(cur) * len(sub) > limit:  # the literals stop here
            return [(p, False, a) for p, _, a in cur]
        out = [(p + q, o, a or (b if not p else "")) if more else (p, False, a)
               for p, more, a in cur for q, o, b in (sub if more else [("", False, "")])]
        return list(dict.fromkeys(out))

    def alternatives() -> list[_Head]:
        nonlocal pos
        out = sequence()
        while pos < n and pattern[pos] == "|":
            pos += 1
            out += sequence()
        return out

    def sequence() -> list[_Head]:
        nonlocal pos
        cur: list[_Head] = [("", True, "")]
        while pos < n and pattern[pos] not in "|)":
            ch = pattern[pos]
            sub: list[_Head] | None = None  # None: an item that is not a literal
            if ch == "(":
                if not pattern.startswith("?:", pos + 1) and pattern.startswith("?", pos + 1):
                    raise ValueError(f"cannot read the group at {pos} of {pattern!r}")
                pos += 3 if pattern.startswith("?:", pos + 1) else 1
                sub = alternatives()
                if pos >= n:
                    raise ValueError(f"unbalanced group in {pattern!r}")
                pos += 1
            elif ch == "[":
                end = pos + 1 + pattern.startswith("^", pos + 1)
                end += pattern.startswith("]", end)
                while end < n and pattern[end] != "]":
                    end += 2 if pattern[end] == "\\" else 1
                pos = end + 1
            elif ch == "\\":
                esc = pattern[pos + 1]
                pos += 2
                if esc in "bBAZ":  # zero width
                    sub = [("", True, {"b": "b", "A": "^"}.get(esc, ""))]
                elif not esc.isalnum():
                    sub = [(esc, True, "")]
            elif ch in "^$":
                pos += 1
                sub = [("", True, "^" if ch == "^" else "")]
            elif ch in "*+?{":
                raise ValueError(f"cannot read {pattern!r}")
            else:
                pos += 1
                if ch != ".":
                    sub = [(ch, True, "")]
            if pos < n and pattern[pos] in "*+?{":
                rep = pattern[pos]
                pos = pattern.index("}", pos) + 1 if rep == "{" else pos + 1
                if pos < n and pattern[pos] in "?+":  # lazy or possessive
                    pos += 1
                if rep == "?" and sub is not None:  # absent, or there once
                    sub = [("", True, ""), *sub]
                elif rep != "+":  # absent, or there and maybe more of it
                    sub = [("", True, ""), *[(h, False, a) for h, _, a in sub or [("", False, "")]]]
                elif sub is not None:  # there, maybe more of it
                    sub = [(h, False, a) for h, _, a in sub]
            cur = extend(cur, sub)
        return cur

    heads = alternatives()
    if pos != n or any(not h for h, _, _ in heads):
        raise ValueError(f"a match of {pattern!r} can start with anything")
    # `\b` marks a word start only before a word character
    return sorted({(h, "" if a == "b" and not re.match(r"\w", h) else a) for h, _, a in heads})


def shortest_heads(heads: list[str]) -> list[str]:
    """The heads no other head is a prefix of (a gate needs only those)."""
    return [h for h in heads if not any(o != h and h.startswith(o) for o in heads)]
