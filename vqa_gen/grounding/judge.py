"""Optional LLM judge: ask the configured model, claim by claim, whether the caption supports,
contradicts or does not mention what the answer says, and fold that into the lexical verdict.

Off by default (`FilterConfig.judge`). Lexical checks cannot see a paraphrase that reverses the
meaning, or a claim contradicted in other words; a capable model can. A weak model cannot, so
this is for users with a capable endpoint. The judge only ever *lowers* a score, so it is asked
only about pairs the lexical filter kept (rejected pairs cost no call). Calls go through any
object with ``async complete(messages, **params) -> Completion`` (e.g. `vqa_gen.llm.ChatClient`)
and are cached like every other call when a cache is given (key: `vqa_gen.cache.cache_key`).

Reason codes: ``judge_contradicted`` (a claim the caption contradicts) and
``judge_unsupported`` (claims the caption does not mention), with penalties from the
``judge`` entry of `FilterConfig.checks` (``contradicted_penalty``, ``unsupported_penalty``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..answers import AnswerFormatError, extract_json
from .config import FilterConfig
from .verdict import Reason, Verdict

LABELS = ("supported", "contradicted", "not_mentioned")

JUDGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "claims": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "claim": {"type": "string"},
                    "label": {"type": "string", "enum": list(LABELS)},
                },
                "required": ["claim", "label"],
                "additionalProperties": False,
            },
        },
    },
    "required": ["claims"],
    "additionalProperties": False,
}

SYSTEM_PROMPT = (
    "You check answers against a source text. Split the ANSWER into its atomic factual "
    "claims (read together with the QUESTION: a bare 'Yes' to 'Is X present?' claims X is "
    "present). For each claim decide, using ONLY the SOURCE text and no outside knowledge:\n"
    "- supported: the source states it or says the same in other words;\n"
    "- contradicted: the source states something incompatible with it;\n"
    "- not_mentioned: the source neither states nor contradicts it.\n"
    'Reply with JSON only: {"claims": [{"claim": "...", "label": "supported"}]}.'
)

DEFAULTS: dict[str, Any] = {
    "contradicted_penalty": 0.8,  # per contradicted claim (compounded)
    "unsupported_penalty": 0.6,  # times the share of claims not mentioned
    "max_tokens": 512,
    "temperature": 0.0,
    "response_format": True,
}

class CompletionSource(Protocol):
    async def complete(self, messages: list[dict[str, str]], **params: Any) -> Any: ...


class CompletionCache(Protocol):
    def get(self, key: str) -> Any: ...

    def put(self, key: str, completion: Any) -> None: ...


@dataclass(slots=True)
class Claim:
    claim: str
    label: str


@dataclass(slots=True)
class JudgeResult:
    """The judge's reading of one QA pair; `error` is set (and `claims` empty) when the reply
    could not be used, in which case the lexical verdict stands unchanged."""

    claims: list[Claim] = field(default_factory=list)
    error: str | None = None
    cached: bool = False


@dataclass(slots=True)
class JudgeStats:
    """What the judge cost in one call of `judge_record` (added to the record's counts)."""

    calls: int = 0
    cache_hits: int = 0
    cache_misses: int = 0
    errors: int = 0
    completions: list[Any] = field(default_factory=list)


def parse_claims(content: str) -> list[Claim]:
    """Claims from the model's reply; tolerant of code fences and text around the JSON.
    Raises ValueError when there is no usable claim list."""
    try:
        data = extract_json(content)
    except AnswerFormatError as err:
        raise ValueError(err.reason) from None
    items = data.get("claims") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise ValueError("no 'claims' list")
    out: list[Claim] = []
    for it in items:
        if not isinstance(it, dict):
            continue
        label = str(it.get("label", "")).strip().lower().replace(" ", "_").replace("-", "_")
        if label not in LABELS:
            continue
        out.append(Claim(claim=str(it.get("claim", ""))[:300], label=label))
    if not out:
        raise ValueError("no claim with a valid label")
    return out


class GroundingJudge:
    """Claim-level LLM verification, combined with a `GroundingFilter`'s lexical verdicts."""

    name = "judge"

    def __init__(self, client: CompletionSource, *, model: str = "",
                 cache: CompletionCache | None = None, config: FilterConfig | None = None,
                 params: dict[str, Any] | None = None) -> None:
        self.client = client
        self.model = model
        self.cache = cache
        settings = (config or FilterConfig()).check("judge")
        self.weight = settings.weight
        self.p: dict[str, Any] = {**DEFAULTS, **settings.params, **(params or {})}

    # -- request -------------------------------------------------------------------------
    def messages(self, caption: str, question: str, answer: str) -> list[dict[str, str]]:
        user = f"SOURCE:\n{caption.strip()}\n\nQUESTION: {question.strip()}\n" \
               f"ANSWER: {answer.strip()}"
        return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]

    def request_params(self) -> dict[str, Any]:
        params: dict[str, Any] = {"temperature": float(self.p["temperature"]),
                                  "max_tokens": int(self.p["max_tokens"])}
        if self.p["response_format"]:
            params["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "claim_verdicts", "strict": False,
                                "schema": JUDGE_SCHEMA}}
        return params

    async def judge(self, caption: str, question: str, answer: str,
                    stats: JudgeStats | None = None) -> JudgeResult:
        """Ask the model (or the cache) about one QA pair. Never raises for a bad reply;
        errors from the client (e.g. `vqa_gen.llm.LLMError`) propagate."""
        from ..cache import cache_key  # late: grounding's import stays free of the client

        stats = stats if stats is not None else JudgeStats()
        messages = self.messages(caption, question, answer)
        params = self.request_params()
        key = cache_key(self.model, messages, params) if self.cache is not None else ""
        completion = self.cache.get(key) if self.cache is not None else None
        cached = completion is not None
        if cached:
            stats.cache_hits += 1
        else:
            completion = await self.client.complete(messages, **params)
            stats.calls += int(getattr(completion, "attempts", 1) or 1)
            stats.completions.append(completion)
            if self.cache is not None:
                stats.cache_misses += 1
        try:
            claims = parse_claims(str(getattr(completion, "content", "") or ""))
        except ValueError as err:
            stats.errors += 1
            return JudgeResult(error=str(err), cached=cached)
        if not cached and self.cache is not None:
            self.cache.put(key, completion)  # only usable replies are kept
        return JudgeResult(claims=claims, cached=cached)

    # -- combining -----------------------------------------------------------------------
    def reasons(self, result: JudgeResult) -> list[Reason]:
        """Penalised reasons for contradicted and not-mentioned claims."""
        if result.error or not result.claims:
            return []
        out: list[Reason] = []
        contra = [c.claim for c in result.claims if c.label == "contradicted"]
        missing = [c.claim for c in result.claims if c.label == "not_mentioned"]
        w = self.weight
        if contra:
            pen = 1 - (1 - float(self.p["contradicted_penalty"])) ** len(contra)
            out.append(Reason(code="judge_contradicted", check=self.name,
                              detail=f"judge: {len(contra)} claim(s) contradicted by the caption",
                              penalty=min(1.0, pen * w), evidence="; ".join(contra)[:300]))
        if missing:
            pen = float(self.p["unsupported_penalty"]) * len(missing) / len(result.claims)
            out.append(Reason(code="judge_unsupported", check=self.name,
                              detail=f"judge: {len(missing)}/{len(result.claims)} claim(s) not "
                                     "in the caption",
                              penalty=min(1.0, pen * w), evidence="; ".join(missing)[:300]))
        return out

    async def judge_record(self, filt: Any, caption: str, pairs: Sequence[tuple[str, str]],
                           verdicts: Sequence[Verdict]) -> tuple[list[Verdict], JudgeStats]:
        """Judge the pairs whose lexical verdict passed and fold the judge's reasons into
        their verdicts with `filt.combine` (same score rule and blocking codes)."""
        stats = JudgeStats()
        out = list(verdicts)
        for i, ((q, a), v) in enumerate(zip(pairs, verdicts, strict=True)):
            if not v.passed:
                continue
            result = await self.judge(caption, q, a, stats)
            extra = self.reasons(result)
            if extra:
                out[i] = filt.combine((*v.reasons, *extra))
        return out, stats
