"""Empty or contentless questions and answers."""

from __future__ import annotations

from typing import Any, ClassVar

from ..analysis import CaptionFacts, QAFacts
from ..verdict import Reason
from .base import Check


class EmptyCheck(Check):
    """An answer (or question) with no word or number in it is not data."""

    name = "empty"
    defaults: ClassVar[dict[str, Any]] = {"penalty": 1.0}

    def run(self, cap: CaptionFacts, qa: QAFacts, qa_type: str | None) -> list[Reason]:
        out: list[Reason] = []
        if not any(t[0].isalnum() for t in qa.answer.view.tokens):
            out.append(self.reason("empty_answer", "answer has no words", self.p["penalty"],
                                   qa.answer.view.raw[:40]))
        if not any(t[0].isalnum() for t in qa.question.view.tokens):
            out.append(self.reason("empty_question", "question has no words", self.p["penalty"],
                                   qa.question.view.raw[:40]))
        return out
