"""Empty or contentless questions and answers."""

from __future__ import annotations

from typing import Any, ClassVar

from ..analysis import CaptionFacts, QAFacts
from ..verdict import Reason
from .base import Check


class EmptyCheck(Check):
    """An answer with no word or number in it is not data (nothing in it to support: score 0);
    nor is a question field holding only punctuation (an absent question is fine: the answer is
    then graded alone). A broken question blocks the pair without a penalty: the score still
    ranks how well the caption supports the answer."""

    name = "empty"
    defaults: ClassVar[dict[str, Any]] = {"penalty": 1.0, "question_penalty": 0.0}

    def run(self, cap: CaptionFacts, qa: QAFacts, qa_type: str | None) -> list[Reason]:
        out: list[Reason] = []
        if not qa.answer.words:
            out.append(self.reason("empty_answer", "answer has no words", self.p["penalty"],
                                   qa.answer.view.raw[:40]))
        q_raw = qa.question.view.raw
        # No question at all (a description, a caption, a dialogue opener): the answer is
        # graded on its own. A question field with only punctuation is a broken question.
        if q_raw.strip() and not qa.question.words:
            out.append(self.reason("empty_question", "question has no words",
                                   self.p["question_penalty"], qa.question.view.raw[:40]))
        return out
