"""Test doubles for vqa-gen: a fake OpenAI-compatible server with injectable latency and faults.

Everything `vqa_gen.testing.server` exports (its `__all__`) is importable from here."""

from vqa_gen.testing import server as _server
from vqa_gen.testing.server import *  # noqa: F403

__all__ = list(_server.__all__)
