"""Issue 14, the first hour of a new user: every snag of the issue as a test, through the real
`vqa-gen` command against the real test server (no mocks of our own code)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import orjson
import pytest
from conftest import SAMPLES, read_jsonl, write_jsonl
from typer.testing import CliRunner

from vqa_gen import __version__
from vqa_gen.cli import app
from vqa_gen.grounding import CODES, FilterConfig
from vqa_gen.preflight import estimate_records
from vqa_gen.report import render_report, sample_examples
from vqa_gen.runner import filter_for_manifest
from vqa_gen.testing import FakeOpenAIServer, FaultPlan
from vqa_gen.testing.formats import format_aware
from vqa_gen.testing.server import qa_from_caption

runner = CliRunner()


def _cli(*args: str, columns: int = 200) -> tuple[int, str]:
    result = runner.invoke(app, list(args), env={"COLUMNS": str(columns)})
    return result.exit_code, result.output


def _one_error_line(output: str) -> str:
    lines = [ln for ln in output.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), output
    assert "Traceback" not in output and "generating" not in output
    return lines[0]


def _manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def _fails_melanoma(body: dict) -> str:
    """Records whose caption mentions melanoma get an unusable reply every time."""
    if any("melanoma" in str(m.get("content")).lower() for m in body["messages"]
           if m["role"] == "user"):
        return "nothing useful"
    return qa_from_caption(body)


# -- checks up front: one line, exit 2, nothing started --------------------------------------
def test_csv_without_the_caption_column_names_columns_and_flags_before_any_call(
        fake_server, tmp_path):
    out = tmp_path / "out"
    code, output = _cli("run", str(SAMPLES / "captions.csv"), "--out", str(out),
                        "--base-url", fake_server.base_url, "--model", "m")
    line = _one_error_line(output)
    assert code == 2
    assert "no 'caption' column (found: figure_id, image_path, legend, modality)" in line
    assert "--caption-field legend" in line
    assert "--id-field figure_id" in line and "--image-field image_path" in line
    assert fake_server.stats["requests"] == 0 and not out.exists()
    # the suggested flags work as written
    code, output = _cli("run", str(SAMPLES / "captions.csv"), "--out", str(out), "--base-url",
                        fake_server.base_url, "--model", "m", "--caption-field", "legend",
                        "--id-field", "figure_id", "--image-field", "image_path", "--quiet")
    assert code == 0, output
    assert _manifest(out)["counts"]["records_done"] == 8


def test_jsonl_without_the_caption_field_names_its_keys(fake_server, tmp_path):
    path = write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "text": "Psoriasis."}] * 3)
    code, output = _cli("run", str(path), "--out", str(tmp_path / "o"), "--base-url",
                        fake_server.base_url, "--model", "m")
    line = _one_error_line(output)
    assert code == 2 and "no 'caption' field (found: id, text)" in line
    assert "--caption-field text" in line and fake_server.stats["requests"] == 0


@pytest.mark.parametrize("content,expected", [
    ("", "has no records"),
    ("\n\n", "has no records"),
])
def test_empty_input_is_refused_before_the_model_starts(tmp_path, content, expected):
    path = tmp_path / "empty.jsonl"
    path.write_text(content)
    # no --base-url: the embedded model would start; the check comes first, so it never does
    code, output = _cli("run", str(path), "--out", str(tmp_path / "o"))
    assert code == 2 and expected in _one_error_line(output)


def test_header_only_csv_and_unusable_paths_are_one_line_errors(tmp_path):
    csv_path = tmp_path / "h.csv"
    csv_path.write_text("id,caption\n")
    code, output = _cli("run", str(csv_path), "--out", str(tmp_path / "o"))
    assert code == 2 and "has a header but no rows" in _one_error_line(output)
    code, output = _cli("run", str(tmp_path), "--out", str(tmp_path / "o"))
    assert code == 2 and "is a folder" in _one_error_line(output)
    code, output = _cli("run", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "o"))
    assert code == 2 and "input file not found" in _one_error_line(output)


def test_output_folder_that_cannot_be_created_is_an_error_with_a_verb(fake_server, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, output = _cli("run", str(SAMPLES / "captions.jsonl"), "--out",
                        str(blocker / "out"), "--base-url", fake_server.base_url, "--model", "m")
    line = _one_error_line(output)
    assert code == 2 and f"cannot create the output folder {blocker / 'out'}: Not a " in line
    code, output = _cli("run", str(SAMPLES / "captions.jsonl"), "--out", str(blocker),
                        "--base-url", fake_server.base_url, "--model", "m")
    assert code == 2 and "cannot use" in _one_error_line(output)
    assert fake_server.stats["requests"] == 0


@pytest.mark.parametrize("args,needles", [
    (["--strictness", "extreme"], ["--strictness 'extreme'", "lenient, default, strict"]),
])
def test_bad_strictness_names_the_allowed_values(tmp_path, args, needles):
    code, output = _cli("run", str(SAMPLES / "captions.jsonl"), "--out", str(tmp_path / "o"),
                        *args)
    line = _one_error_line(output)
    assert code == 2 and all(n in line for n in needles), line


@pytest.mark.parametrize("settings,needles", [
    ({"threshold": 2}, ["field 'threshold'", "less than or equal to 1", "got 2"]),
    ({"strictness": "extreme"}, ["field 'strictness'", "'lenient', 'default' or 'strict'"]),
    ({"checks": {"content": {"wieght": 1}}},
     ["field 'checks.content.wieght'", "unknown setting", "weight"]),
    ({"treshold": 0.5}, ["field 'treshold'", "unknown setting", "threshold"]),
    ({"checks": {"spelling": {}}}, ["unknown check", "content"]),
    ([1, 2], ["expected a JSON object"]),
])
def test_bad_filter_config_names_file_field_and_allowed_values(tmp_path, settings, needles):
    cfg = tmp_path / "filter.json"
    cfg.write_text(json.dumps(settings))
    code, output = _cli("run", str(SAMPLES / "captions.jsonl"), "--out", str(tmp_path / "o"),
                        "--filter-config", str(cfg))
    line = _one_error_line(output)
    assert code == 2 and str(cfg) in line and all(n in line for n in needles), line
    assert "validation error" not in line


def test_missing_filter_config_says_what_could_not_be_read(tmp_path):
    code, output = _cli("run", str(SAMPLES / "captions.jsonl"), "--out", str(tmp_path / "o"),
                        "--filter-config", str(tmp_path / "none.json"))
    line = _one_error_line(output)
    assert code == 2 and "cannot read the filter settings" in line
    assert "No such file or directory" in line


def test_multiple_choice_on_the_embedded_default_model_is_refused_up_front(tmp_path):
    for cmd in (["run", str(SAMPLES / "captions.jsonl"), "--out", str(tmp_path / "o")],
                ["try", str(SAMPLES / "captions.jsonl")]):
        code, output = _cli(*cmd, "--template", "multiple_choice")
        line = _one_error_line(output)
        assert code == 2 and "needs a capable model" in line and "--base-url" in line
    assert not (tmp_path / "o").exists()


def test_version_flag():
    from vqa_gen.grounding import COMPILED

    code, output = _cli("--version")
    build = "compiled" if COMPILED else "pure Python"
    assert code == 0 and output.strip() == f"vqa-gen {__version__} (grounding filter: {build})"


# -- honest exit codes --------------------------------------------------------------------
def test_some_failed_exits_0_with_a_warning_and_none_succeeded_exits_4(tmp_path):
    with FakeOpenAIServer(responder=_fails_melanoma) as srv:
        out = tmp_path / "some"
        code, output = _cli("run", str(SAMPLES / "captions.jsonl"), "--out", str(out),
                            "--base-url", srv.base_url, "--model", "m", "--quiet")
        c = _manifest(out)["counts"]
        assert code == 0, output
        assert 0 < c["records_failed"] < c["records_read"]
        assert f"warning: {c['records_failed']} record(s) failed" in output
        rows = [r for r in map(json.loads, (SAMPLES / "captions.jsonl").read_text().splitlines())
                if "melanoma" in r["caption"].lower()]
        path = write_jsonl(tmp_path / "melanoma.jsonl", rows)
        code, output = _cli("run", str(path), "--out", str(tmp_path / "none"), "--base-url",
                            srv.base_url, "--model", "m", "--quiet")
    assert code == 4, output
    assert f"error: no record produced QA ({len(rows)} failed" in output
    assert _manifest(tmp_path / "none")["status"] == "complete"


# -- progress ------------------------------------------------------------------------------
def test_progress_bar_has_a_total_eta_rate_and_kept_rate(fake_server, tmp_path):
    code, output = _cli("run", str(SAMPLES / "captions.jsonl"), "--out", str(tmp_path / "o"),
                        "--base-url", fake_server.base_url, "--model", "m")
    assert code == 0, output
    assert "48/48" in output and "ETA" in output and "rec/s" in output
    assert re.search(r"kept \d+%", output)
    code, output = _cli("run", str(SAMPLES / "captions.jsonl"), "--out", str(tmp_path / "n"),
                        "--base-url", fake_server.base_url, "--model", "m", columns=80)
    bar = next(ln for ln in output.splitlines() if ln.startswith("generating"))
    assert re.search(r" 48/48 [\d.]+ rec/s · kept \d+% · failed 0 ETA [\d:]+$", bar), bar
    code, output = _cli("run", str(SAMPLES / "captions.jsonl"), "--out", str(tmp_path / "l"),
                        "--base-url", fake_server.base_url, "--model", "m", "--limit", "5")
    assert code == 0 and "5/5" in output


def test_record_totals_are_counted_or_estimated_from_size(tmp_path):
    assert estimate_records(SAMPLES / "captions.jsonl") == (48, True)
    assert estimate_records(SAMPLES / "captions.csv") == (8, True)  # rows span lines
    rows = [{"id": f"r{i}", "caption": "Psoriasis vulgaris on the elbow." * (1 + i % 3)}
            for i in range(3000)]
    big = write_jsonl(tmp_path / "big.jsonl", rows)
    n, exact = estimate_records(big, exact_bytes=10_000, sample_bytes=20_000)
    assert not exact and 2700 <= n <= 3300
    import csv

    with (tmp_path / "big.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "caption"])
        for r in rows:
            w.writerow([r["id"], r["caption"].replace(". ", ".\n")])
    n, exact = estimate_records(tmp_path / "big.csv", sample_bytes=20_000)
    assert not exact and 2700 <= n <= 3300


def test_no_progress_bar_is_drawn_before_an_error(tmp_path):
    # the embedded model fails to start after the up-front checks pass: no bar above the error
    code, output = _cli("run", str(SAMPLES / "captions.jsonl"), "--out", str(tmp_path / "o"),
                        "--model-path", str(tmp_path / "nope.gguf"))
    assert code == 2 and "model file not found" in _one_error_line(output)


# -- summary ---------------------------------------------------------------------------------
def test_summary_shows_skipped_with_reasons_failed_by_kind_and_retries(tmp_path):
    faults = FaultPlan(script=["server_error", "unavailable"])
    with FakeOpenAIServer(responder=_fails_melanoma, faults=faults) as srv:
        out = tmp_path / "o"
        code, output = _cli("run", str(SAMPLES / "captions.jsonl"), "--out", str(out),
                            "--base-url", srv.base_url, "--model", "m", "--quiet")
        injected = srv.stats["server_error"] + srv.stats["unavailable"]
        demo = tmp_path / "demo"
        code_demo, output_demo = _cli("run", str(SAMPLES / "captions.jsonl"), "--out",
                                      str(demo), "--base-url", srv.base_url, "--model", "m",
                                      "--quiet", "--template", "demographics")
    m = _manifest(out)
    c = m["counts"]
    assert code == 0, output
    assert injected == 2 and m["http_retries"] == 2
    assert re.search(rf"records failed\s+│\s+{c['records_failed']}\s+│ invalid_json "
                     rf"{c['records_failed']}", output), output
    assert re.search(rf"LLM calls\s+│\s+{c['llm_calls']}\s+│ incl\. {c['reasks']} re-asks?, 2 "
                     r"HTTP retries", output), output
    # every call is accounted for: one per reply received (first asks and re-asks, all cache
    # misses here) plus the HTTP retries
    assert c["llm_calls"] == c["cache_misses"] + m["http_retries"]
    assert code_demo == 0, output_demo
    d = _manifest(demo)["counts"]
    assert re.search(rf"records skipped\s+│\s+{d['records_skipped']}\s+│ modality "
                     r"'(dermoscopic|pathology)' not among the template's modalities \d+, ",
                     output_demo), output_demo
    assert "the caption states neither age nor sex" in output_demo
    done_with_qa = d["records_done"] - d["records_skipped"]
    assert re.search(rf"records done\s+│\s+{done_with_qa}\s+│ with QA generated", output_demo)


def test_template_modalities_are_enforced_and_counted(fake_server, tmp_path):
    out = tmp_path / "o"
    code, output = _cli("run", str(SAMPLES / "captions.jsonl"), "--out", str(out),
                        "--base-url", fake_server.base_url, "--model", "m", "--quiet",
                        "--template", "demographics")
    assert code == 0, output
    progress = read_jsonl(out / ".vqa-gen" / "progress.jsonl")
    samples = {r["id"]: r for r in map(json.loads,
                                       (SAMPLES / "captions.jsonl").read_text().splitlines())}
    asked = [e for e in progress if not e.get("skipped")]
    assert asked and all(samples[e["record_id"]]["modality"] in ("clinical", "other")
                         for e in asked)
    by_modality = [e for e in progress if "not among the template's modalities" in
                   str(e.get("skipped"))]
    assert by_modality and {samples[e["record_id"]]["modality"] for e in by_modality} <= {
        "dermoscopic", "pathology"}
    assert fake_server.stats["requests"] == len(asked)
    assert _manifest(out)["counts"]["records_skipped"] == len(progress) - len(asked)


# -- errors and the run folder -----------------------------------------------------------------
def test_endpoint_down_leaves_no_partial_failed_file_and_still_resumes(tmp_path):
    out = tmp_path / "o"
    with FakeOpenAIServer(faults=FaultPlan(server_error=1.0)) as srv:
        code, output = _cli("run", str(SAMPLES / "captions.jsonl"), "--out", str(out),
                            "--base-url", srv.base_url, "--model", "m", "--quiet",
                            "--max-retries", "0", "--concurrency", "1")
    assert code == 3, output
    m = _manifest(out)
    assert m["status"] == "endpoint_down"
    assert not (out / "failed.jsonl.partial").exists()
    failed = read_jsonl(out / "failed.jsonl")
    assert len(failed) == m["counts"]["records_failed"] >= 10
    with FakeOpenAIServer(responder=format_aware) as srv:
        code, output = _cli("run", str(SAMPLES / "captions.jsonl"), "--out", str(out),
                            "--base-url", srv.base_url, "--model", "m", "--quiet",
                            "--retry-failed")
    assert code == 0, output
    m = _manifest(out)
    assert m["status"] == "complete" and m["counts"]["records_failed"] == 0
    assert m["counts"]["records_read"] == 48 and read_jsonl(out / "failed.jsonl") == []


def test_manifest_judge_flags_agree(fake_server, tmp_path):
    out = tmp_path / "o"
    code, output = _cli("run", str(SAMPLES / "captions.jsonl"), "--out", str(out),
                        "--base-url", fake_server.base_url, "--model", "m", "--quiet",
                        "--limit", "3")
    assert code == 0, output
    f = _manifest(out)["filter"]
    assert f["judge"] is False and f["checks"]["judge"]["enabled"] is False
    assert _cli("refilter", str(out), "--strictness", "strict")[0] == 0
    f = _manifest(out)["filter"]
    assert f["judge"] is False and f["checks"]["judge"]["enabled"] is False
    on = filter_for_manifest(FilterConfig(judge=True))
    assert on["judge"] is True and on["checks"]["judge"]["enabled"] is True
    assert FilterConfig.model_validate(on).judge is True  # refilter reads it back


# -- report ----------------------------------------------------------------------------------
def _report_of_run_with_failures(tmp_path: Path) -> tuple[Path, str]:
    out = tmp_path / "o"
    with FakeOpenAIServer(responder=_fails_melanoma) as srv:
        code, output = _cli("run", str(SAMPLES / "captions.jsonl"), "--out", str(out),
                            "--base-url", srv.base_url, "--model", "m", "--quiet")
    assert code == 0, output
    return out, render_report(out)


def test_report_shows_failures_by_kind_retries_and_two_decimal_scores(tmp_path):
    out, html = _report_of_run_with_failures(tmp_path)
    c = _manifest(out)["counts"]
    assert 'id="failures"' in html
    assert f'id="failed-invalid_json">{c["records_failed"]}<' in html
    assert "no usable answer after 3 tries" in html
    assert 'id="count-http_retries">' in html and 'id="count-reasks">' in html
    scores = re.findall(r'class="score">([^<]*)<', html)
    assert scores and all(re.fullmatch(r"[01]\.\d\d", s) for s in scores), scores
    for label in ("kept (", "kept but flagged (", "rejected ("):
        assert label in html
    assert "failed (sample of" in html


def test_report_of_a_run_where_everything_failed_says_so(tmp_path):
    rows = [r for r in map(json.loads, (SAMPLES / "captions.jsonl").read_text().splitlines())
            if "melanoma" in r["caption"].lower()]
    path = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "o"
    with FakeOpenAIServer(responder=_fails_melanoma) as srv:
        code, _ = _cli("run", str(path), "--out", str(out), "--base-url", srv.base_url,
                       "--model", "m", "--quiet")
    assert code == 4
    html = render_report(out)
    assert 'id="no-output"' in html and "No record produced QA" in html
    assert f'id="failed-invalid_json">{len(rows)}<' in html


def test_report_examples_are_a_seeded_random_sample_of_four_kinds():
    rows = []
    for rec in range(30):
        for i in range(3):
            passed = i != 2
            reasons = [{"code": "unsupported_content"}] if i == 1 else []
            if not passed:
                reasons = [{"code": "text_leakage"}]
            rows.append({"id": f"r{rec}/t/{i}", "record_id": f"r{rec}", "modality": "clinical",
                         "grounding": {"passed": passed, "score": 0.9, "reasons": reasons}})
    a = sample_examples(rows, seed=0)
    assert a == sample_examples(rows, seed=0)  # deterministic
    got = a["clinical"]
    assert {r["id"].split("/")[-1] for r in got["kept"]} == {"0"}
    assert {r["id"].split("/")[-1] for r in got["flagged"]} == {"1"}
    assert {r["id"].split("/")[-1] for r in got["rejected"]} == {"2"}
    assert all(len({r["record_id"] for r in v}) == len(v) == 3 for v in got.values())
    first_three = ["r0", "r1", "r2"]
    picks = [[r["record_id"] for r in sample_examples(rows, seed=s)["clinical"]["kept"]]
             for s in range(5)]
    assert any(sorted(p) != first_three for p in picks) and len(set(map(tuple, picks))) > 1


# -- lint and try --------------------------------------------------------------------------------
def _template_variant(tmp_path: Path, name: str, edit) -> Path:
    src = (Path(__file__).resolve().parents[1] / "prompts" / "open_vqa.j2").read_text()
    path = tmp_path / f"{name}.j2"
    path.write_text(edit(src.replace('name = "open_vqa"', f'name = "{name}"')))
    path.with_name("_common.j2").write_text(
        (Path(__file__).resolve().parents[1] / "prompts" / "_common.j2").read_text())
    return path


def test_lint_catches_asking_about_what_the_caption_says(tmp_path):
    path = _template_variant(tmp_path, "leaky", lambda s: s.replace(
        "{% block user %}", "{% block user %}\nWrite 3 questions about what the caption says."))
    code, output = _cli("lint", str(path))
    assert code == 1 and "caption_leak" in output and "what the caption says" in output


def test_lint_undefined_variable_does_not_hide_other_checks_or_claim_all_skipped(tmp_path):
    path = _template_variant(tmp_path, "undef", lambda s: s.replace(
        "{% block user %}", "{% block user %}\n{{ foo }} Ask questions about the caption.")
        .replace("json_instruction()", "caption_block('')").replace("JSON", "text"))
    code, output = _cli("lint", str(path))
    assert code == 1
    assert "undefined_variable" in output and "foo" in output
    assert "caption_leak" in output  # checks on the wording still ran
    assert "all_skipped" not in output and "skips every record" not in output


def test_lint_accepts_a_template_without_a_qa_per_caption_default(tmp_path):
    path = _template_variant(tmp_path, "nodefault", lambda s: re.sub(
        r"\[defaults\]\nqa_per_caption = \d+\n", "", s))
    assert "[defaults]" not in path.read_text() and "qa_per_caption" in path.read_text()
    code, output = _cli("lint", str(path))
    assert "undefined" not in output and "error(s)" in output, output
    assert code == 0, output


def test_try_prints_the_caption_above_its_table_with_1_based_numbers_and_whole_codes(
        tmp_path):
    rows = [{"id": "r1", "modality": "clinical",
             "caption": "Psoriasis vulgaris: erythematous plaques with silvery scale on the "
                        "elbows."}]
    path = write_jsonl(tmp_path / "in.jsonl", rows)
    reply = {"qa_pairs": [
        {"question": "What is the diagnosis?", "answer": "Psoriasis vulgaris.",
         "type": "diagnosis"},
        {"question": "What is the diagnosis?", "answer": "Psoriasis vulgaris.",
         "type": "diagnosis"},
        {"question": "What is the diagnosis shown?", "answer": "Psoriasis vulgaris.",
         "type": "diagnosis"},
        {"question": "What does the caption say about the treatment?",
         "answer": "Methotrexate was started as mentioned in the caption.",
         "type": "morphology"}]}
    with FakeOpenAIServer(responder=lambda body: orjson.dumps(reply).decode()) as srv:
        code, output = _cli("try", str(path), "--base-url", srv.base_url, "--model", "m",
                            columns=80)
    assert code == 0, output
    lines = output.splitlines()
    caption_at = next(i for i, ln in enumerate(lines) if ln.startswith("caption: Psoriasis"))
    table_at = next(i for i, ln in enumerate(lines) if "┃" in ln)  # the header row
    assert caption_at < table_at
    numbers = [m.group(1) for ln in lines if (m := re.match(r"│ (\d+) +│", ln))]
    assert numbers[0] == "1" and "0" not in numbers
    reasons_column = " ".join(ln.split("│")[-2].strip() for ln in lines
                              if ln.startswith("│") and ln.count("│") == 7)
    assert "duplicate_question near-duplicate of question 1 " in reasons_column
    found = set(re.findall(r"[a-z]+_[a-z_]+", output))
    assert {"duplicate_question", "text_leakage"} <= found
    # no reason code is cut across lines at 80 columns: every code-like word is a whole code
    assert found <= set(CODES) | {"open_vqa"}, found - set(CODES)


def test_readme_csv_example_runs_as_written(fake_server, tmp_path, monkeypatch):
    import shlex

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    m = re.search(r"```bash\n(vqa-gen run samples/captions\.csv .*?)\n```", text, re.S)
    assert m, "the README's CSV example is gone"
    args = shlex.split(m.group(1).replace("\\\n", " "))[1:]
    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    out = tmp_path / "out-csv"
    args[args.index("--out") + 1] = str(out)
    # the example uses the embedded model; the endpoint flags point it at the test server
    code, output = _cli(*args, "--base-url", fake_server.base_url, "--model", "m", "--quiet")
    assert code == 0, output
    c = _manifest(out)["counts"]
    assert c["records_read"] == c["records_done"] == 8 and c["records_invalid"] == 0
    rows = read_jsonl(sorted(out.glob("data-*.jsonl"))[0])
    assert {r["record_id"] for r in rows} <= {"fig-4.1", "fig-4.2", "fig-4.3", "fig-8.1",
                                              "fig-8.2", "fig-8.3", "fig-12.1", "fig-12.2"}
    assert all(r["image"].startswith("images/") for r in rows)


def test_report_and_render_errors_say_what_they_could_not_do(fake_server, tmp_path):
    out = tmp_path / "o"
    assert _cli("run", str(SAMPLES / "captions.jsonl"), "--out", str(out), "--base-url",
                fake_server.base_url, "--model", "m", "--quiet", "--limit", "2")[0] == 0
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, output = _cli("report", str(out), "--output", str(blocker / "r.html"))
    assert code == 2 and _one_error_line(output) == (
        f"error: cannot write to {blocker / 'r.html'}: Not a directory")
    code, output = _cli("render", str(tmp_path / "none.jsonl"))
    assert code == 2 and _one_error_line(output) == (
        f"error: cannot read {tmp_path / 'none.jsonl'}: No such file or directory")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_input_is_refused_up_front(tmp_path):
    path = write_jsonl(tmp_path / "in.jsonl", [{"caption": "Psoriasis."}])
    path.chmod(0)
    code, output = _cli("run", str(path), "--out", str(tmp_path / "o"))
    assert code == 2 and "cannot read" in _one_error_line(output)
    assert "Permission denied" in output


def test_multiple_choice_repairs_repeated_options_and_drops_only_hopeless_questions():
    from vqa_gen.answers import AnswerFormatError
    from vqa_gen.formats import OUTPUT_FORMATS

    fmt = OUTPUT_FORMATS["multiple_choice"]
    reply = {"questions": [
        {"question": "What colour is the veil?", "correct_answer": "Blue-white",
         "distractors": ["blue-white.", "Red", "Red", "Yellow", "Green"], "type": "color"},
        {"question": "Where is it?", "correct_answer": "Back",
         "distractors": ["Back", "back", "Back."], "type": "location"},
        {"question": "What is the diagnosis?", "correct_answer": "Melanoma",
         "distractors": ["Naevus", "Lentigo", "Seborrhoeic keratosis"], "type": "diagnosis"}]}
    pairs = fmt.parse(json.dumps(reply))
    assert [p.question for p in pairs] == ["What colour is the veil?", "What is the diagnosis?"]
    assert pairs[0].extra["options"] == ["Blue-white", "Red", "Yellow", "Green"]
    hopeless = {"questions": [reply["questions"][1]]}
    with pytest.raises(AnswerFormatError, match="question 1: the four options must all be"):
        fmt.parse(json.dumps(hopeless))
