"""Unsupported content: answer words that neither the caption nor the metadata back up."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, ClassVar

from .. import lexicon as lx
from ..analysis import CaptionFacts, QAFacts
from ..numbers import Quantity
from ..support import (
    Support,
    copied_share,
    coverage,
    informativeness,
    names_in,
    support,
    warm_up,
    word_keys,
)
from ..swaps import caption_slots, swapped_for
from ..verdict import Reason
from .base import Check
from .numbers import (
    counted,
    ignored_values,
    number_supported,
    stated_otherwise,
    unchecked,
)
from .relevance import _DIAGNOSIS_Q, _KIND_CUES, _MODALITY_Q

# Age-group and sex words: supported by a consistent caption age or sex (`_demographic_ok`).
_DEMOGRAPHIC_WORDS = frozenset(lx.AGE_GROUPS) | frozenset(lx.SEX_WORDS)
# A word in un- or non- (`ContentCheck._prefixed_opposite` reads a caption's once)
_PREFIXES_RE = "|".join(map(re.escape, sorted(lx.OPPOSITE_PREFIXES, key=len, reverse=True)))
_PREFIXED_WORD = re.compile(rf"\b(?:{_PREFIXES_RE})[a-z][a-z-]*")  # (from the lexicon's list)


_DISEASE_ENDS = lx.DISEASE_ENDS
# words with a disease name's ending that name none
_NOT_DISEASES = frozenset(lx.words(
    "diagnosis diagnoses prognosis prognoses aroma aromas diploma diplomas stoma soma osmosis "
    "symbiosis hypnosis metamorphosis apotheosis"))
_ELLIPSIS_SPAN = 6  # content words from a modifier to the disease name it may still qualify
# words that end a noun phrase: what follows one is no longer what the word before it names
_PHRASE_BREAKS = frozenset({"of", "for", "in", "on", "at", "with", "to", "from", "by", "against",
                            "after", "before", "during", "without", "than", "as", "into"})


def _renamed_disease(units: list[tuple[int, str, str]], unsupported: tuple[str, ...],
                     specific: float, tokens: list[str]) -> str | None:
    """"Papillary cell carcinoma" for a basal cell carcinoma: a specific word the caption lacks
    right before (within two content words, one phrase) a disease name it has. The answer names
    another disease whatever the question asked. A preposition ends the phrase: "the mitigation
    of COVID-19 disease" or "an exacerbation of psoriasis" names no other disease."""
    bad = set(unsupported)
    for j, (i, t, _) in enumerate(units):
        if t not in bad or informativeness(t) < specific or t.endswith(_DISEASE_ENDS):
            continue
        for d in (1, 2):
            if (j + d >= len(units) or units[j + d][0] - i > d + 1
                    or not _PHRASE_BREAKS.isdisjoint(tokens[i + 1:units[j + d][0]])):
                break
            head = units[j + d][1]
            if head.endswith(_DISEASE_ENDS) and head not in bad:
                return " ".join(u[1] for u in units[j:j + d + 1])
    return None


def _recombined_disease(units: list[tuple[int, str, str]], broken_pairs: tuple[str, ...],
                        specific: float, cap: CaptionFacts) -> str | None:
    """"Basaloid carcinoma" for a caption of "basal cell carcinoma ... basaloid tumour nests":
    a specific word written right before a disease name, both in the caption but never
    together there (a broken pair), and never the one a few content words before the other
    (an ellipsis, "nonalcoholic (NASH) and alcoholic steatohepatitis", is together). The
    answer names a disease the caption does not, made of its words."""
    broken = set(broken_pairs)
    for j in range(len(units) - 1):
        (i, word, key), (i2, head, head_key) = units[j], units[j + 1]
        if (i2 != i + 1 or not head.endswith(_DISEASE_ENDS) or word.endswith(_DISEASE_ENDS)
                or f"{word} {head}" not in broken or informativeness(word) < specific):
            continue
        at = cap.key_positions
        heads = at.get(head_key) or at.get(head) or ()
        if any(0 < h - m <= _ELLIPSIS_SPAN for m in (at.get(key) or at.get(word) or ())
               for h in heads):
            continue
        return f"{word} {head}"
    return None


def _swapped_names(cap: CaptionFacts, tokens: list[str], raw: str,
                   items: list[tuple[int, str, str]]) -> list[str]:
    """Unsupported names of the answer written where the caption names someone or something
    else (`swaps.swapped_for`: "lead vocalist Freddie Macaurie" for "lead vocalist Chad
    Kroeger")."""
    names = names_in(raw)
    if not names:
        return []
    cap_names = caption_slots(cap)[0]
    if not cap_names:
        return []
    return [t for i, t, _ in items
            if t in names and t.isalpha()
            and re.search(rf"\b{t.capitalize()}\b", raw) is not None  # a whole word, a name
            and swapped_for(cap, tokens, i, cap_names.__contains__, cap_names) is not None]


class ContentCheck(Check):
    """The main hallucination signal. An answer word counts as supported when its key
    (synonym group or light stem) is in caption+metadata, or it shares a long stem prefix with a
    caption word, or it is a close spelling variant (rapidfuzz). Words the answer takes from
    the question are judged like the question: fine if the question's term is grounded.

    For yes/no questions the answer affirms (or denies) the question's terms, so they are
    judged as answer content: an ungrounded "Yes" is unsupported content, an ungrounded "No" is
    reported as `unsupported_negative` (no penalty by default: a weak signal). For other
    questions, ungrounded question terms are an `unsupported_premise` (the question
    presupposes something the caption does not say).
    """

    name = "content"
    defaults: ClassVar[dict[str, Any]] = {
        "pair_weight": 0.6,
        "number_weight": 6.0,
        "name_boost": 1.5,
        "protocol_weight": 1.0,
        "coverage_weight": 0.3,
        "pair_window": 2,
        "specific_term": 3.5,
        "diagnosis_penalty": 0.6,
        "pair_ordered": False,
        "echo_credit": 0.0,
        "weakest_weight": 0.0,
        "premise_factor": 0.6,
        "negative_penalty": 0.0,
        "contradiction_penalty": 0.6,
        "contradiction_local_after": 80,
        "copy_max": 0.8,
        "copy_from": 10.0,
        "copy_span": 40.0,
        "copy_full": 0.3,
        "copy_n": 3,
        "run_weight": 0.3,
        "run_neutral": 0.3,
        "run_n": 4,
        "run_from": 0.2,
        "given_weight": 0.1,
        "zero_support_share": 0.001,
    }

    def __init__(self, analyser, params=None, fuzzy_cutoff: float = 88.0,
                 ignore_values: Iterable[float] = (1.0,)) -> None:
        super().__init__(analyser, params)
        self.fuzzy_cutoff = fuzzy_cutoff
        # the numbers check's bare values left unchecked (a bare "one": articles and "a
        # single" say as much, unless it answers a count): weighed as no claim here either
        self._ignore_numbers = frozenset(float(v) for v in ignore_values)
        warm_up()  # load the word-frequency table now, not inside the first record's check
        key = analyser.norm.key
        opp: dict[str, set[str]] = {}
        for a, b in lx.ANTONYMS:
            opp.setdefault(key(a), set()).add(key(b))
            opp.setdefault(key(b), set()).add(key(a))
        self._opposites = opp
        # one ordinal for another ("the ninth largest" for "the 10th largest"); not "second",
        # which is also a unit of time ("30 seconds")
        ordinals = {w: d for w, d in lx.ORDINAL_DIGITS.items() if w != "second"}
        self._ordinals = frozenset(map(key, ordinals)) | frozenset(ordinals.values())
        # (the keys of their plurals too: "vessels", "bullae")
        self._finding_keys = frozenset(key(w) for w in lx.FINDING_TERMS) | frozenset(
            key(w + "s") for w in lx.FINDING_TERMS)
        self._closed_classes = [frozenset(key(w) for w in lx.COLOUR_TERMS),
                                frozenset(key(w) for w in lx.MORPHOLOGY_TERMS),
                                self._ordinals,
                                *(frozenset(map(key, c)) for c in lx.CALENDAR_TERMS)]
        self._colour_keys = self._closed_classes[0]
        near: dict[str, set[str]] = {}
        for a, b in lx.COLOUR_NEIGHBOURS:
            near.setdefault(key(a), set()).add(key(b))
            near.setdefault(key(b), set()).add(key(a))
        self._near = near
        p = self.p  # the support score's settings, read once (not per QA pair)
        self._pair_weight = float(p["pair_weight"])
        self._weakest_weight = float(p["weakest_weight"])
        self._number_weight = float(p["number_weight"])
        self._name_boost = float(p["name_boost"])
        self._pair_window = int(p["pair_window"])
        self._pair_ordered = bool(p["pair_ordered"])
        self._protocol_weight = float(p["protocol_weight"])
        self._echo_credit = float(p["echo_credit"])
        self._coverage_weight = float(p["coverage_weight"])
        self._copy_from = float(p["copy_from"])
        self._given_weight = float(p["given_weight"])
        self._zero_share = float(p["zero_support_share"])

    def _contradicted(self, cap: CaptionFacts, items: list[tuple[int, str, str]],
                      units: list[tuple[int, str, str]]) -> list[str]:
        """Unsupported affirmed words that contradict the caption: an antonym of a caption
        word, or a colour / lesion type when the caption states other colours / types. In a
        long evidence text an antonym somewhere says little ("late on" vs "an early goal"), so
        there the opposite word must sit near a word the answer puts beside its own."""
        out: list[str] = []
        sk = cap.support_keys
        prefixed = self._prefixed_words(cap)
        local = len(cap.facts.view.tokens) > int(self.p["contradiction_local_after"])
        for _, t, k in items:
            hits: set[str] | frozenset[str] = self._opposites.get(k, set()) & sk
            if not hits:
                for cls in self._closed_classes:
                    if k in cls and cls & sk and not self._near.get(k, set()) & sk:
                        hits = cls & sk
                        if cls is self._ordinals and not self._ordinal_swapped(cap, t, hits,
                                                                               units):
                            hits = frozenset()
                        break
            if (not hits and len(t) >= 4 and (prefixed or t.startswith(lx.OPPOSITE_PREFIXES))
                    and (t.isalpha() or "-" in t)):
                hits = self._prefixed_opposite(t, cap, prefixed)
                if hits:  # (not when the answer names both: "smokers ... than non-smokers")
                    hits -= {u[2] for u in units}
            if hits and (not local or self._near_anchor(cap, t, hits, units)):
                out.append(t)
        return out

    def _names_colour(self, token: str) -> bool:
        """A colour word, or one made of colour words ("pinkish-purple", "reddish")."""
        key, colours = self.an.norm.key, self._colour_keys
        for part in token.split("-"):
            if part.endswith("ish") and len(part) > 5:
                part = part[:-4] if part[-4] == part[-5] else part[:-3]  # (reddish: red)
            if part and key(part) in colours:
                return True
        return False

    @staticmethod
    def _prefixed_words(cap: CaptionFacts) -> frozenset[str]:
        """The caption's words in un- or non- (most captions: none), read once."""
        memo = cap.facts.memo
        prefixed = memo.get("prefixed_words")
        if prefixed is None:
            prefixed = memo["prefixed_words"] = frozenset(
                _PREFIXED_WORD.findall(cap.facts.view.text)) - lx.NOT_OPPOSITES
        return prefixed

    def _prefixed_opposite(self, token: str, cap: CaptionFacts, prefixed: frozenset[str]
                           ) -> set[str]:
        """The caption's keys of `token` with a negating prefix added or taken away
        ("unsuitable" for "suitable", "motivate" for "demotivate"), if it states that opposite;
        `prefixed`: the caption's `_prefixed_words`."""
        out: set[str] = set()
        if token in lx.NOT_OPPOSITES:
            return out
        key, toks = self.an.norm.key, cap.all_tokens
        for p in lx.OPPOSITE_PREFIXES:
            if token.startswith(p) and len(token) - len(p) >= 4:
                base = token[len(p):]
                if base in toks or key(base) in cap.support_keys:
                    out.add(key(base))
            elif prefixed and p + token in prefixed:
                out.add(key(p + token))
        return out

    @staticmethod
    def _ordinal_swapped(cap: CaptionFacts, token: str, hits: set[str] | frozenset[str],
                         units: list[tuple[int, str, str]]) -> bool:
        """Does the caption give another ordinal (`hits`) to the thing the answer's ordinal
        `token` counts, the content word after it ("the fourth finger" for "the third
        finger", "the ninth largest" for "the 10th largest")? Not when the answer names that
        ordinal too, nor for an ordinal of something else ("first appeared" beside "the third
        finger")."""
        pos = cap.key_positions
        own = {u[2] for u in units}
        h_pos = [p for h in hits if h not in own for p in pos.get(h, ())]
        if not h_pos:
            return False
        nouns = {units[j + 1][2] for j, u in enumerate(units[:-1]) if u[1] == token}
        n_pos = [p for n in nouns for p in pos.get(n, ())]
        return any(0 < n - h <= 2 for n in n_pos for h in h_pos)

    def _near_anchor(self, cap: CaptionFacts, token: str, hits: set[str] | frozenset[str],
                     units: list[tuple[int, str, str]]) -> bool:
        """Does one of the caption's opposite words `hits` sit within a few content words of
        a caption occurrence of a neighbour of `token` in the answer?"""
        pos = cap.key_positions
        at = [j for j, (_, t, _) in enumerate(units) if t == token]
        anchors = {units[j + d][2] for j in at for d in (-1, 1) if 0 <= j + d < len(units)}
        a_pos = [p for a in anchors for p in pos.get(a, ())]
        h_pos = [p for h in hits for p in pos.get(h, ())]
        window = int(self.p["pair_window"]) + 2
        return any(abs(a - b) <= window for a in a_pos for b in h_pos)

    def _copy_adjusted(self, score: float, keys: list[str], cap: CaptionFacts) -> float:
        """Long answers (summaries, descriptions, dialogue turns): copying whole word
        sequences from the evidence is evidence of faithfulness beyond single words (an
        invented clause or a swapped entity breaks every n-gram it touches). The weight grows
        with the answer's length beyond `copy_from` words. Copied trigrams can only raise the
        score (paraphrase copies little and is no sign of invention); the share of copied
        4-gram runs then moves it both ways around `run_neutral`, a typical paraphrase's share,
        so a typical paraphrase loses little. Only an answer that copies at all (a trigram share
        of `run_from`) is read for runs: a text written apart from the evidence (a claim, a
        tweet, a reply in one's own words) copies next to nothing whether or not it is
        faithful, so its lack of runs is no sign of invention."""
        p = self.p
        words = word_keys(keys)
        lam = max(0.0, (len(words) - float(p["copy_from"])) / float(p["copy_span"]))
        if not lam:  # short answers (most VQA): no n-grams built, the caption's included
            return score
        cp = copied_share(words, cap, int(p["copy_n"]))
        raise_w = min(float(p["copy_max"]), lam)
        copied = min(1.0, cp / float(p["copy_full"]))
        score = max(score, (1 - raise_w) * score + raise_w * copied)
        run_w = min(float(p["run_weight"]), lam)
        if run_w and cp >= float(p["run_from"]):
            runs = copied_share(words, cap, int(p["run_n"]))
            score = min(1.0, max(0.0, score + run_w * (runs - float(p["run_neutral"]))))
        return score

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

    def _score(self, cap: CaptionFacts, units: list[tuple[int, str, str]],
               tokens: list[str], numbers: list[Quantity] | None = None,
               echo: frozenset[str] | None = None, raw: str = "",
               protocol_asked: bool = False, given: frozenset[str] = frozenset(),
               ignore: frozenset[float] | None = None, count: str = "") -> Support:
        # A magnification ("x100") is protocol: weighed as a light word unless the question
        # asks how the image was made. (`count`: the numbers answer a count question.)
        skip = self._ignore_numbers if ignore is None else ignore
        nums = [(q.raw, number_supported(q, cap.facts.numbers, count)
                 or stated_otherwise(q, cap, tokens)) for q in numbers
                if not unchecked(q, skip)
                and (protocol_asked or q.dim != "magnification")] if numbers else []
        disc = None
        if echo and self._echo_credit:  # (0 by default: no discounts to build)
            d = self._echo_credit
            disc = [d if k in echo else 0.0 for _, _, k in units]
        return support(self.an, cap, units, tokens, self.fuzzy_cutoff, numbers=nums,
                       discount=disc, names=names_in(raw) if raw else frozenset(),
                       protocol_weight=0.0 if protocol_asked else self._protocol_weight,
                       pair_weight=self._pair_weight, weakest_weight=self._weakest_weight,
                       number_weight=self._number_weight, name_boost=self._name_boost,
                       window=self._pair_window, ordered=self._pair_ordered,
                       given=given, given_weight=self._given_weight)

    @staticmethod
    def _question_asks(qa: QAFacts
                       ) -> tuple[bool, bool, frozenset[str] | None, frozenset[str]]:
        """(does the question ask how the image was made, does it ask for a diagnosis, the
        keys an answer may echo from it for part credit: an open question's content words,
        the keys of all the question's content words)."""
        text = qa.question.view.text
        given = frozenset(k for _, _, k in qa.question_content)
        echo = None if qa.yes_no else given
        if _KIND_CUES.search(text) is None:  # every modality or diagnosis match holds a cue
            return False, False, echo, given
        return (bool(_MODALITY_Q.search(text)), bool(_DIAGNOSIS_Q.search(text)), echo,
                given)

    def run(self, cap: CaptionFacts, qa: QAFacts, qa_type: str | None) -> list[Reason]:
        out: list[Reason] = []
        p = self.p
        a_units = qa.answer_content  # (read only)
        if not _DEMOGRAPHIC_WORDS.isdisjoint(qa.answer.view.tokens):
            a_units = [c for c in a_units if c[1] not in _DEMOGRAPHIC_WORDS
                       or not self._demographic_ok(c[1], cap)]
        q_memo = qa.question.memo
        asks = q_memo.get("content_check")
        if asks is None:  # per question text (question facts are cached by text)
            asks = q_memo["content_check"] = self._question_asks(qa)
        # Words the answer echoes from an open question (the user's turn, the question's own
        # terms) get `echo_credit` (0 by default: the LLM wrote the question too, so its
        # invented premise repeated supports nothing). The ones the evidence has weigh
        # little: what the answer adds decides its support.
        protocol_asked, diagnosis_q, echo, given = asks
        av = qa.answer.view
        numbers = qa.answer.numbers
        ignore = (ignored_values(qa, cap, self.an, self._ignore_numbers) if numbers
                  else self._ignore_numbers)
        sup = self._score(cap, a_units, av.tokens, numbers, echo, av.raw,
                          protocol_asked=protocol_asked, given=given, ignore=ignore,
                          count=counted(qa.question) if numbers else "")
        cov_w = self._coverage_weight
        values: frozenset[float] = frozenset()
        if numbers and cov_w and counted(qa.question):
            # A count the number units accept counts as found, however written ("2" for
            # "two"; a "1" for "a nodule"). (Elsewhere the literal match stays: it tells a
            # hedged "about 300" from the caption's 330, which the units accept.)
            values = frozenset(v for q in numbers for v in (q.lo, q.hi) if unchecked(
                q, ignore) or number_supported(
                    q, cap.facts.numbers, counted(qa.question)))
        cov = coverage(av.tokens, av.keys, cap.all_tokens, cap.support_keys, values
                       ) if cov_w else 1.0
        score, weight = sup.score * (1 - cov_w + cov_w * cov), sup.weight
        if p["copy_max"] and len(av.keys) > self._copy_from:  # (short answers: no copying)
            score = self._copy_adjusted(score, av.keys, cap)
        if score <= 0.0 and self._zero_share:
            # No content unit supported: the score still ranks. An answer sharing some plain
            # words with the evidence ("the virus can stay on surfaces ...") sits above one
            # sharing none, by a margin too small to move any verdict.
            if not cov_w:
                cov = coverage(av.tokens, av.keys, cap.all_tokens, cap.support_keys, values)
            score = self._zero_share * cov
        unsupported = list(sup.unsupported)
        neg = qa.answer.negated
        contra_items = [c for c in a_units if not neg[c[0]] and c[1] in sup.unsupported
                        ] if sup.unsupported else []  # affirmed unsupported words
        judged = len(a_units)  # the words (and below, numbers) the score judged
        if qa.yes_no and qa.question_content:
            q_units = [c for c in qa.question_content if not self._demographic_ok(c[1], cap)]
            q_sup = self._score(cap, q_units, qa.question.view.tokens,
                                qa.question.numbers if qa.polarity == "yes" else None)
            if qa.polarity == "yes":
                # "Yes" affirms the question's terms: they are the answer's claim.
                score = ((score * weight + q_sup.score * q_sup.weight)
                         / max(1e-9, weight + q_sup.weight)) if weight else q_sup.score
                extra = [t for t in q_sup.unsupported if t not in unsupported]
                unsupported += extra
                judged += len(q_units)
                contra_items += [c for c in q_units if c[1] in extra
                                 and not qa.question.negated[c[0]]]
            elif qa.polarity == "no" and q_sup.unsupported:
                qn = len(q_sup.unsupported)
                out.append(self.reason(
                    "unsupported_negative",
                    "answer denies something the caption does not mention",
                    min(0.9, p["negative_penalty"] * (1 + 0.5 * (qn - 1))),
                    ", ".join(q_sup.unsupported)))
        elif not a_units and not qa.answer.numbers and qa.question_content:
            # An answer with no content of its own ("3", "at the top") means nothing without
            # its question: then the question's terms are what it relies on.
            q_sup = self._score(cap, qa.question_content, qa.question.view.tokens)
            if q_sup.unsupported:
                out.append(self.reason(
                    "unsupported_premise", "the answer relies on question terms not in caption",
                    p["premise_factor"] * (1 - q_sup.score), ", ".join(q_sup.unsupported)))
        elif qa_type is not None and a_units and qa.question_content:
            # A generated question is the model's claim too: asking how "the vessels" are
            # arranged in an image whose caption has none presupposes vessels.
            finding = self._finding_keys
            q_units = [c for c in qa.question_content if c[2] in finding]
            if q_units:
                q_sup = self._score(cap, q_units, qa.question.view.tokens)
                if q_sup.unsupported:
                    out.append(self.reason(
                        "unsupported_premise", "the question presupposes something the "
                        "caption does not mention", p["premise_factor"] * (1 - q_sup.score),
                        ", ".join(q_sup.unsupported)))
        if score < 0.999:
            ev = ", ".join(unsupported)
            if sup.broken_pairs:
                ev = "; ".join(x for x in (ev, "apart in caption: " + " / ".join(
                    sup.broken_pairs[:4])) if x)
            out.insert(0, self.reason(
                "unsupported_content",
                f"{len(unsupported)}/{max(judged, len(unsupported))} answer content word(s) "
                "not in caption "
                f"(support {score:.2f})", 1 - score, ev or None))
        renamed = _renamed_disease(a_units, sup.unsupported, p["specific_term"],
                                   qa.answer.view.tokens
                                   ) if sup.unsupported and not qa.yes_no else None
        if not renamed and sup.broken_pairs and not qa.yes_no:
            renamed = _recombined_disease(a_units, sup.broken_pairs, p["specific_term"], cap)
        if renamed:
            out.append(self.reason(
                "unsupported_diagnosis", "the answer names a disease the caption does not: "
                "an unsupported term before a disease name", p["diagnosis_penalty"], renamed))
        elif (not qa.yes_no and diagnosis_q
                and any(informativeness(t) >= p["specific_term"] for t in sup.unsupported
                        if not t[0].isdigit())):
            # The answer to "What is the diagnosis?" is one claim, the disease: naming one the
            # caption does not ("Verruca vulgaris (H&E, x100)" for molluscum) is wrong however
            # much of the rest (stain, magnification) is copied.
            out.append(self.reason(
                "unsupported_diagnosis", "a diagnosis question answered with a term the caption "
                "does not name", p["diagnosis_penalty"],
                ", ".join(t for t in sup.unsupported
                          if informativeness(t) >= p["specific_term"])))
        elif not qa.yes_no and sup.unsupported:
            # Whatever the question, an answer that names a disease the caption does not
            # ("What is the location?" / "Adenocarcinoma of the dermo-epidermal junction." for
            # lichen planus) invents a diagnosis.
            named = [t for t in sup.unsupported if t.endswith(_DISEASE_ENDS)
                     and t not in _NOT_DISEASES and informativeness(t) >= p["specific_term"]]
            if named and av.raw:  # (a name written capitalised in a sentence: "Sonoma")
                places = names_in(av.raw)
                named = [t for t in named if t not in places]
            if named:
                out.append(self.reason(
                    "unsupported_diagnosis", "the answer names a disease the caption does not",
                    p["diagnosis_penalty"], ", ".join(named)))
        if qa_type is not None and sup.unsupported and not qa.yes_no:
            # A generated answer that names a lesion type or structure its caption does not
            # mention ("Papules (localized hyaluronan aggregation), ..." for pemphigus
            # vulgaris) invents a finding, however much else it copies.
            finding = self._finding_keys
            invented = [t for i, t, k in a_units if k in finding and not neg[i]
                        and t in sup.unsupported]
            colours = self._colour_keys
            if colours.isdisjoint(cap.support_keys):
                # (a caption that states no colour: "Granuloma annulare (H&E, x100) has a
                # pinkish-purple appearance" invents one; against a caption's own colours
                # another one is `contradicted_content`, a neighbour a loose paraphrase)
                invented += [t for i, t, _ in a_units if not neg[i] and t in sup.unsupported
                             and self._names_colour(t)]
            if invented:
                out.append(self.reason(
                    "unsupported_finding", "the answer names a finding the caption does not "
                    "mention", p["diagnosis_penalty"], ", ".join(dict.fromkeys(invented))))
            elif not any(r.code == "unsupported_diagnosis" for r in out):
                # Nor may it use a specific term the caption does not support: what a small
                # model writes beyond its caption in a rare word is coined or misread
                # ("Paleocytes around foci ..." for palisading histiocytes, "Papillomatous
                # keratoses (PMC)", "H&E (hemoglobin)", "A dermoscopic dermis").
                specific = p["specific_term"]
                coined = [t for i, t, _ in a_units if not neg[i] and t in sup.unsupported
                          and t[0].isalpha() and t not in lx.PROTOCOL_TERMS
                          and informativeness(t) >= specific]
                if coined:
                    out.append(self.reason(
                        "unsupported_term", "the answer uses a specific term the caption "
                        "does not support", p["diagnosis_penalty"],
                        ", ".join(dict.fromkeys(coined))))
        contra = self._contradicted(cap, contra_items, a_units) if contra_items else None
        if contra_items:
            swapped = _swapped_names(cap, qa.answer.view.tokens, av.raw, contra_items)
            if swapped:
                contra = [*(contra or ()), *swapped]
        if contra:
            out.append(self.reason(
                "contradicted_content",
                "caption states the opposite, another colour/type, or another name in its place",
                1 - (1 - p["contradiction_penalty"]) ** len(contra),
                ", ".join(dict.fromkeys(contra))))
        return out
