"""`vqa-gen run --engine ray`: the same job on Ray Data, on one machine or a cluster.

Why Ray Data: when one machine's client is not enough (or the captions already live on a
cluster), the job belongs on an existing distributed engine rather than on a home-grown one.
The parts are the local ones:

* input: a Ray Data datasource whose read tasks run `records.read_records` (one task per input
  file: JSONL or CSV, one file, many files or a folder), so line numbers, invalid lines and
  duplicate ids are exactly what a local run sees;
* work: `map_batches` over an actor pool; each actor holds one HTTP client (its own
  `--concurrency` calls in flight), the template and the grounding filter, and calls
  `pipeline.process_record` on every record of a batch;
* output: results stream back to the driver in input order (`preserve_order`), where the local
  `RunWriter` commits them: same shard names, fields, progress log, manifest, resume.

Caching: there is no SQLite response cache shared across machines, so a Ray run neither reads
nor writes one. What a rerun does not pay for is the work already committed in the run folder
(resume skips it), and `refilter` re-grades a finished run from the raw replies it stored.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import ray
from ray.data.block import BlockMetadata
from ray.data.datasource import Datasource, ReadTask

from .llm import ChatClient, ClientConfig
from .ordered import ordered_map
from .pipeline import GenerationContext, RecordResult, process_record
from .records import FieldMap, InputItem, read_records
from .runner import (
    CircuitBreaker,
    EndpointDownError,
    ProgressCallback,
    Run,
    RunError,
    RunOptions,
    input_identity,
)
from .templates import load_template

INPUT_SUFFIXES = (".jsonl", ".csv", ".tsv")
LINE_STRIDE = 1_000_000_000
"""Line numbers of the k-th input file are offset by k·LINE_STRIDE in the progress log, so
every input line of a many-file run has its own key (file 0 keeps its own line numbers)."""
READ_BLOCK_ROWS = 1000
READ_CPUS = 0.25
"""CPU reserved by a read task (parsing a file is light next to generating for it)."""


def input_files(path: Path) -> list[Path]:
    """The input files of a run: the file itself, or a folder's .jsonl/.csv/.tsv files, sorted
    (the order fixes line keys and output order)."""
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in INPUT_SUFFIXES
                       and p.is_file())
        if files:
            return files
        raise RunError(f"{path} holds no .jsonl or .csv files")
    raise RunError(f"input not found: {path}")


def _read_file(index: int, path: Path, fields: FieldMap, max_caption_chars: int
               ) -> Iterator[pa.Table]:
    """Blocks of (line key, pickled InputItem) for one input file."""
    lines: list[int] = []
    items: list[bytes] = []
    for item in read_records(path, fields=fields, max_caption_chars=max_caption_chars):
        key = index * LINE_STRIDE + item.line
        if index:
            item = InputItem(key, record=item.record, invalid=item.invalid)
        lines.append(key)
        items.append(pickle.dumps(item))
        if len(lines) >= READ_BLOCK_ROWS:
            yield pa.table({"line": lines, "item": items})
            lines, items = [], []
    if lines:
        yield pa.table({"line": lines, "item": items})


class CaptionDatasource(Datasource):
    """Caption records read by `read_records`, one read task per input file."""

    def __init__(self, paths: list[Path], fields: FieldMap, max_caption_chars: int) -> None:
        self.paths = paths
        self.fields = fields
        self.max_caption_chars = max_caption_chars

    def estimate_inmemory_data_size(self) -> int | None:
        return sum(p.stat().st_size for p in self.paths)

    def get_read_tasks(self, parallelism: int, per_task_row_limit: int | None = None,
                       data_context: Any = None) -> list[ReadTask]:
        tasks = []
        for index, path in enumerate(self.paths):
            meta = BlockMetadata(num_rows=None, size_bytes=path.stat().st_size,
                                 exec_stats=None, input_files=(str(path),))

            def read(index: int = index, path: Path = path, fields: FieldMap = self.fields,
                     limit: int = self.max_caption_chars) -> Iterator[pa.Table]:
                return _read_file(index, path, fields, limit)

            tasks.append(ReadTask(read, meta))
        return tasks


class RecordWorker:
    """One actor of the pool: one client, template, filter and event loop, reused for every
    batch. Records already committed (resume) come back as nothing."""

    def __init__(self, template: str, generation: dict[str, Any], filter: dict[str, Any],
                 client_config: ClientConfig, skip: frozenset[int],
                 retry_lines: frozenset[int]) -> None:
        from .grounding import FilterConfig
        from .pipeline import GenerationSettings

        self.loop = asyncio.new_event_loop()
        self.client = ChatClient(client_config)
        self.loop.run_until_complete(self.client.open())
        self.concurrency = client_config.concurrency
        self.ctx = GenerationContext.build(
            load_template(template), GenerationSettings.model_validate(generation), self.client,
            client_config.model, FilterConfig.model_validate(filter))
        self.retry_ctx = dataclasses.replace(self.ctx, refresh_cache=True)
        self.skip = skip
        self.retry_lines = retry_lines

    async def _work(self, items: list[InputItem]) -> list[RecordResult]:
        async def one(item: InputItem) -> RecordResult:
            ctx = self.retry_ctx if item.line in self.retry_lines else self.ctx
            return await process_record(item, ctx)

        return [r async for r in ordered_map(one, items, concurrency=self.concurrency)]

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[Any]]:
        items = [pickle.loads(x) for line, x in zip(batch["line"], batch["item"], strict=True)
                 if int(line) not in self.skip]
        results = self.loop.run_until_complete(self._work(items))
        return {"line": [r.line for r in results],
                "result": [pickle.dumps(r) for r in results]}


@dataclasses.dataclass(slots=True)
class RaySettings:
    """How the job is spread: `address` of a running cluster (None: start or join a local one),
    `actors` in the pool, records per `map_batches` batch."""

    address: str | None = None
    actors: int = 2
    batch_size: int = 64
    cpus_per_actor: float | None = None
    """CPUs reserved per actor. Default: up to one each, shared out so that the pool and the
    read tasks fit the cluster (an actor pool that does not fit would wait forever)."""


class RayRun(Run):
    """A `Run` whose records are processed by a Ray Data actor pool; the driver writes the
    output folder exactly as the local runner does."""

    def __init__(self, options: RunOptions, ray_settings: RaySettings | None = None) -> None:
        self.inputs = input_files(options.input)
        super().__init__(dataclasses.replace(options, input=self.inputs[0]))
        self.options.input = options.input
        self.ray = ray_settings or RaySettings()

    def settings_snapshot(self) -> dict[str, Any]:
        if len(self.inputs) == 1:
            saved, self.options.input = self.options.input, self.inputs[0]
            try:
                return super().settings_snapshot()  # same identity as a local run
            finally:
                self.options.input = saved
        saved, self.options.input = self.options.input, self.inputs[0]
        try:
            snapshot = super().settings_snapshot()
        finally:
            self.options.input = saved
        snapshot["input"] = [input_identity(p) for p in self.inputs]
        return snapshot

    def manifest(self) -> dict[str, Any]:
        return super().manifest() | {"engine": {
            "name": "ray", "actors": self.ray.actors, "batch_size": self.ray.batch_size,
            "inputs": [str(p) for p in self.inputs]}}

    def _dataset(self, client_config: ClientConfig) -> Any:
        o = self.options
        if not ray.is_initialized():
            ray.init(address=self.ray.address, ignore_reinit_error=True, log_to_driver=False,
                     include_dashboard=False, logging_level=logging.WARNING)
        logging.getLogger("ray.data").setLevel(logging.WARNING)  # our progress bar suffices
        data_ctx = ray.data.DataContext.get_current()
        data_ctx.execution_options.preserve_order = True
        data_ctx.enable_progress_bars = False
        cpus = self.ray.cpus_per_actor
        if cpus is None:
            total = float(ray.cluster_resources().get("CPU", 1.0))
            cpus = min(1.0, (total - READ_CPUS) / self.ray.actors)
            if cpus < 0.01:
                raise RunError(f"{self.ray.actors} actors do not fit the cluster's {total:g} "
                               "CPUs; use fewer --actors")
        ds = ray.data.read_datasource(
            CaptionDatasource(self.inputs, o.fields, o.max_caption_chars),
            num_cpus=READ_CPUS)
        if o.limit is not None:
            ds = ds.limit(o.limit)
        return ds.map_batches(
            RecordWorker, batch_size=self.ray.batch_size, batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=self.ray.actors), num_cpus=cpus,
            fn_constructor_kwargs={
                "template": o.template, "generation": o.generation.model_dump(),
                "filter": o.filter.model_dump(), "client_config": client_config,
                "skip": frozenset(self.writer.committed_lines),
                "retry_lines": frozenset(self.writer.retry_lines)})

    async def _run_with_client(self, client_config: ClientConfig,
                               on_result: ProgressCallback | None) -> None:
        o = self.options
        if o.limit is not None and self.writer.counts.records_read >= o.limit:
            return
        breaker = CircuitBreaker(o.max_consecutive_failures)
        ds = self._dataset(client_config)
        batches = ds.iter_batches(batch_size=None, batch_format="numpy")
        try:
            for batch in batches:
                for payload in batch["result"]:
                    result: RecordResult = pickle.loads(payload)
                    self.writer.commit(result)
                    if on_result is not None:
                        on_result(result, self.writer)
                    if breaker.observe(result):
                        raise EndpointDownError(self._endpoint_down_message(breaker))
                await asyncio.sleep(0)  # let a SIGINT cancel the run between batches
        finally:
            close = getattr(batches, "close", None)
            if close is not None:
                close()


def run_ray(options: RunOptions, ray_settings: RaySettings | None = None,
            on_result: ProgressCallback | None = None) -> dict[str, Any]:
    """Run a job on Ray Data (see the module docstring); returns the manifest."""
    return RayRun(options, ray_settings).run(on_result=on_result)


__all__ = ["CaptionDatasource", "RayRun", "RaySettings", "RecordWorker", "input_files",
           "run_ray"]
