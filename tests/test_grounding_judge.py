"""The optional LLM judge, against the suite's real test server (no mocks of our code)."""

from __future__ import annotations

import asyncio
import json

import pytest

from vqa_gen.cache import ResponseCache
from vqa_gen.grounding import FilterConfig, GroundingFilter, GroundingJudge
from vqa_gen.grounding.judge import JUDGE_SCHEMA, parse_claims
from vqa_gen.llm import ChatClient, ClientConfig
from vqa_gen.pipeline import GenerationContext, GenerationSettings, process_record
from vqa_gen.records import CaptionRecord, InputItem
from vqa_gen.templates import load_template
from vqa_gen.testing import FakeOpenAIServer, canned, scripted

CAP = ("Psoriasis vulgaris. Well-demarcated erythematous plaques with silvery-white scale on "
       "the extensor surfaces of both elbows of a 54-year-old man.")


def verdicts(*labels: str) -> str:
    return json.dumps({"claims": [{"claim": f"claim {i}", "label": lab}
                                  for i, lab in enumerate(labels)]})


async def _judge(srv: FakeOpenAIServer, pairs, cache=None, config=None):
    filt = GroundingFilter(config or FilterConfig(judge=True))
    cfg = ClientConfig(base_url=srv.base_url, model="m", max_retries=1, backoff_initial=0.01)
    async with ChatClient(cfg) as client:
        judge = GroundingJudge(client, model="m", cache=cache, config=filt.config)
        lexical = filt.check_record(CAP, pairs)
        out, stats = await judge.judge_record(filt, CAP, pairs, lexical)
    return lexical, out, stats


def test_contradicted_claim_fails_a_lexically_kept_pair():
    pairs = [("What colour are the plaques?", "Red, with silvery-white scale.")]
    with FakeOpenAIServer(responder=canned(verdicts("supported", "contradicted"))) as srv:
        lexical, out, stats = asyncio.run(_judge(srv, pairs))
        body = srv.requests[0].body
    assert lexical[0].passed and not out[0].passed
    assert "judge_contradicted" in out[0].codes
    assert out[0].score < lexical[0].score and stats.calls == 1
    # the request: the caption, question and answer, JSON-schema'd, deterministic
    text = json.dumps(body["messages"])
    assert "silvery-white" in text and "What colour are the plaques?" in text
    assert body["response_format"]["json_schema"]["schema"] == JUDGE_SCHEMA
    assert body["temperature"] == 0.0


def test_supported_claims_leave_the_verdict_unchanged():
    pairs = [("What is the diagnosis?", "Psoriasis vulgaris.")]
    with FakeOpenAIServer(responder=canned(verdicts("supported"))) as srv:
        lexical, out, _ = asyncio.run(_judge(srv, pairs))
    assert out[0] == lexical[0]


def test_not_mentioned_claims_are_penalised_by_share():
    pairs = [("Describe the plaques.", "Well-demarcated erythematous plaques.")]
    with FakeOpenAIServer(responder=canned(verdicts("supported", "not_mentioned"))) as srv:
        _, out, _ = asyncio.run(_judge(srv, pairs))
    r = next(r for r in out[0].reasons if r.code == "judge_unsupported")
    assert r.penalty == pytest.approx(0.6 * 1 / 2)
    assert out[0].passed  # half the claims unmentioned: penalised, not rejected
    with FakeOpenAIServer(responder=canned(verdicts("not_mentioned", "not_mentioned"))) as srv:
        _, out, _ = asyncio.run(_judge(srv, pairs))
    assert not out[0].passed and "judge_unsupported" in out[0].codes


def test_only_lexically_kept_pairs_cost_a_call():
    pairs = [("What is the diagnosis?", "Psoriasis vulgaris."),
             ("How is it treated?", "With topical steroids."),
             ("Papule", "Papule")]
    with FakeOpenAIServer(responder=canned(verdicts("supported"))) as srv:
        lexical, out, stats = asyncio.run(_judge(srv, pairs))
        assert srv.stats["requests"] == 1
    assert [v.passed for v in lexical] == [True, False, False]
    assert out == lexical and stats.calls == 1


def test_judge_replies_are_cached(tmp_path):
    cache = ResponseCache(tmp_path / "c.sqlite")
    pairs = [("What colour are the plaques?", "Red.")]
    with FakeOpenAIServer(responder=canned(verdicts("contradicted"))) as srv:
        _, first, s1 = asyncio.run(_judge(srv, pairs, cache=cache))
        _, second, s2 = asyncio.run(_judge(srv, pairs, cache=cache))
        assert srv.stats["requests"] == 1
    assert (s1.calls, s1.cache_misses, s2.calls, s2.cache_hits) == (1, 1, 0, 1)
    assert first == second and not second[0].passed


def test_unusable_reply_keeps_the_lexical_verdict_and_is_not_cached(tmp_path):
    cache = ResponseCache(tmp_path / "c.sqlite")
    pairs = [("What is the diagnosis?", "Psoriasis vulgaris.")]
    with FakeOpenAIServer(responder=canned("I think it is fine.")) as srv:
        lexical, out, stats = asyncio.run(_judge(srv, pairs, cache=cache))
        asyncio.run(_judge(srv, pairs, cache=cache))
        assert srv.stats["requests"] == 2
    assert out == lexical and stats.errors == 1


@pytest.mark.parametrize(("content", "labels"), [
    ('```json\n{"claims": [{"claim": "a", "label": "Supported"}]}\n```', ["supported"]),
    ('Sure: {"claims": [{"claim": "a", "label": "not mentioned"}, {"claim": "b", '
     '"label": "bogus"}]}', ["not_mentioned"]),
])
def test_parse_claims_tolerates_wrapping(content, labels):
    assert [c.label for c in parse_claims(content)] == labels


@pytest.mark.parametrize("content", ["", "{}", '{"claims": []}', '{"claims": [{"label": 3}]}'])
def test_parse_claims_rejects_unusable(content):
    with pytest.raises(ValueError):
        parse_claims(content)


def test_judge_flag_is_off_by_default_and_in_the_manifest():
    assert FilterConfig().judge is False
    assert FilterConfig().model_dump()["judge"] is False
    assert FilterConfig(judge=True).model_dump()["judge"] is True


# ------------------------------------------------------------------------- in the pipeline
RECORD = CaptionRecord(id="r1", image="img/1.jpg", caption=CAP, modality="clinical")
GEN = json.dumps({"qa_pairs": [
    {"question": "What is the diagnosis?", "answer": "Psoriasis vulgaris.", "type": "diagnosis"},
    {"question": "Where are the plaques?", "answer": "On both elbows.", "type": "location"},
    {"question": "How is it treated?", "answer": "With topical steroids.", "type": "treatment"},
]})


async def _process(srv: FakeOpenAIServer, judge: bool, cache=None):
    cfg = ClientConfig(base_url=srv.base_url, model="m", max_retries=1, backoff_initial=0.01)
    async with ChatClient(cfg) as client:
        ctx = GenerationContext.build(load_template("open_vqa"),
                                      GenerationSettings(qa_per_caption=3), client, "m",
                                      FilterConfig(judge=judge), cache=cache)
        return await process_record(InputItem(1, record=RECORD), ctx)


def test_pipeline_calls_the_judge_only_when_enabled(tmp_path):
    with FakeOpenAIServer(responder=canned(GEN)) as srv:
        off = asyncio.run(_process(srv, judge=False))
        assert srv.stats["requests"] == 1
    assert [s.question for s in off.kept] == ["What is the diagnosis?",
                                              "Where are the plaques?"]
    cache = ResponseCache(tmp_path / "c.sqlite")
    script = [GEN, verdicts("supported"), verdicts("contradicted")]
    with FakeOpenAIServer(responder=scripted(script, then=None)) as srv:
        on = asyncio.run(_process(srv, judge=True, cache=cache))
        assert srv.stats["requests"] == 3  # generation + one per lexically kept pair
        again = asyncio.run(_process(srv, judge=True, cache=cache))
        assert srv.stats["requests"] == 3  # everything from the cache
    assert on.status == "done" and on.calls == 3
    assert [s.question for s in on.kept] == ["What is the diagnosis?"]
    assert [s.question for s in on.rejected] == ["Where are the plaques?", "How is it treated?"]
    assert "judge_contradicted" in on.rejected[0].grounding.codes
    assert again.calls == 0 and again.cache_hits == 3
    assert [s.to_dict() for s in again.kept] == [s.to_dict() for s in on.kept]


def test_pipeline_judge_failure_fails_the_record():
    with FakeOpenAIServer(responder=scripted([GEN], then=None)) as srv:
        res = asyncio.run(_process(srv, judge=True))
    assert res.status == "failed" and "judge" in res.failure.message
