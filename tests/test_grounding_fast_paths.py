"""The filter's fast paths give exactly what the plain algorithms they replace give.

Each fast path (per-word memos read in C, literal gates, on-demand tables) is compared with a
straightforward reference written here, on texts drawn from the lexicon's own words with
separators that sit on token boundaries (hyphens, apostrophes, digits, punctuation).
"""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from vqa_gen.grounding import lexicon as lx
from vqa_gen.grounding.analysis import Analyser, acronyms, initials_text
from vqa_gen.grounding.checks.relevance import _KIND_CUES, _QUESTION_KINDS
from vqa_gen.grounding.support import _NAME_RE, COVERAGE_STOP, NAME_PLAIN, coverage
from vqa_gen.grounding.text import _TOKEN_RE, TOKEN_PLAIN, Normaliser, fold

NORM = Normaliser()
AN = Analyser()

_FRAGMENTS = sorted({w for p, r in lx.PHRASE_REWRITES
                     for w in re.findall(r"[a-z&\-]+", p + " " + (r if isinstance(r, str) else ""))}
                    | {"tract", "focus", "thus", "3", "10th", "2nd", "x", "image", "scan", "of",
                       "no", "not", "lesions", "plaque", "red", "_", "α", "æ"})
_SEPARATORS = ["", " ", " ", "-", "'", "'s ", "’", ", ", ". ", "(", ")", "&", " & "]
texts = st.lists(st.tuples(st.sampled_from(_FRAGMENTS), st.sampled_from(_SEPARATORS)),
                 max_size=10).map(lambda parts: "".join(w + s for w, s in parts))


def reference_rewrite(text: str) -> str:
    """Every rewrite applied in order to the whole text: no literal gate, no word memo."""
    t = fold(text)
    for pattern, replacement in lx.PHRASE_REWRITES:
        t = re.sub(pattern, replacement, t)
    return t


@settings(max_examples=400, deadline=None)
@given(texts)
def test_rewrite_matches_the_plain_scan(text):
    assert NORM.rewrite(text) == reference_rewrite(text)
    assert NORM.view(text).text == reference_rewrite(text)


@settings(max_examples=600, deadline=None)
@given(st.text(alphabet="abst01239.,;:!?()'-& \n", max_size=40))
def test_tokeniser_matches_the_plain_pattern(text):
    # every character a token can hold or stop at: letters (incl. ordinal suffixes), digits,
    # decimal points, each punctuation mark, apostrophes, hyphens and characters of no token
    assert _TOKEN_RE.findall(text) == re.findall(TOKEN_PLAIN, text)


@settings(max_examples=600, deadline=None)
@given(st.lists(st.sampled_from(["a", "the", "Eiffel", "B", "Zz", "0", "12", ",", ";", ":", " ",
                                  "-", "'", "O'Neil", "Dell'Arte", "Saint-Denis", ".", "\n"]),
                max_size=12).map("".join))
def test_name_pattern_matches_the_plain_one(text):
    assert _NAME_RE.findall(text) == re.findall(NAME_PLAIN, text)


@settings(max_examples=300, deadline=None)
@given(st.one_of(texts, st.lists(st.sampled_from(
    ["red", "3", "2.5", "1st", " ", ".", ",", ";", ":", "!", "?", "(", ")", "-", "'s"]),
    max_size=8).map("".join)))
def test_words_are_the_tokens_without_punctuation(text):
    facts = AN._facts(text)
    assert facts.words == [t for t in facts.view.tokens if t[0].isalnum()]


_KIND_WORDS = ["type", "kind", "sort", "of", "image", "imaging", "photograph", "view", "scan",
               "modality", "technique", "method", "how", "was", "this", "the", "picture",
               "taken", "obtained", "colour", "colors", "hue", "shades", "demographics",
               "gender", "sex", "old", "age", "patient's", "diagnosis", "diagnoses",
               "condition", "disease", "disorder", "classification", "what", "is", "lesion"]


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(_KIND_WORDS), max_size=8).map(" ".join))
def test_kind_cue_gate_hides_no_question_kind(question):
    # the relevance and content checks skip every kind search (but location's) when the
    # cue gate finds nothing: each kind's match must hold a cue
    for kind, pattern in _QUESTION_KINDS:
        if kind != "location" and pattern.search(question):
            assert _KIND_CUES.search(question), (kind, question)


def test_whole_word_rewrites_ignore_the_letters_inside_other_words():
    # "ct" inside "tract" or "act" is no CT; "ct" as a word (or a hyphen part) is
    assert "computed tomography" not in NORM.rewrite("the biliary tract and the act")
    assert "computed tomography" in NORM.rewrite("A CT of the chest")
    assert "computed tomography" in NORM.rewrite("ct-guided biopsy")


@settings(max_examples=300, deadline=None)
@given(texts, st.text(alphabet="abcdefghlmnoprstu", min_size=2, max_size=5))
def test_initials_text_answers_like_the_acronym_list(text, word):
    tokens = NORM.view(text).tokens
    if not tokens:
        return
    in_acronyms = any(word in a for a in acronyms(tokens, AN.stop))
    assert (word in initials_text(tokens, AN.stop)) == in_acronyms


@settings(max_examples=300, deadline=None)
@given(texts, texts)
def test_coverage_counts_like_the_plain_loop(answer, evidence):
    a, e = NORM.view(answer), NORM.view(evidence)
    counted = [(t, k) for t, k in zip(a.tokens, a.keys, strict=True)
               if t[0].isalnum() and t not in COVERAGE_STOP]
    ev_tokens, ev_keys = set(e.tokens), set(e.keys)
    want = (sum(t in ev_tokens or k in ev_keys for t, k in counted) / len(counted)
            if counted else 1.0)
    assert coverage(a.tokens, a.keys, ev_tokens, ev_keys) == want


@settings(max_examples=200, deadline=None)
@given(texts)
def test_caption_tables_match_a_plain_pass(text):
    cap = AN.caption(text)
    facts = cap.facts
    tokens, keys = facts.view.tokens, facts.view.keys
    content = [i for i, t in enumerate(tokens) if t[0].isalnum() and t not in AN.stop]
    assert facts.content_index == content
    assert facts.words == [t for t in tokens if t[0].isalnum()]
    # positions: every content position of a key, a differing spelling or a hyphen part
    want: dict[str, list[int]] = {}
    for n, i in enumerate(content):
        t, k = tokens[i], keys[i]
        want.setdefault(k, []).append(n)
        if t != k:
            want.setdefault(t, []).append(n)
        for part in t.split("-") if "-" in t else ():
            if part:
                want.setdefault(NORM.key(part), []).append(n)
    assert {k: sorted(v) for k, v in cap.key_positions.items()} == want
    negated = {keys[i] for i in content if facts.negated[i]}
    affirmed = {keys[i] for i in content if not facts.negated[i]}
    assert set(facts.negated_keys) == negated
    assert affirmed <= set(facts.affirmed_keys)


def test_questions_and_answers_share_empty_sets_and_keep_their_facts():
    qa = AN.qa("Is the lesion on the left arm?", "Yes, on the left arm of a woman.")
    assert qa.answer.sexes == {"f"} and "left" in qa.answer.laterality
    assert "arm" in qa.answer.sites
    plain = AN.qa("What colour is it?", "Red.")
    assert not plain.answer.sexes and not plain.answer.sites and not plain.answer.laterality
    # only a caption's affirmed/negated key sets are read; a question's or answer's stay empty
    assert not plain.answer.affirmed_keys and not plain.answer.negated_keys
