"""Prompt templates: Jinja2 files with a TOML header, compiled once, rendered to chat messages.

A template file looks like::

    {#---
    name = "open_vqa"
    version = "1.0"
    description = "..."
    output = "qa_pairs"            # answer format, see vqa_gen.formats.OUTPUT_FORMATS
    modalities = ["clinical", "dermoscopic", "pathology", "other"]   # what it suits
    qa_types = ["diagnosis", "morphology"]                            # what it asks for
    when = "demographics.age or demographics.sex"   # optional: records failing it are skipped
    skip_reason = "the caption states neither age nor sex"
    [defaults]
    qa_per_caption = 5
    [[examples.clinical]]          # optional few-shot examples, picked by the record's modality
    caption = "..."                # (`examples.any` for every modality)
    reply = '''{"qa_pairs": [...]}'''
    ---#}
    {% block system %}...{% endblock %}
    {% block user %}...{{ common.few_shot(examples) }}...{% endblock %}

Variables a template sees: `caption`, `modality`, `meta`, `image`, `id`, `record`, `examples`
(the few-shot examples for the record's modality), `demographics` (`age`, `sex` as stated by the
caption or meta, else None) and the `[defaults]` / run parameters (`qa_per_caption`).

The header is a Jinja comment, so the file stays a valid template. Captions reach the template
as variables only: Jinja never evaluates the text of a variable, so ``{{ ... }}`` inside a caption
is printed, not run.
"""

from __future__ import annotations

import hashlib
import random
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
import jinja2.meta

from .answers import QAPair, check_reply_limits
from .formats import OUTPUT_FORMATS
from .records import CaptionRecord

TEMPLATE_SUFFIXES = (".j2", ".jinja", ".jinja2")
CaptionAnalyser = Callable[[str], Any]
"""caption -> the grounding filter's CaptionFacts (see `GroundingFilter.caption_facts`)."""
_HEADER_START = "{#---"
_HEADER_END = "---#}"


class TemplateError(ValueError):
    """A template cannot be found, parsed or rendered; the message says which and why."""


def builtin_prompt_dirs() -> list[Path]:
    """Where shipped templates live: inside the installed wheel, or the repo's prompts/."""
    here = Path(__file__).resolve().parent
    candidates = [here / "_prompts", here.parent / "prompts"]
    return [p for p in candidates if p.is_dir()]


KNOWN_MODALITIES = frozenset({"clinical", "dermoscopic", "pathology", "other"})
"""The modalities a template's `modalities` list names (records.Modality)."""
DEFAULT_QA_PER_CAPTION = 3
"""`qa_per_caption` for a template whose `[defaults]` does not set it (it is a known variable,
so such a template renders instead of failing on an undefined variable)."""


@dataclass(frozen=True)
class Template:
    """A compiled prompt template and its metadata."""

    name: str
    version: str
    description: str
    output: str
    path: Path
    content_hash: str
    header: dict[str, Any]
    defaults: dict[str, Any] = field(default_factory=dict)
    _jinja: jinja2.Template | None = field(default=None, repr=False, compare=False)
    _when: Any = field(default=None, repr=False, compare=False)

    @property
    def modalities(self) -> list[str]:
        return [str(m) for m in self.header.get("modalities", [])]

    @property
    def needs_capable_model(self) -> bool:
        """The header's `needs_capable_model`: the tiny embedded default model cannot produce
        this answer format, so a run on it is refused up front instead of failing every
        record."""
        return bool(self.header.get("needs_capable_model", False))

    @property
    def qa_types(self) -> list[str]:
        return [str(t) for t in self.header.get("qa_types", [])]

    def examples_for(self, modality: str | None) -> list[dict[str, str]]:
        """The few-shot examples for a modality (`[[examples.<modality>]]`, else
        `[[examples.any]]`), each with `caption` and `reply` (a JSON string)."""
        table = self.header.get("examples") or {}
        chosen = table.get(modality or "other") or table.get("any") or []
        out = []
        for ex in chosen:
            reply = ex.get("reply", "")
            if not isinstance(reply, str):
                import json

                reply = json.dumps(reply, ensure_ascii=False)
            out.append({"caption": str(ex.get("caption", "")), "reply": reply.strip()})
        return out

    def variables(self, record: CaptionRecord, *, analyse: CaptionAnalyser | None = None,
                  **params: Any) -> dict[str, Any]:
        """Everything the template sees when rendered for `record`. `analyse` (caption ->
        the grounding filter's caption facts) lets the filter's own cached analysis serve
        `demographics`, so a record's caption is analysed once; it runs only if the template
        actually reads `demographics`."""
        variables = {"qa_per_caption": DEFAULT_QA_PER_CAPTION, **self.defaults, **params}
        variables.update(
            record=record,
            id=record.id,
            caption=record.caption,
            modality=record.modality or "unknown",
            meta=record.meta,
            image=record.image,
            examples=self.examples_for(record.modality),
            demographics=Demographics(record, analyse),
        )
        return variables

    def skip_reason(self, record: CaptionRecord, *, analyse: CaptionAnalyser | None = None,
                    **params: Any) -> str | None:
        """Why this template produces nothing for `record` (the record's modality is not among
        the template's `modalities`, or its `when` condition is false), or None when it
        applies. A record without a modality is not skipped for it: nothing says it is off."""
        mods = self.modalities
        # a free-text modality (e.g. "Radiology") counts as "other"
        kind = record.modality if record.modality in KNOWN_MODALITIES else "other"
        if mods and record.modality is not None and kind not in mods:
            return f"modality {record.modality!r} not among the template's modalities"
        if self._when is None:
            return None
        try:
            ok = self._when(**self.variables(record, analyse=analyse, **params))
        except jinja2.UndefinedError as err:
            raise TemplateError(f"template {self.name!r}: 'when' uses an undefined variable "
                                f"({err})") from None
        if ok:
            return None
        return str(self.header.get("skip_reason") or f"condition not met: {self.header['when']}")

    def finalize(self, pairs: list[QAPair], seed: int) -> list[QAPair]:
        """Format-specific work done in code after parsing (e.g. shuffling multiple-choice
        options), deterministic for a given record seed."""
        return OUTPUT_FORMATS[self.output].finalize(pairs, random.Random(seed))

    def schema(self, n: int | None = None) -> dict[str, Any]:
        """JSON schema of this template's declared answer format, for `n` items if given.

        When the header lists `qa_types`, every item's `type` is limited to them, so
        grammar-constrained endpoints cannot invent types ("anthrax" for a diagnosis)."""
        schema = OUTPUT_FORMATS[self.output].schema(n)
        types = self.qa_types
        if types:
            for prop in schema.get("properties", {}).values():
                item_props = prop.get("items", {}).get("properties", {}) if isinstance(
                    prop, dict) else {}
                if item_props.get("type", {}).get("type") == "string":
                    item_props["type"] = {"type": "string", "enum": types}
        return schema

    def parse(self, text: str) -> Any:
        """Parse a model reply with the parser of this template's declared answer format."""
        return check_reply_limits(OUTPUT_FORMATS[self.output].parse(text))

    def qa_count(self, params: dict[str, Any]) -> int | None:
        """How many items a render with `params` asks for (None if the template says not)."""
        value = params.get("qa_per_caption", self.defaults.get("qa_per_caption"))
        return int(value) if value is not None else None

    def render(self, record: CaptionRecord, *, analyse: CaptionAnalyser | None = None,
               **params: Any) -> list[dict[str, str]]:
        """The chat messages for one record: a system message (if the template has one) and a
        user message."""
        assert self._jinja is not None
        variables = self.variables(record, analyse=analyse, **params)
        try:
            ctx = self._jinja.new_context(variables)
            # Run the top level once so `{% import %}` and `{% set %}` outside blocks are seen
            # by the blocks rendered below.
            for _ in self._jinja.root_render_func(ctx):
                pass
            messages: list[dict[str, str]] = []
            for role in ("system", "user"):
                block = self._jinja.blocks.get(role)
                if block is None:
                    continue
                text = "".join(block(ctx)).strip()
                if text:
                    messages.append({"role": role, "content": text})
        except jinja2.UndefinedError as err:
            raise TemplateError(f"template {self.name!r}: undefined variable ({err})") from None
        if not any(m["role"] == "user" for m in messages):
            raise TemplateError(f"template {self.name!r}: the 'user' block rendered empty")
        return messages

    def describe(self) -> dict[str, Any]:
        """What the manifest records about the template."""
        return {"name": self.name, "version": self.version, "content_hash": self.content_hash,
                "output": self.output, "path": str(self.path)}


def _split_header(source: str, path: Path) -> tuple[dict[str, Any], str]:
    text = source.lstrip()
    if not text.startswith(_HEADER_START):
        return {}, source
    end = text.find(_HEADER_END)
    if end == -1:
        raise TemplateError(f"{path}: header starts with '{_HEADER_START}' but never ends")
    raw = text[len(_HEADER_START) : end]
    try:
        return tomllib.loads(raw), source
    except tomllib.TOMLDecodeError as err:
        raise TemplateError(f"{path}: header is not valid TOML ({err})") from None


def _environment(search_dirs: tuple[Path, ...]) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(d) for d in search_dirs]),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=False,
        trim_blocks=True,
        lstrip_blocks=True,
        # imports (`_common.j2`) are not stat()ed again on every render: a run uses the
        # template as it was when loaded (and hashed)
        auto_reload=False,
    )


def resolve_template_path(name_or_path: str | Path, search_dirs: list[Path] | None = None) -> Path:
    """A template given by name (looked up in the prompt folders) or by file path."""
    candidate = Path(name_or_path)
    if candidate.suffix in TEMPLATE_SUFFIXES and candidate.is_file():
        return candidate.resolve()
    if candidate.is_file():
        return candidate.resolve()
    dirs = search_dirs if search_dirs is not None else builtin_prompt_dirs()
    for d in dirs:
        for suffix in TEMPLATE_SUFFIXES:
            p = d / f"{name_or_path}{suffix}"
            if p.is_file():
                return p.resolve()
    known = ", ".join(sorted(t.name for t in list_templates(dirs))) or "none"
    raise TemplateError(f"no template named {str(name_or_path)!r} (known: {known})")


@lru_cache(maxsize=64)
def _load_cached(path: Path, mtime_ns: int, extra_dirs: tuple[Path, ...]) -> Template:
    source = path.read_text(encoding="utf-8")
    header, body = _split_header(source, path)
    env = _environment((path.parent, *extra_dirs))
    try:
        compiled = env.from_string(body)
    except jinja2.TemplateSyntaxError as err:
        raise TemplateError(f"{path}:{err.lineno}: template syntax error: {err.message}") from None
    output = header.get("output", "qa_pairs")
    if output not in OUTPUT_FORMATS:
        raise TemplateError(
            f"{path}: unknown output format {output!r} (known: {', '.join(OUTPUT_FORMATS)})"
        )
    if "user" not in compiled.blocks:
        raise TemplateError(f"{path}: template has no {{% block user %}}")
    when = None
    if header.get("when"):
        try:
            when = env.compile_expression(str(header["when"]))
        except jinja2.TemplateSyntaxError as err:
            raise TemplateError(f"{path}: header 'when' is not a valid expression: "
                                f"{err.message}") from None
    return Template(
        name=str(header.get("name", path.stem)),
        version=str(header.get("version", "0")),
        description=str(header.get("description", "")),
        output=output,
        path=path,
        content_hash=_content_hash(source, env, (path.parent, *extra_dirs)),
        header=header,
        defaults=dict(header.get("defaults", {})),
        _jinja=compiled,
        _when=when,
    )


def _content_hash(source: str, env: jinja2.Environment, dirs: tuple[Path, ...]) -> str:
    """Hash of the template and of the files it imports or includes (one level deep, which is
    how `_common.j2` is used), so editing a shared macro changes every user's hash."""
    h = hashlib.sha256(source.encode())
    try:
        names = sorted(n for n in jinja2.meta.find_referenced_templates(env.parse(source)) if n)
    except jinja2.TemplateSyntaxError:
        names = []
    for name in names:
        for d in dirs:
            f = d / name
            if f.is_file():
                h.update(b"\x00" + name.encode() + b"\x00" + f.read_bytes())
                break
    return h.hexdigest()[:16]


def load_template(name_or_path: str | Path, search_dirs: list[Path] | None = None) -> Template:
    """Find, parse and compile a template (compiled once per file version)."""
    dirs = search_dirs if search_dirs is not None else builtin_prompt_dirs()
    path = resolve_template_path(name_or_path, dirs)
    return _load_cached(path, path.stat().st_mtime_ns, tuple(dirs))


def list_templates(search_dirs: list[Path] | None = None) -> list[Template]:
    """Every loadable template in the prompt folders (files starting with '_' are includes)."""
    dirs = search_dirs if search_dirs is not None else builtin_prompt_dirs()
    found: dict[str, Template] = {}
    for d in dirs:
        for p in sorted(d.iterdir()):
            if p.suffix in TEMPLATE_SUFFIXES and not p.name.startswith("_"):
                try:
                    t = _load_cached(p.resolve(), p.stat().st_mtime_ns, tuple(dirs))
                except TemplateError:
                    continue
                found.setdefault(t.name, t)
    return list(found.values())


_SEX_NAMES = {"m": "male", "f": "female"}
_META_SEX = {"m": "male", "male": "male", "man": "male", "boy": "male", "f": "female",
             "female": "female", "woman": "female", "girl": "female"}


class Demographics(Mapping[str, str | None]):
    """The `demographics` template variable ({"age", "sex"}), worked out on first access:
    templates that never read it cost no caption analysis at render time."""

    __slots__ = ("_analyse", "_data", "_record")

    def __init__(self, record: CaptionRecord, analyse: CaptionAnalyser | None = None) -> None:
        self._record = record
        self._analyse = analyse
        self._data: dict[str, str | None] | None = None

    def _get(self) -> dict[str, str | None]:
        if self._data is None:
            self._data = demographics(self._record, self._analyse)
        return self._data

    def __getitem__(self, key: str) -> str | None:
        return self._get()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(("age", "sex"))

    def __len__(self) -> int:
        return 2

    def __repr__(self) -> str:
        return repr(self._get())


def demographics(record: CaptionRecord, analyse: CaptionAnalyser | None = None
                 ) -> dict[str, str | None]:
    """Age and sex as the caption (or the record's meta) states them, else None: what a
    demographics template may ask about. Uses the grounding filter's own analyser (`analyse`,
    e.g. `GroundingFilter.caption_facts`, whose cache the filter then reuses for the same
    record), so what counts as stated here is what the filter will accept."""
    facts = (analyse or _caption_facts)(record.caption).facts
    meta = {str(k).lower(): v for k, v in (record.meta or {}).items()}
    age: str | None = None
    if facts.age_ranges:
        age = facts.age_ranges[0][2]
    elif meta.get("age") not in (None, ""):
        age = f"{meta['age']}-year-old"
    sex: str | None = None
    if len(facts.sex_nouns) == 1:
        sex = _SEX_NAMES.get(next(iter(facts.sex_nouns)))
    elif isinstance(meta.get("sex"), str):
        sex = _META_SEX.get(meta["sex"].strip().lower())
    return {"age": age, "sex": sex}


@lru_cache(maxsize=1)
def _caption_facts(caption: str) -> Any:
    """The analyser's caption facts, when no filter's analysis is shared (`render` without
    `analyse`, e.g. `vqa-gen render`). Remembers the last caption: a record is rendered right
    after its `when` condition is evaluated, and both see `demographics`."""
    return _analyser().caption(caption, None)


@lru_cache(maxsize=1)
def _analyser() -> Any:
    from .grounding.analysis import Analyser

    return Analyser()
