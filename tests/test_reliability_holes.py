"""Issue 10: the reliability holes found from outside. One test (or more) per row of the issue's
table and per small item, each against real parts: the CLI, the run folder on disk, the
project's OpenAI-compatible test server with its lying-endpoint fault kinds."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import tomllib
import tracemalloc
from pathlib import Path

import pytest
from conftest import ROOT, read_jsonl, read_shards, write_jsonl
from test_reliability import _manifest, _rows, _run, check_nothing_lost
from typer.testing import CliRunner

from vqa_gen import Generator
from vqa_gen.cache import ResponseCache
from vqa_gen.cli import app
from vqa_gen.grounding import FilterConfig
from vqa_gen.llm import ChatClient, ClientConfig, LLMError, parse_completion
from vqa_gen.output import FolderLock
from vqa_gen.pipeline import GenerationContext, GenerationSettings, process_record
from vqa_gen.records import CaptionRecord, InputItem, read_records
from vqa_gen.templates import load_template
from vqa_gen.testing import FakeOpenAIServer, FaultPlan, canned, extract_caption, qa_from_caption

cli = CliRunner()
KEY = "sk-test-9f8e7d6c5b4a39281706"


def _cli_proc(args: list[str], **env: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "vqa_gen", "run", *args, "--quiet"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=str(ROOT), **env))


def _wait_for(cond, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def _folder_state(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and p.name != "lock"}


# -- row 1: one folder, one writer ----------------------------------------------------------------

def test_a_second_run_on_a_held_folder_is_refused_and_touches_nothing(fake_server, tmp_path):
    path = write_jsonl(tmp_path / "in.jsonl", _rows(20))
    out = tmp_path / "out"
    args = [str(path), "--out", str(out), "--base-url", fake_server.base_url, "--model", "m"]
    assert _run(*args)[0] == 0
    before = _folder_state(out)
    holder = FolderLock(out)  # a live run holding the folder (a real flock)
    assert holder.acquire() is None
    try:
        for extra in ([], ["--overwrite"], ["--retry-failed"]):
            code, output = _run(*args, *extra)
            assert code == 2, output
            assert "in use by another vqa-gen run" in output and f"pid {os.getpid()}" in output
            assert "Traceback" not in output
            assert _folder_state(out) == before  # no manifest rewrite, no file touched
    finally:
        holder.release()
    assert _run(*args)[0] == 0  # released: the folder is usable again


def test_the_same_run_started_twice_runs_once(tmp_path):
    rows = _rows(40)
    path = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out"
    # The first run's calls are held by the server until the second run has been turned away,
    # so the two overlap however slowly a loaded machine starts them.
    with FakeOpenAIServer() as srv:
        args = [str(path), "--out", str(out), "--base-url", srv.base_url, "--model", "m",
                "--no-cache", "--concurrency", "2", "--timeout", "600"]
        srv.hold()
        first = _cli_proc(args)
        _wait_for(lambda: srv.stats["requests"] >= 2)
        second = _cli_proc(args)
        _, err2 = second.communicate(timeout=120)
        srv.release()
        _, err1 = first.communicate(timeout=120)
        assert first.returncode == 0, err1
        assert second.returncode == 2 and "in use by another vqa-gen run" in err2, err2
        assert srv.stats["requests"] == 40  # not 80: the second run sent nothing
    m = check_nothing_lost(out, {r["id"] for r in rows})
    assert m["status"] == "complete" and not (out / "failed.jsonl").read_bytes()


def test_a_stale_lock_of_a_killed_run_is_taken_over_and_reported(fake_server, tmp_path):
    path = write_jsonl(tmp_path / "in.jsonl", _rows(5))
    out = tmp_path / "out"
    (out / ".vqa-gen").mkdir(parents=True)
    (out / ".vqa-gen" / "lock").write_text(json.dumps(
        {"pid": 999999, "host": "elsewhere", "started": "2026-01-01T00:00:00Z"}))
    code, output = _run(str(path), "--out", str(out), "--base-url", fake_server.base_url,
                        "--model", "m")
    assert code == 0, output
    assert "took over the lock" in output and "pid 999999" in output
    assert any("pid 999999" in n for n in _manifest(out)["notes"])
    assert (out / ".vqa-gen" / "lock").read_bytes() == b""  # released cleanly


# -- row 2: a CSV with a stray quote ----------------------------------------------------------

def test_an_unterminated_quote_in_row_2_of_10000_costs_one_row(tmp_path):
    path = tmp_path / "in.csv"
    with path.open("w") as fh:
        fh.write("id,caption\n")
        fh.write('r0,"Plaque with an unterminated quote\n')
        for i in range(1, 10_000):
            fh.write(f"r{i},Erythematous plaque number {i} on the forearm.\n")
    items = list(read_records(path))
    (bad,) = [i.invalid for i in items if i.invalid]
    assert (bad.source, bad.line) == (str(path), 2) and "stray quote" in bad.reason
    assert len([i for i in items if i.record]) == 9_999


def test_a_long_legit_multiline_csv_field_is_kept(tmp_path):
    path = tmp_path / "in.csv"
    caption = "\n".join(f"Line {k} of a long legend." for k in range(40))
    path.write_text(f'id,caption\na,"{caption}"\nb,Papule.\n')
    assert [i.record.id for i in read_records(path)] == ["a", "b"]


def test_tsv_by_extension_and_delimiter_flag(fake_server, tmp_path):
    tsv = tmp_path / "in.tsv"
    tsv.write_text("id\tcaption\tmodality\na\tPlaque, scaly, on the elbow.\tclinical\n"
                   "b\tPapule on the cheek.\tdermoscopy\n")
    items = list(read_records(tsv))
    assert [(i.record.id, i.record.modality) for i in items] == [("a", "clinical"),
                                                                 ("b", "dermoscopic")]
    semi = tmp_path / "in.csv"
    semi.write_text("id;caption\na;Plaque, scaly.\nb;Papule.\n")
    assert [i.record.caption for i in read_records(semi, delimiter=";")] == ["Plaque, scaly.",
                                                                            "Papule."]
    out = tmp_path / "out"
    code, output = _run(str(semi), "--out", str(out), "--base-url", fake_server.base_url,
                        "--model", "m", "--delimiter", ";")
    assert code == 0, output
    assert _manifest(out)["counts"]["records_done"] == 2
    code, output = _run(str(semi), "--out", str(tmp_path / "o2"), "--base-url",
                        fake_server.base_url, "--model", "m", "--delimiter", ";;")
    assert code == 2 and "one character" in output and "Traceback" not in output


def test_nul_bytes_in_a_caption_are_rejected_with_a_reason(tmp_path):
    path = tmp_path / "in.csv"
    path.write_bytes(b"id,caption\na,Plaque\x00\x00 on the elbow.\nb,Papule.\n")
    items = list(read_records(path))
    assert items[0].invalid is not None and "NUL" in items[0].invalid.reason
    assert items[0].invalid.line == 2 and items[1].record.id == "b"


# -- rows 3 and 4: resume verifies before it trusts -------------------------------------------

def _complete_run(srv: FakeOpenAIServer, tmp_path: Path, n: int = 60, name: str = "out",
                  *extra: str) -> tuple[list[str], Path, Path]:
    path = tmp_path / "in.jsonl"
    if not path.exists():
        write_jsonl(path, _rows(n))
    out = tmp_path / name
    args = [str(path), "--out", str(out), "--base-url", srv.base_url, "--model", "m",
            "--shard-size", "20", *extra]
    code, output = _run(*args)
    assert code == 0, output
    return args, path, out


def _files(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.glob("*.jsonl"))}


@pytest.mark.parametrize("damage", ["garbled", "cut", "plausible"])
def test_a_damaged_progress_log_pays_nothing_twice_and_duplicates_nothing(
        fake_server, tmp_path, damage):
    args, _, out = _complete_run(fake_server, tmp_path)
    reference = _files(out)
    progress = out / ".vqa-gen" / "progress.jsonl"
    lines = progress.read_bytes().splitlines(keepends=True)
    if damage == "garbled":
        lines[25] = b'{"line": 26, "rec\xff\xfe garbage\n'
        progress.write_bytes(b"".join(lines))
    elif damage == "plausible":  # valid JSON, wrong inside
        lines[25] = b'{"line": 26, "status": "done", "shards": [[0, "x"], 7]}\n'
        progress.write_bytes(b"".join(lines))
    else:  # a power cut: the log ends mid-line
        progress.write_bytes(b"".join(lines[:25]) + lines[25][:17])
    requests = fake_server.stats["requests"]
    code, output = _run(*args)
    assert code == 0, output
    assert fake_server.stats["requests"] == requests  # redone from the response cache
    m = check_nothing_lost(out, {r["id"] for r in _rows(60)})
    assert m["counts"]["qa_kept"] == len(read_shards(out, "data"))
    assert _files(out) == reference  # byte-identical to the undamaged run
    if damage != "cut":
        assert "progress.jsonl:26: damaged line" in output
        assert any("damaged line" in n for n in m["notes"])


def test_a_garbled_progress_line_without_the_cache_is_repaired_not_duplicated(
        fake_server, tmp_path):
    args, _, out = _complete_run(fake_server, tmp_path, 60, "out", "--no-cache")
    progress = out / ".vqa-gen" / "progress.jsonl"
    lines = progress.read_bytes().splitlines(keepends=True)
    lines[40] = b"garbage\n"
    progress.write_bytes(b"".join(lines))
    requests = fake_server.stats["requests"]
    assert _run(*args)[0] == 0
    # the records from the damaged line on are generated again (nothing proves them committed)
    assert fake_server.stats["requests"] - requests == 20
    check_nothing_lost(out, {r["id"] for r in _rows(60)})


def test_a_deleted_finished_shard_is_refused_with_its_name(fake_server, tmp_path):
    args, _, out = _complete_run(fake_server, tmp_path, 120)
    shards = sorted(out.glob("data-*.jsonl"))
    assert len(shards) >= 4
    victim = shards[1]
    victim.unlink()
    before = _folder_state(out)
    code, output = _run(*args)
    assert code == 2, output
    assert victim.name in output and "is missing" in output and "Traceback" not in output
    assert _folder_state(out) == before  # refused before touching anything
    # an edited shard is refused the same way
    shutil.copy(shards[0], victim)
    code, output = _run(*args)
    assert code == 2 and victim.name in output and "does not match" in output, output


def test_a_deleted_last_shard_is_rebuilt_from_the_cache(fake_server, tmp_path):
    args, _, out = _complete_run(fake_server, tmp_path, 120)
    reference = _files(out)
    last = sorted(out.glob("data-*.jsonl"))[-1]
    last.unlink()
    requests = fake_server.stats["requests"]
    code, output = _run(*args)
    assert code == 0, output
    assert "done again" in output and fake_server.stats["requests"] == requests
    assert _files(out) == reference


def test_a_shard_cut_short_by_a_power_cut_is_repaired(fake_server, tmp_path):
    """An interrupted run whose open shard lost its unsynced tail: the log is cut back to what
    the shard proves, those records are redone (from the cache), nothing duplicated."""
    args, _, out = _complete_run(fake_server, tmp_path, 60, "out", "--shard-size", "1000")
    reference = _files(out)
    for p in [*out.glob("*.jsonl"), out / ".vqa-gen" / "responses.jsonl"]:
        p.rename(p.with_name(p.name + ".partial"))  # as an interrupted run leaves them
    data = out / "data-00000.jsonl.partial"
    lines = data.read_bytes().splitlines(keepends=True)
    data.write_bytes(b"".join(lines[:-10]) + lines[-10][:20])
    requests = fake_server.stats["requests"]
    code, output = _run(*args)
    assert code == 0, output
    assert "done again" in output and fake_server.stats["requests"] == requests
    check_nothing_lost(out, {r["id"] for r in _rows(60)})
    assert _files(out) == reference


# -- row 5: damaged state and cache ------------------------------------------------------------

def test_an_emptied_state_file_is_one_line_naming_it(fake_server, tmp_path):
    args, _, out = _complete_run(fake_server, tmp_path, 5)
    (out / ".vqa-gen" / "state.json").write_bytes(b"")
    code, output = _run(*args)
    assert code == 2, output
    assert "state.json is damaged" in output and "--overwrite" in output
    assert "Traceback" not in output and len(output.strip().splitlines()) <= 3


def test_a_damaged_cache_is_one_line_offering_another_cache_or_none(fake_server, tmp_path):
    cache = tmp_path / "c.sqlite"
    c = ResponseCache(cache)
    from vqa_gen.llm import Completion, Usage

    for i in range(400):
        c.put(f"{i:064x}", Completion("x" * 1500, "stop", Usage(1, 2, 3), "m"))
    c.close()
    size = cache.stat().st_size
    assert size > 40 * 4096
    with cache.open("r+b") as fh:  # 20 pages of the index and table overwritten
        for page in range(2, size // 4096, max(1, (size // 4096) // 20)):
            fh.seek(page * 4096)
            fh.write(os.urandom(4096))
    path = write_jsonl(tmp_path / "in.jsonl", _rows(20))
    out = tmp_path / "out"
    code, output = _run(str(path), "--out", str(out), "--base-url", fake_server.base_url,
                        "--model", "m", "--cache", str(cache))
    assert code == 2, output
    assert str(cache) in output.replace("\n", "") and "--no-cache" in output
    assert "Traceback" not in output
    m = _manifest(out)
    assert m["status"] == "failed" and "damaged" in m["error"]
    with pytest.raises(sqlite3.DatabaseError):  # it really is damaged
        sqlite3.connect(cache).execute("SELECT count(*), max(content) FROM completions").fetchone()


# -- rows 6 and 7: endpoints that lie -----------------------------------------------------------

@pytest.mark.parametrize("fault", ["html_200", "empty_body", "non_utf8_body"])
def test_a_200_that_is_not_a_completion_trips_the_breaker(tmp_path, fault):
    path = write_jsonl(tmp_path / "in.jsonl", _rows(100))
    out = tmp_path / "out"
    with FakeOpenAIServer(faults=FaultPlan(**{fault: 1.0})) as srv:
        code, output = _run(str(path), "--out", str(out), "--base-url", srv.base_url,
                            "--model", "m", "--no-cache", "--max-retries", "1",
                            "--concurrency", "1")
        assert code == 3, output
        assert "looks down" in output and "malformed_response" in output
        # 10 records in a row, each tried twice (one more may be in flight when it trips)
        assert 20 <= srv.stats["requests"] <= 22
    m = _manifest(out)
    assert m["status"] == "endpoint_down" and m["counts"]["records_failed"] == 10


@pytest.mark.parametrize("body", [
    {"choices": [{"message": {"content": [{"type": "image_url", "image_url": {}}]}}]},
    {"choices": ["just a string"]},
    {"choices": [{"message": "hello"}]},
    {"choices": {"0": {}}},
    {"choices": [{"message": {"content": "{}"}}], "usage": "n/a"},
    {"choices": [{"message": {"content": "{}"}}], "usage": {"prompt_tokens": "12"}},
    {"choices": [{"message": {"content": "{}"}, "finish_reason": 3}]},
    {"choices": [{"message": {"content": 42}}]},
])
def test_every_odd_reply_shape_is_a_malformed_response(body):
    with pytest.raises(LLMError) as err:
        parse_completion(json.dumps(body).encode())
    assert err.value.kind == "malformed_response" and err.value.retryable


def test_text_parts_are_joined_and_huge_usage_is_malformed():
    body = {"choices": [{"message": {"content": [{"type": "text", "text": "ab"},
                                                 {"type": "text", "text": "cd"}]}}]}
    assert parse_completion(json.dumps(body).encode()).content == "abcd"
    huge = b'{"choices": [{"message": {"content": "x"}}], "usage": {"prompt_tokens": ' + \
        str(2**70).encode() + b"}}"
    with pytest.raises(LLMError, match=r"usage\.prompt_tokens"):
        parse_completion(huge)


def test_odd_json_shapes_in_a_run_fail_records_not_the_run(tmp_path):
    path = write_jsonl(tmp_path / "in.jsonl", _rows(8))
    out = tmp_path / "out"
    script = ["content_parts", "usage_string", "choice_string", "huge_usage"]
    with FakeOpenAIServer(faults=FaultPlan(script=script)) as srv:
        code, output = _run(str(path), "--out", str(out), "--base-url", srv.base_url,
                            "--model", "m", "--no-cache", "--max-retries", "0",
                            "--concurrency", "1")
    assert code == 0, output
    m = check_nothing_lost(out, {r["id"] for r in _rows(8)})
    assert m["status"] == "complete"
    assert [r["error"]["kind"] for r in read_jsonl(out / "failed.jsonl")] == [
        "malformed_response"] * 3
    assert m["counts"]["records_done"] == 5  # content as text parts is a valid reply


# -- row 8: replies too large --------------------------------------------------------------------

RECORD = CaptionRecord(id="r1", image="i.jpg", modality="clinical",
                       caption="Psoriasis vulgaris. Silvery-white scale on both elbows.")


async def _process(srv: FakeOpenAIServer, **cfg):
    config = ClientConfig(base_url=srv.base_url, model="m", max_retries=1,
                          backoff_initial=0.01, **cfg)
    async with ChatClient(config) as client:
        ctx = GenerationContext.build(load_template("open_vqa"), GenerationSettings(
            qa_per_caption=2, max_reasks=1), client, "m", FilterConfig())
        return await process_record(InputItem(1, record=RECORD), ctx)


def test_a_5_mb_answer_is_never_kept():
    reply = json.dumps({"qa_pairs": [{"question": "What is seen on the elbows?",
                                      "answer": "Silvery-white scale " * 250_000,
                                      "type": "morphology"}]})
    with FakeOpenAIServer(responder=canned(reply)) as srv:
        result = asyncio.run(_process(srv))
    assert result.status == "failed" and not result.kept and not result.rejected
    assert result.failure.kind == "wrong_shape" and "over the limit" in result.failure.message
    assert result.reasks == 1  # re-asked once, then given up


def test_a_60_mb_body_is_cut_off_while_reading():
    with FakeOpenAIServer(faults=FaultPlan(script=["huge_body", "huge_body"],
                                           huge_body_bytes=60 * 2**20)) as srv:
        tracemalloc.start()
        result = asyncio.run(_process(srv, max_response_bytes=4 * 2**20))
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert result.status == "failed" and result.failure.kind == "malformed_response"
    assert "larger than 4,194,304 bytes" in result.failure.message
    assert peak < 40 * 2**20, peak


# -- row 9: secrets ----------------------------------------------------------------------------

def test_a_key_echoed_by_the_endpoint_is_redacted_everywhere(tmp_path):
    path = write_jsonl(tmp_path / "in.jsonl", _rows(12))
    out = tmp_path / "out"

    def leaky(body):  # a broken proxy: 500s whose message echoes the credentials
        raise RuntimeError(f"upstream said: Authorization: Bearer {KEY}; api_key={KEY}")

    with FakeOpenAIServer(api_key=KEY, faults=FaultPlan(script=["key_echo"] * 2)) as srv:
        srv_args = [str(path), "--out", str(out), "--base-url", srv.base_url, "--model", "m",
                    "--api-key", KEY, "--no-cache", "--max-retries", "0", "--concurrency", "1"]
        srv.responder = leaky
        result = cli.invoke(app, ["run", *srv_args, "--quiet"])
        assert result.exit_code == 3, result.output
        assert srv.stats["key_echo"] == 2
    stored = b"".join(p.read_bytes() for p in out.rglob("*") if p.is_file())
    assert KEY.encode() not in stored and KEY not in result.output
    assert b"[REDACTED]" in stored and "[REDACTED]" in result.output
    assert "[REDACTED]" in _manifest(out)["error"]


# -- row 10: disk full ---------------------------------------------------------------------------

@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_disk_full_names_the_path_and_the_manifest_says_failed(fake_server, tmp_path):
    path = write_jsonl(tmp_path / "in.jsonl", _rows(10))
    out = tmp_path / "out"
    (out / ".vqa-gen").mkdir(parents=True)
    full = out / ".vqa-gen" / "responses.jsonl.partial"
    full.symlink_to("/dev/full")  # every write to this file fails with ENOSPC
    code, output = _run(str(path), "--out", str(out), "--base-url", fake_server.base_url,
                        "--model", "m")
    assert code == 2, output
    assert "No space left on device" in output and "responses.jsonl.partial" in output
    assert "Traceback" not in output
    m = _manifest(out)
    assert m["status"] == "failed" and "responses.jsonl.partial" in m["error"]
    assert "No space left" in m["error"]


# -- row 11: the others ----------------------------------------------------------------------

def test_sigterm_exits_143_and_the_folder_resumes(tmp_path):
    rows = _rows(200)
    path = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out"
    with FakeOpenAIServer(latency_ms=20) as srv:
        args = [str(path), "--out", str(out), "--base-url", srv.base_url, "--model", "m",
                "--concurrency", "2"]
        proc = _cli_proc(args)
        _wait_for(lambda: srv.stats["ok"] >= 10)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 143, err
        assert _manifest(out)["status"] == "interrupted"
        assert _run(*args)[0] == 0
    check_nothing_lost(out, {r["id"] for r in rows})


def test_llm_calls_counts_every_call_sent_across_retry_failed(tmp_path):
    rows = _rows(12)
    path = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out"
    with FakeOpenAIServer(faults=FaultPlan(script=["server_error"] * 6)) as srv:
        args = [str(path), "--out", str(out), "--base-url", srv.base_url, "--model", "m",
                "--no-cache", "--max-retries", "1", "--concurrency", "1"]
        assert _run(*args)[0] == 0
        assert _manifest(out)["counts"]["records_failed"] == 3
        assert _manifest(out)["http_retries"] == 3  # each failed record: one retry
        assert _run(*args, "--retry-failed")[0] == 0
        m = _manifest(out)
        assert m["counts"]["llm_calls"] == srv.stats["requests"] == 18
        assert m["http_retries"] == 3  # the first run's, which the second needed none of


def test_llm_calls_counts_calls_of_records_lost_to_a_kill(tmp_path):
    rows = _rows(200)
    path = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out"
    with FakeOpenAIServer(latency_ms=30) as srv:
        args = [str(path), "--out", str(out), "--base-url", srv.base_url, "--model", "m",
                "--no-cache", "--concurrency", "4"]
        proc = _cli_proc(args)
        _wait_for(lambda: srv.stats["ok"] >= 30)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert _run(*args)[0] == 0
        sent = srv.stats["requests"]
    calls = _manifest(out)["counts"]["llm_calls"]
    # a call counted just before the kill may never have reached the server
    assert sent <= calls <= sent + 4, (sent, calls)


def test_an_input_edited_past_64_kib_with_the_same_size_is_noticed(fake_server, tmp_path):
    rows = _rows(1200)
    path = write_jsonl(tmp_path / "in.jsonl", rows)
    assert path.stat().st_size > 2 * 65536
    out = tmp_path / "out"
    args = [str(path), "--out", str(out), "--base-url", fake_server.base_url, "--model", "m",
            "--limit", "5"]
    assert _run(*args)[0] == 0
    data = bytearray(path.read_bytes())
    at = data.index(b"number 1100")
    data[at:at + 11] = b"number 9900"  # same size, far past the first 64 KiB
    path.write_bytes(bytes(data))
    code, output = _run(*args)
    assert code == 2 and "input" in output and "changed" in output, output


def test_generator_with_zero_concurrency_is_a_clear_error():
    with pytest.raises(ValueError, match="concurrency must be at least 1"):
        Generator(base_url="http://127.0.0.1:9/v1", model="m", concurrency=0)


def test_a_base_url_without_scheme_gets_http(fake_server, tmp_path):
    path = write_jsonl(tmp_path / "in.jsonl", _rows(3))
    out = tmp_path / "out"
    bare = fake_server.base_url.removeprefix("http://")
    code, output = _run(str(path), "--out", str(out), "--base-url", bare, "--model", "m")
    assert code == 0, output
    assert _manifest(out)["counts"]["records_done"] == 3
    code, output = _run(str(path), "--out", str(tmp_path / "o2"), "--base-url",
                        "ftp://example.org/v1", "--model", "m")
    assert code == 2 and "not an http(s) URL" in output and "Traceback" not in output


def test_check_prints_rich_markup_in_text_as_text(tmp_path):
    path = write_jsonl(tmp_path / "qa.jsonl", [
        {"caption": "Plaque on the elbow.", "question": "What [/b] is [bold]this[/]?",
         "answer": "An invented [/] answer about the knee."}])
    result = cli.invoke(app, ["check", str(path), "--out", str(tmp_path / "out.jsonl")])
    assert result.exit_code == 0, result.output
    assert "[/b]" in result.output and "Traceback" not in result.output


def test_lint_without_input_works_from_an_installed_layout(tmp_path):
    """The wheel's layout (pyproject's force-include), without the repository around it."""
    site = tmp_path / "site"
    shutil.copytree(ROOT / "vqa_gen", site / "vqa_gen",
                    ignore=shutil.ignore_patterns("__pycache__"))
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())
    for src, dest in conf["tool"]["hatch"]["build"]["targets"]["wheel"][
            "force-include"].items():
        (site / dest).parent.mkdir(parents=True, exist_ok=True)
        copy = shutil.copytree if (ROOT / src).is_dir() else shutil.copy
        copy(ROOT / src, site / dest)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(site)
    proc = subprocess.run([sys.executable, "-m", "vqa_gen", "lint", "open_vqa"], cwd=tmp_path,
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 error(s)" in proc.stdout


def test_modality_is_free_text_and_few_shot_falls_back_to_any(fake_server, tmp_path):
    rows = [{"id": "a", "caption": "Axial CT: a 3 cm mass in the right upper lobe.",
             "modality": "Radiology"},
            {"id": "b", "caption": "Dermoscopy of a naevus.", "modality": "dermoscopy"}]
    path = write_jsonl(tmp_path / "in.jsonl", rows)
    items = list(read_records(path))
    assert [i.record.modality for i in items] == ["Radiology", "dermoscopic"]
    t = load_template("closed_vqa")
    assert t.examples_for("Radiology") == t.examples_for(None) == t.examples_for("any") != []
    out = tmp_path / "out"
    code, output = _run(str(path), "--out", str(out), "--base-url", fake_server.base_url,
                        "--model", "m")
    assert code == 0, output
    assert _manifest(out)["counts"]["records_invalid"] == 0
    assert {r["modality"] for r in read_shards(out, "data")} == {"Radiology", "dermoscopic"}


def test_a_kill_during_retry_failed_resumes_to_the_same_output(tmp_path):
    """The records set aside for a --retry-failed run (replayed from their stored replies)
    survive a SIGKILL of that run: a plain rerun finishes it, in input order, with no call for
    a record that was done."""
    rows = _rows(60)
    path = write_jsonl(tmp_path / "in.jsonl", rows)
    broken = {r["caption"] for r in rows[2:60:7]}

    def responder(body):
        if extract_caption(body["messages"][1]["content"]) in broken:
            return "I'm sorry, I can't help with that."
        return qa_from_caption(body)

    with FakeOpenAIServer(responder=responder, latency_ms=60) as srv:
        def args(out: Path) -> list[str]:
            return [str(path), "--out", str(out), "--base-url", srv.base_url, "--model", "m",
                    "--no-cache", "--shard-size", "25", "--concurrency", "1"]

        out, ref = tmp_path / "out", tmp_path / "ref"
        assert _run(*args(out))[0] == 0
        assert _manifest(out)["counts"]["records_failed"] == len(broken)
        failed_captions = set(broken)
        broken.clear()
        assert _run(*args(ref))[0] == 0
        srv.reset()
        proc = _cli_proc([*args(out), "--retry-failed"])
        _wait_for(lambda: srv.stats["requests"] >= 3)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert (out / ".vqa-gen" / "replay.jsonl").exists()
        code, output = _run(*args(out))
        assert code == 0, output
        # each failed record once (plus the one in flight at the kill); no done record again
        assert 9 <= srv.stats["requests"] <= 10
        sent = {extract_caption(r.body["messages"][1]["content"]) for r in srv.requests}
        assert sent == failed_captions
    check_nothing_lost(out, {r["id"] for r in rows})
    assert _files(out) == _files(ref)
    assert not (out / ".vqa-gen" / "replay.jsonl").exists()


def test_refilter_refuses_a_folder_held_by_a_run(fake_server, tmp_path):
    *_, out = _complete_run(fake_server, tmp_path, 5)
    before = _folder_state(out)
    holder = FolderLock(out)
    holder.acquire()
    try:
        result = cli.invoke(app, ["refilter", str(out), "--strictness", "strict"])
        assert result.exit_code == 2 and "in use by another vqa-gen run" in result.output
        assert _folder_state(out) == before
    finally:
        holder.release()
    assert cli.invoke(app, ["refilter", str(out), "--strictness", "strict"]).exit_code == 0


def test_a_side_file_missing_rows_is_refused_and_a_foreign_folder_untouched(tmp_path):
    rows = _rows(12)
    path = write_jsonl(tmp_path / "in.jsonl", [*rows, "{broken"])
    out = tmp_path / "out"
    with FakeOpenAIServer(faults=FaultPlan(script=["bad_request"] * 2)) as srv:
        args = [str(path), "--out", str(out), "--base-url", srv.base_url, "--model", "m",
                "--no-cache", "--concurrency", "1"]
        assert _run(*args)[0] == 0
        (out / "failed.jsonl").write_bytes(b"")  # its 2 rows lost
        code, output = _run(*args)
        assert code == 2 and "failed.jsonl is missing 2 of the failed records" in output
    foreign = tmp_path / "docs"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    code, output = _run(str(path), "--out", str(foreign), "--base-url", "http://127.0.0.1:9/v1",
                        "--model", "m")
    assert code == 2 and "holds no vqa-gen run" in output
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]  # no lock file left in it


def test_a_really_full_disk_mid_run(fake_server, tmp_path):
    """A tmpfs of 256 KiB filled by the run's own shards (needs root to mount; skipped else)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here")
    try:
        path = write_jsonl(tmp_path / "in.jsonl", _rows(400))
        out = mnt / "out"
        code, output = _run(str(path), "--out", str(out), "--base-url", fake_server.base_url,
                            "--model", "m", "--no-cache")
        assert code == 2, output
        assert "No space left on device" in output and str(out) in output.replace("\n", "")
        m = _manifest(out)
        assert m["status"] == "failed" and "No space left" in m["error"]
        assert str(out) in m["error"]
    finally:
        busy = subprocess.run(["umount", str(mnt)], capture_output=True).returncode
        if busy:
            subprocess.run(["umount", "-l", str(mnt)], check=False)
    assert not busy, "the run left files open on the full disk"


def test_the_lying_endpoint_fault_kinds_over_raw_http():
    import urllib.error
    import urllib.request

    kinds = ["html_200", "empty_body", "non_utf8_body", "content_parts", "usage_string",
             "choice_string", "huge_usage", "huge_body", "key_echo"]
    with FakeOpenAIServer(faults=FaultPlan(script=kinds, huge_body_bytes=2**20)) as srv:
        got = {}
        for kind in kinds:
            req = urllib.request.Request(
                srv.base_url + "/chat/completions", method="POST",
                headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
                data=json.dumps({"model": "m", "messages": [
                    {"role": "user", "content": "Caption: A plaque."}]}).encode())
            try:
                with urllib.request.urlopen(req, timeout=10) as resp:
                    got[kind] = (resp.status, resp.read())
            except urllib.error.HTTPError as err:
                got[kind] = (err.code, err.read())
        assert all(srv.stats[k] == 1 for k in kinds)
    assert got["html_200"][0] == 200 and got["html_200"][1].startswith(b"<!DOCTYPE html>")
    assert got["empty_body"] == (200, b"")
    with pytest.raises(UnicodeDecodeError):
        got["non_utf8_body"][1].decode("utf-8")
    parts = json.loads(got["content_parts"][1])["choices"][0]["message"]["content"]
    assert [p["type"] for p in parts] == ["text", "text"]
    assert json.loads(got["usage_string"][1])["usage"] == "n/a"
    assert isinstance(json.loads(got["choice_string"][1])["choices"][0], str)
    assert json.loads(got["huge_usage"][1])["usage"]["prompt_tokens"] == 2**70
    assert len(got["huge_body"][1]) >= 2**20
    assert got["key_echo"][0] == 400 and KEY.encode() in got["key_echo"][1]
