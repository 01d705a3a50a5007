"""Numbers and units: every count, size, age, duration or percentage in the answer must be
backed by caption or metadata (unit-aware: 2 cm == 20 mm; "in her sixties" fits 64)."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Set as AbstractSet
from typing import Any, ClassVar

from .. import lexicon as lx
from ..analysis import PUNCTUATION, Analyser, CaptionFacts, Facts, QAFacts
from ..numbers import Quantity, supports, within_bound, year_like
from ..swaps import swapped_for
from ..verdict import Reason
from .base import Check

_AGE_TIME = (("age", "time"), ("time", "age"))  # ages and durations compare with each other
# What ends the counted phrase of "How many pink papules are there?" (the head is its last
# content word)
_COUNT_PHRASE_END = frozenset({
    "are", "is", "were", "was", "do", "does", "did", "can", "could", "should", "would", "will",
    "have", "has", "had", "there", "in", "on", "at", "of", "within", "with", "from", "per",
    "seen", "visible", "present", "shown", "noted", "appear", "appears"}) | PUNCTUATION
# Words that state one of the next noun ("a papule", "a solitary well-defined nodule"), and
# words that state one wherever they stand
_ONE_BEFORE = frozenset({"a", "an", "one", "single", "solitary", "isolated", "lone", "1"})
_ONE_ANYWHERE = frozenset({"single", "solitary", "isolated", "lone"})
_ONE_WINDOW = 4  # tokens before the noun in which a marker of one may stand
_NO_COUNT = ""  # memo value: not a count question, or no counted noun
# A fraction in words is no count: "two tries" does not mismatch "the second half"
_FRACTIONS = frozenset({"half", "quarter"})


def counted(question: Facts) -> str:
    """The key of what a count question counts ("How many papules are there?",
    "What is the number of lesions?" -> the key of "papules"/"lesions"); "" for any other
    question. Memoised on the question's facts."""
    hit = question.memo.get("counted")
    if hit is None:
        hit = question.memo["counted"] = _counted(question)
    return hit


def _counted(question: Facts) -> str:
    toks, keys = question.view.tokens, question.view.keys
    start = -1
    for i in range(len(toks) - 1):
        if (toks[i] == "how" and toks[i + 1] == "many") or (
                toks[i] == "number" and toks[i + 1] == "of"):
            start = i + 2
            break
    if start < 0:
        return _NO_COUNT
    head = _NO_COUNT
    for j in range(start, len(toks)):
        t = toks[j]
        if t in _COUNT_PHRASE_END:
            break
        if t[0].isalpha():
            head = keys[j]
    return head


def _plural(token: str) -> bool:
    """A regular English plural ("papules", "cells"; not "mass", "naevus", "psoriasis")."""
    return token.endswith("s") and not token.endswith(("ss", "us", "is"))


def one_stated(cap: CaptionFacts, noun: str, stop: frozenset[str],
               kinds: frozenset[str] = frozenset()) -> bool:
    """Does the caption say there is one of `noun` (a key)? It does with a marker of one
    before the noun in the singular ("a papule", "a solitary nodule", "one plaque"), with the
    singular noun heading its phrase ("Erythematous plaque on the elbow": captions drop
    articles; not "red cell extravasation", where "cell" qualifies the next noun), or with
    "single"/"solitary"/"isolated" anywhere. `kinds`: keys that count as the noun too (the
    lesion types, for "lesion": "a nodule" is one lesion). Memoised per caption and noun."""
    memo = cap.facts.memo
    tag = "one:" + noun
    hit = memo.get(tag)
    if hit is None:
        hit = memo[tag] = _one_stated(cap, noun, stop, kinds)
    return hit


def _one_stated(cap: CaptionFacts, noun: str, stop: frozenset[str],
                kinds: frozenset[str]) -> bool:
    toks, keys = cap.facts.view.tokens, cap.facts.view.keys
    if not _ONE_ANYWHERE.isdisjoint(toks):
        return True
    last = len(toks) - 1
    for i in range(len(toks)):
        if (keys[i] != noun and keys[i] not in kinds) or _plural(toks[i]) or cap.facts.negated[i]:
            continue
        for j in range(i - 1, max(-1, i - 1 - _ONE_WINDOW), -1):
            if toks[j] in PUNCTUATION:
                break
            if toks[j] in _ONE_BEFORE:
                return True
        nxt = toks[i + 1] if i < last else "."
        if not (nxt[0].isalpha() and nxt not in stop):  # the phrase's head, not a modifier
            return True
    return False


def ignored_values(qa: QAFacts, cap: CaptionFacts, an: Analyser,
                   ignore: frozenset[float]) -> frozenset[float]:
    """The bare values not checked as claims (`ignore`, by default one: "a lesion" says as
    much as "one lesion"). A "1" or "one" answering a count question is a count, though: it
    is checked unless the caption states one of what is counted ("How many cells are
    there?" -> "1." for "red cell extravasation" is invented; for "a nail clipping", "How
    many nails?" -> "1" is not)."""
    if 1.0 not in ignore:
        return ignore
    noun = counted(qa.question)
    if not noun or one_stated(cap, noun, an.stop,
                              an.lesion_kinds if noun == an.lesion_key else frozenset()):
        return ignore
    return ignore - {1.0}


def _years(q: Quantity) -> bool:
    """An age, or a duration in years: "3 weeks" is no age to mismatch "a 21-year-old"."""
    return q.dim == "age" or abs(q.clo - 365.0 * q.lo) <= 1e-6 * max(1.0, q.clo)


def _same_count(c: Quantity, e: Quantity, key: Callable[[str], str]) -> bool:
    """Do two unitless numbers count the same thing, so that different values mismatch? Values
    with a label compare only under the same label ("grade 1" / "grade 3", not "grade 1" /
    "type 3"); a count of a named thing only with a count of the same ("two individuals" /
    "three individuals", not "14 May"); a bare number with any count ("How many plaques?" ->
    "3"; in statements, "won 2-0" against "won 3-0"). Years and fractions in words ("the
    second half") are no counts."""
    if year_like(e) or year_like(c) or e.raw in _FRACTIONS or c.raw in _FRACTIONS:
        return False
    if c.label or e.label:
        return c.label == e.label
    return not c.noun or (bool(e.noun) and key(c.noun) == key(e.noun))


# Measurements: no count of things ("How many lesions?" / "14" is not the "14 mm" of the
# caption). Nor is an age, unless the question counts years or the like ("How many lesions?"
# / "54." is not the "54-year-old" of the caption; "How many years ...?" counts them).
_MEASURES = frozenset({"length", "mass", "volume", "pressure", "rate", "percent"})
_NOT_COUNTS = _MEASURES | {"age"}
_TIME_COUNTS = frozenset(lx.words("year years month months week weeks day days age old"))


def number_supported(claim: Quantity, evidence: list[Quantity], count: str = "") -> bool:
    """Is a claimed quantity backed by the evidence? A quantity with a unit is judged against
    the evidence's quantities of the same kind when there are any: "two weeks" is not backed by
    the "2" of "2 September" when the caption says "four days". `count`: what a count
    question counts (its key, `counted`; "" for another question): a bare number then is a
    count, which no measurement backs, nor an age unless years are counted."""
    if not claim.dim:  # a bare count is judged against every quantity (but a measurement)
        if not count:
            return any(supports(e, claim) for e in evidence)
        skip = _MEASURES if count in _TIME_COUNTS else _NOT_COUNTS
        return any(supports(e, claim) for e in evidence if e.dim not in skip)
    dim = claim.dim
    pool = [e for e in evidence if e.dim == dim or (e.dim, dim) in _AGE_TIME]
    return any(supports(e, claim) for e in (pool or evidence))


def _name_numbers(cap: CaptionFacts) -> dict[float, frozenset[str]]:
    """The numbers that end a hyphenated name in the caption ("covid-19", "il-6",
    "sars-cov-2"), each with the name's word parts. The extractor reads such a number as part
    of the name, not as a quantity, so an answer spacing the name ("COVID 19", "IL 6") would
    otherwise claim a number the caption lacks. Memoised per caption."""
    memo = cap.facts.memo
    hit = memo.get("name_numbers")
    if hit is None:
        found: dict[float, set[str]] = {}
        if "-" in cap.facts.view.text:
            for t in cap.facts.view.tokens:
                if "-" in t and t[-1].isdigit():
                    *head, last = t.split("-")
                    words = [p for p in head if p.isalpha()]
                    if last.isdecimal() and words:
                        found.setdefault(float(last), set()).update(words)
        hit = memo["name_numbers"] = {v: frozenset(w) for v, w in found.items()}
    return hit


def _named_number(claim: Quantity, cap: CaptionFacts, *token_lists: list[str]) -> bool:
    """Is a bare number in the answer the number of a caption name that the answer writes
    out too ("COVID 19" for "COVID-19")? `token_lists`: the texts the claim comes from."""
    if claim.dim or claim.lo != claim.hi:
        return False
    words = _name_numbers(cap).get(claim.lo)
    return words is not None and any(not words.isdisjoint(t) for t in token_lists)


def unchecked(q: Quantity, ignore: AbstractSet[float]) -> bool:
    """A bare count of an ignored value ("a lesion" says as much as "one lesion"); a labelled
    value ("type 1", "stage I") is always checked."""
    return q.dim == "" and q.lo == q.hi and q.lo in ignore and not q.label


def stated_otherwise(claim: Quantity, cap: CaptionFacts, *token_lists: list[str]) -> bool:
    """Does the caption state the claimed number in a form the extractor does not read as a
    quantity: the number of a name the answer writes out too ("COVID 19" for "COVID-19"), or
    an ordinal in words ("4th" for "the fourth season", "10th" for "the tenth-largest": an
    ordinal word's key is itself, and the caption's keys hold its words' and hyphen parts')?"""
    if claim.dim == "ordinal":
        word = lx.ORDINAL_WORDS.get(int(claim.lo))
        return word is not None and word in cap.support_keys
    return _named_number(claim, cap, *token_lists)


def number_claims(qa: QAFacts, ignore: AbstractSet[float]) -> list[Quantity]:
    """The quantities an answer asserts (a "Yes" also asserts the question's)."""
    claims = list(qa.answer.numbers)
    if qa.yes_no and qa.polarity == "yes":
        claims += qa.question.numbers
    return [q for q in claims if not unchecked(q, ignore)]


def _numeral(token: str) -> bool:
    return token[0].isdigit() and token.replace(",", "").replace(".", "").isdigit()


def _swapped_number(cap: CaptionFacts, tokens: list[str], raw: str) -> str | None:
    """The caption's number that an answer's number replaces in the same words around it
    ("began there in 1950" for "began there in 1954"; `swaps.swapped_for`), for a number
    written as one numeral. A year or a count of another thing is otherwise no mismatch."""
    if not (raw and _numeral(raw)):
        return None
    for i, t in enumerate(tokens):
        if t == raw:
            hit = swapped_for(cap, tokens, i, _numeral)
            if hit is not None:
                return hit
    return None


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
        "invented_age_penalty": 0.8,
    }

    def __init__(self, analyser: Analyser, params: dict[str, Any] | None = None) -> None:
        super().__init__(analyser, params)
        self._ignore = frozenset(float(v) for v in self.p["ignore_values"])

    def run(self, cap: CaptionFacts, qa: QAFacts, qa_type: str | None) -> list[Reason]:
        if not qa.answer.numbers and not (qa.yes_no and qa.polarity == "yes"
                                          and qa.question.numbers):
            return []  # most answers: no quantity to check
        claims = number_claims(qa, ignored_values(qa, cap, self.an, self._ignore))
        if not claims:
            return []
        evidence = cap.facts.numbers
        key = self.an.norm.key
        out: list[Reason] = []
        tokens = (qa.answer.view.tokens, qa.question.view.tokens)
        count = counted(qa.question)  # (a "How many ...?" question: what it counts)
        for c in claims:
            if (number_supported(c, evidence, count)
                    or stated_otherwise(c, cap, *tokens)):
                continue
            # A mismatch needs the same kind of quantity: a count against a year ("two" vs
            # "2014") is only unsupported, and a count of a named thing mismatches only a count
            # of the same thing ("two individuals" vs "14 May" is no mismatch); a bare "3"
            # (the question names what it counts) compares with any count.
            same_dim = [e for e in evidence if (e.dim == c.dim and (
                c.dim or _same_count(c, e, key)))
                        or ({e.dim, c.dim} == {"age", "time"} and _years(e) and _years(c))]
            inside = any(within_bound(e, c) for e in evidence)
            if inside:
                same_dim = []  # inside a bound the caption states: unsupported, no conflict
            if c.dim == "age" or (c.dim in ("", "time") and any(e.dim == "age" for e in same_dim)
                                  and qa_type in ("demographics", "age")):
                ages = [e for e in evidence if e.dim == "age"]
                if ages:
                    out.append(self.reason("age_mismatch", "answer age differs from caption",
                                           self.p["mismatch_penalty"], c.raw))
                    continue
            seen = ", ".join(e.raw for e in same_dim[:3]) if same_dim else None if inside else (
                _swapped_number(cap, qa.answer.view.tokens, c.raw))  # in the caption's words
            if seen:
                out.append(self.reason("number_mismatch",
                                       "caption gives a different value for this quantity",
                                       self.p["mismatch_penalty"], f"{c.raw} (caption: {seen})"))
            else:
                # "two individuals", "three goals": a small count spelled out is most often the
                # writer counting what the evidence lists; the support score still weighs it.
                # An age the caption never states is an invented demographic, as grave as a
                # wrong one (`invented_age_penalty`, the mismatch penalty by default).
                if c.dim == "age":
                    out.append(self.reason("unsupported_number",
                                           "an age the caption does not state",
                                           self.p["invented_age_penalty"], c.raw))
                    continue
                small = c.raw.isalpha() and c.lo == c.hi <= 4
                as_age = count and not c.dim and any(
                    e.dim == "age" and supports(e, c) for e in evidence)
                out.append(self.reason("unsupported_number",
                                       "the caption's number is an age, not this count" if as_age
                                       else "number not in caption or metadata",
                                       self.p["unsupported_penalty"] * (
                                           self.p["small_count_factor"] if small else 1.0),
                                       c.raw))
        return out
