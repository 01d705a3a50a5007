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


# The filter builds a reason or verdict for most QA pairs. A frozen dataclass's `__init__` sets
# each field through `object.__setattr__` by name; the slots' own setters build the same frozen
# object in about half the time.
_new = object.__new__
_REASON_SET = tuple(vars(Reason)[f].__set__ for f in ("code", "check", "detail", "penalty",
                                                       "evidence"))
_VERDICT_SET = tuple(vars(Verdict)[f].__set__ for f in ("score", "passed", "reasons"))


def new_reason(code: str, check: str, detail: str, penalty: float,
               evidence: str | None = None) -> Reason:
    """`Reason(code, check, detail, penalty, evidence)`, built faster (see above)."""
    r = _new(Reason)
    s_code, s_check, s_detail, s_penalty, s_evidence = _REASON_SET
    s_code(r, code)
    s_check(r, check)
    s_detail(r, detail)
    s_penalty(r, penalty)
    s_evidence(r, evidence)
    return r


def new_verdict(score: float, passed: bool, reasons: tuple[Reason, ...]) -> Verdict:
    """`Verdict(score, passed, reasons)`, built faster (see above)."""
    v = _new(Verdict)
    s_score, s_passed, s_reasons = _VERDICT_SET
    s_score(v, score)
    s_passed(v, passed)
    s_reasons(v, reasons)
    return v
