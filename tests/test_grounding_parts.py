"""Unit tests of the filter's building blocks: numbers/units, stemming, negation scope."""

from __future__ import annotations

import re

import pytest

from vqa_gen.grounding import FilterConfig, GroundingFilter
from vqa_gen.grounding.analysis import Analyser
from vqa_gen.grounding.echo import Example, echoed_words, example_words
from vqa_gen.grounding.numbers import NumberExtractor, supports, within_bound
from vqa_gen.grounding.patterns import first_letters, trie_pattern
from vqa_gen.grounding.text import (
    Normaliser,
    fold,
    light_stem,
    prefixed_opposite,
    shared_prefix_match,
)

NX = NumberExtractor()


def one(text: str):
    qs = NX.extract(text)
    assert len(qs) == 1, qs
    return qs[0]


@pytest.mark.parametrize(("evidence", "claim"), [
    ("2 cm", "20 mm"), ("1.5 cm", "15 mm"), ("6 papules", "six"), ("a 64-year-old woman",
                                                                  "in her sixties"),
    ("a 64-year-old woman", "64 years"), ("x400", "four hundred times"), ("40%", "0.4"),
    ("480 µm", "0.48 mm"), ("8 x 6 mm", "0.8 cm"), ("each larger than 15 mm", "15 mm"),
    ("0.8 mm", "less than 1 mm"), ("over 20 mm", "more than 15 mm"),
    ("twenty-two lesions", "22"), ("segment VII", "7"), ("$211 million", "211 million dollars"),
])
def test_number_supported(evidence, claim):
    ev = NX.extract(fold(evidence))
    cl = NX.extract(fold(claim))
    assert cl, claim
    assert all(any(supports(e, c) for e in ev) for c in cl), (ev, cl)


@pytest.mark.parametrize(("evidence", "claim"), [
    ("2 cm", "2 mm"), ("2 cm", "3 cm"), ("a 64-year-old woman", "in her forties"),
    ("each larger than 15 mm", "about 5 mm"), ("4 macules", "about 5 mm"), ("x40", "x400"),
    # a value inside a stated bound is the answer's own precision, not the evidence's
    ("each larger than 15 mm", "20 mm"), ("sold over 275 million copies", "895 million"),
    ("over 275 million copies", "2018"), ("up to one month", "three days"),
    ("more than 15 mm", "over 20 mm"),
])
def test_number_not_supported(evidence, claim):
    ev = NX.extract(evidence.lower())
    cl = NX.extract(claim.lower())
    assert cl
    assert not all(any(supports(e, c) for e in ev) for c in cl)


@pytest.mark.parametrize(("evidence", "claim", "inside"), [
    ("each larger than 15 mm", "20 mm", True), ("up to one month", "three days", True),
    ("over 275 million copies", "895", True), ("each larger than 15 mm", "about 5 mm", False),
    ("less than 2 cm", "3 cm", False), ("15 mm", "20 mm", False),
    ("larger than 15 mm", "over 20 mm", True), ("larger than 15 mm", "under 20 mm", False),
    ("over 200", "2018", False),  # a year is no count
])
def test_a_value_within_a_stated_bound(evidence, claim, inside):
    ev = NX.extract(evidence.lower())
    cl = NX.extract(claim.lower())
    assert len(cl) == 1
    assert any(within_bound(e, cl[0]) for e in ev) is inside, (ev, cl)


@pytest.mark.parametrize(("a", "b"), [
    ("lesions", "lesion"), ("papular", "papule"), ("pigmented", "pigmentation"),
    ("scaling", "scaly"), ("nodular", "nodule"), ("capillaries", "capillary"),
    # a short stem's lost "e" restored; "-ys" plurals
    ("rated", "rating"), ("rated", "rate"), ("dosing", "dose"), ("based", "base"),
    ("plays", "play"), ("days", "day"),
])
def test_light_stem_meets(a, b):
    assert light_stem(a) == light_stem(b)


@pytest.mark.parametrize(("a", "b"), [
    ("fixed", "fixe"), ("rated", "rat"), ("scaled", "scald"), ("lived", "liver"),
])
def test_light_stem_keeps_apart(a, b):
    assert light_stem(a) != light_stem(b)


def test_prefix_rule():
    assert shared_prefix_match(light_stem("erythematous"), light_stem("erythema"))
    assert not shared_prefix_match("melanoma", "melanocytic")


@pytest.mark.parametrize(("a", "b"), [
    ("erythematous", "red"), ("tumour", "tumor"), ("haematoxylin", "hematoxylin"),
    ("dermatoscopy", "dermoscopic"), ("naevus", "nevus"),
])
def test_synonym_keys(a, b):
    n = Normaliser()
    assert n.view(a).keys == n.view(b).keys


def test_abbreviation_rewrites():
    n = Normaliser()
    assert "basal cell carcinoma" in n.rewrite("BCC of the nose")
    assert "hematoxylin eosin" in n.rewrite("H&E stain")
    assert n.view("H and E, x100; h & e").tokens == [
        "hematoxylin", "eosin", ",", "x100", ";", "hematoxylin", "eosin"]


@pytest.mark.parametrize("text", [
    "a rough and erythematous plaque", "smooth and even borders", "Smith & Edwards",
    "the late 19th and early 20th century",
])
def test_a_rewrite_never_rewrites_inside_words(text):
    # "h and e" inside "rough and erythematous" once became "roughematoxylin eosinrythematous"
    n = Normaliser()
    assert n.view(text).tokens == fold(text).replace("&", " ").split()


@pytest.mark.parametrize(("text", "values"), [
    ("in the twenty-first century", []),  # an ordinal, no twenty (the ordinal words compare it)
    ("the thirty-second president", []),
    ("twenty-five patients", [25.0]),
    ("twenty-first and twenty two", [22.0]),
    ("two-thirds of cases", [2.0]),  # (fractions are not read; the count stays as before)
])
def test_a_compound_ordinal_in_words_is_no_count(text, values):
    assert [q.lo for q in Analyser().text_facts(text).numbers] == values


def test_and_a_half_is_one_number():
    n = Normaliser()
    assert n.view("two and a half hours, 3 and half days, twelve and a half").tokens == [
        "2.5", "hours", ",", "3.5", "days", ",", "12.5"]


@pytest.mark.parametrize(("text", "negated", "affirmed"), [
    ("red plaque without ulceration", {"ulceration"}, {"red", "plaque"}),
    ("no ulceration, crust or bleeding", {"ulceration", "crust", "bleeding"}, set()),
    ("no ulceration, showing a red plaque", {"ulceration"}, {"red", "plaque"}),
    ("ulceration was absent; scale present", {"ulceration"}, {"scale"}),
    ("absence of pigment network but with blue veil", {"pigment", "network"}, {"blue", "veil"}),
    # "no" before a number abbreviates "number": it denies nothing
    ("lost to world no 74 kevin streelman in a play-off", set(), {"kevin", "streelman"}),
    ("no scale, the no 1 seed", {"scale"}, {"seed"}),
    # pseudo-negations: "not only", "not just", "not the only", "not the first" affirm
    ("not only red but also scaly plaques", set(), {"red", "scaly", "plaques"}),
    ("it was not the only lesion on the arm", set(), {"lesion", "arm"}),
    ("not the first time the plaque ulcerated; not red", {"red"}, {"plaque", "ulcerated"}),
    ("plans for all, no matter their current insurance", set(), {"current", "insurance"}),
    # a reply opening with "no" before a pronoun or article says no to the turn before it
    # (and "does not care about" denies a relation: the house is not denied)
    ("no he does not care about the house", {"care"}, {"he", "house"}),
    ("no the movie is really great", set(), {"movie", "great"}),
    ("no its from 2009. no vesicles are seen", {"vesicles"}, {"2009"}),
    # ... or before a name that opens a clause (as written: "no", then the capitalised name
    # and an auxiliary); an eponym in a finding is still denied
    ("no Kevin has to fend off the burglars himself", set(), {"kevin", "burglars"}),
    ("no Langerhans cells are seen", {"langerhans", "cells"}, set()),
    ("no kevin has come", {"kevin"}, set()),
    ("no vesicles are seen", {"vesicles"}, set()),
    # the copula of another clause is no predicate of the negated thing
    ("no risk of losing money if they were late", {"risk"}, {"late"}),
])
def test_negation_scope(text, negated, affirmed):
    an = Analyser()
    facts = an.caption(text).facts
    toks = facts.view.tokens
    neg = {t for t, n in zip(toks, facts.negated, strict=True) if n}
    assert negated <= neg
    assert not (affirmed & neg)


@pytest.mark.parametrize(("text", "negated", "moot"), [
    # a negated relation denies the relation, not its terms
    ("the treatment did not influence overall survival", {"influence"}, {"overall", "survival"}),
    ("hcq does not improve outcomes in covid-19", {"improve"}, {"outcomes", "covid-19"}),
    ("there was no significant difference between the groups", {"significant", "difference"},
     {"groups"}),
    ("no association with smoking", {"association"}, {"smoking"}),
    ("there is no evidence linking ibuprofen to worse outcomes", {"linking"},
     {"ibuprofen", "worse", "outcomes"}),
    # a verb of presence or report denies its object; so does "no" before a thing
    ("the lesion does not show ulceration", {"show", "ulceration"}, set()),
    ("the patient did not develop metastases", {"develop", "metastases"}, set()),
    ("the passage does not mention the author", {"mention", "author"}, set()),
    ("no evidence of malignancy", {"malignancy"}, set()),
    ("no difference was seen", {"difference"}, set()),
    # a verb before "to" opens another verb, whose denial stands
    ("it did not seem to change survival", {"seem", "change", "survival"}, set()),
    # a predicate denied of negated subjects; a predicate of presence denies them
    ("neither bmi nor waist circumference is predictive of pressure", {"predictive"},
     {"bmi", "waist", "circumference"}),
    ("neither scale nor crust is present", {"scale", "crust", "present"}, set()),
    # a place after a denied thing is where it is absent, not denied itself
    ("there are no pustules on the nose", {"pustules"}, {"nose"}),
    ("no scale is seen on the elbows", {"scale"}, {"elbows"}),
    ("leptin has no prognostic value in lung cancer", {"prognostic", "value"},
     {"lung", "cancer"}),
])
def test_a_negated_relation_leaves_its_terms_moot(text, negated, moot):
    facts = Analyser().caption(text).facts
    toks = facts.view.tokens
    neg = {t for t, n in zip(toks, facts.negated, strict=True) if n}
    assert negated <= neg, (neg, facts.moot)
    moot_words = {toks[i] for i in facts.moot}
    assert moot <= moot_words and not (moot_words & neg), (moot_words, neg)
    if not moot:
        assert not facts.moot


def test_a_caption_that_asks_whether_states_neither_answer():
    cap = Analyser().caption("We studied whether the endoscope increased infection. It did.")
    assert cap.only_affirmed.isdisjoint({"infect", "infection", "increas", "increased"})
    assert not cap.only_negated


@pytest.mark.parametrize(("text", "sites"), [
    ("the sole cause of death", set()), ("the obstetric manual was read", set()),
    ("plaques on the palms and soles", {"palm", "sole"}), ("a papule on the sole.", {"sole"}),
    ("a nodule on the sole of the foot", {"sole", "foot"}), ("eczema of both hands", {"hand"}),
])
def test_body_sites_and_the_words_that_only_look_like_them(text, sites):
    assert set(Analyser().text_facts(fold(text)).sites) == sites


def test_acronyms_from_caption():
    an = Analyser()
    cap = an.caption("Optical coherence tomography; central retinal artery occlusion; "
                     "fine-needle aspiration.")
    for abbr in ("oct", "crao", "fna"):
        assert an.supported(abbr, an.norm.key(abbr), cap, 88.0), abbr
    assert not an.supported("xyz", "xyz", cap, 88.0)


def test_copying_counts_word_trigrams_found_in_evidence():
    from vqa_gen.grounding.support import copied_share, word_keys

    an = Analyser()
    cap = an.caption("The council approved the new budget on Monday after a long debate.")
    words = lambda s: word_keys(an.text_facts(s).view.keys)  # noqa: E731
    full = words("the council approved the new budget.")
    assert (copied_share(full, cap, 3), len(full)) == (1.0, 6)  # (the stop is no word)
    swapped = copied_share(words("the council rejected the new budget"), cap, 3)
    assert 0.0 < swapped < 1.0  # the swapped verb breaks every trigram it sits in
    assert copied_share(words("yes"), cap, 3) == 1.0  # too short for a trigram: no signal


def test_long_copied_answer_gains_support_but_short_answers_do_not_change():
    from vqa_gen.grounding import FilterConfig, GroundingFilter

    caption = ("The city council approved the new transport budget on Monday after a long "
               "debate, and the mayor said that work on the northern tram line will begin in "
               "the spring of next year.")
    long_answer = ("The city council approved the new transport budget on Monday after a long "
                   "debate, and the mayor promised that work on the northern tram line will "
                   "begin in the spring of next year.")
    on = GroundingFilter(FilterConfig())
    off = GroundingFilter(FilterConfig(checks={"content": {"params": {"copy_max": 0.0}}}))
    v_on = on.check(caption, "", long_answer)
    v_off = off.check(caption, "", long_answer)
    assert v_on.score > v_off.score  # "promised" is unsupported, the copied sequences count
    short = ("What did the council approve?", "The new transport budget, promised by mayor")
    assert on.check(caption, *short).score == off.check(caption, *short).score


def test_an_answer_in_its_own_words_loses_nothing_for_copying_no_word_runs():
    # A claim written apart from its evidence copies no trigram whether or not it is
    # faithful; its lack of copied 4-gram runs once lowered its score like an invention's.
    from vqa_gen.grounding import FilterConfig, GroundingFilter

    caption = ("Trials found that patients given the drug early recovered faster than those "
               "given placebo, and fewer of them needed intensive care.")
    claim = ("Early drug treatment: faster recovery than placebo for patients, fewer needed "
             "intensive care, trials found")
    on = GroundingFilter(FilterConfig())
    off = GroundingFilter(FilterConfig(checks={"content": {"params": {"copy_max": 0.0}}}))
    assert on.check(caption, "", claim).score == off.check(caption, "", claim).score
    # an answer that does copy is still read for its runs (the test above)
    copied = ("Trials found that patients given the drug early recovered faster than those "
              "given placebo, and fewer of them needed surgery.")
    assert on.check(caption, "", copied).score != off.check(caption, "", copied).score


def test_acronyms_match_the_initials_of_every_word_run():
    from vqa_gen.grounding.analysis import acronyms, key_in

    an = Analyser()
    toks = an.norm.view("Fine-needle aspiration of the central retinal artery; 3 basal cell "
                        "carcinomas (bcc) and a well-demarcated plaque").tokens
    # reference: split into runs of alphabetic tokens, hyphen parts count as words
    runs: list[list[str]] = [[]]
    for t in toks:
        if t[0].isalpha():
            runs[-1] += [p for p in t.split("-") if p and p[0].isalpha()]
        elif runs[-1]:
            runs.append([])
    want: list[str] = []
    for run in runs:
        for words in (run, [w for w in run if w not in an.stop]):
            if len(words) >= 2:
                want.append("".join(w[0] for w in words))
    assert acronyms(toks, an.stop) == tuple(dict.fromkeys(want))
    found = acronyms(toks, an.stop)
    assert any("fna" in a for a in found) and any("cra" in a for a in found)

    # the caption's only-negated / only-affirmed keys follow `key_in`, word families included
    cap = an.caption("No ulceration or erythema; an ulcerated centre with pigmented papules, "
                     "no pigmentation at the rim, without scale.")
    aff, neg = cap.facts.affirmed_keys, cap.facts.negated_keys
    assert cap.only_negated == {k for k in neg if not key_in(k, aff)}
    assert cap.only_affirmed == {k for k in aff if not key_in(k, neg)}
    assert cap.only_negated and cap.only_affirmed


def test_quantities_are_extracted_on_first_use_and_agree_with_the_extractor():
    an = Analyser()
    cap = an.caption("A 64-year-old woman with three 2 x 3 cm plaques, elderly, x40.")
    facts = cap.facts
    assert facts._numbers is None  # nothing read them yet
    assert facts.numbers == NX.extract(facts.view.text)
    ages = [a for *_, a in facts.age_ranges]
    assert ages == ["elderly", "64-year-old"]  # age words first, then numeric ages


@pytest.mark.parametrize("word", ["the", "psoriasis", "patient", "well-demarcated", "blue-white",
                                  "x-ray", "zzqqxv", "non-existentword", "covid-19", "don't",
                                  "naïve", "h1n1", "a", "x100", "ki-67", "1985", "2045",
                                  "3rd", "mid-1980s", "3.5"])
def test_zipf_read_from_the_data_file_matches_wordfreq(word):
    # grounding/frequency.py reads wordfreq's table itself (saving its import at start-up);
    # the informativeness weights must stay exactly wordfreq's
    from wordfreq import zipf_frequency

    from vqa_gen.grounding.frequency import zipf
    assert zipf(word) == zipf_frequency(word, "en")


def test_importing_the_filter_does_not_import_wordfreq():
    import subprocess
    import sys
    code = ("import sys; from vqa_gen.grounding import GroundingFilter; "
            "f = GroundingFilter(); f.check('Psoriasis on the elbow.', 'Where?', 'On the elbow');"
            "print('wordfreq' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_word_trie_matches_what_the_plain_alternation_matches():
    """`trie_pattern` factors the number words by prefix; at each position it must still prefer the
    longest word, as the longest-first alternation does ("eighteen" over "eight")."""
    words = ["ten", "teens", "eight", "eighteen", "eighty", "eighties", "one", "seven",
             "seventeen", "seventy", "type", "two"]
    plain = re.compile(r"\b(?:" + "|".join(sorted(words, key=len, reverse=True)) + r")")
    trie = re.compile(r"\b(?:" + trie_pattern(words) + r")")
    for text in ["eighteen", "eighty-two", "eight", "in her eighties", "teens", "tenth", "tens",
                 "seventeen", "seventy", "seventh", "types", "two", "one", "none", "x"]:
        assert ([m.group(0) for m in plain.finditer(text)]
                == [m.group(0) for m in trie.finditer(text)]), text


@pytest.mark.parametrize(("text", "raw"), [
    ("grade iii", "grade iii"),  # no digit: found through the word gate
    ("in her seventies", "seventies"), ("eighteen lesions", "eighteen"),
    ("a quarter of the lesion", "quarter"),
])
def test_quantities_without_a_digit_pass_the_gate(text, raw):
    assert one(text).raw == raw


@pytest.mark.parametrize(("text", "hedged", "cmp"), [
    ("about 3 cm", True, ""), ("less than\n5 mm", True, "<"), ("over 12 weeks", False, ""),
    ("roughly\u2003 7 mm", True, ""), ("~5 mm", True, ""), ("larger than 15 mm", False, ">"),
    ("within 2 days", False, "<"), ("exceeding 10 cm", False, ">"), ("at least 2 cm", True, ">"),
    ("a further 3 cm", False, ""), ("the photo 3 cm", False, ""),
])
def test_hedges_and_bounds_before_a_number(text, hedged, cmp):
    q = one(text)
    assert (q.hedged, q.cmp) == (hedged, cmp)


@pytest.mark.parametrize(("text", "cmp", "noun"), [
    # a bound written after its number, and the thing counted after the bound
    ("two or more layers", ">", "layers"), ("3 or fewer lesions", "<", "lesions"),
    ("5 mm or larger", ">", ""), ("one or two lesions", "", ""),
])
def test_bounds_after_a_number(text, cmp, noun):
    q = NX.extract(text)[0]
    assert (q.cmp, q.noun) == (cmp, noun), q


@pytest.mark.parametrize(("text", "value"), [
    ("x40", 40.0), ("x 40", 40.0), ("40x", 40.0), ("40 x", 40.0), ("×400", 400.0),
    ("four hundred times", 400.0), ("magnification 200", 200.0),
])
def test_magnifications_pass_the_x_gate(text, value):
    mags = [q.lo for q in NX.extract(text) if q.dim == "magnification"]
    assert mags == [value]


def test_an_x_inside_a_word_is_no_magnification():
    assert [q.dim for q in NX.extract("axial view, extending 3 cm")] == ["length"]


@pytest.mark.parametrize("text", ["covid-19 pneumonia", "sars-cov-2 infection", "il-6 levels",
                                  "ki-67 staining", "hpv-16 positive"])
def test_digits_ending_a_hyphenated_name_are_part_of_the_name(text):
    assert NX.extract(text) == []


@pytest.mark.parametrize(("text", "value"), [
    ("type-2 diabetes", 2.0), ("a grade-3 tumour", 3.0), ("stage-4 disease", 4.0),
    ("ages 20-30", 20.0), ("a 3-year-old", 3.0), ("the second-half lead", 0.5),
])
def test_numbers_after_a_hyphen_that_are_values(text, value):
    assert [q.lo for q in NX.extract(text)][:1] == [value]


@pytest.mark.parametrize(("pattern", "letters"), [
    (r"\bis (?:a )?common", "i"), (r"\b(?:consult|see|visit) a", "csv"),
    (r"\b(treat\w*|cure[sd]?|remed\w*)\b", "crt"), (r"^(?:unknown|n/?a)\.?$", "nu"),
    (r"(a\)|b)", "ab"), (r"\b(?:it is )?not", "in"), (r"^(?:the )?figure\b", "ft"),
])
def test_first_letters_reads_how_a_cue_starts(pattern, letters):
    assert first_letters(pattern) == letters


@pytest.mark.parametrize("pattern", [r"\b(?:it is )*not", r"\b(?:it )?\d", r"\d+ cm",
                                     r"(?P<n>a|b)", r"\(a", r"\b(?:a|(?:b|c)d)"])
def test_first_letters_refuses_a_start_it_cannot_read(pattern):
    with pytest.raises(ValueError):
        first_letters(pattern)


def test_general_knowledge_lookahead_hides_no_cue():
    """Every cue still matches through the lookahead-prefixed pattern."""
    from vqa_gen.grounding import lexicon as lx
    from vqa_gen.grounding.checks.answerability import AnswerabilityCheck
    gk = AnswerabilityCheck(Analyser())._gk
    for text in ["it is a common skin condition", "lesions are usually caused by friction",
                 "consult a dermatologist", "visit your doctor", "topical steroids help",
                 "heals on its own", "most commonly on the face", "good hygiene",
                 "often resolves", "generally speaking", "self-limiting", "sunscreen daily"]:
        plain = [m.group(0) for m in re.finditer("|".join(
            f"(?:{p})" for p in lx.GENERAL_KNOWLEDGE_CUES), text)]
        assert plain and [m.group(0) for m in gk.finditer(text)] == plain, text


@pytest.mark.parametrize(("text", "quantities"), [
    ("morton won 4-1", [("1", "score"), ("4-1", "score")]),
    ("a 1-1 draw", [("1-1", "score")]),
    ("a 6–3 ruling", [("3", "score"), ("6–3", "score")]),
    ("ages 20-30", [("20-30", "")]),  # a rising pair is a range
    ("3 and 2 lesions", [("2", ""), ("3 and 2", "")]),  # (not a score without a dash)
])
def test_a_falling_dashed_pair_is_a_score(text, quantities):
    assert [(q.raw, q.dim) for q in NX.extract(text)] == quantities


@pytest.mark.parametrize(("text", "raw", "dim", "noun"), [
    ("the 130-yard fourth", "130-yard", "length", ""),
    ("flew 100 miles", "100 miles", "length", ""),
    ("a 6-foot man", "6-foot", "length", ""), ("5 km away", "5 km", "length", ""),
    ("for 20 seconds", "20 seconds", "time", ""),
    ("a six-time champion", "six", "", "time"),  # a hyphenated word after a count is its noun
    ("2 second-degree burns", "2", "", "second-degree"),  # ("second" alone is no unit)
])
def test_more_units_and_hyphenated_nouns(text, raw, dim, noun):
    assert [(q.raw, q.dim, q.noun) for q in NX.extract(text)] == [(raw, dim, noun)]


@pytest.mark.parametrize(("text", "value"), [
    ("packages from $500", 500.0), ("a £4,000 diorama", 4000.0), ("a $5m deal", 5e6),
    ("earned $3.1 billion", 3.1e9), ("$3,100 million", 3.1e9),
])
def test_a_sum_of_money_is_money_in_its_scale(text, value):
    (q,) = NX.extract(text)
    assert (q.dim, q.clo) == ("money", value)


@pytest.mark.parametrize(("a", "b", "opposite"), [
    ("suitable", "unsuitable", True), ("motivat", "demotivate", True),
    ("negligible", "non-negligible", True), ("typical", "atypical", True),
    ("public", "apublic", False),  # no word: "a public" run together
    ("lesion", "lesions", False), ("red", "reduced", False),
])
def test_prefixed_opposite(a, b, opposite):
    assert prefixed_opposite(a, b) is opposite
    assert prefixed_opposite(b, a) is opposite


def test_leakage_and_refusal_lookaheads_hide_no_cue():
    """The leakage and refusal cues match through their lookahead-prefixed patterns exactly as
    through the plain alternations (every cue once, at the same place)."""
    from vqa_gen.grounding import lexicon as lx
    from vqa_gen.grounding.checks.leakage import LeakageCheck
    check = LeakageCheck(Analyser())
    texts = ["as described in the caption, red", "figure 3 shows it", "the figure shows it",
             "see the legend", "according to the text", "panel b", "how many types of findings",
             "i cannot see the image", "it is not possible to tell", "is not mentioned",
             "not mentioned", "unknown.", "n/a", "i'm sorry", "as an ai", "no image",
             "without seeing the image", "cannot be determined", "a red plaque"]
    for cues, pattern in ((lx.LEAKAGE_CUES, check._leak), (lx.REFUSAL_CUES, check._refuse)):
        plain = re.compile("|".join(f"(?:{p})" for p in cues))
        for text in texts:
            want = [m.span() for m in plain.finditer(text)]
            assert [m.span() for m in pattern.finditer(text)] == want, text


@pytest.mark.parametrize(("text", "value"), [("the 3rd toe", 3.0), ("21st lesion", 21.0),
                                             ("a 4th.", 4.0), ("1st-degree burn", 1.0)])
def test_ordinals_pass_their_gate(text, value):
    assert [q.lo for q in NX.extract(text) if q.dim == "ordinal"] == [value]


@pytest.mark.parametrize(("text", "raws"), [
    ("8x6 mm", ["8 mm", "6 mm"]), ("two by three cm", ["two cm", "three cm"]),
    ("2 × 3 × 4 cm", ["2 cm", "3 cm", "4 cm"]), ("measuring 1.5 by twenty-two mm", ["1.5 mm",
                                                                                  "twenty-two mm"]),
])
def test_dimensions_pass_their_gate(text, raws):
    assert [q.raw for q in NX.extract(text)][:len(raws)] == raws


@pytest.mark.parametrize("question", [
    "how is it treated?", "what is the prognosis?", "what causes it?", "is it contagious?",
    "how common is it?", "should the patient see a doctor?", "how long has it been there?",
    "does it itch?", "is it hereditary?", "what medication helps?"])
def test_topic_gates_hide_no_topic(question):
    # the check looks for topics only in questions both gates pass
    from vqa_gen.grounding.checks.answerability import AnswerabilityCheck
    from vqa_gen.grounding.checks.base import QUESTION_CUES
    check = AnswerabilityCheck(Analyser())
    assert any(q_re.search(question) for _, q_re, _ in check._topics)
    assert QUESTION_CUES.search(question) and check._topic_gate.search(question)


# -- few-shot echo (grounding.echo) -----------------------------------------------------------

_EXAMPLES = (Example("Pityriasis rosea: oval salmon-pink scaly patches along the skin cleavage "
                     "lines of the trunk of a 22-year-old man.",
                     ("Pityriasis rosea.", "Salmon-pink.", "On the trunk.", "Oval.")),
             Example("Dermoscopy of a clear cell acanthoma showing dotted vessels.",
                     ("A dermoscopic image.", "Clear cell acanthoma.")))


def _words(text: str) -> list[str]:
    return text.casefold().replace(".", " ").replace(":", " ").replace(",", " ").split()


@pytest.mark.parametrize(("answer", "caption", "borrowed"), [
    ("Salmon-pink.", "Urticaria: pale pink wheals on the trunk.", ["salmon-pink"]),
    ("  salmon-pink ", "Urticaria: pale pink wheals on the trunk.", ["salmon-pink"]),
    ("Oval.", "Nummular eczema: round plaques on the legs.", ["oval"]),
    # the example's answer, but this caption writes its words too: no echo
    ("On the trunk.", "Urticaria: pale pink wheals on the trunk.", []),
    # a generic answer the example gives takes nothing from the example's caption
    ("A dermoscopic image.", "Dermoscopy of a cherry angioma.", []),
    # not word for word an example answer
    ("Salmon-pink patches.", "Urticaria: pale pink wheals.", []),
    ("Pink.", "Urticaria: pale pink wheals.", []),
    ("", "Urticaria.", []),
])
def test_an_echo_is_an_example_answer_with_words_of_the_example_caption(answer, caption,
                                                                         borrowed):
    assert echoed_words(answer, _EXAMPLES, example_words(_EXAMPLES, _words),
                        set(_words(caption)), _words, frozenset({"on", "the", "a"})) == borrowed


def test_the_filter_blocks_an_echo_only_when_given_the_examples():
    filt = GroundingFilter(FilterConfig())
    caption = "Urticaria. Pale pink wheals on the trunk and proximal arms."
    pairs = [("What colour are the wheals?", "Salmon-pink."),
             ("Where are the wheals?", "On the trunk.")]
    plain = filt.check_record(caption, pairs)
    echoed = filt.check_record(caption, pairs, examples=_EXAMPLES)
    assert plain[0].passed and not echoed[0].passed
    assert [r.code for r in echoed[0].reasons][-1] == "example_echo"
    assert echoed[0].score == plain[0].score  # a blocking code: the score still ranks support
    assert echoed[1] == plain[1]  # "trunk" is this caption's own word
    off = GroundingFilter(FilterConfig(checks={"echo": {"enabled": False}}))
    assert off.check_record(caption, pairs, examples=_EXAMPLES)[0].passed


_HAEMATOMA = ("Dermoscopy of a subungual haematoma of the left great toenail: homogeneous "
              "red-purple to black pigmentation with peripheral globules.")
_DERM_EXAMPLE = (Example("Dermoscopy of a clear cell acanthoma showing dotted vessels arranged "
                         "in a string-of-pearls pattern.",
                         ("A dermoscopic image.", "Clear cell acanthoma.",
                          "As dotted vessels in a string-of-pearls pattern.")),)


@pytest.mark.parametrize(("answer", "echo"), [
    # (the quick start, 2026-12-04: kept at 0.70) "string" is unsupported here, and the only
    # string the model saw is the example's "string-of-pearls"
    ("As a string of black pigment on the nail", "string"),
    ("Dotted vessels.", "dotted, vessels"),
    # unsupported, but not from the example: the support score's business
    ("A longitudinal band of brown pigment.", None),
    # the example's words that this caption supports
    ("Homogeneous black pigmentation with peripheral globules.", None),
    ("A dermoscopic image.", None),
])
def test_an_unsupported_word_of_the_example_caption_is_an_echo(answer, echo):
    filt = GroundingFilter(FilterConfig())
    [v] = filt.check_record(_HAEMATOMA, [("How does the haematoma present?", answer)],
                            examples=_DERM_EXAMPLE)
    found = [r.evidence for r in v.reasons if r.code == "example_echo"]
    assert found == ([echo] if echo else []), v.to_dict()
    if echo:
        assert not v.passed
