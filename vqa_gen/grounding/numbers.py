"""Quantities in text: counts, sizes, ages, durations, percentages, with unit conversion.

"2 cm" and "20 mm" become the same canonical value; "in her sixties" becomes the age range
60-69; "twenty-two" becomes 22. Regexes are compiled once per `NumberExtractor`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import NamedTuple

from . import lexicon as lx
from .patterns import trie_pattern

# unit word -> (dimension, factor to canonical unit)
_UNITS: dict[str, tuple[str, float]] = {
    "nm": ("length", 1e-6), "um": ("length", 1e-3), "micron": ("length", 1e-3),
    "microns": ("length", 1e-3), "micrometer": ("length", 1e-3), "micrometers": ("length", 1e-3),
    "micrometre": ("length", 1e-3), "micrometres": ("length", 1e-3),
    "mm": ("length", 1.0), "millimeter": ("length", 1.0), "millimeters": ("length", 1.0),
    "millimetre": ("length", 1.0), "millimetres": ("length", 1.0),
    "cm": ("length", 10.0), "centimeter": ("length", 10.0), "centimeters": ("length", 10.0),
    "centimetre": ("length", 10.0), "centimetres": ("length", 10.0),
    "m": ("length", 1000.0), "meter": ("length", 1000.0), "meters": ("length", 1000.0),
    "metre": ("length", 1000.0), "metres": ("length", 1000.0),
    "inch": ("length", 25.4), "inches": ("length", 25.4), "ft": ("length", 304.8),
    "foot": ("length", 304.8), "feet": ("length", 304.8), "yard": ("length", 914.4),
    "yards": ("length", 914.4), "km": ("length", 1e6), "kilometre": ("length", 1e6),
    "kilometres": ("length", 1e6), "kilometer": ("length", 1e6), "kilometers": ("length", 1e6),
    "mile": ("length", 1609344.0), "miles": ("length", 1609344.0),
    "year-old": ("age", 1.0), "years-old": ("age", 1.0), "year old": ("age", 1.0),
    "years old": ("age", 1.0), "yo": ("age", 1.0), "y/o": ("age", 1.0), "yrs old": ("age", 1.0),
    "month-old": ("age", 1 / 12), "months old": ("age", 1 / 12), "month old": ("age", 1 / 12),
    "week-old": ("age", 1 / 52), "weeks old": ("age", 1 / 52), "day-old": ("age", 1 / 365),
    "days old": ("age", 1 / 365),
    "year": ("time", 365.0), "years": ("time", 365.0), "yr": ("time", 365.0),
    "yrs": ("time", 365.0), "month": ("time", 30.0), "months": ("time", 30.0),
    "mo": ("time", 30.0), "week": ("time", 7.0), "weeks": ("time", 7.0), "wk": ("time", 7.0),
    "wks": ("time", 7.0), "day": ("time", 1.0), "days": ("time", 1.0),
    "hour": ("time", 1 / 24), "hours": ("time", 1 / 24), "hr": ("time", 1 / 24),
    "hrs": ("time", 1 / 24), "h": ("time", 1 / 24), "minute": ("time", 1 / 1440),
    "minutes": ("time", 1 / 1440), "min": ("time", 1 / 1440),
    "seconds": ("time", 1 / 86400), "secs": ("time", 1 / 86400),
    "%": ("percent", 1.0), "percent": ("percent", 1.0), "per cent": ("percent", 1.0),
    "kg": ("mass", 1e6), "g": ("mass", 1e3), "mg": ("mass", 1.0), "ug": ("mass", 1e-3),
    "mcg": ("mass", 1e-3), "lb": ("mass", 453592.0), "lbs": ("mass", 453592.0),
    "ml": ("volume", 1.0), "l": ("volume", 1000.0), "cc": ("volume", 1.0),
    "mmhg": ("pressure", 1.0), "bpm": ("rate", 1.0),
}
_COUNT_WORDS = {k: v for k, v in lx.NUMBER_WORDS.items()
                if k not in {"single", "twice", "double", "triple", "pair", "couple", "both"}}
_COUNT_WORDS["quarter"] = 0.25
_ROMAN = {"i": 1, "ii": 2, "iii": 3, "iv": 4, "v": 5, "vi": 6, "vii": 7, "viii": 8, "ix": 9,
          "x": 10, "xi": 11, "xii": 12}
_LESS = re.compile(r"\b(?:less|smaller|shorter|fewer|thinner|lower) than\s*$|\b(?:under|below|"
                   r"up to|at most|within|<)\s*$")
_MORE = re.compile(r"\b(?:more|larger|greater|bigger|longer|thicker|higher|wider|older) than\s*$"
                   r"|\b(?:over|above|exceeding|at least|>)\s*$")
# A bound written after its number: "two or more layers", "65 years or older", "3 or fewer".
_OR_MORE = re.compile(r"\s*or (?:(more|greater|above|over|higher|longer|older|larger)|"
                      r"fewer|less|lower|below|under|younger|shorter|smaller)\b")
_ORDINAL_RE = re.compile(r"(?=\d)(?<![\w.])(\d+)(?:st|nd|rd|th)\b")
# What every ordinal contains; it starts with a character class, which the engine scans for
# fast (a leading lookahead is tried at every position).
_ORDINAL_GATE = re.compile(r"\d(?:st|nd|rd|th)\b")
# ASCII text as bytes with its digits as "0" and every other character that is no word
# character (\w) a space: what `_ascii_gates` reads; `_ORDINAL_GATE` in those terms.
_WORD_RUNS = bytes(b if chr(b).isalnum() or b == 95 else 32 for b in range(128)).translate(
    bytes.maketrans(b"123456789", b"000000000")) + bytes(range(128, 256))
_ORDINAL_RUN = re.compile(rb"0(?:st|nd|rd|th)\b")
_HEDGES = re.compile(r"\b(?:about|approximately|approx|around|roughly|nearly|almost|over|under|"
                     r"less than|more than|up to|at least|at most|estimated|circa|some)\s*$|~\s*$")


class Quantity(NamedTuple):
    """A number or range with its dimension ('' when unitless) and canonical values.

    (An immutable value; a named tuple because a frozen dataclass's constructor sets each
    field through `object.__setattr__`, and every quantity in every text is built here.)"""

    lo: float
    hi: float
    dim: str
    clo: float
    chi: float
    raw: str
    hedged: bool = False
    cmp: str = ""  # "<" or ">" when stated as a bound ("less than 1 mm")
    noun: str = ""  # unitless counts: the word counted ("two individuals"), when one follows
    label: str = ""  # a value's label ("type 1", "grade-1", "stage i"): never article-like


_new = tuple.__new__  # builds a Quantity from all its fields without a Python-level call

# The word after a unitless number names what it counts; these say nothing about that.
_NOT_A_NOUN = frozenset(lx.words(
    "a an the and or of to in on at by for with from as is are was were be been has have had it "
    "its than then but that this these those per each times more less other"))
_NEXT_WORD = re.compile(r"(?:-|\s*)([a-z][a-z'\-]*)")  # ("six-time": times)
_LIST_MARKER_AFTER = re.compile(r"[.)]\s+[a-z]")
# A sum of money written after the number: "211 million dollars", "500 euros" ("pounds" is
# left out: it weighs as often as it pays)
_MONEY_AFTER = re.compile(r"\s*(?:(thousand|million|billion|trillion|bn)\s+)?"
                          r"(?:(?:us\s+)?dollars?|euros?|usd|eur)\b")
_THOUSANDS = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?")
_OVER_END = re.compile(r"\bover\s*$")
# The last word of every _HEDGES/_LESS/_MORE/_OVER_END match (each ends in `\s*$`): text before a
# number that ends otherwise (after trailing space) is neither a hedge nor a bound.
_BOUND_ENDS = ("about", "approximately", "approx", "around", "roughly", "nearly", "almost",
               "over", "under", "than", "to", "least", "most", "estimated", "circa", "some",
               "below", "within", "above", "exceeding", "~", "<", ">")
# Every magnification match has "times", "magnification", or an x/× not followed by a letter
# ("x40", "x 40", "40x", "40 x"): "axial" and "extending" alone need no search.
_WORD_END = re.compile(r"[a-z]+$")  # the word a hyphenated number follows ("covid" in "covid-19")
_AGE_OWNER = re.compile(r"\b(?:her|his|their|aged?)\s+$")  # whose decade: an age
_MAG_X = re.compile(r"[x×](?![^\W\d])")
# Words that label a value after them ("grade 3", "type-2", "stage iv")
_VALUE_WORDS = ("segment", "grade", "stage", "type", "class", "level", "nerve", "zone", "phase",
                "lobe", "degree", "part", "factor")
# how the text before a labelled value ends: its label word, then a space or hyphen
_LABEL_ENDS = tuple(f"{w}{sep}" for w in _VALUE_WORDS for sep in (" ", "-"))


def _num_text(s: str) -> str:
    """"5,895" is a thousands separator; "2,5" a decimal comma."""
    if "," not in s:  # most numbers: nothing to rewrite
        return s
    s = s.replace(" , ", ",")  # (tokenised text)
    return s.replace(",", "") if _THOUSANDS.fullmatch(s) else s.replace(",", ".")


def _initials(alternatives: str) -> str:
    """The first letters of "a|b|c" words, for a character class."""
    return "".join(sorted({w[0] for w in alternatives.split("|")}))


def _word_number(s: str) -> float | None:
    if s.isdecimal():  # plain digits (what `\d` matches): the common case, one conversion
        return float(s)
    s = s.strip().replace("-", " ")
    parts = s.split()
    if not parts:
        return None
    total = 0.0
    for p in parts:
        v = _COUNT_WORDS.get(p)
        if v is None:
            try:
                v = float(p)
            except ValueError:
                return None
        total = total * v if p in {"hundred", "dozen"} and total else total + v
    return total


class NumberExtractor:
    """Finds quantities in folded text. `ascii_fast_path=False` gates every text through the
    plain regex scans (the reference the fast path is tested against)."""

    def __init__(self, ascii_fast_path: bool = True) -> None:
        self._ascii_fast_path = ascii_fast_path
        tens = "twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety"
        words = "|".join(sorted(_COUNT_WORDS, key=len, reverse=True))
        digits = "one|two|three|four|five|six|seven|eight|nine"
        # (" , ": tokenised text, "23 , 768"; "twenty - five" likewise)
        thousands = r"\d{1,3}(?:(?:,| , )\d{3})+(?:\.\d+)?"
        # (word lists as prefix tries: the same matches, far fewer branches tried per word)
        t_digits, t_tens = trie_pattern(digits.split("|")), trie_pattern(tens.split("|"))
        # (a number word ends its word: "eighth" is no "eight" followed by the unit "h")
        # ("twenty-first" is an ordinal, no twenty: the ordinal words compare it)
        ordinal_units = trie_pattern(list(lx.ORDINAL_UNITS))
        tens_digits = rf"(?:{t_tens})(?:(?:[- ]| - )(?:{t_digits}))?"
        num = rf"(?:{thousands}|\d+(?:[.,]\d+)?|(?:(?:{t_digits})[- ]hundred" \
              rf"|{tens_digits}|{trie_pattern(words.split('|'))})(?![a-z])" \
              rf"(?!-(?:{ordinal_units})\b))"
        units = trie_pattern(list(_UNITS))
        # A leading lookahead on the characters a match can start with lets the regex engine
        # skip every other position fast (the patterns match exactly as without it); a number
        # starts a word, so a `\b` before it rules out the inside of words in one step.
        starts = _initials(f"{words}|{tens}|{digits}")
        rest = (rf"(?:\s*(?:-|–|to|and)\s*(?P<b>{num}))?"
                rf"(?:\s*-?\s*(?P<u>{units})(?![a-z]))?(?![\w])")
        self._num_re = re.compile(rf"\b(?=[\d{starts}])(?<![\w.])(?P<a>{num}){rest}")
        # The same matches as `_num_re` in ASCII text where no word-run starts with a number
        # word (most texts): only the ones starting with a digit. It starts with a character
        # class (the digit, then a look back past it), which the engine scans for fast.
        self._num_digit_re = re.compile(
            rf"(?P<a>[0-9](?<![\w.].)(?:\d{{0,2}}(?:(?:,| , )\d{{3}})+(?:\.\d+)?|\d*(?:[.,]\d+)?))"
            rf"{rest}")
        # (for `_ascii_gates`: a match of `_num_re` not led by a digit starts a word-run with
        # a number word, so with one of these starts; the first four letters at most)
        number_words = set(f"{words}|{tens}|{digits}".split("|"))
        heads = {w[:4] for w in number_words}
        heads = {h for h in heads if not any(h != o and h.startswith(o) for o in heads)}
        self._number_words = frozenset(w.encode() for w in number_words)
        self._number_word_heads = tuple(h.encode() for h in sorted(heads))
        self._number_word_run = re.compile(rb" (?:%s)" % trie_pattern(sorted(heads)).encode())
        # Every "2 x 3 cm" has a separator followed by the start of a number ("x 3", "by two"):
        # a search that starts with a literal, so the engine scans for it fast.
        self._dims_gate = re.compile(rf"(?:x|×|by)\s*(?:\d|{trie_pattern(words.split('|'))})")
        self._dims_re = re.compile(
            rf"\b(?=[\d{starts}])(?<![\w.])(?P<d1>{num})\s*(?:x|×|by)\s*(?P<d2>{num})"
            rf"(?:\s*(?:x|×|by)\s*(?P<d3>{num}))?\s*(?P<du>{units})(?![a-z])")
        self._mag_re = re.compile(
            rf"(?=[\d{starts}x×m])(?:"
            rf"(?<![\w.])(?P<m1>{num})\s*(?:x|×|times)(?![\w])|(?<![\w])[x×]\s?(?P<m2>\d+)\b"
            rf"|\bmagnification (?:of )?(?P<m3>{num})\b)")
        roman_words = "|".join((*_VALUE_WORDS, "cranial nerve"))
        self._roman_re = re.compile(
            rf"(?=[{_initials(roman_words)}])\b(?:{roman_words})\s+"
            r"(?P<r>x{0,1}(?:ix|iv|v?i{0,3}))\b")
        self._aged_re = re.compile(rf"(?=a)\b(?:aged?|age of)\s+(?P<n>{num})\b")
        decade_words = "|".join(lx.DECADE_WORDS)
        ordinals = "|".join(lx.ORDINAL_DECADES)
        self._decade_re = re.compile(
            rf"(?=[\d{_initials(f'early|mid|late|{decade_words}|{ordinals}')}])"
            rf"\b(?:(?:early|mid|late)[- ])?(?:(?P<y>1[5-9]\d|20\d)0'?s|(?P<d>\d)0'?s"
            rf"|(?P<w>{decade_words}))\b"
            rf"|\b(?P<o>{ordinals}) decade\b")
        self._digit = re.compile(r"\d")
        self._decade_triggers = (*lx.DECADE_WORDS, "decade")
        self._roman_triggers = _VALUE_WORDS
        # one C-level scan for any of them (instead of a substring test per word)
        self._roman_gate = re.compile(trie_pattern(list(self._roman_triggers)))
        gate_words = f"{words}|{tens}|{decade_words}|decade|{'|'.join(_VALUE_WORDS)}"
        # Any quantity needs a digit or one of these whole words (as a trie: one fast scan).
        self._word_gate = re.compile(rf"\b(?:{trie_pattern(gate_words.split('|'))})\b")
        # ASCII text is read through its word-runs instead (see `_ascii_gates`)
        self._gate_words = frozenset(gate_words.encode().split(b"|"))
        self._roman_words = frozenset(w.encode() for w in self._roman_triggers)
        self._value_words = frozenset(self._roman_triggers)

    def extract(self, text: str) -> list[Quantity]:
        """All quantities in `text` (already folded)."""
        gates = (self._ascii_gates(text) if self._ascii_fast_path and text.isascii()
                 else self._plain_gates(text))
        if gates is None:
            return []
        roman, ordinal, numbers = gates
        out: list[Quantity] = []
        spans: list[tuple[int, int]] = []
        # Substring gates: each pattern below needs one of these literals to match at all.
        # "40s"/"40's" (a digit then 0s), a decade word, or "... decade"
        # (the decade words are "teens" and words ending in "ties": one test skips the rest)
        decade = ("0s" in text or "0's" in text or "teens" in text or "decade" in text
                  or ("ties" in text and any(w in text for w in self._decade_triggers)))
        for m in (self._decade_re.finditer(text) if decade else ()):
            if m.group("y"):  # "the 1920s": the years 1920-1929
                base = float(m.group("y")) * 10
                out.append(Quantity(base, base + 9, "era", base, base + 9, m.group(0)))
                spans.append(m.span())
                continue
            if m.group("d"):
                base = float(m.group("d")) * 10
            elif m.group("w"):
                base = float(lx.DECADE_WORDS[m.group("w")])
            else:
                base = float(lx.ORDINAL_DECADES[m.group("o")])
            # "in her 60s", "aged in their fifties", "the fourth decade" (of life) are ages;
            # "the late 60's and early 70's" (of rock music) are years of a century
            if m.group("o") or _AGE_OWNER.search(text, max(0, m.start() - 12), m.start()):
                out.append(Quantity(base, base + 9, "age", base, base + 9, m.group(0)))
            else:  # (an era's short form is of the 1900s: "the 60's")
                out.append(Quantity(base + 1900, base + 1909, "era", base + 1900, base + 1909,
                                    m.group(0)))
            spans.append(m.span())
        dims = ("x" in text or "×" in text or "by" in text) and (  # "2 x 3 cm", "2 by 3 cm"
            self._dims_gate.search(text) is not None)
        for m in (self._dims_re.finditer(text) if dims else ()):
            dim, factor = _UNITS[m.group("du")]
            for g in ("d1", "d2", "d3"):
                v = _word_number(_num_text(m.group(g))) if m.group(g) else None
                if v is not None:
                    out.append(Quantity(v, v, dim, v * factor, v * factor,
                                        f"{m.group(g)} {m.group('du')}"))
            spans.append(m.span())
        mag = ("times" in text or "magnification" in text  # "x40", "40 times"
               or (("x" in text or "×" in text) and _MAG_X.search(text) is not None))
        for m in (self._mag_re.finditer(text) if mag else ()):
            if spans and any(s <= m.start() < e for s, e in spans):
                continue
            v = _word_number(m.group("m1") or m.group("m2") or m.group("m3"))
            if v is not None:
                out.append(Quantity(v, v, "magnification", v, v, m.group(0)))
                spans.append(m.span())
        for m in (self._roman_re.finditer(text) if roman else ()):
            r = m.group("r")
            if r in _ROMAN:
                v = float(_ROMAN[r])
                out.append(Quantity(v, v, "", v, v, m.group(0),
                                    label=m.group(0)[:m.start("r") - m.start()].strip()))
        for m in (_ORDINAL_RE.finditer(text) if ordinal else ()):
            v = float(m.group(1))
            out.append(Quantity(v, v, "ordinal", v, v, m.group(0)))
        aged_at = {m.start("n") for m in self._aged_re.finditer(text)} if "age" in text else ()
        for m in numbers:
            start, end = m.span()
            if spans and any(s <= start < e for s, e in spans):
                continue
            if (start > 1 and text[start - 1] == "-" and text[start - 2].isalpha()
                    and text[start].isdigit()):
                # A number that ends a hyphenated name is part of the name ("covid-19",
                # "sars-cov-2", "ki-67", "il-6"), checked as a word; after a word that takes
                # a value ("type-2", "grade-3") it is a value.
                name = _WORD_END.search(text, start - 24 if start > 24 else 0, start - 1)
                if name is None or name.group() not in self._value_words:
                    continue
            ga, gb, unit = m.group("a", "b", "u")
            a = float(ga) if ga.isdecimal() else _word_number(_num_text(ga))  # (digits: direct)
            if a is None:
                continue
            b = _word_number(_num_text(gb)) if gb else None
            dim, factor = _UNITS.get(unit, ("", 1.0)) if unit else ("", 1.0)
            if not unit and start in aged_at:
                dim = "age"
            elif (not unit or unit == "m") and start and text[start - 1] in _CURRENCY:
                # "$500", "£4,000", "$5m", "$3.1 billion": sums of money, compared with sums
                dim, factor = "money", 1e6 if unit else 1.0
                scale = _NEXT_WORD.match(text, end) if not unit else None
                if scale is not None and scale.group(1) in _SCALES:
                    factor = _SCALES[scale.group(1)]
            elif not unit and (money := _MONEY_AFTER.match(text, end)) is not None:
                dim, factor = "money", _SCALES.get(money.group(1) or "", 1.0)
            if not unit and b is None and _LIST_MARKER_AFTER.match(text, end) and (
                    not text[:start].strip(" \t")
                    or text[:start].rstrip(" \t")[-1] == "\n"):
                continue  # "1. Homer ...": a list marker at the start of a line, not a count
            if b is not None and b <= a and not dim and _SCORE_DASH.search(text, start, end):
                dim = "score"  # "won 4-1", "a 1-1 draw", "a 6-3 ruling": compared with scores
            lo, hi = (a, b) if b is not None and b >= a else (a, a)
            if b is not None and b < a:  # "3 and 2" is two numbers, not a range
                out.append(Quantity(b, b, dim, b * factor, b * factor, gb))
            before = text[start - 24 if start > 24 else 0:start]
            hedged, cmp = False, ""
            if before.rstrip().endswith(_BOUND_ENDS):
                hedged = bool(_HEDGES.search(before))
                cmp = "<" if _LESS.search(before) else ">" if _MORE.search(before) else ""
                if dim == "time" and _OVER_END.search(before):
                    hedged, cmp = False, ""  # "over 12 weeks" is a duration, not a bound
            after = end
            if not cmp and "or" in text[end:end + 4] and (
                    bound := _OR_MORE.match(text, end)) is not None:
                hedged, cmp, after = True, ">" if bound.group(1) else "<", bound.end()
            noun = label = ""
            if not dim:
                nxt = _NEXT_WORD.match(text, after)
                if nxt and nxt.group(1) not in _NOT_A_NOUN:
                    noun = nxt.group(1)
                if before.endswith(_LABEL_ENDS):  # "type 1", "grade-1": a value, not a count
                    lw = _WORD_END.search(before.rstrip(" -"))
                    if lw is not None and lw.group() in self._value_words:
                        label = lw.group()
            out.append(_new(Quantity, (lo, hi, dim, lo * factor, hi * factor,
                                       text[start:end].strip(), hedged, cmp, noun, label)))
        return out


    def _plain_gates(self, text: str) -> tuple[bool, bool, Iterable[re.Match[str]]] | None:
        """The gates of `extract` as regex scans (any text): None when the text can hold no
        quantity; else (may hold a roman numeral, may hold an ordinal, the matches of
        `_num_re`)."""
        digit = self._digit.search(text) is not None
        if not digit and self._word_gate.search(text) is None:
            return None
        roman = self._roman_gate.search(text) is not None
        ordinal = digit and _ORDINAL_GATE.search(text) is not None
        return roman, ordinal, self._num_re.finditer(text)

    def _ascii_gates(self, text: str) -> tuple[bool, bool, Iterable[re.Match[str]]] | None:
        """`_plain_gates` for ASCII text, read from its word-runs: one C-level byte translation
        and split instead of regex scans that try a match at every position. The roman and
        ordinal gates may say no where the plain ones say yes, never where a match exists."""
        runs = text.encode().translate(_WORD_RUNS)  # (ASCII: one byte per character)
        first_digit = runs.find(b"0")  # (`in` would try the bytes as an int first: slower)
        digit = first_digit >= 0
        words = runs.split()
        found = self._gate_words.intersection(words)  # `_word_gate`: one of them is a word-run
        if not digit and not found:
            return None
        # a roman numeral follows its cue word and a space: the cue is a whole word-run
        roman = not self._roman_words.isdisjoint(found)
        if not digit:
            return roman, False, self._num_re.finditer(text)
        ordinal = _ORDINAL_RUN.search(runs) is not None
        if (self._number_words.isdisjoint(found) and not runs.startswith(self._number_word_heads)
                and self._number_word_run.search(runs) is None):
            # no number word starts a word-run: every match starts with a digit (and none
            # before the first digit)
            numbers: Iterable[re.Match[str]] = self._num_digit_re.finditer(
                text, first_digit)
        else:
            numbers = self._num_re.finditer(text)
        return roman, ordinal, numbers


_CURRENCY = frozenset("$£€¥")
_SCALES = {"thousand": 1e3, "million": 1e6, "billion": 1e9, "trillion": 1e12, "bn": 1e9}
# A dash between two numbers (a falling pair with it is a score or a tally, not a range)
_SCORE_DASH = re.compile(r"\d\s*[-–]\s*\d")


def year_like(q: Quantity) -> bool:
    """A bare whole number from 1000 to 2100: most likely a year."""
    return (q.dim == "" and q.lo.is_integer() and q.hi.is_integer() and 1000 <= q.lo <= 2100
            and 1000 <= q.hi <= 2100)


def within_bound(evidence: Quantity, claim: Quantity) -> bool:
    """Does a claimed value fall inside a bound the evidence states ("20 mm" for "larger than
    15 mm", "three days" for "up to a month", "over 900" for "over 200")? Such a value is
    not backed (`supports` says no) but does not contradict the evidence either."""
    if not evidence.cmp or not (
            (evidence.dim and evidence.dim == claim.dim)
            or (evidence.dim == claim.dim == "" and not year_like(claim))):
        return False
    if claim.cmp:
        return claim.cmp == evidence.cmp
    return claim.clo > evidence.chi if evidence.cmp == ">" else claim.chi < evidence.clo


def _close(x: float, y: float, tol: float) -> bool:
    # max(1e-9, tol * max(|x|, |y|)), by comparisons (the builtin max is slower, and this runs
    # for every pair of numbers compared)
    ax, ay = abs(x), abs(y)
    bound = tol * (ay if ay > ax else ax)
    return abs(x - y) <= (bound if bound > 1e-9 else 1e-9)


def supports(evidence: Quantity, claim: Quantity) -> bool:
    """Does an evidence quantity support a claimed one? Same dimension compares canonical
    values (2 cm == 20 mm); otherwise compares the bare numbers (64 vs 64-year-old)."""
    same_dim = evidence.dim and claim.dim and evidence.dim == claim.dim
    tol = 0.1 if claim.hedged and same_dim else 1e-6
    if claim.cmp or evidence.cmp:
        if not (same_dim or (evidence.dim == claim.dim == "" and year_like(evidence)
                             == year_like(claim))):
            return False  # (a year bounds no count: "2012" is not "over 900 patients")
        if claim.cmp and evidence.cmp:
            return claim.cmp == evidence.cmp and (
                evidence.clo <= claim.clo if claim.cmp == "<" else evidence.clo >= claim.clo)
        if claim.cmp:  # claim "less than 1 mm", evidence "0.8 mm"
            if evidence.clo == evidence.chi and _close(claim.clo, evidence.clo, 1e-6):
                return True  # the bound at the stated value ("over 10 million" for 10 million)
            return evidence.chi < claim.clo if claim.cmp == "<" else evidence.clo > claim.chi
        # evidence is a bound ("larger than 15 mm"), claim a value: only the bound's own value
        # restates it, less precisely ("over 300 songs" -> "300 songs"). Any other value in
        # the bound ("20 mm", or "895" for "over 275 million") is the answer's own precision:
        # unsupported, though no mismatch (`within_bound`).
        return claim.clo == claim.chi and _close(claim.clo, evidence.clo, 1e-6)
    if claim.dim == "percent" and evidence.dim == "" and evidence.hi <= 1:
        return _close(evidence.lo * 100, claim.lo, max(tol, 1e-6))
    if evidence.dim == "percent" and claim.dim == "" and claim.hi <= 1:
        return _close(claim.lo * 100, evidence.lo, max(tol, 1e-6))
    elo, ehi, clo, chi = ((evidence.clo, evidence.chi, claim.clo, claim.chi) if same_dim
                          else (evidence.lo, evidence.hi, claim.lo, claim.hi))
    if not same_dim and evidence.dim and claim.dim and {evidence.dim, claim.dim} != {"age", "time"}:
        return False
    if elo == ehi and clo - 1e-9 <= elo <= chi + 1e-9:
        return True  # a vaguer claim ("in her sixties", "2-3 cm") containing the evidence
    if claim.lo == claim.hi:
        return (elo - 1e-9 <= clo <= ehi + 1e-9) or _close(elo, clo, tol) or _close(ehi, clo, tol)
    return ((_close(elo, clo, tol) or elo <= clo) and (_close(ehi, chi, tol) or chi <= ehi)) \
        or (elo <= clo <= ehi and elo <= chi <= ehi)
