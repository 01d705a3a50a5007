"""`GroundingFilter`: runs the checks on QA pairs and combines their reasons into a verdict."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rapidfuzz import fuzz

from . import lexicon as lx
from .analysis import Analyser, CaptionFacts
from .checks.answerability import AnswerabilityCheck
from .checks.base import Check
from .checks.content import ContentCheck
from .checks.demographics import DemographicsCheck
from .checks.empty import EmptyCheck
from .checks.form import FormCheck
from .checks.leakage import LeakageCheck
from .checks.negation import NegationCheck
from .checks.numbers import NumberCheck
from .checks.relevance import RelevanceCheck
from .config import FilterConfig
from .echo import Example, echoed_words, example_words
from .verdict import Reason, Verdict, new_reason, new_verdict

_CHECK_CLASSES: tuple[type[Check], ...] = (EmptyCheck, FormCheck, LeakageCheck, ContentCheck,
                                           NumberCheck, DemographicsCheck, NegationCheck,
                                           AnswerabilityCheck, RelevanceCheck)
_KEEP_IN_QUESTION_KEY = frozenset({"what", "which", "who", "where", "when", "why", "how", "no",
                                   "not", "or"})
_DROP_FROM_QUESTION_KEY = lx.STOPWORDS - _KEEP_IN_QUESTION_KEY  # (one set test per token)


def _rank(v: Verdict) -> tuple[bool, float]:
    """Of two duplicates the better is the one that passes, then the higher score (a pair
    blocked for another reason keeps its score: it must not push out one that passes)."""
    return v.passed, v.score


class GroundingFilter:
    """Scores QA pairs by how well the caption (and record metadata) supports them.

    Build once (patterns and vocabulary compile here), then call `check` per pair or
    `check_record` per caption. Stateless between calls apart from a one-entry caption cache.
    """

    def __init__(self, config: FilterConfig | None = None) -> None:
        self.config = config or FilterConfig()
        cfg = self.config
        self.analyser = Analyser()
        self._checks: list[tuple[Check, float]] = []
        for cls in _CHECK_CLASSES:
            settings = cfg.check(cls.name)
            if not settings.enabled:
                continue
            if cls is ContentCheck:
                ignore = cfg.check("numbers").params.get(
                    "ignore_values", NumberCheck.defaults["ignore_values"])
                inst: Check = ContentCheck(self.analyser, settings.params,
                                           fuzzy_cutoff=float(cfg.fuzzy_cutoff or 88.0),
                                           ignore_values=ignore)
            else:
                inst = cls(self.analyser, settings.params)
            self._checks.append((inst, settings.weight * float(cfg.penalty_scale or 1.0)))
        self._runs = [(check.run, weight) for check, weight in self._checks]  # bound once
        dup = cfg.check("duplicates")
        self._dup_enabled = dup.enabled
        self._dup_penalty = float(dup.params.get("penalty", 0.0)) * dup.weight
        self._dup_threshold = float(dup.params.get("threshold", cfg.duplicate_threshold or 90))
        echo = cfg.check("echo")
        self._echo_enabled = echo.enabled
        self._echo_penalty = float(echo.params.get("penalty", 0.0)) * echo.weight
        self._fuzzy_cutoff = float(cfg.fuzzy_cutoff or 88.0)  # (the content check's)
        self._blocking = frozenset(cfg.blocking_codes or ())
        self._threshold = float(cfg.threshold if cfg.threshold is not None else 0.5)
        self._last: tuple[tuple[str, str], CaptionFacts] | None = None
        self._clean = Verdict(1.0, self._threshold <= 1.0, ())  # the verdict of no reasons

    # -- caption -----------------------------------------------------------------------
    def caption_facts(self, caption: str, meta: Mapping[str, Any] | None = None
                      ) -> CaptionFacts:
        """Analyse caption + metadata (cached for the most recent caption)."""
        key = (caption, repr(sorted(meta.items(), key=str)) if meta else "")
        last = self._last
        if last is not None and last[0] == key:
            return last[1]
        facts = self.analyser.caption(caption or "", meta)
        self._last = (key, facts)
        return facts

    def forget_caption(self) -> None:
        """Drop the cached analysis of the most recent caption (benchmarks measure a new
        evidence text per record with it)."""
        self._last = None

    # -- scoring -----------------------------------------------------------------------
    def combine(self, reasons: Sequence[Reason]) -> Verdict:
        """Score = product of (1 - penalty); fails below threshold or on a blocking code."""
        if not reasons:  # most common verdict: nothing found (immutable, so one serves all)
            return self._clean
        score = 1.0
        blocked = False
        blocking = self._blocking
        for r in reasons:
            p = r.penalty
            score *= 1.0 - (p if 0.0 <= p <= 1.0 else min(1.0, max(0.0, p)))
            if r.code in blocking:
                blocked = True
        if not 0.0 <= score <= 1.0:
            score = min(1.0, max(0.0, score))
        return new_verdict(score, score >= self._threshold and not blocked, tuple(reasons))

    def _check_facts(self, cap: CaptionFacts, question: str, answer: str,
                     qa_type: str | None) -> Verdict:
        qa = self.analyser.qa(question, answer)
        reasons: list[Reason] = []
        for run, weight in self._runs:
            found = run(cap, qa, qa_type)
            if not found:  # most checks find nothing
                continue
            for r in found:
                pen = r.penalty * weight
                if not pen < 1.0:  # (capped at 1 by comparison: the builtin min is slower)
                    pen = 1.0
                if pen != r.penalty:  # weight 1 and penalty <= 1: the reason as it is
                    r = new_reason(r.code, r.check, r.detail, pen, r.evidence)
                reasons.append(r)
        return self.combine(reasons) if reasons else self._clean

    def check(self, caption: str, question: str, answer: str,
              meta: Mapping[str, Any] | None = None, qa_type: str | None = None) -> Verdict:
        """Verdict for one QA pair."""
        return self._check_facts(self.caption_facts(caption, meta), str(question or ""),
                                 str(answer or ""), qa_type)

    def check_record(self, caption: str, pairs: Sequence[tuple[str, str]],
                     meta: Mapping[str, Any] | None = None,
                     qa_types: Sequence[str | None] | None = None,
                     examples: Sequence[Example] = ()) -> list[Verdict]:
        """Verdicts for all pairs of one record (caption analysed once), plus the within-record
        near-duplicate-question check: the worse of two near-duplicates fails. `examples`: the
        worked examples the prompt showed the model, whose answers copied here fail
        (`example_echo`, see `grounding.echo`)."""
        cap = self.caption_facts(caption, meta)  # shared with the template's demographics
        check = self._check_facts
        if qa_types is None:
            verdicts = [check(cap, str(q or ""), str(a or ""), None) for q, a in pairs]
        else:
            types = list(qa_types)
            verdicts = [check(cap, str(q or ""), str(a or ""), types[i] if i < len(types) else None)
                        for i, (q, a) in enumerate(pairs)]
        if examples and self._echo_enabled:
            verdicts = self.mark_echoes(cap, [a for _, a in pairs], verdicts, examples)
        if self._dup_enabled and len(pairs) > 1:
            verdicts = self.mark_duplicates([q for q, _ in pairs], verdicts,
                                            [a for _, a in pairs])
        return verdicts

    def mark_echoes(self, cap: CaptionFacts, answers: Sequence[str], verdicts: list[Verdict],
                    examples: Sequence[Example]) -> list[Verdict]:
        """Fail each answer that repeats a worked example's answer with a word of that
        example's caption which this caption does not write, or that writes a word of an
        example's caption this caption does not support (`example_echo`, blocking)."""
        an, fuzzy = self.analyser, self._fuzzy_cutoff

        def unsupported(word: str) -> bool:
            return not an.supported(word, an.norm.key(word), cap, fuzzy)

        in_examples = example_words(examples, self._words)
        out = verdicts
        for i, answer in enumerate(answers):
            borrowed = echoed_words(str(answer or ""), examples, in_examples, cap.all_tokens,
                                    self._words, self.analyser.stop, unsupported)
            if borrowed:
                r = new_reason("example_echo", "echo",
                               "the answer repeats the prompt's worked example: words of the "
                               "example's caption that this caption does not have",
                               self._echo_penalty, ", ".join(borrowed))
                if out is verdicts:
                    out = list(verdicts)
                out[i] = self.combine((*out[i].reasons, r))
        return out

    def _words(self, text: str) -> list[str]:
        """Folded words and numbers of a text, as the caption's `all_tokens` holds them."""
        return [t for t in self.analyser.norm.view(text).tokens if t[:1].isalnum()]

    # -- duplicates --------------------------------------------------------------------
    def question_key(self, question: str) -> str:
        """Normalised question for duplicate detection (keys, minus filler function words;
        "which" read as "what": "Which is the most accurate type of image?" asks what "What is
        the most accurate type of image?" does)."""
        facts = self.analyser.text_facts(str(question or ""))  # cached with the QA
        key = facts.memo.get("question_key")
        if key is None:
            view = facts.view
            key = facts.memo["question_key"] = " ".join([
                "what" if t == "which" else k for t, k in zip(view.tokens, view.keys, strict=True)
                if t[0].isalnum() and t not in _DROP_FROM_QUESTION_KEY])
        return key

    def mark_duplicates(self, questions: Sequence[str], verdicts: Sequence[Verdict],
                        answers: Sequence[str] = ()) -> list[Verdict]:
        """Fail the worse of each near-duplicate question pair, then of each pair of different
        questions given the same answer of 3+ words ("Granuloma annulare (H&E, x100)" to "What
        is the diagnosis?" and to "What is the distribution?"); ties: keep the first."""
        keys = [self.question_key(q) for q in questions]
        out = list(verdicts)
        dropped: set[int] = set()
        threshold, ratio = self._dup_threshold, fuzz.token_set_ratio
        for i in range(len(keys)):
            key = keys[i]
            if i in dropped or not key:
                continue
            for j in range(i + 1, len(keys)):
                other = keys[j]
                if j in dropped or not other:
                    continue
                # (equal keys: 100; below the threshold the cutoff gives 0, never compared)
                sim = 100.0 if key == other else ratio(key, other, score_cutoff=threshold)
                if sim < threshold:
                    continue
                worse, better = (i, j) if _rank(out[i]) < _rank(out[j]) else (j, i)
                dropped.add(worse)
                r = new_reason("duplicate_question", "duplicates",
                               f"near-duplicate of question {better + 1} ({sim:.0f}%)",
                               self._dup_penalty, str(questions[better])[:120])
                out[worse] = self.combine((*out[worse].reasons, r))
                if worse == i:
                    break
        if answers:
            self._mark_duplicate_answers(answers, out, dropped)
        return out

    def _mark_duplicate_answers(self, answers: Sequence[str], out: list[Verdict],
                                dropped: set[int]) -> None:
        first: dict[str, int] = {}
        for i, answer in enumerate(answers):
            if i in dropped:
                continue
            words = str(answer or "").casefold().split()
            if len(words) < 3:
                continue  # "Yes.", "Red.", "3": the same short answer fits many questions
            key = " ".join(words).rstrip(" .!;:,")  # (spacing, case, a closing mark aside)
            j = first.setdefault(key, i)
            if j == i:
                continue
            worse, better = (j, i) if _rank(out[j]) < _rank(out[i]) else (i, j)
            r = new_reason("duplicate_answer", "duplicates",
                           f"the same answer as pair {better + 1}, to another question",
                           self._dup_penalty, str(answer)[:120])
            out[worse] = self.combine((*out[worse].reasons, r))
            first[key] = better
