"""The wheel build (hatch_build.py): a regular install compiles the grounding filter when it can
and falls back to pure Python when it cannot; `VQA_GEN_COMPILE=1` fails instead, `0` never tries.

Each test builds a real wheel of this checkout with pip and hatchling (no build isolation, so
no download); a C compiler that does not exist (`CC`) stands for a machine without one. The
successful compile itself is built and tested by `.ci/run` (about a minute of mypyc).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(importlib.util.find_spec("hatchling") is None,
                                reason="hatchling is not installed (the test extra has it)")


def _build(tmp_path: Path, compile_setting: str | None) -> tuple[int, str, list[Path]]:
    env = {k: v for k, v in os.environ.items() if k != "VQA_GEN_COMPILE"}
    env["CC"] = str(tmp_path / "no-such-compiler")
    if compile_setting is not None:
        env["VQA_GEN_COMPILE"] = compile_setting
    out = tmp_path / "wheels"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-v",
         "--no-cache-dir", "-w", str(out), str(ROOT)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
    return done.returncode, done.stdout, sorted(out.glob("*.whl")) if out.exists() else []


def test_without_a_compiler_a_regular_install_is_pure_python_and_says_why(tmp_path):
    code, log, wheels = _build(tmp_path, None)
    assert code == 0, log[-2000:]
    assert [w.name for w in wheels] == ["vqa_gen-0.1.0-py3-none-any.whl"]
    assert "VQA_GEN_COMPILE: no C compiler" in log and "installed as pure Python" in log


def test_compile_required_without_a_compiler_fails_with_the_reason(tmp_path):
    code, log, wheels = _build(tmp_path, "1")
    assert code != 0 and not wheels
    assert "VQA_GEN_COMPILE=1: cannot compile: no C compiler" in log


def test_compile_off_builds_pure_python_without_looking_for_a_compiler(tmp_path):
    code, log, wheels = _build(tmp_path, "0")
    assert code == 0, log[-2000:]
    assert [w.name for w in wheels] == ["vqa_gen-0.1.0-py3-none-any.whl"]
    assert "no C compiler" not in log


def test_an_unknown_compile_setting_is_an_error(tmp_path):
    code, log, wheels = _build(tmp_path, "maybe")
    assert code != 0 and not wheels
    assert "VQA_GEN_COMPILE='maybe': expected 1, 0 or auto" in log
