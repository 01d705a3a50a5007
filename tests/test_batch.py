"""Batch files end to end against the real test server: prepare -> submit -> status -> fetch ->
ingest gives the run folder `run` writes; vLLM run_batch results ingest the same way; failed
lines are re-prepared alone; a later `run` is served from the cache."""

from __future__ import annotations

import json
from pathlib import Path

import openai
import orjson
import pytest
from conftest import read_jsonl, read_shards
from typer.testing import CliRunner

from vqa_gen.authoring import render_request
from vqa_gen.batch import (
    BatchError,
    PrepareOptions,
    fetch,
    ingest,
    iter_requests,
    load_submissions,
    prepare,
    status,
    submit,
)
from vqa_gen.cli import app
from vqa_gen.pipeline import cache_key, record_seed
from vqa_gen.records import read_records
from vqa_gen.runner import EndpointSettings, Run, RunOptions
from vqa_gen.templates import load_template
from vqa_gen.testing import FakeOpenAIServer, qa_from_caption

MODEL = "fake-model"


def live_run(server: FakeOpenAIServer, inp: Path, out: Path, cache: Path) -> dict:
    options = RunOptions(input=inp, out_dir=out,
                         endpoint=EndpointSettings(base_url=server.base_url, model=MODEL,
                                                   api_key="sk-test"),
                         cache_path=cache)
    return Run(options).run()


def kept(out: Path) -> list[dict]:
    return read_shards(out, "data")


def client_for(server: FakeOpenAIServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0)


def vllm_results(batch_dir: Path, path: Path, reply=qa_from_caption) -> Path:
    """What `vllm run_batch` writes for the prepared requests (BatchRequestOutput lines)."""
    with path.open("wb") as fh:
        for n, req in enumerate(iter_requests(batch_dir)):
            content = reply(req["body"])
            body = {"id": f"cmpl-{n}", "object": "chat.completion", "created": 0,
                    "model": req["body"]["model"],
                    "choices": [{"index": 0, "message": {"role": "assistant",
                                                         "content": content},
                                 "logprobs": None, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 5,
                              "total_tokens": 15}}
            fh.write(orjson.dumps({"id": f"vllm-{n:032x}", "custom_id": req["custom_id"],
                                   "response": {"status_code": 200,
                                                "request_id": f"vllm-batch-{n}", "body": body},
                                   "error": None}) + b"\n")
    return path


def test_prepare_writes_the_bodies_run_sends_and_splits_files(samples_jsonl, tmp_path):
    out = tmp_path / "b"
    summary = prepare(PrepareOptions(input=samples_jsonl, out_dir=out, model=MODEL,
                                     max_requests_per_file=10))
    template = load_template("open_vqa")
    records = [i.record for i in read_records(samples_jsonl) if i.record is not None]
    lines = list(iter_requests(out))
    assert summary.requests == len(lines) == len(records) - summary.skipped
    assert [f["name"] for f in summary.files] == [
        f"requests-{i:05d}.jsonl" for i in range(-(-len(lines) // 10))]
    assert all(f["requests"] <= 10 for f in summary.files)
    by_id = {cache_key(MODEL, *_req(template, r)): r for r in records}
    for line in lines:
        assert line["method"] == "POST" and line["url"] == "/v1/chat/completions"
        record = by_id[line["custom_id"]]
        req = render_request(template, record)
        assert line["body"] == {"model": MODEL, "messages": req.messages, **req.params}
        assert line["body"]["seed"] == record_seed(0, record.id)
        assert line["body"]["response_format"]["type"] == "json_schema"
    # a second prepare into the same folder is refused (no silent overwrite)
    with pytest.raises(BatchError, match="not empty"):
        prepare(PrepareOptions(input=samples_jsonl, out_dir=out, model=MODEL))


def _req(template, record):
    r = render_request(template, record)
    return r.messages, r.params


def test_prepare_splits_at_the_byte_limit(samples_jsonl, tmp_path):
    out = tmp_path / "b"
    limit = 20_000
    summary = prepare(PrepareOptions(input=samples_jsonl, out_dir=out, model=MODEL,
                                     max_bytes_per_file=limit))
    assert len(summary.files) > 1
    for f in summary.files:
        assert (out / f["name"]).stat().st_size == f["bytes"] <= limit
    assert sum(f["requests"] for f in summary.files) == summary.requests
    assert not list(out.glob("*.partial"))
    # a request over the limit stops prepare with one line and leaves no file behind
    with pytest.raises(BatchError, match="over the 2,000-byte file limit"):
        prepare(PrepareOptions(input=samples_jsonl, out_dir=tmp_path / "small", model=MODEL,
                               max_bytes_per_file=2000))
    assert list((tmp_path / "small").iterdir()) == []


def test_batch_round_trip_equals_run(fake_server, samples_jsonl, tmp_path):
    live = live_run(fake_server, samples_jsonl, tmp_path / "live", tmp_path / "live.sqlite")
    fake_server.reset()
    bdir = tmp_path / "batch"
    prepare(PrepareOptions(input=samples_jsonl, out_dir=bdir, model=MODEL,
                           max_requests_per_file=20))
    client = client_for(fake_server)
    fake_server.batch_polls = 2  # two polls see `in_progress`, the third completes
    started = submit(bdir, client)
    n_files = len(started)
    assert n_files >= 2 and fake_server.stats["batches_created"] == n_files
    # a rerun never submits twice
    assert submit(bdir, client) == []
    assert fake_server.stats["files_uploaded"] == fake_server.stats["batches_created"] == n_files
    assert {r["status"] for r in status(bdir, client)} == {"in_progress"}
    assert fetch(bdir, client) == []  # fetch polls too: still in progress
    assert {r["status"] for r in status(bdir, client)} == {"completed"}
    paths = fetch(bdir, client)
    assert len(paths) == n_files and all(p.is_file() for p in paths)
    assert fake_server.stats["requests"] == 0  # no live chat call: all went through batches
    cache = tmp_path / "ingest.sqlite"
    manifest, problems = ingest(bdir, cache_path=cache)
    assert problems == []
    run_dir = bdir / "run"
    assert kept(run_dir) == kept(tmp_path / "live")
    assert read_shards(run_dir, "rejected") == read_shards(tmp_path / "live", "rejected")
    c = manifest["counts"]
    assert c == {**live["counts"], "llm_calls": c["llm_calls"],
                 "cache_hits": 0, "cache_misses": c["cache_misses"]}
    assert c["records_read"] == c["records_done"] + c["records_failed"] + c["records_invalid"]
    assert manifest["status"] == "complete"
    assert manifest["engine"] == {"name": "batch", "batch_dir": str(bdir),
                                  "results": [str(p) for p in paths], "results_lines": 48}
    # a later `run` with that cache pays nothing
    fake_server.reset()
    again = live_run(fake_server, samples_jsonl, tmp_path / "again", cache)
    assert fake_server.stats["requests"] == 0
    assert again["counts"]["cache_hits"] == c["cache_misses"] > 0
    assert kept(tmp_path / "again") == kept(tmp_path / "live")


def test_vllm_run_batch_results_ingest_the_same_way(fake_server, samples_jsonl, tmp_path):
    live_run(fake_server, samples_jsonl, tmp_path / "live", tmp_path / "live.sqlite")
    bdir = tmp_path / "batch"
    prepare(PrepareOptions(input=samples_jsonl, out_dir=bdir, model=MODEL))
    results = vllm_results(bdir, tmp_path / "vllm-output.jsonl")
    manifest, _ = ingest(bdir, [results], cache_path=tmp_path / "c.sqlite")
    assert kept(bdir / "run") == kept(tmp_path / "live")
    assert manifest["counts"]["records_failed"] == 0


def test_results_of_another_job_are_flagged(samples_jsonl, tmp_path):
    other = tmp_path / "other"
    prepare(PrepareOptions(input=samples_jsonl, out_dir=other, model="another-model"))
    results = vllm_results(other, tmp_path / "other-output.jsonl")
    bdir = tmp_path / "batch"
    prepare(PrepareOptions(input=samples_jsonl, out_dir=bdir, model=MODEL, limit=4))
    manifest, problems = ingest(bdir, [results])
    assert manifest["counts"]["records_failed"] == 4
    assert problems == ["none of the 48 result lines answers a request of this batch: results "
                        "of another job, or of files prepared differently?"]


def test_failed_lines_are_reported_and_reprepared_alone(fake_server, samples_jsonl, tmp_path):
    live_run(fake_server, samples_jsonl, tmp_path / "live", tmp_path / "live.sqlite")
    bdir = tmp_path / "batch"
    prepare(PrepareOptions(input=samples_jsonl, out_dir=bdir, model=MODEL))
    good = vllm_results(bdir, tmp_path / "all.jsonl").read_bytes().splitlines()
    rows = [orjson.loads(x) for x in good]
    rows[0] = {**rows[0], "response": None,
               "error": {"code": "batch_expired", "message": "This request expired."}}
    rows[1]["response"] = {"status_code": 500, "request_id": "r",
                           "body": {"error": {"message": "boom"}}}
    rows[2]["response"]["body"]["choices"][0]["message"]["content"] = "Sure! Here you go."
    missing = rows.pop(3)
    bad = tmp_path / "results.jsonl"
    bad.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows) + b"{not json\n")
    manifest, problems = ingest(bdir, [bad], cache_path=tmp_path / "c.sqlite")
    assert problems == [f"{bad}:{len(rows) + 1}: not a JSON object; line ignored"]
    failed = read_jsonl(bdir / "run" / "failed.jsonl")
    kinds = sorted(f["error"]["kind"] for f in failed)
    assert kinds == ["batch_error", "batch_error", "batch_missing", "invalid_json"]
    messages = " ".join(f["error"]["message"] for f in failed)
    assert f"{bad}:1: batch_expired: This request expired." in messages
    assert f"{bad}:2: request failed with HTTP 500: boom" in messages
    c = manifest["counts"]
    assert c["records_failed"] == 4
    assert c["records_read"] == c["records_done"] + c["records_failed"] + c["records_invalid"]
    # only the four failed records are prepared again, in a new requests file
    summary = prepare(PrepareOptions(input=samples_jsonl, out_dir=bdir, model=MODEL,
                                     retry_failed=True))
    assert summary.requests == 4 and summary.round == 1
    retry_ids = {r["custom_id"] for r in read_jsonl(bdir / summary.files[0]["name"])}
    assert retry_ids == {rows[0]["custom_id"], rows[1]["custom_id"], rows[2]["custom_id"],
                         missing["custom_id"]}
    retry_results = tmp_path / "retry.jsonl"
    with retry_results.open("wb") as fh:
        for req in read_jsonl(bdir / summary.files[0]["name"]):
            body = {"choices": [{"index": 0, "finish_reason": "stop", "message": {
                "role": "assistant", "content": qa_from_caption(req["body"])}}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}
            fh.write(orjson.dumps({"custom_id": req["custom_id"], "error": None, "response": {
                "status_code": 200, "body": body}}) + b"\n")
    manifest, _ = ingest(bdir, [retry_results], cache_path=tmp_path / "c.sqlite")
    assert manifest["counts"]["records_failed"] == 0
    # retried records are appended after the others, as with `run --retry-failed`
    by_id = sorted(kept(bdir / "run"), key=lambda r: r["id"])
    assert by_id == sorted(kept(tmp_path / "live"), key=lambda r: r["id"])


def test_submit_after_a_crash_adopts_the_batch_it_created(fake_server, samples_jsonl, tmp_path):
    bdir = tmp_path / "batch"
    prepare(PrepareOptions(input=samples_jsonl, out_dir=bdir, model=MODEL,
                           max_requests_per_file=20))
    client = client_for(fake_server)
    submit(bdir, client)
    subs = load_submissions(bdir)
    created = {name: sub["batch_id"] for name, sub in subs.items()}
    # the state a crash right after `batches.create` leaves: file id recorded, batch id not
    lost = "requests-00001.jsonl"
    subs[lost] = {"file_id": subs[lost]["file_id"]}
    (bdir / "submissions.json").write_text(json.dumps(subs))
    submit(bdir, client)
    assert fake_server.stats["batches_created"] == len(created)
    assert fake_server.stats["files_uploaded"] == len(created)
    assert {n: s["batch_id"] for n, s in load_submissions(bdir).items()} == created


def test_failed_batch_state_is_reported(fake_server, samples_jsonl, tmp_path):
    bdir = tmp_path / "batch"
    prepare(PrepareOptions(input=samples_jsonl, out_dir=bdir, model=MODEL, limit=5))
    fake_server.batch_fail = True
    client = client_for(fake_server)
    submit(bdir, client)
    rows = status(bdir, client)
    assert [r["status"] for r in rows] == ["failed"]
    assert rows[0]["errors"] == ["line 1: Batch failed validation (injected)."]
    assert fetch(bdir, client) == []
    polls = fake_server.stats["batch_polls"]
    status(bdir, client)  # a final state is not asked about again
    assert fake_server.stats["batch_polls"] == polls
    with pytest.raises(BatchError, match="no results to ingest"):
        ingest(bdir)
    assert load_submissions(bdir)["requests-00000.jsonl"]["status"] == "failed"


def test_cli_batch_round_trip(fake_server, samples_jsonl, tmp_path):
    runner = CliRunner()
    bdir = tmp_path / "b"
    url = ["--base-url", fake_server.base_url, "--api-key", "sk-test"]
    r = runner.invoke(app, ["batch", "prepare", str(samples_jsonl), "--out", str(bdir),
                            "--model", MODEL, "--limit", "8"])
    assert r.exit_code == 0, r.output
    assert runner.invoke(app, ["batch", "submit", str(bdir), *url]).exit_code == 0
    r = runner.invoke(app, ["batch", "status", str(bdir), *url])
    assert r.exit_code == 0 and "in_progress" in r.output
    assert runner.invoke(app, ["batch", "fetch", str(bdir), *url]).exit_code == 0
    r = runner.invoke(app, ["batch", "ingest", str(bdir), "-q"])
    assert r.exit_code == 0, r.output
    manifest = json.loads((bdir / "run" / "manifest.json").read_text())
    assert manifest["counts"]["records_read"] == 8 and manifest["status"] == "complete"
    assert "sk-test" not in (bdir / "submissions.json").read_text()
    r = runner.invoke(app, ["batch", "ingest", str(tmp_path / "nowhere")])
    assert r.exit_code == 2 and "Traceback" not in r.output


def test_faulty_batch_lines_from_the_server_end_in_failed(fake_server, samples_jsonl, tmp_path):
    from vqa_gen.testing import FaultPlan

    bdir = tmp_path / "batch"
    prepare(PrepareOptions(input=samples_jsonl, out_dir=bdir, model=MODEL, limit=6))
    fake_server.faults = FaultPlan(script=["server_error", "bad_json_content", "rate_limit"])
    fake_server.batch_polls = 0
    client = client_for(fake_server)
    submit(bdir, client)
    paths = fetch(bdir, client)
    assert sorted(p.name for p in paths) == ["requests-00000-error.jsonl",
                                             "requests-00000-output.jsonl"]
    manifest, _ = ingest(bdir)
    kinds = sorted(f["error"]["kind"] for f in read_jsonl(bdir / "run" / "failed.jsonl"))
    assert kinds == ["batch_error", "batch_error", "invalid_json"]
    assert manifest["counts"]["records_failed"] == 3
    assert manifest["counts"]["records_done"] == 3
    assert manifest["counts"]["reasks"] == 0  # a batch has no second turn
