"""vqa-gen: turn image captions into grounded VQA data with an LLM, and throw away what the LLM
made up.

The public API::

    from vqa_gen import Generator
    with Generator(template="open_vqa") as gen:          # embedded local model
        for result in gen.generate(records):              # dicts or CaptionRecord
            result.kept, result.rejected, result.failure

Names are imported lazily, so `import vqa_gen.testing` or the CLI's `--help` stay fast.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# the library logs to `vqa_gen.*` (retries, re-asks, cache errors, breaker decisions) and leaves
# output to the application: `vqa-gen -v` or `logging.basicConfig(level=logging.INFO)`
logging.getLogger(__name__).addHandler(logging.NullHandler())

_EXPORTS: dict[str, str] = {
    "AnswerFormatError": "answers",
    "QAPair": "answers",
    "Generator": "generator",
    "FilterConfig": "grounding",
    "GroundingFilter": "grounding",
    "Reason": "grounding",
    "Verdict": "grounding",
    "Failure": "pipeline",
    "GenerationContext": "pipeline",
    "GenerationSettings": "pipeline",
    "QASample": "pipeline",
    "RecordResult": "pipeline",
    "process_record": "pipeline",
    "CaptionRecord": "records",
    "InvalidRecord": "records",
    "read_records": "records",
    "Template": "templates",
    "load_template": "templates",
    "Run": "runner",
    "RunOptions": "runner",
    "EndpointSettings": "llm",
}

__all__ = [
    "AnswerFormatError",
    "CaptionRecord",
    "EndpointSettings",
    "Failure",
    "FilterConfig",
    "GenerationContext",
    "GenerationSettings",
    "Generator",
    "GroundingFilter",
    "InvalidRecord",
    "QAPair",
    "QASample",
    "Reason",
    "RecordResult",
    "Run",
    "RunOptions",
    "Template",
    "Verdict",
    "__version__",
    "load_template",
    "process_record",
    "read_records",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'vqa_gen' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from .answers import AnswerFormatError, QAPair
    from .generator import Generator
    from .grounding import FilterConfig, GroundingFilter, Reason, Verdict
    from .llm import EndpointSettings
    from .pipeline import (
        Failure,
        GenerationContext,
        GenerationSettings,
        QASample,
        RecordResult,
        process_record,
    )
    from .records import CaptionRecord, InvalidRecord, read_records
    from .runner import Run, RunOptions
    from .templates import Template, load_template
