"""Shared fixtures: a real OpenAI-compatible test server on 127.0.0.1, sample data, and an
isolated response cache so tests never touch the user's cache."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from vqa_gen.testing import FakeOpenAIServer

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory,
                    monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path_factory.mktemp("cache") / "responses.sqlite"
    monkeypatch.setenv("VQA_GEN_CACHE", str(path))
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    return path


@pytest.fixture
def fake_server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as srv:
        yield srv


@pytest.fixture
def samples_jsonl() -> Path:
    return SAMPLES / "captions.jsonl"


def write_jsonl(path: Path, rows: list[dict | str]) -> Path:
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write((row if isinstance(row, str) else json.dumps(row)) + "\n")
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def read_shards(out: Path, prefix: str) -> list[dict]:
    rows: list[dict] = []
    for shard in sorted(out.glob(f"{prefix}-*.jsonl")):
        rows.extend(read_jsonl(shard))
    return rows
