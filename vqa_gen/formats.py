"""Answer formats beyond `qa_pairs`: yes/no, multiple choice, conversation, description.

Each format is a JSON schema builder (what `response_format` asks for), a tolerant parser (what
the reply becomes: a list of `QAPair`) and optionally a finaliser that does in code what must
not be left to the model (the place of the correct multiple-choice option, drawn from the record
seed). Format-specific output fields travel in `QAPair.extra` and end up on the output line.

=================  ==========================================================================
format             reply the template asks for → output line
=================  ==========================================================================
qa_pairs           ``{"qa_pairs": [{question, answer, type}]}`` → one line per pair
yes_no             ``{"qa_pairs": [{question, answer: "yes"|"no", type}]}`` → one line per pair,
                   answer "Yes"/"No", ``answer_type: "closed"``
multiple_choice    ``{"questions": [{question, correct_answer, distractors[3], type}]}`` → one
                   line per question: ``answer`` (correct text), ``options`` (4, shuffled from
                   the record seed), ``answer_index``, ``answer_letter``
conversation       ``{"conversation": [{question, answer}]}`` → one line per conversation:
                   ``question``/``answer`` = first turn, ``conversation`` = every turn with
                   its own grounding verdict; kept only if every turn is grounded
description        ``{"description": str}`` → one line: ``question`` = a describe-the-image
                   instruction drawn from the record seed, ``answer`` = the description
=================  ==========================================================================
"""

from __future__ import annotations

import random
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .answers import (
    MAX_ANSWER_CHARS,
    MAX_QUESTION_CHARS,
    QA_PAIRS,
    AnswerFormatError,
    OutputFormat,
    QAPair,
    extract_json,
    parse_qa_pairs,
    strip_text,
)

LETTERS = "ABCD"
DESCRIPTION_QUESTIONS: tuple[str, ...] = (
    "Describe this image in detail.",
    "What do you see in this image? Describe it thoroughly.",
    "Give a detailed description of the findings in this image.",
    "Describe the visible findings in this image.",
    "Provide a detailed description of this image.",
)
"""Instructions paired with a `description` reply (LLaVA-style detailed-description data)."""
MAX_DESCRIPTION_CHARS = 2000


def _first_error(err: ValidationError) -> AnswerFormatError:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first.get("loc", ()))
    return AnswerFormatError("wrong_shape",
                             f"the JSON does not match the schema at '{loc}': {first['msg']}")


def _wrap(data: Any, key: str, aliases: tuple[str, ...] = ()) -> dict[str, Any]:
    """`{key: [...]}` from a reply that may be a bare list or use another common key."""
    if isinstance(data, list):
        return {key: data}
    if not isinstance(data, dict):
        raise AnswerFormatError("wrong_shape", f"expected a JSON object with a '{key}' list")
    if key not in data:
        for alt in (*aliases, "qa_pairs", "items", "data"):
            if isinstance(data.get(alt), list):
                return {key: data[alt]}
    return data


def _string(max_len: int, min_len: int = 1) -> dict[str, Any]:
    return {"type": "string", "minLength": min_len, "maxLength": max_len}


def _object(props: dict[str, Any], n: int | None = None, key: str | None = None
            ) -> dict[str, Any]:
    item = {"type": "object", "properties": props, "required": list(props),
            "additionalProperties": False}
    if key is None:
        return item
    arr: dict[str, Any] = {"type": "array", "minItems": 1, "items": item}
    if n is not None:
        arr["minItems"] = arr["maxItems"] = n
    return {"type": "object", "properties": {key: arr}, "required": [key],
            "additionalProperties": False}


# -- yes_no ---------------------------------------------------------------------------------
_YES = {"yes", "y", "true"}
_NO = {"no", "n", "false"}


def yes_no_schema(n: int | None = None) -> dict[str, Any]:
    return _object({"question": _string(MAX_QUESTION_CHARS, 5),
                    "answer": {"type": "string", "enum": ["yes", "no"]},
                    "type": _string(40, 0)}, n, "qa_pairs")


def parse_yes_no(text: str) -> list[QAPair]:
    """`qa_pairs` whose answers must be yes or no (a leading yes/no word counts)."""
    pairs = parse_qa_pairs(text)
    out = []
    for i, p in enumerate(pairs, start=1):
        word = p.answer.strip().split(maxsplit=1)[0].strip(".,;:!").casefold() if p.answer else ""
        if word in _YES:
            answer = "Yes"
        elif word in _NO:
            answer = "No"
        else:
            raise AnswerFormatError(
                "wrong_shape", f"pair {i}: the answer must be \"yes\" or \"no\", got "
                               f"{p.answer[:40]!r}")
        out.append(p.model_copy(update={"answer": answer,
                                        "extra": {"answer_type": "closed"}}))
    return out


# -- multiple_choice ------------------------------------------------------------------------
class _MCItem(BaseModel):
    model_config = ConfigDict(extra="ignore")

    question: str = Field(min_length=1)
    correct_answer: str = Field(min_length=1)
    distractors: list[str] = Field(min_length=3)
    type: str = "other"

    @field_validator("question", "correct_answer", mode="before")
    @classmethod
    def _strip(cls, value: Any) -> Any:
        return strip_text(value)

    @field_validator("distractors", mode="before")
    @classmethod
    def _strip_all(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [str(v).strip() for v in value if str(v).strip()]
        return value

    @field_validator("type", mode="before")
    @classmethod
    def _norm_type(cls, value: Any) -> Any:
        if not isinstance(value, str) or not value.strip():
            return "other"
        return value.strip().lower().replace(" ", "_").replace("-", "_")


def multiple_choice_schema(n: int | None = None) -> dict[str, Any]:
    return _object({"question": _string(MAX_QUESTION_CHARS, 5),
                    "correct_answer": _string(200),
                    "distractors": {"type": "array", "minItems": 3, "maxItems": 3,
                                    "items": _string(200)},
                    "type": _string(40, 0)}, n, "questions")


def _distinct_options(correct: str, distractors: list[str]) -> list[str]:
    """The correct answer and the first three distractors that differ from it and from each
    other (case and a final full stop ignored): small models repeat options."""
    seen = {correct.casefold().rstrip(".")}
    options = [correct]
    for d in distractors:
        key = d.casefold().rstrip(".")
        if key not in seen:
            seen.add(key)
            options.append(d)
    return options[:4]


def parse_multiple_choice(text: str) -> list[QAPair]:
    """Questions with one correct answer and three distinct distractors. Repeated distractors
    are dropped (spares beyond three fill in); a question left with fewer than four distinct
    options is dropped, and the reply is unusable only if every question is. The options are
    left in model order (correct first) here; `finalize_multiple_choice` shuffles them."""
    data = _wrap(extract_json(text), "questions", ("multiple_choice", "mcq"))
    raw = data.get("questions")
    if not isinstance(raw, list) or not raw:
        raise AnswerFormatError("no_pairs", "the 'questions' list was missing or empty")
    out = []
    collided: list[int] = []
    for i, item in enumerate(raw, start=1):
        try:
            mc = _MCItem.model_validate(item)
        except ValidationError as err:
            e = _first_error(err)
            raise AnswerFormatError(e.code, f"question {i}: {e.reason}") from None
        options = _distinct_options(mc.correct_answer, mc.distractors)
        if len(options) < 4:
            collided.append(i)
            continue
        out.append(QAPair(question=mc.question, answer=mc.correct_answer, type=mc.type,
                          extra={"options": options, "answer_index": 0}))
    if not out:
        raise AnswerFormatError("wrong_shape", f"question {collided[0]}: the four options must "
                                               "all be different")
    return out


def finalize_multiple_choice(pairs: list[QAPair], rng: random.Random) -> list[QAPair]:
    """Place each correct option at a random position (A–D), drawn from the record's rng."""
    out = []
    for p in pairs:
        options = list(p.extra["options"])
        correct = options[int(p.extra.get("answer_index", 0))]
        distractors = [o for i, o in enumerate(options) if i != p.extra.get("answer_index", 0)]
        rng.shuffle(distractors)
        index = rng.randrange(len(options))
        options = [*distractors[:index], correct, *distractors[index:]]
        out.append(p.model_copy(update={"extra": {**p.extra, "options": options,
                                                  "answer_index": index,
                                                  "answer_letter": LETTERS[index]}}))
    return out


# -- conversation ---------------------------------------------------------------------------
class _Turn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    question: str = Field(min_length=1)
    answer: str = Field(min_length=1)

    @field_validator("question", "answer", mode="before")
    @classmethod
    def _strip(cls, value: Any) -> Any:
        return strip_text(value)


def conversation_schema(n: int | None = None) -> dict[str, Any]:
    return _object({"question": _string(MAX_QUESTION_CHARS, 2),
                    "answer": _string(MAX_ANSWER_CHARS)}, n, "conversation")


def parse_conversation(text: str) -> list[QAPair]:
    """One multi-turn conversation → one QAPair (first turn), all turns in `extra`."""
    data = _wrap(extract_json(text), "conversation", ("turns", "dialogue", "conversations"))
    raw = data.get("conversation")
    if not isinstance(raw, list) or not raw:
        raise AnswerFormatError("no_pairs", "the 'conversation' list was missing or empty")
    turns = []
    for i, item in enumerate(raw, start=1):
        try:
            turns.append(_Turn.model_validate(item))
        except ValidationError as err:
            e = _first_error(err)
            raise AnswerFormatError(e.code, f"turn {i}: {e.reason}") from None
    return [QAPair(question=turns[0].question, answer=turns[0].answer, type="conversation",
                   extra={"conversation": [t.model_dump() for t in turns]})]


# -- description ----------------------------------------------------------------------------
def description_schema(n: int | None = None) -> dict[str, Any]:
    return {"type": "object",
            "properties": {"description": _string(MAX_DESCRIPTION_CHARS, 10)},
            "required": ["description"], "additionalProperties": False}


def parse_description(text: str) -> list[QAPair]:
    data = extract_json(text)
    if isinstance(data, dict) and "description" not in data:
        for alt in ("text", "answer", "caption_free_description"):
            if isinstance(data.get(alt), str):
                data = {"description": data[alt]}
                break
    if not isinstance(data, dict) or not isinstance(data.get("description"), str):
        raise AnswerFormatError("wrong_shape",
                                "expected a JSON object with a 'description' string")
    desc = data["description"].strip()
    if not desc:
        raise AnswerFormatError("no_pairs", "the 'description' was empty")
    return [QAPair(question=DESCRIPTION_QUESTIONS[0], answer=desc[:MAX_DESCRIPTION_CHARS],
                   type="description")]


def finalize_description(pairs: list[QAPair], rng: random.Random) -> list[QAPair]:
    return [p.model_copy(update={"question": rng.choice(DESCRIPTION_QUESTIONS)}) for p in pairs]


OUTPUT_FORMATS: dict[str, OutputFormat] = {
    "qa_pairs": QA_PAIRS,
    "yes_no": OutputFormat("yes_no", yes_no_schema, parse_yes_no, key="qa_pairs",
                           description="closed questions answered yes or no"),
    "multiple_choice": OutputFormat(
        "multiple_choice", multiple_choice_schema, parse_multiple_choice,
        finalize_multiple_choice, key="questions",
        description="four options, the correct one placed at random by code"),
    "conversation": OutputFormat("conversation", conversation_schema, parse_conversation,
                                 key="conversation", description="one multi-turn conversation"),
    "description": OutputFormat("description", description_schema, parse_description,
                                finalize_description, key="description",
                                description="a detailed description of the image"),
}
"""Answer formats a template may declare (`output = "..."` in its header), by name."""
