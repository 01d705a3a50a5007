"""Numbers and units: every count, size, age, duration or percentage in the answer must be
backed by caption or metadata (unit-aware: 2 cm == 20 mm; "in her sixties" fits 64)."""

from __future__ import annotations

from typing import Any, ClassVar

from ..analysis import CaptionFacts, QAFacts
from ..numbers import Quantity, supports
from ..verdict import Reason
from .base import Check

_AGE_TIME = (("age", "time"), ("time", "age"))  # ages and durations compare with each other


def _year_like(q: Quantity) -> bool:
    return (q.dim == "" and q.lo.is_integer() and q.hi.is_integer() and 1000 <= q.lo <= 2100
            and 1000 <= q.hi <= 2100)


def number_supported(claim: Quantity, evidence: list[Quantity]) -> bool:
    """Is a claimed quantity backed by the evidence? A quantity with a unit is judged against
    the evidence's quantities of the same kind when there are any: "two weeks" is not backed by
    the "2" of "2 September" when the caption says "four days"."""
    if not claim.dim:  # a bare count is judged against every quantity
        return any(supports(e, claim) for e in evidence)
    dim = claim.dim
    pool = [e for e in evidence if e.dim == dim or (e.dim, dim) in _AGE_TIME]
    return any(supports(e, claim) for e in (pool or evidence))


def number_claims(qa: QAFacts, ignore: set[float]) -> list[Quantity]:
    """The quantities an answer asserts (a "Yes" also asserts the question's)."""
    claims = list(qa.answer.numbers)
    if qa.yes_no and qa.polarity == "yes":
        claims += qa.question.numbers
    return [q for q in claims if not (q.dim == "" and q.lo == q.hi and q.lo in ignore)]


class NumberCheck(Check):
    """Invented numbers are the commonest hallucination in caption-derived VQA (sizes, ages,
    counts). A number whose dimension the caption also quantifies but with another value is a
    `number_mismatch` (`age_mismatch` for ages); one the caption never quantifies is
    `unsupported_number`. A bare "one" is ignored (articles and "a single" say as much)."""

    name = "numbers"
    defaults: ClassVar[dict[str, Any]] = {
        "unsupported_penalty": 0.3,
        "small_count_factor": 0.3,
        "mismatch_penalty": 0.8,
        "ignore_values": [1.0],
    }

    def run(self, cap: CaptionFacts, qa: QAFacts, qa_type: str | None) -> list[Reason]:
        if not qa.answer.numbers and not (qa.yes_no and qa.polarity == "yes"
                                          and qa.question.numbers):
            return []  # most answers: no quantity to check
        claims = number_claims(qa, set(self.p["ignore_values"]))
        if not claims:
            return []
        evidence = cap.facts.numbers
        key = self.an.norm.key
        out: list[Reason] = []
        for c in claims:
            if number_supported(c, evidence):
                continue
            # A mismatch needs the same kind of quantity: a count against a year ("two" vs
            # "2014") is only unsupported, and a count of a named thing mismatches only a count
            # of the same thing ("two individuals" vs "14 May" is no mismatch); a bare "3"
            # (the question names what it counts) compares with any count.
            same_dim = [e for e in evidence if (e.dim == c.dim and (c.dim or not (
                _year_like(e) or _year_like(c)
                or (c.noun and (not e.noun or key(c.noun) != key(e.noun))))))
                        or {e.dim, c.dim} == {"age", "time"}]
            if c.dim == "age" or (c.dim in ("", "time") and any(e.dim == "age" for e in same_dim)
                                  and qa_type in ("demographics", "age")):
                ages = [e for e in evidence if e.dim == "age"]
                if ages:
                    out.append(self.reason("age_mismatch", "answer age differs from caption",
                                           self.p["mismatch_penalty"], c.raw))
                    continue
            if same_dim:
                seen = ", ".join(e.raw for e in same_dim[:3])
                out.append(self.reason("number_mismatch",
                                       "caption gives a different value for this quantity",
                                       self.p["mismatch_penalty"], f"{c.raw} (caption: {seen})"))
            else:
                # "two individuals", "three goals": a small count spelled out is most often the
                # writer counting what the evidence lists; the support score still weighs it.
                small = c.raw.isalpha() and c.lo == c.hi <= 4
                out.append(self.reason("unsupported_number", "number not in caption or metadata",
                                       self.p["unsupported_penalty"] * (
                                           self.p["small_count_factor"] if small else 1.0),
                                       c.raw))
        return out
