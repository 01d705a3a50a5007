"""Library side of `vqa-gen check INPUT --out OUTPUT`: run the grounding filter over an existing
QA file (JSONL or CSV) and write every row back with a `grounding` verdict.

Streams the input and holds only the current record (rows sharing `--record-field`; by default
each row is its own record) for the duplicate-question check,
so memory stays bounded on large files. Bad rows are reported, never fatal.
"""

from __future__ import annotations

import csv
import heapq
import io
import json
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .grounding import FilterConfig, GroundingFilter, Verdict

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
    data: dict[str, Any] | None  # None: unparseable line
    raw: str | None = None
    error: str | None = None


def _read_jsonl(path: Path) -> Iterator[_Row]:
    with path.open("rb") as fh:
        for n, bline in enumerate(fh, start=1):
            text = bline.decode("utf-8", errors="replace").strip()
            if not text:
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                yield _Row(n, None, raw=text, error=f"bad JSON ({exc.msg})")
                continue
            if not isinstance(obj, dict):
                yield _Row(n, None, raw=text, error="JSON line is not an object")
                continue
            yield _Row(n, obj)


def _read_csv(path: Path) -> Iterator[_Row]:
    with path.open("rb") as bfh:
        text_fh = io.TextIOWrapper(bfh, encoding="utf-8-sig", errors="replace", newline="")
        reader = csv.DictReader(text_fh)
        for row in reader:
            line = reader.line_num
            extra = row.pop(None, None)  # type: ignore[call-overload]
            data = {k: v for k, v in row.items() if k is not None}
            if extra:
                data["_extra_columns"] = extra
            yield _Row(line, data)


def _rows(path: Path) -> Iterator[_Row]:
    return _read_csv(path) if path.suffix.lower() == ".csv" else _read_jsonl(path)


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
        data = dict(row.data) if row.data is not None else {"_raw": row.raw}
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


def format_summary(summary: AuditSummary) -> str:
    """Plain-text report for the CLI."""
    lines = [f"rows: {summary.rows}  checked: {summary.checked}  passed: {summary.passed}  "
             f"failed: {summary.failed}  skipped: {summary.skipped}"]
    if summary.checked:
        lines.append(f"pass rate: {summary.passed / summary.checked:.1%}")
    if summary.reason_counts:
        lines.append("reasons:")
        for code, n in summary.reason_counts.most_common():
            lines.append(f"  {code:24} {n}")
    if summary.skipped:
        lines.append("skipped rows:")
        lines.extend(f"  {r}" for r in summary.reasons[:20])
        if len(summary.reasons) > 20:
            lines.append(f"  ... and {summary.skipped - 20} more")
    if summary.worst:
        lines.append("lowest-scoring rows:")
        for w in summary.worst:
            lines.append(f"  line {w['line']}: {w['score']:.2f} {','.join(w['codes'])} | "
                         f"Q: {w['question'][:60]} | A: {w['answer'][:60]}")
    return "\n".join(lines)
