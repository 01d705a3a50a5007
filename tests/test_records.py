from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import SAMPLES, write_jsonl
from hypothesis import given, settings
from hypothesis import strategies as st

from vqa_gen.records import CaptionRecord, FieldMap, coerce_record, read_records


def _reasons(path: Path, **kw) -> list[str]:
    return [str(i.invalid) for i in read_records(path, **kw) if i.invalid]


def test_samples_are_valid_and_cover_three_modalities():
    items = list(read_records(SAMPLES / "captions.jsonl"))
    assert len(items) >= 40
    assert all(i.record is not None for i in items), [str(i.invalid) for i in items if i.invalid]
    modalities = {i.record.modality for i in items}
    assert {"clinical", "dermoscopic", "pathology"} <= modalities


def test_csv_with_column_mapping_and_embedded_newlines():
    fields = FieldMap(id="figure_id", image="image_path", caption="legend")
    items = list(read_records(SAMPLES / "captions.csv", fields=fields))
    assert len(items) == 8
    assert all(i.record is not None for i in items), [str(i.invalid) for i in items if i.invalid]
    assert any("\n" in i.record.caption for i in items)
    assert any('"' in i.record.caption for i in items)


def test_bad_lines_become_invalid_with_file_line_and_field(tmp_path):
    path = write_jsonl(tmp_path / "in.jsonl", [
        {"id": "a", "caption": "Psoriasis plaque on the elbow."},
        "{not json",
        {"id": "b"},
        {"id": "c", "caption": "   "},
        {"id": "d", "caption": 42},
        {"id": "a", "caption": "Duplicate id."},
        {"id": "e", "caption": "x" * 50},
        "[1, 2]",
        {"id": "f", "caption": "Fine.", "modality": "x-ray"},
    ])
    with path.open("ab") as fh:
        fh.write(b'{"id": "g", "caption": "caf\xe9"}\n')
    reasons = _reasons(path, max_caption_chars=40)
    assert reasons == [
        f"{path}:2: not valid JSON: unexpected character, expected a string key at column 2",
        f"{path}:3: field 'caption': missing",
        f"{path}:4: field 'caption': empty",
        f"{path}:5: field 'caption': expected a string, got int",
        f"{path}:6: field 'id': duplicate id 'a'",
        f"{path}:7: field 'caption': 50 characters, over the limit of 40",
        f"{path}:8: expected a JSON object, got list",
        f"{path}:10: not valid UTF-8 (byte 27)",
    ]
    # modality is free text: an unknown one is kept as given, not an invalid record
    (f,) = [i.record for i in read_records(path) if i.record and i.record.id == "f"]
    assert f.modality == "x-ray"


def test_mapped_field_names_appear_in_reasons(tmp_path):
    path = write_jsonl(tmp_path / "in.jsonl", [{"fig": "1", "legend": ""}])
    assert _reasons(path, fields=FieldMap(id="fig", caption="legend")) == [
        f"{path}:1: field 'legend': empty"]


def test_missing_id_is_derived_stably_and_extra_columns_go_to_meta(tmp_path):
    path = write_jsonl(tmp_path / "in.jsonl", [
        {"caption": "Lichen planus.", "image": "a.jpg", "age": 40}])
    first = next(read_records(path)).record
    second = next(read_records(path)).record
    assert first.id == second.id and first.id.startswith("rec-")
    assert first.meta == {"age": 40}


def test_modality_aliases_are_normalised():
    assert CaptionRecord(id="x", caption="c", modality="Dermoscopy").modality == "dermoscopic"
    assert CaptionRecord(id="x", caption="c", modality="H&E" if False else "histology"
                         ).modality == "pathology"


def test_coerce_record_reports_reason():
    with pytest.raises(ValueError, match="record 3: field 'caption': missing"):
        coerce_record({"id": "x"}, index=3)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(
    st.binary(max_size=60),
    st.dictionaries(st.sampled_from(["id", "caption", "image", "modality", "meta", "x"]),
                    st.one_of(st.none(), st.text(max_size=20), st.integers(), st.booleans(),
                              st.lists(st.integers(), max_size=2)), max_size=5),
), max_size=20))
def test_reader_never_raises_and_accounts_for_every_line(tmp_path_factory, rows):
    path = tmp_path_factory.mktemp("h") / "in.jsonl"
    with path.open("wb") as fh:
        for row in rows:
            data = row if isinstance(row, bytes) else json.dumps(row).encode()
            fh.write(data.replace(b"\n", b" ").replace(b"\r", b" ") + b"\n")
    items = list(read_records(path))
    non_blank = [ln for ln in path.read_bytes().split(b"\n") if ln.strip()]
    assert len(items) == len(non_blank)
    for item in items:
        assert (item.record is None) != (item.invalid is None)
        if item.invalid:
            assert "\n" not in item.invalid.reason


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.text(max_size=30), st.text(max_size=30)), max_size=10))
def test_csv_reader_round_trips_quoted_fields(tmp_path_factory, rows):
    import csv

    path = tmp_path_factory.mktemp("c") / "in.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "caption"])
        for i, (_, cap) in enumerate(rows):
            w.writerow([f"r{i}", cap])
    items = list(read_records(path))
    expected = [cap.strip() for _, cap in rows if cap.strip() and "\x00" not in cap]
    assert [i.record.caption for i in items if i.record] == expected
    assert all(i.invalid.reason in ("field 'caption': empty", "field 'caption': contains a NUL "
                                    "byte (binary data, not text)") for i in items if i.invalid)
