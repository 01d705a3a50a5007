"""Negation and polarity: answers that assert what the caption denies, or deny what it asserts."""

from __future__ import annotations

from typing import Any, ClassVar

from .. import lexicon as lx
from ..analysis import CaptionFacts, QAFacts
from ..analysis import key_in as _in
from ..verdict import Reason
from .base import Check

_ALL_OF = frozenset({"both", "all", "each", "every"})


class NegationCheck(Check):
    """Uses the NegEx-style scopes computed by the analyser. Caption concepts that are both
    affirmed and negated (e.g. "ulcerated centre, no ulceration at the rim") are ambiguous and
    never produce a conflict. A grounded "No" (caption: "without ulceration") passes; a "No"
    to a question whose terms the caption all affirms does not, words that only name the kind
    of thing asked about ("disease", "lesion") aside. In a long evidence text (over
    `long_after` tokens: an abstract, an article) a cue's scope more often reaches words it
    does not deny ("did not differ between the groups"), so a conflict there weighs
    `long_penalty`, less than in a caption."""

    name = "negation"
    defaults: ClassVar[dict[str, Any]] = {"penalty": 0.85, "long_penalty": 0.6, "long_after": 80}

    def run(self, cap: CaptionFacts, qa: QAFacts, qa_type: str | None) -> list[Reason]:
        cf = cap.facts
        only_neg, only_aff = cap.only_negated, cap.only_affirmed
        conflicts: list[str] = []
        # Yes/no questions: the answer's polarity applies to the question's terms. (Not to a
        # negated question's: "Is beer not alcoholic?" / "Yes" may agree with either.)
        if qa.yes_no and qa.polarity and qa.question_content and True not in qa.question.negated:
            pol = qa.polarity
            terms = [(t, k) for _, t, k in qa.question_content]
            q_tokens = qa.question.view.tokens
            if pol == "yes":
                conflicts += [t for t, k in terms if _in(k, only_neg)]
            else:
                if not lx.KIND_NOUNS.isdisjoint(q_tokens):
                    # (the kind asked about is no claim: a caption need not write "disease"
                    # for its "Kaposi sarcoma" to contradict "No" to "Is the disease Kaposi
                    # sarcoma?")
                    terms = [(t, k) for t, k in terms if t not in lx.KIND_NOUNS] or terms
                if (all(_in(k, only_aff) for _, k in terms)
                        and lx.STATE_PREDICATES.isdisjoint(q_tokens)
                        and _ALL_OF.isdisjoint(q_tokens)):
                    # "No" although the caption affirms every term of the question (unless
                    # the question asks whether all of several things hold: "Are both X and
                    # Y American bands?" is "no" when one is Canadian, every term in the
                    # caption).
                    conflicts += [t for t, _ in terms]
        # Statements in the answer.
        a = qa.answer
        # (no caption term only negated and no negated answer term: nothing to find)
        moot = a.moot
        for i, t, k in qa.answer_content if only_neg or True in a.negated else ():
            if i in moot:  # a negated relation's term ("did not influence survival")
                continue
            if a.negated[i]:
                if _in(k, only_aff) and not _in(k, cf.negated_keys):
                    conflicts.append(f"no {t}")
            elif _in(k, only_neg):
                conflicts.append(t)
        if not conflicts:
            return []
        long = len(cf.view.tokens) > self.p["long_after"]
        return [self.reason("negation_conflict", "answer polarity contradicts the caption",
                            self.p["long_penalty" if long else "penalty"],
                            ", ".join(dict.fromkeys(conflicts)))]
