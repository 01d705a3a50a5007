"""Unsupported content: answer words that neither the caption nor the metadata back up."""

from __future__ import annotations

from typing import Any, ClassVar

from .. import lexicon as lx
from ..analysis import CaptionFacts, QAFacts
from ..verdict import Reason
from .base import Check


def _saturating(n: int, frac: float, per_word: float, frac_weight: float) -> float:
    """Penalty grows with the number of unsupported words and their share of the answer."""
    return min(0.97, frac_weight * frac + (1 - frac_weight) * (1 - (1 - per_word) ** n))


class ContentCheck(Check):
    """The main hallucination signal. An answer word counts as supported when its key
    (synonym group or light stem) is in caption+metadata, or it shares a long stem prefix with a
    caption word, or it is a close spelling variant (rapidfuzz). Words the answer takes from
    the question are judged like the question: fine if the question's term is grounded.

    For yes/no questions the answer affirms (or denies) the question's terms, so they are
    judged as answer content: an ungrounded "Yes" is unsupported content, an ungrounded "No" is
    a weaker `unsupported_negative`. For other questions, ungrounded question terms are an
    `unsupported_premise` (the question presupposes something the caption does not say).
    """

    name = "content"
    defaults: ClassVar[dict[str, Any]] = {
        "per_word": 0.45,
        "frac_weight": 0.5,
        "negated_factor": 0.5,
        "premise_factor": 0.6,
        "negative_penalty": 0.3,
        "contradiction_penalty": 0.6,
    }

    def __init__(self, analyser, params=None, fuzzy_cutoff: float = 88.0) -> None:
        super().__init__(analyser, params)
        self.fuzzy_cutoff = fuzzy_cutoff
        key = analyser.norm.key
        opp: dict[str, set[str]] = {}
        for a, b in lx.ANTONYMS:
            opp.setdefault(key(a), set()).add(key(b))
            opp.setdefault(key(b), set()).add(key(a))
        self._opposites = opp
        self._closed_classes = [frozenset(key(w) for w in lx.COLOUR_TERMS),
                                frozenset(key(w) for w in lx.MORPHOLOGY_TERMS)]
        near: dict[str, set[str]] = {}
        for a, b in lx.COLOUR_NEIGHBOURS:
            near.setdefault(key(a), set()).add(key(b))
            near.setdefault(key(b), set()).add(key(a))
        self._near = near

    def _contradicted(self, cap: CaptionFacts, items: list[tuple[int, str, str]]) -> list[str]:
        """Unsupported affirmed words that contradict the caption: an antonym of a caption
        word, or a colour / lesion type when the caption states other colours / types."""
        out = []
        sk = cap.support_keys
        for _, t, k in items:
            if self._opposites.get(k, set()) & sk:
                out.append(t)
                continue
            for cls in self._closed_classes:
                if k in cls and cls & sk and not self._near.get(k, set()) & sk:
                    out.append(t)
                    break
        return out

    def _unsupported(self, cap: CaptionFacts, content: list[tuple[int, str, str]]
                     ) -> list[tuple[int, str, str]]:
        sup = self.an.supported
        return [c for c in content if not sup(c[1], c[2], cap, self.fuzzy_cutoff)
                and not self._demographic_ok(c[1], cap)]

    @staticmethod
    def _demographic_ok(token: str, cap: CaptionFacts) -> bool:
        """Age-group and sex words are supported by a consistent caption age / sex
        ("toddler" for a 3-year-old, "woman" for "she"); conflicts are the demographics check's."""
        rng = lx.AGE_GROUPS.get(token)
        if rng is not None and cap.facts.age_ranges:
            lo, hi = rng
            return any(lo - 1 <= chi and clo <= hi + 1 for clo, chi, _ in cap.facts.age_ranges)
        sx = lx.SEX_WORDS.get(token)
        return sx is not None and sx in cap.facts.sexes

    def run(self, cap: CaptionFacts, qa: QAFacts, qa_type: str | None) -> list[Reason]:
        out: list[Reason] = []
        p = self.p
        q_uns = self._unsupported(cap, qa.question_content)
        q_uns_keys = {k for _, _, k in q_uns}
        q_keys = {k for _, _, k in qa.question_content}
        a_content = qa.answer_content
        # Answer words repeated from the question are judged with the question.
        a_uns = [c for c in self._unsupported(cap, a_content)
                 if c[2] not in q_keys or c[2] in q_uns_keys]
        neg = qa.answer.negated
        affirmed = [c for c in a_uns if not neg[c[0]]]
        negated = [c for c in a_uns if neg[c[0]]]
        weight_n = len(affirmed) + p["negated_factor"] * len(negated)
        denom = max(1, len(a_content))
        if a_uns:
            pen = _saturating(len(affirmed), weight_n / denom, p["per_word"], p["frac_weight"])
            if not affirmed:
                pen = p["negated_factor"] * _saturating(len(negated), len(negated) / denom,
                                                        p["per_word"], p["frac_weight"])
            words = ", ".join(dict.fromkeys(t for _, t, _ in a_uns))
            out.append(self.reason("unsupported_content",
                                   f"{len(a_uns)}/{denom} answer content word(s) not in caption",
                                   pen, words))
        contra_items = list(affirmed)
        if q_uns:
            words = ", ".join(dict.fromkeys(t for _, t, _ in q_uns))
            qn = len(q_uns)
            qfrac = qn / max(1, len(qa.question_content))
            if qa.yes_no and qa.polarity == "yes":
                already = {k for _, _, k in a_uns}
                extra = [c for c in q_uns if c[2] not in already]
                contra_items += extra
                if extra:
                    out.append(self.reason(
                        "unsupported_content", "answer affirms question terms not in caption",
                        _saturating(len(extra), qfrac, p["per_word"], p["frac_weight"]),
                        ", ".join(dict.fromkeys(t for _, t, _ in extra))))
            elif qa.yes_no and qa.polarity == "no":
                # grows with the number of ungrounded terms the "No" is about
                out.append(self.reason(
                    "unsupported_negative",
                    "answer denies something the caption does not mention",
                    min(0.9, p["negative_penalty"] * (1 + 0.5 * (qn - 1))), words))
            else:
                out.append(self.reason(
                    "unsupported_premise", "question presupposes content not in caption",
                    p["premise_factor"] * _saturating(qn, qfrac, p["per_word"], p["frac_weight"]),
                    words))
        contra = self._contradicted(cap, contra_items)
        if contra:
            out.append(self.reason(
                "contradicted_content", "caption states the opposite or another colour/type",
                1 - (1 - p["contradiction_penalty"]) ** len(contra),
                ", ".join(dict.fromkeys(contra))))
        return out
