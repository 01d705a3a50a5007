"""Graded support: how much of the answer's informative content the evidence backs.

The core of the grounding score. Each content word of the answer is a unit weighted by how
informative it is (`informativeness`: a rare term, a name or a number says more than "shows"
or "patient"); a unit is supported when the caption (plus metadata) has it, with all the
normalisation the analyser knows (inflections, synonyms, abbreviations, stems, spelling). On
top of single words, each pair of neighbouring answer content words must also sit close
together in the evidence: a minimal edit that swaps an entity, a number or a role for a word
that occurs elsewhere in the evidence keeps every word "supported" but breaks a pair.
Hallucination is local, so the weakest sentence of the answer counts as well as the mean.

Pure functions of (caption facts, answer facts); everything per caption is memoised on the
`CaptionFacts` object, everything per word in module-level tables.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from itertools import compress
from operator import itemgetter, mul, not_

from . import lexicon as lx
from .analysis import Analyser, CaptionFacts
from .frequency import zipf as _zipf
from .text import Memo, shared_prefix_match

_SENTENCE_END = frozenset(".;!?")
# A capitalised word after a lower-case word, a digit or a comma ("the Eiffel Tower"):
NAME_PLAIN = r"(?<=[a-z0-9,;:] )([A-Z][a-z]+(?:[-'][A-Za-z]+)?)"
# the same, opening with the capital letter (which the regex engine scans for in C, instead of
# trying the lookbehind at every position) and with possessive repeats: about twice as fast
_NAME_RE = re.compile(r"([A-Z](?<=[a-z0-9,;:] [A-Z])[a-z]++(?:[-'][A-Za-z]+)?+)")
_NAMES: dict[str, frozenset[str]] = {}


def names_in(text: str) -> frozenset[str]:
    """Lower-cased words written capitalised after a lower-case word (not sentence-initial):
    proper names, the units a minimal-edit hallucination most often swaps. Memoised per text
    (bounded)."""
    hit = _NAMES.get(text)
    if hit is None:
        hit = frozenset(m.lower() for m in _NAME_RE.findall(text))
        if len(_NAMES) > 4096:
            _NAMES.clear()
        _NAMES[text] = hit
    return hit
_PAIR_WINDOW = 5  # evidence content words between two words of one answer pair
_MAX_ZIPF = 7.0
_MIN_WEIGHT = 0.5
_WEIGHTS: dict[str, float] = {}


def _unit_weight(token: str) -> float:
    """`informativeness` of an answer word, negated for a staining or magnification term
    (whose weight the caller decides)."""
    if token in lx.PROTOCOL_TERMS or (token[0] in "x×" and lx.PROTOCOL_TOKEN.fullmatch(token)):
        return -informativeness(token)
    return informativeness(token)


_UNIT_WEIGHTS = Memo(_unit_weight, 500_000)  # per word


def informativeness(token: str) -> float:
    """IDF-like weight of one word: 7 minus its Zipf frequency (log10 per billion words),
    floored at 0.5, so "the" ~0.5, "shows" ~1.8, "patient" ~2.2, "psoriasis" ~4.1 and an
    unknown name or coined term 7. Memoised per word."""
    w = _WEIGHTS.get(token)
    if w is None:
        z = _zipf(token)
        w = max(_MIN_WEIGHT, _MAX_ZIPF - z)
        if len(_WEIGHTS) < 500_000:
            _WEIGHTS[token] = w
    return w


# A short generic stop list for plain word coverage (the content units use the analyser's
# longer list and informativeness weights instead).
COVERAGE_STOP = frozenset(lx.words(
    "a an the and or but if of to in on at by for with from as is are was were be been being "
    "it its this that these those he she they his her their we you i not no do does did has "
    "have had"))


def _token_value(token: str) -> float | None:
    """The value of a number token ("2", "2.5", "two"); None for any other token."""
    if token[0].isdigit():
        return float(token) if token.replace(".", "", 1).isdecimal() else None
    return lx.NUMBER_WORDS.get(token)


def _spaced_name(token: str, evidence_tokens: AbstractSet[str]) -> bool:
    """A hyphenated name with a number at an end ("covid-19", "type-2") whose parts the
    evidence has (where it writes "COVID 19", "type 2")."""
    return all(p in evidence_tokens for p in token.split("-") if p)


def coverage(tokens: list[str], keys: list[str], evidence_tokens: set[str],
             evidence_keys: set[str], values: AbstractSet[float] = frozenset()) -> float:
    """Plain share of the answer's words (minus a few stop words) found in the evidence, as
    written or by key (inflection, synonym): the chit-chat and function-ish words the content
    units skip still say how much of the answer was taken from the evidence (1.0 when there
    are none). A number counts as found when its value is one of `values` (the answer's
    numbers that the number units found supported or do not check: "2" for "two")."""
    n = hit = 0
    for t, k in zip(tokens, keys, strict=True):
        if t[0].isalnum() and t not in COVERAGE_STOP:
            n += 1
            if (t in evidence_tokens or k in evidence_keys
                    or (values and _token_value(t) in values)
                    or ("-" in t and (t[-1].isdigit() or t[0].isdigit())
                        and _spaced_name(t, evidence_tokens))):
                hit += 1
    return hit / n if n else 1.0


def word_keys(keys: Sequence[str]) -> list[str]:
    """The keys of the words and numbers (punctuation left out): what n-grams run over."""
    return [k for k in keys if k[:1].isalnum()]


def _grams(words: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return list(zip(*(words[i:] for i in range(n)), strict=False))


def copied_share(words: Sequence[str], cap: CaptionFacts, n: int) -> float:
    """The share of the answer's word n-grams (`words`: its `word_keys`) that occur in the
    evidence: extractive copying of word sequences, function words included, compared by key
    (light stem, synonym group). For a long answer (a summary, a description, a dialogue turn)
    copying whole sequences is strong evidence of faithfulness; a swapped entity or an invented
    clause breaks every n-gram it touches. 1.0 for an answer too short for one n-gram. The
    evidence's words and n-grams are memoised on the caption."""
    memo = cap.facts.memo
    tag = f"grams{n}"
    ev = memo.get(tag)
    if ev is None:
        ev_words = memo.get("word_keys")
        if ev_words is None:
            ev_words = memo["word_keys"] = word_keys(cap.facts.view.keys)
        ev = memo[tag] = frozenset(_grams(ev_words, n))
    grams = _grams(words, n)
    if not grams:
        return 1.0
    return sum(g in ev for g in grams) / len(grams)


def warm_up() -> None:
    """Load the frequency table (about 0.2 s, once per process) before any record is checked,
    so the first check of a run does not stall its pipeline."""
    informativeness("the")


@dataclass(slots=True)
class Support:
    """`score` in [0, 1]: the weighted share of answer content the evidence supports (mixed
    with pair support and, when weighted, the weakest sentence: `weakest` is `unigram` when
    not); `unsupported` the words that lack support,
    `broken_pairs` neighbouring supported words the evidence never puts together."""

    score: float
    unigram: float
    pairs: float | None
    weakest: float
    unsupported: tuple[str, ...]
    broken_pairs: tuple[str, ...]
    weight: float  # total informativeness of the answer's content


def _positions(an: Analyser, cap: CaptionFacts, token: str, key: str,
               fuzzy_cutoff: float) -> Sequence[int]:
    """Positions of the evidence words a supported answer word matches (empty: unsupported).
    Memoised per caption and token."""
    memo = cap.position_memo
    hit = memo.get(token)
    if hit is not None:
        return hit
    index = cap.key_positions
    pos: Sequence[int] = ()
    if key in index:
        pos = index[key]
    elif token in index:
        pos = index[token]
    elif an.supported(token, key, cap, fuzzy_cutoff):
        found: list[int] = []
        if "-" in token:
            for p in token.split("-"):
                found.extend(index.get(an.norm.key(p), ()))
        if not found and len(key) >= 5:
            for k in cap.prefix_keys.family(key):
                if shared_prefix_match(k, key):
                    found.extend(index.get(k, ()))
        pos = tuple(sorted(found)) if found else (-1,)  # -1: supported, place unknown
    memo[token] = pos
    return pos


def _near(a: Sequence[int], b: Sequence[int], window: int, ordered: bool = False) -> bool:
    if a == (-1,) or b == (-1,):
        return True  # supported by fuzzy/acronym match: no place to compare
    if len(a) == 1 and len(b) == 1:  # (most words occur once)
        d = b[0] - a[0]
        return 0 < d <= window if ordered else -window <= d <= window
    if len(a) * len(b) > 400:
        return True  # very common words: every pair is plausible
    if ordered:
        return any(0 < y - x <= window for x in a for y in b)
    return any(abs(x - y) <= window for x in a for y in b)


def _split_words(units: list[tuple[int, str, str]], pos: list[Sequence[int]],
                 ok: list[bool], cap: CaptionFacts) -> None:
    """Two neighbouring answer words the evidence writes as one ("di caprio" for "DiCaprio",
    "face book" for "Facebook") are both supported, at that word's place (in place)."""
    words = cap.all_tokens
    for n in range(len(units) - 1):
        if (ok[n] and ok[n + 1]) or units[n + 1][0] != units[n][0] + 1:
            continue
        joined = units[n][1] + units[n + 1][1]
        if len(joined) >= 6 and joined in words:
            at = cap.key_positions.get(joined) or (-1,)
            pos[n] = pos[n + 1] = at
            ok[n] = ok[n + 1] = True


def support(an: Analyser, cap: CaptionFacts, units: list[tuple[int, str, str]],
            tokens: list[str], fuzzy_cutoff: float, *, pair_weight: float = 0.3,
            weakest_weight: float = 0.25, numbers: Sequence[tuple[str, bool]] = (),
            number_weight: float = 6.0, discount: Sequence[float] | None = None,
            names: frozenset[str] = frozenset(), name_boost: float = 1.0,
            window: int = _PAIR_WINDOW, ordered: bool = False,
            protocol_weight: float = 1.0, given: frozenset[str] = frozenset(),
            given_weight: float = 1.0) -> Support:
    """Graded support of the answer content `units` ((index, token, key) in `tokens`) and of
    its `numbers` ((text, supported), unit-aware support decided by the caller). `discount`
    (per unit, 0..1) credits part of an unsupported unit's weight (words echoed from the
    question); `names` (words written capitalised inside a sentence: names, places, brands)
    weigh `name_boost` times more; staining and magnification terms ("H&E", "x100") weigh
    `protocol_weight` (0: as any other word, when the question asks about them). A supported
    unit whose key is in `given` (a term of the question, which the evidence has too) weighs
    `given_weight` times as much: repeating the question tells nothing new, so what the answer
    adds decides its support ("Do X promote Y?" -> "X promote Y through Z": Z does)."""
    if not units and not numbers:
        return Support(1.0, 1.0, None, 1.0, (), (), 0.0)
    toks = [u[1] for u in units]
    weights = list(map(_UNIT_WEIGHTS.__getitem__, toks))  # negative: a protocol term
    if weights and min(weights) < 0:
        weights = [protocol_weight if w < 0 and protocol_weight
                   else abs(w) * name_boost if t in names else abs(w)
                   for w, t in zip(weights, toks, strict=True)]
    elif names and not names.isdisjoint(toks):
        weights = [w * name_boost if t in names else w for w, t in zip(weights, toks, strict=True)]
    pos: list[Sequence[int]] = list(map(cap.position_memo.get, toks))  # type: ignore[arg-type]
    if None in pos:  # words not looked up in this caption yet
        pos = [_positions(an, cap, t, k, fuzzy_cutoff) if p is None else p
               for p, (_, t, k) in zip(pos, units, strict=True)]
    ok = list(map(bool, pos))
    if False in ok and len(units) > 1:
        _split_words(units, pos, ok, cap)
    if given and given_weight != 1.0:
        weights = [w * given_weight if s and u[2] in given else w
                   for w, s, u in zip(weights, ok, units, strict=True)]
    total = sum(weights) + number_weight * len(numbers)
    credit = sum(compress(weights, ok))
    if discount is not None and False in ok:  # (part credit for unsupported units only)
        credit += sum(compress(map(mul, weights, discount), map(not_, ok)))
    if numbers:
        credit += number_weight * sum(map(itemgetter(1), numbers))  # (the supported ones)
    uni = credit / total if total else 1.0
    # sentences of the answer (the index of the sentence each unit is in; one unit needs none)
    if len(units) > 1 and not _SENTENCE_END.isdisjoint(tokens[:units[-1][0]]):  # one ends
        ends = [i for i, t in enumerate(tokens) if t in _SENTENCE_END]  # before the last word
        sent_of = [bisect_left(ends, i) for i, _, _ in units]
    else:  # one sentence (or none before the last unit)
        sent_of = [0] * len(units)
    weakest = uni
    if weakest_weight:  # (off by default: the content check mixes in no weakest sentence)
        per_sent: dict[int, list[float]] = {}
        for sid, w, s in zip(sent_of, weights, ok, strict=True):
            acc = per_sent.setdefault(sid, [0.0, 0.0])
            acc[0] += w
            acc[1] += w if s else 0.0
        if per_sent:
            weakest = min(uni, min(b / a for a, b in per_sent.values()))
    # neighbouring pairs (within one sentence) of supported words
    pw_total = pw_ok = 0.0
    broken: list[str] = []
    for i in range(len(units) - 1):  # (none for a one-word answer)
        if sent_of[i] != sent_of[i + 1] or not (ok[i] and ok[i + 1]):
            continue
        if units[i][2] == units[i + 1][2]:
            continue
        w, w2 = weights[i], weights[i + 1]
        if w2 < w:  # (the lighter word of the pair; the builtin min is slower)
            w = w2
        pw_total += w
        if _near(pos[i], pos[i + 1], window, ordered):
            pw_ok += w
        else:
            broken.append(f"{units[i][1]} {units[i + 1][1]}")
    pairs = pw_ok / pw_total if pw_total else None
    if pairs is None:
        score = (uni + weakest_weight * weakest) / (1 + weakest_weight)
    else:
        score = (uni + pair_weight * pairs * uni + weakest_weight * weakest) / (
            1 + pair_weight + weakest_weight)
    unsupported: tuple[str, ...] = ()
    bad_numbers = [t for t, s in numbers if not s] if numbers else ()
    if False in ok or bad_numbers:
        unsupported = tuple(dict.fromkeys([*compress(toks, map(not_, ok)), *bad_numbers]))
    clamped = 1.0 if score > 1.0 else score if score > 0.0 else 0.0  # (min/max: slower)
    return Support(clamped, uni, pairs, weakest, unsupported, tuple(broken),
                   total)

