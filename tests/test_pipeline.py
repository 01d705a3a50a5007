"""process_record and the Generator API against the real test server."""

from __future__ import annotations

import asyncio
import json

import pytest

from vqa_gen import CaptionRecord, Generator
from vqa_gen.grounding import FilterConfig
from vqa_gen.llm import ChatClient, ClientConfig
from vqa_gen.pipeline import (
    GenerationContext,
    GenerationSettings,
    process_record,
    qa_id,
    record_seed,
)
from vqa_gen.records import InputItem
from vqa_gen.templates import load_template
from vqa_gen.testing import FakeOpenAIServer, FaultPlan, canned, scripted

CAPTION = ("Psoriasis vulgaris. Well-demarcated erythematous plaques with silvery-white scale on "
           "the extensor aspect of both elbows in a 54-year-old man.")
RECORD = CaptionRecord(id="r1", image="img/1.jpg", caption=CAPTION, modality="clinical")


def _reply(*pairs: tuple[str, str, str]) -> str:
    return json.dumps({"qa_pairs": [{"question": q, "answer": a, "type": t}
                                    for q, a, t in pairs]})


async def _process(srv: FakeOpenAIServer, record=RECORD, **settings):
    cfg = ClientConfig(base_url=srv.base_url, model="m", max_retries=2, backoff_initial=0.01)
    async with ChatClient(cfg) as client:
        ctx = GenerationContext.build(load_template("open_vqa"),
                                      GenerationSettings(**settings), client, "m",
                                      FilterConfig())
        return await process_record(InputItem(1, record=record), ctx)


def test_grounded_pairs_are_kept_and_made_up_ones_rejected_with_reasons():
    reply = _reply(("What is the diagnosis?", "Psoriasis vulgaris.", "diagnosis"),
                   ("Where are the plaques?", "On the extensor aspect of both elbows.",
                    "location"),
                   ("How is this treated?", "With topical steroids and phototherapy.",
                    "treatment"),
                   ("How large is the largest plaque?", "About 5 cm across.", "morphology"),
                   ("What does the caption say?", "As described in the caption, psoriasis.",
                    "diagnosis"))
    with FakeOpenAIServer(responder=canned(reply)) as srv:
        result = asyncio.run(_process(srv, qa_per_caption=5))
    assert result.status == "done" and result.calls == 1
    assert [s.question for s in result.kept] == ["What is the diagnosis?",
                                                 "Where are the plaques?"]
    assert len(result.rejected) == 3
    for sample in result.rejected:
        assert not sample.grounding.passed and sample.grounding.reasons
    kept = result.kept[0].to_dict()
    assert kept["id"] == qa_id("r1", "open_vqa", 0) == "r1/open_vqa/0"
    assert {k for k in kept} >= {"id", "record_id", "image", "modality", "question", "answer",
                                 "type", "template", "model", "grounding"}


URTICARIA = CaptionRecord(id="r2", image="img/2.jpg", modality="clinical", caption=(
    "Urticaria. Transient, oedematous, pale pink wheals of varying size on the trunk and "
    "proximal arms. No scale or vesicles."))


def test_an_answer_copied_from_the_prompts_worked_example_is_rejected():
    """open_vqa's clinical example answers "What colour are the patches?" with "Salmon-pink."
    (its caption: "oval salmon-pink scaly patches"). The tiny model repeats it for a caption
    that says "pale pink": "salmon" is a shade of pink, so the support score keeps it; the copy
    of the example is what gives it away. A generic answer the example also gives, and the
    caption's own words, stay."""
    reply = _reply(("What colour are the wheals?", "Salmon-pink.", "color"),
                   ("Where are the lesions?", "On the trunk and proximal arms.", "location"),
                   ("What is the diagnosis?", "Urticaria.", "diagnosis"))
    with FakeOpenAIServer(responder=canned(reply)) as srv:
        result = asyncio.run(_process(srv, record=URTICARIA, qa_per_caption=3))
    assert [s.answer for s in result.kept] == ["On the trunk and proximal arms.", "Urticaria."]
    [echo] = result.rejected
    codes = {r.code: r for r in echo.grounding.reasons}
    assert codes["example_echo"].evidence == "salmon-pink"
    assert codes["example_echo"].penalty == 0.0  # blocks; the support score is left as it was
    assert echo.grounding.score > FilterConfig().threshold


def test_a_generated_question_about_something_the_caption_does_not_mention_is_rejected():
    """The model writes the question too: "How are the vessels arranged?" for an image whose
    caption mentions no vessels presupposes them, whatever the answer then copies (quick start,
    2026-12-04: "As a central naevus surrounded by a symmetrical white depigmented rim")."""
    reply = _reply(("How are the vessels arranged?", "In pale pink wheals on the trunk.",
                    "morphology"),
                   ("What colour are the wheals?", "Pale pink.", "color"))
    with FakeOpenAIServer(responder=canned(reply)) as srv:
        result = asyncio.run(_process(srv, record=URTICARIA, qa_per_caption=2))
    assert [s.answer for s in result.kept] == ["Pale pink."]
    [premise] = result.rejected
    codes = {r.code: r for r in premise.grounding.reasons}
    assert codes["unsupported_premise"].evidence == "vessels"


def test_request_carries_schema_seed_and_the_caption_as_data():
    with FakeOpenAIServer() as srv:
        asyncio.run(_process(srv, qa_per_caption=3, seed=7, temperature=0.2))
        body = srv.requests[-1].body
    assert body["seed"] == record_seed(7, "r1")
    assert body["temperature"] == 0.2
    schema = body["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["qa_pairs"]["maxItems"] == 3
    assert CAPTION in body["messages"][-1]["content"]


@pytest.mark.parametrize("bad", ["Sure! Here are some questions.", '{"questions": ["a?"]}',
                                 "I'm sorry, I can't help with that."])
def test_invalid_output_is_reasked_then_parsed(bad):
    good = _reply(("What is the diagnosis?", "Psoriasis vulgaris.", "diagnosis"))
    with FakeOpenAIServer(responder=scripted([bad, good])) as srv:
        result = asyncio.run(_process(srv))
        reask = srv.requests[-1].body["messages"]
    assert result.status == "done" and result.reasks == 1 and len(result.kept) == 1
    assert reask[-2] == {"role": "assistant", "content": bad}
    assert "Reply again" in reask[-1]["content"]


def test_reasks_are_bounded_then_the_record_fails_with_the_reason():
    with FakeOpenAIServer(responder=canned("not json at all")) as srv:
        result = asyncio.run(_process(srv, max_reasks=2))
        assert srv.stats["requests"] == 3
    assert result.status == "failed" and result.failure.kind == "invalid_json"
    assert "after 3 tries" in result.failure.message


def test_truncated_output_fails_as_truncated():
    with FakeOpenAIServer(faults=FaultPlan(truncated=1.0)) as srv:
        result = asyncio.run(_process(srv, max_reasks=1))
    assert result.status == "failed" and result.failure.kind == "truncated"


def test_4xx_fails_the_record_at_once():
    with FakeOpenAIServer(faults=FaultPlan(script=["bad_request"])) as srv:
        result = asyncio.run(_process(srv))
        assert srv.stats["requests"] == 1
    assert result.status == "failed" and result.failure.kind == "bad_request"


def test_invalid_item_passes_through_without_a_call(fake_server):
    from vqa_gen.records import InvalidRecord

    async def go():
        cfg = ClientConfig(base_url=fake_server.base_url, model="m")
        async with ChatClient(cfg) as client:
            ctx = GenerationContext.build(load_template("open_vqa"), GenerationSettings(),
                                          client, "m")
            return await process_record(
                InputItem(4, invalid=InvalidRecord("f.jsonl", 4, "field 'caption': empty")), ctx)

    result = asyncio.run(go())
    assert result.status == "invalid" and fake_server.stats["requests"] == 0


def test_generator_api_yields_typed_results_in_order(fake_server):
    records = [{"id": f"r{i}", "caption": CAPTION, "modality": "clinical"} for i in range(10)]
    records.insert(3, {"id": "bad"})
    with Generator(base_url=fake_server.base_url, model="m", concurrency=4) as gen:
        results = list(gen.generate(records))
    assert [r.record_id for r in results] == [r["id"] for r in records]
    assert results[3].status == "invalid" and "caption" in results[3].invalid.reason
    assert all(r.status == "done" and r.kept for i, r in enumerate(results) if i != 3)


def test_generator_async_variant(fake_server):
    async def go():
        async with Generator(base_url=fake_server.base_url, model="m") as gen:
            return [r async for r in gen.agenerate([RECORD])]

    (result,) = asyncio.run(go())
    assert result.status == "done" and result.kept


def test_generator_cache_makes_the_second_pass_free(fake_server, tmp_path):
    with Generator(base_url=fake_server.base_url, model="m", cache=tmp_path / "c.sqlite") as gen:
        first = list(gen.generate([RECORD]))
        second = list(gen.generate([RECORD]))
    assert fake_server.stats["requests"] == 1
    assert second[0].cache_hits == 1 and second[0].calls == 0
    assert [s.to_dict() for s in first[0].kept] == [s.to_dict() for s in second[0].kept]
