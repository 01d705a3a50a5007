"""Prompt templates: Jinja2 files with a TOML header, compiled once, rendered to chat messages.

A template file looks like::

    {#---
    name = "open_vqa"
    version = "1.0"
    description = "..."
    output = "qa_pairs"            # answer format, see vqa_gen.answers.OUTPUT_FORMATS
    [defaults]
    qa_per_caption = 5
    ---#}
    {% block system %}...{% endblock %}
    {% block user %}...{% endblock %}

The header is a Jinja comment, so the file stays a valid template. Captions reach the template
as variables only: Jinja never evaluates the text of a variable, so ``{{ ... }}`` inside a caption
is printed, not run.
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

from .answers import OUTPUT_FORMATS
from .records import CaptionRecord

TEMPLATE_SUFFIXES = (".j2", ".jinja", ".jinja2")
_HEADER_START = "{#---"
_HEADER_END = "---#}"


class TemplateError(ValueError):
    """A template cannot be found, parsed or rendered; the message says which and why."""


def builtin_prompt_dirs() -> list[Path]:
    """Where shipped templates live: inside the installed wheel, or the repo's prompts/."""
    here = Path(__file__).resolve().parent
    candidates = [here / "_prompts", here.parent / "prompts"]
    return [p for p in candidates if p.is_dir()]


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

    def schema(self, n: int | None = None) -> dict[str, Any]:
        """JSON schema of this template's declared answer format, for `n` items if given."""
        return OUTPUT_FORMATS[self.output].schema(n)

    def parse(self, text: str) -> Any:
        """Parse a model reply with the parser of this template's declared answer format."""
        return OUTPUT_FORMATS[self.output].parse(text)

    def qa_count(self, params: dict[str, Any]) -> int | None:
        """How many items a render with `params` asks for (None if the template says not)."""
        value = params.get("qa_per_caption", self.defaults.get("qa_per_caption"))
        return int(value) if value is not None else None

    def render(self, record: CaptionRecord, **params: Any) -> list[dict[str, str]]:
        """The chat messages for one record: a system message (if the template has one) and a
        user message."""
        assert self._jinja is not None
        variables = {**self.defaults, **params}
        variables.update(
            record=record,
            id=record.id,
            caption=record.caption,
            modality=record.modality or "unknown",
            meta=record.meta,
            image=record.image,
        )
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
    return Template(
        name=str(header.get("name", path.stem)),
        version=str(header.get("version", "0")),
        description=str(header.get("description", "")),
        output=output,
        path=path,
        content_hash=hashlib.sha256(source.encode()).hexdigest()[:16],
        header=header,
        defaults=dict(header.get("defaults", {})),
        _jinja=compiled,
    )


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
