"""`kill -9` at random moments, then resume: the final output equals an uninterrupted run's.

The CLI runs as a real subprocess against the in-process test server (deterministic replies), is
SIGKILLed several times at random points (including during start-up), and a last plain rerun
finishes the job. Output shards, side files and the raw-reply log must be byte-identical to a run
that was never interrupted, and records committed before a kill must never be sent again.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, write_jsonl

from vqa_gen.testing import FakeOpenAIServer, extract_caption

N_RECORDS = 200
MODALITIES = ["clinical", "dermoscopic", "pathology", None]


def _rows(n: int = N_RECORDS) -> list[dict | str]:
    rows: list[dict | str] = []
    for i in range(n):
        if i % 37 == 5:
            rows.append("{not json")  # invalid lines must survive kills too
            continue
        row = {"id": f"r{i:04d}", "image": f"img/{i}.jpg",
               "caption": (f"Psoriatic plaque number {i} on the left elbow. "
                           f"Silvery scale covers {i % 7 + 1} lesions on the extensor aspect.")}
        if MODALITIES[i % 4]:
            row["modality"] = MODALITIES[i % 4]
        rows.append(row)
    return rows


def _cli(args: list[str], env_extra: dict[str, str] | None = None) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.update(env_extra or {})
    return subprocess.Popen([sys.executable, "-m", "vqa_gen", "run", *args, "--quiet"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=env)


def output_files(out: Path) -> dict[str, bytes]:
    """Every result file of a finished run (everything but the manifest and resume state)."""
    files = {p.name: p.read_bytes() for p in sorted(out.glob("*.jsonl"))}
    files[".vqa-gen/responses.jsonl"] = (out / ".vqa-gen" / "responses.jsonl").read_bytes()
    return files


def _committed_ids(out: Path) -> set[str]:
    progress = out / ".vqa-gen" / "progress.jsonl"
    ids = set()
    if progress.exists():
        for raw in progress.read_bytes().splitlines(keepends=True):
            if raw.endswith(b"\n"):
                e = json.loads(raw)
                if e["status"] == "done":
                    ids.add(e["record_id"])
    return ids


def kill_and_resume(path: Path, out: Path, srv: FakeOpenAIServer, *, kills: int, seed: int,
                    extra: list[str], env_extra: dict[str, str] | None = None,
                    ) -> dict[str, object]:
    """Start the CLI `kills` times, SIGKILL each at a random moment, then let a last run finish.

    Returns what happened: how many records each killed run had committed, and the record ids
    sent to the server after having been committed (must be none)."""
    rng = random.Random(seed)
    args = [str(path), "--out", str(out), "--base-url", srv.base_url, "--model", "m", *extra]
    caption_to_id = {r["caption"]: r["id"] for r in _rows() if isinstance(r, dict)}
    resent: list[str] = []
    committed_after: list[int] = []
    # kill points: one during start-up, the others once the server has answered this many
    # calls in all (absolute, so the last kill still lands well before the end)
    targets = sorted(rng.sample(range(5, N_RECORDS // 2), kills - 1))
    for k in range(kills):
        before = _committed_ids(out)
        srv.requests.clear()
        proc = _cli(args, env_extra)
        if k == 0:
            time.sleep(rng.uniform(0.0, 0.6))  # possibly before the output folder exists
        else:
            target = max(targets[k - 1], srv.stats["ok"] + 1)
            deadline = time.monotonic() + 20
            while srv.stats["ok"] < target and time.monotonic() < deadline:
                if proc.poll() is not None:
                    break
                time.sleep(0.002)
            time.sleep(rng.uniform(0.0, 0.05))
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        for req in list(srv.requests):
            rid = caption_to_id.get(extract_caption(req.body["messages"][-1]["content"]))
            if rid in before:
                resent.append(rid)
        committed_after.append(len(_committed_ids(out)))
    srv.requests.clear()
    before = _committed_ids(out)
    proc = _cli(args, env_extra)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    for req in list(srv.requests):
        rid = caption_to_id.get(extract_caption(req.body["messages"][-1]["content"]))
        if rid in before:
            resent.append(rid)
    return {"committed_after_each_kill": committed_after, "resent": resent}


@pytest.mark.parametrize("cache", ["no-cache", "cache"])
def test_five_sigkills_then_resume_equal_an_uninterrupted_run(tmp_path, cache):
    path = write_jsonl(tmp_path / "in.jsonl", _rows())
    extra = ["--concurrency", "4", "--shard-size", "25"]
    env_extra = {}
    if cache == "no-cache":
        extra.append("--no-cache")
    else:
        env_extra["VQA_GEN_CACHE"] = str(tmp_path / "kill-cache.sqlite")
    with FakeOpenAIServer(latency_ms=15, record=True, max_recorded=100_000) as srv:
        ref = tmp_path / "ref"
        proc = _cli([str(path), "--out", str(ref), "--base-url", srv.base_url, "--model", "m",
                     *extra, "--no-cache"])
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        out = tmp_path / "out"
        srv.reset()
        report = kill_and_resume(path, out, srv, kills=5, seed=11, extra=extra,
                                 env_extra=env_extra)
    # the kills really interrupted the run at different points
    counts = report["committed_after_each_kill"]
    assert counts == sorted(counts) and counts[-1] < N_RECORDS - N_RECORDS // 37 - 1, counts
    assert len(set(counts)) >= 3, counts
    # records committed before a kill were never sent again
    assert report["resent"] == []
    assert output_files(out) == output_files(ref)
    manifest = json.loads((out / "manifest.json").read_text())
    ref_manifest = json.loads((ref / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["resumed"]
    for key in ("records_read", "records_done", "records_invalid", "records_failed",
                "qa_generated", "qa_kept", "qa_rejected"):
        assert manifest["counts"][key] == ref_manifest["counts"][key], key
    assert not list(out.glob("*.partial"))


@pytest.mark.parametrize("sealed_before_crash", [0, 1, 2, 3, 4])
def test_a_crash_while_sealing_the_finished_run_resumes_to_the_same_output(
        tmp_path, monkeypatch, sealed_before_crash):
    """The last moment of a run (renaming .partial files to their final names) is the one a
    random kill rarely hits: crash after each rename in turn and resume."""
    from vqa_gen.output import RunWriter
    from vqa_gen.runner import EndpointSettings, Run, RunOptions

    path = write_jsonl(tmp_path / "in.jsonl", _rows(30))
    with FakeOpenAIServer() as srv:
        def run(out: Path) -> dict:
            return Run(RunOptions(input=path, out_dir=out, shard_size=20, use_cache=False,
                                  endpoint=EndpointSettings(base_url=srv.base_url,
                                                            model="m"))).run()

        run(tmp_path / "ref")
        finish = RunWriter.finish

        def crashing_finish(self: RunWriter) -> None:
            for f in self._files[:sealed_before_crash]:
                f.seal()
            raise RuntimeError("simulated crash")

        monkeypatch.setattr(RunWriter, "finish", crashing_finish)
        with pytest.raises(RuntimeError, match="simulated crash"):
            run(tmp_path / "out")
        monkeypatch.setattr(RunWriter, "finish", finish)
        requests = srv.stats["requests"]
        manifest = run(tmp_path / "out")
        assert srv.stats["requests"] == requests  # nothing sent again
    assert manifest["status"] == "complete"
    assert output_files(tmp_path / "out") == output_files(tmp_path / "ref")
