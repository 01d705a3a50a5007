"""Library side of `vqa-gen check INPUT --out OUTPUT`: run the grounding filter over an existing
QA file (JSONL or CSV) and write every row back with a `grounding` verdict.

Streams the input and holds only the current record (rows sharing `--record-field`; by default
each row is its own record) for the duplicate-question check,
so memory stays bounded on large files. Bad rows are reported, never fatal.
"""

from __future__ import annotations

import heapq
import json
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .grounding import FilterConfig, GroundingFilter, Verdict
from .records import iter_rows

_MAX_REPORTED_SKIPS = 1000
_WORST_N = 10


@dataclass
class AuditSummary:
    """Counts and the worst rows of one audit run."""

    rows: int = 0
    checked: int = 0
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    reasons: list[str] = field(default_factory=list)  # "file:line: why" for skipped rows
    reason_counts: Counter[str] = field(default_factory=Counter)
    worst: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "checked": self.checked, "passed": self.passed,
                "failed": self.failed, "skipped": self.skipped, "reasons": list(self.reasons),
                "reason_counts": dict(self.reason_counts), "worst": list(self.worst)}


@dataclass
class _Row:
    line: int
    data: dict[str, Any] | None  # None: unreadable line
    error: str | None = None


def _rows(path: Path) -> Iterator[_Row]:
    """The file's rows through the line-capped readers `run` uses (records.iter_rows)."""
    for line, obj, error in iter_rows(path):
        if error is not None:
            yield _Row(line, None, error=error)
        elif not isinstance(obj, dict):
            yield _Row(line, None, error=f"expected a JSON object, got {type(obj).__name__}")
        else:
            yield _Row(line, obj)


def _field(data: dict[str, Any], name: str) -> str | None:
    v = data.get(name)
    if v is None:
        return None
    v = str(v) if not isinstance(v, str) else v
    return v if v.strip() else None


def audit_file(input_path: Path, output_path: Path, *, caption_field: str = "caption",
               question_field: str = "question", answer_field: str = "answer",
               config: FilterConfig | None = None, record_field: str | None = None
               ) -> AuditSummary:
    """Check every QA row of `input_path` and write it, plus a `grounding` verdict, to
    `output_path` (JSONL, written atomically via OUTPUT.tmp + os.replace).

    Each row is its own record unless `record_field` is given: then consecutive rows with the
    same value of that field form one record for the near-duplicate-question check (two answers
    to one question in independent rows are not duplicates). A row without a question is graded
    on its answer alone (descriptions, captions, dialogue openers).
    """
    input_path, output_path = Path(input_path), Path(output_path)
    filt = GroundingFilter(config or FilterConfig())
    summary = AuditSummary()
    worst_heap: list[tuple[float, int, dict[str, Any]]] = []
    tmp = output_path.with_name(output_path.name + ".tmp")
    name = input_path.name

    def skip(out, row: _Row, why: str) -> None:
        summary.skipped += 1
        if len(summary.reasons) < _MAX_REPORTED_SKIPS:
            summary.reasons.append(f"{name}:{row.line}: {why}")
        data = dict(row.data) if row.data is not None else {}
        data["grounding"] = None
        data["audit_error"] = f"line {row.line}: {why}"
        out.write(json.dumps(data, ensure_ascii=False) + "\n")

    def flush(out, group: list[tuple[_Row, str, str, str]]) -> None:
        if not group:
            return
        caption = group[0][1]
        meta = group[0][0].data.get("meta") if group[0][0].data else None
        meta = meta if isinstance(meta, dict) else None
        verdicts: list[Verdict] = filt.check_record(
            caption, [(q, a) for _, _, q, a in group], meta=meta,
            qa_types=[(r.data or {}).get("qa_type") for r, *_ in group])
        for (row, _, q, a), v in zip(group, verdicts, strict=True):
            data = dict(row.data or {})
            data["grounding"] = v.to_dict()
            out.write(json.dumps(data, ensure_ascii=False) + "\n")
            summary.checked += 1
            if v.passed:
                summary.passed += 1
            else:
                summary.failed += 1
            summary.reason_counts.update(v.codes)
            item = {"line": row.line, "question": q, "answer": a,
                    "score": round(v.score, 4), "codes": v.codes}
            entry = (-v.score, -row.line, item)
            if len(worst_heap) < _WORST_N:
                heapq.heappush(worst_heap, entry)
            elif entry > worst_heap[0]:
                heapq.heapreplace(worst_heap, entry)
        group.clear()

    output_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with tmp.open("w", encoding="utf-8") as out:
            group: list[tuple[_Row, str, str, str]] = []
            group_key: object = None
            for row in _rows(input_path):
                summary.rows += 1
                if row.data is None:
                    flush(out, group)
                    skip(out, row, row.error or "unreadable line")
                    continue
                values = {}
                missing = None
                for fname in (caption_field, question_field, answer_field):
                    values[fname] = _field(row.data, fname)
                    if values[fname] is None and missing is None and fname != question_field:
                        missing = fname
                if missing is not None:
                    flush(out, group)
                    skip(out, row, f"missing field '{missing}'")
                    continue
                caption = values[caption_field] or ""
                key = row.data.get(record_field) if record_field else row.line
                if group and key != group_key:
                    flush(out, group)
                group_key = key
                group.append((row, caption, values[question_field] or "",
                              values[answer_field] or ""))
            flush(out, group)
        os.replace(tmp, output_path)
    finally:
        if tmp.exists():
            tmp.unlink()
    summary.worst = [item for _, _, item in sorted(worst_heap, reverse=True)]
    return summary

