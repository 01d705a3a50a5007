"""The interface every check implements, and the literal gate the cue-reading checks share."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, ClassVar

from .. import lexicon as lx
from ..analysis import Analyser, CaptionFacts, Facts, QAFacts
from ..patterns import trie_pattern
from ..verdict import Reason, new_reason


class Check:
    """A small, independent test of one kind of hallucination.

    Subclasses set `name` and `defaults`, compile what they need in `__init__` (called once per
    `GroundingFilter`) and return zero or more `Reason`s from `run`. Penalties are raw; the
    filter scales them by the check's weight and the preset.
    """

    name: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, analyser: Analyser, params: dict[str, Any] | None = None) -> None:
        self.an = analyser
        self.p: dict[str, Any] = {**self.defaults, **(params or {})}

    def run(self, cap: CaptionFacts, qa: QAFacts, qa_type: str | None) -> list[Reason]:
        raise NotImplementedError

    def reason(self, code: str, detail: str, penalty: float, evidence: str | None = None
               ) -> Reason:
        return new_reason(code, self.name, detail, float(penalty), evidence)


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


class CueGate:
    r"""Whether a text can hold a match of any of `patterns`: one scan for their literal heads
    instead of each pattern's own search (an alternation of cues opening with `\b` tries every
    branch at every position). Heads at a word start are searched after a non-word character
    in " " + text, so the engine only tries the words' first letters. A text it rejects has
    no match of any pattern; one it passes may still have none."""

    def __init__(self, patterns: Iterable[str], slot: str) -> None:
        self.slot = slot  # where `passes` memoises its answer in a text's memo
        heads = {h for p in patterns for h in literal_heads(p)}
        free = sorted(h for h, a in heads if not a)
        start = sorted({h for h, a in heads if a} - set(free))
        start = [h for h in start if not h.startswith(tuple(free))]
        parts = [rf"\W(?:{trie_pattern(_shortest(start))})"] if start else []
        parts += [trie_pattern(_shortest(free))] if free else []
        self._re = re.compile("|".join(parts))

    def search(self, text: str) -> bool:
        return self._re.search(" " + text) is not None

    def passes(self, facts: Facts) -> bool:
        """`search` of the facts' text, memoised on the facts."""
        hit = facts.memo.get(self.slot)
        if hit is None:
            hit = facts.memo[self.slot] = self._re.search(" " + facts.view.text) is not None
        return hit


def _shortest(heads: list[str]) -> list[str]:
    """The heads no other head is a prefix of (a gate needs only those)."""
    return [h for h in heads if not any(o != h and h.startswith(o) for o in heads)]


# One scan of a question or answer tells the leakage and answerability checks whether any of
# their cues can be in it (most texts: none); the answer is kept in the text's memo.
QUESTION_CUES = CueGate((*lx.LEAKAGE_CUES, *(q for _, q, _ in lx.UNANSWERABLE_TOPICS)),
                        "question_cues")
ANSWER_CUES = CueGate((*lx.LEAKAGE_CUES, *lx.REFUSAL_CUES, *lx.GENERAL_KNOWLEDGE_CUES),
                      "answer_cues")
