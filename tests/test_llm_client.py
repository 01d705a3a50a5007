"""The lean chat client against the real test server: retries, backoff, error semantics."""

from __future__ import annotations

import asyncio
import logging

import pytest

from vqa_gen.llm import ChatClient, ClientConfig, LLMError, resolve_client_config
from vqa_gen.testing import FakeOpenAIServer, FaultPlan, canned

MESSAGES = [{"role": "user", "content": "Caption: A red plaque.\n\nWrite 2 questions."}]


def _client(srv: FakeOpenAIServer, **kw) -> ChatClient:
    cfg = dict(base_url=srv.base_url, model="m", api_key="sk-test-123", timeout=5.0,
               max_retries=4, backoff_initial=0.01, backoff_max=0.05)
    cfg.update(kw)
    return ChatClient(ClientConfig(**cfg))


async def _complete(srv: FakeOpenAIServer, **kw):
    async with _client(srv, **kw) as client:
        return await client.complete(MESSAGES, temperature=0.1, seed=3), client


def test_success_sends_model_params_and_bearer_key(fake_server):
    result, _ = asyncio.run(_complete(fake_server))
    assert "qa_pairs" in result.content and result.finish_reason == "stop"
    assert result.usage.total_tokens > 0 and result.attempts == 1
    req = fake_server.requests[-1]
    assert req.body["model"] == "m" and req.body["seed"] == 3
    assert req.headers["Authorization"] == "Bearer sk-test-123"


@pytest.mark.parametrize("fault", ["rate_limit", "rate_limit_no_header", "server_error",
                                   "bad_gateway", "unavailable", "drop", "malformed_body",
                                   "empty_choices"])
def test_transient_faults_are_retried(fault):
    with FakeOpenAIServer(faults=FaultPlan(script=[fault, fault])) as srv:
        result, client = asyncio.run(_complete(srv))
        assert result.attempts == 3 and client.retries == 2
        assert srv.stats[fault] == 2 and srv.stats["ok"] == 1


def test_timeout_is_retried():
    with FakeOpenAIServer(faults=FaultPlan(script=["timeout"], hang_seconds=3)) as srv:
        result, _ = asyncio.run(_complete(srv, timeout=0.3))
        # the first attempt would have been answered after 3 s: two attempts mean the client
        # timed out and retried
        assert result.attempts == 2 and srv.stats["timeout"] == 1 and srv.stats["ok"] == 1


@pytest.mark.parametrize(("fault", "kind", "status"), [("bad_request", "bad_request", 400),
                                                       ("auth_error", "auth", 401)])
def test_other_4xx_fail_at_once_with_the_reason(fault, kind, status):
    with FakeOpenAIServer(faults=FaultPlan(script=[fault])) as srv:
        with pytest.raises(LLMError) as info:
            asyncio.run(_complete(srv))
        assert info.value.kind == kind and info.value.status == status
        assert srv.stats["requests"] == 1
        assert "sk-test-123" not in str(info.value)


def test_gives_up_after_max_retries():
    with FakeOpenAIServer(faults=FaultPlan(script=["server_error"] * 10)) as srv:
        with pytest.raises(LLMError) as info:
            asyncio.run(_complete(srv, max_retries=2))
        assert info.value.kind == "server_error" and srv.stats["requests"] == 3


def test_retry_after_is_honoured(caplog):
    caplog.set_level(logging.INFO, logger="vqa_gen.llm")
    with FakeOpenAIServer(faults=FaultPlan(script=["rate_limit"], retry_after=0.4)) as srv:
        result, _ = asyncio.run(_complete(srv, backoff_initial=0.001))
        assert result.attempts == 2 and srv.stats["rate_limit"] == 1
    # the client's own backoff would wait at most 1 ms: the endpoint's Retry-After set the wait
    waits = [r.args[-1] for r in caplog.records if "retrying a call" in r.getMessage()]
    assert len(waits) == 1 and waits[0] >= 0.4, waits


def test_connection_refused_is_an_llm_error():
    cfg = ClientConfig(base_url="http://127.0.0.1:9/v1", model="m", max_retries=1,
                       backoff_initial=0.01, timeout=2)

    async def go():
        async with ChatClient(cfg) as c:
            await c.complete(MESSAGES)

    with pytest.raises(LLMError) as info:
        asyncio.run(go())
    assert info.value.kind == "connection"


def test_concurrency_is_bounded():
    with FakeOpenAIServer(latency_ms=50) as srv:
        async def go():
            async with _client(srv, concurrency=5) as c:
                await asyncio.gather(*(c.complete(MESSAGES) for _ in range(20)))
        asyncio.run(go())
        assert srv.stats["max_in_flight"] <= 5


def test_refusal_field_becomes_content():
    body = {"id": "x", "object": "chat.completion", "created": 0, "model": "m",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": None,
                                     "refusal": "I can't help with that."}}]}
    with FakeOpenAIServer(responder=canned(body)) as srv:
        result, _ = asyncio.run(_complete(srv))
        assert result.content == "I can't help with that."


def test_config_from_environment_and_describe_hides_the_key(monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://example.invalid:8000/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    cfg = resolve_client_config(base_url=None, api_key=None, model="m")
    assert cfg.base_url == "http://example.invalid:8000/v1" and cfg.api_key == "sk-secret"
    assert "sk-secret" not in repr(cfg.describe())
    assert cfg.describe()["endpoint_host"] == "example.invalid"
