"""Answer formats beyond qa_pairs and the shipped templates that declare them, end to end
against the real test server."""

from __future__ import annotations

import asyncio
import json
import random

import pytest

from vqa_gen import CaptionRecord
from vqa_gen.answers import AnswerFormatError
from vqa_gen.formats import OUTPUT_FORMATS
from vqa_gen.grounding import FilterConfig
from vqa_gen.llm import ChatClient, ClientConfig
from vqa_gen.pipeline import GenerationContext, GenerationSettings, process_record, record_seed
from vqa_gen.records import InputItem
from vqa_gen.templates import list_templates, load_template
from vqa_gen.testing import FakeOpenAIServer, canned
from vqa_gen.testing.formats import format_aware

CAPTION = ("Superficial spreading melanoma on the upper back of a 47-year-old woman. The lesion "
           "is asymmetric, 14 mm in diameter, with variegated brown, black and blue-grey colour. "
           "No ulceration.")
RECORD = CaptionRecord(id="r1", image="i.jpg", caption=CAPTION, modality="clinical")
NO_DEMOGRAPHICS = CaptionRecord(id="r2", caption="Dermoscopy of a melanoma with a blue-white veil.",
                                modality="dermoscopic")


async def _process(srv, template: str, record=RECORD, **settings):
    cfg = ClientConfig(base_url=srv.base_url, model="m", max_retries=1, backoff_initial=0.01)
    async with ChatClient(cfg) as client:
        ctx = GenerationContext.build(load_template(template), GenerationSettings(**settings),
                                      client, "m", FilterConfig())
        return await process_record(InputItem(1, record=record), ctx)


def test_every_shipped_template_loads_with_its_declared_format():
    names = {t.name: t for t in list_templates()}
    assert {"open_vqa", "closed_vqa", "multiple_choice", "conversation", "demographics",
            "description"} <= set(names)
    for t in names.values():
        assert t.output in OUTPUT_FORMATS and t.version and t.description and t.modalities
        schema = t.schema(3)
        assert schema["type"] == "object" and schema["required"]


def test_yes_no_normalises_and_rejects_open_answers():
    parse = OUTPUT_FORMATS["yes_no"].parse
    pairs = parse(json.dumps({"qa_pairs": [
        {"question": "Is there ulceration?", "answer": "No.", "type": "absence"},
        {"question": "Is it a melanoma?", "answer": "yes, it is", "type": "diagnosis"}]}))
    assert [p.answer for p in pairs] == ["No", "Yes"]
    assert pairs[0].extra == {"answer_type": "closed"}
    with pytest.raises(AnswerFormatError, match=r"yes.*or.*no"):
        parse(json.dumps({"qa_pairs": [{"question": "What is it?", "answer": "A melanoma"}]}))


def test_closed_vqa_grounds_no_answers_only_when_the_caption_negates():
    reply = json.dumps({"qa_pairs": [
        {"question": "Is there ulceration?", "answer": "no", "type": "absence"},
        {"question": "Is the lesion asymmetric?", "answer": "yes", "type": "morphology"},
        {"question": "Is there ulceration?", "answer": "yes", "type": "presence"}]})
    with FakeOpenAIServer(responder=canned(reply)) as srv:
        result = asyncio.run(_process(srv, "closed_vqa"))
        body = srv.requests[-1].body
    assert body["response_format"]["json_schema"]["name"] == "yes_no"
    kept = {(s.question, s.answer) for s in result.kept}
    assert ("Is there ulceration?", "No") in kept and ("Is the lesion asymmetric?", "Yes") in kept
    (bad,) = result.rejected
    assert bad.answer == "Yes" and "negation_conflict" in bad.grounding.codes
    assert bad.to_dict()["answer_type"] == "closed"


def _mc_reply(n: int = 4) -> str:
    return json.dumps({"questions": [
        {"question": f"Which colour is present (variant {i})?", "correct_answer": "Blue-grey",
         "distractors": ["Yellow", "Green", "White"], "type": "color"} for i in range(n)]})


def test_multiple_choice_places_the_correct_option_from_the_record_seed():
    fmt = OUTPUT_FORMATS["multiple_choice"]
    pairs = fmt.parse(_mc_reply(12))
    a = fmt.finalize(pairs, random.Random(record_seed(0, "r1")))
    b = fmt.finalize(fmt.parse(_mc_reply(12)), random.Random(record_seed(0, "r1")))
    assert [p.extra for p in a] == [p.extra for p in b]  # deterministic
    assert len({p.extra["answer_index"] for p in a}) > 1  # not always the same slot
    for p in a:
        assert p.extra["options"][p.extra["answer_index"]] == p.answer == "Blue-grey"
        assert sorted(p.extra["options"]) == sorted(["Blue-grey", "Yellow", "Green", "White"])
        assert p.extra["answer_letter"] == "ABCD"[p.extra["answer_index"]]
    with pytest.raises(AnswerFormatError, match="different"):
        fmt.parse(json.dumps({"questions": [{"question": "Which?", "correct_answer": "A",
                                             "distractors": ["a", "B", "C"]}]}))


def test_multiple_choice_grounds_the_correct_option_text():
    reply = json.dumps({"questions": [
        {"question": "What is the diagnosis?", "correct_answer": "Superficial spreading melanoma",
         "distractors": ["Lentigo maligna", "Seborrhoeic keratosis", "Blue naevus"],
         "type": "diagnosis"},
        {"question": "How large is the lesion?", "correct_answer": "30 mm",
         "distractors": ["14 mm", "5 mm", "50 mm"], "type": "size"}]})
    with FakeOpenAIServer(responder=canned(reply)) as srv:
        result = asyncio.run(_process(srv, "multiple_choice", seed=3))
    assert [s.answer for s in result.kept] == ["Superficial spreading melanoma"]
    assert result.rejected[0].answer == "30 mm"
    line = result.kept[0].to_dict()
    assert line["options"][line["answer_index"]] == line["answer"]
    assert len(line["options"]) == 4 and line["answer_letter"] in "ABCD"


def test_conversation_is_one_line_with_every_turn_grounded():
    good = {"question": "What does the image show?", "answer": "A superficial spreading melanoma."}
    bad = {"question": "How is it treated?", "answer": "By wide local excision."}
    with FakeOpenAIServer(responder=canned(json.dumps({"conversation": [good, good | {
            "question": "Where is it?", "answer": "On the upper back."}]}),
            json.dumps({"conversation": [good, bad]}))) as srv:
        ok = asyncio.run(_process(srv, "conversation"))
        ko = asyncio.run(_process(srv, "conversation", seed=1))
    (line,) = [s.to_dict() for s in ok.kept]
    assert line["type"] == "conversation" and line["question"] == good["question"]
    assert [t["question"] for t in line["conversation"]] == [good["question"], "Where is it?"]
    assert all(t["grounding"]["passed"] for t in line["conversation"])
    (rej,) = [s.to_dict() for s in ko.rejected]
    assert [t["grounding"]["passed"] for t in rej["conversation"]] == [True, False]
    assert any(r["detail"].startswith("turn 2:") for r in rej["grounding"]["reasons"])


def test_description_pairs_a_seeded_instruction_with_the_grounded_description():
    with FakeOpenAIServer(responder=format_aware) as srv:
        result = asyncio.run(_process(srv, "description"))
        again = asyncio.run(_process(srv, "description"))
    (s,) = result.kept
    assert s.type == "description" and s.answer == CAPTION and s.question.endswith(".")
    assert again.kept[0].question == s.question  # drawn from the record seed


def test_demographics_skips_records_without_age_or_sex_cleanly():
    with FakeOpenAIServer(responder=format_aware) as srv:
        # a clinical record (demographics suits clinical/other): skipped for its 'when'
        no_age = NO_DEMOGRAPHICS.model_copy(update={"modality": "clinical"})
        skipped = asyncio.run(_process(srv, "demographics", record=no_age))
        assert srv.stats["requests"] == 0
        done = asyncio.run(_process(srv, "demographics"))
        prompt = srv.requests[-1].body["messages"][-1]["content"]
    assert skipped.status == "done" and skipped.skipped and not skipped.kept + skipped.rejected
    assert skipped.failure is None and "age" in skipped.skipped
    assert done.skipped is None and done.kept
    assert "47-year-old" in prompt and "female" in prompt


def test_few_shot_examples_are_chosen_by_modality():
    t = load_template("closed_vqa")
    clinical = t.render(RECORD)[0]["content"]
    derm = t.render(NO_DEMOGRAPHICS)[0]["content"]
    assert "Plaque psoriasis on the knee" in clinical and "milia-like cysts" not in clinical
    assert "milia-like cysts" in derm
    assert t.examples_for("pathology")[0]["caption"].startswith("Basal cell carcinoma")
    for modality in ("clinical", "dermoscopic", "pathology", "other"):
        for ex in t.examples_for(modality):
            OUTPUT_FORMATS[t.output].parse(ex["reply"])  # examples match the declared format
