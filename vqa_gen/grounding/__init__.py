"""Caption-grounding hallucination filter.

Every generated QA pair is checked against its caption (plus record metadata); what the caption
does not support loses score. Usage::

    from vqa_gen.grounding import GroundingFilter, FilterConfig
    f = GroundingFilter(FilterConfig(strictness="default"))
    v = f.check(caption, question, answer, meta={"age": 54}, qa_type="location")
    v.score, v.passed, v.to_dict()

Checks (each a small class in ``checks/``; enable/weight/params per check in `FilterConfig`):
empty, form, leakage, content, numbers, demographics, negation, answerability,
relevance, duplicates; plus the optional LLM judge (`judge.py`, off by default).

Speed: the caption is analysed once per record (`check_record`); question and answer analyses
are cached by text (bounded, `Analyser.clear_cache`), and word-level results are memoised.

Score = product of (1 - penalty) over all reasons. The content check's penalty is 1 - support,
where support (`support.py`) is the graded, informativeness-weighted share of the answer's
content the caption backs, so the score ranks rather than gates; contradictions (numbers, sex,
age, side, site, negation) are strong multipliers; passed = score >= threshold and no blocking
code (blocking codes depend on the preset; see `config.PRESETS`).

Stable reason codes (see `CODES`).
"""

from __future__ import annotations

from . import support as _support
from .config import CHECK_NAMES, CheckSettings, FilterConfig
from .echo import Example
from .filter import GroundingFilter
from .judge import GroundingJudge
from .verdict import Reason, Verdict

# True in a compiled install (a regular install where a C compiler was found, or one built
# with `VQA_GEN_COMPILE=1`: the filter's modules compiled by mypyc, see hatch_build.py): the
# same source and verdicts, faster. Benchmarks and `vqa-gen --version` print it.
COMPILED: bool = not str(_support.__file__).endswith(".py")

CODES: dict[str, str] = {
    "empty_answer": "answer has no words (blocking)",
    "empty_question": "question has no words (blocking)",
    "malformed_question": "question is not a question (no '?' nor question word / instruction) "
                          "or repeats the answer (blocking)",
    "text_leakage": "question/answer refers to the caption, text, legend or a figure (blocking)",
    "refusal": "answer refuses or says it cannot tell (blocking)",
    "unsupported_content": "graded: the informativeness-weighted share of the answer's words, "
                           "numbers and word pairs (or question terms a 'Yes' affirms) that "
                           "caption/meta do not support",
    "unsupported_diagnosis": "a diagnosis question answered with a specific term the caption "
                             "does not name, or any answer with such a term right before a "
                             "disease name ('papillary cell carcinoma' for a basal cell "
                             "carcinoma), or a specific word of the caption before a disease "
                             "name it has, never together there ('basaloid carcinoma' for "
                             "'basal cell carcinoma ... basaloid tumour nests'): another "
                             "disease; or any answer naming a disease the caption does not "
                             "(a specific word with a disease name's ending: 'adenocarcinoma' "
                             "for lichen planus)",
    "unsupported_finding": "a generated answer names a lesion type or structure its caption "
                           "does not mention ('Papules ...' for pemphigus vulgaris), or a "
                           "colour where the caption states none",
    "unsupported_term": "a generated answer uses a specific (rare) word its caption does not "
                        "support: coined or misread ('Paleocytes ...', '(PMC)')",
    "contradicted_content": "answer word the caption contradicts: its opposite (upper/lower, "
                            "...), another colour, lesion type, month or weekday, or another "
                            "name where the caption names someone",
    "unsupported_negative": "a 'No' denies something the caption never mentions "
                            "(reported; no penalty by default)",
    "unsupported_premise": "an answer with no content of its own ('3', 'at the top') relies on "
                           "question terms not in the caption; or a generated question asks "
                           "about a finding the caption does not mention ('How are the vessels "
                           "arranged?')",
    "unsupported_number": "answer number/quantity not in caption or metadata",
    "number_mismatch": "caption gives a different value for the same kind of quantity, or "
                       "another number in the same words",
    "age_mismatch": "answer age or age group contradicts the caption",
    "sex_mismatch": "answer sex contradicts the caption",
    "laterality_mismatch": "answer says left/right/bilateral against the caption",
    "site_mismatch": "answer names a body site the caption names differently",
    "negation_conflict": "answer affirms what the caption negates, or denies what it affirms",
    "unanswerable_question": "question about treatment, prognosis, cause, contagion, "
                             "epidemiology, advice or history that the caption does not address "
                             "(blocking)",
    "general_knowledge": "answer recites textbook knowledge rather than the image",
    "answer_mismatch": "the answer is not the kind of thing the question asks for (blocking): "
                       "a colour, a place, an image type, an age/sex; a diagnosis answered with "
                       "only the image type; a wh-question answered yes/no; the question restated; "
                       "a generated question that names its own answer, or asks 'How many?' "
                       "and gets no count; a question about how it looks or where answered "
                       "with only the caption's disease name (and the patient, or for looks "
                       "the place); a generated diagnosis question answered without a disease "
                       "name, or an open one with function words only; a generated "
                       "'How ...?' answered with only the disease name, a generated answer "
                       "restating its question, a generated 'Who ...?' answered with no "
                       "person, a shape question answered with a colour",
    "duplicate_question": "near-duplicate of a better question in the same record (blocking)",
    "duplicate_answer": "the same answer (3+ words) as a better pair of the same record gives to "
                        "another question: it fits one of them at most (blocking)",
    "degenerate_answer": "the answer repeats itself in a loop, or (generated) breaks off "
                         "mid-phrase or says one phrase or word twice (blocking)",
    "answer_is_question": "every sentence of the answer is a question: it answers nothing "
                          "(blocking)",
    "self_contradiction": "a 'No' that then states what the question asked ('Is this a "
                          "melanoma?' / 'No, this is a melanoma.'): it says nothing either way "
                          "(blocking)",
    "vacuous_question": "a yes/no question that names nothing in the image ('Does the "
                        "morphology have a sex?', 'Is the spritz a diagnosis?') answered yes "
                        "or no, or one asking what a word means ('What is a "
                        "histopathology?'), or a generated question too vague to have one "
                        "answer ('What is the type?', 'How is the pathology?', 'Is this "
                        "condition a disease?'): the pair says nothing about the image "
                        "(blocking)",
    "example_echo": "the answer is word for word one of the prompt's worked-example answers "
                    "and writes a word of that example's caption which this caption does not "
                    "('Salmon-pink.' copied from the example for a 'pale pink' caption), or "
                    "writes a word of an example's caption that this caption does not support "
                    "(blocking)",
    "judge_contradicted": "LLM judge (optional): a claim of the answer is contradicted by the "
                          "caption",
    "judge_unsupported": "LLM judge (optional): claims of the answer the caption does not mention",
}

__all__ = ["CHECK_NAMES", "CODES", "COMPILED", "CheckSettings", "Example", "FilterConfig",
           "GroundingFilter", "GroundingJudge", "Reason", "Verdict"]
