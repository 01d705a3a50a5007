"""Regression tests from issue 8: every false positive the issue names is kept, every miss is
rejected, and the score ranks partial support between full support and none."""

from __future__ import annotations

import pytest

from vqa_gen.grounding import FilterConfig, GroundingFilter

URT = "Urticaria. Multiple transient erythematous wheals on the trunk of a 30-year-old woman."
PYO = "Pyogenic granuloma. A friable red nodule on the finger of a 25-year-old man."
BCC = "Basal cell carcinoma on the nose of an 82-year-old woman."
MEL = "Melanoma. An asymmetric pigmented lesion with irregular borders on the back."
EAR = "A shiny papule on the left earlobe."


@pytest.fixture(scope="module")
def f() -> GroundingFilter:
    return GroundingFilter(FilterConfig())


@pytest.mark.parametrize(("caption", "question", "answer", "code"), [
    (URT, "What is the diagnosis?", "Pityriasis rosea", "unsupported_content"),
    (PYO, "What is the diagnosis?", "No", "answer_mismatch"),
    (PYO, "What is the location?", "Yes", "answer_mismatch"),
    (BCC, "Is the patient male?", "1.yes.", "sex_mismatch"),
    (MEL, "Describe the lesion.",
     "An asymmetric pigmented lesion on the back. No evidence of malignancy.",
     "negation_conflict"),
    (EAR, "Where is the lesion?", "On the shin.", "unsupported_content"),
    (EAR, "Where is the lesion?", "On the trunk.", "unsupported_content"),
    (PYO, "What is the most likely location?", "The most likely location of the lesions.",
     "answer_mismatch"),
    (PYO, "How many types of diagnosis are there?", "1", "text_leakage"),
    (PYO, "What is the demographics?", "H&E", "answer_mismatch"),
])
def test_misses_are_rejected(f, caption, question, answer, code):
    v = f.check(caption, question, answer)
    assert not v.passed and code in v.codes, v.to_dict()


@pytest.mark.parametrize(("caption", "question", "answer", "meta"), [
    ("The band recorded over 300 songs.", "How many songs did they record?", "300 songs.", None),
    ("He was a cast member of Saturday Night Live for four seasons.", "What show was he on?",
     "Saturday Night Live.", None),
    ("Joel and Ethan Coen are American filmmakers.",
     "What profession do Joel and Ethan have in common?", "Filmmaker.", None),
    (EAR, "Where is the lesion?", "On the left earlobe.", None),
    (PYO, "What is the demographics?", "A 25-year-old man.", None),
    (PYO, "How many nodules are there?", "One red nodule on the finger.", {"source":
                                                                              "fig 3.9"}),
    (MEL, "Is it malignant?", "Yes.", None),
])
def test_false_positives_are_kept(f, caption, question, answer, meta):
    v = f.check(caption, question, answer, meta=meta)
    assert v.passed and v.score > 0.9, v.to_dict()
    assert not {"number_mismatch", "negation_conflict", "site_mismatch",
                "unsupported_premise"} & set(v.codes)


@pytest.mark.parametrize(("caption", "question", "answer"), [
    # a choice question answered by picking one option: its words are all the question's
    ("A papule appeared first on the arm; the ulcer followed a week later.",
     "Which came first, the papule or the ulcer?", "The papule."),
    ("A plaque on the arm and a larger nodule on the leg.",
     "Which lesion is larger, the plaque on the arm or the nodule on the leg?",
     "The nodule on the leg."),
    # one entity of a long question is an answer, not a restatement of it
    ("Biopsy taken at the Boston Children's Hospital dermatology clinic.",
     "Which city is the dermatology clinic of the Children's Hospital in?", "Boston."),
])
def test_answers_drawn_from_the_question_are_not_restatements(f, caption, question, answer):
    v = f.check(caption, question, answer)
    assert v.passed and "answer_mismatch" not in v.codes, v.to_dict()


@pytest.mark.parametrize(("answer", "ok"), [
    ("IL-6 levels.", True), ("IL-8 levels.", False), ("SARS-CoV-3.", False),
    ("Raised IL-6 in SARS-CoV-2 infection.", True),
])
def test_names_with_digits_are_matched_exactly_not_as_numbers(f, answer, ok):
    """"il-6" is a name, not the number 6 (no number check against the caption's numbers),
    and its digits are its identity: "il-8" is not a spelling variant of it."""
    v = f.check("Patients with SARS-CoV-2 infection had raised IL-6 levels on day 3.",
                "What was found?", answer)
    assert v.passed is ok, v.to_dict()
    assert "number_mismatch" not in v.codes and "unsupported_number" not in v.codes


def test_a_name_with_an_apostrophe_still_meets_its_spelling_variants(f):
    """Only digits make a word a code matched as written; "o'mera" is a misspelt name."""
    v = f.check("Peter O'Meara played the part.", "Who played the part?", "O'Mera.")
    assert v.passed and not any("o'mera" in (r.evidence or "") for r in v.reasons), v.to_dict()


def test_provenance_metadata_is_not_evidence(f):
    v = f.check(PYO, "How large is the nodule?", "3.9 cm.", meta={"source": "fig 3.9"})
    assert not v.passed and "number_mismatch" not in v.codes
    assert "3.9" in (v.reasons[0].evidence or ""), v.to_dict()


def test_score_ranks_partial_support(f):
    """All supported > one invented detail > mostly invented > wholly invented: the score
    ranks, it does not collapse every unsupported word to ~0."""
    q = "Describe the lesion."
    full = f.check(MEL, q, "An asymmetric pigmented lesion with irregular borders.").score
    one = f.check(MEL, q, "An asymmetric pigmented lesion with irregular borders and "
                          "satellite papules.").score
    most = f.check(MEL, q, "An asymmetric keratotic plaque with satellite papules and "
                           "crusts.").score
    none = f.check(MEL, q, "Crusted vesicles with umbilication.").score
    assert full > one > most > none
    assert 0.3 < one < 0.95 and none < 0.1


def test_no_supported_content_word_still_ranks_by_shared_words(f):
    """An answer none of whose content words the evidence supports still ranks above one
    that shares no word with it at all (a HealthVer claim: "surfaces" is no content unit but
    is the evidence's word), by a margin too small to pass either."""
    ev = ("The most common coronaviruses may well survive or persist on surfaces for up to "
          "one month.")
    shares = f.check(ev, "", "the virus can stay on surfaces long enough to be a source of "
                             "transmission")
    none = f.check(ev, "", "Dogs can test positive for the virus.")
    assert not shares.passed and not none.passed
    assert 0.0 < shares.score <= 0.001 and none.score == 0.0, (shares.to_dict(), none.to_dict())


def test_rare_terms_weigh_more_than_common_words(f):
    """An invented specific term costs more than an invented common word."""
    q = "Describe the lesion."
    common = f.check(MEL, q, "A large asymmetric pigmented lesion with irregular borders.")
    specific = f.check(MEL, q, "An asymmetric pigmented lesion with irregular borders, "
                               "lentiginous.")
    assert common.score > specific.score


def test_a_row_without_question_is_graded_on_its_answer(f):
    ok = f.check(MEL, "", "An asymmetric pigmented lesion on the back.")
    bad = f.check(MEL, "", "A red scaly plaque on the scalp.")
    assert ok.passed and ok.score > 0.8, ok.to_dict()
    assert not bad.passed and "empty_question" not in bad.codes


def test_dialogue_turn_is_context_not_a_malformed_question(f):
    v = f.check(PYO, "I saw one of these on my friend's finger last week",
                "it is a pyogenic granuloma , a red nodule on the finger .")
    assert v.passed and "malformed_question" not in v.codes, v.to_dict()
    assert "malformed_question" in f.check(PYO, "Red nodule", "Yes.").codes


def test_negation_scope_ends_at_a_subordinate_clause(f):
    """"not ideal as it degrades the quality" does not deny "quality"."""
    cap = "The method is not ideal as it degrades the quality of the generated text."
    v = f.check(cap, "", "The method degrades the quality of the generated text.")
    assert v.passed and "negation_conflict" not in v.codes, v.to_dict()
    assert "negation_conflict" in f.check(cap, "", "The method is ideal.").codes


def test_diagnosis_answered_with_another_disease_despite_copied_stain(f):
    cap = ("Molluscum contagiosum (H&E, x100): endophytic lobules of keratinocytes containing "
           "large eosinophilic intracytoplasmic inclusions.")
    v = f.check(cap, "What is the diagnosis?", "Verruca vulgaris (H&E, x100)")
    assert not v.passed and "unsupported_diagnosis" in v.codes, v.to_dict()
    ok = f.check(cap, "What is the diagnosis?", "Molluscum contagiosum (H&E, x100).")
    assert ok.passed and "unsupported_diagnosis" not in ok.codes


def test_a_statement_with_a_verb_is_still_a_malformed_question(f):
    v = f.check("Dermoscopy of a Spitz naevus showing a starburst pattern.",
                "The morphology is a starburst pattern.", "A starburst pattern.")
    assert not v.passed and "malformed_question" in v.codes


def test_a_caption_sentence_as_question_is_malformed_however_long(f):
    cap = ("Pyogenic granuloma. A 6 mm friable, bright red, pedunculated papule on the right "
           "index finger of a 23-year-old man.")
    v = f.check(cap, "A 6 mm friable, bright red, pedunculated papule on the right index finger "
                     "of a 2", "Pyogenic granuloma.")
    assert not v.passed and "malformed_question" in v.codes


# -- false positives found on the public dev sets (session 3); texts written here --------

CASE = ("Two patients were seen on 14 March. The first had psoriasis on the elbows; "
        "the second, seen 6 days later, had eczema on the hands.")


def test_a_count_of_another_thing_is_no_number_mismatch(f):
    # "two patients" counts people; "14 March" and "6 days" are other kinds of number.
    v = f.check(CASE, "", "The two patients had psoriasis and eczema.")
    assert "number_mismatch" not in v.codes, v.to_dict()
    v = f.check(CASE, "", "Three patients had psoriasis.")
    assert "number_mismatch" in v.codes, v.to_dict()  # the same noun, another value


def test_a_bare_count_still_compares_with_the_caption(f):
    v = f.check("Two erythematous plaques on the shin.", "How many plaques are there?", "3")
    assert not v.passed and "number_mismatch" in v.codes, v.to_dict()


def test_list_markers_are_not_counts(f):
    answer = "Summary:\n1. Psoriasis on the elbows.\n2. Eczema on the hands.\n3. Seen in March."
    v = f.check(CASE, "", answer)
    assert not {"number_mismatch", "unsupported_number"} & set(v.codes), v.to_dict()


def test_a_small_spelled_count_weighs_less_than_an_invented_figure(f):
    cap = "Psoriasis on the elbows and eczema on the hands of a teacher."
    spelled = f.check(cap, "", "The teacher has two conditions: psoriasis and eczema.")
    figure = f.check(cap, "", "The teacher has 17 conditions: psoriasis and eczema.")
    assert spelled.score > figure.score, (spelled.to_dict(), figure.to_dict())


@pytest.mark.parametrize("caption", [
    "He does n't want surgery and prefers topical steroids.",  # tokenised contraction
    "He failed to respond to topical steroids and was given methotrexate.",
])
def test_implicit_and_split_negations_in_the_caption(f, caption):
    answer = ("He doesn't want surgery." if "surgery" in caption
              else "He did not respond to topical steroids.")
    v = f.check(caption, "", answer)
    assert "negation_conflict" not in v.codes, v.to_dict()


def test_an_unanswerable_question_blocks_without_lowering_the_score(f):
    cap = "Psoriasis. Well-demarcated silvery plaques on the extensor surfaces."
    v = f.check(cap, "What is the best treatment?", "Well-demarcated silvery plaques.")
    assert not v.passed and "unanswerable_question" in v.codes
    assert v.score > 0.9, v.to_dict()


# -- misses in the quick start's kept QA, re-judged in session 3 (sample captions) ---------

MOLLUSCUM = ("Molluscum contagiosum (H&E, x100): endophytic lobules of keratinocytes containing "
             "large eosinophilic intracytoplasmic inclusions (Henderson-Patterson bodies).")
PEMPHIGOID = "Bullous pemphigoid (H&E, x100). Subepidermal blister containing numerous eosinophils."


@pytest.mark.parametrize(("caption", "question", "answer"), [
    (MOLLUSCUM, "What is the distribution?", "Verruca vulgaris (H&E, x100)"),
    (PEMPHIGOID, "What is the morphology?", "Papillomatis (H&E, x100)."),
])
def test_a_copied_stain_and_magnification_do_not_support_an_invented_term(f, caption, question,
                                                                          answer):
    v = f.check(caption, question, answer)
    assert not v.passed and v.score < 0.45, v.to_dict()
    ok = f.check(caption, "What is the diagnosis?",
                 caption.split(" (")[0] + " (H&E, x100)")
    assert ok.passed and ok.score == 1.0, ok.to_dict()


def test_a_caption_claim_given_as_question_is_malformed_even_when_long(f):
    cap = ("Dermoscopic image of a pigmented basal cell carcinoma: arborizing vessels, large "
           "blue-grey ovoid nests and leaf-like areas. No pigment network.")
    v = f.check(cap, "A dermoscopic image of a pigmented basal cell carcinoma is a variant of a "
                     "pigmented basal cell carcinoma.", "Dermoscopic image of a pigmented basal "
                                                       "cell carcinoma")
    assert not v.passed and "malformed_question" in v.codes, v.to_dict()
    turn = f.check(cap, "My aunt had a carcinoma on her nose last year and it was removed.",
                   "A pigmented basal cell carcinoma shows arborizing vessels.")
    assert "malformed_question" not in turn.codes, turn.to_dict()


GA = ("Granuloma annulare (H&E, x100). Palisading histiocytes around foci of degenerated "
      "collagen and mucin in the mid dermis.")


def test_one_answer_given_to_several_questions_is_kept_once(f):
    """A small model answers every question of a record with the diagnosis: it fits one of
    them at most, and the rest teach a model to answer anything with it."""
    qs = ["What is the diagnosis?", "What is the distribution?", "What is the modality?"]
    vs = f.check_record(GA, [(q, "Granuloma annulare (H&E, x100)") for q in qs])
    assert [v.passed for v in vs] == [True, False, False]
    assert all("duplicate_answer" in v.codes for v in vs[1:])


def test_short_answers_may_repeat_across_questions(f):
    qs = ["Are histiocytes seen?", "Is mucin present?", "What magnification?"]
    vs = f.check_record(GA, list(zip(qs, ["Yes.", "Yes.", "x100"], strict=True)))
    assert not any("duplicate_answer" in v.codes for v in vs), [v.to_dict() for v in vs]


def test_a_blocked_duplicate_does_not_push_out_one_that_passes(f):
    # the treatment question is unanswerable from the image (blocked, its score untouched)
    pairs = [("What is the treatment of granuloma annulare?", "Granuloma annulare (H&E, x100)"),
             ("What is the diagnosis?", "Granuloma annulare (H&E, x100)")]
    first, second = f.check_record(GA, pairs)
    assert not first.passed and second.passed, (first.to_dict(), second.to_dict())


def test_an_answer_in_a_decoding_loop_is_rejected(f):
    loop = ("No, this condition is a skin condition that is a skin condition that is a skin "
            "condition that is a skin condition.")
    v = f.check(GA, "Is this condition a benign skin condition?", loop)
    assert not v.passed and "degenerate_answer" in v.codes
    fine = ("Palisading histiocytes surround foci of degenerated collagen and mucin in the mid "
            "dermis, the pattern of granuloma annulare at x100.")
    assert "degenerate_answer" not in f.check(GA, "Describe the histology.", fine).codes


@pytest.mark.parametrize("answer", ["Is it granuloma annulare?", "What do you see here?",
                                    'Palisading histiocytes? Or mucin?"'])
def test_an_answer_that_only_asks_back_is_rejected_with_its_score_kept(f, answer):
    v = f.check(GA, "What is the diagnosis?", answer)
    assert not v.passed and "answer_is_question" in v.codes, v.to_dict()
    reason = next(r for r in v.reasons if r.code == "answer_is_question")
    assert reason.penalty == 0.0  # blocks; the score still ranks the answer's support


@pytest.mark.parametrize("answer", ["Granuloma annulare. Did you know it is common?",
                                    "Is it granuloma annulare? Yes, at x100.",
                                    "Granuloma annulare (H&E, x100)."])
def test_an_answer_that_states_something_is_no_question(f, answer):
    assert "answer_is_question" not in f.check(GA, "What is the diagnosis?", answer).codes


MEL_H = ("Malignant melanoma (H&E, x200). Atypical melanocytes in nests and singly along the "
         "junction, with pagetoid spread.")


@pytest.mark.parametrize(("question", "answer"), [
    # from the quick start's kept pairs (session 13), scored 1.0
    ("The image type is a histopathology (microscope), is this a melanoma?",
     "No, this is a melanoma."),
    ("Is this a melanoma?", "No this is a melanoma"),
    ("Are the melanocytes atypical?", "No, the melanocytes are atypical."),
])
def test_a_no_that_then_says_yes_is_rejected_with_its_score_kept(f, question, answer):
    v = f.check(MEL_H, question, answer)
    assert not v.passed and "self_contradiction" in v.codes, v.to_dict()
    reason = next(r for r in v.reasons if r.code == "self_contradiction")
    assert reason.penalty == 0.0  # blocks; the score still ranks the answer's support


@pytest.mark.parametrize(("question", "answer"), [
    ("Is this a melanoma?", "No, this is melanoma in situ."),  # adds what the no is about
    ("Is this a benign lesion?", "No, this is a malignant melanoma."),
    ("Are the nests in the dermis and the junction?", "No, only along the junction."),
    ("Is there no pagetoid spread?", "No, there is pagetoid spread."),  # a double negative
    ("Is this a melanoma?", "No, it is not a melanoma."),  # says no throughout
    ("Is this a melanoma?", "Yes, this is a melanoma."),
])
def test_a_no_that_qualifies_or_denies_is_no_self_contradiction(f, question, answer):
    assert "self_contradiction" not in f.check(MEL_H, question, answer).codes


def test_a_yes_no_question_after_a_lead_in_clause_is_read_as_one(f):
    # "Based on the image, is this ...?" asks yes or no: a "No" there denies the caption's
    # diagnosis, a "Yes" affirms it (before, only a question opening with "is/does/..." was)
    no = f.check(MEL_H, "Based on the image, is this a melanoma?", "No.")
    assert "negation_conflict" in no.codes, no.to_dict()
    assert f.check(MEL_H, "Based on the image, is this a melanoma?", "Yes.").passed
    # a wh-question after a lead-in clause is still open: "No" does not answer it
    wh = f.check(MEL_H, "Based on the image, what is the diagnosis?", "No.")
    assert "answer_mismatch" in wh.codes, wh.to_dict()
    # a dialogue turn's question to the listener after a lead-in asks about the listener
    # (FaithDial: "That's interesting, do you know anything about X?" / "Yes, X is ...")
    assert f.analyser.qa("Based on the image, is this a melanoma?", "No.").yes_no
    assert not f.analyser.qa("That's interesting, do you know anything about wool?",
                             "Yes, wool comes from sheep.").yes_no


BCC_H = ("Basal cell carcinoma, nodular type (H&E, x40). Basaloid tumour nests with peripheral "
         "palisading and retraction artefact in the dermis.")


@pytest.mark.parametrize(("question", "answer", "ok"), [
    ("What is the morphology?", "Papillary cell carcinoma", False),  # another disease
    ("What is seen?", "A papillary carcinoma of the dermis.", False),
    ("What is the morphology?", "Nodular basal cell carcinoma", True),
    ("What is the morphology?", "Basaloid tumour nests with peripheral palisading.", True),
    # (the quick start, 2026-12-04: kept at 0.62) a disease the caption never names, made of
    # two of its words: "basaloid" (tumour nests) before "carcinoma" (basal cell carcinoma)
    ("The morphology of the cell is?", "Basaloid carcinoma.", False),
    ("What is the diagnosis?", "Basal cell carcinoma, nodular type", True),
])
def test_a_disease_renamed_by_an_unsupported_term_is_rejected_whatever_the_question(
        f, question, answer, ok):
    v = f.check(BCC_H, question, answer)
    assert v.passed is ok and ("unsupported_diagnosis" in v.codes) is not ok, v.to_dict()


STUDY = ("Elderly patients with atrial fibrillation were followed for five years. Warfarin "
         "lowered the rate of ischaemic stroke compared with aspirin, and major bleeding was "
         "similar in both groups.")


def test_repeating_the_question_earns_little_what_the_answer_adds_decides(f):
    # Both answers reuse the question's terms, which the evidence has; one adds what the
    # evidence says, the other adds an invented mechanism.
    q = "Does warfarin lower stroke in elderly patients with atrial fibrillation?"
    grounded = f.check(STUDY, q, "Warfarin lowered ischaemic stroke more than aspirin, with "
                                 "similar major bleeding.")
    invented = f.check(STUDY, q, "Warfarin lowers stroke in elderly patients with atrial "
                                 "fibrillation by dissolving cardiac thrombi through plasmin "
                                 "activation.")
    assert grounded.score > invented.score + 0.2, (grounded.to_dict(), invented.to_dict())


def test_an_invented_premise_the_answer_repeats_keeps_its_full_weight(f):
    # Only question words the evidence has weigh less: an ungrounded premise ("leg") repeated
    # by the answer is still the answer's own unsupported claim.
    v = f.check("A red plaque on the arm.", "What colour is the plaque on the leg?",
                "The plaque on the leg is red.")
    assert "leg" in (v.reasons[0].evidence or "") and v.score < 0.75, v.to_dict()


def test_given_weight_one_restores_plain_weighting():
    plain = GroundingFilter(FilterConfig(checks={"content": {"params": {"given_weight": 1.0}}}))
    q = "Does warfarin lower stroke in elderly patients with atrial fibrillation?"
    a = ("Warfarin lowers stroke in elderly patients with atrial fibrillation by dissolving "
         "cardiac thrombi through plasmin activation.")
    assert plain.check(STUDY, q, a).score > GroundingFilter().check(STUDY, q, a).score


def test_a_long_answer_negating_another_term_is_no_denial_of_the_question(f):
    q = "Does warfarin lower stroke in elderly patients with atrial fibrillation?"
    a = ("Warfarin lowered stroke compared with aspirin in elderly patients with atrial "
         "fibrillation over five years, in patients not on dialysis.")
    v = f.check(STUDY, q, a)
    assert "negation_conflict" not in v.codes and v.passed, v.to_dict()


@pytest.mark.parametrize("answer", ["It is not seen.", "Warfarin did not lower stroke in these "
                                    "elderly patients with atrial fibrillation."])
def test_a_short_negation_or_one_of_the_question_term_still_answers_no(f, answer):
    v = f.check(STUDY, "Does warfarin lower stroke in elderly patients?", answer)
    assert "negation_conflict" in v.codes, v.to_dict()


@pytest.mark.parametrize(("caption", "question", "answer"), [
    ("The chain runs about 40 drug stores, all of them in the state of Hawaii.",
     "In which state are the drug stores?", "Hawaii"),
    ("The magazine writes for readers who feel marginalised by their lifestyle choices.",
     "Which readers does the magazine write for, by lifestyle?", "Readers who feel marginalised"),
])
def test_a_topic_cue_the_caption_itself_uses_is_answerable(f, caption, question, answer):
    v = f.check(caption, question, answer)
    assert "unanswerable_question" not in v.codes and v.passed, v.to_dict()


def test_a_treatment_question_about_an_image_is_still_unanswerable(f):
    v = f.check(PYO, "Which drug treats this lesion?", "Silver nitrate")
    assert "unanswerable_question" in v.codes and not v.passed, v.to_dict()


BANDS = ("The Lanterns are a Canadian indie rock band from Vancouver. The Harbour Kings are an "
         "American rock band from Nashville.")


def test_no_to_a_question_about_all_of_several_things_is_no_negation_conflict(f):
    v = f.check(BANDS, "Are both The Lanterns and The Harbour Kings American rock bands?", "no")
    assert "negation_conflict" not in v.codes, v.to_dict()
    # one thing: the caption affirms every term, so "no" still conflicts
    v = f.check(BANDS, "Are The Harbour Kings an American rock band?", "no")
    assert "negation_conflict" in v.codes, v.to_dict()


VASCULITIS = ("Leukocytoclastic vasculitis (H&E, x200): fibrinoid necrosis of small dermal vessel "
              "walls, neutrophilic infiltrate with nuclear dust, and red cell extravasation.")
NAIL = "Periodic acid-Schiff stain (x400) of a nail clipping showing fungal hyphae."


@pytest.mark.parametrize(("caption", "question", "answer", "code"), [
    # the quick start's kept "1.": "cell" only qualifies "extravasation"
    (VASCULITIS, "How many cells are there?", "1.", "unsupported_number"),
    ("Multiple erythematous papules on the trunk.", "How many papules are there?", "1",
     "unsupported_number"),
    ("Two pink papules on the arm.", "How many papules are there?", "1", "number_mismatch"),
    ("Psoriasis plaques on the elbows.", "How many plaques are there?", "One plaque.",
     "unsupported_number"),
    ("Psoriasis plaques on the elbows.", "What is the number of plaques?", "One.",
     "unsupported_number"),
    ("Multiple nodules on the cheek.", "How many lesions are there?", "1", "unsupported_number"),
])
def test_a_one_answering_a_count_question_is_a_count_claim(f, caption, question, answer, code):
    v = f.check(caption, question, answer)
    assert not v.passed and code in v.codes, v.to_dict()


@pytest.mark.parametrize(("caption", "question", "answer"), [
    ("A solitary nodule on the cheek.", "How many nodules are there?", "1"),
    ("A nodule on the cheek.", "How many nodules are there?", "One."),
    ("Erythematous plaque on the elbow.", "How many plaques are visible?", "1"),
    ("A well-demarcated erythematous plaque on the knee.", "How many plaques are there?", "1"),
    (NAIL, "How many nails are there?", "1"),
    ("Two pink papules on the arm.", "How many papules are there?", "2"),
    ("Two pink papules on the arm.", "How many pink papules are there?", "Two."),
    # one nodule is one lesion
    ("A nodule on the cheek.", "How many lesions are there?", "1"),
])
def test_a_count_the_caption_states_is_kept_whole(f, caption, question, answer):
    v = f.check(caption, question, answer)
    assert v.passed and v.score == 1.0, v.to_dict()


def test_one_outside_a_count_question_stays_article_like(f):
    # "one" here says no more than "a lesion": not checked as a count
    v = f.check("Multiple erythematous papules on the trunk.", "What is on the trunk?",
                "One erythematous papule.")
    assert "unsupported_number" not in v.codes, v.to_dict()


def test_a_wordless_question_blocks_without_erasing_the_support_score(f):
    # ":)" as the user's turn of a dialogue: the pair fails, but its score still says how
    # well the evidence backs the answer (issue 8: blocking reasons keep the ranking)
    caption = "In the film, Princess Elsa has magical powers and accidentally hurts her sister."
    good = f.check(caption, ":)", "Princess Elsa has magical powers.")
    bad = f.check(caption, ":)", "Princess Elsa rules a desert kingdom of camels.")
    assert "empty_question" in good.codes and not good.passed, good.to_dict()
    assert good.score > 0.9 and good.score > bad.score + 0.3, (good.to_dict(), bad.to_dict())


STORY = ("Reaching the ice palace, the young man meets the old troll king, who tells him that only "
         "an act of true love can thaw a frozen heart. Kristoff rides back with the reindeer to "
         "the castle, where the prince leaves him outside; the prince reveals that he only "
         "wanted the throne, and he locks the door behind him while the storm grows and the "
         "kingdom waits for him to act. Then he rides out to find the queen alone on the "
         "frozen fjord, and the trolls sing of the winter that he brought on the mountain.")


def test_a_long_text_speaks_of_several_people_so_one_sex_in_it_is_no_mismatch(f):
    assert len(f.analyser.norm.view(STORY).tokens) > 80
    v = f.check(STORY, "What happens at the palace?",
                "Elsa becomes agitated and she freezes her sister Anna's heart.")
    assert "sex_mismatch" not in v.codes, v.to_dict()
    # a caption of one patient still conflicts
    v = f.check("Psoriasis on the elbow of a 40-year-old man.", "Who is the patient?",
                "A woman.")
    assert "sex_mismatch" in v.codes, v.to_dict()


def test_words_echoed_from_an_ungrounded_question_earn_no_support(f):
    # The LLM writes the question too: repeating its invented premise ("satellite papules")
    # supports nothing. The echo scores as if the question had not named them.
    caption = "Erythematous plaque on the elbow."
    answer = "Satellite papules around the plaque."
    echoed = f.check(caption, "Where are the satellite papules?", answer)
    plain = f.check(caption, "What else is seen?", answer)
    assert not echoed.passed and echoed.score <= plain.score + 1e-9, echoed.to_dict()
    # an echoed term the caption has is still supported
    v = f.check(caption, "Where is the plaque?", "The plaque is on the elbow.")
    assert v.passed and v.score > 0.9, v.to_dict()


@pytest.mark.parametrize(("caption", "answer"), [
    ("The infusion ran for 2.5 hours.", "Two and a half hours."),
    ("The infusion ran for 2.5 hours.", "Two and half hours."),
    ("A plaque of 1.5 cm.", "1 and a half cm."),
    ("Biopsy from a patient with COVID-19.", "A patient with COVID 19."),
    ("Serum IL-6 was raised.", "IL 6 was raised."),
    ("Patients with SARS-CoV-2 infection.", "SARS CoV 2 infection."),
    ("In the film, earth-199999 is the main universe.", "The main universe is earth -199999."),
    ("Type 2 diabetes with necrobiosis lipoidica.", "Type-2 diabetes."),
    ("Patients with COVID 19 were treated.", "COVID-19 patients."),
])
def test_a_number_written_another_way_is_the_same_number(f, caption, answer):
    # "and a half", and names with a number spaced or hyphenated otherwise than the caption
    v = f.check(caption, "What is described?", answer)
    assert v.passed and v.score > 0.95, v.to_dict()
    assert not {"number_mismatch", "unsupported_number"} & set(v.codes), v.to_dict()


@pytest.mark.parametrize(("caption", "answer", "code"), [
    ("The infusion ran for 2.5 hours.", "Three and a half hours.", "number_mismatch"),
    ("Serum IL-6 was raised.", "IL 8 was raised.", "unsupported_number"),
    ("Type 2 diabetes with necrobiosis lipoidica.", "Type 1 diabetes.", "number_mismatch"),
    ("Type 2 diabetes with necrobiosis lipoidica.", "Type-1 diabetes.", "number_mismatch"),
    ("Grade 3 squamous cell carcinoma.", "Grade 1 squamous cell carcinoma.", "number_mismatch"),
    ("Stage II melanoma.", "Stage I melanoma.", "number_mismatch"),
])
def test_a_labelled_one_is_a_value_not_an_article(f, caption, answer, code):
    # a bare "one" says no more than "a"; "type 1", "grade 1", "stage I" are claims
    v = f.check(caption, "What is described?", answer)
    assert not v.passed and code in v.codes, v.to_dict()


def test_the_content_score_leaves_unchecked_the_values_the_numbers_check_does():
    # `numbers.params.ignore_values` decides for both checks which bare values are no claim
    caption, answer = "A papule on the arm.", "One papule on the arm."
    default = GroundingFilter().check(caption, "What is seen?", answer)
    assert default.passed and default.score > 0.8, default.to_dict()
    strict_ones = GroundingFilter(FilterConfig.model_validate(
        {"checks": {"numbers": {"params": {"ignore_values": []}}}}))
    v = strict_ones.check(caption, "What is seen?", answer)
    content = [r for r in v.reasons if r.code == "unsupported_content"]
    assert "unsupported_number" in v.codes and content and "one" in (content[0].evidence or ""), \
        v.to_dict()


@pytest.mark.parametrize(("caption", "answer"), [
    ("Chilblain-like lesions in COVID-19.", "Chilblain-like lesions in coronavirus disease 2019."),
    ("Chilblain-like lesions in COVID-19.", "Chilblain-like lesions in COVID19."),
    ("Chilblain-like lesions in coronavirus disease 2019.", "Chilblain-like lesions in COVID-19."),
    ("Chilblain-like lesions in COVID-19.", "Chilblain-like lesions in a coronavirus disease."),
    ("Viral particles of 2019-nCoV.", "Viral particles of SARS-CoV-2."),
    # a claim names the disease where its evidence names the virus, and back (HealthVer)
    ("SARS-CoV-2 remained viable on plastic surfaces.", "COVID-19 remained viable on plastic."),
    ("Chilblain-like lesions in COVID-19.", "Chilblain-like lesions with SARS-CoV-2."),
])
def test_the_names_of_covid_are_one_name_and_no_year(f, caption, answer):
    # "coronavirus disease 2019" names the disease: its 2019 is no claimed number
    v = f.check(caption, "What is shown?", answer)
    assert v.passed and v.score > 0.95, v.to_dict()


def test_two_caption_words_written_as_one_are_supported(f):
    v = f.check("Leonardo DiCaprio in The Wolf of Wall Street.", "Which film?",
                "The Wolf of Wallstreet.")
    assert "wallstreet" not in str(v.to_dict()["reasons"]), v.to_dict()
    # not any concatenation: the two words must stand side by side in the caption
    v = f.check("A street near the wall.", "Which film?", "The Wolf of Wallstreet.")
    assert "wallstreet" in str(v.to_dict()["reasons"]), v.to_dict()


def test_a_fraction_in_words_is_no_count_to_mismatch(f):
    # "the second half" is a period of the match, not the count 0.5 that "two tries" differs from
    caption = ("Cuthbert scored a try before the break, and another early in the second half, "
               "as the Blues won.")
    v = f.check(caption, "How many tries did Cuthbert score?", "He scored two.")
    assert "number_mismatch" not in v.codes, v.to_dict()
    # a count against a count still mismatches
    v = f.check("Cuthbert scored three tries.", "How many tries did Cuthbert score?",
                "He scored two.")
    assert "number_mismatch" in v.codes, v.to_dict()


def test_an_ordinal_word_is_no_number_with_a_unit(f):
    # "eighth" was read as "eight" + the unit "h": 8 hours, which then stood as the evidence's
    # only duration against the age "aged 30" ("30 (caption: eighth)")
    caption = ("Clarkson, 30, joined St Mirren in July. St Mirren are eighth in the league, "
               "7 points clear.")
    assert [q.raw for q in f.caption_facts(caption).facts.numbers] == ["30", "7"]
    v = f.check(caption, "Who joined?", "Clarkson, aged 30, joined St Mirren in July.")
    assert not {"number_mismatch", "age_mismatch", "unsupported_number"} & set(v.codes), \
        v.to_dict()


@pytest.mark.parametrize(("caption", "answer"), [
    # tokenised text (dialogue corpora): "23 , 768" and "twenty - five" are one number
    ("As of November 2016 , it operates 23 , 768 locations worldwide .",
     "they have 23,768 locations worldwide ."),
    ("As of November 2016, it operates 23,768 locations worldwide.",
     "they have 23 , 768 locations worldwide ."),
    ("The band played for twenty - five years .", "They played for 25 years."),
    # a bound at the stated value restates it ("over 10 million" for "10 million")
    ("His first two albums both exceeded sales of 10 million copies.",
     "His first two albums sold over 10 million copies."),
    # ordinals in words, decades of years
    ("She was the winner of the fourth season of American Idol.", "She won the 4th season."),
    ("Brewing grew in the nineteenth century.", "Brewing grew in the 19th century."),
    ("It was the twenty-first edition.", "It was the 21st edition."),
    ("Country music originated in the early 1920s.", "It originated in the early 1920 ' s ."),
    ("Heavy metal began in the late 1960s.", "It began in the late 60's."),
])
def test_a_number_the_evidence_states_otherwise_is_no_mismatch(f, caption, answer):
    v = f.check(caption, "Tell me more.", answer)
    assert not {"number_mismatch", "unsupported_number"} & set(v.codes), v.to_dict()


def test_labelled_values_compare_only_under_the_same_label(f):
    # "type 2" is no value of the grade: a wrong grade is compared with the caption's grade
    caption = "Type 2 diabetes with a grade 1 ulcer of the foot."
    v = f.check(caption, "What is the grade?", "A grade 1 ulcer.")
    assert "number_mismatch" not in v.codes, v.to_dict()
    for answer, evidence in (("A grade 3 ulcer.", "3 (caption: 1)"),
                             ("Type 3 diabetes.", "3 (caption: 2)")):
        v = f.check(caption, "What is shown?", answer)
        assert [r.evidence for r in v.reasons if r.code == "number_mismatch"] == [evidence], \
            v.to_dict()


def test_an_age_is_compared_with_ages_and_years_only(f):
    # "3 weeks" is no age that mismatches "a 21-year-old", nor "aged 30" a "three minutes"
    v = f.check("A 21-year-old woman with a rash.", "How long?", "The rash lasted 3 weeks.")
    assert "number_mismatch" not in v.codes and "age_mismatch" not in v.codes, v.to_dict()
    v = f.check("He won the race by three minutes.", "Who won?", "He won, aged 30.")
    assert "number_mismatch" not in v.codes, v.to_dict()
    # an age the caption never states is invented: it weighs as much as a wrong one
    invented = [r for r in v.reasons if r.code == "unsupported_number"]
    assert invented and invented[0].penalty >= 0.8, v.to_dict()
    v = f.check("A 21-year-old woman with a rash.", "Who?", "A 25-year-old woman.")
    assert "age_mismatch" in v.codes, v.to_dict()


def test_a_decade_is_an_age_only_when_someone_has_it(f):
    # "the late 60's" of rock music is no age; "in her sixties" is
    caption = "Rock music from the late 60's, played by a woman in her sixties."
    assert [q.dim for q in f.caption_facts(caption).facts.numbers] == ["era", "age"]


@pytest.mark.parametrize(("caption", "answer", "code"), [
    ("She was the winner of the fourth season of American Idol.", "She won the 5th season.",
     "unsupported_number"),
    ("Heavy metal began in the late 1960s.", "It began in the 80's.", "number_mismatch"),
])
def test_another_ordinal_or_decade_is_not(f, caption, answer, code):
    v = f.check(caption, "Tell me more.", answer)
    assert code in v.codes, v.to_dict()


@pytest.mark.parametrize(("caption", "question", "answer"), [
    ("Philately is the study of stamps and postal history.", "Do you collect stamps?",
     "i ' ve never heard of stamps , but i do know that philately is the study of stamps ."),
    ("Peanut butter has peanuts as its main ingredient.", "Do you like peanut butter?",
     "I didn't know peanut butter had peanuts as its main ingredient!"),
])
def test_not_knowing_denies_nothing_that_follows(f, caption, question, answer):
    v = f.check(caption, question, answer)
    assert "negation_conflict" not in v.codes, v.to_dict()


def test_a_denial_after_a_knowing_verb_still_denies():
    # "no known history of melanoma" denies the melanoma ("no" is no verbal negation)
    f = GroundingFilter()
    v = f.check("Melanoma on the back of a 60-year-old man.", "Describe the history.",
                "There is no known history of melanoma.")
    assert "negation_conflict" in v.codes, v.to_dict()


def test_way_back_is_no_body_site(f):
    v = f.check("Headphones were developed from the telephone receiver held in the hand.",
                "How old are headphones?", "They were developed way back in the 19th century.")
    assert "site_mismatch" not in v.codes, v.to_dict()


PV = ("Pemphigus vulgaris (H&E, x200): suprabasal acantholysis with a 'row of tombstones' "
      "appearance of the basal keratinocytes.")


@pytest.mark.parametrize("answer", ["Affects the skin", "The skin."])
def test_a_location_question_answered_with_no_place_at_all_is_rejected(f, answer):
    # the quick start's "What is the location?" -> "Affects the skin" was kept at 0.70
    v = f.check(PV, "What is the location?", answer)
    assert not v.passed and "answer_mismatch" in v.codes, v.to_dict()


@pytest.mark.parametrize("answer", ["Suprabasal.", "In the epidermis, above the basal layer.",
                                    "Basal keratinocytes"])
def test_a_location_answer_with_a_place_is_no_mismatch(f, answer):
    assert "answer_mismatch" not in f.check(PV, "Where is the acantholysis?", answer).codes


MATCH = ("McManus netted from close range to open the scoring and Forbes' deflected strike doubled "
         "the lead. A shot by McAusland pulled Alloa back into the game before half-time. But "
         "another McManus finish and one by Johnstone late on ensured a comfortable win.")


def test_a_score_the_evidence_never_states_is_unsupported_not_a_mismatch(f):
    # "4-1" was read as the counts 4 and 1 and mismatched "one" (goal by Johnstone)
    v = f.check(MATCH, "", "Morton defeated Alloa 4-1.")
    assert "number_mismatch" not in v.codes and "unsupported_number" in v.codes, v.to_dict()


def test_a_score_is_compared_with_the_evidence_scores(f):
    caption = "Morton beat Alloa 2-1 at Cappielow, with two goals from McManus."
    assert "number_mismatch" in f.check(caption, "", "Morton beat Alloa 3-1.").codes
    v = f.check(caption, "", "Morton beat Alloa 2-1.")
    assert not {"number_mismatch", "unsupported_number"} & set(v.codes), v.to_dict()


def test_a_count_of_times_is_no_mismatch_with_other_counts(f):
    # "six-time champion" compared as a bare six with the caption's "one" and a 130-yard hole
    caption = ("Stepping up to the tee on the 130-yard fourth, Nicklaus saw his shot drop into the "
               "hole. He is one of five men to complete the career grand slam.")
    v = f.check(caption, "", "Nicklaus, a six-time Masters champion, aced the 130-yard fourth.")
    assert "number_mismatch" not in v.codes, v.to_dict()
    assert "number_mismatch" in f.check(caption, "", "He aced the 150-yard fourth.").codes


@pytest.mark.parametrize(("caption", "answer"), [
    ("Young stars create bright paths in the galaxy's arms.",
     "Young stars create shining paths in the spiral arms."),  # "shining" is no shin
    ("Starbucks met a boycott in Italy, where a barista burnt her palm.",
     "Starbucks faced a boycott when it opened in Italy."),  # "faced" is no face
    ("Lordstown will recall 19 pickups; a worker hurt his arm at the plant.",
     "Lordstown will take back 19 pickups."),  # "take back" is no back
])
def test_verb_forms_of_site_words_are_no_sites(f, caption, answer):
    assert "site_mismatch" not in f.check(caption, "", answer).codes


def test_a_site_named_is_still_a_site(f):
    v = f.check("A plaque on the shin.", "Where is the plaque?", "On the face.")
    assert "site_mismatch" in v.codes, v.to_dict()


def test_money_compares_with_money_in_its_scale(f):
    caption = "Capital One earned $3.1 billion; the plan costs $500 and covers three branches."
    assert "number_mismatch" in f.check(caption, "", "Capital One earned $3.1 million.").codes
    v = f.check(caption, "", "Capital One earned $3,100 million.")
    assert not {"number_mismatch", "unsupported_number"} & set(v.codes), v.to_dict()
    # a count is not compared with sums of money ("$500" is no count of branches)
    assert "number_mismatch" not in f.check("The plan costs $500.", "", "It has 3 tiers.").codes


@pytest.mark.parametrize(("caption", "answer"), [
    ("The remote was unsuitable for older users.", "The remote was suitable for older users."),
    ("An invasive carcinoma of the breast.", "A non-invasive carcinoma of the breast."),
    ("Margins were clear.", "Margins were unclear."),
    # "symmetric" was a spelling variant of "asymmetric" (fuzzy ratio 0.95)
    (MEL, "A symmetric pigmented lesion on the back."),
])
def test_a_word_with_a_negating_prefix_contradicts_the_caption(f, caption, answer):
    v = f.check(caption, "", answer)
    assert not v.passed and "contradicted_content" in v.codes, v.to_dict()


def test_a_prefixed_opposite_is_no_spelling_variant(f):
    # "demotivates" was supported by "motivates" (fuzzy ratio 0.9, and a shared substring)
    v = f.check("A manager motivates workers to perform well.", "",
                "A manager demotivates workers.")
    assert "demotivates" in (v.reasons[0].evidence or ""), v.to_dict()


@pytest.mark.parametrize(("caption", "answer"), [
    ("In most countries it is a public holiday.", "In most countries it is apublic holiday."),
    ("Smokers in hospital are at higher risk.", "Smokers are at higher risk than non-smokers."),
])
def test_typos_and_contrasts_are_no_prefixed_opposites(f, caption, answer):
    assert "contradicted_content" not in f.check(caption, "", answer).codes


@pytest.mark.parametrize(("caption", "answer"), [
    ("Agents that reach good outcomes in social dilemmas.",
     "Agents that reach bad outcomes in social dilemmas."),
    ("The company reported a profit for the quarter.", "The company reported a loss."),
    ("Shares rise after the report.", "Shares fall after the report."),
])
def test_general_opposites_contradict(f, caption, answer):
    assert "contradicted_content" in f.check(caption, "", answer).codes


@pytest.mark.parametrize("answer", [
    "wow . there is a town in alaska where the mayor is a cat",
    "Yeah apparently lol! There is a town in Alaska whose mayor is a cat, etc.",
    "Oh, hey, honestly a cat is mayor of a town in Alaska",
])
def test_interjections_and_discourse_markers_are_no_claims(f, answer):
    # BEGIN / Topical-Chat replies: "wow", "lol", "apparently" were content words the
    # evidence lacked, so a faithful reply scored like a partly invented one
    caption = "Talkeetna, a town in Alaska, has had a cat as its mayor for years."
    v = f.check(caption, "What about the town in Alaska?", answer)
    said = " ".join(f"{r.detail} {r.evidence}" for r in v.reasons)
    assert v.passed and "0/" in said, v.to_dict()  # no answer word unsupported
    for word in ("wow", "lol", "apparently", "etc", "oh", "hey", "honestly"):
        assert word not in said.split(", "), v.to_dict()


@pytest.mark.parametrize(("caption", "answer", "supported"), [
    ("Algeria is the tenth-largest country in the world.",
     "algeria is the 10th largest country in the world .", True),  # (Q2)
    ("Algeria is the tenth-largest country in the world.",
     "algeria is the 9th largest country in the world .", False),
    ("Algeria is the 10th largest country in the world.",
     "Algeria is the tenth-largest country in the world.", True),
    ("Algeria is the 10th largest country in the world.",
     "Algeria is the tenth largest country in the world.", True),
    ("Algeria is the 10th largest country in the world.",
     "Algeria is the ninth largest country in the world.", False),
])
def test_an_ordinal_in_words_is_the_same_ordinal_in_digits(f, caption, answer, supported):
    v = f.check(caption, "", answer)
    assert v.passed is supported, v.to_dict()
    if supported:
        assert "0/" in " ".join(r.detail for r in v.reasons), v.to_dict()


@pytest.mark.parametrize(("caption", "answer", "contradicted"), [
    ("She won the race for the first time in 2010.", "She won the race for the fourth time.",
     True),
    ("The rash blanched within 30 seconds of pressure.", "The first rash blanched.", False),
    ("Verruca on the third finger of a child.", "A wart on the fourth finger.", True),
    # an ordinal the answer names too, or one of something else, is no swap
    ("Verruca on the third finger of a child.", "It first appeared on the third finger.",
     False),
    ("Verruca on the third finger of a child.", "The wart first appeared in childhood.", False),
])
def test_one_ordinal_for_another_contradicts(f, caption, answer, contradicted):
    assert ("contradicted_content" in f.check(caption, "", answer).codes) is contradicted


@pytest.mark.parametrize(("caption", "answer", "supported"), [
    ("The Beatles were an English rock band formed in Liverpool in 1960.",
     "the beatles formed in 1960 in liverpool , england .", True),  # (Q2)
    ("A Japanese company based in Kyoto.", "The company is based in Japan.", True),
    ("A Japanese company based in Kyoto.", "The company is based in Korea.", False),
    ("She polished the nail plate.", "She is from Poland.", False),  # polish is no Polish
])
def test_a_place_and_its_adjective_support_each_other(f, caption, answer, supported):
    v = f.check(caption, "", answer)
    said = " ".join(f"{r.detail} {r.evidence}" for r in v.reasons)
    assert ("0/" in said or not v.reasons) is supported, v.to_dict()


@pytest.mark.parametrize(("answer", "mismatch"), [
    # the quick start's embedded model, kept at 0.50 once
    ("Dermoscopic keratosis is a skin condition that affects only one person, but it affects "
     "a person's family, as it is a family of inheritance.", True),
    ("A man in his sixties.", False), ("An older adult.", False), ("A 68-year-old.", False),
])
def test_who_is_the_patient_asks_for_age_or_sex(f, answer, mismatch):
    caption = ("Dermoscopy of a seborrhoeic keratosis on the temple of a 68-year-old man: "
               "multiple milia-like cysts, comedo-like openings and a cerebriform pattern.")
    v = f.check(caption, "Who is the patient?", answer)
    assert ("answer_mismatch" in v.codes) is mismatch, v.to_dict()
    if mismatch:
        assert "asks for an age or sex" in v.reasons[-1].detail


def test_a_statement_for_a_generated_question_is_malformed_however_long(f):
    # the quick start's model wrote "The condition is not rare, but it is very rare." as a
    # question; as a dialogue turn (no QA type) a long statement is context, in a generated
    # pair (a QA type) it is no question
    caption = "Dermoscopy of a seborrhoeic keratosis on the temple of a 68-year-old man."
    q, a = "The condition is not rare, but it is very rare.", "Seborrhoeic keratosis."
    assert "malformed_question" in f.check(caption, q, a, qa_type="diagnosis").codes
    assert "malformed_question" not in f.check(caption, q, a).codes
    assert "malformed_question" in f.check(caption, "Keratosis", a, qa_type="other").codes
    assert "malformed_question" not in f.check(caption, "What is it?", a, qa_type="other").codes


@pytest.mark.parametrize(("caption", "answer"), [
    # (MedHallu) an ellipsis: the modifier a few words before the disease name still names it
    ("Markers that tell nonalcoholic (NASH) from alcoholic steatohepatitis (ASH) are lacking.",
     "Laboratory markers tell nonalcoholic steatohepatitis from the alcoholic form."),
    # (MedHallu) not written together in the answer either: "vagal body paragangliomas"
    ("Thirty tumours were measured, carotid body and vagal body tumours among them. Head and "
     "neck paragangliomas grow slowly.", "The growth of vagal body paragangliomas is slow."),
])
def test_caption_words_before_a_disease_name_that_the_caption_may_join_rename_nothing(
        f, caption, answer):
    v = f.check(caption, "", answer)
    assert "unsupported_diagnosis" not in v.codes, v.to_dict()


@pytest.mark.parametrize(("caption", "question", "answer", "renamed"), [
    ("Chronic plaque psoriasis on the elbows.", "What is shown?", "An exacerbation of psoriasis.",
     False),
    # (HealthVer) a preposition ends the phrase: the word before it names no disease
    ("Measures for COVID-19 disease prevention.", "", "The mitigation of COVID-19 disease.",
     False),
    ("Basal cell carcinoma on the nose.", "What is the morphology?", "Papillary cell carcinoma",
     True),
    ("Basal cell carcinoma on the nose.", "What is shown?", "A papillary carcinoma of the nose.",
     True),
])
def test_a_word_before_a_disease_renames_it_only_within_its_phrase(f, caption, question,
                                                                   answer, renamed):
    v = f.check(caption, question, answer)
    assert ("unsupported_diagnosis" in v.codes) is renamed, v.to_dict()


# The quick start's embedded model, 2026-12-03 (fourth session): three pairs kept at 1.0 / 0.85
_PSORIASIS = ("Psoriasis vulgaris. Well-demarcated erythematous plaques with silvery-white scale "
              "on the extensor aspect of both elbows in a 54-year-old man.")
_HAEMATOMA = ("Dermoscopy of a subungual haematoma of the left great toenail: homogeneous "
              "red-purple to black pigmentation with peripheral globules.")
_PEMPHIGOID = ("Bullous pemphigoid (H&E, x100). Subepidermal blister containing numerous "
               "eosinophils.")


@pytest.mark.parametrize(("caption", "question", "answer", "mismatch"), [
    # a distribution question is a location question: a colour alone does not answer it
    (_PSORIASIS, "What is the most likely distribution?", "White.", True),
    (_PSORIASIS, "What is the distribution?", "Symmetrical, on both elbows.", False),
    (_PSORIASIS, "What is the most likely distribution of the lesions?",
     "On the extensor aspect of both elbows.", False),
    # the kind of image answers no question about something in it
    (_HAEMATOMA, "How are the vessels arranged?", "Dermoscopic image.", True),
    (_HAEMATOMA, "Where is the lesion?", "A dermoscopic image.", True),
    (_HAEMATOMA, "What kind of image is this?", "Dermoscopic image.", False),
    (_HAEMATOMA, "What is this?", "A dermoscopic image.", False),
    (_PEMPHIGOID, "What stain is used?", "H&E.", False),
    (_HAEMATOMA, "What is the dermoscopic image?",
     "The dermoscopic image is a red-purple to black pigmentation.", False),
    # a magnification states no age
    (_PEMPHIGOID, "Who is the patient?", "H&E, x100", True),
    (_PEMPHIGOID, "What is the demographic?", "Bullous pemphigoid (H&E, x100)", True),
    # a stain or magnification is no place (the quick start, 2026-12-03, fifth session: kept at
    # 0.61 for a Kaposi sarcoma)
    (_PEMPHIGOID, "What is the location?", "Verruca, nodular stage (H&E, x100)", True),
    (_PEMPHIGOID, "Where is the blister?", "Bullous pemphigoid, x100", True),
    (_PEMPHIGOID, "Where is the blister?", "Subepidermal (H&E, x100).", False),
    (_PEMPHIGOID, "What is the location of the eosinophils?", "In the blister, at x100.", False),
    # a diagnosis question answered with the kind of image only (a closed vocabulary now:
    # the old pattern also took "Clinical psoriasis", a diagnosis, for an image type)
    (_PSORIASIS, "What is the diagnosis?", "Clinical photograph.", True),
    (_PSORIASIS, "What is the condition?", "A clinical photograph of the lesion", True),
    (_PEMPHIGOID, "What is the diagnosis?", "H&E (histopathology)", True),
    (_PSORIASIS, "What is the diagnosis?", "Clinical psoriasis", False),
])
def test_an_answer_of_the_wrong_kind_is_a_mismatch(f, caption, question, answer, mismatch):
    v = f.check(caption, question, answer, qa_type="other")
    assert ("answer_mismatch" in v.codes) is mismatch, v.to_dict()


def test_a_refusal_naming_the_image_is_no_image_type_answer(f):
    v = f.check(_HAEMATOMA, "How are the vessels arranged?", "I cannot see the image.")
    assert "refusal" in v.codes and "answer_mismatch" not in v.codes, v.to_dict()


def test_the_count_of_unsupported_words_never_exceeds_the_words_judged(f):
    # a "Yes" makes the question's terms the answer's claim: they are counted as judged too
    # (the detail read "2/0 answer content word(s)" before)
    v = f.check(GA, "Are the histiocytes arranged around the nerves and vessels?", "Yes.")
    reason = next(r for r in v.reasons if r.code == "unsupported_content")
    missing, judged = map(int, reason.detail.split()[0].split("/"))
    assert 0 < missing <= judged, reason.detail


_SPITZ = ("Dermoscopic view of a Spitz naevus in a 9-year-old child showing a starburst pattern "
          "with peripheral streaks.")


@pytest.mark.parametrize(("question", "answer", "vacuous"), [
    # the quick start's kept pairs (2026-12-03, fourth session): 0.70 and 1.0
    ("Does the morphology have a sex?", "Yes.", True),
    ("Is the spritz a diagnosis?", "No.", True),
    ("Is this an image?", "Yes", True),
    ("Is this a Spitz naevus?", "Yes.", False),
    ("Are there streaks?", "Yes.", False),
    ("Is the patient a child?", "Yes.", False),
    ("Are there 3 streaks?", "No.", False),  # a count is something in the image
    ("Is the Spitz naevus a diagnosis?", "Yes, a Spitz naevus.", False),  # says something
    # what a word means (the quick start: "What is a histopathology?" / "Basal cell
    # carcinoma.", kept at 1.0)
    ("What is a dermoscopy?", "Spitz naevus.", True),
    ("What is the dermoscopic pattern?", "A starburst pattern.", False),
    ("What is a starburst pattern?", "Peripheral streaks.", False),
])
def test_a_yes_or_no_to_a_question_about_nothing_in_the_image_is_rejected(
        f, question, answer, vacuous):
    v = f.check(_SPITZ, question, answer)
    assert ("vacuous_question" in v.codes) is vacuous, v.to_dict()
    if vacuous:
        assert not v.passed
        assert next(r for r in v.reasons if r.code == "vacuous_question").penalty == 0.0



_SEB_K = ("Dermoscopy of a seborrhoeic keratosis on the temple of a 68-year-old man: multiple "
          "milia-like cysts, comedo-like openings and a cerebriform pattern.")
_BLUE_N = ("Blue naevus. Dermoscopy shows homogeneous steel-blue pigmentation without a network, "
           "dots or globules.")


@pytest.mark.parametrize(("caption", "question", "answer", "code", "rejected"), [
    # the quick start's kept pairs, generated fresh (2026-12-03, fifth session), 0.80-1.0
    (_SEB_K, "What is the condition?", "Dermoscopic keratosis is a skin condition that is "
     "characterized by the presence of seborrhoeic keratoses on the skin.",
     "general_knowledge", True),
    (_SEB_K, "Who is the patient?", "Dermoscopic keratosis is a skin condition that affects "
     "only males.", "general_knowledge", True),
    (_BLUE_N, "What is the mode of distribution?",
     "Dermoscopy shows homogeneous steel-blue pigmentation.", "answer_mismatch", True),
    (_BLUE_N, "Distribution?", "Location distribution", "answer_mismatch", True),
    (_BLUE_N, "Diagnosis?", "No.", "answer_mismatch", True),  # an elliptical open question
    (_BLUE_N, "What is the diagnosis?", "Diagnosis.", "answer_mismatch", True),
    # what the image shows, said plainly, stays
    (_SEB_K, "What is the condition?", "A seborrhoeic keratosis on the temple.",
     "general_knowledge", False),
    (_BLUE_N, "Diagnosis?", "Blue naevus.", "answer_mismatch", False),
    (_BLUE_N, "Colour?", "Steel-blue.", "answer_mismatch", False),
])
def test_definitions_and_kind_only_answers_from_the_quick_start(f, caption, question, answer,
                                                                code, rejected):
    v = f.check(caption, question, answer)
    assert (code in v.codes) is rejected and v.passed is not rejected, v.to_dict()


def test_answer_mismatch_and_duplicates_block_without_lowering_the_support_score(f):
    # The VQA-only rules block; the score keeps saying how well the caption backs the answer
    # (issue 8: they "do not destroy the ranking of the support score").
    alone = f.check(GA, "Which cells surround the collagen?", "Palisading histiocytes.")
    assert alone.passed
    wrong_kind = f.check(GA, "What colour are the histiocytes?", "Palisading histiocytes.")
    assert not wrong_kind.passed and "answer_mismatch" in wrong_kind.codes
    assert wrong_kind.score == alone.score
    pairs = [("Which cells surround the collagen?", "Palisading histiocytes."),
             ("Which cells surround the collagen?", "Palisading histiocytes around mucin.")]
    verdicts = f.check_record(GA, pairs)
    worse = 0 if verdicts[1].passed else 1
    assert not verdicts[worse].passed and "duplicate_question" in verdicts[worse].codes
    assert verdicts[worse].score == f.check(GA, *pairs[worse]).score


# A bound in the evidence ("over 200 patients", "up to a month") states no value inside it: an
# answer that names one claims a precision the evidence lacks. It was taken as supported, so
# "over 200" backed any larger number at all, a year included (DialFact, refuted replies: a
# sales figure tripled, "as of 2018" for "as of 2012", both kept at 0.95).
_COHORT = "As of 2012, the registry had enrolled over 200 patients with pemphigus."


@pytest.mark.parametrize(("answer", "number"), [
    ("The registry had enrolled over 900 patients.", "900"),
    ("It had enrolled 650 patients.", "650"),
])
def test_a_value_inside_a_stated_bound_is_unsupported_but_no_mismatch(f, answer, number):
    base = f.check(_COHORT, "How many patients?", "It had enrolled over 200 patients.")
    assert "unsupported_number" not in base.codes, base.to_dict()
    v = f.check(_COHORT, "How many patients?", answer)
    assert [r.evidence for r in v.reasons if r.code == "unsupported_number"] == [number], \
        v.to_dict()
    assert "number_mismatch" not in v.codes and v.score < base.score, v.to_dict()


def test_a_value_outside_a_stated_bound_still_mismatches(f):
    v = f.check("Each plaque is larger than 15 mm.", "How large?", "About 5 mm.")
    assert "number_mismatch" in v.codes, v.to_dict()
    v = f.check("Each plaque is larger than 15 mm.", "How large?", "Each larger than 15 mm.")
    assert not {"number_mismatch", "unsupported_number"} & set(v.codes), v.to_dict()


def test_a_sum_written_with_its_currency_after_is_money(f):
    # "more than 211 million dollars" restates "$211 million" (in q2 it had been backed only
    # by a year beside it, "1989", which the bound rule above no longer lets back a count)
    for caption in ("The film grossed $211 million worldwide.",
                    "Released in 1989, the film grossed $211 million worldwide."):
        v = f.check(caption, "How much?", "It grossed more than 211 million dollars.")
        assert not {"number_mismatch", "unsupported_number"} & set(v.codes), v.to_dict()
    v = f.check("The film grossed $211 million worldwide.", "How much?",
                "It grossed 300 million euros.")
    assert "number_mismatch" in v.codes, v.to_dict()


@pytest.mark.parametrize(("caption", "answer", "word"), [
    # another month or weekday than the one the evidence names (DialFact: "born in the month of
    # December" for "born November 15", kept at 0.76)
    ("The rash began on 15 November 2019.", "It began in December 2019.", "december"),
    ("She was admitted on Monday with fever.", "She was admitted on Friday with fever.",
     "friday"),
    # the opposite superlative (DialFact: "the smallest contributor" for "the largest")
    ("Chlorophyll is by far the largest contributor to green in nature.",
     "Chlorophyll is the smallest contributor to green.", "smallest"),
    ("Plants are mainly multicellular eukaryotes.", "Plants are mainly unicellular.",
     "unicellular"),
])
def test_another_month_weekday_or_the_opposite_superlative_contradicts(f, caption, answer,
                                                                       word):
    v = f.check(caption, "Tell me more.", answer)
    assert [r.evidence for r in v.reasons if r.code == "contradicted_content"] == [word], \
        v.to_dict()


@pytest.mark.parametrize(("caption", "answer"), [
    ("The rash began on 15 November 2019.", "It began in November."),
    ("Symptoms may improve in June.", "They may improve in June."),  # "may": no month
    ("The rash may spread.", "It appeared in June."),  # unsupported, not contradicted
    ("Stay at least 2 metres away; most cases spread indoors.", "Most cases spread indoors."),
])
def test_calendar_words_and_superlatives_that_do_not_contradict(f, caption, answer):
    v = f.check(caption, "Tell me more.", answer)
    assert "contradicted_content" not in v.codes, v.to_dict()


@pytest.mark.parametrize(("caption", "answer", "name"), [
    # another name where the caption names someone (DialFact, refuted replies: "Sam Wilson" for
    # "Sam Phillips" kept at 0.83; "lead vocalist Freddie Macaurie" for "Chad Kroeger" at 0.95)
    ("The biopsy was read by pathologist Anna Keller at the Mayo Clinic.",
     "The biopsy was read by pathologist Anna Brandt at the Mayo Clinic.", "brandt"),
    ("The biopsy was read by pathologist Anna Keller at the Mayo Clinic.",
     "The biopsy was read by pathologist Maria Brandt at the Mayo Clinic.", "maria, brandt"),
    ("Patients were recruited at the Mayo Clinic and treated with dupilumab.",
     "Patients were recruited at the Cleveland Clinic and treated with dupilumab.",
     "cleveland"),
])
def test_another_name_in_the_captions_place_contradicts_it(f, caption, answer, name):
    v = f.check(caption, "Tell me more.", answer)
    assert [r.evidence for r in v.reasons if r.code == "contradicted_content"] == [name], \
        v.to_dict()


@pytest.mark.parametrize(("caption", "answer"), [
    # a name added beside the caption's, or a name after a shared last word ("United")
    ("The biopsy was read by pathologist Keller.", "It was read by pathologist Anna Keller."),
    ("He has played for Galway United and Finn Harps.", "He signed for Torquay United."),
    # a hyphenated word that holds the caption's name
    ("Fans of the new Sims 2 game met online.", "A new Sims-centric podcast began."),
    ("A cream from BestCare was applied.", "The Best option was a cream from BestCare."),
])
def test_names_that_are_no_swap(f, caption, answer):
    v = f.check(caption, "Tell me more.", answer)
    assert "contradicted_content" not in v.codes, v.to_dict()


@pytest.mark.parametrize(("caption", "answer", "evidence"), [
    # another number in the caption's own words: a year or a count of another thing is no
    # mismatch by kind, but in the same words it replaces the caption's (DialFact: "as of
    # 2018" for "as of 2012" kept at 0.97; "began there in 1950" for 1954)
    (_COHORT, "As of 2018, the registry had enrolled over 200 patients.", "2018 (caption: 2012)"),
    ("Her symptoms began there in 1954, after the move.", "Her symptoms began there in 1950.",
     "1950 (caption: 1954)"),
])
def test_another_number_in_the_captions_own_words_mismatches(f, caption, answer, evidence):
    v = f.check(caption, "Tell me more.", answer)
    assert [r.evidence for r in v.reasons if r.code == "number_mismatch"] == [evidence], \
        v.to_dict()


def test_a_number_beside_the_captions_is_no_swap(f):
    # the caption's number is written too: an added number, not a replaced one
    v = f.check("Symptoms began in 1954.", "Tell me more.", "Symptoms began in 1954 and 1950.")
    assert "number_mismatch" not in v.codes, v.to_dict()


@pytest.mark.parametrize(("caption", "answer"), [
    # a negated relation ("did not influence", "no difference between") denies nothing about
    # its terms, which the evidence affirms elsewhere (MedHallu and HealthVer conclusions
    # had been rejected for "no survival", "no covid-19")
    ("Overall survival was 61% at five years. Global management needed fewer procedures.",
     "Global management needed fewer procedures but did not influence overall survival."),
    ("Hydroxychloroquine does not improve clinical outcomes in COVID-19.",
     "COVID-19 patients taking hydroxychloroquine do not benefit."),
    ("Survival at five years was recorded for both groups of patients.",
     "There was no significant difference in survival between the groups of patients."),
    # a place after a denied thing is not denied ("no pustules on the nose" had been a
    # conflict with the caption's nose)
    ("Red papules on the nose of a 40-year-old man.", "There are no pustules on the nose."),
    # a reply's "no" before a name denies nothing about the name (BEGIN, CMU-DoG)
    ("Kevin returns home and rigs the house with numerous booby traps.",
     "no Kevin has to fend off the burglars himself, he places booby traps all around"),
    # a caption that asks whether something holds states neither answer
    ("We studied whether the endoscope increased the rate of shunt infection.",
     "The endoscope did not increase the rate of shunt infection."),
])
def test_a_negated_relation_is_no_conflict_with_its_terms(f, caption, answer):
    v = f.check(caption, "", answer)
    assert "negation_conflict" not in v.codes, v.to_dict()


@pytest.mark.parametrize(("caption", "answer", "evidence"), [
    # the verb itself is what the caption affirms
    ("Vitamin D supplementation improved survival.",
     "Vitamin D supplementation did not improve survival.", "no improve"),
    # verbs of presence and report deny their object
    ("The lesion shows ulceration.", "The lesion does not show ulceration.",
     "no ulceration"),
    ("The article names the author, Jane Doe.", "The article does not mention Jane Doe.",
     "no jane, no doe"),
    # (summedits: a negation inserted into the evidence's own sentence)
    ("The recall fixes an issue that could result in a loss of propulsion.",
     "The recall fixes an issue that could not result in a loss of propulsion.",
     "no result"),
])
def test_a_denied_relation_or_presence_the_caption_affirms_still_conflicts(
        f, caption, answer, evidence):
    v = f.check(caption, "", answer)
    assert [r.evidence for r in v.reasons if r.code == "negation_conflict"] == [evidence], \
        v.to_dict()


def test_a_bound_after_its_number_is_a_bound(f):
    # "two or more layers" counts layers and holds any larger count; it had been read as a
    # bare "two" and mismatched against the evidence's "5 per 100" (HealthVer)
    v = f.check("The critical mask adherence is 5 per 100 when 80% wear masks.", "",
                "Wear masks with two or more layers.")
    assert "number_mismatch" not in v.codes, v.to_dict()
    v = f.check("Five nodules on the arm.", "", "Three or fewer nodules on the arm.")
    assert "number_mismatch" in v.codes, v.to_dict()


@pytest.mark.parametrize(("caption", "answer"), [
    # two words the evidence writes as one (CMU-DoG: "di caprio" had been unsupported)
    ("cast : Leonardo DiCaprio as Dom Cobb, a professional thief.", "it has di caprio in it"),
    ("He posted the photo on Facebook.", "He posted the photo on face book."),
])
def test_two_words_the_caption_writes_as_one_are_supported(f, caption, answer):
    v = f.check(caption, "", answer)
    assert v.passed and not any(r.evidence for r in v.reasons
                                if r.code == "unsupported_content"), v.to_dict()


def test_two_unrelated_words_are_not_joined(f):
    # only the evidence's own word counts: "face" and "book" alone back nothing here
    v = f.check("He posted the photo online.", "", "He posted the photo on face book.")
    assert "unsupported_content" in v.codes, v.to_dict()


def test_a_yes_or_no_to_a_negated_question_is_no_polarity_conflict(f):
    # "Is beer not an alcoholic drink?" / "yes it is, ..." (q2): a "yes" or "no" to a negated
    # question may agree with the negation or with the thing negated; it had been read as
    # "beer is not alcoholic" and rejected
    cap = "Beer is one of the most widely consumed alcoholic drinks in the world."
    v = f.check(cap, "Is beer not an alcoholic drink?",
                "yes it is , it is the most consumed alcoholic drink in the world")
    assert "negation_conflict" not in v.codes, v.to_dict()
    v = f.check(cap, "Is beer an alcoholic drink?", "No.")
    assert "negation_conflict" in v.codes, v.to_dict()


@pytest.mark.parametrize("caption", [
    # quick start of 2026-12-04: "pagetoid spread" had counted as the caption talking about
    # contagion, so a question about the mode of transmission was answerable
    "Superficial spreading melanoma (H&E, x100). Pagetoid spread of atypical melanocytes "
    "throughout the epidermis; Breslow thickness 0.8 mm, no ulceration.",
    "Cellulitis: a spreading erythema on the lower leg.",
])
def test_a_spread_within_the_tissue_is_no_talk_of_contagion(f, caption):
    v = f.check(caption, "What is the mode of transmission?",
                "Breslow thickness 0.8 mm, no ulceration.")
    assert "unanswerable_question" in v.codes, v.to_dict()


def test_a_caption_about_spread_between_people_answers_a_contagion_question(f):
    v = f.check("Scabies: burrows on the finger webs; it had spread to household contacts.",
                "Is it transmitted to other people?", "Yes, to household contacts.")
    assert "unanswerable_question" not in v.codes, v.to_dict()


SEB = ("Dermoscopy of a sebaceous hyperplasia on the nose showing central yellow-white lobules "
       "with crown vessels.")


def test_a_generated_question_that_names_its_answer_is_rejected(f):
    # quick start of 2026-12-04: kept at 1.0, though the question gives the answer away
    q = "The image is a dermoscopic image of a sebaceous hyperplasia, what is it?"
    a = "Dermoscopy of a sebaceous hyperplasia on the nose"
    v = f.check(SEB, q, a, qa_type="open")
    assert not v.passed and "answer_mismatch" in v.codes and v.score == 1.0, v.to_dict()
    # a question someone else wrote (a dialogue turn, an audited dataset) is left alone
    assert f.check(SEB, q, a).passed


@pytest.mark.parametrize(("question", "answer"), [
    ("Where is the sebaceous hyperplasia?", "Sebaceous hyperplasia on the nose"),
    ("What is the diagnosis?", "Sebaceous hyperplasia"),
    ("What is the diagnosis of this sebaceous lesion?", "Sebaceous hyperplasia"),
    ("What does this sebaceous hyperplasia show?", "Central yellow-white lobules."),
])
def test_a_question_that_names_its_subject_and_asks_for_more_is_kept(f, question, answer):
    v = f.check(SEB, question, answer, qa_type="open")
    assert v.passed, v.to_dict()


DF = ("Dermatofibroma (H&E, x40). Dermal spindle-cell proliferation with collagen trapping at "
      "the periphery and overlying epidermal hyperplasia.")
PSO = ("Psoriasis vulgaris. Well-demarcated erythematous plaques with silvery-white scale on the "
       "extensor elbows.")


@pytest.mark.parametrize(("caption", "question", "answer"), [
    # quick starts of 2026-12-04: kept at 1.0, every word in the caption
    (DF, "The morphology of the image is?", "Dermatofibroma"),
    (BCC, "What is the morphology?", "Basal cell carcinoma."),
    (DF, "What is the morphology?", "Dermatofibroma (H&E, x40)"),
    (BCC, "What does the lesion look like?", "Basal cell carcinoma."),
    (PSO, "What is the distribution?", "Psoriasis vulgaris"),
])
def test_a_question_about_looks_or_place_answered_with_only_the_diagnosis_is_rejected(
        f, caption, question, answer):
    v = f.check(caption, question, answer)
    assert not v.passed and "answer_mismatch" in v.codes and v.score == 1.0, v.to_dict()


@pytest.mark.parametrize(("caption", "question", "answer"), [
    (DF, "What is the morphology?", "Dermal spindle-cell proliferation with collagen trapping."),
    # a description around the name: not written so in the caption
    ("Basal cell carcinoma: a pearly nodule.", "What does it look like?",
     "A pearly basal cell carcinoma nodule."),
    # a question that also asks for a diagnosis
    (PSO, "What condition has this appearance?", "Psoriasis"),
    (PSO, "What is the diagnosis?", "Psoriasis vulgaris"),
    (PSO, "What is the distribution?", "Psoriasis vulgaris on the extensor elbows"),
])
def test_a_diagnosis_with_what_was_asked_or_to_a_diagnosis_question_is_kept(
        f, caption, question, answer):
    v = f.check(caption, question, answer)
    assert "answer_mismatch" not in v.codes, v.to_dict()


LP = ("Lichen planus (H&E, x200). Band-like lymphocytic infiltrate at the dermo-epidermal "
      "junction, wedge-shaped hypergranulosis and saw-tooth rete ridges.")


def test_a_disease_the_caption_does_not_name_is_invented_whatever_the_question(f):
    # quick start of 2026-12-04: kept at 0.59 (a location question, so the diagnosis-question
    # rule did not apply)
    v = f.check(LP, "What is the location?", "Adenocarcinoma of the dermo-epidermal junction.")
    assert not v.passed and "unsupported_diagnosis" in v.codes, v.to_dict()
    assert f.check(LP, "What is the location?", "At the dermo-epidermal junction.").passed


@pytest.mark.parametrize("answer", [
    "A band-like infiltrate with an aroma of the junction.",  # a word with a disease's ending
    "A band-like infiltrate, as in the Sonoma atlas.",  # a name written capitalised
    "A band-like infiltrate; the prognosis is at the junction.",
])
def test_words_with_a_disease_ending_that_name_no_disease(f, answer):
    v = f.check(LP, "What is seen?", answer)
    assert "unsupported_diagnosis" not in v.codes, v.to_dict()


HALO = ("Dermoscopy of a halo naevus: a central naevus with globular pattern surrounded by a "
        "symmetric white depigmented rim.")


def test_a_generated_question_about_a_finding_the_caption_lacks_is_an_invented_premise(f):
    # quick start of 2026-12-04: kept at 0.92; the caption mentions no vessels
    q, a = "How are the vessels arranged?", "As a central naevus surrounded by a white rim."
    v = f.check(HALO, q, a, qa_type="open")
    assert not v.passed and "unsupported_premise" in v.codes, v.to_dict()
    assert [r.evidence for r in v.reasons if r.code == "unsupported_premise"] == ["vessels"]
    # a question someone else wrote is judged by its answer, as before
    assert "unsupported_premise" not in f.check(HALO, q, a).codes


@pytest.mark.parametrize(("question", "answer"), [
    ("What surrounds the naevus?", "A symmetric white depigmented rim."),
    ("What colour is the rim?", "White."),
    ("What is the pattern of the globules?", "A globular pattern."),  # "globular": a globule
    ("What does the image show regarding dermoscopy?", "Dermoscopy of a halo naevus"),
    ("Where is the tumour?", "A central naevus."),  # a word for any lesion presupposes none
])
def test_a_generated_question_about_what_the_caption_has_is_no_invented_premise(
        f, question, answer):
    v = f.check(HALO, question, answer, qa_type="open")
    assert "unsupported_premise" not in v.codes, v.to_dict()


SSM = ("Superficial spreading melanoma on the upper back of a 47-year-old woman. The lesion is "
       "asymmetric, 14 mm in diameter. No ulceration.")
SCC = ("Squamous cell carcinoma of the lower lip in a 71-year-old man. A hyperkeratotic, crusted "
       "nodule, 2 cm in diameter, with ulceration.")


@pytest.mark.parametrize(("caption", "answer"), [
    # quick start of 2026-12-04 (seed 11): a count answered with the caption's size, kept at 1.0
    (SSM, "14."),
    (SCC, "2 lesions."),
])
def test_a_count_is_not_backed_by_a_measurement(f, caption, answer):
    v = f.check(caption, "How many lesions are there?", answer)
    assert not v.passed and "unsupported_number" in v.codes, v.to_dict()


@pytest.mark.parametrize(("caption", "question", "answer"), [
    (SCC, "What is the size of the nodule?", "2 cm."),
    (SCC, "How big is the nodule?", "2."),  # a size, not a count
    (SSM, "How many years old is the patient?", "47."),  # ages and durations are counted
    ("Three pink papules on the arm.", "How many papules are there?", "3."),
])
def test_a_count_or_a_size_the_caption_states_is_backed(f, caption, question, answer):
    v = f.check(caption, question, answer)
    assert v.passed and "unsupported_number" not in v.codes, v.to_dict()


def test_who_is_the_most_likely_patient_asks_for_an_age_or_sex(f):
    # quick start of 2026-12-04 (seed 11): "Urticaria." kept at 1.0
    cap = "Urticaria. Pale pink wheals on the trunk of a 30-year-old woman."
    v = f.check(cap, "Who is the most likely patient?", "Urticaria.")
    assert not v.passed and "answer_mismatch" in v.codes, v.to_dict()
    assert f.check(cap, "Who is the most likely patient?", "A 30-year-old woman.").passed


def test_a_location_answered_with_a_disease_name_holding_a_place_word(f):
    # quick start of 2026-12-04 (seed 11): "basal" had read as a place (kept at 1.0)
    cap = ("Basal cell carcinoma, nodular type (H&E, x40). Basaloid tumour nests with "
           "peripheral palisading in the dermis.")
    v = f.check(cap, "What is the location?", "Basal cell carcinoma.")
    assert not v.passed and "answer_mismatch" in v.codes, v.to_dict()
    assert f.check(cap, "What is the location?", "In the dermis.").passed


def test_what_kind_of_disease_it_is_is_general_knowledge(f):
    # quick start of 2026-12-04 (seed 23): kept at 0.47
    cap = ("Dermoscopy of a benign compound naevus: regular brown pigment network fading at "
           "the periphery, with a few central globules.")
    v = f.check(cap, "How does this condition affect the body?",
                "It causes a benign compound naevus. The condition is a genetic disorder.")
    assert not v.passed and "general_knowledge" in v.codes, v.to_dict()
    # a caption that says so backs it
    v = f.check("Epidermolysis bullosa, a genetic disorder: blisters on the hands.",
                "What is it?", "Epidermolysis bullosa is a genetic disorder.")
    assert "general_knowledge" not in v.codes, v.to_dict()


def test_a_definition_keeps_its_whole_cue(f):
    # the kind-of-disease cue must not cut the definition cue short: "caused" is the part of
    # it the evidence lacks (HealthVer: a COVID-19 claim against "Covid19 infection began ...")
    v = f.check("Covid19 infection began in Wuhan (Hubei, China) in December, 2019.", "",
                "Coronavirus disease (COVID-19) is an infectious disease caused by a newly "
                "discovered coronavirus")
    assert [r.evidence for r in v.reasons if r.code == "general_knowledge"] == [
        "is an infectious disease caused"], v.to_dict()


ACK = ("Dermoscopy of actinic keratosis on the forehead: a 'strawberry' pattern with "
       "erythematous pseudo-network.")


def test_a_generated_count_question_answered_with_no_count_is_a_mismatch(f):
    # quick start of 2026-12-04 (seed 23): kept at 1.0
    v = f.check(ACK, "How many types are there?",
                "Dermatoscopy of actinic keratosis on the forehead", qa_type="open")
    assert not v.passed and "answer_mismatch" in v.codes, v.to_dict()


@pytest.mark.parametrize("answer", ["Multiple.", "A solitary lesion.", "None.", "Both."])
def test_a_count_in_words_answers_a_count_question(f, answer):
    v = f.check(ACK, "How many lesions are there?", answer, qa_type="open")
    assert "answer_mismatch" not in v.codes, v.to_dict()


# Five quick-start runs refiltered on 2026-12-04 (session 19), the kept pairs judged one by one:
# the misses below were kept.
LM = "Lentigo maligna on the left cheek of a 76-year-old woman. Dermoscopy reveals grey dots."
SK = ("Dermoscopy of a seborrhoeic keratosis on the temple of a 68-year-old man: milia-like "
      "cysts and a cerebriform pattern.")
SPZ = ("Dermoscopic view of a Spitz naevus in a 9-year-old child showing a starburst pattern "
       "with symmetric peripheral streaks.")


@pytest.mark.parametrize(("caption", "question", "answer"), [
    (LM, "What is the morphology?", "Lentigo maligna on the left cheek of a 76-year-old woman."),
    (SK, "What is the morphology?", "Seborrhoeic keratoses on the temple of a 68-year-old man."),
    (SPZ, "What is the type of morphology?", "Dermoscopic view of a Spitz naevus in a child."),
    (SPZ, "What is the location of this image?", "A dermoscopic view of a Spitz naevus in a "
                                                 "child."),
    ("Dermatofibroma on the left shin.", "The type of morphology is?", "Dermatofibroma on the "
                                                                        "left"),
    ("Blue naevus. Dermoscopy shows homogeneous steel-blue pigmentation.",
     "How does the image look?", "The image appears to be a dermoscopic image."),
    # (seed 41: kept at 1.0; "malignant" says how it behaves, not how it looks)
    ("Dermoscopy of an invasive melanoma on the right calf showing irregular streaks.",
     "How does the melanoma affect the skin?", "Malignant melanoma."),
])
def test_looks_or_place_answered_with_the_name_the_patient_or_the_image_type(
        f, caption, question, answer):
    v = f.check(caption, question, answer, qa_type="open")
    assert not v.passed and "answer_mismatch" in v.codes, v.to_dict()


@pytest.mark.parametrize(("caption", "question", "answer"), [
    (LM, "What is the morphology?", "Grey dots."),
    (SK, "What is the morphology?", "Milia-like cysts and a cerebriform pattern."),
    (LM, "Where is the lesion?", "On the left cheek."),
    (SPZ, "What is the morphology?", "A starburst pattern with symmetric peripheral streaks."),
    ("Blue naevus. Dermoscopy shows homogeneous steel-blue pigmentation.",
     "How does the lesion look?", "Homogeneous steel-blue pigmentation."),
    (LM, "What is the diagnosis?", "Lentigo maligna on the left cheek."),
])
def test_looks_or_place_answered_with_looks_or_place_are_kept(f, caption, question, answer):
    v = f.check(caption, question, answer, qa_type="open")
    assert v.passed and "answer_mismatch" not in v.codes, v.to_dict()


def test_the_caption_title_is_a_name_only_in_generated_pairs(f):
    # "Lentigo maligna" has no disease ending: only the caption's opening name makes it one,
    # which is read only where the model wrote the question (not "Chicago" in a Wikipedia
    # sentence answering "Where ...?")
    v = f.check(LM, "What is the morphology?", "Lentigo maligna on the left cheek.")
    assert "answer_mismatch" not in v.codes, v.to_dict()
    v = f.check("Chicago is the largest city in Illinois.", "Where was the film shot?",
                "Chicago.")
    assert "answer_mismatch" not in v.codes, v.to_dict()


@pytest.mark.parametrize(("caption", "question", "answer", "detail"), [
    ("Dermoscopy of actinic keratosis on the forehead: a 'strawberry' pattern.",
     "What kind of image is this?", "Dermoscopy of actinic keratosis on the forehead: a",
     "the answer breaks off mid-phrase"),
    ("Dermoscopic image of a pigmented basal cell carcinoma: arborizing vessels.",
     "What is the diagnosis?", "Dermoscopic image of a pigmented basal cell carcinoma is a "
     "type of dermoscopic image of a pigmented basal cell carcinoma",
     "the answer says the same thing twice"),
    ("Dermoscopy of a benign compound naevus: regular brown pigment network.",
     "What is the disease?", "A benign compound naevus is normal and normal in color.",
     "the answer says the same thing twice"),
])
def test_a_generated_answer_broken_off_or_said_twice_is_degenerate(
        f, caption, question, answer, detail):
    v = f.check(caption, question, answer, qa_type="open")
    assert not v.passed, v.to_dict()
    assert [r.detail for r in v.reasons if r.code == "degenerate_answer"] == [detail], v.to_dict()
    # a text someone else wrote is not judged so
    assert "degenerate_answer" not in f.check(caption, question, answer).codes


@pytest.mark.parametrize("answer", [
    "On the left side of the nose and on the left side of the cheek.",  # no specific term
    "A case of hepatitis A",  # a name, not an article
    "Bigger and bigger plaques.",
    "A papule on the nose.",
])
def test_repeats_and_endings_that_are_not_degenerate(f, answer):
    cap = ("A papule on the left side of the nose and on the left side of the cheek, a case "
           "of hepatitis A.")
    v = f.check(cap, "What is shown?", answer, qa_type="open")
    assert "degenerate_answer" not in v.codes, v.to_dict()


@pytest.mark.parametrize("question", [
    "What is the type?", "What is the mode?", "What is the domain?", "How is the pathology?",
    "How is this image?", "How is the dermoscopic image?", "How is it?"])
def test_a_generated_question_too_vague_to_answer(f, question):
    cap = "Dermoscopy of a halo naevus: a central naevus surrounded by a white rim."
    v = f.check(cap, question, "Dermoscopy of a halo naevus.", qa_type="open")
    assert not v.passed and "vacuous_question" in v.codes, v.to_dict()
    assert "vacuous_question" not in f.check(cap, question, "Dermoscopy of a halo naevus.").codes


@pytest.mark.parametrize("question", [
    "What is the type of image?", "How is the lesion distributed?", "How is it measured?",
    "How are the vessels arranged?", "What is the diagnosis?", "What is the distribution?"])
def test_questions_that_ask_something_are_not_vague(f, question):
    cap = "Dermoscopy of a halo naevus: a central naevus surrounded by a white rim."
    v = f.check(cap, question, "A white rim.", qa_type="open")
    assert "vacuous_question" not in v.codes, v.to_dict()


def test_how_a_lesion_evolves_is_prognosis(f):
    cap = "Dermoscopy of an invasive melanoma: an atypical pigment network."
    v = f.check(cap, "How does the melanoma evolve?", "Abnormal pigment network",
                qa_type="open")
    assert not v.passed and "unanswerable_question" in v.codes, v.to_dict()
    v = f.check("An evolving melanoma: a new atypical network at follow-up.",
                "How does the melanoma evolve?", "A new atypical network.", qa_type="open")
    assert "unanswerable_question" not in v.codes, v.to_dict()




def test_a_generated_answer_naming_a_finding_the_caption_lacks(f):
    # quick start (session 8's run): kept at 0.53
    answer = ("Papules (localized hyaluronan aggregation), the morphology of which is "
              "suprabasal acantholysis with a row of tombstones.")
    v = f.check(PV, "What is the morphology?", answer, qa_type="open")
    assert not v.passed, v.to_dict()
    assert [r.evidence for r in v.reasons if r.code == "unsupported_finding"] == ["papules"]
    # a text someone else wrote keeps its graded score
    assert "unsupported_finding" not in f.check(PV, "What is the morphology?", answer).codes


@pytest.mark.parametrize(("caption", "answer"), [
    (PV, "Suprabasal acantholysis with a row of tombstones."),
    ("Bullous pemphigoid. Tense bullae on the thighs.", "Tense blisters."),  # a synonym
    ("Urticaria. Pale pink wheals on the trunk.", "Wheals, no vesicles."),  # denied, not named
])
def test_a_generated_answer_naming_the_caption_findings_is_kept(f, caption, answer):
    v = f.check(caption, "What is the morphology?", answer, qa_type="open")
    assert v.passed and "unsupported_finding" not in v.codes, v.to_dict()


KS = ("Kaposi sarcoma, nodular stage (H&E, x200). Spindle cells forming slit-like vascular "
      "spaces with extravasated erythrocytes.")
SSM_H = ("Superficial spreading melanoma (H&E, x100). Pagetoid spread of atypical "
         "melanocytes throughout the epidermis; Breslow thickness 0.8 mm, no ulceration.")


@pytest.mark.parametrize(("caption", "question", "answer"), [
    (KS, "What is the distribution?", "Involving extravasated erythrocytes."),  # (seed 41: 0.90)
    (SSM_H, "What is the distribution?", "Breslow thickness 0.8 mm, no ulceration."),  # (0.81)
    ("Dermatofibroma on the left shin. Dermoscopy shows a central white scar-like patch.",
     "How is the disease distributed?", "Dermatofibroma is a disease of dermoscopic operation."),
])
def test_a_generated_location_question_answered_with_no_place_or_spread(
        f, caption, question, answer):
    v = f.check(caption, question, answer, qa_type="open")
    assert not v.passed and "answer_mismatch" in v.codes, v.to_dict()


@pytest.mark.parametrize(("caption", "answer"), [
    (SSM_H, "Pagetoid spread of atypical melanocytes throughout the epidermis."),
    ("Herpes zoster. Grouped vesicles in a dermatomal distribution on the chest.", "Dermatomal."),
    ("Vitiligo. Symmetrical depigmented macules on the hands.", "Symmetrical."),
    ("Basal cell carcinoma (H&E, x40). Basaloid tumour nests with peripheral palisading.",
     "Basaloid tumour nests with peripheral palisading."),
])
def test_a_distribution_answered_with_a_spread_or_place_is_kept(f, caption, answer):
    v = f.check(caption, "What is the distribution?", answer, qa_type="open")
    assert v.passed and "answer_mismatch" not in v.codes, v.to_dict()
    # and a location question someone else wrote is judged by the old, narrower rule
    assert "answer_mismatch" not in f.check(
        KS, "What is the distribution?", "Involving extravasated erythrocytes.").codes


# A seventh quick-start run (seed 53), judged before these rules: 28 kept, 20 acceptable,
# 2 weak, 6 bad. Four of the bad ones:
SK2 = ("Dermoscopy of a seborrhoeic keratosis on the temple of a 68-year-old man: milia-like "
       "cysts and a cerebriform pattern.")
BN = "Blue naevus. Dermoscopy shows homogeneous steel-blue pigmentation without a network."


@pytest.mark.parametrize(("caption", "question", "answer", "code"), [
    (SK2, "What is the morphology?", "Dermoscopic lesions on the temple of a 68-year-old man.",
     "answer_mismatch"),  # only where and who: nothing of its looks (kept at 0.59)
    ("Dermoscopy of actinic keratosis on the forehead: a 'strawberry' pattern.",
     "What is the morphology?", "A", "answer_mismatch"),  # (kept at 1.0)
    (BN, "What is the diagnosis?", "Dermatoscopic image showing homogeneous steel-blue "
     "pigmentation without a network.", "answer_mismatch"),  # a description, no disease
    ("Tinea corporis: an annular plaque with an active scaly border on the right thigh.",
     "What type of disease is it?", "An annular plaque with an active scaly border on the "
     "right thigh.", "answer_mismatch"),
    ("Seborrhoeic keratosis (H&E, x40): acanthotic, papillomatous, hyperkeratotic epidermis.",
     "What is the morphology?", "Papillomatous hyperkeratotic hyperkeratotic epidermis",
     "degenerate_answer"),
])
def test_seed_53_misses(f, caption, question, answer, code):
    v = f.check(caption, question, answer, qa_type="open")
    assert not v.passed and code in v.codes, v.to_dict()


@pytest.mark.parametrize(("caption", "question", "answer"), [
    (BN, "What is the diagnosis?", "Blue naevus."),
    (BN, "What kind of image is this?", "A dermoscopic (dermatoscopic) image."),  # one word?
    ("Tinea corporis: an annular plaque on the right thigh.", "What is the diagnosis?",
     "Tinea corporis."),
    ("Tinea corporis: an annular plaque on the right thigh.", "What is the diagnosis?",
     "A fungal infection of the skin."),  # a disease in general words
    ("Violaceous flat-topped papules on the wrist: lichen planus.", "What is the diagnosis?",
     "Lichen planus."),  # the caption opens with a finding, so its name is not read there
    ("A 45-year-old man with lichen planus on the wrist.", "What is the diagnosis?",
     "Lichen planus."),  # nor with the patient
    ("Violaceous flat-topped papules on the wrist: lichen planus.", "What is the morphology?",
     "Violaceous flat-topped papules."),
    ("Urticaria. Pale wheals on the trunk; no vesicles.", "How many vesicles are there?",
     "None."),  # a count in a function word
])
def test_seed_53_guards(f, caption, question, answer):
    v = f.check(caption, question, answer, qa_type="open")
    assert not {"answer_mismatch", "degenerate_answer"} & set(v.codes), v.to_dict()


# An eighth run (seed 67), held out, judged on the code before these two rules: 32 kept,
# 26 acceptable, 3 weak, 3 bad.
def test_a_location_is_not_answered_by_how_the_cells_are_arranged(f):
    cap = ("Basal cell carcinoma, nodular type (H&E, x40). Basaloid tumour nests with "
           "peripheral palisading in the dermis.")
    v = f.check(cap, "What is the location?", "Basaloid tumour nests.", qa_type="open")
    assert not v.passed and "answer_mismatch" in v.codes, v.to_dict()
    v = f.check(cap, "What is the distribution?", "Basaloid tumour nests.", qa_type="open")
    assert "answer_mismatch" not in v.codes, v.to_dict()  # (an arrangement is a spread)


def test_which_and_what_ask_the_same(f):
    cap = "Dermoscopy of a subungual haematoma of the left great toenail."
    questions = ["What is the correct type of image?", "Which is the most accurate type of "
                 "image?", "What is the most accurate type of image?"]
    vs = f.check_record(cap, [(q, "Dermoscopic image") for q in questions])
    assert ["duplicate_question" in v.codes for v in vs].count(True) == 1, [
        v.to_dict() for v in vs]




def test_a_morphology_answered_with_a_layer_of_the_section(f):
    # held-out run of the final code (seed 79): kept at 1.0
    v = f.check(LP, "What is the morphology?", "Dermo-epidermal junction.", qa_type="open")
    assert not v.passed and "answer_mismatch" in v.codes, v.to_dict()
    v = f.check(LP, "What is the morphology?", "Band-like lymphocytic infiltrate at the "
                "dermo-epidermal junction.", qa_type="open")
    assert v.passed and "answer_mismatch" not in v.codes, v.to_dict()


# A tenth run (seed 97), judged before these rules: 37 kept, 26 acceptable, 5 weak, 6 bad.
KS2 = ("Kaposi sarcoma, nodular stage (H&E, x200). Spindle cells forming slit-like vascular "
       "spaces with extravasated erythrocytes.")


@pytest.mark.parametrize("question", [
    "Is the disease Kaposi sarcoma?", "Is this lesion a Kaposi sarcoma?",
    "Is the condition Kaposi sarcoma?"])
def test_no_to_the_captions_own_disease_is_a_contradiction(f, question):
    # kept at 1.0: "disease" is not in the caption, which kept the "No" from the check
    v = f.check(KS2, question, "No.")
    assert not v.passed and "negation_conflict" in v.codes, v.to_dict()


@pytest.mark.parametrize(("caption", "question"), [
    (KS2, "Is the disease a melanoma?"),  # another disease: "No" is right
    (KS2, "Is the disease a lesion?"),  # only kind words: all must be affirmed, as before
    ("Lentigo maligna on the left cheek of a 76-year-old woman.",
     "Is the lesion on the right cheek?"),
])
def test_no_to_another_disease_or_place_is_kept(f, caption, question):
    v = f.check(caption, question, "No.")
    assert "negation_conflict" not in v.codes, v.to_dict()


SH = ("Dermoscopy of a sebaceous hyperplasia on the nose showing central yellow-white lobules "
      "with crown vessels.")
CA = "Dermoscopy of a cherry angioma: well-defined red lacunae separated by whitish septa."


@pytest.mark.parametrize(("caption", "question", "answer", "code"), [
    # kept at 1.0: one word twice in two forms, side by side
    (SH, "What is the distribution?", "Dermoscopic dermoscopy of the nose.",
     "degenerate_answer"),
    (SH, "What is the morphology?", "Nodular nodules on the nose.", "degenerate_answer"),
    # kept at 0.93: a how-question answered with the disease's name and the question's word
    (BCC_H, "How is it diagnosed?", "Basal cell carcinoma diagnosis", "answer_mismatch"),
    (BCC_H, "Based on the image, how is it diagnosed?", "Basal cell carcinoma (H&E, x40).",
     "answer_mismatch"),
    # kept at 0.56: the question's word and the kind of image
    (CA, "What is the anatomy?", "The anatomy of dermoscopic image.", "answer_mismatch"),
    # kept at 0.71: a colour where the caption states none
    (GA, "What is the morphology?", "Granuloma annulare (H&E, x100) has a pinkish-purple "
     "appearance.", "unsupported_finding"),
    (GA, "What is the morphology?", "Reddish palisading histiocytes.", "unsupported_finding"),
])
def test_seed_97_misses(f, caption, question, answer, code):
    v = f.check(caption, question, answer, qa_type="open")
    assert not v.passed and code in v.codes, v.to_dict()


@pytest.mark.parametrize(("caption", "question", "answer"), [
    (SH, "What kind of image is this?", "A dermoscopic (dermatoscopic) image."),
    (BCC_H, "How is it classified?", "Basal cell carcinoma, nodular type."),  # a name answers
    (BCC_H, "How do you describe the image?", "A basal cell carcinoma, nodular type."),
    (BCC_H, "How is it diagnosed?", "By histology: basaloid tumour nests with peripheral "
     "palisading."),
    (CA, "What is shown in the dermoscopic image?", "Red lacunae in a dermoscopic image."),
    (CA, "What is the modality?", "The modality is a dermoscopic image."),
    (CA, "What colour are the lacunae?", "Red."),
    (GA, "What is the morphology?", "Palisading histiocytes around degenerated collagen."),
])
def test_seed_97_guards(f, caption, question, answer):
    v = f.check(caption, question, answer, qa_type="open")
    assert not {"answer_mismatch", "degenerate_answer", "unsupported_finding"} & set(
        v.codes), v.to_dict()


SK_H = ("Seborrhoeic keratosis (H&E, x40), from the back of a 62-year-old man: acanthotic, "
        "papillomatous epidermis with horn pseudocysts. No cytological atypia.")


@pytest.mark.parametrize(("caption", "question", "answer"), [
    # kept pairs of ten runs with an unsupported specific word: six of the seven were bad
    (GA, "What is the morphology?", "Paleocytes around foci of degenerated collagen and "
     "mucin."),  # (0.68)
    (SK_H, "What is the morphology?", "Papillomatous keratoses (PMC),"),  # (0.59)
    (SK_H, "What is the modality?", "H&E (hemoglobin)',"),  # (0.65)
    ("Dermoscopy of a subungual haematoma of the left great toenail: homogeneous red-purple "
     "to black pigmentation.", "What is the modality?", "A dermoscopic dermis"),  # (0.51)
    ("Dermoscopy of a halo naevus: a central naevus with globular pattern surrounded by a "
     "symmetric white depigmented rim.", "How does the morphology vary?",
     "Dermatological diagnosis of a halo naevus"),  # (0.56)
    ("Lentigo maligna on the left cheek of a 76-year-old woman. Dermoscopy reveals asymmetric "
     "pigmented follicular openings.", "What kind of morphology is this?",
     "Sterile dermoscopic image."),  # (0.53)
])
def test_a_generated_answer_with_an_unsupported_specific_term_fails(f, caption, question,
                                                                     answer):
    v = f.check(caption, question, answer, qa_type="open")
    assert not v.passed and "unsupported_term" in v.codes, v.to_dict()
    # someone else's pair (no QA type) is only scored
    assert "unsupported_term" not in f.check(caption, question, answer).codes


@pytest.mark.parametrize(("caption", "question", "answer"), [
    ("Sarcoidosis of the skin (H&E, x100). Well-formed, non-caseating epithelioid "
     "granulomas in the dermis.", "What is the modality?",
     "H&E histopathological examination."),  # H&E is a stain of histology sections
    (SK_H, "What kind of image is this?", "A histology slide under the microscope."),
    (SH, "What kind of image is this?", "A dermatoscopic image."),  # a synonym
    (PYO, "What is the morphology?", "A friable red nodule."),
    (SK_H, "What is the morphology?", "Papillomatous epidermis with horn pseudocysts."),
])
def test_a_generated_answer_with_supported_terms_is_kept(f, caption, question, answer):
    v = f.check(caption, question, answer, qa_type="open")
    assert v.passed and "unsupported_term" not in v.codes, v.to_dict()


def test_a_yes_no_question_naming_only_kinds_is_vacuous(f):
    cap = ("Dermoscopy of an invasive melanoma on the right calf showing an atypical pigment "
           "network.")
    # kept at 1.0 in the held-out seed-101 run
    v = f.check(cap, "Is this condition a disease?", "Malignant melanoma", qa_type="open")
    assert not v.passed and "vacuous_question" in v.codes, v.to_dict()
    v = f.check(cap, "Is this lesion a melanoma?", "Yes.", qa_type="open")
    assert v.passed and "vacuous_question" not in v.codes, v.to_dict()


def test_a_question_for_the_mode_of_a_lesion_is_vacuous(f):
    # held-out seed-103 run: kept at 1.0
    cap = ("Pyogenic granuloma. A 6 mm friable, bright red, pedunculated papule on the right "
           "index finger of a 23-year-old woman; bleeds easily.")
    v = f.check(cap, "What mode is the lesion?", "Granuloma", qa_type="open")
    assert not v.passed and "vacuous_question" in v.codes, v.to_dict()
    v = f.check(cap, "What type is the lesion?", "Papule", qa_type="open")
    assert v.passed and "vacuous_question" not in v.codes, v.to_dict()


# A thirteenth run (seed 107), held out, on the code before these rules: 26 kept, 17
# acceptable, 3 weak, 6 bad; five of the bad ones:
PSO_54 = ("Psoriasis vulgaris. Well-demarcated erythematous plaques with silvery-white scale "
          "on the extensor aspect of both elbows in a 54-year-old man.")
LP2 = ("Lichen planus: flat-topped, violaceous, polygonal papules with fine white Wickham "
       "striae on the volar wrists.")
SCC_H = ("Squamous cell carcinoma, well differentiated (H&E, x100). Invasive nests of "
         "atypical keratinocytes with keratin pearls extending into the reticular dermis.")
ONY = ("Periodic acid-Schiff stain (x400) of a nail clipping showing fungal hyphae within the "
       "nail plate, consistent with onychomycosis.")
SSM2 = ("Superficial spreading melanoma on the upper back of a 47-year-old woman. The lesion is "
        "asymmetric, 14 mm in diameter.")


@pytest.mark.parametrize(("caption", "question", "answer", "code"), [
    (PSO_54, "Who is the most likely donor?", "Well-demarcated erythematous plaques with "
     "silvery-white scale.", "answer_mismatch"),  # a "who" answered with no person
    (SSM2, "What is the most likely mode?", "Superficial spreading melanoma.",
     "vacuous_question"),
    (LP2, "What shape are the lesions?", "Violaceous.", "answer_mismatch"),  # a colour
    (SCC_H, "What is the clinical distribution?", "Squamous cell carcinoma", "answer_mismatch"),
    (ONY, "What is the diagnostic term for nail clipping?", "nail clipping",
     "answer_mismatch"),  # restated, a body site or not
])
def test_seed_107_misses(f, caption, question, answer, code):
    v = f.check(caption, question, answer, qa_type="open")
    assert not v.passed and code in v.codes, v.to_dict()


@pytest.mark.parametrize(("caption", "question", "answer"), [
    (PSO_54, "Who is affected?", "A 54-year-old man."),
    (SSM2, "What is the most likely diagnosis?", "Superficial spreading melanoma."),
    (LP2, "What shape are the lesions?", "Violaceous polygonal papules."),
    (SCC_H, "What is the anatomical location?", "In the reticular dermis."),
    (ONY, "What is the diagnostic term for nail clipping?", "Onychomycosis."),
])
def test_seed_107_guards(f, caption, question, answer):
    v = f.check(caption, question, answer, qa_type="open")
    assert v.passed, v.to_dict()


def test_a_who_question_someone_else_wrote_may_get_a_name(f):
    cap = "Inception is a 2010 science fiction film written and directed by Christopher Nolan."
    v = f.check(cap, "Who directed Inception?", "Christopher Nolan.")
    assert v.passed and "answer_mismatch" not in v.codes, v.to_dict()


# A fourteenth run (seed 109), held out on the final code but for this rule: 26 kept, 22
# acceptable, 1 weak, 3 bad.
def test_a_count_is_not_backed_by_the_patients_age(f):
    # kept at 1.0: the "54" is the age of "a 54-year-old man"
    v = f.check(PSO_54, "How many lesions do you have?", "54.", qa_type="open")
    assert not v.passed and "unsupported_number" in v.codes, v.to_dict()
    assert "an age" in v.reasons[-1].detail, v.to_dict()
    v = f.check(PSO_54, "How many plaques are there?", "54 plaques.")
    assert not v.passed and "answer_mismatch" not in v.codes, v.to_dict()  # a number is news
    # counting years, the age is the count
    for q in ("How many years old is the patient?", "How old is the patient?"):
        v = f.check(PSO_54, q, "54.", qa_type="open")
        assert v.passed, (q, v.to_dict())


def test_a_generated_choice_question_answered_by_one_option_is_kept(f):
    cap = "Lentigo maligna on the left cheek of a 76-year-old woman."
    v = f.check(cap, "Which side, left or right?", "Left.", qa_type="open")
    assert v.passed and "answer_mismatch" not in v.codes, v.to_dict()
