"""The per-record work: record → prompt → LLM → QA pairs → grounding verdicts.

`process_record(item, ctx)` is a plain async function of its inputs with no global state, so the
batch runner, the `Generator` API and a distributed engine (one context per worker or shard) all
call the same thing. Writing output is somebody else's job: this module only returns results.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from .answers import AnswerFormatError, QAPair, response_format_for
from .cache import cache_key
from .grounding import Example, FilterConfig, GroundingFilter, GroundingJudge, Reason, Verdict
from .grounding.lexicon import TASK_REFUSAL_CUES
from .llm import Completion, LLMError, Usage
from .output import dumps_line
from .records import CaptionRecord, InputItem, InvalidRecord
from .templates import Template

log = logging.getLogger(__name__)

Status = Literal["done", "failed", "invalid"]
MAX_REASK_ECHO = 1500
"""Characters of a bad reply echoed back in a re-ask: enough to show the mistake, small
enough to keep the re-ask inside a small model's context."""


class GenerationSettings(BaseModel):
    """Everything that shapes the generated text (and so belongs in a cache key and manifest)."""

    model_config = ConfigDict(extra="forbid")

    qa_per_caption: int | None = Field(default=None, ge=1, le=50)
    temperature: float = Field(default=0.7, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    seed: int = 0
    max_tokens: int = Field(default=1024, ge=16)
    max_reasks: int = Field(default=2, ge=0, le=10)
    response_format: bool = True


@dataclass(slots=True)
class QASample:
    """One QA pair with its provenance and grounding verdict (a line of the output)."""

    id: str
    record_id: str
    image: str | None
    modality: str | None
    question: str
    answer: str
    type: str
    template: str
    model: str
    grounding: Verdict
    index: int
    extra: dict[str, Any] = field(default_factory=dict)
    """Format-specific fields (`options`, `answer_index`, `conversation`, …; see formats.py)."""

    def to_line(self) -> bytes:
        """The output line (JSON + newline)."""
        return dumps_line(self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "record_id": self.record_id, "image": self.image,
                "modality": self.modality, "question": self.question, "answer": self.answer,
                "type": self.type, "template": self.template, "model": self.model,
                **self.extra, "grounding": self.grounding.to_dict()}


@dataclass(slots=True)
class Failure:
    """Why a record produced no QA: a stable `kind` and a one-line message."""

    kind: str
    message: str
    attempts: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "message": self.message, "attempts": self.attempts}


@dataclass(slots=True)
class RecordResult:
    """Where one input line ended: kept and rejected QA, a failure, or invalid input."""

    line: int
    record: CaptionRecord | None
    kept: list[QASample] = field(default_factory=list)
    rejected: list[QASample] = field(default_factory=list)
    failure: Failure | None = None
    invalid: InvalidRecord | None = None
    usage: Usage = field(default_factory=Usage)
    calls: int = 0
    reasks: int = 0
    retries: int = 0
    """HTTP attempts beyond the first (429, 5xx, timeouts ...); part of `calls`."""
    cache_hits: int = 0
    cache_misses: int = 0
    raw_responses: list[str] = field(default_factory=list)
    skipped: str | None = None
    """Why the template does not apply to this record (done, with zero QA and no call)."""

    @property
    def status(self) -> Status:
        if self.invalid is not None:
            return "invalid"
        if self.failure is not None:
            return "failed"
        return "done"

    @property
    def record_id(self) -> str | None:
        if self.record is not None:
            return self.record.id
        return self.invalid.record_id if self.invalid else None


class CompletionCache(Protocol):
    """Where raw completions are kept so that a rerun pays nothing (see vqa_gen.cache)."""

    def get(self, key: str) -> Completion | None: ...

    def put(self, key: str, completion: Completion) -> None: ...


class CompletionSource(Protocol):
    async def complete(self, messages: list[dict[str, str]], **params: Any) -> Completion: ...


class ReplyGrader(Protocol):
    """Grades replies somewhere else (worker processes): the same (kept, rejected) split as
    `grade_reply`, each QA possibly already serialised (`workers.QALine`: its output line and
    index, all the run writer needs); raises AnswerFormatError for an unusable reply."""

    async def grade(self, record: CaptionRecord, content: str
                    ) -> tuple[list[Any], list[Any]]: ...


@dataclass(slots=True)
class GenerationContext:
    """What `process_record` needs, built once per run (or per worker)."""

    template: Template
    settings: GenerationSettings
    client: CompletionSource
    grounding: GroundingFilter
    model: str
    cache: CompletionCache | None = None
    refresh_cache: bool = False
    """Read no cached reply (new replies are still stored): for records retried with
    `--retry-failed`, whose cached replies are the ones that failed."""
    judge: GroundingJudge | None = None
    """The optional LLM judge (`FilterConfig.judge`), asked about every lexically kept pair."""
    grader: ReplyGrader | None = None
    """Where parse + ground + serialise run (a worker pool, vqa_gen.workers); None: in this
    process. Not used with the LLM judge, which needs the verdicts here."""
    _static_params: dict[str, Any] | None = field(default=None, init=False, repr=False)

    def request_params(self, record: CaptionRecord) -> dict[str, Any]:
        """`request_params` for this run's template and settings; the parts that are the same
        for every record (the JSON schema above all) are built once per context."""
        static = self._static_params
        if static is None:
            static = self._static_params = request_params(self.template, self.settings, None)
        params = {"temperature": static["temperature"], "max_tokens": static["max_tokens"],
                  "seed": record_seed(self.settings.seed, record.id)}
        params.update(static)  # same key order as `request_params` (the request body's)
        return params

    @classmethod
    def build(cls, template: Template, settings: GenerationSettings, client: CompletionSource,
              model: str, filter_config: FilterConfig | None = None,
              cache: CompletionCache | None = None,
              grounding: GroundingFilter | None = None) -> GenerationContext:
        """`grounding`: a filter already built for `filter_config` (built here otherwise)."""
        cfg = filter_config or FilterConfig()
        judge = (GroundingJudge(client, model=model, cache=cache, config=cfg) if cfg.judge
                 else None)
        return cls(template=template, settings=settings, client=client,
                   grounding=grounding or GroundingFilter(cfg), model=model, cache=cache,
                   judge=judge)


def record_seed(seed: int, record_id: str) -> int:
    """A per-record sampling seed: stable whatever order records are processed in."""
    digest = hashlib.blake2b(f"{seed}\x1f{record_id}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") & 0x7FFFFFFF


def qa_id(record_id: str, template: str, index: int) -> str:
    """Stable, readable QA id: the same record, template and position give the same id."""
    return f"{record_id}/{template}/{index}"


def request_params(template: Template, s: GenerationSettings, record: CaptionRecord | None
                   ) -> dict[str, Any]:
    """Generation parameters sent with every call for this record (without `seed` when no
    record is given)."""
    n = template.qa_count(template_vars(s))
    params: dict[str, Any] = {"temperature": s.temperature, "max_tokens": s.max_tokens}
    if record is not None:
        params["seed"] = record_seed(s.seed, record.id)
    if s.top_p is not None:
        params["top_p"] = s.top_p
    if s.response_format:
        params["response_format"] = response_format_for(template.schema(n), template.output)
    return params


def template_vars(settings: GenerationSettings) -> dict[str, Any]:
    """Variables the settings pass to the template (over the template's own defaults)."""
    if settings.qa_per_caption is not None:
        return {"qa_per_caption": settings.qa_per_caption}
    return {}


def _reask_message(err: AnswerFormatError, finish_reason: str | None) -> str:
    if finish_reason == "length":
        return ("Your reply was cut off before the JSON was complete. Reply again with fewer, "
                "shorter pairs, as one complete JSON object and nothing else.")
    return (f"Your reply could not be used: {err.reason}. Reply again with only the JSON "
            "object in the requested form, and nothing else.")


async def _complete(ctx: GenerationContext, messages: list[dict[str, str]],
                    params: dict[str, Any], result: RecordResult) -> Completion:
    key = cache_key(ctx.model, messages, params) if ctx.cache is not None else ""
    if ctx.cache is not None and not ctx.refresh_cache:
        hit = ctx.cache.get(key)
        if hit is not None:
            result.cache_hits += 1
            return hit
    completion = await ctx.client.complete(messages, **params)
    result.calls += completion.attempts
    result.retries += max(0, completion.attempts - 1)
    result.usage.add(completion.usage)
    if ctx.cache is not None:
        result.cache_misses += 1
        ctx.cache.put(key, completion)
    return completion


_REFUSAL_RE = re.compile("|".join(f"(?:{p})" for p in TASK_REFUSAL_CUES), re.I)


def looks_like_refusal(text: str) -> bool:
    """A reply that declines the task instead of answering (checked once the re-asks ran out,
    so such a record fails with kind `refusal` rather than `invalid_json`)."""
    return bool(_REFUSAL_RE.search(text[:2000]))


def _unique_pairs(pairs: list[QAPair]) -> list[QAPair]:
    seen: set[tuple[str, str]] = set()
    out = []
    for p in pairs:
        key = (p.question.casefold(), p.answer.casefold())
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out


DESCRIPTION_GROUNDING_QUESTION = "What does the image show?"


def _combine_turns(verdicts: list[Verdict]) -> Verdict:
    """One verdict for a conversation: every turn's reasons (prefixed with the turn), passed
    only if every turn passed, score the lowest turn score."""
    reasons = tuple(Reason(code=r.code, check=r.check, detail=f"turn {i + 1}: {r.detail}",
                           penalty=r.penalty, evidence=r.evidence)
                    for i, v in enumerate(verdicts) for r in v.reasons)
    return Verdict(score=min((v.score for v in verdicts), default=1.0),
                   passed=all(v.passed for v in verdicts), reasons=reasons)


def worked_examples(template: Template, modality: str | None) -> tuple[Example, ...]:
    """The template's few-shot examples for a modality as the grounding filter reads them
    (its `example_echo` rule): each caption with the answers its reply gives, every turn of a
    conversation. A reply that does not parse in the template's answer format gives none."""
    out = []
    for ex in template.examples_for(modality):
        try:
            pairs = template.parse(ex["reply"])
        except AnswerFormatError:  # (a malformed example teaches nothing to compare with)
            continue
        answers = [str(t.get("answer", "")) for p in pairs
                   for t in (p.extra.get("conversation") or [{"answer": p.answer}])]
        out.append(Example(ex["caption"], tuple(a for a in answers if a)))
    return tuple(out)


def judge_pairs(record: CaptionRecord, pairs: list[QAPair], *, template: Template,
                grounding: GroundingFilter, model: str
                ) -> tuple[list[QASample], list[QASample]]:
    """Ground every pair against the caption (and meta) and split into kept and rejected.

    What is grounded follows the answer format: the (question, answer) of a pair (for multiple
    choice the answer is the correct option's text), every turn of a conversation. Takes only
    what grading needs, so refiltering and worker processes call it without a client."""
    pairs = _unique_pairs(pairs)
    units: list[tuple[int, str, str, str]] = []  # (pair index, question, answer, type)
    for i, p in enumerate(pairs):
        turns = p.extra.get("conversation")
        if turns:
            units.extend((i, t["question"], t["answer"], p.type) for t in turns)
        elif template.output == "description":
            # the instruction is ours, not the model's: ground the description alone
            units.append((i, DESCRIPTION_GROUNDING_QUESTION, p.answer, p.type))
        else:
            units.append((i, p.question, p.answer, p.type))
    unit_verdicts = grounding.check_record(
        record.caption, [(q, a) for _, q, a, _ in units], meta=record.meta or None,
        qa_types=[t for *_, t in units], examples=worked_examples(template, record.modality),
    )
    per_pair: list[list[Verdict]] = [[] for _ in pairs]
    for (i, *_), v in zip(units, unit_verdicts, strict=True):
        per_pair[i].append(v)
    kept: list[QASample] = []
    rejected: list[QASample] = []
    name = template.name
    for index, (pair, verdicts) in enumerate(zip(pairs, per_pair, strict=True)):
        extra = dict(pair.extra)
        if extra.get("conversation"):
            extra["conversation"] = [{**t, "grounding": v.to_dict()}
                                     for t, v in zip(extra["conversation"], verdicts,
                                                     strict=True)]
            verdict = _combine_turns(verdicts)
        else:
            verdict = verdicts[0]
        sample = QASample(id=qa_id(record.id, name, index), record_id=record.id,
                          image=record.image, modality=record.modality,
                          question=pair.question, answer=pair.answer, type=pair.type,
                          template=name, model=model, grounding=verdict, index=index,
                          extra=extra)
        (kept if verdict.passed else rejected).append(sample)
    return kept, rejected


def grade_reply(record: CaptionRecord, content: str, *, template: Template,
                grounding: GroundingFilter, model: str, seed: int
                ) -> tuple[list[QASample], list[QASample]]:
    """Parse one reply and ground its pairs: (kept, rejected). Raises AnswerFormatError when
    the reply is unusable (the caller re-asks). Pure CPU work on picklable inputs and outputs,
    taking only what grading needs, so a worker process runs it without a client or context
    (see vqa_gen.workers)."""
    pairs = template.finalize(template.parse(content), record_seed(seed, record.id))
    return judge_pairs(record, pairs, template=template, grounding=grounding, model=model)


async def apply_llm_judge(record: CaptionRecord, result: RecordResult,
                          ctx: GenerationContext) -> None:
    """Ask the optional LLM judge about the kept pairs; those it flags below threshold (or with
    a blocking code) move to `rejected`. Calls, cache use and tokens count in `result`."""
    assert ctx.judge is not None
    kept = result.kept
    verdicts, stats = await ctx.judge.judge_record(
        ctx.grounding, record.caption, [(s.question, s.answer) for s in kept],
        [s.grounding for s in kept])
    result.calls += stats.calls
    result.cache_hits += stats.cache_hits
    result.cache_misses += stats.cache_misses
    for completion in stats.completions:
        result.usage.add(completion.usage)
    still: list[QASample] = []
    for sample, verdict in zip(kept, verdicts, strict=True):
        sample.grounding = verdict
        (still if verdict.passed else result.rejected).append(sample)
    result.kept = still
    result.rejected.sort(key=lambda s: s.index)


async def process_record(item: InputItem, ctx: GenerationContext) -> RecordResult:
    """Generate and ground the QA of one input item. Never raises for an expected fault: the
    result says whether the record was done, failed (with why) or invalid."""
    if item.record is None:
        return RecordResult(line=item.line, record=None, invalid=item.invalid)
    record = item.record
    result = RecordResult(line=item.line, record=record)
    try:
        tvars = template_vars(ctx.settings)
        # the caption is analysed once per record: if the template reads `demographics`, it
        # gets the filter's analysis, which the filter reuses when grading in this process
        analyse = ctx.grounding.caption_facts
        result.skipped = ctx.template.skip_reason(record, analyse=analyse, **tvars)
        if result.skipped is not None:
            return result
        messages = ctx.template.render(record, analyse=analyse, **tvars)
    except ValueError as err:
        result.failure = Failure("template_error", str(err))
        return result
    params = ctx.request_params(record)
    last_error: AnswerFormatError | None = None
    for attempt in range(ctx.settings.max_reasks + 1):
        try:
            completion = await _complete(ctx, messages, params, result)
        except LLMError as err:
            result.calls += err.attempts
            result.retries += max(0, err.attempts - 1)
            result.failure = Failure(err.kind, str(err), attempts=result.calls)
            return result
        result.raw_responses.append(completion.content)
        try:
            if ctx.grader is not None and ctx.judge is None:
                graded = await ctx.grader.grade(record, completion.content)
            else:
                graded = grade_reply(record, completion.content, template=ctx.template,
                                     grounding=ctx.grounding, model=ctx.model,
                                     seed=ctx.settings.seed)
        except AnswerFormatError as err:
            last_error = err
            if attempt == ctx.settings.max_reasks:
                break
            result.reasks += 1
            log.info("record %s: re-asking (%s: %s)", record.id, err.code, err.reason)
            messages = [*messages,
                        {"role": "assistant", "content": completion.content[:MAX_REASK_ECHO]},
                        {"role": "user", "content": _reask_message(err, completion.finish_reason)}]
            continue
        result.kept, result.rejected = graded
        if ctx.judge is not None and result.kept:
            try:
                await apply_llm_judge(record, result, ctx)
            except LLMError as err:
                result.kept, result.rejected = [], []
                result.failure = Failure(err.kind, f"LLM judge: {err}", attempts=result.calls)
        return result
    assert last_error is not None
    kind = "truncated" if completion.finish_reason == "length" else last_error.code
    if kind in ("invalid_json", "empty_reply") and looks_like_refusal(completion.content):
        kind = "refusal"
    result.failure = Failure(
        kind, f"no usable answer after {ctx.settings.max_reasks + 1} tries: {last_error.reason}",
        attempts=result.calls)
    return result
