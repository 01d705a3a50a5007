"""Form: a "question" that is not a question (a bare label, or the answer repeated), an
answer caught in a decoding loop, an answer that only asks a question back, and a "No" that
then affirms what the question asked or a yes/no about nothing in the image."""

from __future__ import annotations

import re
from typing import Any, ClassVar

from .. import lexicon as lx
from ..analysis import CaptionFacts, Facts, QAFacts
from ..support import informativeness
from ..text import light_stem
from ..verdict import Reason
from .base import Check

_PUNCT = re.compile(r"[^\w]+")
_FIRST = re.compile(r"\w+")
# A statement in the first or second person is a conversational turn (the user's message in
# knowledge-grounded dialogue), which the answer replies to: context, not a malformed question.
_CHAT = frozenset({"hi", "hello", "hey", "yeah", "ok", "okay", "wow", "cool", "thanks"})
_PERSONAL = frozenset({"i", "i'm", "i've", "me", "my", "we", "us", "our", "you", "your"})
# The end of a sentence in raw text: a stop, "!" or "?" (and closing quotes or brackets) before
# a space. "U.S. troops" splits too, which only makes `_only_asks` say no.
_SENTENCES = re.compile(r"(?<=[.!?])[\"')\]]*\s+")


def _only_asks(raw: str) -> bool:
    """Every sentence of the answer is a question ("Is it psoriasis?", "What do you see?"):
    it claims nothing, so it answers nothing (an answer that also states something is left to
    the score)."""
    text = raw.strip().rstrip("\"')] ")
    if not text.endswith("?"):
        return False
    return all(s.rstrip("\"')] ").endswith("?") for s in _SENTENCES.split(text) if s.strip())


def _plain(facts: Facts) -> str:
    """The raw text casefolded, punctuation as spaces (memoised per text)."""
    hit = facts.memo.get("plain")
    if hit is None:
        hit = facts.memo["plain"] = _PUNCT.sub(" ", facts.view.raw.strip().casefold()).strip()
    return hit


# Words that turn a "No, ..." into a qualified answer ("No, only on the arm", "No, but it is
# scaly"): what follows need not deny the question.
_CONTRAST = frozenset(lx.words(
    "but only just though although however except yet rather instead whereas while unless "
    "merely partly partially"))


def _no_then_yes(qa: QAFacts) -> bool:
    """"... is this a melanoma?" / "No, this is a melanoma.": a "No" whose own words then say
    every term of the question's yes/no clause, adding nothing, denying nothing, qualifying
    nothing. The answer contradicts itself, so it says nothing either way."""
    a = qa.answer
    atok = a.words
    if len(atok) < 3 or atok[0] not in lx.NO_WORDS or True in a.negated:
        return False
    if not _CONTRAST.isdisjoint(atok) or True in qa.question.negated:
        return False  # "No, only ...", "Is there no ulceration?" / "No, there is ulceration."
    a_keys = {k for i, _, k in qa.answer_content if i > 0}
    if not a_keys:
        return False
    q_tokens = qa.question.view.tokens
    # the yes/no clause: what follows the question's last auxiliary ("The image is a
    # histopathology, is this a melanoma?": "melanoma")
    aux = max((i for i, t in enumerate(q_tokens) if t in lx.AUX_START), default=-1)
    clause = {k for i, _, k in qa.question_content if i > aux}
    return bool(clause) and clause <= a_keys and a_keys <= {k for _, _, k in
                                                           qa.question_content}


# "Is the spritz a diagnosis?": a question whether a word is a diagnosis (a morphology, ...)
# asks about the vocabulary, not about the image
_CATEGORY_PREDICATE = re.compile(
    r"\b(?:an?|the)\s+(?:\w+\s+)?(?:diagnos[ie]s|morphology|modality|classification|"
    r"demographics?)\W*$")


# "What is a histopathology?": what a word means, whatever the answer (usually the diagnosis)
_DEFINITION_Q = re.compile(
    r"^\W*what\s+(?:is|are)\s+an?\s+(?:diagnos[ie]s|morphology|modality|histopathology|"
    r"histology|dermoscopy|dermatoscopy|biopsy|image|picture|photo\w*|demographics?|"
    r"distribution|location)\W*$")


def _vacuous(qa: QAFacts) -> bool:
    """A yes/no question that names nothing in the image ("Does the morphology have a
    sex?", "Is this an image?", "Is the spritz a diagnosis?") answered by a bare yes or no,
    or an open one asking what such a word means ("What is a histopathology?"): the pair
    says nothing about the image."""
    if qa.polarity is None:
        if qa.yes_no:
            return False
        memo = qa.question.memo
        hit = memo.get("definition")
        if hit is None:  # per question text
            hit = memo["definition"] = _DEFINITION_Q.match(qa.question.view.text) is not None
        return hit
    if qa.answer_content or qa.answer.numbers:
        return False  # the answer says something of its own
    q = qa.question
    if not qa.question_content and not q.numbers:
        return True
    return _CATEGORY_PREDICATE.search(q.view.text) is not None


def _loops(words: list[str]) -> bool:
    """A small model's decoding loop ("a skin condition that is a skin condition that is ..."):
    fewer than half the words distinct, and one three-word run said three times or more."""
    if 2 * len(set(words)) >= len(words):
        return False
    runs: dict[tuple[str, str, str], int] = {}
    for run in zip(words, words[1:], words[2:], strict=False):
        n = runs[run] = runs.get(run, 0) + 1
        if n >= 3:
            return True
    return False


# Words a finished answer never ends on ("Dermoscopy of actinic keratosis on the forehead: a"):
# an answer cut off mid-phrase (a length limit, a stop sequence)
_DANGLING = frozenset(lx.words(
    "a an the of with and or to in on at by for from into onto than whose"))


def _breaks_off(qa: QAFacts) -> bool:
    """The answer ends on an article, preposition or conjunction written in lower case
    ("... on the forehead: a"; not "Vitamin A", "Hepatitis A")."""
    words = qa.answer.words
    if len(words) < 3 or words[-1] not in _DANGLING:
        return False
    last = _FIRST.findall(qa.answer.view.raw)
    return bool(last) and last[-1].islower()


def _one_word_twice(tokens: list[str], stop: frozenset[str]) -> bool:
    """Two words of one stem side by side, nothing between them ("Dermoscopic dermoscopy",
    "nodular nodules"; not "dermoscopic (dermatoscopic)", a spelling given in brackets)."""
    for i in range(len(tokens) - 1):
        t, u = tokens[i], tokens[i + 1]
        if t[:4] == u[:4] and t[0].isalpha() and t not in stop and (
                t == u or light_stem(t) == light_stem(u)):
            return True
    return False


def _says_twice(qa: QAFacts, stop: frozenset[str], specific: float) -> bool:
    """The answer says one phrase twice and little else ("Dermoscopic image of a pigmented
    basal cell carcinoma is a type of dermoscopic image of a pigmented basal cell
    carcinoma": a run of 3+ words whose two sayings cover two thirds of it), or says a word
    twice in a row or joins it to itself ("hyperkeratotic hyperkeratotic", "normal and
    normal in color"): a model's degenerate output."""
    if _one_word_twice(qa.answer.view.tokens, stop):
        return True  # ("Dermoscopic dermoscopy of the nose", "nodular nodules")
    words = qa.answer.words
    n = len(words)
    if n < 3 or len(set(words)) == n:
        return False  # (most answers: no word said twice)
    # (words as written: "dermoscopic (dermatoscopic)" reads as one word twice once folded)
    raw = _FIRST.findall(qa.answer.view.raw.casefold())
    for i, w in enumerate(raw[:-1]):
        if w in stop or w[0].isdigit():
            continue
        if raw[i + 1] == w:
            return True  # ("hyperkeratotic hyperkeratotic keratoses")
        if i + 2 < len(raw) and raw[i + 1] in ("and", "or") and raw[i + 2] == w and not (
                w.endswith("er")):
            return True  # ("more and more", "bigger and bigger": a stop word, a comparative)
    for size in range(n // 2, 2, -1):
        if 3 * 2 * size < 2 * n:
            break  # two sayings of shorter runs cover less than two thirds
        seen: dict[tuple[str, ...], int] = {}
        for i in range(n - size + 1):
            run = tuple(words[i:i + size])
            first = seen.setdefault(run, i)
            if first != i and i - first >= size and any(
                    informativeness(w) >= specific for w in run):
                return True  # (a specific term: not "on the left side of the" twice)
    return False


# A generated question too vague to have one answer: a bare category ("What is the type?",
# "What is the most likely mode?", "What mode is the lesion?") or a "How is ...?"
# that asks no property ("How is this image?", "How is the pathology?", "How is it?")
_VAGUE_Q = re.compile(
    r"^\W*(?:what|which)\s+(?:is|are)\s+(?:the\s+|this\s+|its\s+)?"
    r"(?:most\s+likely\s+|likely\s+|main\s+|primary\s+)?(?:type|kind|sort|mode|"
    r"domain|category|class|nature|form|name|feature|features|aspect|aspects|thing)\W*$"
    # ("What mode is the lesion?": a lesion has no mode)
    r"|^\W*(?:what|which)\s+(?:mode|domain)\s+(?:is|are)\b"
    # (a last word in -ed or -en asks how it is done: "How is the lesion distributed?")
    r"|^\W*how\s+(?:is|are)\s+(?:it|this|these|that|(?:the|this|these|that)\s+"
    r"(?:[a-z-]+\s+)?(?![a-z-]+(?:ed|en)\b)[a-z-]+)\W*$")


class FormCheck(Check):
    """Small models sometimes emit a label as the question ("Psoriasis vulgaris." / "Papule")
    and the same text as the answer. A question must end in '?' or open (within its first few
    words, after "please" / "based on the image,") with an interrogative or an imperative
    ("what", "is", "does", "describe", "name", ...), and must differ from its answer.
    A sentence in the first/second person, with "!" or a greeting is context (a dialogue
    turn), and so is one of 8+ words unless most of its content words are the caption's (not
    in a generated pair, one with a QA type, where the model wrote the question). An
    answer whose every sentence is a question answers nothing (`answer_is_question`), and
    a "No" followed by the question's own claim says nothing either way
    (`self_contradiction`), nor does a bare yes or no to a question that names nothing in the
    image (`vacuous_question`), nor a generated question too vague to have one answer ("What
    is the type?"). A generated answer that breaks off mid-phrase or says one phrase or word
    twice is `degenerate_answer`, as a decoding loop is. The reasons block but do not lower
    the score: the score says how well the answer is supported."""

    name = "form"
    defaults: ClassVar[dict[str, Any]] = {"penalty": 0.0, "opener_window": 6,
                                          "context_words": 8, "loop_words": 12,
                                          "specific_term": 3.5}  # (as the content check's)

    def run(self, cap: CaptionFacts, qa: QAFacts, qa_type: str | None) -> list[Reason]:
        a_words = qa.answer.words
        if len(a_words) >= self.p["loop_words"] and _loops(a_words):
            return [self.reason("degenerate_answer", "the answer repeats itself in a loop",
                                self.p["penalty"], qa.answer.view.raw[:60])]
        if qa_type is not None:  # (the model wrote both: its broken output)
            broken = ("the answer breaks off mid-phrase" if _breaks_off(qa)
                      else "the answer says the same thing twice"
                      if _says_twice(qa, self.an.stop, self.p["specific_term"]) else None)
            if broken:
                return [self.reason("degenerate_answer", broken, self.p["penalty"],
                                    qa.answer.view.raw[-60:])]
        asks = ([self.reason("answer_is_question", "the answer asks a question instead of "
                             "answering", self.p["penalty"], qa.answer.view.raw.strip()[:60])]
                if "?" in qa.answer.view.raw and _only_asks(qa.answer.view.raw) else [])
        if _vacuous(qa):
            asks.append(self.reason("vacuous_question", "the question asks about a word or "
                                    "about nothing in the image", self.p["penalty"],
                                    qa.question.view.raw.strip()[:60]))
        elif qa_type is not None and self._vague(qa):
            asks.append(self.reason("vacuous_question", "the question is too vague to have "
                                    "one answer: it names no property to tell",
                                    self.p["penalty"],
                                    qa.question.view.raw.strip()[:60]))
        elif qa.polarity == "no" and _no_then_yes(qa):
            asks.append(self.reason("self_contradiction", "the answer says no, then says what "
                                    "the question asked", self.p["penalty"],
                                    qa.answer.view.raw.strip()[:60]))
        return asks + self._question_form(cap, qa, qa_type is not None)

    @staticmethod
    def _vague(qa: QAFacts) -> bool:
        """"What is the type?"; or a yes/no question whose words only name kinds of thing
        ("Is this condition a disease?"), whatever the answer."""
        question = qa.question
        hit = question.memo.get("vague")
        if hit is None:  # per question text
            content = [t for _, t, _ in qa.question_content]
            hit = question.memo["vague"] = _VAGUE_Q.match(question.view.text) is not None or (
                qa.yes_no and bool(content) and lx.KIND_NOUNS.issuperset(content))
        return hit

    def _question_form(self, cap: CaptionFacts, qa: QAFacts, generated: bool
                       ) -> list[Reason]:
        """`malformed_question`, or nothing. A `generated` pair (one with a QA type: the
        model wrote its question) has no dialogue turn for context: a statement there is a
        malformed question however long or personal."""
        q_raw = qa.question.view.raw.strip()
        words = qa.question.words
        if not words:
            return []  # the empty check reports it
        # (the answer can repeat the question only if it holds the question's first word, the
        # first word of its `_plain` text: most answers are never rewritten)
        first = qa.question.memo.get("first_word")
        if first is None:
            m = _FIRST.search(qa.question.view.raw.casefold())
            first = qa.question.memo["first_word"] = m.group(0) if m else ""
        if first in qa.answer.view.raw.casefold() and _plain(qa.question) == _plain(qa.answer):
            return [self.reason("malformed_question", "question repeats the answer",
                                self.p["penalty"], q_raw[:60])]
        if q_raw.endswith("?") or "?" in q_raw:
            return []
        if not generated:
            if "!" in q_raw or any(w in _PERSONAL or w in _CHAT for w in words):
                return []  # a dialogue turn given as context, not a label
            # A long statement is context too, unless its content is the caption's: then it
            # is a caption sentence (or a claim about it) emitted in place of a question.
            content = [w for w in words if w not in lx.STOPWORDS] or words
            copied = sum(w in cap.all_tokens for w in content) >= 0.75 * len(content)
            if not copied and len(words) >= int(self.p["context_words"]):
                return []
        window = words[: int(self.p["opener_window"])]
        if words[0] in lx.AUX_START or any(w in lx.QUESTION_OPENERS for w in window):
            return []
        return [self.reason("malformed_question", "question is not interrogative (no '?', "
                            "no question word or instruction)", self.p["penalty"], q_raw[:60])]
