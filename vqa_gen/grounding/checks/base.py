"""The interface every check implements, and the literal gate the cue-reading checks share
(its patterns are read by `patterns.literal_heads`)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, ClassVar

from .. import lexicon as lx
from ..analysis import Analyser, CaptionFacts, Facts, QAFacts
from ..patterns import literal_heads, shortest_heads, trie_pattern
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
        parts = [rf"\W(?:{trie_pattern(shortest_heads(start))})"] if start else []
        parts += [trie_pattern(shortest_heads(free))] if free else []
        self._re = re.compile("|".join(parts))

    def search(self, text: str) -> bool:
        return self._re.search(" " + text) is not None

    def passes(self, facts: Facts) -> bool:
        """`search` of the facts' text, memoised on the facts."""
        hit = facts.memo.get(self.slot)
        if hit is None:
            hit = facts.memo[self.slot] = self._re.search(" " + facts.view.text) is not None
        return hit


# One scan of a question or answer tells the leakage and answerability checks whether any of
# their cues can be in it (most texts: none); the answer is kept in the text's memo.
QUESTION_CUES = CueGate((*lx.LEAKAGE_CUES, *(q for _, q, _ in lx.UNANSWERABLE_TOPICS)),
                        "question_cues")
ANSWER_CUES = CueGate((*lx.LEAKAGE_CUES, *lx.REFUSAL_CUES, *lx.GENERAL_KNOWLEDGE_CUES),
                      "answer_cues")
