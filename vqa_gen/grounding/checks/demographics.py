"""Demographics and anatomy: sex, age group, laterality and body site contradicting the
caption."""

from __future__ import annotations

from typing import Any, ClassVar

from .. import lexicon as lx
from ..analysis import Analyser, CaptionFacts, QAFacts
from ..verdict import Reason
from .base import Check

_SLACK = 3.0


class DemographicsCheck(Check):
    """Contradictions, not omissions: an answer naming a site/sex/age the caption does not
    mention at all is left to the content check; one that conflicts with what the caption does
    say (caption "back", answer "chest"; "64-year-old", answer "child") is flagged here."""

    name = "demographics"
    defaults: ClassVar[dict[str, Any]] = {
        "sex_penalty": 0.8,
        "age_penalty": 0.8,
        "laterality_penalty": 0.8,
        "site_penalty": 0.7,
        "pronoun_factor": 0.6,
        "one_person_max": 80,
    }

    def __init__(self, analyser: Analyser, params: dict[str, Any] | None = None) -> None:
        super().__init__(analyser, params)
        self._one_person_max = int(self.p["one_person_max"])  # evidence tokens

    def run(self, cap: CaptionFacts, qa: QAFacts, qa_type: str | None) -> list[Reason]:
        c, a = cap.facts, qa.answer
        q = qa.question if qa.yes_no and qa.polarity == "yes" else None
        # What the answer (and a "yes" question) says; read only, so a lone answer's own sets
        # serve without copies.
        a_sexes = a.sexes | q.sexes if q else a.sexes
        a_ages = a.age_ranges + q.age_ranges if q else a.age_ranges
        al = a.laterality | q.laterality if q else a.laterality
        a_sites = a.sites | q.sites if q else a.sites
        if not (a_sexes or a_ages or al or a_sites):
            return []  # most answers: no sex, age, side or site to contradict
        out: list[Reason] = []
        p = self.p
        tokens = a.view.tokens + q.view.tokens if q else a.view.tokens
        # sex
        # (a caption describes one patient; a longer text, a story or an article, speaks of
        # several people, and the one sex its words name says nothing of the answer's person)
        if len(c.sexes) == 1 and a_sexes and a_sexes != c.sexes and (
                len(c.view.tokens) <= self._one_person_max):
            a_nouns = a.sex_nouns | q.sex_nouns if q else a.sex_nouns
            pen = p["sex_penalty"] * (1.0 if a_nouns - c.sexes else p["pronoun_factor"])
            words = [t for t in tokens if lx.SEX_WORDS.get(t) in a_sexes - c.sexes]
            out.append(self.reason("sex_mismatch", "answer gives a different sex",
                                   pen, ", ".join(dict.fromkeys(words))))
        # age group
        if a_ages and c.age_ranges:  # (the caption's ages are extracted only when needed)
            a_nums = {n.raw for n in a.numbers} | ({n.raw for n in q.numbers} if q else set())
            for lo, hi, word in a_ages:
                if word in a_nums:
                    continue  # numeric ages are the number check's
                if not any(lo - _SLACK <= chi and clo <= hi + _SLACK
                           for clo, chi, _ in c.age_ranges):
                    out.append(self.reason("age_mismatch", "answer age group contradicts caption",
                                           p["age_penalty"], word))
                    break
        # laterality
        cl = c.laterality
        if cl and al:
            bad: list[str] = []
            for side in ("left", "right"):
                other = "right" if side == "left" else "left"
                if side in al and side not in cl and other in cl and "bilateral" not in cl:
                    bad.append(side)
            if "bilateral" in al and "bilateral" not in cl and len(cl & {"left", "right"}) == 1:
                bad.append("bilateral")
            if "unilateral" in al and "bilateral" in cl:
                bad.append("unilateral")
            if ("bilateral" in cl and "bilateral" not in al and len(al & {"left", "right"}) == 1
                    and "only" in tokens):
                bad.append(f"{next(iter(al & {'left', 'right'}))} only")
            if bad:
                out.append(self.reason("laterality_mismatch", "answer gives the other side",
                                       p["laterality_penalty"], ", ".join(bad)))
        # body site
        if c.sites and a_sites:
            closure = cap.site_closure
            wrong = []
            for s in a_sites:
                if s in closure:
                    continue
                # more specific than a caption site (caption "hand", answer "thumb"):
                # unsupported detail, the content check's business.
                if any(par in c.sites for par in lx.SITE_PARENTS.get(s, ())):
                    continue
                wrong.append(s)
            if wrong:
                out.append(self.reason("site_mismatch", "answer names a body site the caption "
                                       "does not", p["site_penalty"],
                                       f"{', '.join(sorted(wrong))} (caption: "
                                       f"{', '.join(sorted(c.sites))})"))
        return out
