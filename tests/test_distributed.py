"""`--engine ray` on a local 2-CPU Ray cluster against the real test server: the same output
folder as a local run of the same input with the same replies, resume, many input files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import SAMPLES, read_jsonl, read_shards, write_jsonl
from typer.testing import CliRunner

from vqa_gen.runner import EndpointSettings, Run, RunOptions
from vqa_gen.testing import FakeOpenAIServer

ray = pytest.importorskip("ray")

from vqa_gen.distributed import LINE_STRIDE, RayRun, RaySettings  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def ray_cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def records(n: int, prefix: str = "r") -> list[dict]:
    base = read_jsonl(SAMPLES / "captions.jsonl")
    return [{**base[i % len(base)], "id": f"{prefix}{i:05d}"} for i in range(n)]


def options(server: FakeOpenAIServer, inp: Path, out: Path, **kw) -> RunOptions:
    return RunOptions(input=inp, out_dir=out, use_cache=False,
                      endpoint=EndpointSettings(base_url=server.base_url, model="fake-model",
                                                api_key="sk-test", concurrency=8), **kw)


def test_ray_run_of_1000_records_equals_the_local_run(fake_server, tmp_path):
    inp = write_jsonl(tmp_path / "in.jsonl", [*records(999), "{broken"])
    local = Run(options(fake_server, inp, tmp_path / "local")).run()
    fake_server.reset()
    distributed = RayRun(options(fake_server, inp, tmp_path / "ray"),
                         RaySettings(actors=2, batch_size=50)).run()
    assert fake_server.stats["requests"] == 999  # every valid record asked once, no more
    assert read_shards(tmp_path / "ray", "data") == read_shards(tmp_path / "local", "data")
    assert read_shards(tmp_path / "ray", "rejected") == read_shards(tmp_path / "local",
                                                                    "rejected")
    assert distributed["counts"] == local["counts"]
    assert distributed["outputs"] == local["outputs"]
    assert distributed["engine"]["name"] == "ray" and distributed["status"] == "complete"
    c = distributed["counts"]
    assert c["records_read"] == 1000 == c["records_done"] + c["records_invalid"]
    assert read_jsonl(tmp_path / "ray" / "invalid.jsonl") == read_jsonl(
        tmp_path / "local" / "invalid.jsonl")


def test_ray_resume_skips_committed_records(fake_server, tmp_path):
    inp = write_jsonl(tmp_path / "in.jsonl", records(120))
    Run(options(fake_server, inp, tmp_path / "full")).run()

    def stop_after_30(result, writer):
        if writer.counts.records_read == 30:
            raise KeyboardInterrupt

    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        Run(options(fake_server, inp, out, shard_size=100)).run(on_result=stop_after_30)
    fake_server.reset()
    manifest = RayRun(options(fake_server, inp, out, shard_size=100),
                      RaySettings(actors=2, batch_size=16)).run()
    assert fake_server.stats["requests"] == 90
    assert manifest["resumed"] and manifest["counts"]["records_read"] == 120
    full = read_shards(tmp_path / "full", "data")
    assert read_shards(out, "data") == full


def test_ray_reads_a_folder_of_jsonl_and_csv(fake_server, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    a = write_jsonl(folder / "a.jsonl", [*records(20, "a"), '{"id": "bad"}'])
    rows = records(15, "b")
    with (folder / "b.csv").open("w", encoding="utf-8") as fh:
        fh.write("id,image,caption,modality\n")
        for r in rows:
            caption = r["caption"].replace('"', '""')
            fh.write(f'{r["id"]},{r.get("image") or ""},"{caption}",{r.get("modality") or ""}\n')
    manifest = RayRun(options(fake_server, folder, tmp_path / "ray"),
                      RaySettings(actors=2, batch_size=8)).run()
    c = manifest["counts"]
    assert c["records_read"] == 36 and c["records_invalid"] == 1 and c["records_done"] == 35
    invalid = read_jsonl(tmp_path / "ray" / "invalid.jsonl")
    assert [(Path(i["source"]).name, i["line"]) for i in invalid] == [("a.jsonl", 21)]
    progress = read_jsonl(tmp_path / "ray" / ".vqa-gen" / "progress.jsonl")
    assert {e["line"] for e in progress} == {*range(1, 22), *range(LINE_STRIDE + 2,
                                                                   LINE_STRIDE + 17)}
    # the kept QA of each file is what a local run of that file keeps
    local_a = Run(options(fake_server, a, tmp_path / "la")).run()
    local_b = Run(options(fake_server, folder / "b.csv", tmp_path / "lb")).run()
    assert read_shards(tmp_path / "ray", "data") == (read_shards(tmp_path / "la", "data")
                                                     + read_shards(tmp_path / "lb", "data"))
    assert c["qa_kept"] == local_a["counts"]["qa_kept"] + local_b["counts"]["qa_kept"]


def test_cli_engine_ray(fake_server, tmp_path):
    out = tmp_path / "out"
    r = CliRunner().invoke(__import__("vqa_gen.cli", fromlist=["app"]).app, [
        "run", str(SAMPLES / "captions.jsonl"), "--out", str(out), "--engine", "ray",
        "--actors", "1", "--base-url", fake_server.base_url, "--model", "fake-model",
        "--limit", "10", "--no-cache", "-q"])
    assert r.exit_code == 0, r.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["records_read"] == 10 and manifest["engine"]["actors"] == 1
    bad = CliRunner().invoke(__import__("vqa_gen.cli", fromlist=["app"]).app, [
        "run", str(tmp_path / "missing"), "--engine", "ray", "--model", "m",
        "--base-url", fake_server.base_url])
    assert bad.exit_code == 2 and "not found" in bad.output
