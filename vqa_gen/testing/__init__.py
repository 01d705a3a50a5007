"""Test doubles for vqa-gen: a fake OpenAI-compatible server with injectable latency and faults."""

from vqa_gen.testing.server import (
    ALL_FAULTS,
    DEFAULT_FAULT_MIX,
    FakeOpenAIServer,
    FaultPlan,
    RecordedRequest,
    Responder,
    canned,
    extract_caption,
    qa_from_caption,
    scripted,
    start_subprocess_server,
)

__all__ = [
    "ALL_FAULTS",
    "DEFAULT_FAULT_MIX",
    "FakeOpenAIServer",
    "FaultPlan",
    "RecordedRequest",
    "Responder",
    "canned",
    "extract_caption",
    "qa_from_caption",
    "scripted",
    "start_subprocess_server",
]
