"""`vqa-gen run` end to end against the real test server: output layout, accounting, resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, SAMPLES, read_jsonl, read_shards, write_jsonl
from typer.testing import CliRunner

from vqa_gen.cli import app
from vqa_gen.testing import FakeOpenAIServer, FaultPlan, canned

runner = CliRunner()


def _run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["run", *args, "--quiet"])
    return result.exit_code, result.output


def _manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def assert_accounting(out: Path) -> dict:
    m = _manifest(out)
    c = m["counts"]
    assert c["records_read"] == c["records_invalid"] + c["records_failed"] + c["records_done"]
    assert c["qa_generated"] == c["qa_kept"] + c["qa_rejected"]
    assert len(read_shards(out, "data")) == c["qa_kept"]
    assert len(read_shards(out, "rejected")) == c["qa_rejected"]
    assert len(read_jsonl(out / "invalid.jsonl")) == c["records_invalid"]
    assert len(read_jsonl(out / "failed.jsonl")) == c["records_failed"]
    assert not list(out.glob("*.partial"))
    return m


def test_run_on_samples_writes_shards_and_a_manifest_that_adds_up(fake_server, tmp_path):
    out = tmp_path / "out"
    code, output = _run(str(SAMPLES / "captions.jsonl"), "--out", str(out), "--base-url",
                        fake_server.base_url, "--model", "fake", "--shard-size", "40")
    assert code == 0, output
    m = assert_accounting(out)
    assert m["status"] == "complete" and m["counts"]["records_read"] == 48
    assert m["counts"]["qa_kept"] > 0 and m["counts"]["qa_rejected"] > 0
    assert m["template"]["name"] == "open_vqa" and m["template"]["content_hash"]
    assert m["endpoint"]["endpoint_host"] == "127.0.0.1" and m["model"] == "fake"
    assert m["usage"]["total_tokens"] > 0 and m["started_at"] and m["ended_at"]
    data = sorted(p.name for p in out.glob("data-*.jsonl"))
    assert data[:2] == ["data-00000.jsonl", "data-00001.jsonl"]
    assert all(len(read_jsonl(out / n)) <= 40 for n in data)
    kept = read_shards(out, "data")
    assert len({r["id"] for r in kept}) == len(kept)
    assert all(r["grounding"]["passed"] for r in kept)
    assert all(not r["grounding"]["passed"] and r["grounding"]["reasons"]
               for r in read_shards(out, "rejected"))


def test_csv_input_with_mapped_columns(fake_server, tmp_path):
    out = tmp_path / "out"
    code, output = _run(str(SAMPLES / "captions.csv"), "--out", str(out), "--base-url",
                        fake_server.base_url, "--model", "m", "--id-field", "figure_id",
                        "--image-field", "image_path", "--caption-field", "legend")
    assert code == 0, output
    m = assert_accounting(out)
    assert m["counts"]["records_done"] == 8
    assert {r["image"] for r in read_shards(out, "data")} <= {
        row["image"] for row in read_jsonl_csv(SAMPLES / "captions.csv")}


def read_jsonl_csv(path: Path) -> list[dict]:
    import csv

    with path.open(newline="", encoding="utf-8") as fh:
        return [{"image": r["image_path"]} for r in csv.DictReader(fh)]


def test_invalid_and_failed_records_are_accounted_for(tmp_path):
    path = write_jsonl(tmp_path / "in.jsonl", [
        {"id": "a", "caption": "Psoriasis plaque on the elbow."},
        "{broken",
        {"id": "b", "caption": "Lichen planus papules on the wrist."},
        {"id": "a", "caption": "Duplicate."},
        {"id": "c", "caption": ""},
    ])
    out = tmp_path / "out"
    with FakeOpenAIServer(faults=FaultPlan(script=[None, "bad_request"])) as srv:
        code, output = _run(str(path), "--out", str(out), "--base-url", srv.base_url,
                            "--model", "m", "--concurrency", "1")
    assert code == 0, output
    m = assert_accounting(out)
    assert m["counts"] | {} == m["counts"]
    assert (m["counts"]["records_read"], m["counts"]["records_invalid"],
            m["counts"]["records_failed"], m["counts"]["records_done"]) == (5, 3, 1, 1)
    invalid = read_jsonl(out / "invalid.jsonl")
    assert [(r["line"], r["reason"]) for r in invalid] == [
        (2, "not valid JSON: unexpected character, expected a string key at column 2"),
        (4, "field 'id': duplicate id 'a'"), (5, "field 'caption': empty")]
    assert all(r["source"] == str(path) for r in invalid)
    (failed,) = read_jsonl(out / "failed.jsonl")
    assert failed["record_id"] == "b" and failed["error"]["kind"] == "bad_request"
    assert "invalid input" in output and "failed" in output


def test_api_key_never_reaches_outputs_or_cache(fake_server, tmp_path, _isolated_cache):
    out = tmp_path / "out"
    secret = "sk-live-SECRET-4242"
    code, output = _run(str(SAMPLES / "captions.jsonl"), "--out", str(out), "--base-url",
                        fake_server.base_url, "--model", "m", "--api-key", secret,
                        "--limit", "5")
    assert code == 0, output
    assert fake_server.requests[-1].headers["Authorization"] == f"Bearer {secret}"
    assert secret not in output
    files = [p for p in out.rglob("*") if p.is_file()] + [_isolated_cache]
    for p in files:
        assert secret.encode() not in p.read_bytes(), p


def test_rerun_of_a_finished_job_makes_no_calls(fake_server, tmp_path):
    out = tmp_path / "out"
    args = [str(SAMPLES / "captions.jsonl"), "--out", str(out), "--base-url",
            fake_server.base_url, "--model", "m"]
    assert _run(*args)[0] == 0
    first = read_shards(out, "data")
    calls = fake_server.stats["requests"]
    assert _run(*args)[0] == 0
    assert fake_server.stats["requests"] == calls
    assert read_shards(out, "data") == first
    # a fresh folder with the same settings is served from the response cache
    out2 = tmp_path / "out2"
    assert _run(args[0], "--out", str(out2), *args[3:])[0] == 0
    assert fake_server.stats["requests"] == calls
    m2 = assert_accounting(out2)
    assert m2["counts"]["cache_hits"] == m2["counts"]["records_done"]
    assert read_shards(out2, "data") == first


def test_different_settings_on_the_same_folder_are_refused(fake_server, tmp_path):
    out = tmp_path / "out"
    base = [str(SAMPLES / "captions.jsonl"), "--out", str(out), "--base-url",
            fake_server.base_url, "--model", "m", "--limit", "3"]
    assert _run(*base)[0] == 0
    code, output = _run(*base, "--temperature", "0.1")
    assert code == 2 and "different settings" in output and "generation" in output
    assert _run(*base, "--temperature", "0.1", "--overwrite")[0] == 0


def test_user_errors_are_one_line_without_traceback(tmp_path):
    code, output = _run(str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "o"),
                        "--base-url", "http://127.0.0.1:9/v1", "--model", "m")
    assert code == 2 and "input file not found" in output and "Traceback" not in output
    code, output = _run(str(SAMPLES / "captions.jsonl"), "--out", str(tmp_path / "o"),
                        "--template", "nope", "--base-url", "http://127.0.0.1:9/v1")
    assert code == 2 and "no template named 'nope'" in output and "Traceback" not in output


def _cli(*args: str, **kw) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "vqa_gen", "run", *args, "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, **kw)


def test_ctrl_c_keeps_work_marks_interrupted_exits_130_and_resumes(tmp_path):
    rows = [{"id": f"r{i:03d}", "caption": f"Psoriatic plaque number {i} on the elbow."}
            for i in range(60)]
    path = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out"
    with FakeOpenAIServer(latency_ms=100) as srv:
        args = [str(path), "--out", str(out), "--base-url", srv.base_url, "--model", "m",
                "--concurrency", "2", "--shard-size", "10", "--no-cache"]
        proc = _cli(*args)
        deadline = time.monotonic() + 20
        while srv.stats["ok"] < 12 and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 130, err
        assert "interrupted" in err and "Traceback" not in err
        m = _manifest(out)
        assert m["status"] == "interrupted" and 0 < m["counts"]["records_read"] < 60
        proc = _cli(*args)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    m = assert_accounting(out)
    assert m["status"] == "complete" and m["counts"]["records_read"] == 60 and m["resumed"]
    kept = read_shards(out, "data") + read_shards(out, "rejected")
    assert sorted({r["record_id"] for r in kept}) == [r["id"] for r in rows]
    assert len({r["id"] for r in kept}) == len(kept)


def test_embedded_default_errors_clearly_without_model(tmp_path, monkeypatch):
    code, output = _run(str(SAMPLES / "captions.jsonl"), "--out", str(tmp_path / "o"),
                        "--model-path", str(tmp_path / "nope.gguf"))
    assert code == 2 and "model file not found" in output


@pytest.mark.parametrize("responder", [canned("nothing useful")])
def test_all_records_failing_still_completes_with_reasons(tmp_path, responder):
    with FakeOpenAIServer(responder=responder) as srv:
        out = tmp_path / "out"
        code, output = _run(str(SAMPLES / "captions.jsonl"), "--out", str(out), "--base-url",
                            srv.base_url, "--model", "m", "--limit", "4")
    # the folder is complete, but the exit code says no record produced QA (issue 14)
    assert code == 4 and "no record produced QA" in output, output
    m = assert_accounting(out)
    assert m["status"] == "complete" and m["counts"]["records_failed"] == 4
    assert {r["error"]["kind"] for r in read_jsonl(out / "failed.jsonl")} == {"invalid_json"}
