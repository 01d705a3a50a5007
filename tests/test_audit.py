"""Tests of `vqa-gen check` library side: streaming, field mapping, bad rows, atomic output."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from vqa_gen.audit import AuditSummary, audit_file, format_summary
from vqa_gen.grounding import FilterConfig

CAP = "Erythematous papule on the left forearm of a 64-year-old woman, without ulceration."


def _write_jsonl(path: Path, rows: list) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for r in rows:
            fh.write((r if isinstance(r, str) else json.dumps(r)) + "\n")


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_jsonl_roundtrip(tmp_path):
    rows = [
        {"caption": CAP, "question": "What color is it?", "answer": "Red.", "id": 1, "rec": "a"},
        {"caption": CAP, "question": "What colour is it?", "answer": "Blue.", "id": 2,
         "rec": "a"},
        {"caption": CAP, "question": "Is there ulceration?", "answer": "No.", "id": 3, "rec": "a"},
        {"question": "Where?", "answer": "Back.", "id": 4},
        "{not json",
        {"caption": "Brown macule on the back.", "question": "Where?", "answer": "On the chest.",
         "id": 6},
    ]
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    _write_jsonl(inp, rows)
    s = audit_file(inp, out, record_field="rec")
    got = _read(out)
    assert len(got) == len(rows) == s.rows
    assert got[0]["id"] == 1 and got[0]["grounding"]["passed"] is True
    assert "duplicate_question" in [r["code"] for r in got[1]["grounding"]["reasons"]]
    assert got[2]["grounding"]["passed"] is True
    assert got[3]["grounding"] is None
    assert got[3]["audit_error"] == "line 4: missing field 'caption'"
    assert got[4]["grounding"] is None and "bad JSON" in got[4]["audit_error"]
    assert got[5]["grounding"]["passed"] is False
    assert (s.checked, s.skipped, s.passed, s.failed) == (4, 2, 2, 2)
    assert any(r.startswith("in.jsonl:4:") for r in s.reasons)
    assert any(r.startswith("in.jsonl:5:") for r in s.reasons)
    assert s.reason_counts["duplicate_question"] == 1
    assert s.worst[0]["score"] <= s.worst[-1]["score"]
    assert not (tmp_path / "out.jsonl.tmp").exists()
    text = format_summary(s)
    assert "skipped: 2" in text and "duplicate_question" in text
    json.dumps(s.to_dict())


def test_csv_with_field_mapping(tmp_path):
    inp, out = tmp_path / "in.csv", tmp_path / "out.jsonl"
    with inp.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["legend", "q", "a", "rec"])
        w.writerow([CAP, "Where is the lesion?", "Left forearm.", "r1"])
        w.writerow([CAP, "Where is the papule?", "Right forearm.", "r1"])
        w.writerow(["", "What?", "Red.", "r2"])
    s = audit_file(inp, out, caption_field="legend", question_field="q", answer_field="a",
                   record_field="rec", config=FilterConfig(strictness="lenient"))
    got = _read(out)
    assert len(got) == 3
    assert got[0]["legend"] == CAP and got[0]["grounding"]["passed"] is True
    assert got[1]["grounding"]["passed"] is False
    assert got[2]["grounding"] is None and "missing field 'legend'" in got[2]["audit_error"]
    assert isinstance(s, AuditSummary) and s.skipped == 1 and s.checked == 2


def test_non_utf8_bytes_do_not_crash(tmp_path):
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    line = json.dumps({"caption": "Red papule caf\u00e9", "question": "Color?", "answer": "Red."})
    inp.write_bytes(line.encode("utf-8") + b"\n" + b'{"caption": "\xff\xfe bad"}\n')
    s = audit_file(inp, out)
    assert s.rows == 2 and len(_read(out)) == 2


def test_output_replaced_atomically(tmp_path):
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    out.write_text("old\n")
    _write_jsonl(inp, [{"caption": CAP, "question": "Color?", "answer": "Red."}])
    audit_file(inp, out)
    assert len(_read(out)) == 1


# ------------------------------------------------------------------ `vqa-gen check` (CLI)
def _cli(*args: str):
    from typer.testing import CliRunner

    from vqa_gen.cli import app

    return CliRunner().invoke(app, ["check", *args])


def test_cli_check_jsonl(tmp_path):
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    _write_jsonl(inp, [
        {"caption": CAP, "question": "What color is it?", "answer": "Red."},
        {"caption": CAP, "question": "Papule", "answer": "Papule"},
        {"caption": CAP, "question": "Where is it?", "answer": "On the right forearm."},
    ])
    res = _cli(str(inp), "--out", str(out))
    assert res.exit_code == 0, res.output
    got = _read(out)
    assert [g["grounding"]["passed"] for g in got] == [True, False, False]
    assert "33.3%" in res.output  # pass rate
    assert "malformed_question" in res.output and "laterality_mismatch" in res.output
    assert "lowest-scoring rows" in res.output


def test_cli_check_csv_with_fields_and_filter_config(tmp_path):
    inp, out = tmp_path / "in.csv", tmp_path / "out.jsonl"
    with inp.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["legend", "q", "a", "rec"])
        w.writerow([CAP, "Where is the lesion?", "Left forearm.", "r1"])
        w.writerow([CAP, "Is it ulcerated?", "Yes.", "r1"])
    cfg = tmp_path / "filter.json"
    cfg.write_text(json.dumps({"threshold": 0.9}), encoding="utf-8")
    res = _cli(str(inp), "--out", str(out), "--caption-field", "legend", "--question-field", "q",
               "--answer-field", "a", "--record-field", "rec", "--strictness", "strict",
               "--filter-config", str(cfg))
    assert res.exit_code == 0, res.output
    got = _read(out)
    assert got[0]["grounding"]["passed"] is True and got[1]["grounding"]["passed"] is False
    assert "negation_conflict" in res.output


def test_cli_check_errors_are_one_line(tmp_path):
    res = _cli(str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "o.jsonl"))
    assert res.exit_code != 0 and "no such file" in res.output
    assert "Traceback" not in res.output and len(res.output.strip().splitlines()) == 1
    inp = tmp_path / "in.jsonl"
    _write_jsonl(inp, [{"caption": CAP, "question": "Q?", "answer": "A."}])
    bad = tmp_path / "bad.json"
    bad.write_text("{nope", encoding="utf-8")
    res = _cli(str(inp), "--out", str(tmp_path / "o.jsonl"), "--filter-config", str(bad))
    assert res.exit_code != 0 and "cannot read filter settings" in res.output
    res = _cli(str(inp), "--out", str(tmp_path / "o.jsonl"), "--strictness", "extreme")
    assert res.exit_code != 0 and "filter settings" in res.output


def test_cli_check_reports_skipped_rows(tmp_path):
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    _write_jsonl(inp, [{"caption": CAP, "question": "What color?", "answer": "Red."},
                       "{broken"])
    res = _cli(str(inp), "--out", str(out))
    assert res.exit_code == 0 and "1 row(s) skipped" in res.output


def test_rows_are_independent_records_by_default_and_questions_optional(tmp_path):
    """Without --record-field two rows sharing a caption are independent items (two answers to
    one question are not duplicates), and a row without a question is graded on its answer."""
    rows = [
        {"caption": CAP, "question": "What colour is it?", "answer": "Red."},
        {"caption": CAP, "question": "What colour is it?", "answer": "Red papule."},
        {"caption": CAP, "answer": "An erythematous papule on the left forearm."},
        {"caption": CAP, "question": "", "answer": "A blue nodule on the right cheek."},
    ]
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    _write_jsonl(inp, rows)
    s = audit_file(inp, out)
    got = _read(out)
    assert s.skipped == 0 and s.checked == 4
    assert [g["grounding"]["passed"] for g in got] == [True, True, True, False]
    assert s.reason_counts["duplicate_question"] == 0
    assert s.reason_counts["empty_question"] == 0
    grouped = audit_file(inp, tmp_path / "g.jsonl", record_field="caption")
    assert grouped.reason_counts["duplicate_question"] == 1
