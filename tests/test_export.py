"""`vqa-gen export`: run folders made against the real test server (every shipped template),
exported to each format and read back by the consuming library or a strict reader."""

from __future__ import annotations

import base64
import csv
import json
import os
import shutil
import signal
import struct
import zlib
from collections import Counter
from pathlib import Path

import pytest
from conftest import SAMPLES, read_jsonl, read_shards
from typer.testing import CliRunner

from vqa_gen.cli import app
from vqa_gen.export import ExportError, ExportOptions, assign_split, export_run, parse_split
from vqa_gen.runner import EndpointSettings, Run, RunOptions
from vqa_gen.testing import FakeOpenAIServer
from vqa_gen.testing.formats import format_aware

TEMPLATES = ("open_vqa", "closed_vqa", "multiple_choice", "conversation", "demographics",
             "description")
runner = CliRunner()


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One finished run folder per shipped template, made with `vqa-gen run` (small shards, so
    exports cross shard boundaries)."""
    base = tmp_path_factory.mktemp("runs")
    out = {}
    with FakeOpenAIServer(responder=format_aware) as srv:
        for t in TEMPLATES:
            result = runner.invoke(app, ["run", str(SAMPLES / "captions.jsonl"), "--out",
                                         str(base / t), "--template", t, "--base-url",
                                         srv.base_url, "--model", "fake", "--no-cache",
                                         "--shard-size", "25", "--quiet"])
            assert result.exit_code == 0, result.output
            out[t] = base / t
    return out


def _export(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["export", *args])
    return result.exit_code, result.output


def _kept(run: Path) -> list[dict]:
    rows = read_shards(run, "data")
    assert len(rows) == json.loads((run / "manifest.json").read_text())["counts"]["qa_kept"]
    return rows


def _turns(row: dict) -> list[tuple[str, str]]:
    """The (question, answer) turns a QA line must become (the test's own oracle)."""
    if row.get("conversation"):
        return [(t["question"], t["answer"]) for t in row["conversation"]]
    if row.get("options"):
        opts = "\n".join(f"{'ABCD'[i]}. {o}" for i, o in enumerate(row["options"]))
        return [(f"{row['question']}\n{opts}", f"{row['answer_letter']}. {row['answer']}")]
    return [(row["question"], row["answer"])]


def _no_leftovers(folder: Path) -> None:
    assert not [p for p in folder.iterdir() if p.name.endswith(".partial")]


# -- llava ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("template", TEMPLATES)
def test_llava_round_trip_holds_exactly_the_kept_qa(runs, tmp_path, template):
    kept = _kept(runs[template])
    assert kept, "the run must have kept QA to export"
    # one conversation per QA: ids are the QA ids, in order
    code, output = _export(str(runs[template]), "--format", "llava", "--group", "qa",
                           "--out", str(tmp_path / "qa.json"))
    assert code == 0, output
    items = json.loads((tmp_path / "qa.json").read_text())
    assert [i["id"] for i in items] == [r["id"] for r in kept]
    for item, row in zip(items, kept, strict=True):
        assert set(item) == {"id", "image", "conversations"} and item["image"] == row["image"]
        conv = item["conversations"]
        assert [c["from"] for c in conv] == ["human", "gpt"] * (len(conv) // 2)
        assert [(h["value"], g["value"]) for h, g in zip(conv[::2], conv[1::2], strict=True)] \
            == [("<image>\n" + q if k == 0 else q, a) for k, (q, a) in enumerate(_turns(row))]
    # one conversation per image (default): all QA of the image, `<image>` once
    code, output = _export(str(runs[template]), "--format", "llava", "--out",
                           str(tmp_path / "img.json"))
    assert code == 0, output
    items = json.loads((tmp_path / "img.json").read_text())
    by_image: dict[str, list[dict]] = {}
    for row in kept:
        by_image.setdefault(row["image"], []).append(row)
    assert [i["image"] for i in items] == list(by_image)
    assert [i["id"] for i in items] == [rows[0]["record_id"] for rows in by_image.values()]
    for item in items:
        values = [c["value"] for c in item["conversations"]]
        expected = [x for row in by_image[item["image"]] for turn in _turns(row) for x in turn]
        assert values == [("<image>\n" + expected[0]), *expected[1:]]
        assert sum(v.count("<image>") for v in values) == 1
    _no_leftovers(tmp_path)


def test_llava_export_is_deterministic_and_ids_stable(runs, tmp_path):
    for name in ("a.json", "b.json"):
        code, output = _export(str(runs["open_vqa"]), "-f", "llava", "-o", str(tmp_path / name),
                               "--split", "train=0.7,test=0.3", "--seed", "5")
        assert code == 0, output
    for split in ("train", "test"):
        assert (tmp_path / f"a.{split}.json").read_bytes() == \
            (tmp_path / f"b.{split}.json").read_bytes()


# -- openai --------------------------------------------------------------------------------------
def test_openai_chat_jsonl_with_image_urls(runs, tmp_path):
    kept = _kept(runs["multiple_choice"])
    out = tmp_path / "ft.jsonl"
    code, output = _export(str(runs["multiple_choice"]), "-f", "openai", "-o", str(out),
                           "--group", "qa", "--image-base-url", "https://cdn.example.org/imgs/")
    assert code == 0, output
    lines = read_jsonl(out)
    assert len(lines) == len(kept)
    for line, row in zip(lines, kept, strict=True):
        assert set(line) == {"messages"}
        user, assistant = line["messages"]
        assert user["role"] == "user" and assistant["role"] == "assistant"
        image_part, text_part = user["content"]
        assert image_part == {"type": "image_url", "image_url": {
            "url": f"https://cdn.example.org/imgs/{row['image']}"}}
        assert text_part == {"type": "text", "text": _turns(row)[0][0]}
        assert assistant["content"] == _turns(row)[0][1]


def _png(seed: int) -> bytes:
    """A valid 1x1 PNG whose pixel depends on `seed`."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    raw = b"\x00" + bytes([seed % 256, (seed * 7) % 256, (seed * 13) % 256])
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def _image_root(tmp_path: Path, run: Path, skip: int = 0) -> tuple[Path, dict[str, bytes]]:
    """Tiny PNGs for the run's images (all but the first `skip`)."""
    root = tmp_path / "images"
    files = {}
    for i, image in enumerate(dict.fromkeys(r["image"] for r in read_shards(run, "data"))):
        if i < skip:
            continue
        path = root / image
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_png(i))
        files[image] = path.read_bytes()
    return root, files


def test_openai_embedded_images_are_data_urls_of_the_files(runs, tmp_path):
    run = runs["conversation"]
    kept = _kept(run)
    root, files = _image_root(tmp_path, run)
    out = tmp_path / "ft.jsonl"
    code, output = _export(str(run), "-f", "openai", "-o", str(out), "--embed-images",
                           "--image-root", str(root))
    assert code == 0, output
    lines = read_jsonl(out)
    images = list(dict.fromkeys(r["image"] for r in kept))
    assert len(lines) == len(images)
    for line, image in zip(lines, images, strict=True):
        url = line["messages"][0]["content"][0]["image_url"]["url"]
        assert url.startswith("data:image/png;base64,") or url.startswith("data:image/jpeg")
        assert base64.b64decode(url.split(",", 1)[1]) == files[image]
        roles = [m["role"] for m in line["messages"]]
        assert roles == ["user", "assistant"] * (len(roles) // 2)
        # the image only in the first user message
        assert all(isinstance(m["content"], str) for m in line["messages"][1:])


def test_openai_needs_a_way_to_the_image(runs, tmp_path):
    code, output = _export(str(runs["open_vqa"]), "-f", "openai", "-o", str(tmp_path / "x"))
    assert code == 2 and "--image-base-url" in output and "Traceback" not in output


# -- hf ------------------------------------------------------------------------------------------
def _load(path: Path, tmp_path: Path):
    import datasets

    return datasets.load_dataset(str(path), cache_dir=str(tmp_path / "hf-cache"))


@pytest.mark.parametrize("template", TEMPLATES)
def test_hf_folder_loads_with_datasets_and_holds_the_kept_qa(runs, tmp_path, template,
                                                             monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    kept = _kept(runs[template])
    out = tmp_path / "ds"
    code, output = _export(str(runs[template]), "-f", "hf", "-o", str(out), "--split",
                           "train=0.8,validation=0.1,test=0.1", "--seed", "3")
    assert code == 0, output
    ds = _load(out, tmp_path)
    # a split no image fell into (26 QA of demographics) is left out, and said so
    assert "train" in ds and set(ds) <= {"train", "validation", "test"}
    for name in {"train", "validation", "test"} - set(ds):
        assert f"split '{name}' is empty" in output
    ids = [i for split in ds.values() for i in split["id"]]
    assert sorted(ids) == sorted(r["id"] for r in kept) and len(ids) == len(set(ids))
    by_id = {r["id"]: r for r in kept}
    for split in ds.values():
        for got in split:
            row = by_id[got["id"]]
            assert (got["question"], got["answer"], got["image"], got["type"]) == (
                row["question"], row["answer"], row["image"], row["type"])
            assert got["options"] == row.get("options", [])
            assert got["answer_letter"] == row.get("answer_letter")
            assert [(t["question"], t["answer"]) for t in got["conversation"]] == [
                (t["question"], t["answer"]) for t in row.get("conversation", [])]
            assert got["score"] == row["grounding"]["score"]
    card = (out / "README.md").read_text()
    assert card.startswith("---\nconfigs:") and "huggingface-cli upload" in card
    assert f"`{template}` template" in card and '"qa_kept"' in card
    for name, split in ds.items():
        assert f"name: {name}\n" in card and f"num_examples: {split.num_rows}\n" in card
    assert not list(tmp_path.glob("*.partial"))


def test_hf_image_root_gives_an_image_feature_with_the_bytes(runs, tmp_path, monkeypatch):
    import datasets

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    run = runs["open_vqa"]
    kept = _kept(run)
    root, files = _image_root(tmp_path, run, skip=1)
    missing = kept[0]["image"]
    out = tmp_path / "ds"
    code, output = _export(str(run), "-f", "hf", "-o", str(out), "--image-root", str(root))
    assert code == 0, output
    # the QA of the one image without a file are skipped, each group named once, and counted
    n_missing = sum(r["image"] == missing for r in kept)
    assert output.count("skipped:") == 1 and missing in output
    assert f"missing image {n_missing}" in output
    ds = _load(out, tmp_path)["train"]
    assert isinstance(ds.features["image"], datasets.Image)
    assert ds.num_rows == len(kept) - n_missing
    raw = ds.cast_column("image", datasets.Image(decode=False))
    for got in raw:
        assert got["image"]["bytes"] == files[got["image"]["path"]]


def test_hf_shards_rotate_and_stay_loadable(runs, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    kept = _kept(runs["open_vqa"])
    out = tmp_path / "ds"
    summary = export_run(runs["open_vqa"], ExportOptions("hf", out, hf_rows_per_shard=50))
    shards = sorted(p.name for p in (out / "data").iterdir())
    n = -(-len(kept) // 50)
    assert shards == [f"train-{i:05d}-of-{n:05d}.parquet" for i in range(n)]
    assert summary.splits["train"].qa == len(kept)
    assert _load(out, tmp_path)["train"]["id"] == [r["id"] for r in kept]


# -- csv -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("template", ["multiple_choice", "conversation", "open_vqa"])
def test_csv_has_pmc_vqa_columns_and_the_kept_qa(runs, tmp_path, template):
    kept = _kept(runs[template])
    out = tmp_path / "vqa.csv"
    code, output = _export(str(runs[template]), "-f", "csv", "-o", str(out))
    assert code == 0, output
    with out.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames[:8] == ["Figure_path", "Question", "Answer", "Choice A",
                                         "Choice B", "Choice C", "Choice D", "Answer_label"]
        rows = list(reader)
    expected = []
    for r in kept:
        if r.get("conversation"):
            expected += [(f"{r['id']}#{k}", t["question"], t["answer"])
                         for k, t in enumerate(r["conversation"], start=1)]
        else:
            expected.append((r["id"], r["question"], r["answer"]))
    assert [(r["id"], r["Question"], r["Answer"]) for r in rows] == expected
    by_id = {r["id"]: r for r in kept}
    for got in rows:
        row = by_id.get(got["id"]) or by_id[got["id"].split("#")[0]]
        assert got["Figure_path"] == row["image"]
        choices = [got[f"Choice {x}"] for x in "ABCD"]
        if row.get("options"):
            assert choices == row["options"] and got["Answer_label"] == row["answer_letter"]
            assert choices["ABCD".index(got["Answer_label"])] == got["Answer"]
        else:
            assert choices == ["", "", "", ""] and got["Answer_label"] == ""


# -- splits --------------------------------------------------------------------------------------
def test_split_proportions_hold_by_image_on_10000_images():
    splits = parse_split("train=0.8,val=0.1,test=0.1")
    for seed in (0, 1, 2):
        got = Counter(assign_split(f"images/{i}.jpg", seed, splits) for i in range(10_000))
        for name, fraction in splits:
            assert abs(got[name] / 10_000 - fraction) < 0.01, (seed, got)
    a = [assign_split(f"images/{i}.jpg", 0, splits) for i in range(10_000)]
    assert a == [assign_split(f"images/{i}.jpg", 0, splits) for i in range(10_000)]
    assert a != [assign_split(f"images/{i}.jpg", 1, splits) for i in range(10_000)]


def test_no_image_in_two_splits_and_counts_add_up(runs, tmp_path):
    run = runs["open_vqa"]
    kept = _kept(run)
    # two records share each image: grouping and splitting must follow the image, not the record
    shared = tmp_path / "shared"
    shutil.copytree(run, shared)
    for shard in sorted(shared.glob("data-*.jsonl")):
        rows = read_jsonl(shard)
        for r in rows:
            r["image"] = f"img/{int(r['record_id'].split('-')[-1]) // 2}.png"
        shard.write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = export_run(shared, ExportOptions("llava", tmp_path / "s.json",
                                               split=parse_split("train=0.5,val=0.25,test=0.25"),
                                               seed=9))
    images: dict[str, set[str]] = {}
    total = 0
    for name in ("train", "val", "test"):
        items = json.loads((tmp_path / f"s.{name}.json").read_text())
        assert summary.splits[name].items == len(items) > 0
        for item in items:
            images.setdefault(item["image"], set()).add(name)
            total += len(item["conversations"]) // 2
    assert all(len(s) == 1 for s in images.values())
    assert summary.read == summary.exported == len(kept) == total  # open_vqa: one turn per QA
    assert sum(s.images for s in summary.splits.values()) == len(images)


def test_split_spec_errors_are_one_line():
    for spec in ("train=0.8,val=0.1", "train", "a=0.5,a=0.5", "tr ain=1", "train=x"):
        with pytest.raises(ExportError, match="--split"):
            parse_split(spec)
    code, output = _export("nowhere", "-f", "csv", "-o", "x.csv", "--split", "train=2")
    assert code == 2 and "--split" in output and "Traceback" not in output


# -- filters and rejected ------------------------------------------------------------------------
def test_filters_types_min_score_and_template(runs, tmp_path):
    run = runs["open_vqa"]
    kept = _kept(run)
    types = Counter(r["type"] for r in kept)
    wanted = {t for t, _ in types.most_common(2)}
    scores = sorted(r["grounding"]["score"] for r in kept)
    cut = scores[len(scores) // 2]
    summary = export_run(run, ExportOptions("csv", tmp_path / "f.csv", types=frozenset(wanted),
                                            min_score=cut))
    expected = [r["id"] for r in kept
                if r["type"] in wanted and r["grounding"]["score"] >= cut]
    with (tmp_path / "f.csv").open(newline="") as fh:
        assert [r["id"] for r in csv.DictReader(fh)] == expected
    assert 0 < len(expected) < len(kept)
    assert (summary.read, summary.exported, summary.filtered) == (
        len(kept), len(expected), len(kept) - len(expected))
    code, output = _export(str(run), "-f", "csv", "-o", str(tmp_path / "t.csv"), "--template",
                           "closed_vqa")
    assert code == 0 and "exported 0" in output and f"filtered out {len(kept)}" in output


def test_include_rejected_adds_the_verdict(runs, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    run = runs["open_vqa"]
    kept, rejected = _kept(run), read_shards(run, "rejected")
    assert rejected
    out = tmp_path / "all.csv"
    code, output = _export(str(run), "-f", "csv", "-o", str(out), "--include-rejected")
    assert code == 0, output
    with out.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["id"] for r in rows] == [r["id"] for r in kept + rejected]
    verdicts = {r["id"]: r for r in rows}
    for r in rejected:
        got = verdicts[r["id"]]
        assert got["passed"] == "False"
        assert got["reasons"].split(";") == [x["code"] for x in r["grounding"]["reasons"]]
    assert all(verdicts[r["id"]]["passed"] == "True" for r in kept)
    code, output = _export(str(run), "-f", "hf", "-o", str(tmp_path / "ds"),
                           "--include-rejected")
    assert code == 0, output
    ds = _load(tmp_path / "ds", tmp_path)["train"]
    assert Counter(ds["passed"]) == {True: len(kept), False: len(rejected)}
    code, output = _export(str(run), "-f", "llava", "-o", str(tmp_path / "l.json"),
                           "--include-rejected")
    assert code == 2 and "analysis exports" in output


# -- bad run folders -----------------------------------------------------------------------------
def _damaged(runs, tmp_path: Path, template: str = "open_vqa") -> Path:
    folder = tmp_path / "damaged"
    shutil.copytree(runs[template], folder)
    return folder


def _assert_one_line_error(code: int, output: str, *needles: str) -> None:
    assert code == 2, output
    assert "Traceback" not in output and len(output.strip().splitlines()) == 1, output
    for n in needles:
        assert n in output, output


@pytest.mark.parametrize("damage, needles", [
    ("missing_shard", ("data-00001.jsonl", "shard missing")),
    ("truncated_line", ("data-00002.jsonl:", "truncated or damaged")),
    ("cut_short", ("hold", "counts")),
    ("missing_field", ("data-00000.jsonl:3", "field 'question'")),
    ("bad_options", ("data-00000.jsonl:2", "field 'answer_letter'")),
    ("manifest_not_json", ("manifest.json", "not valid JSON")),
    ("manifest_wrong", ("manifest.json", "'outputs'")),
    ("unlisted_shard", ("data-00099.jsonl", "not listed")),
    ("no_run", ("holds no vqa-gen run",)),
])
def test_bad_run_folders_give_one_clear_line_and_no_output(runs, tmp_path, damage, needles):
    folder = _damaged(runs, tmp_path)
    shard = folder / "data-00002.jsonl"
    if damage == "missing_shard":
        (folder / "data-00001.jsonl").unlink()
    elif damage == "truncated_line":
        data = shard.read_bytes()
        shard.write_bytes(data[: len(data) - 40])
    elif damage == "cut_short":
        lines = shard.read_bytes().splitlines(keepends=True)
        shard.write_bytes(b"".join(lines[:-2]))
    elif damage == "missing_field":
        p = folder / "data-00000.jsonl"
        rows = read_jsonl(p)
        del rows[2]["question"]
        p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif damage == "bad_options":
        p = folder / "data-00000.jsonl"
        rows = read_jsonl(p)
        rows[1].update(options=["a", "b", "c", "d"], answer_letter="E")
        p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif damage == "manifest_not_json":
        (folder / "manifest.json").write_text('{"status": "compl')
    elif damage == "manifest_wrong":
        (folder / "manifest.json").write_text('{"status": "complete", "counts": {}}')
    elif damage == "unlisted_shard":
        shutil.copy(shard, folder / "data-00099.jsonl")
    elif damage == "no_run":
        (folder / "manifest.json").unlink()
    for fmt, name in (("llava", "out.json"), ("hf", "ds")):
        code, output = _export(str(folder), "-f", fmt, "-o", str(tmp_path / name))
        _assert_one_line_error(code, output, *needles)
        assert not (tmp_path / name).exists()
        _no_leftovers(tmp_path)


def test_existing_output_is_kept_unless_overwrite(runs, tmp_path):
    out = tmp_path / "x.csv"
    out.write_text("precious")
    code, output = _export(str(runs["open_vqa"]), "-f", "csv", "-o", str(out))
    _assert_one_line_error(code, output, "--overwrite")
    assert out.read_text() == "precious"
    code, output = _export(str(runs["open_vqa"]), "-f", "csv", "-o", str(out), "--overwrite")
    assert code == 0 and out.read_text().startswith("Figure_path,")
    ds = tmp_path / "ds"
    (ds / "data").mkdir(parents=True)
    (ds / "data" / "stale-00000-of-00001.parquet").write_text("old")
    code, output = _export(str(runs["open_vqa"]), "-f", "hf", "-o", str(ds))
    _assert_one_line_error(code, output, "--overwrite")
    code, output = _export(str(runs["open_vqa"]), "-f", "hf", "-o", str(ds), "--overwrite")
    assert code == 0, output
    assert sorted(p.name for p in (ds / "data").iterdir()) == ["train-00000-of-00001.parquet"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds", "x.csv"]


# -- unfinished runs -----------------------------------------------------------------------------
def _interrupted_run(tmp_path: Path, stop_after: int) -> Path:
    """A real interrupted run: SIGINT (Ctrl-C) after `stop_after` committed records."""
    out = tmp_path / "interrupted"
    seen = 0

    def on_result(result, writer) -> None:
        nonlocal seen
        seen += 1
        if seen == stop_after:
            os.kill(os.getpid(), signal.SIGINT)

    with FakeOpenAIServer(responder=format_aware) as srv:
        job = Run(RunOptions(input=SAMPLES / "captions.jsonl", out_dir=out, use_cache=False,
                             shard_size=20, endpoint=EndpointSettings(
                                 base_url=srv.base_url, model="m", concurrency=1)))
        with pytest.raises(KeyboardInterrupt):
            job.run(on_result=on_result)
    return out


def test_unfinished_run_is_refused_unless_allow_partial(tmp_path):
    run = _interrupted_run(tmp_path, stop_after=30)
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "interrupted" and list(run.glob("data-*.jsonl.partial"))
    code, output = _export(str(run), "-f", "csv", "-o", str(tmp_path / "p.csv"))
    _assert_one_line_error(code, output, "'interrupted'", "--allow-partial")
    # a torn line at the end of the open shard (a record not yet committed) is not exported
    partial = sorted(run.glob("data-*.jsonl.partial"))[-1]
    with partial.open("ab") as fh:
        fh.write(b'{"id": "torn/open_vqa/0", "record_id": "to')
    code, output = _export(str(run), "-f", "csv", "-o", str(tmp_path / "p.csv"),
                           "--allow-partial")
    assert code == 0, output
    committed = {e["record_id"] for e in read_jsonl(run / ".vqa-gen" / "progress.jsonl")}
    rows = [json.loads(line) for p in sorted(run.glob("data-*.jsonl*"))
            for line in p.read_bytes().splitlines(keepends=True) if line.endswith(b"\n")]
    rows = [r for r in rows if r["record_id"] in committed]
    with (tmp_path / "p.csv").open(newline="") as fh:
        got = [r["id"] for r in csv.DictReader(fh)]
    assert got == [r["id"] for r in rows] and len(got) > 20


def test_files_that_only_look_like_shards_are_ignored(runs, tmp_path):
    folder = _damaged(runs, tmp_path)
    (folder / "data-notes.jsonl").write_text("my notes, not QA\n")
    kept = _kept(runs["open_vqa"])
    summary = export_run(folder, ExportOptions("llava", tmp_path / "x.json", group="qa"))
    assert summary.exported == len(kept)
    assert [i["id"] for i in json.loads((tmp_path / "x.json").read_text())] == [
        r["id"] for r in kept]


def test_openai_skips_and_counts_qa_whose_image_file_is_missing(runs, tmp_path):
    run = runs["open_vqa"]
    kept = _kept(run)
    root, _ = _image_root(tmp_path, run, skip=2)
    summary = export_run(run, ExportOptions("openai", tmp_path / "ft.jsonl", embed_images=True,
                                            image_root=root, group="qa"))
    images = list(dict.fromkeys(r["image"] for r in kept))
    lost = sum(r["image"] in images[:2] for r in kept)
    assert summary.missing_image == lost > 0 and len(summary.warnings) == 2
    assert summary.read == summary.exported + summary.missing_image == len(kept)
    assert len(read_jsonl(tmp_path / "ft.jsonl")) == len(kept) - lost
