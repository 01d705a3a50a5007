"""The prompt author's tools: render a record's exact request, lint a template, try a template on
a few records, and notice a template edited under an unchanged version.

Library side of `vqa-gen render`, `vqa-gen lint` and `vqa-gen try`; the CLI only prints.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

import jinja2
import jinja2.meta
import jinja2.nodes

from .answers import AnswerFormatError
from .formats import OUTPUT_FORMATS
from .grounding import FilterConfig
from .output import MANIFEST, atomic_write_json
from .pipeline import GenerationSettings, RecordResult, request_params, template_vars
from .records import (
    DEFAULT_MAX_CAPTION_CHARS,
    CaptionRecord,
    FieldMap,
    InputItem,
    Modality,
    read_records,
)
from .templates import Template, TemplateError, load_template

KNOWN_MODALITIES: tuple[str, ...] = get_args(Modality)
HEADER_KEYS = {"name", "version", "description", "output", "modalities", "qa_types", "defaults",
               "examples", "when", "skip_reason", "needs_capable_model"}
TEMPLATE_VARIABLES = {"record", "id", "caption", "modality", "meta", "image", "examples",
                      "demographics", "qa_per_caption"}
"""Variables every template may use (plus the keys of its own `[defaults]`)."""

_LEAK_RE = re.compile(
    r"\b(?:ask\w*|question\w*|quiz\w*)\b[^.\n]{0,40}\b(?:about|on|from|regarding)\s+"
    r"(?:(?:what|how)\s+)?(?:the|this)\s+(?:caption|legend|text|figure\s+legend)\b"
    r"|\bwhat\s+(?:the|this)\s+(?:caption|legend|text)\s+"
    r"(?:says|said|states|describes|mentions|reports|shows|tells)\b"
    r"|\baccording\s+to\s+(?:the|this)\s+(?:caption|legend|text)\b"
    r"|\b(?:as\s+)?(?:described|stated|mentioned|shown)\s+in\s+(?:the|this)\s+(?:caption|legend|text)\b"
    r"|\bwhat\s+(?:does|did)\s+(?:the|this)\s+(?:caption|legend|text)\b"
    r"|\brefer\w*\s+to\s+(?:the|this)\s+(?:caption|legend)\b",
    re.I)
_NEGATED_RE = re.compile(r"\b(?:never|not|don't|do not|avoid|without|no)\b", re.I)


# -- records -------------------------------------------------------------------------------
def select_records(input: Path, *, record_ids: Iterable[str] = (), n: int | None = None,
                   fields: FieldMap | None = None,
                   max_caption_chars: int = DEFAULT_MAX_CAPTION_CHARS) -> list[InputItem]:
    """The input items to work on: those with the given ids (in input order), else the first
    `n` (invalid lines included, so they can be reported)."""
    wanted = set(record_ids)
    out: list[InputItem] = []
    for item in read_records(input, fields=fields or FieldMap(),
                             max_caption_chars=max_caption_chars):
        if wanted:
            rid = item.record.id if item.record else None
            if rid in wanted:
                out.append(item)
                if len(out) == len(wanted):
                    break
        else:
            out.append(item)
            if n is not None and len(out) >= n:
                break
    missing = wanted - {i.record.id for i in out if i.record}
    if missing:
        raise ValueError(f"no record with id {', '.join(sorted(map(repr, missing)))} in {input}")
    return out


# -- render --------------------------------------------------------------------------------
@dataclass(slots=True)
class RenderedRequest:
    record_id: str
    skipped: str | None
    messages: list[dict[str, str]]
    params: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"record_id": self.record_id, "skipped": self.skipped, "messages": self.messages,
                **self.params}


def render_request(template: Template, record: CaptionRecord,
                   settings: GenerationSettings | None = None) -> RenderedRequest:
    """Exactly what `run` would send for `record` (messages and request parameters, including
    `response_format` and the per-record seed), without calling anything."""
    settings = settings or GenerationSettings()
    tvars = template_vars(settings)
    skipped = template.skip_reason(record, **tvars)
    if skipped is not None:
        return RenderedRequest(record.id, skipped, [], {})
    return RenderedRequest(record.id, None, template.render(record, **tvars),
                           request_params(template, settings, record))


# -- template versions ---------------------------------------------------------------------
def version_registry_path(cache_path: Path | None = None) -> Path:
    """The template-version registry next to the response cache (`cache_path`, else the
    default cache)."""
    if cache_path is None:
        from .cache import default_cache_path

        cache_path = default_cache_path()
    return cache_path.parent / "template-versions.json"


def check_template_version(template: Template, out_dir: Path | None = None,
                           registry: Path | None = None, record: bool = True) -> list[str]:
    """Warnings when this template's content differs from what was seen before under the same
    name and version: in the registry next to the response cache (first content seen per
    name@version), and in the manifest of the previous run in `out_dir`."""
    warnings: list[str] = []
    key = f"{template.name}@{template.version}"
    bump = f"bump `version` in {template.path.name} so runs can tell the two apart"
    path = registry or version_registry_path()
    try:
        seen = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, json.JSONDecodeError):
        seen = {}
    entry = seen.get(key)
    if entry is None:
        if record:
            seen[key] = {"hash": template.content_hash, "path": str(template.path)}
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_json(path, seen)
            except OSError:
                pass
    elif entry.get("hash") != template.content_hash:
        warnings.append(f"template {template.name!r} changed (content {entry.get('hash')} → "
                        f"{template.content_hash}) but its version is still "
                        f"{template.version!r}: {bump}")
    if out_dir is not None and (out_dir / MANIFEST).is_file():
        try:
            prev = json.loads((out_dir / MANIFEST).read_text(encoding="utf-8"))
            t = prev.get("template") or {}
        except (OSError, json.JSONDecodeError):
            t = {}
        if (t.get("name") == template.name and t.get("version") == template.version
                and t.get("content_hash") not in (None, template.content_hash)
                and not any(t.get("content_hash") in w for w in warnings)):
            warnings.append(f"the previous run in {out_dir} used template {template.name!r} "
                            f"version {template.version!r} with different content "
                            f"({t.get('content_hash')} → {template.content_hash}): {bump}")
    return warnings


# -- lint ----------------------------------------------------------------------------------
@dataclass(slots=True)
class Issue:
    level: str  # "error" | "warning"
    code: str
    message: str


@dataclass(slots=True)
class LintReport:
    template: str
    issues: list[Issue] = field(default_factory=list)
    rendered: int = 0
    skipped: int = 0

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.level == "error"]

    @property
    def warnings(self) -> list[Issue]:
        return [i for i in self.issues if i.level == "warning"]

    def add(self, level: str, code: str, message: str) -> None:
        if not any(i.code == code and i.message == message for i in self.issues):
            self.issues.append(Issue(level, code, message))


def _leaks(text: str) -> list[str]:
    """Instruction sentences that steer questions or answers toward "the caption"."""
    out = []
    for sentence in re.split(r"(?<=[.!?])\s+|\n", text):
        if _LEAK_RE.search(sentence) and not _NEGATED_RE.search(sentence):
            out.append(sentence.strip())
    return out


def _lint_header(t: Template, report: LintReport) -> None:
    h = t.header
    if not h:
        report.add("error", "header_missing", "no '{#--- … ---#}' TOML header")
        return
    if "name" not in h:
        report.add("warning", "header_name", f"no 'name' (the file name {t.name!r} is used)")
    if "version" not in h:
        report.add("error", "header_version", "no 'version': runs cannot tell edits apart")
    if not str(h.get("description", "")).strip():
        report.add("warning", "header_description", "no 'description' (shown by `templates`)")
    if "output" not in h:
        report.add("warning", "header_output", "no 'output': the answer format defaults to "
                                               f"qa_pairs (known: {', '.join(OUTPUT_FORMATS)})")
    for key in sorted(set(h) - HEADER_KEYS):
        report.add("warning", "header_unknown_key", f"unknown header key {key!r}")
    mods = h.get("modalities")
    if mods is None:
        report.add("warning", "header_modalities", "no 'modalities' list")
    elif not isinstance(mods, list) or not set(map(str, mods)) <= set(KNOWN_MODALITIES):
        report.add("error", "header_modalities",
                   f"'modalities' must be a list of {', '.join(KNOWN_MODALITIES)}; got {mods!r}")
    if not h.get("qa_types"):
        report.add("warning", "header_qa_types", "no 'qa_types' list")
    defaults = h.get("defaults", {})
    if not isinstance(defaults, dict):
        report.add("error", "header_defaults", "'defaults' must be a table")
    elif "qa_per_caption" in defaults and not (
            isinstance(defaults["qa_per_caption"], int) and 1 <= defaults["qa_per_caption"] <= 50):
        report.add("error", "header_defaults", "defaults.qa_per_caption must be an integer 1–50")
    if h.get("when") and not h.get("skip_reason"):
        report.add("warning", "header_skip_reason",
                   "'when' without 'skip_reason': skipped records get a generic reason")


def _lint_examples(t: Template, report: LintReport) -> None:
    table = t.header.get("examples")
    if table is None:
        return
    if not isinstance(table, dict):
        report.add("error", "examples", "'examples' must be tables per modality, e.g. "
                                        "[[examples.clinical]]")
        return
    fmt = OUTPUT_FORMATS[t.output]
    for modality, items in table.items():
        if modality not in (*KNOWN_MODALITIES, "any"):
            # modality is free text: such examples serve records whose modality is exactly this
            report.add("warning", "examples_modality",
                       f"examples for modality {modality!r}, which is not normalised (known: "
                       f"{', '.join(KNOWN_MODALITIES)}, 'any'); they apply only to records "
                       f"whose modality is exactly {modality!r}")
        for i, ex in enumerate(items if isinstance(items, list) else [items], start=1):
            where = f"examples.{modality}[{i}]"
            if not isinstance(ex, dict) or not ex.get("caption") or not ex.get("reply"):
                report.add("error", "examples_shape", f"{where} needs 'caption' and 'reply'")
                continue
            reply = ex["reply"] if isinstance(ex["reply"], str) else json.dumps(ex["reply"])
            try:
                fmt.parse(reply)
            except AnswerFormatError as err:
                report.add("error", "examples_reply",
                           f"{where}: the reply is not valid {t.output} output ({err.reason})")
            for leak in _leaks(reply):
                report.add("error", "caption_leak", f"{where}: the reply refers to the caption "
                                                    f"({leak[:80]!r})")


def lint_template(name_or_path: str | Path, input: Path, *, limit: int = 100,
                  fields: FieldMap | None = None, settings: GenerationSettings | None = None,
                  registry: Path | None = None) -> LintReport:
    """Check a template: header, few-shot examples, undefined variables, the JSON instruction,
    wording that steers questions toward "the caption", rendering against the first `limit`
    records of `input`, and a content change under an unchanged version."""
    report = LintReport(str(name_or_path))
    try:
        t = load_template(name_or_path)
    except TemplateError as err:
        report.add("error", "load", str(err))
        return report
    report.template = t.name
    _lint_header(t, report)
    _lint_examples(t, report)
    # undefined variables, statically (branches the samples never take included)
    assert t._jinja is not None
    env = t._jinja.environment
    undefined: list[str] = []
    try:
        ast = env.parse(t.path.read_text(encoding="utf-8"))
        known = TEMPLATE_VARIABLES | set(t.defaults)
        for node in ast.find_all((jinja2.nodes.Import, jinja2.nodes.FromImport,
                                  jinja2.nodes.Assign, jinja2.nodes.Macro)):
            if isinstance(node, jinja2.nodes.Import):
                known.add(node.target)
            elif isinstance(node, jinja2.nodes.FromImport):
                known.update(n if isinstance(n, str) else n[1] for n in node.names)
            elif isinstance(node, jinja2.nodes.Macro):
                known.add(node.name)
            else:
                known.update(n.name for n in node.target.find_all(jinja2.nodes.Name))
        undefined = sorted(jinja2.meta.find_undeclared_variables(ast) - known)
        for name in undefined:
            report.add("error", "undefined_variable",
                       f"{{{{ {name} }}}} is not a template variable (known: "
                       f"{', '.join(sorted(known))})")
    except (OSError, jinja2.TemplateSyntaxError) as err:
        report.add("error", "load", str(err))
    fmt = OUTPUT_FORMATS[t.output]
    checked_text = False
    per_record: dict[tuple[str, str], list[str]] = {}  # (code, message) → record ids
    first: CaptionRecord | None = None
    for item in select_records(input, n=limit, fields=fields):
        if item.record is None:
            continue
        first = first or item.record
        try:
            req = render_request(t, item.record, settings)
        except (TemplateError, ValueError) as err:
            per_record.setdefault(("render", str(err)), []).append(item.record.id)
            continue
        if req.skipped:
            report.skipped += 1
            continue
        report.rendered += 1
        user = next(m["content"] for m in req.messages if m["role"] == "user")
        if item.record.caption not in user:
            per_record.setdefault(("caption_missing", "the caption is not in the user message"),
                                  []).append(item.record.id)
        if checked_text:
            continue
        checked_text = True
        _lint_prompt_text(req.messages, item.record.caption, fmt.key, report)
    if not checked_text and first is not None:
        # nothing rendered (an undefined variable, a broken 'when'): still check the prompt's
        # wording, rendered with the undefined names blank, ignoring 'when'
        try:
            messages = t.render(first, **template_vars(settings or GenerationSettings()),
                                **dict.fromkeys(undefined, ""))
            _lint_prompt_text(messages, first.caption, fmt.key, report)
        except (TemplateError, ValueError):
            pass
    for (code, message), ids in per_record.items():
        report.add("error", code, f"{message} ({len(ids)} record(s), e.g. {ids[0]!r})")
    if report.rendered == 0 and report.skipped == 0 and not per_record:
        report.add("error", "no_records", f"no valid record in {input} to render against")
    elif report.rendered == 0 and report.skipped and not per_record:
        report.add("warning", "all_skipped",
                   f"the template skips every record of {input} (its 'when' condition or "
                   "its 'modalities')")
    for w in check_template_version(t, registry=registry):
        report.add("warning", "version_unchanged", w)
    return report


def _lint_prompt_text(messages: list[dict[str, str]], caption: str, key: str,
                      report: LintReport) -> None:
    """Checks on the template's own words (the caption taken out): a JSON instruction, the
    reply's shape, no steering toward "the caption"."""
    own_text = "\n".join(m["content"] for m in messages).replace(caption, "")
    if "json" not in own_text.lower():
        report.add("error", "no_json_instruction",
                   "the prompt never asks for JSON (use {{ common.json_form(...) }})")
    if f'"{key}"' not in own_text:
        report.add("warning", "schema_not_shown",
                   f"the prompt does not show the reply's shape (\"{key}\" never appears); "
                   "endpoints without response_format will guess")
    for leak in _leaks(own_text):
        report.add("error", "caption_leak",
                   f"the prompt steers questions or answers toward the caption: {leak!r} "
                   "(the model must write as if looking at the image)")


# -- try -----------------------------------------------------------------------------------
@dataclass(slots=True)
class TryOutcome:
    template: Template
    model: str
    results: list[RecordResult]
    warnings: list[str] = field(default_factory=list)

    @property
    def calls(self) -> int:
        return sum(r.calls for r in self.results)

    @property
    def cache_hits(self) -> int:
        return sum(r.cache_hits for r in self.results)


def try_template(input: Path, template: str, *, n: int = 5, record_ids: Iterable[str] = (),
                 settings: GenerationSettings | None = None,
                 filter: FilterConfig | None = None, endpoint: Any = None,
                 cache_path: Path | None = None, use_cache: bool = True,
                 fields: FieldMap | None = None) -> TryOutcome:
    """Generate and ground QA for a few records, through the response cache (a second try of an
    unchanged prompt makes no call). `endpoint` is a runner.EndpointSettings."""
    from .generator import Generator
    from .runner import EndpointSettings

    t = load_template(template)
    warnings = check_template_version(
        t, registry=version_registry_path(cache_path) if cache_path else None,
        record=use_cache)
    items = select_records(input, record_ids=record_ids, n=n, fields=fields)
    ep = endpoint or EndpointSettings()
    cache: bool | Path = (cache_path or True) if use_cache else False
    gen = Generator(t, base_url=ep.base_url, api_key=ep.api_key, model=ep.model,
                    model_path=ep.model_path, timeout=ep.timeout, max_retries=ep.max_retries,
                    concurrency=ep.concurrency, filter=filter or FilterConfig(), cache=cache,
                    settings=settings or GenerationSettings())
    records = [i.record for i in items if i.record is not None]
    with gen:
        generated = iter(list(gen.generate(records)) if records else [])
        model = gen.model
    results: list[RecordResult] = []
    for item in items:
        if item.record is None:
            results.append(RecordResult(line=item.line, record=None, invalid=item.invalid))
        else:
            r = next(generated)
            r.line = item.line
            results.append(r)
    return TryOutcome(t, model, results, warnings)
