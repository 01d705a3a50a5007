from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vqa_gen.answers import AnswerFormatError, extract_json, parse_qa_pairs

GOOD = {"qa_pairs": [{"question": "What is shown?", "answer": "A plaque.", "type": "Diagnosis"}]}


@pytest.mark.parametrize("text", [
    json.dumps(GOOD),
    "```json\n" + json.dumps(GOOD) + "\n```",
    "Sure! Here you go:\n" + json.dumps(GOOD) + "\nHope this helps {not json}.",
    "Note {this} first. " + json.dumps(GOOD),
    json.dumps(GOOD["qa_pairs"]),
    json.dumps({"questions": GOOD["qa_pairs"]}),
])
def test_tolerant_parsing(text):
    pairs = parse_qa_pairs(text)
    assert [(p.question, p.answer, p.type) for p in pairs] == [
        ("What is shown?", "A plaque.", "diagnosis")]


@pytest.mark.parametrize(("text", "code"), [
    ("", "empty_reply"),
    ("I'm sorry, I can't help with that.", "invalid_json"),
    ('{"qa_pairs": [{"question": "Q?", "answer": ', "invalid_json"),
    ('{"questions": ["a", "b"]}', "wrong_shape"),
    ('{"qa_pairs": []}', "no_pairs"),
    ('{"qa_pairs": [{"question": "", "answer": "x"}]}', "wrong_shape"),
    ('"just a string"', "wrong_shape"),
])
def test_unusable_replies_raise_with_a_code(text, code):
    with pytest.raises(AnswerFormatError) as info:
        parse_qa_pairs(text)
    assert info.value.code == code


def test_missing_type_defaults_to_other_and_numbers_become_text():
    pairs = parse_qa_pairs('{"qa_pairs": [{"question": "How many?", "answer": 2}]}')
    assert pairs[0].answer == "2" and pairs[0].type == "other"


# orjson reads integers outside [-2**63, 2**64 - 1] as floats; a reply of QA pairs has no
# such numbers, so the property is stated for the integers it reads exactly.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                 max_size=3),
    max_leaves=10)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40), json_values.filter(lambda v: isinstance(v, dict)),
       st.text(max_size=40))
def test_extract_json_finds_an_object_wrapped_in_prose(prefix, value, suffix):
    text = prefix.replace("{", "(").replace("`", "'") + json.dumps(value) + " " + suffix
    assert extract_json(text) == value


REASK_CODES = {"empty_reply", "invalid_json", "wrong_shape", "no_pairs"}


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200) | st.builds(lambda v: json.dumps({"qa_pairs": v}), json_values))
def test_parse_returns_usable_pairs_or_a_coded_reason_and_nothing_else(text):
    try:
        pairs = parse_qa_pairs(text)
    except AnswerFormatError as err:
        # what the re-ask prompt and the failure kind are built from
        assert err.code in REASK_CODES and err.reason and "\n" not in err.reason
        return
    assert pairs and all(p.question.strip() and p.answer.strip() and p.type for p in pairs)
