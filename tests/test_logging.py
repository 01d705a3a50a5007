"""The `vqa_gen` log: retries, re-asks and circuit-breaker decisions are visible (`-v` in the CLI)
and counted in the manifest; the API key never reaches the log."""

from __future__ import annotations

import logging
import socket

import pytest
from conftest import read_jsonl, write_jsonl
from typer.testing import CliRunner

from vqa_gen.cli import app
from vqa_gen.runner import EndpointDownError, EndpointSettings, Run, RunOptions
from vqa_gen.testing import FakeOpenAIServer, FaultPlan

KEY = "sk-never-logged-4242"


def _rows(n: int) -> list[dict]:
    return [{"id": f"r{i}", "image": f"i{i}.jpg", "modality": "clinical",
             "caption": f"A {i + 2} mm red papule on the left forearm of a 40-year-old man."}
            for i in range(n)]


def test_retries_and_reasks_are_logged_and_counted_in_the_manifest(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="vqa_gen")
    path = write_jsonl(tmp_path / "in.jsonl", _rows(3))
    # concurrency 1: record 1 meets the 429, record 2 the unusable reply, record 3 nothing
    plan = FaultPlan(script=["rate_limit", None, "wrong_shape", None, None], retry_after=0.01)
    with FakeOpenAIServer(faults=plan, api_key=KEY) as srv:
        manifest = Run(RunOptions(input=path, out_dir=tmp_path / "out", use_cache=False,
                                  endpoint=EndpointSettings(base_url=srv.base_url, model="m",
                                                            api_key=KEY, concurrency=1))).run()
        assert srv.stats["requests"] == 5
    c = manifest["counts"]
    assert (c["llm_calls"], c["retries"], c["reasks"], c["records_done"]) == (5, 1, 1, 3)
    progress = read_jsonl(tmp_path / "out" / ".vqa-gen" / "progress.jsonl")
    assert [e["retries"] for e in progress] == [1, 0, 0]
    retry_logs = [r for r in caplog.records if "retrying a call" in r.getMessage()]
    assert len(retry_logs) == 1 and retry_logs[0].name == "vqa_gen.llm"
    assert "rate_limit (HTTP 429)" in retry_logs[0].getMessage()
    reasks = [r for r in caplog.records if "re-asking" in r.getMessage()]
    assert len(reasks) == 1 and "record r1" in reasks[0].getMessage()
    assert "wrong_shape" in reasks[0].getMessage()
    assert KEY not in caplog.text


def _dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def test_circuit_breaker_decisions_are_logged(tmp_path, caplog):
    caplog.set_level(logging.DEBUG, logger="vqa_gen")
    path = write_jsonl(tmp_path / "in.jsonl", _rows(12))
    with pytest.raises(EndpointDownError):
        Run(RunOptions(input=path, out_dir=tmp_path / "out", use_cache=False,
                       endpoint=EndpointSettings(base_url=_dead_url(), model="m", max_retries=0,
                                                 concurrency=1))).run()
    steps = [r for r in caplog.records if "records in a row failed at the endpoint" in
             r.getMessage() and r.levelno == logging.DEBUG]
    assert len(steps) == 10
    tripped = [r for r in caplog.records if "circuit breaker tripped" in r.getMessage()]
    assert len(tripped) == 1 and tripped[0].levelno == logging.WARNING
    assert "connection" in tripped[0].getMessage()


def test_cli_verbose_shows_retries_and_quiet_default_does_not(tmp_path):
    path = write_jsonl(tmp_path / "in.jsonl", _rows(2))
    runner = CliRunner()
    outputs = {}
    for flag in ("-v", None):
        with FakeOpenAIServer(faults=FaultPlan(script=["server_error"])) as srv:
            args = [*([flag] if flag else []), "run", str(path), "--out",
                    str(tmp_path / f"out{flag}"), "--base-url", srv.base_url, "--model", "m",
                    "--no-cache", "--quiet", "--concurrency", "1"]
            result = runner.invoke(app, args, env={"COLUMNS": "200"})
            assert result.exit_code == 0, result.output
            assert srv.stats["server_error"] == 1
        outputs[flag] = result.output
    assert "retrying a call after server_error (HTTP 500)" in outputs["-v"]
    assert "retrying" not in outputs[None]
