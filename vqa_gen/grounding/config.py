"""Filter configuration: a strictness preset plus per-check overrides.

`FilterConfig.model_dump()` is written to the run manifest, so after validation every value the
filter uses (threshold, blocking codes, each check's weight and params) is concrete.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..errors import FilterConfigError

Strictness = Literal["lenient", "default", "strict"]

CHECK_NAMES: tuple[str, ...] = ("empty", "form", "leakage", "content", "numbers",
                                "demographics", "negation", "answerability", "relevance",
                                "duplicates", "echo",
                                "judge")

# Blocking codes fail a pair whatever its score. The VQA-only rules (form, leakage, an
# unanswerable topic such as treatment or prognosis) block without lowering the score, so the
# score keeps ranking how well the evidence supports the answer.
_BASE_BLOCKING = ["empty_answer", "empty_question", "malformed_question", "refusal",
                  "text_leakage", "duplicate_question", "answer_mismatch",
                  "unanswerable_question", "degenerate_answer", "duplicate_answer",
                  "answer_is_question", "self_contradiction", "vacuous_question",
                  "example_echo"]
_STRICT_EXTRA = ["negation_conflict", "sex_mismatch", "age_mismatch", "laterality_mismatch",
                 "site_mismatch", "number_mismatch"]

PRESETS: dict[str, dict[str, Any]] = {
    "lenient": {"threshold": 0.3, "penalty_scale": 0.8, "blocking_codes": _BASE_BLOCKING,
                "fuzzy_cutoff": 85.0, "duplicate_threshold": 95.0},
    "default": {"threshold": 0.45, "penalty_scale": 1.0, "blocking_codes": _BASE_BLOCKING,
                "fuzzy_cutoff": 88.0, "duplicate_threshold": 90.0},
    "strict": {"threshold": 0.65, "penalty_scale": 1.25,
               "blocking_codes": _BASE_BLOCKING + _STRICT_EXTRA,
               "fuzzy_cutoff": 92.0, "duplicate_threshold": 85.0},
}


class CheckSettings(BaseModel):
    """One check: on/off, a multiplier on its penalties, and free-form params."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    weight: float = Field(1.0, ge=0.0)
    params: dict[str, Any] = Field(default_factory=dict)


class FilterConfig(BaseModel):
    """Grounding-filter settings. Unset fields are filled from the `strictness` preset."""

    model_config = ConfigDict(extra="forbid", validate_assignment=False)

    strictness: Strictness = "default"
    threshold: float | None = Field(None, ge=0.0, le=1.0)
    penalty_scale: float | None = Field(None, ge=0.0)
    blocking_codes: list[str] | None = None
    fuzzy_cutoff: float | None = Field(None, ge=0.0, le=100.0)
    duplicate_threshold: float | None = Field(None, ge=0.0, le=100.0)
    checks: dict[str, CheckSettings] = Field(default_factory=dict)
    judge: bool = False
    """Also ask the model, claim by claim, whether the caption supports each kept answer
    (`grounding.judge`); costs one call per kept QA pair (cached)."""

    @model_validator(mode="after")
    def _fill_from_preset(self) -> FilterConfig:
        preset = PRESETS[self.strictness]
        for name in ("threshold", "penalty_scale", "blocking_codes", "fuzzy_cutoff",
                     "duplicate_threshold"):
            if getattr(self, name) is None:
                val = preset[name]
                object.__setattr__(self, name, list(val) if isinstance(val, list) else val)
        unknown = set(self.checks) - set(CHECK_NAMES)
        if unknown:
            raise ValueError(f"unknown check(s): {sorted(unknown)}; known: {list(CHECK_NAMES)}")
        for name in CHECK_NAMES:
            self.checks.setdefault(name, CheckSettings())
        return self

    def check(self, name: str) -> CheckSettings:
        """Settings of one check (always present after validation)."""
        return self.checks[name]



def describe_filter_error(err: ValidationError, source: str) -> str:
    """`SOURCE: field 'threshold': ... (got 2)`: the field, what is wrong, the value given and,
    where known, the allowed values or keys (pydantic's own message spans lines, names no
    file)."""
    e = err.errors()[0]
    loc = [str(p) for p in e.get("loc", ())]
    field = ".".join(loc) or "settings"
    msg = str(e.get("msg", "invalid")).removeprefix("Value error, ")
    if e.get("type") == "extra_forbidden":
        model: Any = CheckSettings if len(loc) >= 3 and loc[0] == "checks" else FilterConfig
        msg = f"unknown setting (known: {', '.join(model.model_fields)})"
    elif "input" in e and e.get("type") != "value_error":
        msg += f" (got {e['input']!r})"
    return f"{source}: field '{field}': {msg}"


def validate_filter_config(data: FilterConfig | Mapping[str, Any] | None = None, *,
                           source: str = "filter settings") -> FilterConfig:
    """Filter settings from a mapping (the CLI's flags and file, or an API caller's dict);
    raises `FilterConfigError` with one line naming `source`, the field and what it accepts."""
    if isinstance(data, FilterConfig):
        return data
    try:
        return FilterConfig.model_validate(dict(data or {}))
    except ValidationError as err:
        raise FilterConfigError(describe_filter_error(err, source)) from None
