"""`vqa-gen report`: a self-contained HTML report, checked in headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import SAMPLES, write_jsonl
from typer.testing import CliRunner

from vqa_gen.cli import app
from vqa_gen.report import render_report
from vqa_gen.testing import FakeOpenAIServer
from vqa_gen.testing.formats import format_aware

runner = CliRunner()
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
EVIL = "<script>document.title='pwned'</script><img src=x onerror=alert(1)>"


def _cli(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args), env={"COLUMNS": "200"})
    return result.exit_code, result.output


def _run(tmp_path: Path, template: str = "open_vqa") -> Path:
    rows = [json.loads(line) for line in (SAMPLES / "captions.jsonl").read_text().splitlines()]
    rows[0]["caption"] = f"Psoriasis vulgaris {EVIL} on both elbows."
    for row in rows[1:]:  # examples are a random sample: any record may be the one shown
        row["caption"] = f"{row['caption']} {EVIL}"
    path = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / f"out-{template}"
    with FakeOpenAIServer(responder=format_aware) as srv:
        code, output = _cli("run", str(path), "--out", str(out), "--template", template,
                            "--base-url", srv.base_url, "--model", "m", "--quiet")
    assert code == 0, output
    return out


def _dump_dom(html_path: Path, tmp_path: Path) -> str:
    assert CHROMIUM is not None
    proc = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", f"--user-data-dir={tmp_path / 'chromium-profile'}", "--dump-dom",
         html_path.resolve().as_uri()],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_report_is_self_contained_and_escapes_dataset_text(tmp_path):
    out = _run(tmp_path)
    html = render_report(out)
    assert "<script" not in html.lower()
    assert "&lt;script&gt;" in html
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)  # no CDN, no remote assets
    code, output = _cli("report", str(out))
    assert code == 0 and "report.html" in output
    assert (out / "report.html").read_text() == html


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install "
                                              "chromium); .ci/run installs it")
def test_report_renders_in_headless_chromium(tmp_path):
    out = _run(tmp_path)
    m = json.loads((out / "manifest.json").read_text())
    target = tmp_path / "r.html"
    assert _cli("report", str(out), "--output", str(target))[0] == 0
    dom = _dump_dom(target, tmp_path)
    assert "<title>vqa-gen report: out-open_vqa</title>" in dom  # the caption's script never ran
    assert 'id="status">complete<' in dom
    c = m["counts"]
    assert f'id="count-qa_kept">{c["qa_kept"]}<' in dom
    assert f'id="count-records_read">{c["records_read"]}<' in dom
    assert f'{c["qa_kept"] / c["qa_generated"]:.1%}' in dom
    for section in ("types", "modalities", "reasons", "examples"):
        assert f'id="{section}"' in dom
    for modality in ("clinical", "dermoscopic", "pathology"):
        assert f'data-modality="{modality}"' in dom
    assert "duplicate_question" in dom and "text_leakage" in dom
    assert "&lt;script&gt;document.title='pwned'&lt;/script&gt;" in dom
    assert "<script" not in dom.lower() and "<img" not in dom.lower()


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_report_shows_multiple_choice_options_and_conversations(tmp_path):
    out = _run(tmp_path, "multiple_choice")
    assert _cli("report", str(out))[0] == 0
    dom = _dump_dom(out / "report.html", tmp_path)
    assert '<ol class="opts" type="A">' in dom and '<li class="correct">' in dom
    out = _run(tmp_path, "conversation")
    assert _cli("report", str(out))[0] == 0
    dom = _dump_dom(out / "report.html", tmp_path)
    assert dom.count("<b>Q:</b>") > dom.count('class="qa ')  # several turns per sample
