"""The number extractor's ASCII fast path gives exactly what its plain regex path gives.

ASCII text is gated through its word-runs (a byte translation and split) and, when no number
word starts a word-run, searched only for digit-led numbers from the first digit. Here the
same texts go through an extractor whose gates are the plain regex scans, on texts built
from number words, digits, units, cue words and look-alikes ("tendon", "fourth", "tencm")
joined by the separators that decide word boundaries.
"""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vqa_gen.grounding import lexicon as lx
from vqa_gen.grounding.numbers import NumberExtractor, Quantity

NX = NumberExtractor()


PLAIN = NumberExtractor(ascii_fast_path=False)  # the reference: every text through the regex gates

_FRAGMENTS = sorted(
    set(lx.NUMBER_WORDS) | set(lx.DECADE_WORDS) | set(lx.ORDINAL_DECADES)
    | {"3", "12", "1889", "1,200", "2.5", "2,5", "0", "40s", "60's", "1st", "22nd", "3rd", "4th",
       "hundred", "cm", "mm", "m", "years old", "year-old", "%", "per cent", "kg", "h", "y/o",
       "stage", "type", "grade", "segment", "cranial nerve", "factor", "ii", "iv", "vii", "x",
       "xii", "i", "about", "over", "less than", "more than", "aged", "age of", "decade", "by",
       "times", "magnification", "to", "and", "early", "late", "the", "often", "tendon",
       "tencm", "fourth", "onset", "seventh", "severe", "types", "stages", "a", "é", "٣"})
_SEPARATORS = ["", " ", " ", " ", "-", ".", ". ", ",", ", ", "\n", "(", ")", "/", "_", "–", "\x1c"]
texts = st.lists(st.tuples(st.sampled_from(_FRAGMENTS), st.sampled_from(_SEPARATORS)),
                 max_size=12).map(lambda parts: "".join(w + s for w, s in parts))


def matches(found) -> list[tuple]:
    return [(m.span(), m.groups()) for m in found]


@settings(max_examples=1500, deadline=None)
@given(texts)
def test_extract_matches_the_plain_gates(text):
    assert NX.extract(text) == PLAIN.extract(text)


@settings(max_examples=1500, deadline=None)
@given(texts.filter(str.isascii))
def test_ascii_gates_miss_nothing_the_plain_gates_find(text):
    fast, plain = NX._ascii_gates(text), NX._plain_gates(text)
    if plain is None:
        assert fast is None
        return
    assert fast is not None
    assert fast[0] or not list(NX._roman_re.finditer(text))  # a roman numeral's cue word
    assert fast[1] or not any(q.dim == "ordinal" for q in PLAIN.extract(text))
    assert matches(fast[2]) == matches(plain[2])


@pytest.mark.parametrize("text", [
    "tencm and 5", "fiveand 3 cm", "5.two", "2 and tento 5", "x.ten 3", "3 tendon, ten", "1.5 cm",
    "(two) 3", "two", "7-twelve mm", "segment vii, 4", "22nd stage iv", "twenty-two 4",
    "\x1c4\x1ctwo", "4 (fourth) 5", "1,200 mm about 3",
])
def test_edge_texts_match_the_plain_gates(text):
    assert NX.extract(text) == PLAIN.extract(text)
    assert matches(NX._num_re.finditer(text)) == matches(NX._ascii_gates(text)[2])


def test_quantity_stays_an_immutable_value():
    q = NX.extract("about 2 cm")[0]
    assert q == Quantity(2.0, 2.0, "length", 20.0, 20.0, "2 cm", True, "", "", "")
    assert hash(q) == hash(Quantity(2.0, 2.0, "length", 20.0, 20.0, "2 cm", True))
    assert repr(q) == ("Quantity(lo=2.0, hi=2.0, dim='length', clo=20.0, chi=20.0, raw='2 cm', "
                       "hedged=True, cmp='', noun='', label='')")
    with pytest.raises(AttributeError):
        q.lo = 3.0  # type: ignore[misc]
    assert not dataclasses.is_dataclass(q) and q._fields[-1] == "label"
