"""The result of grounding one QA pair against its caption.

Kept deliberately small and JSON-friendly: a verdict is written next to every QA line, so it must
serialise cheaply and read well to a person auditing a dataset.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Reason:
    """One finding of one check: why a QA pair lost score.

    `code` is a stable machine name (e.g. ``unsupported_number``); `evidence` is the span that
    triggered it (the unsupported words, the conflicting number) so a rejection explains itself.
    """

    code: str
    check: str
    detail: str
    penalty: float
    evidence: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "check": self.check, "detail": self.detail,
                               "penalty": round(self.penalty, 4)}
        if self.evidence is not None:
            out["evidence"] = self.evidence
        return out


@dataclass(frozen=True, slots=True)
class Verdict:
    """`score` in [0, 1], higher is better grounded; `passed` is score >= threshold and no
    blocking reason."""

    score: float
    passed: bool
    reasons: tuple[Reason, ...] = field(default_factory=tuple)

    @property
    def codes(self) -> list[str]:
        return [r.code for r in self.reasons]

    def to_dict(self) -> dict[str, Any]:
        return {"score": round(self.score, 4), "passed": self.passed,
                "reasons": [r.to_dict() for r in self.reasons]}
