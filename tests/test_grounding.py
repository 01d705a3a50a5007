"""Tests of the caption-grounding filter: each check must catch its hallucinations and let the
paraphrases through."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vqa_gen.grounding import CODES, FilterConfig, GroundingFilter, Reason, Verdict

CAP = ("Dermoscopic image of a 64-year-old woman with an erythematous papule on the left "
       "forearm measuring 2 cm, without ulceration.")
CAP_BCC = ("Nodular basal cell carcinoma on the right cheek of a 72-year-old man: a pearly, "
           "translucent papule with arborizing telangiectasia; no pigmentation.")
CAP_HIST = "Psoriasis (H&E, x100): regular acanthosis with elongated rete ridges and Munro " \
           "microabscesses."
CAP_ZOSTER = ("Herpes zoster. Grouped vesicles on an erythematous base in a dermatomal "
              "distribution on the left side of the chest of a 45-year-old woman.")


@pytest.fixture(scope="module")
def f() -> GroundingFilter:
    return GroundingFilter(FilterConfig())


def codes(v: Verdict) -> set[str]:
    return set(v.codes)


# ---------------------------------------------------------------- grounded paraphrases pass
@pytest.mark.parametrize(("caption", "question", "answer"), [
    (CAP, "What color is the lesion?", "The image shows a red papule."),
    (CAP, "What type of lesion is seen?", "An erythematous papule."),
    (CAP, "Where is the lesion?", "On the patient's left forearm."),
    (CAP, "What imaging technique was used?", "Dermatoscopy."),
    (CAP, "What imaging technique was used?", "A dermoscopic image."),
    (CAP, "How large is the lesion?", "20 mm"),
    (CAP, "How large is the lesion?", "It measures 2 cm."),
    (CAP, "Is there ulceration?", "No."),
    (CAP, "Is there ulceration?", "No, there is no ulceration."),
    (CAP, "How old is the patient?", "She is in her sixties."),
    (CAP, "What is the sex of the patient?", "Female."),
    (CAP, "Who is the patient?", "An older woman."),
    (CAP_BCC, "What is the diagnosis?", "BCC."),
    (CAP_BCC, "What is the diagnosis?", "A nodular basal cell carcinoma."),
    (CAP_BCC, "What vessels are visible?", "Arborising telangiectasias."),
    (CAP_BCC, "Is the lesion pigmented?", "No."),
    (CAP_BCC, "Where is the tumour?", "The right cheek."),
    (CAP_HIST, "What stain is used?", "Haematoxylin and eosin."),
    (CAP_HIST, "What stain is used?", "H&E."),
    (CAP_HIST, "What is the magnification?", "100x"),
    (CAP_ZOSTER, "What is the diagnosis?", "Shingles."),
    (CAP_ZOSTER, "How are the vesicles arranged?", "Clustered."),
    (CAP_ZOSTER, "Which side is affected?", "Left."),
])
def test_grounded_passes(f, caption, question, answer):
    v = f.check(caption, question, answer)
    assert v.passed, v.to_dict()


# ---------------------------------------------------------- hallucinations are caught, by code
@pytest.mark.parametrize(("caption", "question", "answer", "code"), [
    # unsupported content
    (CAP, "What is the diagnosis?", "Melanoma.", "unsupported_content"),
    (CAP, "Where is the lesion?", "On the thumb of the dermatologist.", "unsupported_content"),
    (CAP, "What color is the lesion?", "Brown with blue-white veil.", "unsupported_content"),
    # numbers
    (CAP, "How large is the lesion?", "3 cm", "number_mismatch"),
    (CAP, "How large is the lesion?", "5 mm", "number_mismatch"),
    (CAP_ZOSTER, "How many vesicles are there?", "Twelve.", "unsupported_number"),
    (CAP, "How old is the patient?", "45 years old.", "age_mismatch"),
    # demographics
    (CAP, "Who is the patient?", "A young boy.", "sex_mismatch"),
    (CAP, "Who is the patient?", "A child.", "age_mismatch"),
    (CAP, "Where is the lesion?", "On the right forearm.", "laterality_mismatch"),
    (CAP_BCC, "Where is the tumour?", "On the back.", "site_mismatch"),
    # negation
    (CAP, "Is there ulceration?", "Yes, it is ulcerated.", "negation_conflict"),
    (CAP, "Is the lesion on the forearm?", "No.", "negation_conflict"),
    (CAP_BCC, "Is the lesion pigmented?", "Yes.", "negation_conflict"),
    # answerability
    (CAP, "How should this be treated?", "Surgical excision.", "unanswerable_question"),
    (CAP, "Is it contagious?", "No, it is not contagious.", "unanswerable_question"),
    (CAP, "How long has the patient had it?", "About three months.", "unanswerable_question"),
    (CAP_BCC, "What is shown?", "A BCC, which is commonly caused by sun exposure.",
     "general_knowledge"),
    # leakage / refusal / empty
    (CAP, "What is shown?", "As mentioned in the caption, a red papule.", "text_leakage"),
    (CAP, "What is shown?", "Figure 3 shows a red papule.", "text_leakage"),
    (CAP, "What is shown?", "I cannot see the image.", "refusal"),
    (CAP, "What is the diagnosis?", "As an AI, I cannot diagnose.", "refusal"),
    (CAP, "What is shown?", "  ", "empty_answer"),
])
def test_hallucination_caught(f, caption, question, answer, code):
    v = f.check(caption, question, answer)
    assert not v.passed, v.to_dict()
    assert code in codes(v), v.to_dict()


@pytest.mark.parametrize(("question", "answer"), [
    ("Is there crusting?", "Yes."),
    ("Is the lesion on the forearm?", "Yes."),
    ("Is there ulceration?", "No."),
])
def test_yes_no_polarity(f, question, answer):
    v = f.check(CAP, question, answer)
    expected = question != "Is there crusting?"
    assert v.passed is expected, v.to_dict()


def test_reasons_carry_evidence(f):
    v = f.check(CAP, "Where is the lesion?", "On the thumb of the dermatologist.")
    r = next(r for r in v.reasons if r.code == "unsupported_content")
    assert "thumb" in (r.evidence or "") and "dermatologist" in (r.evidence or "")
    assert r.check == "content" and 0 < r.penalty <= 1


def test_meta_counts_as_evidence(f):
    cap = "An erythematous plaque."
    assert not f.check(cap, "How old is the patient?", "54 years old.").passed
    v = f.check(cap, "How old is the patient?", "54 years old.", meta={"age": 54})
    assert v.passed, v.to_dict()
    assert f.check(cap, "Where is it?", "On the back.", meta={"body_site": "back"}).passed
    assert "sex_mismatch" in f.check(cap, "Sex?", "Female.", meta={"sex": "male"}).codes


def test_verdict_shape_is_json(f):
    d = f.check(CAP, "Where?", "On the right forearm.").to_dict()
    json.dumps(d)
    assert set(d) == {"score", "passed", "reasons"}
    assert {"code", "check", "detail", "penalty"} <= set(d["reasons"][0])


def test_all_emitted_codes_documented(f):
    seen = set()
    for q, a in [("Q?", "As mentioned in the caption, I cannot see."), ("Is it red?", "No."),
                 ("Treatment?", "Topical steroids are commonly used."), ("Size?", "9 cm"),
                 ("Who?", "A man."), ("Where?", "Right chest."), ("Is it?", "")]:
        seen |= codes(f.check(CAP, q, a))
    assert seen <= set(CODES)


# ------------------------------------------------------------------------------ scoring/config
@settings(max_examples=150, deadline=None)
@given(st.text(max_size=80), st.text(max_size=40), st.text(max_size=60))
def test_score_in_unit_interval(caption, question, answer):
    v = _SHARED.check(caption, question, answer)
    assert 0.0 <= v.score <= 1.0
    assert isinstance(v.reasons, tuple)
    assert all(isinstance(r, Reason) for r in v.reasons)


_SHARED = GroundingFilter()


def test_presets_change_outcomes():
    q, a = "Describe the lesion.", "A red papule on the left forearm with a small scale."
    lenient = GroundingFilter(FilterConfig(strictness="lenient")).check(CAP, q, a)
    strict = GroundingFilter(FilterConfig(strictness="strict")).check(CAP, q, a)
    assert lenient.passed and not strict.passed
    assert lenient.score > strict.score
    assert FilterConfig(strictness="strict").threshold > FilterConfig().threshold


def test_per_check_override_and_dump():
    cfg = FilterConfig(checks={"numbers": {"enabled": False}}, threshold=0.4)
    dump = cfg.model_dump()
    json.dumps(dump)
    assert dump["threshold"] == 0.4 and dump["checks"]["numbers"]["enabled"] is False
    assert set(dump["checks"]) >= {"content", "numbers", "negation", "duplicates"}
    v = GroundingFilter(cfg).check(CAP, "How large is the lesion?", "3 cm")
    assert "number_mismatch" not in codes(v)
    weighted = GroundingFilter(FilterConfig(checks={"content": {"weight": 0.0}}))
    assert weighted.check(CAP, "What is the diagnosis?", "Melanoma.").score == 1.0
    with pytest.raises(ValueError):
        FilterConfig(checks={"nonexistent": {}})


def test_check_params_are_applied():
    q, a = "How large is the lesion?", "3 cm"
    assert not GroundingFilter(FilterConfig()).check(CAP, q, a).passed
    soft = GroundingFilter(FilterConfig(checks={
        "numbers": {"params": {"mismatch_penalty": 0.1}},
        "content": {"params": {"number_weight": 0.0}}}))
    assert soft.check(CAP, q, a).passed


# ------------------------------------------------------------------------------- duplicates
def test_duplicates_keep_the_better(f):
    pairs = [("What color is the lesion?", "Blue."),
             ("What is the color of the lesion?", "Red."),
             ("Where is the lesion?", "On the left forearm.")]
    vs = f.check_record(CAP, pairs)
    assert "duplicate_question" in vs[0].codes and not vs[0].passed
    assert "duplicate_question" not in vs[1].codes and vs[1].passed
    assert vs[2].passed


def test_duplicates_tie_keeps_first(f):
    pairs = [("What color is the lesion?", "Red."), ("What colour is the lesion?", "Red.")]
    vs = f.check_record(CAP, pairs)
    assert vs[0].passed and "duplicate_question" in vs[1].codes


def test_check_record_matches_check(f):
    pairs = [("What color is the lesion?", "Red."), ("How large is it?", "3 cm"),
             ("Is there ulceration?", "No.")]
    rec = f.check_record(CAP, pairs, qa_types=["color", "size", "morphology"])
    single = [f.check(CAP, q, a) for q, a in pairs]
    assert [v.to_dict() for v in rec] == [v.to_dict() for v in single]


def test_check_record_analyses_caption_once(f):
    # One analysis serves every pair: the per-caption memo of the analysis the filter keeps
    # holds the words of the first answer as well as the last (a new analysis per pair would
    # hold only the last pair's). Read without monkeypatching, so it holds for the compiled build.
    f.forget_caption()
    f.check_record(CAP_BCC, [("Diagnosis?", "Nodular lesion."), ("Site?", "Right cheek."),
                             ("Age?", "72.")])
    cap = f.caption_facts(CAP_BCC)  # (the cached analysis: no new one)
    assert cap is f.caption_facts(CAP_BCC)
    assert {"nodular", "cheek"} <= cap.position_memo.keys()


# ------------------------------------------------------------- general English (not medical)
PASSAGE = ("Arthur's Magazine (1844-1846) was an American literary periodical published in "
           "Philadelphia in the 19th century. First for Women is a magazine published by Bauer "
           "Media Group; it was started in 1989.")
EVIDENCE = ("Vitamin D supplementation did not reduce the incidence of invasive cancer or "
            "cardiovascular events among healthy adults.")


@pytest.mark.parametrize(("evidence", "question", "answer", "ok"), [
    (PASSAGE, "Where was Arthur's Magazine published?", "Philadelphia.", True),
    (PASSAGE, "Where was Arthur's Magazine published?", "New York City.", False),
    (PASSAGE, "When was First for Women started?", "In 1989.", True),
    (PASSAGE, "When was First for Women started?", "In 1992.", False),
    (PASSAGE, "In which century?", "The 19th century.", True),
    (PASSAGE, "In which century?", "The 20th century.", False),
    (EVIDENCE, "What was found?", "It did not lower the incidence of cardiovascular events.",
     True),
    (EVIDENCE, "What was found?", "Vitamin D reduced cardiovascular events.", False),
])
def test_general_passages(f, evidence, question, answer, ok):
    assert f.check(evidence, question, answer).passed is ok


def test_forget_caption_drops_the_cached_caption_analysis():
    filt = GroundingFilter(FilterConfig())
    first = filt.caption_facts("A red plaque on the left elbow.")
    assert filt.caption_facts("A red plaque on the left elbow.") is first
    filt.forget_caption()
    assert filt.caption_facts("A red plaque on the left elbow.") is not first
