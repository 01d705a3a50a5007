"""One-pass analysis of caption (+ metadata), question and answer into what the checks read.

`Analyser.caption(...)` is the expensive part and is done once per record; `Analyser.qa(...)`
is done per QA pair. Checks never re-tokenise: they read `CaptionFacts` and `QAFacts`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from itertools import compress, islice, pairwise, repeat
from operator import contains, ne, not_
from typing import Any

from mypy_extensions import mypyc_attr
from rapidfuzz import fuzz, process

from . import lexicon as lx
from .numbers import _UNITS, NumberExtractor, Quantity
from .text import Memo, Normaliser, TextView, prefixed_opposite, shared_prefix_match

_LATERALITY = {"left": "left", "right": "right", "bilateral": "bilateral",
               "unilateral": "unilateral", "bilaterally": "bilateral"}
_CLAUSE_END = frozenset(".;:!?()")
_BEFORE_BY = 2  # `Analyser._word_kind`: content only when "by" follows
_TIME_UNITS = frozenset({"year", "years", "month", "months", "week", "weeks", "day", "days",
                         "yrs", "yr"})  # "3 years old" is an age, not the word "old"
# "came back", "way back in the 19th century": no site
_GO_WORDS = frozenset({"came", "come", "go", "went", "comes", "goes", "going", "way", "dates",
                       "date", "dating", "brought", "bring", "looking", "look", "get", "got",
                       "take", "takes", "took", "taken", "taking", "give", "gave", "given",
                       "giving", "pay", "paid", "hold", "held", "call", "called", "fight",
                       "fought", "bounce", "bounced", "turn", "turned", "pull", "pulled", "cut",
                       "set", "sent", "send", "put", "hit", "strike", "struck", "write",
                       "wrote", "scaled", "step", "stepped", "fall", "fell", "sit", "sat"})
# A speaker's "I never heard of X", "I didn't know there were 3", "not sure": a verbal negation
# of knowing denies nothing about what follows.
_VERBAL_CUES = frozenset({"not", "never", "n't", "didn't", "don't", "doesn't", "haven't",
                          "hadn't", "wasn't", "isn't", "cannot", "can't"})
# (Not "seen", "observed", "known": "not seen" states an absence.)
_EPISTEMIC = frozenset({"know", "knew", "heard", "hear", "aware", "sure", "think", "thought",
                        "realize", "realise", "realized", "realised", "remember", "recall",
                        "understand", "believe"})
# "sole" is the foot's only before these ("soles of the feet", "palms and soles", "on the
# sole."); before another word it means "only" ("the sole lesion", "the sole cause")
_SOLE_SITE_NEXT = frozenset({"of", "and", "or", "nor", ",", ".", ";", ":", ")", "!", "?"})
_DIGIT = re.compile(r"\d")
_NEG_WINDOW = 6
_OPPOSITE_PARTS = frozenset({"non", "un", "anti"})  # "non-invasive": the opposite of its rest
# Pseudo-negations (NegEx's term): "not" before these affirms what follows ("not only red but
# scaly", "not just a rash", "not the only lesion", "not the first time it ulcerated").
_PSEUDO_AFTER_NOT = frozenset({("only",), ("just",), ("merely",), ("the", "only"),
                               ("the", "first")})
_PSEUDO_AFTER_NO = frozenset({"matter", "doubt"})
# A reply opening with "no" before a pronoun, an article or a verb's subject ("no he doesn't",
# "no the movie is great", "no its from 2009") says "no" to the turn before it: an
# interjection, not the determiner of what follows ("no vesicles are seen").
_AFTER_REPLY_NO = frozenset(lx.words(
    "i you he she it its it's we they them this that there the a an my his her their our your "
    "absolutely definitely actually not"))
_POST_WINDOW = 4

_NO_POSITIONS: frozenset[int] = frozenset()
_SUBJECT_CUES = frozenset({"no", "neither", "nor", "none"})
_COPULAS = frozenset({"is", "are", "was", "were"})
_NONE: frozenset[str] = frozenset()  # shared by the texts that name no sex, side, site ...
_NO_AGES: list[tuple[float, float, str]] = []  # (never appended to: read only)
# Metadata naming where a record came from ("fig 3.9", a file, an id): not evidence about the
# image, and its numbers must not be read as measurements.
_PROVENANCE_KEYS = frozenset({"source", "id", "uid", "url", "uri", "path", "file", "filename",
                              "image", "image_path", "image_id", "figure", "fig", "doi", "pmid",
                              "pmcid", "license", "licence", "split", "page"})
_UNIT_TOKENS = frozenset(u for u in _UNITS if u.replace("-", "").isalpha()) | {
    "old", "times", "fold", "magnification", "magnified", "power"}


@dataclass(slots=True)
class Facts:
    """What a text asserts, keyed by normalised concept. Its quantities (`numbers`, and the
    ages among `age_ranges`) are extracted on first use: most QA never read the caption's."""

    view: TextView
    negated: list[bool]
    affirmed_keys: AbstractSet[str]  # (a caption's only: empty for questions and answers)
    negated_keys: AbstractSet[str]  # (the same)
    sexes: AbstractSet[str]
    sex_nouns: AbstractSet[str]
    word_ages: list[tuple[float, float, str]]  # from age words ("elderly", "child")
    laterality: AbstractSet[str]
    sites: AbstractSet[str]
    extractor: NumberExtractor
    content_index: list[int]  # positions of word tokens that are not stop words
    words: list[str]  # word and number tokens, in order (read only: may be `view.tokens`)
    memo: dict[str, Any] = field(default_factory=dict)  # per-text results of checks' regexes
    # positions of a negated relation's terms ("did not influence survival"): not denied
    moot: AbstractSet[int] = frozenset()
    _numbers: list[Quantity] | None = None
    _ages: list[tuple[float, float, str]] | None = None

    @property
    def numbers(self) -> list[Quantity]:
        """Quantities in the text (unit-aware)."""
        if self._numbers is None:
            self._numbers = self.extractor.extract(self.view.text)
        return self._numbers

    @property
    def age_ranges(self) -> list[tuple[float, float, str]]:
        """Ages stated by words, then by numbers ("64-year-old")."""
        if self._ages is None:
            self._ages = self.word_ages + [(q.lo, q.hi, q.raw) for q in self.numbers
                                           if q.dim == "age"]
        return self._ages


@dataclass(slots=True)
class CaptionFacts:
    """Caption plus metadata, analysed once per record."""

    facts: Facts
    support_keys: set[str]
    site_closure: set[str] = field(default_factory=set)
    # the text's own keys (without implied ones), for word-family lookups
    prefix_keys: KeySet = field(default_factory=lambda: KeySet())
    support_tokens: list[str] | None = None  # words of 4+ letters as written, on first use
    acronym_text: str | None = None  # the initials joined by NUL: one substring test
    support_text: str | None = None  # support_tokens joined by NUL, on first use
    all_tokens: set[str] = field(default_factory=set)  # words and numbers, as written
    only_negated: set[str] = field(default_factory=set)  # negated and never affirmed
    only_affirmed: set[str] = field(default_factory=set)  # affirmed and never negated
    supported_memo: dict[str, bool] = field(default_factory=dict)  # token -> supported
    # key, spelling or hyphen part -> the content-word positions where it stands (unordered)
    key_positions: dict[str, list[int]] = field(default_factory=dict)
    position_memo: dict[str, Sequence[int]] = field(default_factory=dict)  # see support.py


@dataclass(slots=True)
class QAFacts:
    """Question and answer, analysed per pair."""

    question: Facts
    answer: Facts
    yes_no: bool
    polarity: str | None  # "yes" | "no" | None
    answer_content: list[tuple[int, str, str]]  # (token index, token, key)
    question_content: list[tuple[int, str, str]]


@mypyc_attr(native_class=False)  # (a builtin subclass: a plain class when compiled)
class KeySet(set):
    """A set of keys that answers `key_in` through its keys' 5-character prefixes (a set of
    them first, then an index of the keys by prefix, each built on first use; the set is not
    mutated after that), so a long caption costs O(1) per lookup."""

    _prefixes: set[str] | None = None
    _index: dict[str, list[str]] | None = None

    def prefixes(self) -> set[str]:
        """The first 5 characters of the keys of 5+ characters."""
        pre = self._prefixes
        if pre is None:
            pre = self._prefixes = {k[:5] for k in self if len(k) >= 5}
        return pre

    def index(self) -> dict[str, list[str]]:
        """Keys of 5+ characters by their first 5 characters."""
        idx = self._index
        if idx is None:
            idx = {}
            for k in self:
                if len(k) >= 5:
                    idx.setdefault(k[:5], []).append(k)
            self._index = idx
        return idx

    def family(self, key: str) -> list[str]:
        """The keys sharing `key`'s first 5 characters (most lookups: none, from the set)."""
        pre = self._prefixes
        if pre is None:
            pre = self.prefixes()
        if key[:5] not in pre:
            return []
        return self.index()[key[:5]]

    def without(self, other: KeySet) -> KeySet:
        """The keys that are not `key_in` `other`."""
        if not self:
            return KeySet()
        if not other:
            return KeySet(self)
        pre = other.prefixes()
        out = KeySet()
        for k in self:
            if k in other:
                continue
            if len(k) >= 5 and k[:5] in pre and any(
                    shared_prefix_match(x, k) for x in other.family(k)):
                continue
            out.add(k)
        return out


def key_in(key: str, keys: AbstractSet[str]) -> bool:
    """Key membership that tolerates derivational variants (shared long prefix)."""
    if key in keys:
        return True
    if len(key) < 5:
        return False
    if isinstance(keys, KeySet):  # shared_prefix_match needs the first 5 characters equal
        family = keys.family(key)
        return bool(family) and any(shared_prefix_match(k, key) for k in family)
    return any(len(k) >= 5 and k[0] == key[0] and shared_prefix_match(k, key) for k in keys)


_INITIALS: dict[tuple[str, frozenset[str]], tuple[str, str]] = {}


def _initials(token: str, stop: frozenset[str]) -> tuple[str, str]:
    """(initials of every word, initials of the content words) of one alphabetic token; hyphen
    parts count as words. Memoised per token (bounded)."""
    ck = (token, stop)  # (the stop set's hash is cached: a cheap key)
    hit = _INITIALS.get(ck)
    if hit is None:
        parts = token.split("-") if "-" in token else (token,)
        words = [p for p in parts if p and p[0].isalpha()]
        hit = ("".join(w[0] for w in words), "".join(w[0] for w in words if w not in stop))
        if len(_INITIALS) < 200_000:
            _INITIALS[ck] = hit
    return hit


def acronyms(tokens: list[str], stop: frozenset[str]) -> tuple[str, ...]:
    """Initials of each run of words (hyphen parts count as words), with and without function
    words; an initialism of 2-5 consecutive words is a substring of one of them:
    "central retinal artery occlusion" -> crao, "fine-needle aspiration" -> fna."""
    out: list[str] = []
    every: list[str] = []  # initials of the current run's words
    content: list[str] = []  # the same without function words
    for t in (*tokens, "."):  # a number or punctuation ends a run; so does the end
        if t[0].isalpha():
            e, c = _initials(t, stop)
            every.append(e)
            content.append(c)
        elif every:
            for initials in ("".join(every), "".join(content)):
                if len(initials) >= 2:
                    out.append(initials)
            every, content = [], []
    return tuple(dict.fromkeys(out))


def initials_text(tokens: list[str], stop: frozenset[str]) -> str:
    """The runs' initials of `acronyms` joined by NUL: a word of two or more letters is in one
    of the caption's initialisms exactly when it is a substring of this text (runs of one
    initial, kept here, cannot hold such a word). Built from per-word memos in C."""
    memo = _INITIALS_TEXT.get(stop)
    if memo is None:
        memo = _INITIALS_TEXT[stop] = (
            Memo(lambda t: _initials(t, stop)[0] if t[0].isalpha() else "\0"),
            Memo(lambda t: _initials(t, stop)[1] if t[0].isalpha() else "\0"))
    every, content = memo
    return "".join(map(every.__getitem__, tokens)) + "\0" + "".join(
        map(content.__getitem__, tokens))


_INITIALS_TEXT: dict[frozenset[str], tuple[Memo, Memo]] = {}  # per stop list: word -> initials


_CACHED_ANSWER = 12  # characters: answers up to this long ("Yes.", "Psoriasis.") are cached
_SHORT_DENIAL = 6  # words: a short answer with a negation ("It is not seen.") answers "no"

_CONTENT_TAGS = (("content00", "content01"), ("content10", "content11"))  # memo keys

_ALNUM = Memo(lambda t: t[0].isalnum())  # per token: a word or number, not punctuation
PUNCTUATION = frozenset(".,;:!?()")  # the tokens that are not words or numbers (text.py)


def _relation_head(tokens: list[str], i: int, width: int, stop: AbstractSet[str]
                   ) -> int | None:
    """Where the negation cue at `i` denies a relation rather than its terms, the position
    of the relation's word: its scope ends there and the words after it are moot. Two
    forms: a verb after an auxiliary ("did not influence survival"; not a verb of presence
    or report, which denies its object: "does not show ulceration", "the passage does not
    mention X"), and a relation noun after "no" ("no significant difference between the
    groups", "no evidence linking X to Y"). The relation's word must be a content word, and
    a verb before "to" opens another verb, whose denial stands ("did not seem to change
    survival"). (A predicate after a copula, "is not associated with VEGF", is left alone:
    measured on the public sets, it gained nothing.)"""
    t, n = tokens[i], len(tokens)
    j = i + width
    while j < n and tokens[j] in lx.NEG_ADVERBS:
        j += 1
    if j >= n or not tokens[j][0].isalpha():
        return None
    head = tokens[j]
    nxt = tokens[j + 1] if j + 1 < n else ""
    if t == "no" and width == 1:
        k = j
        while k < j + 2 and k + 1 < n and tokens[k].isalpha() and not (
                tokens[k] in lx.RELATION_NOUNS or tokens[k] in lx.EVIDENCE_NOUNS):
            k += 1  # ("no significant difference", "no clear scientific evidence")
        nxt = tokens[k + 1] if k + 1 < n else ""
        if tokens[k] in lx.RELATION_NOUNS and nxt in lx.RELATION_NOUN_LINKS:
            return k
        if (tokens[k] in lx.EVIDENCE_NOUNS and nxt.endswith("ing") and nxt.isalpha()
                and nxt not in lx.PRESENCE_VERBS):
            return k + 1
        return None
    prev = tokens[i - 1] if i else ""
    if t in lx.AUXILIARY_CUES or (t in ("not", "never") and prev in lx.NEG_AUXILIARIES) or (
            width == 2 and tokens[i + 1] == "to"):  # ("failed to", "unable to")
        return None if head in lx.PRESENCE_VERBS or head in stop or nxt == "to" else j
    return None


_REPLY_NO_NAME = re.compile(r"(?:^|[.!?] )no ([A-Z][a-z]+)\b")


def _named_subject(tokens: list[str], j: int, raw: str) -> bool:
    """A reply's "no" before a name that opens a clause: "no Kevin has to fend off the
    burglars himself" says no to the turn before it, and denies nothing about Kevin (as
    written: a lower-case "no", the name capitalised, an auxiliary after it)."""
    if j + 1 >= len(tokens) or tokens[j + 1] not in lx.AUX_START or "no " not in raw:
        return False
    return any(m.lower() == tokens[j] for m in _REPLY_NO_NAME.findall(raw))


def _asked_positions(tokens: list[str]) -> set[int]:
    """The positions of the clauses a text asks about ("whether X increased Y", up to the
    clause's end): evidence that poses a question states neither answer."""
    asked: set[int] = set()
    for i in [j for j, t in enumerate(tokens) if t == "whether"]:
        j = i + 1
        while j < len(tokens) and tokens[j] not in _CLAUSE_END:
            asked.add(j)
            j += 1
    return asked


def meta_text(meta: Mapping[str, Any] | None) -> str:
    """Render record metadata as caption-like text so it counts as evidence."""
    if not meta:
        return ""
    parts: list[str] = []
    for k, v in meta.items():
        if v is None or isinstance(v, (dict, list)):
            continue
        kl = str(k).lower()
        if kl in _PROVENANCE_KEYS:
            continue
        if kl in {"age", "age_years", "patient_age"} and isinstance(v, (int, float, str)):
            parts.append(f"{v}-year-old")
        else:
            parts.append(str(v))
    return " . ".join(parts)


def _joined(token: str, cap: CaptionFacts) -> bool:
    """Is `token` two caption words side by side written as one ("wallstreet" for "Wall
    Street", "healthcare")? Each part has three letters or more."""
    text = cap.facts.view.text
    if token[:3] not in text or token[-3:] not in text:  # (most words: one of them is not)
        return False
    words = cap.all_tokens
    for k in range(3, len(token) - 2):
        head, tail = token[:k], token[k:]
        if head in words and tail in words and any(
                a == head and b == tail for a, b in pairwise(cap.facts.view.tokens)):
            return True
    return False


def after_lead_in(facts: Facts) -> str:
    """The word that opens a question's last clause, after its last comma ("Based on the
    image, is this psoriasis?": "is"); "" when there is no comma or nothing follows it.
    Memoised on the (cached, per text) question facts."""
    hit = facts.memo.get("lead_in")
    if hit is None:
        tokens = facts.view.tokens
        hit = ""
        if "," in tokens:
            last = len(tokens) - 1 - tokens[::-1].index(",")
            hit = tokens[last + 1] if last + 1 < len(tokens) else ""
        facts.memo["lead_in"] = hit
    return hit


class Analyser:
    """Holds the compiled normaliser, number extractor and vocab keys."""

    def __init__(self) -> None:
        self.norm = Normaliser()
        self.numbers = NumberExtractor()
        k = self.norm.key
        self.stop = (lx.STOPWORDS | lx.YES_WORDS | lx.NO_WORDS
                     | frozenset(t for t in lx.NEG_PRE if " " not in t)
                     | frozenset({"absence", "absent", "lack", "free", "evidence", "sign",
                                  "signs"}))
        # Filler is matched as listed (plus plural/singular), never by stem: "shape" frames a
        # question, "shaped by melanocytes" is a claim.
        self.filler_keys = lx.FILLER | frozenset(w + "s" for w in lx.FILLER) | frozenset(
            w[:-1] for w in lx.FILLER if w.endswith("s") and not w.endswith("ss"))
        # Regular verb forms of filler words ("imaging", "imaged") frame too, except a
        # participle before "by", which states an agent or mechanism ("shaped by melanocytes").
        participles = set()
        gerunds = set()
        for w in lx.FILLER:
            if not w.isalpha() or len(w) < 4 or w.endswith(("ed", "ing")):
                continue
            stem = w[:-1] if w.endswith("e") else w
            gerunds.add(stem + "ing")
            participles.add(stem + "ed")
        self.filler_participles = frozenset(participles - self.filler_keys)
        self.filler_keys = self.filler_keys | frozenset(gerunds)
        self.site_by_key = {k(s): s for s in lx.SITE_PARENTS}
        for group in lx.SYNONYM_GROUPS:
            if group[0] in lx.SITE_PARENTS:
                for w in group:
                    self.site_by_key.setdefault(k(w), group[0])
        self.count_words = frozenset(lx.NUMBER_WORDS) | frozenset(lx.DECADE_WORDS)
        # what "lesion" counts: one nodule is one lesion (checks/numbers.py)
        self.lesion_key = k("lesion")
        self.lesion_kinds = frozenset(k(w) for w in lx.MORPHOLOGY_TERMS)
        self.neg_pre_single = frozenset(t for t in lx.NEG_PRE if " " not in t)
        self.neg_pre_multi: dict[str, list[tuple[str, ...]]] = {}
        for t in lx.NEG_PRE:
            if " " in t:
                self.neg_pre_multi.setdefault(t.split()[0], []).append(tuple(t.split()))
        self.neg_post_single = frozenset(t for t in lx.NEG_POST if " " not in t)
        self.neg_post_multi: dict[str, list[tuple[str, ...]]] = {}
        for t in lx.NEG_POST:
            if " " in t:
                self.neg_post_multi.setdefault(t.split()[0], []).append(tuple(t.split()))
        self._cue_first = (self.neg_pre_single | self.neg_post_single
                           | frozenset(self.neg_pre_multi) | frozenset(self.neg_post_multi))
        self.age_groups = lx.AGE_GROUPS
        self._age_words = frozenset(lx.AGE_GROUPS) | {"old"}
        self._bilateral = self.norm.key("bilateral")
        # tokens with a role beyond their key (sex, age group, side): looked up only for these
        self._role_words = frozenset(lx.SEX_WORDS) | self._age_words | frozenset(_LATERALITY)
        self._implies = frozenset(lx.IMPLIES)
        self._open_question_frame = lx.QUESTION_FRAME | lx.OPEN_QUESTION_FRAME
        # Question/answer texts repeat a lot in VQA data ("What is the diagnosis?", "Yes."):
        # their analysis is cached by text. Facts are never mutated after construction.
        self._text_cache: dict[str, Facts] = {}
        self._content_cache: dict[tuple[str, bool], bool] = {}
        self._word_kinds = Memo(self._word_kind)
        # a word or number that is not a stop word (a content position)
        stop = self.stop
        self._plain = Memo(lambda t: t[0].isalnum() and t not in stop)
        self.text_cache_size = 4096

    def clear_cache(self) -> None:
        """Forget cached question/answer analyses (word-level key caches are kept)."""
        self._text_cache.clear()

    def text_facts(self, text: str) -> Facts:
        """`_facts` of a question or answer, cached by text (bounded; oldest dropped)."""
        cache = self._text_cache
        hit = cache.get(text)
        if hit is not None:
            return hit
        facts = self._facts(text)
        if len(cache) >= self.text_cache_size:
            # drop the oldest quarter at once: deleting a dict's first entry one at a time
            # makes each later deletion scan past the slots freed before it
            for old in list(islice(cache, max(1, self.text_cache_size // 4))):
                del cache[old]
        cache[text] = facts
        return facts

    # -- building blocks ---------------------------------------------------------------
    def _negation(self, tokens: list[str], raw: str = ""
                  ) -> tuple[list[bool], AbstractSet[int]]:
        """NegEx-like scope: pre-cues negate up to 6 following tokens, post-cues up to 4
        preceding; scope stops at clause ends, contrastive words, and commas not in a list.
        Also returns the positions a negated relation leaves moot: its terms, neither
        affirmed nor denied (`_relation_head`)."""
        n = len(tokens)
        neg = [False] * n
        cue_first = self._cue_first
        if cue_first.isdisjoint(tokens):
            return neg, _NO_POSITIONS
        moot: set[int] = set()
        after = 0  # tokens before this index belong to a cue already read
        for i in [j for j, t in enumerate(tokens) if t in cue_first]:
            if i < after:
                continue
            t = tokens[i]
            width = 0
            if t in self.neg_pre_single:
                width = 1
            else:
                for cue in self.neg_pre_multi.get(t, ()):
                    if tuple(tokens[i:i + len(cue)]) == cue:
                        width = len(cue)
                        break
            if width:
                j, seen = i + width, 0
                if t == "no" and j < n and (tokens[j][0].isdigit()
                                            or tokens[j] in _PSEUDO_AFTER_NO
                                            or ((tokens[j] in _AFTER_REPLY_NO
                                                 or _named_subject(tokens, j, raw))
                                                and (i == 0 or tokens[i - 1] in _CLAUSE_END))):
                    # "world no 74": the abbreviation of "number"; "no matter their insurance",
                    # "no doubt": idioms that deny nothing; "no he doesn't": a reply
                    after = j
                    continue
                if t == "not" and (tuple(tokens[j:j + 1]) in _PSEUDO_AFTER_NOT
                                   or tuple(tokens[j:j + 2]) in _PSEUDO_AFTER_NOT):
                    after = j  # "not only X but Y", "not the first time": X is affirmed
                    continue
                if t in _VERBAL_CUES:  # "never heard of", "didn't know", "not really sure"
                    k = j + 1 if j < n and tokens[j] in ("really", "ever", "even") else j
                    if k < n and tokens[k] in _EPISTEMIC:
                        after = i + width
                        continue
                head = _relation_head(tokens, i, width, self.stop)
                while j < n and seen < _NEG_WINDOW:
                    tj = tokens[j]
                    if tj in _CLAUSE_END or tj in lx.NEG_TERMINATORS:
                        break
                    if tj == ",":
                        ahead = tokens[j + 1:j + 5]
                        if "or" not in ahead and "nor" not in ahead:
                            break
                    elif tj in ("is", "are", "was", "were", "has", "shows") and seen >= 2:
                        break
                    else:
                        if head is None and seen and tj in lx.LOCATIVE_PREPOSITIONS:
                            head = j  # "no pustules on the nose": the nose is not denied
                        if head is not None and j > head:
                            moot.add(j)
                        else:
                            neg[j] = True
                        if tj not in self.stop:  # window counts content words only
                            seen += 1
                    j += 1
                if head is None and t in _SUBJECT_CUES:
                    self._subject_predicate(tokens, i + width, j, neg, moot)
                after = i + width
                continue
            post = 0
            if t in self.neg_post_single:
                post = 1
            else:
                for cue in self.neg_post_multi.get(t, ()):
                    if tuple(tokens[i:i + len(cue)]) == cue:
                        post = len(cue)
                        break
            if post:
                j, seen = i - 1, 0
                while j >= 0 and seen < _POST_WINDOW:
                    tj = tokens[j]
                    if tj in _CLAUSE_END or tj == "," or tj in lx.NEG_TERMINATORS:
                        break
                    neg[j] = True
                    seen += 1
                    j -= 1
                after = i + post
        if moot:
            moot.difference_update(compress(range(n), neg))  # (denied by another cue)
        return neg, moot or _NO_POSITIONS

    def _subject_predicate(self, tokens: list[str], start: int, end: int, neg: list[bool],
                           moot: set[int]) -> None:
        """"Neither BMI nor waist circumference is predictive of X": a predicate denied of
        the negated subjects, which are not denied themselves (moot), when its copula
        follows them; a predicate of presence ("no vesicles are seen", "neither scale nor
        crust is present") denies them."""
        n = len(tokens)
        for c in range(start, min(end + 1, n - 1)):
            if tokens[c] in _COPULAS:
                break
        else:
            return
        if not neg[c - 1] or tokens[c - 1] in self.stop:
            return  # (the copula of another clause: "no risk if they were late")
        p = c + 1
        while p < n and tokens[p] in lx.NEG_ADVERBS:
            p += 1
        if p >= n or not tokens[p].isalpha() or tokens[p] in self.stop or (
                tokens[p] in lx.PRESENCE_VERBS or tokens[p] in lx.PRESENCE_PREDICATES):
            return
        for k in range(start, c):
            if neg[k]:
                neg[k] = False
                moot.add(k)
        neg[p] = True

    def _facts(self, text: str) -> Facts:
        """Analyse one text. Its affirmed / negated key sets are left empty: only a caption's
        are read, and `caption` fills them."""
        view = self.norm.view(text)
        tokens, keys = view.tokens, view.keys
        neg, moot = self._negation(tokens, view.raw)
        # most texts name no sex, age, side or site: they share empty sets
        sexes: AbstractSet[str] = _NONE
        sex_nouns: AbstractSet[str] = _NONE
        ages: list[tuple[float, float, str]] = _NO_AGES
        lat: AbstractSet[str] = _NONE
        sites: AbstractSet[str] = _NONE
        memo: dict[str, Any] = {}
        roles, site_by_key = self._role_words, self.site_by_key
        if "both" in tokens:  # "both elbows": both sides
            for i, t in enumerate(tokens):
                if t == "both" and any(site_by_key.get(x) for x in keys[i + 1:i + 4]):
                    lat = {"bilateral"}
                    memo["both_sides"] = True
        plain = list(map(self._plain.__getitem__, tokens))
        content = list(compress(range(len(tokens)), plain))
        if not roles.isdisjoint(tokens):  # sex, age group, side
            sexes, sex_nouns, ages, lat = set(), set(), [], set(lat)
            for i in [i for i in content if tokens[i] in roles]:
                t = tokens[i]
                ng = neg[i]
                sx = lx.SEX_WORDS.get(t)
                if sx:
                    sexes.add(sx)
                    if t not in lx.SEX_PRONOUNS:
                        sex_nouns.add(sx)
                if t in self._age_words and not ng:
                    if t == "old" and i and tokens[i - 1] in _TIME_UNITS:
                        pass
                    else:
                        lo, hi = self.age_groups.get(t, (55.0, 120.0))
                        ages.append((lo, hi, t))
                lt = _LATERALITY.get(t)
                if lt and not ng:
                    lat.add(lt)
        if not site_by_key.keys().isdisjoint(keys):
            sites = set()
            for i in [i for i in content if keys[i] in site_by_key]:
                site = site_by_key[keys[i]]
                if site and not neg[i] and not (
                        site == "back" and i and tokens[i - 1] in _GO_WORDS) and not (
                        tokens[i] == "sole" and i + 1 < len(tokens)
                        and tokens[i + 1] not in _SOLE_SITE_NEXT):
                    sites.add(site)
        # the word and number tokens: all but the punctuation, which most questions and
        # answers have only at their end (then a slice, or the tokens themselves, will do)
        body = tokens[:-1] if tokens and tokens[-1] in PUNCTUATION else tokens
        words = body if PUNCTUATION.isdisjoint(body) else list(
            compress(tokens, map(_ALNUM.__getitem__, tokens)))
        return Facts(view, neg, _NONE, _NONE, sexes, sex_nouns, ages, lat, sites, self.numbers,
                     content, words, memo, moot)

    # -- public --------------------------------------------------------------------------
    def caption(self, caption: str, meta: Mapping[str, Any] | None = None) -> CaptionFacts:
        """Analyse caption + metadata once."""
        mt = meta_text(meta)
        facts = self._facts(f"{caption} . {mt}" if mt else caption)
        view = facts.view
        tokens, keys_ = view.tokens, view.keys
        all_tokens = set(facts.words)
        closure: set[str] = set()
        for s in facts.sites:
            closure.add(s)
            closure.update(lx.SITE_PARENTS.get(s, ()))
        # what the caption affirms and what it negates, by key
        neg = facts.negated
        aff, negk = KeySet(), KeySet()
        if facts.memo.get("both_sides"):
            aff.add(self._bilateral)
        content_keys = [keys_[i] for i in facts.content_index]
        if True in neg:
            negated = [neg[i] for i in facts.content_index]
            aff.update(compress(content_keys, map(not_, negated)))
            negk.update(compress(content_keys, negated))
        else:
            aff.update(content_keys)
        plain = self._plain
        if facts.moot:  # a negated relation's terms: ambiguous, never a conflict
            negk.update(keys_[i] for i in facts.moot if plain[tokens[i]])
        if "whether" in tokens:  # "to determine whether X increases Y": asks, asserts nothing
            negk.update(keys_[i] for i in _asked_positions(tokens) if plain[tokens[i]])
        keys = key_set = self.norm.key_set(view)  # copied before it gains implied keys
        implying = self._implies.intersection(tokens)
        if implying:
            key = self.norm.key
            for t, ng in zip(tokens, neg, strict=True):
                if t in implying and not ng:
                    aff.update(key(w) for w in lx.IMPLIES[t])
            keys = keys | {key(w) for t in implying for w in lx.IMPLIES[t]}
        facts.affirmed_keys, facts.negated_keys = aff, negk
        if negk:
            only_neg, only_aff = negk.without(aff), aff.without(negk)
        else:  # (never mutated: the affirmed keys themselves)
            only_neg, only_aff = KeySet(), aff
        if "bilateral" in facts.laterality and self._bilateral not in keys:
            keys = keys | {self._bilateral}
        # where each content word sits, counting content words only (keys, spellings and
        # hyphen parts; each list holds a position once per match, in no particular order)
        positions: dict[str, list[int]] = {}
        for n, k in enumerate(content_keys):
            at = positions.get(k)
            if at is None:
                positions[k] = [n]
            else:
                at.append(n)
        spellings = [tokens[i] for i in facts.content_index]
        for n in compress(range(len(spellings)), map(ne, spellings, content_keys)):
            positions.setdefault(spellings[n], []).append(n)
        if "-" in view.text:
            key = self.norm.key
            for n in compress(range(len(spellings)), map(contains, spellings, repeat("-"))):
                for part in spellings[n].split("-"):
                    if part:
                        positions.setdefault(key(part), []).append(n)
        return CaptionFacts(facts=facts, support_keys=keys, key_positions=positions,
                            prefix_keys=KeySet(key_set),
                            site_closure=closure, all_tokens=all_tokens,
                            only_negated=only_neg, only_affirmed=only_aff)

    def is_content(self, token: str, key: str, next_token: str = "") -> bool:
        """A token that could carry a checkable claim (numbers are the number check's).
        Cached per word (the answer depends only on the token and whether "by" follows)."""
        ck = (token, next_token == "by")
        hit = self._content_cache.get(ck)
        if hit is None:
            hit = self._is_content(token, key, next_token)
            if len(self._content_cache) < 200_000:
                self._content_cache[ck] = hit
        return hit

    def _is_content(self, token: str, key: str, next_token: str) -> bool:
        if (len(token) < 2 or not token[0].isalpha() or token in self.stop
                or token in self.filler_keys):
            return False
        if token in self.filler_participles and next_token != "by":
            return False
        if token in self.count_words or token in _UNIT_TOKENS:
            return False
        return not (token.endswith("-year-old") or token.endswith("-old"))

    def content(self, facts: Facts, question: bool = False, open_question: bool = False
                ) -> list[tuple[int, str, str]]:
        """Content tokens as (index, token, key); in questions the word after "how" is a
        frame ("how big", "how many"), not a claim. Memoised on the facts (read-only)."""
        tag = _CONTENT_TAGS[question][open_question]
        hit = facts.memo.get(tag)
        if hit is None:
            hit = facts.memo[tag] = self._content(facts, question, open_question)
        return hit

    def _content(self, facts: Facts, question: bool, open_question: bool
                 ) -> list[tuple[int, str, str]]:
        v = facts.view
        toks, keys = v.tokens, v.keys
        kinds = list(map(self._word_kinds.__getitem__, toks))
        last = len(toks) - 1
        if not question:  # (short texts: one pass)
            return [(i, toks[i], keys[i]) for i in compress(range(len(toks)), kinds)
                    if kinds[i] != _BEFORE_BY or (i != last and toks[i + 1] == "by")]
        at = list(compress(range(len(toks)), kinds))
        if _BEFORE_BY in kinds:  # a participle of filler is content only before "by"
            at = [i for i in at if kinds[i] != _BEFORE_BY or (i != last and toks[i + 1] == "by")]
        frame = self._open_question_frame if open_question else lx.QUESTION_FRAME
        how = "how" in toks
        at = [i for i in at if toks[i] not in frame and not (how and i and toks[i - 1] == "how")]
        return [(i, toks[i], keys[i]) for i in at]

    def _word_kind(self, token: str) -> int:
        """1: a content word; `_BEFORE_BY`: one only before "by" (a participle of filler);
        0: never. Cached per word: `is_content` by token, without the pair lookup."""
        return (1 if self._is_content(token, "", "") else
                _BEFORE_BY if self._is_content(token, "", "by") else 0)

    def supported(self, token: str, key: str, cap: CaptionFacts, fuzzy_cutoff: float) -> bool:
        """Exact key, hyphen parts, shared stem prefix, then fuzzy spelling match (memoised
        per caption and token, since QA of one record repeat words)."""
        memo = cap.supported_memo
        hit = memo.get(token)
        if hit is None:
            hit = memo[token] = self._supported(token, key, cap, fuzzy_cutoff)
        return hit

    def _supported(self, token: str, key: str, cap: CaptionFacts, fuzzy_cutoff: float) -> bool:
        keys = cap.support_keys
        if key in keys or token in keys:
            return True
        digits = lx.ORDINAL_DIGITS.get(token)
        if digits is not None:  # "tenth" for "10th" (never a spelling variant: "fifth")
            return digits in cap.all_tokens
        if "-" in token:
            parts = [p for p in token.split("-") if p]
            if all(self.norm.key(p) in keys or p in self.stop or p in self.filler_keys
                   or lx.ORDINAL_DIGITS.get(p, "") in cap.all_tokens
                   for p in parts) and not any(p.isdigit() for p in parts) and (
                    parts[0] not in _OPPOSITE_PARTS):  # "non-negligible" is no "negligible"
                return True
        if not token.isalpha() and _DIGIT.search(token) is not None:
            # A name or code with digits ("il-6", "sars-cov-2", "n95") is matched as written:
            # its digits are its identity ("il-8" is no spelling variant of it, and "3"
            # elsewhere in the caption does not make "sars-cov-3"); written with spaces there
            # ("type 2 diabetes", "COVID 19") it is the same name.
            if "-" not in token:
                return False
            memo = cap.facts.memo
            spaced = memo.get("spaced")
            if spaced is None:
                spaced = memo["spaced"] = f" {' '.join(cap.facts.view.tokens)} "
            return f" {token.replace('-', ' ')} " in spaced
        if 2 <= len(token) <= 5 and token.isalpha():
            if cap.acronym_text is None:
                cap.acronym_text = initials_text(cap.facts.view.tokens, self.stop)
            if token in cap.acronym_text:  # in one of the initialisms (token has no NUL)
                return True
        if cap.support_tokens is None:  # (any order: membership tests)
            cap.support_tokens = [t for t in cap.all_tokens if len(t) >= 4]
        if len(key) >= 5:
            if key_in(key, cap.prefix_keys):
                return True
            if len(key) >= 6:
                if cap.support_text is None:
                    cap.support_text = "\0".join(cap.support_tokens)
                if key in cap.support_text:  # rare: then find a longer token holding it
                    n = len(key)
                    for t in cap.support_tokens:  # (not its opposite: "demotivate")
                        if len(t) > n and key in t and not prefixed_opposite(key, t):
                            return True
        if len(token) >= 6 and token.isalpha() and _joined(token, cap):
            return True
        if len(token) >= 5 and cap.support_tokens and fuzzy_cutoff < 100:
            hit = process.extractOne(token, cap.support_tokens, scorer=fuzz.ratio,
                                     score_cutoff=fuzzy_cutoff)
            if hit is not None and not prefixed_opposite(token, hit[0]):
                return True  # a spelling variant ("unsuitable" is no variant of "suitable")
        return False

    def qa(self, question: str, answer: str) -> QAFacts:
        """Analyse one question/answer pair."""
        qf = self.text_facts(question)
        # Answers repeat when short ("Yes.", "Erythema."); a long answer is almost always new,
        # and keeping its analysis only costs memory and garbage-collector time.
        af = self.text_facts(answer) if len(answer) <= _CACHED_ANSWER else self._facts(answer)
        qtok = qf.words
        atok = af.words
        # (after a lead-in clause, a question to the listener is a dialogue turn: "That's
        # interesting, do you know X?" asks about the listener, not the evidence)
        yes_no = bool(qtok) and "or" not in qtok and (
            qtok[0] in lx.AUX_START or (after_lead_in(qf) in lx.AUX_START
                                        and "you" not in qtok))
        polarity: str | None = None
        if atok and atok[0].isdigit() and len(atok) > 1 and (
                atok[1] in lx.YES_WORDS or atok[1] in lx.NO_WORDS):
            atok = atok[1:]  # list numbering: "1. Yes."
        if yes_no and atok:
            first = atok[0]
            if first in lx.YES_WORDS:
                polarity = "yes"
            elif first in lx.NO_WORDS or first in {"absent", "none", "not", "neither"}:
                polarity = "no"
            elif first in {"present", "visible", "seen", "there"} and not any(af.negated):
                polarity = "yes"
            elif any(af.negated) and (len(atok) <= _SHORT_DENIAL or self._denies(qf, af)):
                polarity = "no"
        return QAFacts(qf, af, yes_no, polarity, self.content(af),
                       self.content(qf, True, not yes_no))

    def _denies(self, qf: Facts, af: Facts) -> bool:
        """Does the answer negate a term of the question? A long answer that negates
        something else ("X lowered the rate of Y, without more bleeding") does not answer
        "Does X lower Y?" with no."""
        q_keys = {k for _, _, k in self.content(qf, True)}
        return any(n and key_in(k, q_keys) for k, n in zip(af.view.keys, af.negated,
                                                           strict=True))

