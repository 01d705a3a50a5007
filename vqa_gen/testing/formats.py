"""A responder for the fake server that answers in whatever answer format the request asks for.

`format_aware` reads the format name from ``response_format.json_schema.name`` (vqa-gen sends the
template's declared format there) and builds a grounded reply from the caption in the prompt,
like `qa_from_caption` does for ``qa_pairs``: yes/no questions, multiple choice with fixed
distractors, a conversation, or a description. Use it as ``FakeOpenAIServer(responder=
format_aware)`` or ``python -m vqa_gen.testing`` plus this responder in your own script.
"""

from __future__ import annotations

from typing import Any

import orjson

from .server import _CAPTION_RE, _last_user_text, extract_caption, qa_from_caption

DISTRACTORS = ("Lichen planus", "Chronic urticaria", "Vitiligo", "Pityriasis rosea")


def _format_name(body: dict[str, Any]) -> str:
    rf = body.get("response_format") or {}
    return str((rf.get("json_schema") or {}).get("name") or "qa_pairs")


def _caption(body: dict[str, Any]) -> str:
    user = _last_user_text(body)
    m = _CAPTION_RE.search(user)
    return extract_caption(m.group(0) if m else user)


def format_aware(body: dict[str, Any]) -> str:
    """Grounded reply in the requested format (answers are spans of the caption)."""
    fmt = _format_name(body)
    pairs = orjson.loads(qa_from_caption(body))["qa_pairs"]
    out: list[dict[str, Any]]
    if fmt == "yes_no":
        out = [{"question": f"Does the image show this: {p['answer'].lower()}?",
                "answer": "yes", "type": "presence"} for p in pairs]
        return orjson.dumps({"qa_pairs": out}).decode()
    if fmt == "multiple_choice":
        out = []
        for p in pairs:
            distractors = [d for d in DISTRACTORS if d.casefold() != p["answer"].casefold()][:3]
            out.append({"question": p["question"], "correct_answer": p["answer"],
                        "distractors": distractors, "type": p["type"]})
        return orjson.dumps({"questions": out}).decode()
    if fmt == "conversation":
        turns = [{"question": p["question"], "answer": p["answer"]} for p in pairs]
        return orjson.dumps({"conversation": turns}).decode()
    if fmt == "description":
        return orjson.dumps({"description": _caption(body)}).decode()
    return orjson.dumps({"qa_pairs": pairs}).decode()
