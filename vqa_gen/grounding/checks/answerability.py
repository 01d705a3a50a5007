"""Answerability: questions an image cannot answer, and answers from general knowledge."""

from __future__ import annotations

import re
from typing import Any, ClassVar

from .. import lexicon as lx
from ..analysis import Analyser, CaptionFacts, QAFacts
from ..patterns import top_level_alternatives, with_first_letters
from ..verdict import Reason
from .base import ANSWER_CUES, QUESTION_CUES, Check, CueGate

_WORD = re.compile(r"[a-z][a-z\-]+")


def _says(cap: CaptionFacts, cue: str) -> bool:
    """Does the caption use the question's own cue ("drug" in "drug stores", "lifestyle")?
    Then it talks about what the question asks, whatever the topic's usual words. Memoised
    per caption and cue."""
    memo = cap.facts.memo
    tag = "says:" + cue
    hit = memo.get(tag)
    if hit is None:
        hit = memo[tag] = re.search(rf"\b{re.escape(cue)}\b", cap.facts.view.text) is not None
    return hit


class AnswerabilityCheck(Check):
    """Treatment, prognosis, cause, contagion, advice and history are not visible in a picture;
    such a question is `unanswerable_question` (blocking, score unchanged) unless the caption
    itself talks about the topic or uses the question's cue word.
    Textbook phrasing in the answer ("is commonly caused by", "treatment options include") is
    `general_knowledge` unless the caption contains those words."""

    name = "answerability"
    defaults: ClassVar[dict[str, Any]] = {"unanswerable_penalty": 0.0, "general_penalty": 0.5}

    def __init__(self, analyser: Analyser, params: dict | None = None) -> None:
        super().__init__(analyser, params)
        self._topics = [(name, re.compile(q), _Mentions(ev))
                        for name, q, ev in lx.UNANSWERABLE_TOPICS]
        # One search tells whether any topic can apply (most questions: none); the same for
        # the cues, whose matches are then found in one pass. A lookahead on the patterns'
        # first letters lets the engine skip other positions without trying every branch.
        self._topic_gate = CueGate([q for _, q, _ in lx.UNANSWERABLE_TOPICS], "topic_cues")
        self._any_gk = CueGate(lx.GENERAL_KNOWLEDGE_CUES, "gk_cues")
        self._gk = with_first_letters(lx.GENERAL_KNOWLEDGE_CUES)

    def run(self, cap: CaptionFacts, qa: QAFacts, qa_type: str | None) -> list[Reason]:
        qf, af = qa.question, qa.answer
        topics = qf.memo.get("topics")
        if topics is None:  # per question text: the topics it asks about, in order
            q = qf.view.text
            topics = qf.memo["topics"] = [
                (name, m, mentions) for name, q_re, mentions in self._topics
                if (m := q_re.search(q))] if (QUESTION_CUES.passes(qf)
                                               and self._topic_gate.search(q)) else ()
        gk = af.memo.get("gk")
        if gk is None:  # per answer text: each cue's text and the keys of its content words
            a = af.view.text
            if ANSWER_CUES.passes(af) and self._any_gk.search(a):
                key, is_content = self.an.norm.key, self.an.is_content
                gk = [(m.group(0), [key(w) for w in _WORD.findall(m.group(0))
                                    if is_content(w, key(w))])
                      for m in self._gk.finditer(a)]
            else:
                gk = ()
            af.memo["gk"] = gk
        out: list[Reason] = []
        if not (topics or gk):  # most pairs
            return out
        c_memo = cap.facts.memo
        for name, m, mentions in topics:
            talks = c_memo.get("topic:" + name)
            if talks is None:  # per caption: does it talk about the topic?
                talks = c_memo["topic:" + name] = mentions(cap.facts.view.text)
            if not talks and not _says(cap, m.group(0)):
                out.append(self.reason("unanswerable_question",
                                       f"question asks about {name}, which the image cannot show",
                                       self.p["unanswerable_penalty"], m.group(0)))
                break
        hits: list[str] = []
        for cue, keys in gk:
            if keys and all(k in cap.support_keys for k in keys):
                continue
            hits.append(cue)
        if hits:
            pen = min(0.9, self.p["general_penalty"] * (1 + 0.25 * (len(hits) - 1)))
            out.append(self.reason("general_knowledge",
                                   "answer states general knowledge, not what the image shows",
                                   pen, "; ".join(hits)))
        return out


_PLAIN = re.compile(r"[a-z0-9 ]+")


class _Mentions:
    """Whether a text holds a match of `pattern`: its plain-word alternatives ("treat",
    "due to") by substring tests, which on a caption are many times faster than the regex
    engine's scan, and only the others by a search."""

    def __init__(self, pattern: str) -> None:
        alternatives = top_level_alternatives(pattern)
        self.words = tuple(a for a in alternatives if _PLAIN.fullmatch(a))
        rest = [a for a in alternatives if not _PLAIN.fullmatch(a)]
        self.rest = re.compile("|".join(rest)) if rest else None

    def __call__(self, text: str) -> bool:
        for w in self.words:
            if w in text:
                return True
        return self.rest is not None and self.rest.search(text) is not None
