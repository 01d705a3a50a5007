"""Text normalisation shared by all checks: rewrites, tokens, a light stemmer, synonym keys.

Everything is compiled once in `Normaliser.__init__`; a caption is analysed once into a
`TextView` that every check reads, so a record with ten QA pairs normalises its caption once.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from itertools import chain, compress
from typing import Any

from mypy_extensions import mypyc_attr

from . import lexicon as lx
from .frequency import zipf

# A token: a word ("t-cell", "don't"), an ordinal ("3rd"), a number ("2.5") or one punctuation
# mark. Written as `TOKEN_PLAIN` below, but opening with the class of a token's first character
# (which the regex engine scans for in C; the branches then check that character by a
# lookbehind) and with possessive repeats (nothing after them can match what they gave up):
# the same tokens, about 15% faster.
TOKEN_PLAIN = (r"[a-z][a-z0-9]*(?:['\-][a-z0-9]+)*|\d+(?:st|nd|rd|th)\b|\d+(?:\.\d+)?"
               r"|[.,;:!?()]")
_TOKEN_RE = re.compile(
    r"[a-z\d.,;:!?()](?:(?<=[a-z])[a-z0-9]*+(?:['\-][a-z0-9]++)*+|(?<=\d)\d*+(?:st|nd|rd|th)\b"
    r"|(?<=\d)\d*+(?:\.\d++)?+|(?<=[.,;:!?()]))")

# Derivational suffixes, longest first: (suffix, replacement). Remainder must keep >= 4 chars.
_SUFFIXES: tuple[tuple[str, str], ...] = (
    ("izations", ""), ("isations", ""), ("ization", ""), ("isation", ""), ("ational", ""),
    ("ations", ""), ("ation", ""), ("ically", ""), ("ements", ""), ("ement", ""), ("ments", ""),
    ("ment", ""), ("ities", ""), ("ously", ""), ("ness", ""), ("ical", ""), ("edly", ""),
    ("ular", "ul"), ("ity", ""), ("ous", ""), ("ive", ""), ("ing", ""), ("ism", ""),
    ("ist", ""), ("ed", ""), ("ly", ""), ("al", ""), ("ar", ""), ("ic", ""), ("er", ""),
)


_VOWELS = "aeiou"
_WORD_LITERAL = re.compile(r"[a-z]+(?:-[a-z]+)*")
_WHOLE_WORD_START = re.compile(r"\\b([a-z]+)\\b")  # a pattern opening with one whole word
_PART_SPLIT = re.compile(r"['\-]")
_GROUP_RE = re.compile(r"\((?:[^()]|\([^()]*\))*\)[?*]?")
_ESCAPE_RE = re.compile(r"\\[a-zA-Z]")
_LITERAL_RE = re.compile(r"[a-z&\-]+")
_OPTIONAL_RE = re.compile(r".[?*]")
_CLASS_RE = re.compile(r"\[[^\]]*\][?*+]?")


def _triggers(pattern: str) -> tuple[tuple[str, ...], ...]:
    """Per alternative of `pattern`, the literal substrings that all must occur for it to
    match (rarest-looking first): a cheap gate so the regex only runs on texts that could
    contain it. `((),)` (always run) when the pattern is too complex to read."""
    branches = pattern.split("|") if "(" not in pattern else [pattern]
    out = []
    for b in branches:
        core = _GROUP_RE.sub(" ", b)  # groups may be optional or alternatives: skipped
        if "|" in core or "[" in _CLASS_RE.sub(" ", core):
            return ((),)
        core = _OPTIONAL_RE.sub(" ", _ESCAPE_RE.sub(" ", _CLASS_RE.sub(" ", core)))
        runs = sorted(dict.fromkeys(_LITERAL_RE.findall(core)),
                      key=lambda r: (-len(r), r.isalpha()))  # "h & e": "&" first
        if not runs:
            return ((),)
        whole = _WHOLE_WORD_START.match(b)
        if whole:  # a whole first word ("\\bh\\b and e") is the rarest trigger ("and" is not)
            runs = [whole.group(1), *(r for r in runs if r != whole.group(1))]
        out.append(tuple(runs))
    return tuple(out)


@mypyc_attr(native_class=False)  # (a builtin subclass: a plain class when compiled)
class Memo(dict):
    """A bounded memo of a function of one word: a miss computes the value (kept while the
    memo holds fewer than `limit` words). Lookups through `map(memo.__getitem__, tokens)` run
    in C, with no Python call per word once the words are known."""

    __slots__ = ("_compute", "_limit")

    def __init__(self, compute: Callable[[str], Any], limit: int = 200_000) -> None:
        super().__init__()
        self._compute = compute
        self._limit = limit

    def __missing__(self, word: str) -> Any:
        value = self._compute(word)
        if len(self) < self._limit:
            self[word] = value
        return value


def light_stem(word: str) -> str:
    """Strip inflection and common derivation so lesions/lesion, papular/papule,
    pigmented/pigmentation meet; deliberately conservative (short words kept whole)."""
    w = word
    if len(w) <= 3 or not w.isalpha():
        return w
    if w.endswith("ies") and len(w) > 4:
        w = w[:-3] + "y"
    elif w.endswith(("sses", "xes", "ches", "shes", "zes")):
        w = w[:-2]
    elif w.endswith("s") and not w.endswith(("ss", "us", "is", "ous")) and len(w) > 3:
        w = w[:-1]
    for suf, rep in _SUFFIXES:
        if w.endswith(suf) and len(w) - len(suf) >= 4:
            w = w[: -len(suf)] + rep
            break
    else:
        # a short stem lost its "e" ("rated", "rating", "based" -> rate, base): restored
        stem = w[:-2] if w.endswith("ed") else w[:-3] if w.endswith("ing") else ""
        if (len(stem) == 3 and stem[0] not in _VOWELS and stem[1] in _VOWELS
                and stem[2] not in _VOWELS and stem[2] not in "wxy"):
            return stem + "e"
    if len(w) > 4 and w[-1] in "aeoy":
        w = w[:-1]
    return w


def fold(text: str) -> str:
    """Lower-case and strip accents (naevus/nævus, café)."""
    text = text.lower()
    if text.isascii():
        return text
    text = unicodedata.normalize("NFKD", text.replace("µ", "u").replace("μ", "u"))
    return "".join(c for c in text if not unicodedata.combining(c)).replace("µ", "u")


@dataclass(slots=True)
class TextView:
    """A normalised text: folded string, tokens, and their comparison keys."""

    raw: str
    text: str
    tokens: list[str]
    keys: list[str]


class Normaliser:
    """Turns text into comparable keys; holds the compiled rewrites and synonym tables."""

    def __init__(self) -> None:
        # Each rewrite runs only when every literal of one of its alternatives is in the text
        # (plain substring tests, rarest-looking literal first): most texts need none.
        self._rewrites = [(_triggers(p), re.compile(p), r) for p, r in lx.PHRASE_REWRITES]
        # (first literal of an alternative, rewrite index), in rewrite order: one flat pass
        # of substring tests finds the few rewrites worth a closer look.
        self._first_literals = [(alt[0] if alt else "", i)
                                for i, (alts, _, _) in enumerate(self._rewrites)
                                for alt in alts]
        # "shiny" is not "shin": an adjective in -y never keys to a body site (`_not_site`).
        self._site_stems = frozenset(light_stem(w) for w in lx.SITE_PARENTS)
        syn: dict[str, str] = {}
        syn_stem: dict[str, str] = {}
        for group in lx.SYNONYM_GROUPS:
            canon = self._not_site(group[0], light_stem(group[0]))
            for w in group:
                syn.setdefault(w, canon)
                st = light_stem(w)
                if len(st) >= 4 and st not in lx.STOPWORDS and self._not_site(w, st) == st:
                    syn_stem.setdefault(st, canon)
        self._syn = syn
        self._syn_stem = syn_stem
        self._key_cache = Memo(self._key)
        self._literals = [lit for lit, _ in self._first_literals]
        self._literal_ids = [i for _, i in self._first_literals]
        # A literal of letters (and inner hyphens) occurs in a text exactly when it occurs in
        # one of the text's tokens: the rewrites a word can trigger are memoised per word, so
        # a text costs one lookup per token instead of a scan per literal. Other literals
        # ("&") are looked for in the text.
        # A rewrite whose pattern opens with a whole word ("\\bct\\b") is triggered only by a
        # word that is that word (or has it as a hyphen/apostrophe part), not by "tract".
        whole: set[int] = set()
        for i, (alternatives, pat, _) in enumerate(self._rewrites):
            m = _WHOLE_WORD_START.match(pat.pattern)
            if m and len(alternatives) == 1 and alternatives[0][:1] == (m.group(1),):
                whole.add(i)
        word_lits = [(lit, i, i in whole) for lit, i in self._first_literals
                     if _WORD_LITERAL.fullmatch(lit)]
        self._other_literals = [(lit, i) for lit, i in self._first_literals
                                if not _WORD_LITERAL.fullmatch(lit)]
        self._rewrites_of_word = Memo(lambda w: tuple(
            i for lit, i, whole_word in word_lits
            if (lit in _PART_SPLIT.split(w) if whole_word else lit in w)))

    def _not_site(self, token: str, key: str) -> str:
        # "shiny" is not "shin", nor "shining", "faced", "armed" or "handed" a body site: a
        # site word's adjective in -y or verb form in -ing/-ed keys to itself
        if key in self._site_stems and (
                (token.endswith("y") and token.rstrip("y") == key)
                or (token.endswith(("ing", "ed")) and not key.endswith(("ing", "ed")))):
            return token
        return key

    def rewrite(self, text: str) -> str:
        """Fold case/accents and expand abbreviations / unify spellings."""
        t = fold(text)
        return self._rewritten(t, _TOKEN_RE.findall(t))

    def _rewritten(self, t: str, tokens: list[str]) -> str:
        """`t` (folded) with its rewrites applied; `tokens` are its tokens. Returns `t` itself
        when no rewrite changes it."""
        lits, ids = self._literals, self._literal_ids
        hits = list(filter(None, map(self._rewrites_of_word.__getitem__, tokens)))
        for lit, i in self._other_literals:
            if lit in t:
                hits.append((i,))
        if not hits:  # (most texts)
            return t
        todo = sorted(set(chain.from_iterable(hits)))
        last = -1
        while todo:
            i = todo.pop(0)
            if i <= last:
                continue  # a second alternative of a rewrite already read
            last = i
            alternatives, pat, rep = self._rewrites[i]
            for literals in alternatives:
                for lit in literals:
                    if lit not in t:
                        break
                else:  # every literal present: the pattern may match
                    new = pat.sub(rep, t)
                    if new != t:  # the text changed: later rewrites' literals may too
                        t = new
                        todo = [j for j in compress(ids, map(t.__contains__, lits)) if j > i]
                    break
        return t

    def key(self, token: str) -> str:
        """Comparison key of one token: synonym group, else light stem (memoised)."""
        return self._key_cache[token]

    def _key(self, token: str) -> str:
        k = self._syn.get(token)
        if k is None:
            st = light_stem(lx.IRREGULAR_VERBS.get(token, token))
            k = self._syn.get(st) or self._syn_stem.get(st) or st
            k = self._not_site(token, k)
        return k

    def view(self, text: str) -> TextView:
        """Analyse one text into tokens and their keys."""
        folded = fold(text)
        tokens = _TOKEN_RE.findall(folded)
        t = self._rewritten(folded, tokens)
        if t is not folded:
            tokens = _TOKEN_RE.findall(t)
        if "'" in t:
            tokens = [m.replace("'s", "") if m.endswith("'s") else m for m in tokens]
        return TextView(text, t, tokens, list(map(self._key_cache.__getitem__, tokens)))

    def key_set(self, view: TextView) -> set[str]:
        """The keys of a text's tokens; a hyphenated word also contributes its parts' keys
        and the key of its parts written together."""
        key_set = set(view.keys)
        if "-" in view.text:
            key = self.key
            for tok in [t for t in view.tokens if "-" in t]:
                key_set.update(key(p) for p in tok.split("-") if p)
                key_set.add(key(tok.replace("-", "")))
        return key_set


# What may follow the shared prefix of two keys of one word family (after light_stem):
# inflection/derivation remnants, never a new morpheme ("melano|m" vs "melano|cyt").
_FAMILY_TAILS: frozenset[str] = frozenset(lx.words("""
a e i o u y s t at ate ati ed es ic ia ial ian ical ous atous al ar ary ory er or ly ing ion
ation ity ive ize ise ism ist sis osis tic otic tis itis ae um us ent ence ency ant ance ancy
ify ific oid ment ness ous ia ias si sia atur ature en
""")) | {""}


def prefixed_opposite(a: str, b: str, prefixes: tuple[str, ...] = lx.NEGATING_PREFIXES
                      ) -> bool:
    """Is one word (or key) the other with a negating prefix ("unsuitable" / "suitable",
    "demotivate" / "motivat")? Then a close spelling or a shared substring is no support.
    The longer must be a known word: "apublic" is "a public" run together."""
    if len(a) > len(b):
        a, b = b, a
    for p in prefixes:
        if b.startswith(p):
            rest = b[len(p):]
            if rest == a or (len(a) >= 4 and abs(len(rest) - len(a)) <= 2
                             and (rest.startswith(a) or a.startswith(rest))):
                return zipf(b) > 0  # a word ("atypical"), not a slip ("apublic": "a public")
    return False


def shared_prefix_match(a: str, b: str) -> bool:
    """True when two keys are one word family: a shared prefix covering >= 80% of the shorter
    (min 5 chars) and only suffix-like remainders after it: erythem/erythemat,
    hyperkerato-sis/-tic. Rejects different words sharing a prefix: melanom/melanocyt,
    keratin/keratosis, papill/papul."""
    la, lb = len(a), len(b)
    short = lb if lb < la else la  # (comparisons: the builtins min and max are slower)
    if short < 5:
        return False
    need = int(0.8 * short + 0.999)
    if need < 5:
        need = 5
    if a[:need] != b[:need]:
        return False
    n = need
    limit = short
    while n < limit and a[n] == b[n]:
        n += 1
    return a[n:] in _FAMILY_TAILS and b[n:] in _FAMILY_TAILS
