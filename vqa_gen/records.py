"""Caption records and the streaming readers that produce them.

Reading never raises for a bad record: every input line becomes either a `CaptionRecord` or an
`InvalidRecord` (file, line, one-line reason), so a run over 100k captions goes on past a broken
line and the manifest can account for every line.
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
from array import array
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

Modality = Literal["clinical", "dermoscopic", "pathology", "other"]
"""The modalities the shipped templates know; a record's modality is free text (a radiology or
endoscopy corpus is just as welcome): these and their aliases are normalised, any other value
is kept as given, and few-shot examples fall back to `any`."""

_MODALITY_ALIASES: dict[str, str] = {
    "clinical": "clinical", "clinic": "clinical", "photo": "clinical", "photograph": "clinical",
    "clinical photo": "clinical", "clinical photograph": "clinical", "macroscopic": "clinical",
    "dermoscopic": "dermoscopic", "dermoscopy": "dermoscopic", "dermatoscopy": "dermoscopic",
    "dermatoscopic": "dermoscopic", "dermoscope": "dermoscopic",
    "pathology": "pathology", "pathological": "pathology", "histopathology": "pathology",
    "histology": "pathology", "histopathological": "pathology", "microscopy": "pathology",
    "other": "other",
}

DEFAULT_MAX_CAPTION_CHARS = 20_000


class CaptionRecord(BaseModel):
    """One image and its caption: the unit of work of a run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, max_length=512)
    image: str | None = None
    caption: str = Field(min_length=1)
    modality: str | None = Field(default=None, max_length=100)
    meta: dict[str, Any] = Field(default_factory=dict)

    @field_validator("caption")
    @classmethod
    def _caption_not_blank(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("caption is empty")
        return value

    @field_validator("modality", mode="before")
    @classmethod
    def _normalise_modality(cls, value: Any) -> Any:
        if value is None or value == "":
            return None
        if isinstance(value, str):
            key = value.strip().lower()
            if key in _MODALITY_ALIASES:
                return _MODALITY_ALIASES[key]
            return value.strip() or None
        return value


@dataclass(frozen=True, slots=True)
class InvalidRecord:
    """An input line that could not become a record, with where and why."""

    source: str
    line: int
    reason: str
    record_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "line": self.line, "record_id": self.record_id,
                "reason": self.reason}

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.reason}"


@dataclass(frozen=True, slots=True)
class InputItem:
    """One position in the input: its line number and what it became."""

    line: int
    record: CaptionRecord | None = None
    invalid: InvalidRecord | None = None


_FIELD_NAMES = ("id", "image", "caption", "modality", "meta")


@dataclass(slots=True)
class FieldMap:
    """Which input column holds which record field (for CSV and JSONL alike)."""

    id: str = "id"
    image: str = "image"
    caption: str = "caption"
    modality: str = "modality"
    meta: str = "meta"
    extra_as_meta: bool = True
    _reverse: dict[str, str] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._reverse = {self.id: "id", self.image: "image", self.caption: "caption",
                         self.modality: "modality", self.meta: "meta"}

    def to_dict(self) -> dict[str, str]:
        """The column names (what a run's state records)."""
        return {k: getattr(self, k) for k in _FIELD_NAMES}

    @classmethod
    def from_dict(cls, columns: dict[str, Any]) -> FieldMap:
        """The inverse of `to_dict` (missing names keep their defaults)."""
        return cls(**{k: columns[k] for k in _FIELD_NAMES if k in columns})

    def apply(self, raw: dict[str, Any]) -> dict[str, Any]:
        """Rename input columns to record fields; unknown columns go into `meta`."""
        out: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for key, value in raw.items():
            target = self._reverse.get(key)
            if target is not None:
                out[target] = value
            elif self.extra_as_meta and key is not None:
                extra[key] = value
        if extra:
            meta = out.get("meta")
            if meta is None or meta == "":
                out["meta"] = extra
            elif isinstance(meta, dict):
                out["meta"] = {**extra, **meta}
        elif out.get("meta") == "":
            out.pop("meta")
        return out


def derive_record_id(image: Any, caption: Any) -> str:
    """A stable id for records that come without one: same image and caption, same id."""
    digest = hashlib.sha256(f"{image}\x1f{caption}".encode()).hexdigest()
    return f"rec-{digest[:16]}"


def _describe_validation_error(err: ValidationError) -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first.get("loc", ())) or "record"
    msg = first.get("msg", "invalid")
    if first.get("type") == "missing":
        return f"field '{loc}': missing"
    if first.get("type") == "extra_forbidden":
        return f"field '{loc}': unexpected field"
    return f"field '{loc}': {msg}"


def build_record(raw: Any, *, fields: FieldMap, max_caption_chars: int) -> CaptionRecord | str:
    """Validate one raw mapping into a record, or return the one-line reason it is invalid."""
    if not isinstance(raw, dict):
        return f"expected a JSON object, got {type(raw).__name__}"
    data = fields.apply(raw)
    caption = data.get("caption")
    if caption is None:
        return f"field '{fields.caption}': missing"
    if not isinstance(caption, str):
        return f"field '{fields.caption}': expected a string, got {type(caption).__name__}"
    if not caption.strip():
        return f"field '{fields.caption}': empty"
    if len(caption) > max_caption_chars:
        return (f"field '{fields.caption}': {len(caption):,} characters, over the limit of "
                f"{max_caption_chars:,}")
    if "\x00" in caption:
        return f"field '{fields.caption}': contains a NUL byte (binary data, not text)"
    rid = data.get("id")
    if rid is None or rid == "":
        data["id"] = derive_record_id(data.get("image"), caption)
    elif isinstance(rid, int) and not isinstance(rid, bool):
        data["id"] = str(rid)
    elif not isinstance(rid, str):
        return f"field '{fields.id}': expected a string or integer, got {type(rid).__name__}"
    image = data.get("image")
    if image == "":
        data["image"] = None
    elif image is not None and not isinstance(image, str):
        return f"field '{fields.image}': expected a string, got {type(image).__name__}"
    try:
        return CaptionRecord.model_validate(data)
    except ValidationError as err:
        reason = _describe_validation_error(err)
        for ours, theirs in (("'id'", fields.id), ("'image'", fields.image),
                             ("'caption'", fields.caption), ("'modality'", fields.modality),
                             ("'meta'", fields.meta)):
            reason = reason.replace(f"field {ours}", f"field '{theirs}'", 1)
        return reason


MAX_LINE_BYTES = 16 * 1024 * 1024
_BIG_LINE = 1 << 20
"""A JSONL line longer than this is invalid without being read into memory whole, so a hostile
file (a 1 GB line, a binary blob without newlines) cannot exhaust memory."""


def _capped_lines(fh: IO[bytes], limit: int) -> Iterator[bytes | None]:
    """Physical lines of a binary file; None for a line over `limit` bytes (skipped in chunks)."""
    while True:
        raw = fh.readline(limit + 1)
        if not raw:
            return
        if len(raw) > limit and not raw.endswith(b"\n"):
            while True:
                chunk = fh.readline(1 << 20)
                if not chunk or chunk.endswith(b"\n"):
                    break
            yield None
            continue
        yield raw


def _iter_jsonl_raw(path: Path) -> Iterator[tuple[int, Any, str | None]]:
    """Yield (line number, parsed object or None, error) for each non-blank line."""
    with path.open("rb") as fh:
        for lineno, raw_line in enumerate(_capped_lines(fh, MAX_LINE_BYTES), start=1):
            if raw_line is None:
                yield lineno, None, f"line longer than {MAX_LINE_BYTES:,} bytes"
                continue
            stripped = raw_line.strip()
            if lineno == 1 and stripped.startswith(b"\xef\xbb\xbf") and stripped[3:].strip():
                stripped = stripped[3:].strip()  # UTF-8 byte order mark
            if not stripped:
                continue
            try:
                text = stripped.decode("utf-8")
            except UnicodeDecodeError as err:
                yield lineno, None, f"not valid UTF-8 (byte {err.start})"
                continue
            try:
                # orjson needs ~12x a line's size in memory, the stdlib parser ~2x: use that for
                # the rare huge line (a 10 MB caption), orjson for speed on all the others
                obj = orjson.loads(stripped) if len(stripped) < _BIG_LINE else json.loads(text)
            except json.JSONDecodeError as err:  # orjson's error is a subclass
                yield lineno, None, f"not valid JSON: {err.msg} at column {err.colno}"
                continue
            yield lineno, obj, None


MAX_CSV_ROW_LINES = 1000
"""A quoted CSV field may hold newlines, but a row running past this many physical lines (or
past MAX_LINE_BYTES) is a stray quote swallowing the file: the row is reported as one invalid
row and reading resumes at the physical line after the row's first line."""


class _RowTooLong(Exception):
    pass


def csv_delimiter(path: Path, delimiter: str | None = None) -> str:
    """The field delimiter: the one given (`\\t` or `tab` for a tab), else tab for `.tsv`."""
    if delimiter:
        if delimiter in ("\\t", "tab", "TAB"):
            return "\t"
        if len(delimiter) != 1:
            raise ValueError(f"a CSV delimiter is one character, got {delimiter!r}")
        return delimiter
    return "\t" if path.suffix.lower() == ".tsv" else ","


def _iter_csv_raw(path: Path, delimiter: str = ",") -> Iterator[tuple[int, Any, str | None]]:
    csv.field_size_limit(max(csv.field_size_limit(), MAX_LINE_BYTES + 1))
    limit = MAX_LINE_BYTES
    with path.open("rb") as fh:
        physical = _capped_lines(fh, limit)
        numbers = itertools.count(1)
        replay: deque[tuple[int, str | None, bool]] = deque()
        row: list[tuple[int, str | None, bool]] = []  # the physical lines of the current row

        def source() -> Iterator[str]:
            size = 0
            while True:
                if replay:
                    item = replay.popleft()
                else:
                    raw = next(physical, b"")
                    if raw == b"":
                        return
                    if raw is None:
                        item = (next(numbers), None, False)
                    else:
                        try:
                            item = (next(numbers), raw.decode("utf-8"), False)
                        except UnicodeDecodeError:
                            item = (next(numbers), raw.decode("utf-8", errors="replace"), True)
                if not row:
                    size = 0
                row.append(item)
                if item[1] is None:
                    raise _RowTooLong(f"line longer than {limit:,} bytes")
                size += len(item[1])
                if len(row) > MAX_CSV_ROW_LINES or size > limit:
                    raise _RowTooLong(
                        f"unreadable CSV row: a quoted field runs past "
                        f"{min(len(row), MAX_CSV_ROW_LINES):,} lines or {limit:,} bytes (a stray "
                        f"quote?); reading resumed at line {row[0][0] + 1}")
                yield item[1]

        reader = csv.reader(source(), delimiter=delimiter)
        header: list[str] | None = None
        while True:
            row.clear()
            try:
                fields = next(reader)
            except StopIteration:
                return
            except (csv.Error, _RowTooLong) as err:
                if not row:
                    return
                line = row[0][0]
                if header is None:
                    yield line, None, f"unreadable CSV header ({err})"
                    return
                reason = str(err) if isinstance(err, _RowTooLong) else (
                    f"unreadable CSV row ({err})")
                yield line, None, reason
                replay.extendleft(reversed(row[1:]))  # resume at the next physical line
                reader = csv.reader(source(), delimiter=delimiter)
                continue
            if not row:
                return
            line = row[0][0]
            if header is None:
                if not fields:
                    continue
                if fields[0].startswith("\ufeff"):
                    fields[0] = fields[0][1:]
                header = [h.strip() for h in fields]
                continue
            if not fields or all(not c.strip() for c in fields):
                continue
            if any(bad for _, _, bad in row):
                yield line, None, "not valid UTF-8"
                continue
            if len(fields) != len(header):
                yield line, None, f"expected {len(header)} columns, got {len(fields)}"
                continue
            yield line, dict(zip(header, fields, strict=False)), None


class _SeenIds:
    """The ids read so far, as 64-bit hashes in one flat open-addressing table: ~16 bytes per id
    where a Python set of digests takes ~100 (a 1 GB input holds millions of records). Two ids
    share a hash with probability ~n²/2^65 (1 in 5 million for 3 million records)."""

    def __init__(self) -> None:
        self._cap = 1 << 16
        self._table = array("Q", [0]) * self._cap
        self._n = 0

    def add(self, record_id: str) -> bool:
        """Remember an id; False if it was seen before."""
        h = int.from_bytes(hashlib.blake2b(record_id.encode(), digest_size=8).digest(), "big")
        h = h or 1  # 0 marks an empty slot
        table, mask = self._table, self._cap - 1
        i = h & mask
        while True:
            v = table[i]
            if v == 0:
                table[i] = h
                self._n += 1
                if self._n * 2 > self._cap:
                    self._grow()
                return True
            if v == h:
                return False
            i = (i + 1) & mask

    def _grow(self) -> None:
        old = self._table
        self._cap *= 2
        self._table = table = array("Q", [0]) * self._cap
        mask = self._cap - 1
        for h in old:
            if h:
                i = h & mask
                while table[i]:
                    i = (i + 1) & mask
                table[i] = h


def read_records(
    path: str | Path,
    *,
    fields: FieldMap | None = None,
    max_caption_chars: int = DEFAULT_MAX_CAPTION_CHARS,
    input_format: Literal["auto", "jsonl", "csv"] = "auto",
    delimiter: str | None = None,
) -> Iterator[InputItem]:
    """Stream records from a JSONL or CSV file, one `InputItem` per data line.

    Memory stays bounded whatever the file size, except for the set of ids seen (needed to send
    a duplicate id to invalid input), which costs ~16 bytes per record.
    """
    path = Path(path)
    fields = fields or FieldMap()
    fmt = input_format
    if fmt == "auto":
        fmt = "csv" if path.suffix.lower() in {".csv", ".tsv"} or delimiter else "jsonl"
    raw_iter = (_iter_csv_raw(path, csv_delimiter(path, delimiter)) if fmt == "csv"
                else _iter_jsonl_raw(path))
    source = str(path)
    seen = _SeenIds()
    for lineno, raw, error in raw_iter:
        if error is not None:
            yield InputItem(lineno, invalid=InvalidRecord(source, lineno, error))
            continue
        result = build_record(raw, fields=fields, max_caption_chars=max_caption_chars)
        if isinstance(result, str):
            rid = raw.get(fields.id) if isinstance(raw, dict) else None
            yield InputItem(lineno, invalid=InvalidRecord(
                source, lineno, result, str(rid) if rid not in (None, "") else None))
            continue
        if not seen.add(result.id):
            yield InputItem(lineno, invalid=InvalidRecord(
                source, lineno, f"field '{fields.id}': duplicate id {result.id!r}", result.id))
            continue
        yield InputItem(lineno, record=result)


def coerce_record(value: CaptionRecord | dict[str, Any], *, index: int = 0) -> CaptionRecord:
    """Accept a record or a plain dict from API users; raise ValueError with the reason."""
    if isinstance(value, CaptionRecord):
        return value
    result = build_record(value, fields=FieldMap(), max_caption_chars=DEFAULT_MAX_CAPTION_CHARS)
    if isinstance(result, str):
        raise ValueError(f"record {index}: {result}")
    return result


def read_csv_header(path: str | Path, delimiter: str | None = None) -> list[str] | None:
    """The column names of a CSV file's header row (its first non-blank line; BOM and spaces
    stripped), None when there is none. For the up-front check that the caption column is
    there."""
    path = Path(path)
    with path.open("rb") as fh:
        for raw in _capped_lines(fh, MAX_LINE_BYTES):
            if raw is None:
                return None
            text = raw.decode("utf-8", errors="replace").lstrip("\ufeff")
            if not text.strip():
                continue
            try:
                header = next(csv.reader([text], delimiter=csv_delimiter(path, delimiter)))
            except (csv.Error, StopIteration):
                return None
            return [h.strip() for h in header]
    return None
