"""Text leakage ("as mentioned in the caption") and refusals ("I cannot see the image")."""

from __future__ import annotations

import re
from typing import Any, ClassVar

from .. import lexicon as lx
from ..analysis import Analyser, CaptionFacts, Facts, QAFacts
from ..patterns import first_letters, trie_pattern, with_first_letters
from ..verdict import Reason
from .base import ANSWER_CUES, QUESTION_CUES, Check, CueGate

# First letters of the whole-answer refusal cues (`^(?:unknown|n/?a|...)$` in REFUSAL_CUES), the
# only ones that need no trigger; "" (an empty answer) is searched too, as before. Read from the
# cues, so a new whole-answer cue is searched without a change here.
_WHOLE_ANSWER_STARTS = "".join(sorted({c for p in lx.REFUSAL_CUES if p.startswith("^")
                                       for c in first_letters(p)}))


class LeakageCheck(Check):
    """A VQA pair must stand on the image alone: mentioning the caption/text leaks the
    source, and a refusal is not an answer. Both are blocking by default."""

    name = "leakage"
    defaults: ClassVar[dict[str, Any]] = {"leak_penalty": 0.9, "refusal_penalty": 0.9}

    def __init__(self, analyser: Analyser, params: dict | None = None) -> None:
        super().__init__(analyser, params)
        # (a long answer that passes a gate is searched only where a cue can start)
        self._leak = with_first_letters(lx.LEAKAGE_CUES)
        self._refuse = with_first_letters(lx.REFUSAL_CUES)
        # The triggers as one pattern: a single scan instead of a substring test per trigger.
        self._leak_gate = re.compile(trie_pattern(list(lx.LEAKAGE_TRIGGERS)))
        self._refuse_gate = re.compile(trie_pattern(list(lx.REFUSAL_TRIGGERS)))

    def _leak_in(self, facts: Facts, text: str, slot: str, cues: CueGate
                 ) -> re.Match[str] | None:
        """The first leakage cue in `text` (memoised per text under `slot`)."""
        m = facts.memo.get(slot, False)
        if m is False:
            gate = cues.passes(facts) and self._leak_gate.search(text) is not None
            m = facts.memo[slot] = self._leak.search(text) if gate else None
        return m

    def run(self, cap: CaptionFacts, qa: QAFacts, qa_type: str | None) -> list[Reason]:
        out: list[Reason] = []
        a = qa.answer.view.text.strip()
        ctext = cap.facts.view.text
        m = self._leak_in(qa.answer, a, "leak_answer", ANSWER_CUES)
        where = "answer"
        if not (m and m.group(0) not in ctext):
            m = self._leak_in(qa.question, qa.question.view.text, "leak_question",
                              QUESTION_CUES)
            where = "question"
        if m and m.group(0) not in ctext:
            out.append(self.reason("text_leakage", f"{where} refers to the source text",
                                   self.p["leak_penalty"], m.group(0)))
        m = qa.answer.memo.get("refusal", False)
        if m is False:
            # The cues without a trigger match the whole (short) answer from its start:
            # "unknown", "n/a", "none given", "unclear", "not applicable", "i don't know",
            # "unsure", "uncertain" (see `_WHOLE_ANSWER_STARTS`).
            gate = ANSWER_CUES.passes(qa.answer) and (
                (len(a) < lx.REFUSAL_SHORT and a[:1] in _WHOLE_ANSWER_STARTS)
                or self._refuse_gate.search(a) is not None)
            m = qa.answer.memo["refusal"] = self._refuse.search(a) if gate else None
        if m:
            out.append(self.reason("refusal", "answer refuses or says it cannot tell",
                                   self.p["refusal_penalty"], m.group(0)))
        return out
