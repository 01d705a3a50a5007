"""`vqa-gen templates`, `render`, `lint` and `try`; the edited-under-same-version warning."""

from __future__ import annotations

import json
import re
import shutil

import pytest
from conftest import ROOT, SAMPLES, write_jsonl
from typer.testing import CliRunner

from vqa_gen.cli import app
from vqa_gen.pipeline import record_seed
from vqa_gen.testing import FakeOpenAIServer
from vqa_gen.testing.formats import format_aware

runner = CliRunner()
SHIPPED = ["open_vqa", "closed_vqa", "multiple_choice", "conversation", "demographics",
           "description"]


def _cli(*args: str):
    result = runner.invoke(app, list(args), env={"COLUMNS": "200"})
    return result.exit_code, result.output


def test_templates_lists_every_shipped_template_with_output_and_modalities():
    code, out = _cli("templates")
    assert code == 0, out
    for name in SHIPPED:
        assert name in out
    assert "multiple_choice" in out and "yes_no" in out and "clinical" in out


def test_render_prints_the_exact_request_without_any_call():
    code, out = _cli("render", str(SAMPLES / "captions.jsonl"), "--template", "closed_vqa",
                     "--record", "mmskin-clin-003", "--seed", "5", "--json")
    assert code == 0, out
    body = json.loads(out)
    assert body["record_id"] == "mmskin-clin-003" and body["skipped"] is None
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert "47-year-old woman" in body["messages"][1]["content"]
    assert body["seed"] == record_seed(5, "mmskin-clin-003")
    assert body["response_format"]["json_schema"]["name"] == "yes_no"
    assert body["response_format"]["json_schema"]["schema"]["properties"]["qa_pairs"][
        "maxItems"] == 4
    code, out = _cli("render", str(SAMPLES / "captions.jsonl"), "--template", "open_vqa")
    assert code == 0 and "system ──" in out and "response_format" in out
    assert "Psoriasis vulgaris" in out  # the first record by default


def test_render_reports_a_skipped_record_and_an_unknown_id():
    code, out = _cli("render", str(SAMPLES / "captions.jsonl"), "--template", "demographics",
                     "--record", "mmskin-clin-002")
    assert code == 0 and "skipped" in out and "neither age nor sex" in out
    code, out = _cli("render", str(SAMPLES / "captions.jsonl"), "--record", "nope")
    assert code == 2 and "no record with id 'nope'" in out


@pytest.mark.parametrize("name", SHIPPED)
def test_lint_passes_every_shipped_template(name):
    code, out = _cli("lint", name)
    assert code == 0, out
    assert "0 error(s)" in out


BAD = '''{#---
name = "bad"
description = "x"
modalities = ["clinical", "xray"]
colour = "blue"

[[examples.clinical]]
caption = "Psoriasis on the knee."
reply = \'\'\'{"qa_pairs": [{"question": "What does the caption say?"}]}\'\'\'
---#}
{% block system %}Ask questions about the caption.
{% if modality == "pathology" %}{{ stain }}{% endif %}{% endblock %}
{% block user %}{{ caption }}{% endblock %}
'''


def test_lint_reports_each_problem_and_exits_non_zero(tmp_path):
    path = tmp_path / "bad.j2"
    path.write_text(BAD)
    code, out = _cli("lint", str(path))
    assert code == 1, out
    for expected in ("header_version", "header_modalities", "header_unknown_key",
                     "undefined_variable", "stain", "no_json_instruction", "caption_leak",
                     "examples_reply", "render"):
        assert expected in out, expected
    assert "16 record(s)" in out  # one render issue for all pathology records


def test_lint_catches_a_template_that_drops_the_caption(tmp_path):
    path = tmp_path / "nocap.j2"
    path.write_text('{#---\nname = "nocap"\nversion = "1"\ndescription = "d"\n'
                    'modalities = ["clinical"]\nqa_types = ["diagnosis"]\n---#}\n'
                    '{% block user %}Write questions. Reply in JSON: {"qa_pairs": []}'
                    "{% endblock %}")
    code, out = _cli("lint", str(path), "--input", str(SAMPLES / "captions.jsonl"))
    assert code == 1 and "caption_missing" in out


def test_try_shows_verdicts_and_a_second_try_costs_nothing():
    with FakeOpenAIServer(responder=format_aware) as srv:
        args = ["try", str(SAMPLES / "captions.jsonl"), "--template", "multiple_choice", "-n",
                "2", "--base-url", srv.base_url, "--model", "m"]
        code, out = _cli(*args)
        assert code == 0, out
        calls = srv.stats["requests"]
        assert calls == 2
        assert "mmskin-clin-001" in out and "kept" in out and "A. " in out
        assert "LLM calls 2" in out
        code, again = _cli(*args)
        assert code == 0 and srv.stats["requests"] == calls
        assert "LLM calls 0" in again and "cache hits 2" in again


def test_try_specific_records_shows_reasons_and_skips(tmp_path):
    rows = [{"id": "a", "caption": "Psoriasis on the elbow of a 40-year-old man.",
             "modality": "clinical"},
            {"id": "b", "caption": "Dermoscopy of a naevus.", "modality": "dermoscopic"}]
    path = write_jsonl(tmp_path / "in.jsonl", rows)
    with FakeOpenAIServer(responder=format_aware) as srv:
        code, out = _cli("try", str(path), "--template", "demographics", "--record", "b",
                         "--record", "a", "--base-url", srv.base_url, "--model", "m")
    assert code == 0, out
    assert "b · dermoscopic: skipped" in out and "a · clinical" in out
    with FakeOpenAIServer(responder=format_aware) as srv:
        code, out = _cli("try", str(SAMPLES / "captions.jsonl"), "-n", "1", "--base-url",
                         srv.base_url, "--model", "m", "--strictness", "strict")
    assert code == 0 and "rejected" in out and "text_leakage" in out


def test_a_template_edited_under_the_same_version_is_warned_about(tmp_path):
    path = tmp_path / "mine.j2"
    shutil.copy(ROOT / "prompts" / "open_vqa.j2", path)
    shutil.copy(ROOT / "prompts" / "_common.j2", tmp_path / "_common.j2")
    src = path.read_text().replace('name = "open_vqa"', 'name = "mine"')
    _VERSION_LINE = re.search(r'version = "[^"]*"', src).group(0)
    path.write_text(src)
    code, out = _cli("lint", str(path))
    assert code == 0 and "version_unchanged" not in out, out
    path.write_text(src.replace("Keep answers short", "Keep answers very short"))
    code, out = _cli("lint", str(path))
    assert code == 0 and "version_unchanged" in out and "bump" in out
    with FakeOpenAIServer() as srv:
        code, out = _cli("try", str(SAMPLES / "captions.jsonl"), "--template", str(path), "-n",
                         "1", "--base-url", srv.base_url, "--model", "m")
    assert code == 0 and "warning" in out and "bump" in out
    path.write_text(src.replace("Keep answers short", "Keep answers very short")
                    .replace(_VERSION_LINE, 'version = "99.0"'))
    code, out = _cli("lint", str(path))
    assert code == 0 and "version_unchanged" not in out
