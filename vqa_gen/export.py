"""From a run folder to a training set: LLaVA JSON, OpenAI chat JSONL, a Hugging Face datasets
folder (parquet + dataset card) or a PMC-VQA-style CSV, with image-level splits.

The run's QA lines are streamed shard by shard (memory does not grow with the run), filtered
(`types`, `min_score`, `template`), assigned to a split by a hash of their image and the seed (so
an image never lands in two splits and the same seed gives the same split), mapped by a pure
function per format and written to `.partial` files that are renamed only when the whole export
succeeded. A damaged run folder (missing or unlisted shard, torn line, a line without a field,
a manifest whose counts the shards do not match) stops the export with one line naming the file,
the line and the field; nothing is left under the final name.

Accounting: every QA line read ends in exactly one place, so
``read == sum(exported per split) + filtered + missing_image``.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import mimetypes
import os
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

import orjson

from .formats import LETTERS
from .output import MANIFEST, PARTIAL, PROGRESS_FILE, STATE_DIR
from .records import _iter_jsonl_raw

FORMATS = ("llava", "openai", "hf", "csv")
GROUPS = ("image", "qa")
SUFFIX = {"llava": ".json", "openai": ".jsonl", "csv": ".csv"}
CSV_COLUMNS = ("Figure_path", "Question", "Answer", "Choice A", "Choice B", "Choice C",
               "Choice D", "Answer_label", "id", "type", "modality", "score")
"""PMC-VQA's columns first (empty choices and label for open QA), then ours."""
VERDICT_COLUMNS = ("passed", "reasons")
"""Added with `include_rejected`: the grounding verdict (reasons as their codes)."""
REQUIRED_FIELDS = ("id", "record_id", "question", "answer")
HF_ROWS_PER_SHARD = 500_000
HF_SHARD_BYTES = 512 << 20
"""A parquet shard is closed past this many (Arrow) bytes or HF_ROWS_PER_SHARD rows."""
HF_BATCH_ROWS = 5_000
HF_BATCH_BYTES = 16 << 20
"""Rows buffered before a parquet row group is written: bounded by count and image bytes."""
_SPLIT_NAME = re.compile(r"^[A-Za-z0-9_]+$")


class ExportError(ValueError):
    """The export cannot be made (bad run folder, bad options, output in the way). One line,
    meant for the user."""


class MissingImage(Exception):
    """The QA's image cannot be resolved (no image field, file absent): the QA is skipped and
    counted, the export goes on."""


# -- options and result ------------------------------------------------------------------------
@dataclass(slots=True)
class ExportOptions:
    """Everything `vqa-gen export` takes (see the CLI help for each)."""

    format: str
    out: Path
    group: str = "image"
    split: tuple[tuple[str, float], ...] = (("train", 1.0),)
    seed: int = 0
    types: frozenset[str] | None = None
    min_score: float | None = None
    template: str | None = None
    include_rejected: bool = False
    image_root: Path | None = None
    image_base_url: str | None = None
    embed_images: bool = False
    allow_partial: bool = False
    overwrite: bool = False
    hf_rows_per_shard: int = HF_ROWS_PER_SHARD

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ExportError(f"unknown format {self.format!r}; choose one of "
                              f"{', '.join(FORMATS)}")
        if self.group not in GROUPS:
            raise ExportError(f"unknown --group {self.group!r}; choose image or qa")
        if self.include_rejected and self.format in ("llava", "openai"):
            raise ExportError("--include-rejected is for analysis exports (csv, hf): training "
                              "formats hold kept QA only")
        if self.embed_images and self.image_root is None:
            raise ExportError("--embed-images needs --image-root (where the image files are)")
        if self.embed_images and self.image_base_url:
            raise ExportError("--embed-images and --image-base-url exclude each other")
        if self.format == "openai" and not (self.embed_images or self.image_base_url):
            raise ExportError("the openai format needs the image as a URL: pass "
                              "--image-base-url URL or --embed-images --image-root DIR")
        names = [n for n, _ in self.split]
        if (not names or len(set(names)) != len(names) or any(f <= 0 for _, f in self.split)
                or abs(sum(f for _, f in self.split) - 1.0) > 1e-6):
            raise ExportError(f"splits {self.split!r}: distinct names with positive fractions "
                              "that add up to 1 (see parse_split)")
        if self.hf_rows_per_shard < 1:
            raise ExportError("rows per parquet shard must be at least 1")

    @property
    def multi_split(self) -> bool:
        return len(self.split) > 1 or self.split[0][0] != "train"


@dataclass(slots=True)
class SplitCounts:
    qa: int = 0
    """QA lines exported into this split."""
    items: int = 0
    """Lines/rows/conversations written (a grouped conversation holds several QA)."""
    images: int = 0
    """Distinct images."""


@dataclass(slots=True)
class ExportSummary:
    format: str
    outputs: list[Path]
    splits: dict[str, SplitCounts]
    read: int = 0
    read_rejected: int = 0
    filtered: int = 0
    missing_image: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def exported(self) -> int:
        return sum(s.qa for s in self.splits.values())

    def check(self) -> None:
        """Every QA line read is exported, filtered out or skipped for its image."""
        if self.read != self.exported + self.filtered + self.missing_image:
            raise AssertionError(f"export accounting does not add up: {self}")

    def to_dict(self) -> dict[str, Any]:
        return {"format": self.format, "outputs": [str(p) for p in self.outputs],
                "read": self.read, "read_rejected": self.read_rejected,
                "exported": self.exported, "filtered": self.filtered,
                "missing_image": self.missing_image,
                "splits": {k: {"qa": v.qa, "items": v.items, "images": v.images}
                           for k, v in self.splits.items()}}


# -- splits -------------------------------------------------------------------------------------
def parse_split(spec: str) -> tuple[tuple[str, float], ...]:
    """`train=0.8,val=0.1,test=0.1` → ((train, 0.8), ...); fractions must sum to 1."""
    parts: list[tuple[str, float]] = []
    for chunk in spec.split(","):
        name, sep, value = chunk.strip().partition("=")
        name = name.strip()
        try:
            fraction = float(value) if sep else float("nan")
        except ValueError:
            fraction = float("nan")
        if not _SPLIT_NAME.match(name) or not 0 < fraction <= 1:
            raise ExportError(f"--split {spec!r}: expected NAME=FRACTION,... with names of "
                              "letters, digits or _ and fractions in (0, 1], e.g. "
                              "train=0.8,val=0.1,test=0.1")
        parts.append((name, fraction))
    if len({n for n, _ in parts}) != len(parts):
        raise ExportError(f"--split {spec!r}: a split name appears twice")
    if abs(sum(f for _, f in parts) - 1.0) > 1e-6:
        raise ExportError(f"--split {spec!r}: the fractions add up to "
                          f"{sum(f for _, f in parts):g}, not 1")
    return tuple(parts)


def image_key(row: dict[str, Any]) -> str:
    """What a split is assigned by: the image, or the record for QA without one."""
    return str(row.get("image") or f"record:{row.get('record_id')}")


def image_hash(key: str, seed: int) -> int:
    """A 64-bit hash of (seed, image): the split draw, and the image's identity when counting."""
    return int.from_bytes(hashlib.blake2b(f"{seed}\x1f{key}".encode(), digest_size=8).digest(),
                          "big")


def assign_split(key: str, seed: int, splits: tuple[tuple[str, float], ...],
                 h: int | None = None) -> str:
    """The split of an image: a uniform draw from a hash of (seed, image), so the same image
    always goes to the same split and the proportions hold on many images."""
    u = (image_hash(key, seed) if h is None else h) / 2**64
    acc = 0.0
    for name, fraction in splits:
        acc += fraction
        if u < acc:
            return name
    return splits[-1][0]


def keep_row(row: dict[str, Any], opts: ExportOptions) -> bool:
    """The filters on the way out: QA types, minimum grounding score, template."""
    if opts.types is not None and str(row.get("type")) not in opts.types:
        return False
    if opts.min_score is not None and _score(row) < opts.min_score:
        return False
    return opts.template is None or row.get("template") == opts.template


def _score(row: dict[str, Any]) -> float:
    return float((row.get("grounding") or {}).get("score") or 0.0)


# -- reading a run folder ----------------------------------------------------------------------
@dataclass(slots=True)
class RunFolder:
    """A run folder checked for export: its manifest and the shards to stream, in order.
    `limits` caps the lines read per prefix (a partial run: only committed records)."""

    path: Path
    manifest: dict[str, Any]
    shards: dict[str, list[Path]]
    limits: dict[str, int | None]
    complete: bool


def _shard_index(name: str, prefix: str) -> int:
    return int(name[len(prefix) + 1:].split(".")[0])


def open_run(run_dir: Path, allow_partial: bool = False) -> RunFolder:
    """Check `run_dir` is a run folder fit for export; raise ExportError (one line) if not."""
    mpath = run_dir / MANIFEST
    if not run_dir.is_dir():
        raise ExportError(f"{run_dir}: no such folder")
    if not mpath.is_file():
        raise ExportError(f"{run_dir} holds no vqa-gen run (no {MANIFEST})")
    try:
        manifest = orjson.loads(mpath.read_bytes())
    except (OSError, orjson.JSONDecodeError) as err:
        raise ExportError(f"{mpath}: not valid JSON ({err})") from None
    if not isinstance(manifest, dict):
        raise ExportError(f"{mpath}: not a vqa-gen manifest (not a JSON object)")
    counts, outputs = manifest.get("counts"), manifest.get("outputs")
    if not isinstance(counts, dict) or not isinstance(outputs, dict) or "status" not in manifest:
        raise ExportError(f"{mpath}: not a vqa-gen manifest (field 'counts', 'outputs' or "
                          "'status' missing)")
    status = manifest["status"]
    if status != "complete" and not allow_partial:
        raise ExportError(f"the run in {run_dir} is {status!r}, not complete: resume it with "
                          "the same `vqa-gen run` command, or pass --allow-partial to export "
                          "the records committed so far")
    shards: dict[str, list[Path]] = {}
    limits: dict[str, int | None] = {}
    if status == "complete":
        for prefix, count_key in (("data", "qa_kept"), ("rejected", "qa_rejected")):
            listed = outputs.get(prefix)
            if not isinstance(listed, list) or not all(isinstance(n, str) for n in listed):
                raise ExportError(f"{mpath}: field 'outputs.{prefix}' is not a list of shard "
                                  "names")
            for name in listed:
                if not (run_dir / name).is_file():
                    raise ExportError(f"{run_dir / name}: shard missing (listed in "
                                      f"{MANIFEST}); the run folder is damaged")
            present = {p.name for p in _shard_files(run_dir, prefix, partial=False)}
            extra = sorted(present - set(listed))
            if extra:
                raise ExportError(f"{run_dir / extra[0]}: shard not listed in {MANIFEST}; the "
                                  "folder was changed after the run")
            if not isinstance(counts.get(count_key), int):
                raise ExportError(f"{mpath}: field 'counts.{count_key}' missing")
            shards[prefix] = [run_dir / n for n in listed]
            limits[prefix] = None
    else:
        committed = _committed_qa(run_dir)
        for prefix in ("data", "rejected"):
            shards[prefix] = sorted(_shard_files(run_dir, prefix, partial=True),
                                    key=_by_index(prefix))
            limits[prefix] = committed[prefix]
    return RunFolder(run_dir, manifest, shards, limits, status == "complete")


def _shard_files(run_dir: Path, prefix: str, partial: bool) -> list[Path]:
    """The run's shards of one kind (`data-00000.jsonl`, and `.partial` ones if asked); other
    files that merely start with the prefix are not shards."""
    pattern = re.compile(rf"^{prefix}-\d+\.jsonl" + (rf"(?:{re.escape(PARTIAL)})?$" if partial
                                                        else "$"))
    return [p for p in run_dir.iterdir() if pattern.match(p.name) and p.is_file()]


def _by_index(prefix: str) -> Callable[[Path], int]:
    return lambda p: _shard_index(p.name, prefix)


def _committed_qa(run_dir: Path) -> dict[str, int]:
    """QA lines of the records committed so far, from the progress log (a torn last line is
    dropped). Records are committed in order, so these are the first lines of the shards."""
    path = run_dir / STATE_DIR / PROGRESS_FILE
    kept = rejected = 0
    if path.is_file():
        for _, entry, error in _iter_jsonl_raw(path):
            if error is not None or not isinstance(entry, dict):
                break
            k, r = entry.get("kept", 0), entry.get("rejected", 0)
            if not isinstance(k, int) or not isinstance(r, int):
                break
            kept += k
            rejected += r
    return {"data": kept, "rejected": rejected}


def iter_qa(run: RunFolder, prefix: str) -> Iterator[dict[str, Any]]:
    """The QA lines of one kind ("data" or "rejected"), streamed and checked field by field;
    the count is checked against the manifest at the end."""
    limit = run.limits[prefix]
    n = 0
    for shard in run.shards[prefix]:
        for lineno, row, error in _iter_jsonl_raw(shard):
            if limit is not None and n >= limit:
                return
            if error is not None:
                raise ExportError(f"{shard}:{lineno}: {error} (truncated or damaged line)")
            if not isinstance(row, dict):
                raise ExportError(f"{shard}:{lineno}: not a JSON object")
            bad = _bad_field(row)
            if bad is not None:
                raise ExportError(f"{shard}:{lineno}: field {bad}")
            n += 1
            yield row
    expected = (run.manifest["counts"]["qa_kept" if prefix == "data" else "qa_rejected"]
                if run.complete else limit)
    if n != expected:
        where = f"{MANIFEST} counts" if run.complete else "the progress log commits"
        raise ExportError(f"{run.path}: the {prefix} shards hold {n} QA lines but {where} "
                          f"{expected}; the run folder is damaged (shard cut short?)")


def _bad_field(row: dict[str, Any]) -> str | None:
    """What is wrong with a QA line's fields, for the error message (None: fine)."""
    for name in REQUIRED_FIELDS:
        if not isinstance(row.get(name), str):
            return f"'{name}' missing or not a string"
    g = row.get("grounding")
    if not isinstance(g, dict) or not isinstance(g.get("score"), int | float):
        return "'grounding.score' missing or not a number"
    options = row.get("options")
    if options is not None:
        if not (isinstance(options, list) and 0 < len(options) <= len(LETTERS)
                and all(isinstance(o, str) for o in options)):
            return f"'options' is not a list of 1 to {len(LETTERS)} strings"
        if row.get("answer_letter") not in LETTERS[:len(options)]:
            return "'answer_letter' missing or not one of the options' letters"
    conv = row.get("conversation")
    if conv is not None and not (isinstance(conv, list) and all(
            isinstance(t, dict) and isinstance(t.get("question"), str)
            and isinstance(t.get("answer"), str) for t in conv)):
        return "'conversation' is not a list of {question, answer} turns"
    return None


# -- mapping one QA line (pure) ----------------------------------------------------------------
def qa_turns(row: dict[str, Any]) -> list[tuple[str, str]]:
    """(question, answer) turns of one QA line as a trainee sees them: a multiple-choice question
    with its lettered options and the answer as `B. text`; a conversation, every turn."""
    conv = row.get("conversation")
    if isinstance(conv, list) and conv:
        return [(str(t.get("question", "")), str(t.get("answer", ""))) for t in conv]
    options = row.get("options")
    if isinstance(options, list) and options:
        letters = LETTERS[:len(options)]
        question = row["question"] + "\n" + "\n".join(
            f"{letter}. {opt}" for letter, opt in zip(letters, options, strict=False))
        return [(question, f"{row['answer_letter']}. {row['answer']}")]
    return [(row["question"], row["answer"])]


def llava_item(rows: list[dict[str, Any]], item_id: str) -> dict[str, Any]:
    """One LLaVA conversation for the QA of one image (or one QA); `<image>` only in the first
    human turn, and only when there is an image."""
    image = rows[0].get("image")
    conversations: list[dict[str, str]] = []
    for row in rows:
        for question, answer in qa_turns(row):
            if image and not conversations:
                question = "<image>\n" + question
            conversations += [{"from": "human", "value": question},
                              {"from": "gpt", "value": answer}]
    item: dict[str, Any] = {"id": item_id}
    if image:
        item["image"] = image
    item["conversations"] = conversations
    return item


def openai_item(rows: list[dict[str, Any]], image_url: str) -> dict[str, Any]:
    """One chat fine-tuning example: the image in the first user message, then the turns."""
    messages: list[dict[str, Any]] = []
    for row in rows:
        for question, answer in qa_turns(row):
            if not messages:
                content: Any = [{"type": "image_url", "image_url": {"url": image_url}},
                                {"type": "text", "text": question}]
            else:
                content = question
            messages += [{"role": "user", "content": content},
                         {"role": "assistant", "content": answer}]
    return {"messages": messages}


def _list(row: dict[str, Any], key: str) -> list[Any]:
    value = row.get(key)
    return value if isinstance(value, list) else []


def csv_rows(row: dict[str, Any], verdict: bool) -> list[dict[str, Any]]:
    """PMC-VQA-style rows of one QA line: one row per conversation turn (ids `ID#k`)."""
    options = _list(row, "options")
    base = {"Figure_path": row.get("image") or "", "type": row.get("type") or "",
            "modality": row.get("modality") or "", "score": _score(row)}
    for i in range(4):
        base[f"Choice {LETTERS[i]}"] = options[i] if i < len(options) else ""
    base["Answer_label"] = (row.get("answer_letter") or "") if options else ""
    if verdict:
        g = row.get("grounding") or {}
        base["passed"] = bool(g.get("passed"))
        base["reasons"] = ";".join(str(r.get("code")) for r in g.get("reasons") or [])
    conv = row.get("conversation")
    if isinstance(conv, list) and conv:
        return [base | {"id": f"{row['id']}#{k}", "Question": t.get("question", ""),
                        "Answer": t.get("answer", "")} for k, t in enumerate(conv, start=1)]
    return [base | {"id": row["id"], "Question": row["question"], "Answer": row["answer"]}]


def hf_row(row: dict[str, Any], image: Any, verdict: bool) -> dict[str, Any]:
    """One dataset row per QA line (a conversation keeps its turns in `conversation`)."""
    options, conv = _list(row, "options"), _list(row, "conversation")
    out = {"id": row["id"], "record_id": row["record_id"], "image": image,
           "modality": row.get("modality"), "question": row["question"],
           "answer": row["answer"], "type": row.get("type"), "template": row.get("template"),
           "options": [str(o) for o in options],
           "answer_index": row.get("answer_index") if options else None,
           "answer_letter": row.get("answer_letter") if options else None,
           "conversation": [{"question": str(t.get("question", "")),
                             "answer": str(t.get("answer", ""))} for t in conv],
           "score": _score(row)}
    if verdict:
        g = row.get("grounding") or {}
        out["passed"] = bool(g.get("passed"))
        out["reasons"] = [str(r.get("code")) for r in g.get("reasons") or []]
    return out


# -- images -------------------------------------------------------------------------------------
@dataclass(slots=True)
class Images:
    """Where a QA's image comes from: a path under `root`, a URL under `base_url`, or the file's
    bytes as a data URL."""

    root: Path | None = None
    base_url: str | None = None
    embed: bool = False

    def path(self, row: dict[str, Any]) -> Path:
        image = row.get("image")
        if not image:
            raise MissingImage(f"QA {row['id']}: field 'image' is empty")
        assert self.root is not None
        path = self.root / str(image)
        if not path.is_file():
            raise MissingImage(f"QA {row['id']}: image file {path} not found")
        return path

    def read(self, row: dict[str, Any]) -> tuple[bytes, str]:
        path = self.path(row)
        try:
            return path.read_bytes(), str(row["image"])
        except OSError as err:
            raise MissingImage(f"QA {row['id']}: image file {path}: {err.strerror}") from None

    def url(self, row: dict[str, Any]) -> str:
        image = row.get("image")
        if not image:
            raise MissingImage(f"QA {row['id']}: field 'image' is empty")
        if self.embed:
            data, _ = self.read(row)
            mime = mimetypes.guess_type(str(image))[0] or "application/octet-stream"
            return f"data:{mime};base64,{base64.b64encode(data).decode()}"
        if re.match(r"^[a-z][a-z0-9+.-]*://", str(image), re.I):
            return str(image)
        assert self.base_url is not None
        return self.base_url.rstrip("/") + "/" + quote(str(image).lstrip("/"))


# -- writers: one per split, each to `.partial` files --------------------------------------------
def _partial(path: Path) -> Path:
    return path.with_name(path.name + PARTIAL)


class _FileWriter:
    """Base of the one-file formats: a grouped item stream into one `.partial` file."""

    def __init__(self, path: Path, opts: ExportOptions, images: Images) -> None:
        self.path, self.opts, self.images = path, opts, images
        self.fh: IO[bytes] = _partial(path).open("wb")
        self.counts = SplitCounts()

    def add_group(self, rows: list[dict[str, Any]]) -> None:
        raise NotImplementedError

    def finish(self) -> list[Path]:
        self.fh.flush()
        os.fsync(self.fh.fileno())
        self.fh.close()
        return [_partial(self.path)]

    def abort(self) -> None:
        self.fh.close()
        _partial(self.path).unlink(missing_ok=True)


class _LlavaWriter(_FileWriter):
    """A JSON array written item by item (never held whole)."""

    def __init__(self, path: Path, opts: ExportOptions, images: Images) -> None:
        super().__init__(path, opts, images)
        self.fh.write(b"[")

    def add_group(self, rows: list[dict[str, Any]]) -> None:
        chunks = [rows] if self.opts.group == "image" else [[r] for r in rows]
        for chunk in chunks:
            item_id = chunk[0]["record_id"] if self.opts.group == "image" else chunk[0]["id"]
            self.fh.write(b",\n" if self.counts.items else b"\n")
            self.fh.write(orjson.dumps(llava_item(chunk, item_id)))
            self.counts.items += 1
        self.counts.qa += len(rows)

    def finish(self) -> list[Path]:
        self.fh.write(b"\n]\n" if self.counts.items else b"]\n")
        return super().finish()


class _OpenAIWriter(_FileWriter):
    def add_group(self, rows: list[dict[str, Any]]) -> None:
        url = self.images.url(rows[0])  # MissingImage: the caller skips the group
        chunks = [rows] if self.opts.group == "image" else [[r] for r in rows]
        for chunk in chunks:
            self.fh.write(orjson.dumps(openai_item(chunk, url)) + b"\n")
            self.counts.items += 1
        self.counts.qa += len(rows)


class _CsvWriter(_FileWriter):
    def __init__(self, path: Path, opts: ExportOptions, images: Images) -> None:
        super().__init__(path, opts, images)
        self.text = io.TextIOWrapper(self.fh, encoding="utf-8", newline="")
        columns = CSV_COLUMNS + (VERDICT_COLUMNS if opts.include_rejected else ())
        self.writer = csv.DictWriter(self.text, fieldnames=columns)
        self.writer.writeheader()

    def add_group(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            out = csv_rows(row, self.opts.include_rejected)
            self.writer.writerows(out)
            self.counts.items += len(out)
        self.counts.qa += len(rows)

    def finish(self) -> list[Path]:
        self.text.flush()
        return super().finish()

    def abort(self) -> None:
        self.text.close()  # closes the file under it too, without a late flush at exit
        _partial(self.path).unlink(missing_ok=True)


class _ParquetWriter:
    """Parquet shards of one split under `data/`, written in bounded row groups; shards are
    named `SPLIT-00000-of-0000N.parquet` once N is known."""

    def __init__(self, folder: Path, split: str, opts: ExportOptions, images: Images,
                 schema: Any) -> None:
        self.folder, self.split, self.opts, self.images = folder, split, opts, images
        self.schema = schema
        self.counts = SplitCounts()
        self.batch: list[dict[str, Any]] = []
        self.batch_bytes = 0
        self.files: list[Path] = []
        self.writer: Any = None
        self.rows_in_shard = self.shard_bytes = 0
        self.nbytes = 0
        """Arrow bytes written (the card's `num_bytes`)."""

    def add_group(self, rows: list[dict[str, Any]]) -> None:
        verdict = self.opts.include_rejected
        if self.opts.image_root is not None:
            data, name = self.images.read(rows[0])  # MissingImage: the caller skips the group
            image: Any = {"bytes": data, "path": name}
            self.batch_bytes += len(data) * len(rows)
        else:
            image = rows[0].get("image")
        for row in rows:
            self.batch.append(hf_row(row, image, verdict))
        self.counts.qa += len(rows)
        self.counts.items += len(rows)
        if len(self.batch) >= HF_BATCH_ROWS or self.batch_bytes >= HF_BATCH_BYTES:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        rows, self.batch, self.batch_bytes = self.batch, [], 0
        while rows or self.writer is None:
            if self.writer is not None and (self.rows_in_shard >= self.opts.hf_rows_per_shard
                                            or self.shard_bytes >= HF_SHARD_BYTES):
                self.writer.close()
                self.writer = None
            if self.writer is None:
                path = self.folder / f"{self.split}-{len(self.files):05d}.parquet{PARTIAL}"
                self.files.append(path)
                self.writer = pq.ParquetWriter(path, self.schema)
                self.rows_in_shard = self.shard_bytes = 0
            room = self.opts.hf_rows_per_shard - self.rows_in_shard
            take, rows = rows[:room], rows[room:]
            if take:
                table = pa.Table.from_pylist(take, schema=self.schema)
                self.writer.write_table(table)
                self.rows_in_shard += len(take)
                self.shard_bytes += table.nbytes
                self.nbytes += table.nbytes

    def finish(self) -> list[Path]:
        self._flush()
        self.writer.close()
        self.writer = None
        n = len(self.files)
        out = []
        for i, p in enumerate(self.files):
            final = p.with_name(f"{self.split}-{i:05d}-of-{n:05d}.parquet")
            fd = os.open(p, os.O_RDONLY)
            try:
                os.fsync(fd)  # on disk before the folder is renamed into place
            finally:
                os.close(fd)
            os.replace(p, final)
            out.append(final)
        return out

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.close()


# -- the export ---------------------------------------------------------------------------------
def _hf_features(opts: ExportOptions) -> Any:
    import datasets

    string, f64 = datasets.Value("string"), datasets.Value("float64")
    features = {
        "id": string, "record_id": string,
        "image": datasets.Image() if opts.image_root is not None else string,
        "modality": string, "question": string, "answer": string, "type": string,
        "template": string, "options": [string],
        "answer_index": datasets.Value("int32"), "answer_letter": string,
        "conversation": [{"question": string, "answer": string}],
        "score": f64,
    }
    if opts.include_rejected:
        features |= {"passed": datasets.Value("bool"), "reasons": [string]}
    return datasets.Features(features)


def _targets(opts: ExportOptions) -> dict[str, Path]:
    """The final path of each split's output (hf: the whole folder, the same for all)."""
    if opts.format == "hf":
        return {name: opts.out for name, _ in opts.split}
    if not opts.multi_split:
        return {"train": opts.out}
    stem, suffix = opts.out.name, SUFFIX[opts.format]
    if stem.endswith(suffix):
        stem = stem[: -len(suffix)]
    return {name: opts.out.with_name(f"{stem}.{name}{suffix}") for name, _ in opts.split}


def export_run(run_dir: Path, opts: ExportOptions,
               on_warning: Callable[[str], None] | None = None) -> ExportSummary:
    """Export the run in `run_dir` as `opts` say; see the module docstring. Raises ExportError
    (one line) for a bad run folder or output in the way; nothing is left half-written."""
    run = open_run(run_dir, opts.allow_partial)
    targets = _targets(opts)
    for path in dict.fromkeys(targets.values()):
        if path.exists() and not opts.overwrite:
            raise ExportError(f"{path} exists; pass --overwrite to replace it")
        if not path.parent.is_dir():
            raise ExportError(f"{path.parent}: no such folder")
    images = Images(opts.image_root, opts.image_base_url, opts.embed_images)
    summary = ExportSummary(opts.format, [], {name: SplitCounts() for name, _ in opts.split})
    hf_tmp = opts.out.with_name(opts.out.name + PARTIAL) if opts.format == "hf" else None
    writers: dict[str, Any] = {}
    try:
        if hf_tmp is not None:
            shutil.rmtree(hf_tmp, ignore_errors=True)
            (hf_tmp / "data").mkdir(parents=True)
            schema = _hf_features(opts).arrow_schema
            writers = {name: _ParquetWriter(hf_tmp / "data", name, opts, images, schema)
                       for name, _ in opts.split}
        else:
            cls = {"llava": _LlavaWriter, "openai": _OpenAIWriter, "csv": _CsvWriter}
            writers = {name: cls[opts.format](targets[name], opts, images)
                       for name, _ in opts.split}
        _stream(run, opts, writers, summary, on_warning)
        partials = {name: w.finish() for name, w in writers.items()}
        for name, w in writers.items():
            summary.splits[name] = w.counts
        summary.check()
        if hf_tmp is not None:
            written = [name for name, _ in opts.split if summary.splits[name].qa]
            if written and len(written) < len(opts.split):
                # `datasets` cannot load an empty split: leave it out of the folder and card
                for name in [n for n in list(partials) if n not in written]:
                    for p in partials.pop(name):
                        p.unlink()
                    _warn(summary, on_warning, f"split {name!r} is empty (no QA of its "
                                               "images passed); not written")
            _write_card(hf_tmp, run, opts, summary,
                        {name: writers[name].nbytes for name in written or list(partials)})
            _replace(hf_tmp, opts.out)
            summary.outputs = [opts.out / "README.md", *sorted(
                opts.out / "data" / p.name for ps in partials.values() for p in ps)]
        else:
            for name, (p,) in partials.items():
                _replace(p, targets[name])
                summary.outputs.append(targets[name])
    except BaseException:
        for w in writers.values():
            w.abort()
        if hf_tmp is not None:
            shutil.rmtree(hf_tmp, ignore_errors=True)
        else:
            for path in targets.values():
                _partial(path).unlink(missing_ok=True)
        raise
    return summary


def _replace(src: Path, dst: Path) -> None:
    """Move the finished export into place (a folder replaces an old one as a whole)."""
    if src.is_dir() and dst.exists():
        old = dst.with_name(dst.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(dst, old)
        os.replace(src, dst)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(src, dst)


def _stream(run: RunFolder, opts: ExportOptions, writers: dict[str, Any],
            summary: ExportSummary, on_warning: Callable[[str], None] | None) -> None:
    """Rows → filters → split by image → consecutive QA of one image grouped → writer.
    Distinct images are counted by their 64-bit hash (8 bytes of set per image, not the QA)."""
    pending: dict[str, list[dict[str, Any]]] = {name: [] for name in writers}
    last: dict[str, tuple[str, int] | None] = dict.fromkeys(writers)
    seen: dict[str, set[int]] = {name: set() for name in writers}

    def flush(split: str) -> None:
        group, current = pending[split], last[split]
        if not group or current is None:
            return
        pending[split] = []
        try:
            writers[split].add_group(group)
        except MissingImage as err:
            summary.missing_image += len(group)
            _warn(summary, on_warning, str(err))
            return
        if current[1] not in seen[split]:
            seen[split].add(current[1])
            writers[split].counts.images += 1

    prefixes = ["data", "rejected"] if opts.include_rejected else ["data"]
    for prefix in prefixes:
        for row in iter_qa(run, prefix):
            if prefix == "data":
                summary.read += 1
            else:
                summary.read_rejected += 1
                summary.read += 1
            if not keep_row(row, opts):
                summary.filtered += 1
                continue
            key = image_key(row)
            h = image_hash(key, opts.seed)
            split = assign_split(key, opts.seed, opts.split, h)
            if last[split] is None or key != last[split][0]:  # type: ignore[index]
                flush(split)
                last[split] = (key, h)
            pending[split].append(row)
        for split in writers:
            flush(split)
            last[split] = None


def _warn(summary: ExportSummary, on_warning: Callable[[str], None] | None,
          message: str) -> None:
    """Report a skipped piece (the first 20; the counts hold them all)."""
    if len(summary.warnings) < 20:
        summary.warnings.append(message)
        if on_warning is not None:
            on_warning(message)


def _write_card(folder: Path, run: RunFolder, opts: ExportOptions, summary: ExportSummary,
                nbytes: dict[str, int]) -> None:
    """README.md: the YAML header `datasets` reads (configs, features, splits) and what the
    data is (template, model, filter settings, counts) and how to load and upload it."""
    import yaml

    m = run.manifest
    features = _hf_features(opts)
    header = {
        "configs": [{"config_name": "default", "data_files": [
            {"split": name, "path": f"data/{name}-*"} for name in nbytes]}],
        "dataset_info": {
            "features": features._to_yaml_list(),
            "splits": [{"name": name, "num_bytes": nbytes[name],
                        "num_examples": summary.splits[name].qa} for name in nbytes],
            "dataset_size": sum(nbytes.values())},
        "task_categories": ["visual-question-answering"],
        "tags": ["vqa-gen", "medical"],
    }
    template = m.get("template") or {}
    settings = {"template": {k: template.get(k) for k in ("name", "version", "content_hash",
                                                            "output")},
                "model": m.get("model"), "generation": m.get("generation"),
                "filter": m.get("filter"), "run_counts": m.get("counts"),
                "run_status": m.get("status"), "vqa_gen_version": m.get("vqa_gen_version")}
    export = {"filters": {"types": sorted(opts.types) if opts.types else None,
                          "min_score": opts.min_score, "template": opts.template,
                          "include_rejected": opts.include_rejected},
              "split": dict(opts.split), "seed": opts.seed}
    rows = "\n".join(f"| {name} | {c.qa:,} | {c.images:,} |"
                     for name, c in summary.splits.items())
    body = f"""# VQA data made with vqa-gen

Visual question answering pairs generated from image captions by `{settings['model']}` with the
`{template.get('name')}` template (version {template.get('version')}), kept only when the
caption-grounding filter found the answer supported by the caption{
        " (rejected pairs included, see `passed` and `reasons`)" if opts.include_rejected
        else ""}.

| split | QA | images |
| --- | --- | --- |
{rows}

Splits are assigned by image (no image is in two splits), from a hash of the image and seed
{opts.seed}. One row per QA pair; a multiple-choice row has `options`, `answer_index` and
`answer_letter`; a conversation row has every turn in `conversation`; `score` is the grounding
score in [0, 1].

```python
import datasets
ds = datasets.load_dataset("path/to/this/folder")
```

Upload: `huggingface-cli upload USER/NAME path/to/this/folder . --repo-type dataset`

## Generation settings (from the run's manifest)

```json
{orjson.dumps(settings, option=orjson.OPT_INDENT_2).decode()}
```

## Export settings

```json
{orjson.dumps(export, option=orjson.OPT_INDENT_2).decode()}
```
"""
    text = "---\n" + yaml.safe_dump(header, sort_keys=False, allow_unicode=True) + "---\n\n"
    (folder / "README.md").write_text(text + body, encoding="utf-8")
