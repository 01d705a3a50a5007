"""Tests of the checks added for issue #5: question form, word-family matching, colour and
lesion-type contradictions, numbers, and the speed-oriented caches and rewrite gate."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from vqa_gen.grounding import CODES, FilterConfig, GroundingFilter
from vqa_gen.grounding import lexicon as lx
from vqa_gen.grounding.text import Normaliser, fold, light_stem, shared_prefix_match

MEL = ("Superficial spreading melanoma on the upper back of a 47-year-old woman. The lesion is "
       "asymmetric, 14 mm in diameter, with variegated brown, black and blue-grey colour. "
       "No ulceration.")
PSO = ("Psoriasis vulgaris. Well-demarcated erythematous plaques with silvery-white scale on "
       "the extensor surfaces of both elbows of a 54-year-old man. No pustules.")
DATA = Path(__file__).resolve().parents[1] / "benchmarks" / "data"


@pytest.fixture(scope="module")
def f() -> GroundingFilter:
    return GroundingFilter(FilterConfig())


# ------------------------------------------------------------------ malformed_question
@pytest.mark.parametrize(("question", "answer"), [
    ("Psoriasis vulgaris.", "Psoriasis vulgaris."),
    ("Papule", "Papule"),
    ("Erythematous plaques", "Red plaques."),
    ("Silvery-white scale on the elbows.", "Yes."),
    ("What is the diagnosis?", "What is the diagnosis?"),
])
def test_malformed_question_caught(f, question, answer):
    v = f.check(PSO, question, answer)
    assert not v.passed and "malformed_question" in v.codes, v.to_dict()


@pytest.mark.parametrize(("question", "answer"), [
    ("Describe the lesions.", "Well-demarcated erythematous plaques with silvery-white scale."),
    ("Name the diagnosis", "Psoriasis vulgaris."),
    ("Where are the lesions", "On both elbows."),
    ("Based on the image, what colour are the plaques", "Red."),
    ("Please identify the condition.", "Psoriasis vulgaris."),
    ("Are pustules present", "No."),
    ("In which body region are the plaques?", "The elbows."),
    ("Diagnosis?", "Psoriasis vulgaris."),
    ("Describe this image in detail.", "Red plaques with silvery-white scale on both elbows."),
    ("Write a short description of the findings.", "Red plaques on both elbows."),
    ("Provide a detailed description of this image.", "Red plaques on both elbows."),
    ("Look at the elbows and state what is seen.", "Red plaques."),
])
def test_real_questions_are_not_malformed(f, question, answer):
    v = f.check(PSO, question, answer)
    assert "malformed_question" not in v.codes and v.passed, v.to_dict()


def test_malformed_question_is_blocking_and_documented():
    assert "malformed_question" in FilterConfig().blocking_codes
    assert "malformed_question" in CODES
    off = GroundingFilter(FilterConfig(checks={"form": {"enabled": False}}))
    assert "malformed_question" not in off.check(PSO, "Papule", "Papule").codes


# --------------------------------------------------- general knowledge / word families
def test_melanocytes_is_not_melanoma(f):
    v = f.check(MEL, "How is melanoma located?",
                "Melanomas are located within the skin and are shaped by melanocytes.")
    assert not v.passed, v.to_dict()
    ev = next(r.evidence for r in v.reasons if r.code == "unsupported_content")
    assert "melanocytes" in ev and "shaped" in ev


@pytest.mark.parametrize(("a", "b", "same"), [
    ("melanoma", "melanocytes", False), ("keratin", "keratosis", False),
    ("papillary", "papule", False), ("erythematous", "erythema", True),
    ("hyperkeratosis", "hyperkeratotic", True), ("ulceration", "ulcerated", True),
    ("telangiectasia", "telangiectatic", True), ("shortened", "shorter", True),
    ("pigmented", "pigmentation", True),
])
def test_word_families(a, b, same):
    assert shared_prefix_match(light_stem(a), light_stem(b)) is same


@pytest.mark.parametrize(("question", "answer"), [
    ("Where is the melanoma located?", "On the upper back."),
    ("What imaging was used?", "A clinical image."),
    ("Describe the lesion.", "An asymmetric lesion, 14 mm across, with brown, black and "
                             "blue-grey colour."),
    ("Is the lesion ulcerated?", "No, there is no ulceration."),
])
def test_melanoma_paraphrases_pass(f, question, answer):
    v = f.check(MEL, question, answer)
    assert v.passed, v.to_dict()


def test_filler_participle_before_by_is_a_claim(f):
    cap = "Red papule on the arm."
    assert f.check(cap, "What is shown?", "A red papule, imaged on the arm.").passed
    v = f.check(cap, "What is shown?", "A red papule shaped by scratching.")
    assert "shaped" in next(r.evidence for r in v.reasons if r.code == "unsupported_content")


def test_irregular_verbs_meet(f):
    cap = "Messi won the World Cup with Argentina in 2022."
    assert f.check(cap, "Did he win the World Cup?", "Yes, he did, in 2022.").passed
    assert f.check("The trial found no benefit.", "What did the trial find?",
                   "No benefit.").passed


# ------------------------------------------------------ colour / lesion-type contradictions
@pytest.mark.parametrize(("question", "answer"), [
    ("What colour is the lesion?", "Pink to skin-coloured."),
    ("What colour is the lesion?", "Brown, black and pink."),
    ("Describe the lesion.", "An asymmetric pink lesion, 14 mm in diameter."),
    ("Is the lesion pink?", "Yes."),
    ("What colour is the lesion?", "Uniformly yellow."),
])
def test_colour_contradiction(f, question, answer):
    v = f.check(MEL, question, answer)
    assert not v.passed and "contradicted_content" in v.codes, v.to_dict()


@pytest.mark.parametrize("answer", [
    "Brown, black and blue-grey.", "Variegated: brown and black with bluish-grey areas.",
    "Pigmented, brown and black.",
])
def test_colour_paraphrases_pass(f, answer):
    v = f.check(MEL, "What colour is the lesion?", answer)
    assert v.passed and "contradicted_content" not in v.codes, v.to_dict()


def test_neighbouring_colour_is_unsupported_not_contradicted(f):
    v = f.check(PSO, "What colour are the plaques?", "Pink.")
    assert "contradicted_content" not in v.codes and "unsupported_content" in v.codes


def test_lesion_type_contradiction(f):
    cap = "A 6 mm erythematous papule on the left forearm."
    v = f.check(cap, "What type of lesion is it?", "A red nodule.")
    assert not v.passed and "contradicted_content" in v.codes
    assert f.check(cap, "What type of lesion is it?", "A papular red lesion.").passed


def test_colour_not_contradicted_when_caption_has_no_colour(f):
    v = f.check("Papule on the left forearm.", "What colour is it?", "Pink.")
    assert "contradicted_content" not in v.codes and "unsupported_content" in v.codes


# ------------------------------------------------------------------------------ numbers
@pytest.mark.parametrize(("caption", "question", "answer", "ok"), [
    ("Its summit rises 5,895 metres above sea level.", "How high?", "5895 m.", True),
    ("Its summit rises 5,895 metres above sea level.", "How high?", "589 m.", False),
    ("A trial of 1,200 adults.", "How many adults?", "1200.", True),
    ("Exercise lowered blood pressure over 12 weeks.", "How long was the study?", "12 weeks.",
     True),
    ("The fire began on 2 September and burned for four days.", "How long did it burn?",
     "For two weeks.", False),
    ("The fire began on 2 September and burned for four days.", "How long did it burn?",
     "Four days.", True),
])
def test_number_fixes(f, caption, question, answer, ok):
    v = f.check(caption, question, answer)
    assert v.passed is ok, v.to_dict()


def test_when_question_answered_by_a_date(f):
    cap = "The Apollo 11 mission landed on the Moon on 20 July 1969."
    assert f.check(cap, "When did Apollo 11 land?", "On 20 July 1969.").passed


def test_negation_scope_stops_at_comparison(f):
    cap = ("Daily vitamin D did not reduce upper respiratory infections compared with "
           "placebo.")
    v = f.check(cap, "Was a placebo used?", "Yes, vitamin D was compared with placebo.")
    assert "negation_conflict" not in v.codes, v.to_dict()


def test_a_negation_conflict_weighs_less_in_a_long_evidence_text(f):
    """NegEx scopes reach words a cue does not deny more often in an abstract than in a
    caption: the same conflict costs `long_penalty` there, `penalty` in a caption."""
    short = "Topical steroids improved the rash within two weeks."
    filler = " ".join(f"Patient {i} was seen in clinic and followed up." for i in range(12))
    long = f"{short} {filler}"
    q, a = "What did the steroids do?", "Topical steroids did not improve the rash."
    pens = []
    for cap in (short, long):
        v = f.check(cap, q, a)
        pens.append([r.penalty for r in v.reasons if r.code == "negation_conflict"])
    assert pens == [[0.85], [0.6]], pens


# --------------------------------------------------------------------- speed mechanisms
def _reference_rewrite(text: str) -> str:
    t = fold(text)
    for pattern, rep in lx.PHRASE_REWRITES:
        t = re.sub(pattern, rep, t)
    return t


def test_rewrite_gate_equals_plain_rewrites():
    n = Normaliser()
    texts = ["BCC of the nose, H&E x100", "Dermatoscopy of a naevus on the upper back",
             "Shingles on the left-sided chest; hives", "Chest X-ray and CT", "nothing here",
             "Oesophagogastroduodenoscopy: mammogram, well-demarcated plaques bilaterally"]
    for name in ("grounding_eval.jsonl", "general_eval.jsonl"):
        for line in (DATA / name).read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            texts += [row["caption"], row["question"], row["answer"]]
    for t in texts:
        assert n.rewrite(t) == _reference_rewrite(t), t


def test_text_cache_is_bounded_and_transparent():
    g = GroundingFilter()
    g.analyser.text_cache_size = 8
    first = [g.check(PSO, f"Question {i} about the plaques?", "Red plaques.").to_dict()
             for i in range(20)]
    assert len(g.analyser._text_cache) <= 8
    again = [g.check(PSO, f"Question {i} about the plaques?", "Red plaques.").to_dict()
             for i in range(20)]
    assert first == again
    g.analyser.clear_cache()
    assert not g.analyser._text_cache


LEAKS = ["As mentioned in the caption, a red papule.", "Figure 3 shows a papule.",
         "Fig. 2b: a papule.", "The figure depicts a papule.", "According to the text, psoriasis.",
         "The legend says psoriasis.", "Panel b shows it.", "As described above, a plaque.",
         "The provided description mentions a plaque.", "It is stated in the report."]
REFUSALS = ["I cannot see the image.", "As an AI, I cannot diagnose.", "I'm sorry, no.",
            "I am unable to determine that.", "It is not possible to tell.", "Unknown.", "N/A",
            "This cannot be determined from the image.", "Not enough information.",
            "The size is not mentioned.", "I don't have access to the image.",
            "Without seeing the image I can't say.", "I'm just an AI language model.",
            "Unclear", "Unsure.", "Uncertain", "None given", "Not applicable", "I don't know",
            "n/a.", "I'm sorry."]


def test_leak_and_refusal_gates_never_hide_a_match():
    leak = re.compile("|".join(f"(?:{p})" for p in lx.LEAKAGE_CUES))
    refuse = re.compile("|".join(f"(?:{p})" for p in lx.REFUSAL_CUES))
    texts = [fold(t) for t in LEAKS + REFUSALS]
    norm = Normaliser()
    for name in ("grounding_eval.jsonl", "general_eval.jsonl"):
        for line in (DATA / name).read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            texts += [norm.rewrite(row["question"]), norm.rewrite(row["answer"])]
    for t in texts:
        if leak.search(t):
            assert any(tr in t for tr in lx.LEAKAGE_TRIGGERS), t
        if refuse.search(t):  # short answers need a trigger too unless a whole-answer cue
            assert (len(t) < lx.REFUSAL_SHORT and t[:1] in "uni") or any(
                tr in t for tr in lx.REFUSAL_TRIGGERS), t
    f = GroundingFilter()
    for t in LEAKS:
        assert "text_leakage" in f.check(PSO, "What is shown?", t).codes, t
    for t in REFUSALS:
        assert "refusal" in f.check(PSO, "What is the size?", t).codes, t


# ------------------------------------------------- gaps seen in a run of the embedded model
ZOSTER = ("Herpes zoster. Grouped vesicles on an erythematous base in a dermatomal "
          "distribution on the left side of the chest of a 45-year-old woman.")


@pytest.mark.parametrize(("question", "answer", "ok"), [
    ("What is the primary diagnosis?", "Herpes zoster.", True),
    ("What is the medical condition?", "Herpes zoster.", True),
    ("Is this a primary infection?", "Yes.", False),  # a yes affirms "primary": not framed
    ("What is the most common skin lesion?", "Herpes zoster.", False),
    ("How common is this condition?", "Very common in older adults.", False),
    ("How long is the eruption?", "It is on the left side of the chest.", True),
    ("How long has the patient had the rash?", "Three days.", False),
])
def test_real_run_gaps(f, question, answer, ok):
    v = f.check(ZOSTER, question, answer)
    assert v.passed is ok, v.to_dict()


def test_unsupported_negative_is_reported_but_does_not_lower_the_score(f):
    # On the public dev sets it fires as often on grounded replies as on hallucinated ones, so
    # by default it is evidence for the reader, not a penalty.
    cap = "Atopic dermatitis: lichenified plaques in the elbow creases of a 6-year-old boy."
    v = f.check(cap, "Is there crusting?", "No.")
    assert v.passed and v.score == 1.0
    assert {r.code: r.evidence for r in v.reasons}["unsupported_negative"] == "crusting"
    strict = GroundingFilter(FilterConfig(checks={"content": {"params": {
        "negative_penalty": 0.3}}}))
    assert strict.check(cap, "Is there crusting?", "No.").score < 1.0


# -- relevance: the answer is the kind of thing the question asks for --------------------------
_REL_CAPTION = ("Superficial spreading melanoma on the upper back of a 47-year-old woman, with "
                "variegated brown, black and blue-grey colour. Clinical photograph.")


@pytest.mark.parametrize(("question", "answer"), [
    ("Where is the lesion?", "Black"),
    ("What type of image is this?", "Superficial spreading melanoma on the upper back."),
    ("What is the colour of the lesion?", "On the upper back."),
    ("What is the name of the condition?", "A clinical photograph."),
    ("What is the modality?", "The melanoma is on the upper back."),
])
def test_relevance_catches_answers_of_the_wrong_kind(question, answer):
    v = GroundingFilter().check(_REL_CAPTION, question, answer)
    assert "answer_mismatch" in v.codes and not v.passed


@pytest.mark.parametrize(("question", "answer"), [
    ("Where is the lesion?", "On the upper back."),
    ("Where is the lesion?", "Upper back."),
    ("What colour is the lesion?", "Brown, black and blue-grey."),
    ("What colours are seen?", "Variegated pigmentation: brown, black and blue-grey."),
    ("What kind of image is this?", "A clinical photograph."),
    ("What type of image is this?", "A photo of the skin."),
    ("What is the diagnosis?", "Superficial spreading melanoma."),
    ("Is the lesion brown?", "Yes."),
])
def test_relevance_lets_fitting_answers_through(question, answer):
    assert "answer_mismatch" not in GroundingFilter().check(_REL_CAPTION, question, answer).codes


def test_relevance_can_be_switched_off():
    cfg = FilterConfig(checks={"relevance": {"enabled": False}})
    v = GroundingFilter(cfg).check(_REL_CAPTION, "Where is the lesion?", "Black")
    assert "answer_mismatch" not in v.codes


@pytest.mark.parametrize(("question", "kind"), [
    ("what type of image is this?", "modality"), ("how was this photo taken?", "modality"),
    ("what colour is the plaque?", "colour"), ("which hues are seen?", "colour"),
    ("how old is the patient?", "demographic"), ("what is the patient's gender?", "demographic"),
    ("where is the lesion?", "location"), ("what is the body site?", "location"),
    ("what is the diagnosis?", "diagnosis"), ("which disorder is shown?", "diagnosis"),
    ("what is shown?", ""), ("describe the lesion", ""),
])
def test_question_kind_gate_keeps_every_kind(question, kind):
    from vqa_gen.grounding.checks.relevance import _QUESTION_KINDS, _asks
    plain = next((name for name, pattern in _QUESTION_KINDS if pattern.search(question)), "")
    assert _asks(question) == plain == kind


@pytest.mark.parametrize(("question", "answer"), [
    ("Psoriasis vulgaris.", "psoriasis vulgaris"), ("Papule?", "PAPULE!"),
    ("Straße", "STRASSE"), ("  red   papule ", "Red, papule.")])
def test_a_question_repeating_its_answer_is_malformed(question, answer):
    v = GroundingFilter().check(PSO, question, answer)
    assert any(r.code == "malformed_question" and r.detail == "question repeats the answer"
               for r in v.reasons), v
