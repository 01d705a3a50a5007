"""`vqa-gen refilter` and `vqa-gen diff` on real runs against the test server."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import SAMPLES, read_jsonl, read_shards, write_jsonl
from test_run import assert_accounting
from typer.testing import CliRunner

from vqa_gen.cli import app
from vqa_gen.testing import FakeOpenAIServer
from vqa_gen.testing.formats import format_aware

runner = CliRunner()


def _cli(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args), env={"COLUMNS": "200"})
    return result.exit_code, result.output


def _manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


@pytest.fixture
def finished_run(tmp_path):
    """A run of the samples plus its server (so tests can count calls)."""
    def make(template: str = "open_vqa", *extra: str) -> tuple[Path, FakeOpenAIServer]:
        out = tmp_path / f"run-{template}"
        srv = FakeOpenAIServer(responder=format_aware).start()
        servers.append(srv)
        code, output = _cli("run", str(SAMPLES / "captions.jsonl"), "--out", str(out),
                            "--template", template, "--base-url", srv.base_url, "--model", "m",
                            "--shard-size", "30", "--quiet", *extra)
        assert code == 0, output
        return out, srv

    servers: list[FakeOpenAIServer] = []
    yield make
    for s in servers:
        s.stop()


def test_refilter_with_the_same_settings_reproduces_the_run_exactly(finished_run):
    out, srv = finished_run()
    before = {p.name: p.read_bytes() for p in out.glob("*-*.jsonl")}
    calls = srv.stats["requests"]
    code, output = _cli("refilter", str(out))
    assert code == 0, output
    assert srv.stats["requests"] == calls
    assert {p.name: p.read_bytes() for p in out.glob("*-*.jsonl")} == before
    m = assert_accounting(out)
    assert m["refiltered"] and m["refiltered_history"][0]["previous_counts"]["qa_kept"] == \
        m["counts"]["qa_kept"]


def test_refilter_with_new_settings_regrades_without_calls_and_counts_add_up(finished_run):
    out, srv = finished_run()
    m0 = _manifest(out)
    calls = srv.stats["requests"]
    code, output = _cli("refilter", str(out), "--strictness", "strict")
    assert code == 0, output
    assert "0 LLM calls" in output and srv.stats["requests"] == calls
    m = assert_accounting(out)
    assert m["filter"]["strictness"] == "strict" and m["refiltered"]
    assert m["counts"]["qa_generated"] == m0["counts"]["qa_generated"]
    assert m["counts"]["qa_kept"] < m0["counts"]["qa_kept"]
    assert m["counts"]["llm_calls"] == m0["counts"]["llm_calls"]
    assert m["outputs"]["data"] == sorted(p.name for p in out.glob("data-*.jsonl"))
    assert all(len(read_jsonl(out / n)) <= 30 for n in m["outputs"]["rejected"])
    assert not list(out.glob(".*.refilter"))
    # the folder now holds a strict run: rerunning with --strictness strict resumes (no calls)
    code, output = _cli("run", str(SAMPLES / "captions.jsonl"), "--out", str(out),
                        "--base-url", srv.base_url, "--model", "m", "--shard-size", "30",
                        "--strictness", "strict", "--quiet")
    assert code == 0, output
    assert srv.stats["requests"] == calls
    # and back to the default settings gives the original verdicts
    assert _cli("refilter", str(out), "--strictness", "default")[0] == 0
    assert _manifest(out)["counts"]["qa_kept"] == m0["counts"]["qa_kept"]


def test_refilter_keeps_multiple_choice_options_and_skipped_records(finished_run):
    out, _ = finished_run("multiple_choice")
    rows = read_shards(out, "data") + read_shards(out, "rejected")
    options = {r["id"]: (r["options"], r["answer_index"]) for r in rows}
    assert len({i for _, i in options.values()}) > 1
    assert _cli("refilter", str(out), "--strictness", "lenient")[0] == 0
    rows = read_shards(out, "data") + read_shards(out, "rejected")
    assert {r["id"]: (r["options"], r["answer_index"]) for r in rows} == options
    demo, _ = finished_run("demographics")
    m = assert_accounting(demo)
    # 35 state neither age nor sex; 5 more are dermoscopic or pathology (not in the
    # template's modalities: issue 14)
    assert m["counts"]["records_skipped"] == 40 and m["counts"]["records_failed"] == 0
    assert _cli("refilter", str(demo), "--strictness", "strict")[0] == 0
    m2 = assert_accounting(demo)
    assert m2["counts"]["records_skipped"] == 40 and m2["counts"]["records_done"] == 48


def test_refilter_refuses_what_it_cannot_redo(tmp_path, finished_run):
    code, output = _cli("refilter", str(tmp_path))
    assert code == 2 and "no vqa-gen run" in output
    out, _ = finished_run()
    m = _manifest(out)
    m["status"] = "interrupted"
    (out / "manifest.json").write_text(json.dumps(m))
    code, output = _cli("refilter", str(out))
    assert code == 2 and "not complete" in output
    m["status"] = "complete"
    (out / "manifest.json").write_text(json.dumps(m))
    cfg = tmp_path / "judge.json"
    cfg.write_text(json.dumps({"judge": True}))
    code, output = _cli("refilter", str(out), "--filter-config", str(cfg))
    assert code == 2 and "LLM judge" in output


def test_refilter_of_a_run_whose_input_changed_is_refused(tmp_path):
    path = write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "caption": "Psoriasis on the knee."}])
    out = tmp_path / "out"
    with FakeOpenAIServer() as srv:
        assert _cli("run", str(path), "--out", str(out), "--base-url", srv.base_url,
                    "--model", "m", "--quiet")[0] == 0
    write_jsonl(path, [{"id": "a", "caption": "Eczema on the knee."}])
    code, output = _cli("refilter", str(out))
    assert code == 2 and "changed" in output


def test_diff_shows_rates_reasons_types_and_changed_records(finished_run, tmp_path):
    a, _ = finished_run()
    b = tmp_path / "b"
    shutil.copytree(a, b)
    assert _cli("refilter", str(b), "--strictness", "lenient")[0] == 0
    code, output = _cli("diff", str(a), str(b), "--examples", "2")
    assert code == 0, output
    ma, mb = _manifest(a)["counts"], _manifest(b)["counts"]
    assert f"{ma['qa_kept'] / ma['qa_generated']:.1%}" in output
    assert f"{mb['qa_kept'] / mb['qa_generated']:.1%}" in output
    assert "text_leakage" in output and "records whose kept/rejected QA changed" in output
    assert "+ kept" in output
    code, output = _cli("diff", str(a), str(b), "--json")
    assert code == 0
    d = json.loads(output)
    assert d["kept"] == [ma["qa_kept"], mb["qa_kept"]]
    assert d["records_changed"] > 0 and d["records_compared"] == 48
    change = d["changes"][0]
    assert change["newly_kept"] and "question" in change["newly_kept"][0]
    assert sum(v["a"] for v in d["types"].values()) == ma["qa_generated"]
    code, output = _cli("diff", str(a), str(a), "--json")
    assert json.loads(output)["records_changed"] == 0
    code, output = _cli("diff", str(a), str(tmp_path / "nope"))
    assert code == 2 and "no vqa-gen run" in output
