"""The LLM's answer format: its JSON schema, and tolerant parsing of what models really send.

The documented format is one JSON object ``{"qa_pairs": [{"question", "answer", "type"}]}``.
Endpoints that honour ``response_format`` get the schema; for the rest we dig the JSON out of code
fences or surrounding prose, then validate with pydantic. Anything that still fails raises
`AnswerFormatError` with a short reason, which the pipeline uses to re-ask.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator


class AnswerFormatError(ValueError):
    """The model's reply is not a usable answer; `reason` is short enough for a re-ask prompt."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def strip_text(value: Any) -> Any:
    """A reply field as text: numbers become strings, strings are stripped; anything else is
    left for pydantic to reject (a `mode="before"` validator body shared by the formats)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    return value.strip() if isinstance(value, str) else value


class QAPair(BaseModel):
    """One generated question-answer pair, as the model returns it."""

    model_config = ConfigDict(extra="ignore")

    question: str = Field(min_length=1)
    answer: str = Field(min_length=1)
    type: str = "other"
    extra: dict[str, Any] = Field(default_factory=dict)
    """Format-specific output fields (`options`/`answer_index` for multiple choice, the turns of a
    conversation …), set by the format's parser and finaliser, never by the model."""

    @field_validator("question", "answer", mode="before")
    @classmethod
    def _strip(cls, value: Any) -> Any:
        if isinstance(value, bool):
            value = "Yes" if value else "No"
        return strip_text(value)

    @field_validator("type", mode="before")
    @classmethod
    def _normalise_type(cls, value: Any) -> Any:
        if value is None:
            return "other"
        if isinstance(value, str):
            cleaned = value.strip().lower().replace(" ", "_").replace("-", "_")
            return cleaned or "other"
        return value


class QAResponse(BaseModel):
    model_config = ConfigDict(extra="ignore")

    qa_pairs: list[QAPair]


MAX_QUESTION_CHARS = 400
MAX_ANSWER_CHARS = 1000
MAX_REPLY_TEXT_CHARS = 2000
"""The longest question, answer, option or turn any format accepts from a reply (a description
may take 2000). The schema only asks for limits; `check_reply_limits` enforces them, so a
runaway 5 MB answer is a shape error that gets re-asked, never data."""


def check_reply_limits(pairs: list[QAPair]) -> list[QAPair]:
    """Raise AnswerFormatError when any text of the parsed pairs is over its limit."""
    for i, p in enumerate(pairs, start=1):
        texts = [("question", p.question, MAX_QUESTION_CHARS),
                 ("answer", p.answer, MAX_REPLY_TEXT_CHARS)]
        for turn in p.extra.get("conversation") or ():
            texts += [("question", str(turn.get("question", "")), MAX_QUESTION_CHARS),
                      ("answer", str(turn.get("answer", "")), MAX_REPLY_TEXT_CHARS)]
        texts += [("option", str(o), MAX_REPLY_TEXT_CHARS) for o in p.extra.get("options") or ()]
        for what, text, limit in texts:
            if len(text) > limit:
                raise AnswerFormatError(
                    "wrong_shape", f"pair {i}: the {what} has {len(text):,} characters, over "
                                   f"the limit of {limit:,}")
    return pairs


def qa_pairs_schema(n: int | None = None) -> dict[str, Any]:
    """JSON schema of the `qa_pairs` format. With `n`, the list must hold exactly n pairs:
    grammar-constrained endpoints (llama.cpp, vLLM) then stop instead of rambling to the
    token limit; lengths are capped for the same reason."""
    pairs: dict[str, Any] = {
        "type": "array",
        "minItems": 1,
        "items": {
            "type": "object",
            "properties": {
                "question": {"type": "string", "minLength": 5, "maxLength": MAX_QUESTION_CHARS},
                "answer": {"type": "string", "minLength": 1, "maxLength": MAX_ANSWER_CHARS},
                "type": {"type": "string", "maxLength": 40},
            },
            "required": ["question", "answer", "type"],
            "additionalProperties": False,
        },
    }
    if n is not None:
        pairs["minItems"] = pairs["maxItems"] = n
    return {"type": "object", "properties": {"qa_pairs": pairs}, "required": ["qa_pairs"],
            "additionalProperties": False}


def response_format_for(schema: dict[str, Any], name: str = "qa_pairs") -> dict[str, Any]:
    """The OpenAI `response_format` asking for JSON that follows `schema`."""
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": False}}


_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)


def _balanced_object(text: str, start: int) -> str | None:
    """The balanced {...} starting at `start`, respecting strings; None if it never closes."""
    depth = 0
    in_string = False
    escaped = False
    for i in range(start, len(text)):
        ch = text[i]
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return text[start : i + 1]
    return None


def extract_json(text: str) -> Any:
    """Find the JSON value in a model reply: whole text, a code fence, or the first {...} that
    parses. Raises AnswerFormatError when there is none."""
    stripped = text.strip()
    if not stripped:
        raise AnswerFormatError("empty_reply", "the reply was empty")
    try:
        whole = orjson.loads(stripped)
        if isinstance(whole, (dict, list)):
            return whole
    except orjson.JSONDecodeError:
        whole = None
    for match in _FENCE.finditer(stripped):
        try:
            return orjson.loads(match.group(1).strip())
        except orjson.JSONDecodeError:
            continue
    pos = stripped.find("{")
    tries = 0
    while pos != -1 and tries < 20:
        candidate = _balanced_object(stripped, pos)
        if candidate is None:
            break
        try:
            return orjson.loads(candidate)
        except orjson.JSONDecodeError:
            pos = stripped.find("{", pos + 1)
            tries += 1
    if whole is not None:
        return whole
    raise AnswerFormatError("invalid_json", "the reply did not contain a valid JSON object")


def parse_qa_pairs(text: str) -> list[QAPair]:
    """Parse and validate a reply into QA pairs (the `qa_pairs` output format).

    Accepts a bare list of pairs too, since models often drop the wrapper object.
    """
    data = extract_json(text)
    if isinstance(data, list):
        data = {"qa_pairs": data}
    if not isinstance(data, dict):
        raise AnswerFormatError("wrong_shape", "expected a JSON object with a 'qa_pairs' list")
    if "qa_pairs" not in data:
        for key in ("qa", "pairs", "questions", "items", "data"):
            if isinstance(data.get(key), list):
                data = {"qa_pairs": data[key]}
                break
    try:
        parsed = QAResponse.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        loc = ".".join(str(p) for p in first.get("loc", ()))
        raise AnswerFormatError(
            "wrong_shape", f"the JSON does not match the schema at '{loc}': {first['msg']}"
        ) from None
    if not parsed.qa_pairs:
        raise AnswerFormatError("no_pairs", "the 'qa_pairs' list was empty")
    return parsed.qa_pairs


def _no_finalize(pairs: list[QAPair], rng: random.Random) -> list[QAPair]:
    return pairs


@dataclass(frozen=True)
class OutputFormat:
    """An answer format a template may declare: how to ask for it and how to read it.

    `finalize` runs after parsing with a random generator seeded from the record seed, so what
    code randomises (the position of the correct multiple-choice option) is reproducible, also
    when a run is refiltered from its stored replies. `key` is the reply's top-level JSON key.
    """

    name: str
    schema: Callable[[int | None], dict[str, Any]]
    parse: Callable[[str], list[QAPair]]
    finalize: Callable[[list[QAPair], random.Random], list[QAPair]] = _no_finalize
    key: str = "qa_pairs"
    description: str = ""


QA_PAIRS = OutputFormat("qa_pairs", qa_pairs_schema, parse_qa_pairs,
                        description="open question-answer pairs")
"""The default answer format; the registry of all formats is `vqa_gen.formats.OUTPUT_FORMATS`."""
