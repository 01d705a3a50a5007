"""Grading in worker processes (issue 9): same bytes as in-process, replies batched, workers
gone after the run and after the main process is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import write_jsonl

from vqa_gen.grounding import COMPILED
from vqa_gen.runner import EndpointSettings, Run, RunOptions
from vqa_gen.testing import FakeOpenAIServer, scripted
from vqa_gen.testing.realistic import captions, realistic_responder

ROOT = Path(__file__).resolve().parents[1]


def _run(url: str, inp: Path, out: Path, workers: int, **kw) -> tuple[Run, dict]:
    run = Run(RunOptions(input=inp, out_dir=out, workers=workers,
                         endpoint=EndpointSettings(base_url=url, model="m", concurrency=16),
                         **kw))
    return run, run.run()


def _files(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.glob("*.jsonl"))}


@pytest.fixture
def realistic_server():
    with FakeOpenAIServer(responder=realistic_responder) as srv:
        yield srv


def test_output_is_byte_identical_with_one_and_three_workers(realistic_server, tmp_path):
    rows = list(captions(150, seed=3))
    rows[7] = {"id": "bad"}  # invalid line: accounted for the same way
    inp = write_jsonl(tmp_path / "in.jsonl", rows)
    outs = {}
    graded = {}
    for n in (1, 3):
        run, manifest = _run(realistic_server.base_url, inp, tmp_path / f"w{n}", n,
                             use_cache=False, shard_size=200)
        outs[n] = _files(tmp_path / f"w{n}")
        graded[n] = (run.last_pool_graded, run.last_graded_here)
        assert manifest["counts"]["records_read"] == 150
    assert graded[1] == (0, 0)  # in-process, no pool
    # with a pool: every valid record graded once, by the workers once they were ready
    assert sum(graded[3]) == 149 and graded[3][0] > 100, graded
    assert outs[1] == outs[3]
    assert len(outs[1]) >= 4  # data and rejected shards, invalid, failed
    kept = outs[1]["data-00000.jsonl"].count(b"\n")
    rejected = outs[1]["rejected-00000.jsonl"].count(b"\n")
    assert kept > 50 and rejected > 50  # realistic replies exercise both outcomes


def test_pool_batches_replies_and_counts_every_record(realistic_server, tmp_path):
    inp = write_jsonl(tmp_path / "in.jsonl", list(captions(120, seed=5)))
    run = Run(RunOptions(input=inp, out_dir=tmp_path / "out", workers=2, use_cache=False,
                         endpoint=EndpointSettings(base_url=realistic_server.base_url,
                                                   model="m", concurrency=32)))
    seen: list[tuple[int, int]] = []
    manifest = run.run(on_result=lambda r, w: seen.append(
        (run.pool.graded, run.pool.batches) if run.pool else (0, 0)))
    graded, batches = seen[-1]
    assert graded == run.last_pool_graded
    # every reply graded once: in the pool, or here before a worker was ready
    assert graded + run.last_graded_here == 120 and graded > 60
    assert batches < graded  # several replies per batch
    c = manifest["counts"]
    assert c["records_done"] == 120 and c["qa_generated"] == c["qa_kept"] + c["qa_rejected"]


def test_unusable_reply_from_a_worker_is_reasked(tmp_path):
    good = realistic_responder
    with FakeOpenAIServer(responder=scripted(["not json at all"], then=good)) as srv:
        inp = write_jsonl(tmp_path / "in.jsonl", list(captions(3, seed=1)))
        _, manifest = _run(srv.base_url, inp, tmp_path / "out", 2, use_cache=False)
    c = manifest["counts"]
    assert c["records_done"] == 3 and c["records_failed"] == 0
    assert c["reasks"] == 1


def _children(pid: int) -> set[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True,
                         text=True).stdout
    return {int(x) for x in out.split()}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc and ps")
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT])
def test_stopping_the_main_process_leaves_no_worker(tmp_path, sig):
    with FakeOpenAIServer(latency_ms=200) as srv:
        inp = write_jsonl(tmp_path / "in.jsonl", list(captions(2000, seed=2)))
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        proc = subprocess.Popen(
            [sys.executable, "-m", "vqa_gen", "run", str(inp), "--out", str(tmp_path / "out"),
             "--base-url", srv.base_url, "--model", "m", "--workers", "2", "--no-cache", "-q",
             "--concurrency", "4"], env=env, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        try:
            workers: set[int] = set()
            for _ in range(200):  # the workers are up once the first calls arrive
                workers = _children(proc.pid)
                if len(workers) >= 2 and srv.stats["requests"] > 0:
                    break
                time.sleep(0.05)
            assert len(workers) >= 2
            proc.send_signal(sig)
            proc.wait(30)
            for _ in range(100):
                if not any(_alive(p) for p in workers):
                    break
                time.sleep(0.05)
            assert not any(_alive(p) for p in workers)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_workers_are_stopped_when_the_run_ends(realistic_server, tmp_path):
    inp = write_jsonl(tmp_path / "in.jsonl", list(captions(10, seed=4)))
    before = _children(os.getpid())
    _run(realistic_server.base_url, inp, tmp_path / "out", 2, use_cache=False)
    assert not any(_alive(p) for p in _children(os.getpid()) - before)


@pytest.mark.parametrize("template", ["open_vqa", "demographics"])
@pytest.mark.skipif(COMPILED, reason="counts calls by patching the analyser, which a compiled "
                    "build's native class does not allow (the source build runs it)")
def test_caption_analysed_once_per_record_in_process(realistic_server, template):
    """The template's `demographics` (read only by templates that use it) and the filter share
    one analysis of the caption."""
    import asyncio

    from vqa_gen.llm import ChatClient, ClientConfig
    from vqa_gen.pipeline import GenerationContext, GenerationSettings, process_record
    from vqa_gen.records import CaptionRecord, InputItem
    from vqa_gen.templates import load_template

    records = [CaptionRecord(id=f"r{i}", caption=c, modality="clinical") for i, c in enumerate(
        ["Psoriasis on the elbows of a 54-year-old man.", "Tinea corporis in a girl.",
         "Lichen planus: violaceous papules on the wrist."])]
    analysed: list[str] = []

    async def go() -> list:
        cfg = ClientConfig(base_url=realistic_server.base_url, model="m")
        async with ChatClient(cfg) as client:
            ctx = GenerationContext.build(load_template(template), GenerationSettings(),
                                          client, "m")
            caption = ctx.grounding.analyser.caption
            ctx.grounding.analyser.caption = (  # count, then analyse as usual
                lambda text, meta=None: analysed.append(text) or caption(text, meta))
            return [await process_record(InputItem(i, record=r), ctx)
                    for i, r in enumerate(records)]

    results = asyncio.run(go())
    # templates have no analyser of their own: every analysis went through the filter's
    assert all(r.status == "done" for r in results)
    assert sum(len(r.kept) + len(r.rejected) for r in results) > 0
    assert analysed == [r.caption for r in records]  # once each, in order


def _pool_spec(template: str = "open_vqa"):
    from vqa_gen.grounding import FilterConfig
    from vqa_gen.pipeline import GenerationSettings
    from vqa_gen.templates import load_template
    from vqa_gen.workers import WorkerSpec

    return WorkerSpec(load_template(template), GenerationSettings(), FilterConfig(), "m")


def _replies(n: int, seed: int) -> list:
    from vqa_gen.records import CaptionRecord
    from vqa_gen.testing.realistic import realistic_reply

    out = []
    for c in captions(n, seed=seed):
        record = CaptionRecord(id=c["id"], caption=c["caption"], image=c.get("image"),
                               modality=c.get("modality"))
        out.append((record, realistic_reply(record.caption)))
    return out


def _lines(graded: tuple[list, list]) -> tuple[list[bytes], list[bytes]]:
    return [s.to_line() for s in graded[0]], [s.to_line() for s in graded[1]]


def _wait_for(path: Path):
    """A worker warm-up that lasts until `path` exists (a slow start, on the test's cue)."""
    from vqa_gen.workers import warm_up

    def warm(ctx: dict) -> None:
        while not path.exists():
            time.sleep(0.005)
        warm_up(ctx)

    return warm


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the pool forks")
def test_replies_are_graded_here_until_a_worker_is_ready(tmp_path):
    """The start of a run is not held back by workers that are not up yet (forked, warming
    up): their replies are graded in the main process, with the same result."""
    import asyncio

    from vqa_gen.pipeline import grade_reply
    from vqa_gen.workers import WorkerPool

    jobs = _replies(12, seed=6)
    go_ahead = tmp_path / "warm"
    pool = WorkerPool(_pool_spec(), 2, warm_up=_wait_for(go_ahead)).start()

    async def go() -> list:
        # (a pool that sent them to the workers still warming up would not answer)
        first = [await asyncio.wait_for(pool.grade(r, c), 30) for r, c in jobs[:6]]
        assert (pool.ready(), pool.graded_here, pool.graded) == (0, 6, 0)
        go_ahead.touch()
        for _ in range(1000):
            if pool.ready() == 2:
                break
            await asyncio.sleep(0.01)
        rest = await asyncio.gather(*(pool.grade(r, c) for r, c in jobs[6:]))
        assert (pool.graded_here, pool.graded) == (6, 6)
        return first + list(rest)

    try:
        graded = asyncio.run(go())
    finally:
        pool.close()
    ctx = pool.context
    expected = [_lines(grade_reply(r, c, **ctx)) for r, c in jobs]
    assert [_lines(g) for g in graded] == expected
    assert not any(_alive(p) for p in pool.pids)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="kills a worker")
def test_a_worker_killed_during_a_run_loses_nothing(realistic_server, tmp_path, caplog):
    """Its replies in flight are graded in the main process; the output is the same."""
    inp = write_jsonl(tmp_path / "in.jsonl", list(captions(200, seed=8)))
    _run(realistic_server.base_url, inp, tmp_path / "w1", 1, use_cache=False)
    run = Run(RunOptions(input=inp, out_dir=tmp_path / "w2", workers=2, use_cache=False,
                         endpoint=EndpointSettings(base_url=realistic_server.base_url,
                                                   model="m", concurrency=32)))
    killed: list[int] = []

    def kill_one(result, writer) -> None:
        if writer.counts.records_done == 40 and run.pool is not None:
            killed.append(run.pool.pids[0])
            os.kill(killed[0], signal.SIGKILL)

    with caplog.at_level("WARNING", logger="vqa_gen.workers"):
        manifest = run.run(on_result=kill_one)
    assert manifest["status"] == "complete" and manifest["counts"]["records_done"] == 200
    assert _files(tmp_path / "w2") == _files(tmp_path / "w1")
    assert run.last_pool_graded + run.last_graded_here == 200
    assert len(killed) == 1 and not _alive(killed[0])
    warnings = [r.getMessage() for r in caplog.records if "exited unexpectedly" in r.getMessage()]
    assert len(warnings) == 1 and str(killed[0]) in warnings[0] and "signal 9" in warnings[0]


def test_the_pool_is_the_default_on_several_cores(realistic_server, tmp_path):
    from vqa_gen.workers import available, default_workers

    inp = write_jsonl(tmp_path / "in.jsonl", list(captions(30, seed=9)))
    run = Run(RunOptions(input=inp, out_dir=tmp_path / "out", use_cache=False,
                         endpoint=EndpointSettings(base_url=realistic_server.base_url,
                                                   model="m")))
    expected = default_workers() if available() else 1
    assert run.worker_count() == expected
    run.run()
    graded = run.last_pool_graded + run.last_graded_here
    assert graded == (30 if expected > 1 else 0)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the pool forks")
@pytest.mark.parametrize("api", ["sync", "async"])
def test_generator_with_workers_gives_the_same_results(realistic_server, api):
    """Opt-in pool for the importable API: the same QASamples, verdicts included."""
    import asyncio

    from vqa_gen import Generator
    from vqa_gen.pipeline import QASample

    rows = list(captions(40, seed=10))
    rows[3] = {"id": "no-caption"}

    def results(workers: int) -> list:
        with Generator(base_url=realistic_server.base_url, model="m", concurrency=8,
                       workers=workers) as gen:
            if api == "sync":
                out = list(gen.generate(rows))
            else:
                async def collect() -> list:
                    return [r async for r in gen.agenerate(rows)]

                out = asyncio.run(collect())
        graded[workers] = gen.last_pool_graded
        return out

    graded: dict[int, tuple[int, int]] = {}

    before = _children(os.getpid())
    one, two = results(1), results(2)
    assert not any(_alive(p) for p in _children(os.getpid()) - before)  # pool closed
    assert graded[1] == (0, 0) and sum(graded[2]) == 39 and graded[2][0] > 0, graded
    assert [r.status for r in one] == [r.status for r in two]
    assert two[3].status == "invalid"
    samples = [s for r in two for s in r.kept + r.rejected]
    assert len(samples) > 100 and all(isinstance(s, QASample) for s in samples)

    def dump(results: list) -> list:
        return [([s.to_dict() for s in r.kept], [s.to_dict() for s in r.rejected])
                for r in results]

    assert dump(one) == dump(two)
