"""One error root: every exception vqa-gen defines is a `VqaGenError`, and the CLI turns each
category into one line and an exit code, without a traceback."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest
from conftest import SAMPLES, write_jsonl
from typer.testing import CliRunner

import vqa_gen
from vqa_gen.cli import app
from vqa_gen.errors import (
    EndpointError,
    FilterConfigError,
    InputError,
    ReplyError,
    RunFolderError,
    TemplateError,
    VqaGenError,
)
from vqa_gen.grounding.config import validate_filter_config


def _package_modules() -> list[str]:
    names = []
    for info in pkgutil.walk_packages(vqa_gen.__path__, "vqa_gen."):
        if info.name.startswith("vqa_gen.testing") or info.name.endswith("__main__"):
            continue
        names.append(info.name)
    return names


def test_every_exception_the_library_defines_is_under_the_root():
    found = {}
    for name in _package_modules():
        module = importlib.import_module(name)
        for _, obj in inspect.getmembers(module, inspect.isclass):
            # private classes are control flow that never leaves their module; signals
            # (KeyboardInterrupt subclasses) are not errors
            if (issubclass(obj, Exception) and obj.__module__ == name
                    and not obj.__name__.startswith("_")):
                found[f"{name}.{obj.__name__}"] = obj
    # the classes the issue names, so a rename cannot make this test vacuous
    for expected in ("vqa_gen.llm.LLMError", "vqa_gen.answers.AnswerFormatError",
                     "vqa_gen.runner.RunError", "vqa_gen.runner.EndpointDownError",
                     "vqa_gen.refilter.RefilterError", "vqa_gen.embedded.EmbeddedModelError",
                     "vqa_gen.errors.TemplateError"):
        assert expected in found, sorted(found)
    strays = sorted(n for n, cls in found.items() if not issubclass(cls, VqaGenError))
    assert strays == []


@pytest.mark.parametrize(("module", "name", "category"), [
    ("vqa_gen.llm", "LLMError", EndpointError),
    ("vqa_gen.embedded", "EmbeddedModelError", EndpointError),
    ("vqa_gen.runner", "EndpointDownError", EndpointError),
    ("vqa_gen.answers", "AnswerFormatError", ReplyError),
    ("vqa_gen.runner", "RunError", RunFolderError),
    ("vqa_gen.refilter", "RefilterError", RunFolderError),
    ("vqa_gen.templates", "TemplateError", TemplateError),
])
def test_each_specific_class_sits_in_its_category(module, name, category):
    assert issubclass(getattr(importlib.import_module(module), name), category)


def test_every_category_has_a_one_line_summary_and_the_message_wins_over_it():
    for cls in (InputError, TemplateError, EndpointError, ReplyError, RunFolderError,
                FilterConfigError):
        assert issubclass(cls, VqaGenError)
        assert cls.summary and "\n" not in cls.summary and cls.summary != VqaGenError.summary
        assert cls().user_message() == cls.summary
    assert InputError("a.jsonl:3: bad\nmore detail").user_message() == "a.jsonl:3: bad"


def test_filter_settings_errors_name_the_source_field_and_what_it_accepts():
    with pytest.raises(FilterConfigError, match=r"f\.json: field 'strictness'.*'lenient'"):
        validate_filter_config({"strictness": "extreme"}, source="f.json")
    with pytest.raises(FilterConfigError, match=r"field 'treshold': unknown setting .*threshold"):
        validate_filter_config({"treshold": 0.5})
    assert validate_filter_config({"threshold": 0.2, "strictness": "strict"}).threshold == 0.2


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})
    assert isinstance(result.exception, SystemExit | None), result.exception
    return result.exit_code, result.output


def _one_error_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    assert "Traceback" not in output
    assert len(lines) == 1 and lines[0].startswith("error: "), output
    return lines[0]


def test_cli_prints_one_line_per_error_category(tmp_path):
    samples = str(SAMPLES / "captions.jsonl")
    code, out = _cli("run", samples, "--out", str(tmp_path / "o"), "--template", "nope",
                     "--base-url", "http://127.0.0.1:9/v1", "--model", "m")
    assert code == 2 and "no template named 'nope'" in _one_error_line(out)
    code, out = _cli("run", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "o"),
                     "--base-url", "http://127.0.0.1:9/v1", "--model", "m")
    assert code == 2 and "input file not found" in _one_error_line(out)
    code, out = _cli("render", samples, "--record", "no-such-id[/b]")
    assert code == 2 and "no record with id 'no-such-id[/b]'" in _one_error_line(out)
    code, out = _cli("refilter", str(tmp_path))
    assert code == 2 and "holds no vqa-gen run" in _one_error_line(out)
    code, out = _cli("diff", str(tmp_path), str(tmp_path))
    assert code == 2 and "holds no vqa-gen run" in _one_error_line(out)
    code, out = _cli("report", str(tmp_path))
    assert code == 2 and "holds no vqa-gen run" in _one_error_line(out)
    code, out = _cli("check", samples, "--out", str(tmp_path / "c.jsonl"), "--strictness",
                     "extreme")
    assert code == 2 and "lenient, default, strict" in _one_error_line(out)


def test_cli_reports_an_os_error_as_one_line_with_the_path(tmp_path):
    qa = write_jsonl(tmp_path / "qa.jsonl", [{"caption": "A red papule.", "question":
                                              "What colour?", "answer": "Red."}])
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, out = _cli("check", str(qa), "--out", str(blocker / "sub" / "out.jsonl"))
    line = _one_error_line(out)
    assert code == 2 and str(blocker) in line


def test_a_damaged_run_folder_line_is_one_line_naming_file_and_line(tmp_path, fake_server):
    inp = write_jsonl(tmp_path / "in.jsonl", [
        {"id": f"r{i}", "caption": f"A {i + 2} mm red papule on the left forearm."}
        for i in range(3)])
    out = tmp_path / "run"
    code, output = _cli("run", str(inp), "--out", str(out), "--base-url", fake_server.base_url,
                        "--model", "m", "--quiet", "--no-cache")
    assert code == 0, output
    shard = next(p for p in sorted(out.glob("*-00000.jsonl")) if p.stat().st_size)
    lines = shard.read_bytes().splitlines(keepends=True)
    shard.write_bytes(lines[0] + b'{"question": "cut off\n' + b"".join(lines[1:]))
    for args in (("diff", str(out), str(out)), ("report", str(out))):
        code, output = _cli(*args)
        assert code == 2 and f"{shard}:2: not valid JSON" in _one_error_line(output), args
