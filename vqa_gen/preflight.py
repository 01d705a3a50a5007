"""Checks made before a run starts the model or calls the endpoint.

A newcomer's mistakes (a CSV whose caption column has another name, an empty file, a typo in
`--strictness`, an output folder on a read-only disk, a template the embedded model cannot
serve) should cost one line that says what to do, not a model start-up and a run whose every
record is invalid or failed. Every check here raises `PreflightError` with that line; the CLI
prints it and exits 2. Nothing here reads more than the head of the input.
"""

from __future__ import annotations

import csv
import io
import json
import re
import tempfile
from itertools import islice
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .records import FieldMap, csv_delimiter, read_csv_header, read_records

HEAD_RECORDS = 20
"""Input items looked at up front: if none of them holds the caption field, the field mapping
is wrong (not a few bad lines)."""
EXACT_COUNT_BYTES = 64 << 20
"""Inputs up to this size are counted for the progress bar's total; bigger ones are estimated
from their first SAMPLE_BYTES."""
SAMPLE_BYTES = 4 << 20

_CAPTION_LIKE = re.compile(r"caption|legend|text|descr|finding|report|title|note", re.I)
_ID_LIKE = re.compile(r"(?:^|_|-)id$|^id(?:_|-)|identifier", re.I)
_IMAGE_LIKE = re.compile(r"image|img|path|file|url|photo", re.I)


class PreflightError(ValueError):
    """Input, flags or output folder unusable: a one-line message naming what and what to do."""


def os_error_message(err: OSError, verb: str, path: Path | str | None = None) -> str:
    """`cannot write to /out: Read-only file system`: the action, the path, the reason."""
    where = path if path is not None else (getattr(err, "filename", None) or "")
    reason = err.strerror or str(err) or type(err).__name__
    return f"cannot {verb} {where}: {reason}".replace("  ", " ")


def _is_csv(path: Path, delimiter: str | None = None) -> bool:
    return path.suffix.lower() in {".csv", ".tsv"} or bool(delimiter)


def input_columns(path: Path, delimiter: str | None = None) -> list[str]:
    """The column names of a CSV header, or the keys of the first JSON object of a JSONL."""
    if _is_csv(path, delimiter):
        return read_csv_header(path, delimiter) or []
    with path.open("rb") as fh:
        for raw in islice(fh, 1000):
            if raw.strip():
                try:
                    obj = json.loads(raw.decode("utf-8-sig"))
                except (UnicodeDecodeError, json.JSONDecodeError):
                    return []
                return [str(k) for k in obj] if isinstance(obj, dict) else []
    return []


def _mapping_hint(columns: list[str], fields: FieldMap) -> str:
    """The flags that would map these columns: `--caption-field legend` and, when the id and
    image columns have other names too, their flags."""
    taken = {fields.id, fields.image, fields.modality, fields.meta}
    captions = [c for c in columns if _CAPTION_LIKE.search(c) and c not in taken]
    if len(captions) == 1:
        flag = f"pass --caption-field {captions[0]}"
    else:
        flag = "pass --caption-field NAME"
        if captions:
            flag += f" (one of {', '.join(captions)})"
    extra = []
    if fields.id not in columns:
        ids = [c for c in columns if _ID_LIKE.search(c)]
        if len(ids) == 1:
            extra.append(f"--id-field {ids[0]}")
    if fields.image not in columns:
        images = [c for c in columns if _IMAGE_LIKE.search(c) and c not in captions]
        if len(images) == 1:
            extra.append(f"--image-field {images[0]}")
    return flag + (f" (and {' '.join(extra)})" if extra else "")


def check_input(path: Path, fields: FieldMap | None = None, *,
                delimiter: str | None = None) -> None:
    """The input exists, can be read, holds at least one data line, and its first lines hold
    the caption field (else: the columns found and the flag to use)."""
    fields = fields or FieldMap()
    try:
        csv_delimiter(path, delimiter)
    except ValueError as err:
        raise PreflightError(f"--delimiter: {err}") from None
    if not path.exists():
        raise PreflightError(f"input file not found: {path}")
    if path.is_dir():
        raise PreflightError(f"{path} is a folder; pass a .jsonl or .csv file")
    try:
        with path.open("rb") as fh:
            fh.read(1)
    except OSError as err:
        raise PreflightError(os_error_message(err, "read", path)) from None
    try:
        head = list(islice(read_records(path, fields=fields, delimiter=delimiter),
                           HEAD_RECORDS))
    except OSError as err:
        raise PreflightError(os_error_message(err, "read", path)) from None
    if not head:
        what = ("a header but no rows" if _is_csv(path, delimiter) and path.stat().st_size
                else "no records")
        raise PreflightError(f"{path} has {what}: nothing to do")
    if any(item.record is not None for item in head):
        return
    missing = f"field '{fields.caption}': missing"
    n_missing = sum(item.invalid is not None and item.invalid.reason == missing for item in head)
    if n_missing * 2 > len(head):  # most of the head lacks it: the mapping, not a few lines
        columns = input_columns(path, delimiter)
        kind = "column" if _is_csv(path, delimiter) else "field"
        found = ", ".join(columns) if columns else "none"
        raise PreflightError(
            f"{path}: line 1: no '{fields.caption}' {kind} (found: {found}); "
            f"{_mapping_hint(columns, fields)}")


def estimate_records(path: Path, *, exact_bytes: int = EXACT_COUNT_BYTES,
                     sample_bytes: int = SAMPLE_BYTES, delimiter: str | None = None
                     ) -> tuple[int, bool]:
    """(records, exact) for the progress bar's total: non-blank lines of a JSONL, rows of a CSV.
    Counted when the file is small; else extrapolated by size from its first SAMPLE_BYTES
    (lines per byte for a JSONL, rows per byte for a CSV, whose rows may span lines)."""
    size = path.stat().st_size
    if _is_csv(path, delimiter):
        if size <= sample_bytes:
            return sum(1 for _ in read_records(path, delimiter=delimiter)), True
        with path.open("rb") as fh:
            head = fh.read(sample_bytes)
        head = head[: head.rfind(b"\n") + 1]
        text = head.decode("utf-8", errors="replace")
        try:
            rows = sum(1 for row in csv.reader(io.StringIO(text),
                                               delimiter=csv_delimiter(path, delimiter))
                       if any(c.strip() for c in row)) - 1
        except csv.Error:
            rows = text.count("\n") - 1
        return max(1, round(rows * size / max(1, len(head)))), False
    exact = size <= exact_bytes
    limit = size if exact else sample_bytes
    lines = read = 0
    carry = b""  # the unfinished last line of the previous chunk
    with path.open("rb") as fh:
        while read < limit:
            chunk = fh.read(min(1 << 20, limit - read))
            if not chunk:
                break
            read += len(chunk)
            *whole, carry = (carry + chunk).split(b"\n")
            lines += sum(1 for line in whole if line.strip())
    lines += bool(carry.strip())
    if exact:
        return lines, True
    return max(1, round(lines * size / max(1, read))), False


def check_out_dir(out: Path) -> None:
    """The output folder can be created and written to (probed with a temporary file)."""
    if out.exists() and not out.is_dir():
        raise PreflightError(f"cannot use {out} as the output folder: it is a file")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise PreflightError(os_error_message(err, "create the output folder", out)) from None
    try:
        with tempfile.NamedTemporaryFile(dir=out, prefix=".vqa-gen-probe-"):
            pass
    except OSError as err:
        raise PreflightError(os_error_message(err, "write to", out)) from None


def describe_filter_error(err: ValidationError, source: str) -> str:
    """`--strictness: 'extreme' is not allowed; use one of lenient, default, strict` style:
    the field, what is wrong, the value given and, where known, the allowed values or keys."""
    from .grounding import CheckSettings, FilterConfig

    e = err.errors()[0]
    loc = [str(p) for p in e.get("loc", ())]
    field = ".".join(loc) or "settings"
    msg = str(e.get("msg", "invalid")).removeprefix("Value error, ")
    if e.get("type") == "extra_forbidden":
        model: Any = CheckSettings if len(loc) >= 3 and loc[0] == "checks" else FilterConfig
        msg = f"unknown setting (known: {', '.join(model.model_fields)})"
    elif "input" in e and e.get("type") != "value_error":
        msg += f" (got {e['input']!r})"
    return f"{source}: field '{field}': {msg}"


def load_filter_config(strictness: str | None, filter_config: Path | None) -> Any:
    """The grounding filter settings from `--strictness` and `--filter-config FILE`, or a
    PreflightError naming the flag or file, the field and the allowed values."""
    from .grounding import FilterConfig

    data: dict[str, Any] = {}
    if filter_config is not None:
        try:
            text = filter_config.read_text(encoding="utf-8")
        except OSError as err:
            raise PreflightError(os_error_message(err, "read the filter settings",
                                                  filter_config)) from None
        except UnicodeDecodeError:
            raise PreflightError(f"{filter_config}: not UTF-8 text (expected JSON filter "
                                 "settings)") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise PreflightError(f"cannot read filter settings from {filter_config}: line "
                                 f"{err.lineno}: not valid JSON ({err.msg})") from None
        if not isinstance(data, dict):
            raise PreflightError(f"cannot read filter settings from {filter_config}: expected "
                                 f"a JSON object, got {type(data).__name__}")
    if strictness:
        from .grounding.config import PRESETS

        if strictness not in PRESETS:
            raise PreflightError(f"--strictness {strictness!r}: not a filter settings preset; "
                                 f"use one of {', '.join(PRESETS)}")
        data["strictness"] = strictness
    try:
        return FilterConfig.model_validate(data)
    except ValidationError as err:
        raise PreflightError(describe_filter_error(err, str(filter_config or "--strictness"))
                             ) from None


def check_model_fit(template: Any, endpoint: Any) -> None:
    """Refuse a template marked `needs_capable_model` on the embedded default model (it would
    fail every record after minutes of generation)."""
    if template.needs_capable_model and endpoint.use_embedded() and not endpoint.model_path:
        raise PreflightError(
            f"template {template.name!r} needs a capable model: the embedded default model "
            f"(SmolLM2-135M) cannot produce its {template.output!r} answers, so every record "
            "would fail; pass --base-url and --model for an endpoint, or --model-path with a "
            "bigger GGUF")
