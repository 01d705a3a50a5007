"""Tests for the fake OpenAI server: real HTTP, every fault kind, latency overlap, subprocess mode.

The rest of the suite trusts this server to misbehave exactly as documented, so each fault's
observable outcome is pinned here.
"""

from __future__ import annotations

import asyncio
import http.client
import re
import subprocess
from collections.abc import Iterator
from typing import Any

import aiohttp
import openai
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vqa_gen.testing import (
    ALL_FAULTS,
    DEFAULT_FAULT_MIX,
    FakeOpenAIServer,
    FaultPlan,
    canned,
    extract_caption,
    qa_from_caption,
    scripted,
    start_subprocess_server,
)

CAPTION = (
    "Axial CT of the chest shows a 2 cm nodule in the right upper lobe. "
    "There is no pleural effusion. The heart size is normal."
)
PROMPT = f"Generate 4 questions about the image.\n\nCaption: {CAPTION}\n\nAnswer in JSON."


def chat_body(prompt: str = PROMPT, model: str = "test-model") -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": prompt}]}


def post(
    srv: FakeOpenAIServer, body: Any = None, timeout: float = 5.0
) -> tuple[int, dict[str, str], bytes]:
    """Raw POST to /v1/chat/completions: status, lower-cased headers, body bytes."""
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=timeout)
    try:
        raw = body if isinstance(body, bytes) else orjson.dumps(body or chat_body())
        conn.request(
            "POST",
            "/v1/chat/completions",
            body=raw,
            headers={"Content-Type": "application/json", "Authorization": "Bearer test"},
        )
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def content_of(raw: bytes) -> str:
    return orjson.loads(raw)["choices"][0]["message"]["content"]


@pytest.fixture
def srv() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as server:
        yield server


@pytest.fixture
def client(srv: FakeOpenAIServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=srv.base_url, api_key="test", max_retries=0, timeout=5.0)


# ---- default responder ------------------------------------------------------------------------


def test_default_responder_returns_grounded_qa_pairs(
    srv: FakeOpenAIServer, client: openai.OpenAI
) -> None:
    resp = client.chat.completions.create(
        model="my-model", messages=[{"role": "user", "content": PROMPT}]
    )
    assert resp.model == "my-model"
    assert resp.object == "chat.completion"
    choice = resp.choices[0]
    assert choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    pairs = orjson.loads(choice.message.content)["qa_pairs"]
    assert len(pairs) == 4
    for pair in pairs:
        assert set(pair) == {"question", "answer", "type"}
        assert pair["question"].endswith("?")
        assert pair["answer"] in CAPTION
    assert len({p["question"] for p in pairs}) == 4
    assert resp.usage is not None
    assert resp.usage.prompt_tokens == len(PROMPT.split())
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens
    # deterministic for the same input
    again = client.chat.completions.create(
        model="my-model", messages=[{"role": "user", "content": PROMPT}]
    )
    assert again.choices[0].message.content == choice.message.content
    assert srv.stats["requests"] == 2
    assert srv.stats["ok"] == 2


def test_default_n_is_three_and_bare_caption_falls_back_to_whole_message() -> None:
    out = orjson.loads(qa_from_caption(chat_body(CAPTION)))["qa_pairs"]
    assert len(out) == 3
    assert [p["answer"] for p in out] == [
        "Axial CT of the chest shows a 2 cm nodule in the right upper lobe",
        "There is no pleural effusion",
        "The heart size is normal",
    ]


def test_n_from_system_prompt_and_multimodal_content() -> None:
    body = {
        "model": "m",
        "messages": [
            {"role": "system", "content": "You write exactly five QA pairs per caption."},
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                    {"type": "text", "text": f"Caption: {CAPTION}\n\nReturn JSON."},
                ],
            },
        ],
    }
    pairs = orjson.loads(qa_from_caption(body))["qa_pairs"]
    assert len(pairs) == 5
    assert all(p["answer"] in CAPTION for p in pairs)


def test_extract_caption() -> None:
    text = 'Intro line\ncaption:  "MRI brain, T2.\nSecond line."\n\nInstructions follow'
    assert extract_caption(text) == "MRI brain, T2.\nSecond line."
    assert extract_caption("just a caption") == "just a caption"
    assert orjson.loads(qa_from_caption(chat_body("Caption: \n\n")))["qa_pairs"] == []


@settings(max_examples=150, deadline=None)
# No lone surrogates: they cannot travel in a UTF-8 JSON request body anyway.
@given(
    caption=st.text(
        alphabet=st.characters(exclude_categories=("Cs",), exclude_characters="\n"), max_size=200
    )
)
def test_answers_are_always_caption_spans(caption: str) -> None:
    out = orjson.loads(qa_from_caption(chat_body(f"Write 4 QA pairs.\nCaption: {caption}\n\n")))
    pairs = out["qa_pairs"]
    assert all(p["answer"] and p["answer"] in caption for p in pairs)
    assert len(pairs) in (0, 4)


def test_models_endpoint(srv: FakeOpenAIServer, client: openai.OpenAI) -> None:
    models = client.models.list()
    assert [m.id for m in models.data] == ["fake-model"]
    assert srv.stats["models"] == 1


# ---- faults -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "status", "code"),
    [
        ("rate_limit", 429, "rate_limit_exceeded"),
        ("rate_limit_no_header", 429, "rate_limit_exceeded"),
        ("server_error", 500, None),
        ("bad_gateway", 502, "bad_gateway"),
        ("unavailable", 503, "overloaded"),
        ("bad_request", 400, "invalid_request"),
        ("auth_error", 401, "invalid_api_key"),
    ],
)
def test_http_error_faults(
    srv: FakeOpenAIServer, fault: str, status: int, code: str | None
) -> None:
    srv.faults = FaultPlan(script=[fault])
    got, headers, raw = post(srv)
    assert got == status
    err = orjson.loads(raw)["error"]
    assert isinstance(err["message"], str)
    assert err["message"]
    assert isinstance(err["type"], str)
    assert err["code"] == code
    if fault == "rate_limit":
        assert headers["retry-after"] == "0.05"
        assert headers["retry-after-ms"] == "50"
    else:
        assert "retry-after" not in headers
    assert srv.stats[fault] == 1
    assert srv.stats["ok"] == 0
    assert post(srv)[0] == 200  # script used up: back to normal


def test_retry_after_is_configurable(srv: FakeOpenAIServer, client: openai.OpenAI) -> None:
    srv.faults = FaultPlan(script=["rate_limit"], retry_after=1.5)
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(**chat_body())
    assert info.value.response.headers["retry-after"] == "1.5"
    assert info.value.response.headers["retry-after-ms"] == "1500"


def test_openai_client_maps_status_faults(srv: FakeOpenAIServer, client: openai.OpenAI) -> None:
    kinds = ["rate_limit", "server_error", "bad_gateway", "unavailable", "bad_request"]
    srv.faults = FaultPlan(script=[*kinds, "auth_error"])
    expected = [
        openai.RateLimitError,
        openai.InternalServerError,
        openai.InternalServerError,
        openai.InternalServerError,
        openai.BadRequestError,
        openai.AuthenticationError,
    ]
    for exc_type in expected:
        with pytest.raises(exc_type):
            client.chat.completions.create(**chat_body())


def test_malformed_body(srv: FakeOpenAIServer) -> None:
    srv.faults = FaultPlan(script=["malformed_body"])
    status, headers, raw = post(srv)
    assert status == 200
    assert headers["content-type"].startswith("application/json")
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(raw)


def test_content_faults(srv: FakeOpenAIServer) -> None:
    _, _, good = post(srv)
    normal = content_of(good)
    srv.faults = FaultPlan(
        script=["bad_json_content", "wrong_shape", "empty_choices", "truncated", "refusal"]
    )

    status, _, raw = post(srv)
    assert status == 200
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(content_of(raw))

    wrong = orjson.loads(content_of(post(srv)[2]))
    assert "qa_pairs" not in wrong
    assert isinstance(wrong["questions"], list)

    empty = orjson.loads(post(srv)[2])
    assert empty["choices"] == []
    assert empty["object"] == "chat.completion"

    trunc = orjson.loads(post(srv)[2])["choices"][0]
    assert trunc["finish_reason"] == "length"
    assert normal.startswith(trunc["message"]["content"])
    assert len(trunc["message"]["content"]) < len(normal)
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(trunc["message"]["content"])

    assert content_of(post(srv)[2]) == "I'm sorry, I can't help with that."
    for kind in ("bad_json_content", "wrong_shape", "empty_choices", "truncated", "refusal"):
        assert srv.stats[kind] == 1
    assert srv.stats["ok"] == 1


def test_drop_raises_connection_error(srv: FakeOpenAIServer, client: openai.OpenAI) -> None:
    srv.faults = FaultPlan(script=["drop"])
    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(**chat_body())
    assert srv.stats["drop"] == 1
    client.chat.completions.create(**chat_body())  # server still healthy afterwards


def test_timeout_fault_trips_client_timeout(srv: FakeOpenAIServer) -> None:
    srv.faults = FaultPlan(script=["timeout"], hang_seconds=5)
    client = openai.OpenAI(base_url=srv.base_url, api_key="t", max_retries=0, timeout=0.3)
    # the server would answer after 5 s: an APITimeoutError shows the client gave up first
    with pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(**chat_body())
    assert srv.stats["timeout"] == 1 and srv.stats["ok"] == 0


def test_short_hang_then_answers(srv: FakeOpenAIServer, client: openai.OpenAI) -> None:
    srv.faults = FaultPlan(script=["timeout"], hang_seconds=0.2)
    resp = client.chat.completions.create(**chat_body())
    # the request met the hang (counted) and was still answered, within the client's timeout
    assert srv.stats["timeout"] == 1 and srv.stats["ok"] == 1
    assert orjson.loads(resp.choices[0].message.content)["qa_pairs"]


def test_scripted_faults_happen_in_order_and_are_recorded(srv: FakeOpenAIServer) -> None:
    script = ["rate_limit", None, "server_error", "wrong_shape", None]
    srv.faults = FaultPlan(script=script)
    statuses = [post(srv)[0] for _ in range(6)]
    assert statuses == [429, 200, 500, 200, 200, 200]
    recorded = list(srv.requests)
    assert [r.fault for r in recorded] == [*script, None]
    assert recorded[0].headers["Authorization"] == "Bearer test"  # raw, not redacted
    assert recorded[0].body == chat_body()
    assert recorded[0].path == "/v1/chat/completions"
    assert srv.stats["requests"] == 6
    assert srv.stats["ok"] == 3


def test_fault_plan_rng_is_seeded_and_spread() -> None:
    plan = FaultPlan.spread(0.5, seed=7)
    first = [plan.pick() for _ in range(4000)]
    plan.reset()
    assert [plan.pick() for _ in range(4000)] == first
    rate = sum(f is not None for f in first) / len(first)
    assert 0.45 < rate < 0.55
    assert {f for f in first if f} == set(DEFAULT_FAULT_MIX)
    assert FaultPlan.spread(0.5, seed=8).probabilities() == plan.probabilities()
    with pytest.raises(ValueError):
        FaultPlan(rate_limit=0.7, server_error=0.7)
    with pytest.raises(ValueError):
        FaultPlan(script=["no_such_fault"])
    assert set(FaultPlan().probabilities()) == set()
    assert "drop" in ALL_FAULTS


def test_random_faults_over_http(srv: FakeOpenAIServer) -> None:
    srv.faults = FaultPlan(server_error=0.5, seed=3)
    statuses = [post(srv)[0] for _ in range(60)]
    assert 10 < statuses.count(500) < 50
    assert statuses.count(500) + statuses.count(200) == 60
    assert srv.stats["server_error"] == statuses.count(500)
    srv.reset()
    assert srv.stats["requests"] == 0
    assert not srv.requests
    assert [post(srv)[0] for _ in range(60)] == statuses  # reset replays the seeded plan


# ---- responders, config changes, auth ---------------------------------------------------------


def test_canned_scripted_and_dict_override(srv: FakeOpenAIServer) -> None:
    srv.responder = canned("a", "b")
    assert [content_of(post(srv)[2]) for _ in range(3)] == ["a", "b", "a"]

    override = {"id": "x", "object": "chat.completion", "choices": [], "custom": 1}
    srv.responder = scripted(["first", lambda body: body["model"], override], then=None)
    assert content_of(post(srv)[2]) == "first"
    assert content_of(post(srv)[2]) == "test-model"
    assert orjson.loads(post(srv)[2]) == override
    status, _, raw = post(srv)
    assert status == 500
    assert srv.stats["responder_error"] == 1
    assert "exhausted" in orjson.loads(raw)["error"]["message"]

    srv.responder = scripted(["only"])  # falls back to qa_from_caption
    assert content_of(post(srv)[2]) == "only"
    assert "qa_pairs" in orjson.loads(content_of(post(srv)[2]))


def test_async_responder_and_invalid_json(srv: FakeOpenAIServer) -> None:
    async def slow(body: dict[str, Any]) -> str:
        await asyncio.sleep(0.01)
        return "async ok"

    srv.responder = slow
    assert content_of(post(srv)[2]) == "async ok"
    status, _, raw = post(srv, b"{not json")
    assert status == 400
    assert orjson.loads(raw)["error"]["type"] == "invalid_request_error"
    assert srv.stats["invalid"] == 1


def test_api_key_enforced() -> None:
    with FakeOpenAIServer(api_key="sekrit") as srv:
        bad = openai.OpenAI(base_url=srv.base_url, api_key="wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            bad.chat.completions.create(**chat_body())
        good = openai.OpenAI(base_url=srv.base_url, api_key="sekrit", max_retries=0)
        good.chat.completions.create(**chat_body())
        assert srv.stats["unauthorized"] == 1


# ---- latency and concurrency ------------------------------------------------------------------


async def _concurrent(base_url: str, n: int) -> list[int]:
    async def one(session: aiohttp.ClientSession) -> int:
        async with session.post(base_url + "/chat/completions", json=chat_body()) as resp:
            await resp.read()
            return resp.status

    connector = aiohttp.TCPConnector(limit=n)
    async with aiohttp.ClientSession(connector=connector) as session:
        return await asyncio.gather(*(one(session) for _ in range(n)))


def test_latency_overlaps_under_concurrency() -> None:
    with FakeOpenAIServer(latency_ms=200) as srv:
        assert asyncio.run(_concurrent(srv.base_url, 20)) == [200] * 20
        assert [r.delay_ms for r in srv.requests] == [200] * 20
        # all 20 were inside the server's latency at once: the waits overlapped
        assert srv.stats["max_in_flight"] == 20
        assert srv.stats["ok"] == 20
        assert srv.stats["in_flight"] == 0


def test_jitter_and_latency_change_between_requests(srv: FakeOpenAIServer) -> None:
    srv.latency_ms, srv.jitter_ms = 60, 40
    for _ in range(5):
        post(srv)
    delays = [r.delay_ms for r in srv.requests]
    assert all(20 <= d <= 100 for d in delays) and len(set(delays)) > 1, delays
    srv.latency_ms, srv.jitter_ms = 0, 0
    post(srv)
    assert srv.requests[-1].delay_ms == 0


def test_async_context_manager_in_callers_loop() -> None:
    async def run() -> None:
        async with FakeOpenAIServer(latency_ms=10) as srv:
            client = openai.AsyncOpenAI(base_url=srv.base_url, api_key="t", max_retries=0)
            resps = await asyncio.gather(
                *(client.chat.completions.create(**chat_body()) for _ in range(5))
            )
            assert all(r.choices[0].finish_reason == "stop" for r in resps)
            await client.close()
            assert srv.stats["ok"] == 5

    asyncio.run(run())


# ---- subprocess mode --------------------------------------------------------------------------


def test_subprocess_mode_prints_ready_and_serves() -> None:
    with start_subprocess_server(
        latency_ms=5, jitter_ms=2, seed=1, script=["rate_limit", None], stderr=subprocess.PIPE
    ) as (proc, base_url):
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/v1", base_url)
        client = openai.OpenAI(base_url=base_url, api_key="t", max_retries=0)
        with pytest.raises(openai.RateLimitError):
            client.chat.completions.create(**chat_body())
        resp = client.chat.completions.create(**chat_body())
        assert len(orjson.loads(resp.choices[0].message.content)["qa_pairs"]) == 4
        proc.terminate()
        assert proc.wait(10) == 0
        assert proc.stdout is not None
        assert proc.stdout.read() == ""  # READY was the only stdout line
        assert proc.stderr is not None
        err = proc.stderr.read()
        stats = orjson.loads(err.split("STATS ", 1)[1])
        assert stats["requests"] == 2
        assert stats["rate_limit"] == 1
        assert stats["ok"] == 1


def test_subprocess_fault_rate_flag() -> None:
    with start_subprocess_server(fault_rate=1.0, hang_seconds=0.05, retry_after=0.01) as (
        _proc,
        base_url,
    ):
        client = openai.OpenAI(base_url=base_url, api_key="t", max_retries=0, timeout=5)
        failures = 0
        for _ in range(10):
            try:
                resp = client.chat.completions.create(**chat_body())
                content = resp.choices[0].message.content or ""
                parsed = orjson.loads(content)
                failures += "qa_pairs" not in parsed or resp.choices[0].finish_reason != "stop"
            except (openai.APIError, ValueError):
                failures += 1
        # every request faults; a `timeout` fault with a tiny hang answers normally
        assert failures >= 7


def test_subprocess_bad_args_fail_fast() -> None:
    with pytest.raises(RuntimeError, match="did not get ready"):  # noqa: SIM117
        with start_subprocess_server(fault={"nonsense": 0.5}, stderr=subprocess.DEVNULL):
            pass
