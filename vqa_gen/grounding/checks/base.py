"""The interface every check implements."""

from __future__ import annotations

from typing import Any, ClassVar

from ..analysis import Analyser, CaptionFacts, QAFacts
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
