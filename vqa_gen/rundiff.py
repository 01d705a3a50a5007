"""Compare two finished runs: kept rate, rejection reasons, QA types, and per-record changes.

QA are matched within a record by their text (question and answer, case- and space-insensitive),
not by id: after a template edit the same index can hold a different question. Per record we
report the QA that became kept, stopped being kept, and the ones only one run has.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from .errors import RunFolderError
from .output import MANIFEST, read_jsonl


def _norm(text: str) -> str:
    return " ".join(str(text).casefold().split())


def qa_key(row: dict[str, Any]) -> tuple[str, str]:
    return _norm(row.get("question", "")), _norm(row.get("answer", ""))


@dataclass(slots=True)
class RunData:
    """What a diff needs from one run folder."""

    path: Path
    manifest: dict[str, Any]
    kept: list[dict[str, Any]]
    rejected: list[dict[str, Any]]

    @property
    def counts(self) -> dict[str, int]:
        return self.manifest.get("counts", {})

    @property
    def kept_rate(self) -> float | None:
        n = len(self.kept) + len(self.rejected)
        return len(self.kept) / n if n else None

    def reason_counts(self) -> Counter[str]:
        """Rejected QA per reason code (a QA with two codes counts under both)."""
        c: Counter[str] = Counter()
        for row in self.rejected:
            c.update({r["code"] for r in row.get("grounding", {}).get("reasons", [])})
        return c

    def rows(self, which: str = "kept") -> list[dict[str, Any]]:
        """The QA rows: "kept", "rejected" or "all"."""
        if which == "kept":
            return self.kept
        return self.rejected if which == "rejected" else self.kept + self.rejected

    def type_counts(self, which: str = "kept") -> Counter[str]:
        return Counter(str(r.get("type", "other")) for r in self.rows(which))

    def modality_counts(self, which: str = "kept") -> Counter[str]:
        return Counter(str(r.get("modality") or "unknown") for r in self.rows(which))


def _read_rows(out_dir: Path, prefix: str) -> list[dict[str, Any]]:
    return [row for shard in sorted(out_dir.glob(f"{prefix}-*.jsonl"))
            for row in read_jsonl(shard)]


def load_run(out_dir: Path) -> RunData:
    """Read a run folder's manifest and QA shards (raises ValueError if it is not a run)."""
    path = out_dir / MANIFEST
    if not path.is_file():
        raise RunFolderError(f"{out_dir} holds no vqa-gen run (no manifest.json)")
    try:
        manifest = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as err:
        raise RunFolderError(f"{path}: not valid JSON ({err})") from None
    return RunData(out_dir, manifest, _read_rows(out_dir, "data"),
                   _read_rows(out_dir, "rejected"))


@dataclass(slots=True)
class RecordChange:
    record_id: str
    newly_kept: list[dict[str, Any]] = field(default_factory=list)  # rejected/absent in A
    no_longer_kept: list[dict[str, Any]] = field(default_factory=list)  # rejected/absent in B
    only_a: int = 0
    only_b: int = 0

    def to_dict(self) -> dict[str, Any]:
        def brief(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [{"question": r.get("question"), "answer": r.get("answer"),
                     "passed": r.get("grounding", {}).get("passed"),
                     "reasons": [x["code"] for x in r.get("grounding", {}).get("reasons", [])]}
                    for r in rows]

        return {"record_id": self.record_id, "newly_kept": brief(self.newly_kept),
                "no_longer_kept": brief(self.no_longer_kept), "only_a": self.only_a,
                "only_b": self.only_b}


@dataclass(slots=True)
class RunDiff:
    a: RunData
    b: RunData
    changes: list[RecordChange]
    records_compared: int

    def summary(self) -> dict[str, Any]:
        ra, rb = self.a.reason_counts(), self.b.reason_counts()
        ta, tb = self.a.type_counts("all"), self.b.type_counts("all")
        ka, kb = self.a.type_counts("kept"), self.b.type_counts("kept")
        return {
            "a": str(self.a.path), "b": str(self.b.path),
            "template": [self.a.manifest.get("template", {}).get(k) for k in
                         ("name", "version", "content_hash")],
            "template_b": [self.b.manifest.get("template", {}).get(k) for k in
                           ("name", "version", "content_hash")],
            "qa": [len(self.a.kept) + len(self.a.rejected),
                   len(self.b.kept) + len(self.b.rejected)],
            "kept": [len(self.a.kept), len(self.b.kept)],
            "kept_rate": [self.a.kept_rate, self.b.kept_rate],
            "reasons": {code: [ra.get(code, 0), rb.get(code, 0)]
                        for code in sorted(set(ra) | set(rb),
                                           key=lambda c: -(ra.get(c, 0) + rb.get(c, 0)))},
            "types": {t: {"a": ta.get(t, 0), "b": tb.get(t, 0), "kept_a": ka.get(t, 0),
                          "kept_b": kb.get(t, 0)} for t in sorted(set(ta) | set(tb))},
            "records_compared": self.records_compared,
            "records_changed": len(self.changes),
            "changes": [c.to_dict() for c in self.changes],
        }


def diff_runs(dir_a: Path, dir_b: Path) -> RunDiff:
    """Compare run B against run A (see the module docstring)."""
    a, b = load_run(dir_a), load_run(dir_b)

    def by_record(run: RunData) -> dict[str, dict[tuple[str, str], dict[str, Any]]]:
        out: dict[str, dict[tuple[str, str], dict[str, Any]]] = {}
        for row in run.kept + run.rejected:
            out.setdefault(str(row.get("record_id")), {})[qa_key(row)] = row
        return out

    qa_a, qa_b = by_record(a), by_record(b)
    order = list(dict.fromkeys([*qa_a, *qa_b]))
    changes: list[RecordChange] = []
    for rid in order:
        ra, rb = qa_a.get(rid, {}), qa_b.get(rid, {})
        kept_a = {k for k, r in ra.items() if r.get("grounding", {}).get("passed")}
        kept_b = {k for k, r in rb.items() if r.get("grounding", {}).get("passed")}
        rej_a, rej_b = set(ra) - kept_a, set(rb) - kept_b
        if kept_a == kept_b and rej_a == rej_b:
            continue
        change = RecordChange(rid)
        change.newly_kept = [rb[k] for k in rb if k in kept_b and k not in kept_a]
        change.no_longer_kept = [ra[k] if k not in rb else rb[k] for k in ra
                                 if k in kept_a and k not in kept_b]
        change.only_a = len(set(ra) - set(rb))
        change.only_b = len(set(rb) - set(ra))
        changes.append(change)
    return RunDiff(a, b, changes, len(order))
