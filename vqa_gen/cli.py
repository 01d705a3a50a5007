"""The `vqa-gen` command line: a thin layer of flags and display over the library API."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

from .errors import VqaGenError


class _Commands(TyperGroup):
    """Every command's expected failures end here, in one place: an error vqa-gen raises on
    purpose (`VqaGenError`) or an OS error becomes one line and an exit code, no traceback."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except VqaGenError as err:
            raise fail(err.user_message(), err.exit_code) from None
        except OSError as err:
            where = getattr(err, "filename", None)
            raise fail(f"{where}: {err.strerror or err}" if where else str(err)) from None


app = typer.Typer(
    name="vqa-gen",
    cls=_Commands,
    help="Turn image captions into grounded visual question answering (VQA) data with an LLM.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)
console = Console(stderr=True, highlight=False)


@app.callback()
def _global_options(
    verbose: Annotated[int, typer.Option(
        "--verbose", "-v", count=True, help="Log retries, re-asks, cache errors and circuit "
        "breaker decisions to stderr (-vv: debug detail).")] = 0,
    version: Annotated[bool, typer.Option(
        "--version", callback=lambda v: _version_callback(v), is_eager=True,
        help="Print the version and exit.")] = False,
) -> None:
    """Turn image captions into grounded visual question answering (VQA) data with an LLM."""
    _log_to_console(verbose)


def _log_to_console(verbosity: int) -> None:
    """Send the library's `vqa_gen` log events to the CLI's stderr console (above the progress
    bar), or none with verbosity 0; replaces what an earlier command in this process set."""
    import logging

    logger = logging.getLogger("vqa_gen")
    for h in [h for h in logger.handlers if getattr(h, "_vqa_gen_cli", False)]:
        logger.removeHandler(h)
    logger.setLevel(logging.NOTSET)
    if not verbosity:
        return
    from rich.logging import RichHandler

    handler = RichHandler(console=console, show_time=False, show_path=False, markup=False,
                          rich_tracebacks=False)
    handler._vqa_gen_cli = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbosity > 1 else logging.INFO)


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print a one-line error (no traceback) and return the Exit to raise."""
    from rich.markup import escape

    from .llm import redact

    console.print(f"[bold red]error:[/] {escape(redact(message))}", soft_wrap=True)
    return typer.Exit(code)


def _load_filter_config(strictness: str | None, filter_config: Path | None) -> Any:
    from .preflight import load_filter_config

    return load_filter_config(strictness, filter_config)


# -- option groups: each flag declared once, shared by every command that takes it -----------
_GENERATION, _ENDPOINT, _FILTER, _COLUMNS = "Generation", "Endpoint", "Grounding filter", "Input"
TemplateOpt = Annotated[str, typer.Option(
    help="Template name (see `vqa-gen templates`) or path to a .j2 file.")]
QaPerCaptionOpt = Annotated[int | None, typer.Option(
    min=1, max=50, rich_help_panel=_GENERATION,
    help="QA pairs to ask for per caption (template default if unset).")]
TemperatureOpt = Annotated[float, typer.Option(min=0.0, max=2.0, rich_help_panel=_GENERATION)]
SeedOpt = Annotated[int, typer.Option(
    rich_help_panel=_GENERATION,
    help="Sampling seed (per record: derived from this and the record id).")]
MaxTokensOpt = Annotated[int, typer.Option(min=16, rich_help_panel=_GENERATION)]
BaseUrlOpt = Annotated[str | None, typer.Option(
    rich_help_panel=_ENDPOINT,
    help="OpenAI-compatible endpoint, e.g. http://host:8000/v1 (or OPENAI_BASE_URL). Without it "
         "(and without --model) the embedded local model is used.")]
ApiKeyOpt = Annotated[str | None, typer.Option(
    rich_help_panel=_ENDPOINT, help="API key (or OPENAI_API_KEY). Never written to logs or "
                                    "outputs.")]
ModelOpt = Annotated[str | None, typer.Option(rich_help_panel=_ENDPOINT,
                                              help="Model name at the endpoint.")]
ModelPathOpt = Annotated[Path | None, typer.Option(
    rich_help_panel=_ENDPOINT, help="Serve this GGUF file with the embedded llama.cpp server.")]
ConcurrencyOpt = Annotated[int, typer.Option(min=1, max=1024, rich_help_panel=_ENDPOINT,
                                             help="LLM calls in flight at once.")]
TimeoutOpt = Annotated[float, typer.Option(rich_help_panel=_ENDPOINT,
                                           help="Seconds per LLM call.")]
MaxRetriesOpt = Annotated[int, typer.Option(min=0, rich_help_panel=_ENDPOINT,
                                            help="Retries per call on 429, 5xx, timeouts.")]
CacheOpt = Annotated[Path | None, typer.Option(
    rich_help_panel=_ENDPOINT,
    help="Response cache file (default: $VQA_GEN_CACHE or ~/.cache/vqa-gen).")]
NoCacheOpt = Annotated[bool, typer.Option("--no-cache", rich_help_panel=_ENDPOINT,
                                          help="Do not read or write the response cache.")]
StrictnessOpt = Annotated[str | None, typer.Option(
    rich_help_panel=_FILTER, help="Grounding filter preset: lenient, default or strict.")]
FilterConfigOpt = Annotated[Path | None, typer.Option(
    rich_help_panel=_FILTER, help="JSON file with grounding filter settings.")]
IdFieldOpt = Annotated[str, typer.Option(rich_help_panel=_COLUMNS,
                                         help="Input column holding the record id.")]
ImageFieldOpt = Annotated[str, typer.Option(rich_help_panel=_COLUMNS,
                                            help="Input column holding the image.")]
CaptionFieldOpt = Annotated[str, typer.Option(rich_help_panel=_COLUMNS,
                                              help="Input column holding the caption.")]
ModalityFieldOpt = Annotated[str, typer.Option(rich_help_panel=_COLUMNS,
                                               help="Input column holding the modality.")]


NO_RECORD_SUCCEEDED_EXIT = 4
"""Exit code of a run that finished but in which no record produced QA (all failed, invalid or
skipped): the folder is complete, but there is nothing to train on."""


def _version_callback(value: bool) -> None:
    if value:
        from . import __version__
        from .grounding import COMPILED

        # (which build a regular install got: it compiles the filter when it can, else not)
        build = "compiled" if COMPILED else "pure Python"
        Console(highlight=False).print(f"vqa-gen {__version__} (grounding filter: {build})")
        raise typer.Exit()


class _Progress:
    """A one-line live status: records done of the total (counted or estimated from the input
    size), time left, records/s, kept rate, failures. Drawn from the first result on, so an
    error before any record (endpoint, model start) is never printed under a bar."""

    def __init__(self, total: int | None, quiet: bool) -> None:
        self.quiet = quiet
        self.total = total
        self.start = time.monotonic()
        self.progress: Any = None
        self.task: Any = None
        self.seen = 0

    def __enter__(self) -> _Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.__exit__(*exc)

    def _open(self, already: int) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        # fits 80 columns with the total, the rates and the time left (a narrow bar)
        self.progress = Progress(
            TextColumn("[bold]generating"), BarColumn(bar_width=15), MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"), TextColumn("ETA"), TimeRemainingColumn(),
            console=console, transient=False,
        )
        self.progress.__enter__()
        total = self.total
        if total is not None:
            total = max(total, already)
        self.task = self.progress.add_task("run", total=total, completed=already, stats="")

    def update(self, result: Any, writer: Any) -> None:
        self.seen += 1
        if self.quiet:
            return
        c = writer.counts
        if self.progress is None:
            self._open(c.records_read - 1)
        elapsed = max(1e-6, time.monotonic() - self.start)
        kept_rate = c.qa_kept / c.qa_generated if c.qa_generated else 0.0
        stats = (f"{self.seen / elapsed:.2f} rec/s · kept {kept_rate:.0%} · failed "
                 f"{c.records_failed}" + (f" · invalid {c.records_invalid}"
                                          if c.records_invalid else ""))
        task = self.progress.tasks[0]
        if task.total is not None and c.records_read > task.total:  # an estimate ran short
            self.progress.update(self.task, total=c.records_read)
        self.progress.update(self.task, completed=c.records_read, stats=stats)


def _progress_total(input: Path, limit: int | None, delimiter: str | None = None
                    ) -> int | None:
    """The run's record total for the progress bar (None when the input cannot be sized)."""
    from .preflight import estimate_records

    try:
        total, _exact = estimate_records(input, delimiter=delimiter)
    except (OSError, ValueError):
        return limit
    return min(total, limit) if limit is not None else total


def _summary_table(manifest: dict[str, Any], out_dir: Path) -> Table:
    c = manifest["counts"]
    table = Table(title=f"run {manifest['status']}: {out_dir}", show_header=False,
                  title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("count", justify="right")
    from .output import failure_kinds, skip_reasons

    skipped = c.get("records_skipped", 0)
    rows: list[tuple[str, int, str]] = [
        ("records read", c["records_read"], ""),
        ("records done", c["records_done"] - skipped, "with QA generated"),
        ("records skipped", skipped, _breakdown(skip_reasons(out_dir)) if skipped else ""),
        ("records failed", c["records_failed"],
         _breakdown(failure_kinds(out_dir)) if c["records_failed"] else ""),
        ("records invalid", c["records_invalid"],
         "see invalid.jsonl" if c["records_invalid"] else ""),
        ("QA generated", c["qa_generated"], ""), ("QA kept", c["qa_kept"], ""),
        ("QA rejected", c["qa_rejected"], ""),
        ("LLM calls", c["llm_calls"], _calls_note(c, manifest.get("http_retries", 0))),
        ("cache hits", c["cache_hits"], ""), ("tokens", manifest["usage"]["total_tokens"], ""),
    ]
    table.add_column("note", style="dim")
    for name, value, note in rows:
        table.add_row(name, f"{value:,}", note)
    if c["qa_generated"]:
        table.add_row("kept rate", f"{c['qa_kept'] / c['qa_generated']:.1%}", "")
    return table


def _breakdown(counts: dict[str, int], top: int = 4) -> str:
    """`wrong_shape 10, timeout 2`: the largest few of a count table."""
    parts = [f"{k} {v:,}" for k, v in list(counts.items())[:top]]
    if len(counts) > top:
        parts.append(f"+{len(counts) - top} more")
    return ", ".join(parts)


def _calls_note(c: dict[str, Any], http_retries: int) -> str:
    """Why LLM calls exceed the cache misses: re-asks after unusable replies and HTTP
    retries after 429/5xx/timeouts (each attempt is a call)."""
    parts = []
    if c.get("reasks"):
        parts.append(f"{c['reasks']:,} re-ask{'' if c['reasks'] == 1 else 's'}")
    if http_retries:
        parts.append(f"{http_retries:,} HTTP retr{'y' if http_retries == 1 else 'ies'}")
    return "incl. " + ", ".join(parts) if parts else ""


@app.command()
def run(
    input: Annotated[Path, typer.Argument(help="Caption records: .jsonl or .csv.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path("out"),
    template: TemplateOpt = "open_vqa",
    base_url: BaseUrlOpt = None,
    api_key: ApiKeyOpt = None,
    model: ModelOpt = None,
    model_path: ModelPathOpt = None,
    qa_per_caption: QaPerCaptionOpt = None,
    temperature: TemperatureOpt = 0.7,
    seed: SeedOpt = 0,
    max_tokens: MaxTokensOpt = 1024,
    concurrency: ConcurrencyOpt = 8,
    timeout: TimeoutOpt = 120.0,
    max_retries: MaxRetriesOpt = 6,
    limit: Annotated[int | None, typer.Option(min=1, help="Process at most this many input "
                                                          "records.")] = None,
    shard_size: Annotated[int, typer.Option(min=1, help="QA lines per output shard.")] = 10_000,
    strictness: StrictnessOpt = None,
    filter_config: FilterConfigOpt = None,
    id_field: IdFieldOpt = "id",
    image_field: ImageFieldOpt = "image",
    caption_field: CaptionFieldOpt = "caption",
    modality_field: ModalityFieldOpt = "modality",
    cache: CacheOpt = None,
    no_cache: NoCacheOpt = False,
    overwrite: Annotated[bool, typer.Option(help="Start again in an output folder that holds "
                                                 "another run.")] = False,
    retry_failed: Annotated[bool, typer.Option(help="Retry the records that failed in an "
                                                    "earlier run of this folder.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    delimiter: Annotated[str | None, typer.Option(
        help="CSV field delimiter (one character; `tab` or `\\t` for a tab). Default: tab "
             "for .tsv, comma otherwise.")] = None,
    max_response_bytes: Annotated[int, typer.Option(
        min=1024, help="Largest reply body read from the endpoint; a larger one is a "
                       "malformed response (retried, then the record fails).")
    ] = 8 * 1024 * 1024,
    engine: Annotated[str, typer.Option(
        help="`local` (this process) or `ray` (Ray Data actor pool; INPUT may then be a "
             "folder of .jsonl/.csv files). Needs `pip install 'vqa-gen[ray]'`.")] = "local",
    ray_address: Annotated[str | None, typer.Option(
        help="Ray cluster to join, e.g. ray://head:10001 or auto (default: a local one).")
    ] = None,
    actors: Annotated[int, typer.Option(min=1, help="Ray actors, each with its own client "
                                                    "and --concurrency calls.")] = 2,
    workers: Annotated[int | None, typer.Option(
        min=1, max=256, help="Processes that parse and ground replies (default: one per "
                             "usable core; 1: in this process). Output is the same whatever "
                             "the number.")
    ] = None,
) -> None:
    """Generate grounded QA pairs for every caption record in INPUT.

    Rerunning the same command on the same --out resumes an unfinished run.
    """
    from rich.markup import escape

    from .pipeline import GenerationSettings
    from .preflight import check_input, check_model_fit, check_out_dir
    from .records import FieldMap
    from .runner import Run, RunOptions
    from .templates import load_template

    # everything a newcomer can get wrong is checked here, before the model or endpoint starts
    fields = FieldMap(id=id_field, image=image_field, caption=caption_field,
                      modality=modality_field)
    endpoint = _endpoint(base_url, api_key, model, model_path, timeout, max_retries, concurrency,
                         max_response_bytes)
    filter_settings = _load_filter_config(strictness, filter_config)
    check_input(input, fields, delimiter=delimiter)
    check_model_fit(load_template(template), endpoint)
    check_out_dir(out)
    options = RunOptions(
        input=input, out_dir=out, template=template,
        generation=GenerationSettings(qa_per_caption=qa_per_caption, temperature=temperature,
                                      seed=seed, max_tokens=max_tokens),
        filter=filter_settings, endpoint=endpoint, shard_size=shard_size, limit=limit,
        delimiter=delimiter, fields=fields, overwrite=overwrite, retry_failed=retry_failed,
        cache_path=cache, use_cache=not no_cache, workers=workers,
    )
    if engine not in ("local", "ray"):
        raise fail(f"--engine {engine}: choose local or ray")
    try:
        job = Run(options) if engine == "local" else _ray_job(options, ray_address, actors)
        from .authoring import check_template_version, version_registry_path

        _warn(check_template_version(  # --no-cache: read the registry, never write it
            job.template, out, registry=version_registry_path(cache) if cache else None,
            record=not no_cache))
        with _Progress(None if quiet else _progress_total(input, limit, delimiter),
                       quiet) as progress:
            manifest = job.run(on_result=progress.update)
    except KeyboardInterrupt as err:
        console.print(f"[yellow]interrupted:[/] work so far is kept in {out}; run the same "
                      "command again to resume.")
        raise typer.Exit(getattr(err, "exit_code", 130)) from None  # 143 for SIGTERM
    except OSError as err:
        raise fail(_os_error(err, out)) from None
    finally:
        if "job" in locals():
            _warn([escape(n) for n in job.notes])
    console.print(_summary_table(manifest, out))
    c = manifest["counts"]
    if c["records_invalid"]:
        _warn([f"{c['records_invalid']} invalid input record(s): see {out / 'invalid.jsonl'}"])
    if c["records_failed"]:
        _warn([f"{c['records_failed']} record(s) failed: see {out / 'failed.jsonl'}; retry "
               "them with --retry-failed"])
    if c["records_read"] and c["records_done"] - c.get("records_skipped", 0) == 0:
        raise fail(f"no record produced QA ({c['records_failed']} failed, "
                   f"{c.get('records_skipped', 0)} skipped, {c['records_invalid']} invalid of "
                   f"{c['records_read']} read)", NO_RECORD_SUCCEEDED_EXIT)


def _os_error(err: OSError, out: Path | None) -> str:
    """An OSError as `cannot write to PATH: reason` (under the folder `out` written to) or
    `cannot read PATH: reason`."""
    from .preflight import os_error_message

    name = str(getattr(err, "filename", "") or "")
    if not name:
        return os_error_message(err, "write to" if out is not None else "use", out or "")
    # absolute, not resolved: a file under the folder stays under it even if it is a link
    inside = out is not None and Path(os.path.abspath(name)).is_relative_to(
        os.path.abspath(out))
    return os_error_message(err, "write to" if inside else "read", name)


def _ray_job(options: Any, address: str | None, actors: int) -> Any:
    try:
        from .distributed import RayRun, RaySettings
    except ImportError as err:
        raise fail(f"--engine ray needs Ray Data ({err.msg}): pip install 'vqa-gen[ray]'"
                   ) from None
    return RayRun(options, RaySettings(address=address, actors=actors))


@app.command()
def templates() -> None:
    """List the available prompt templates."""
    from .templates import list_templates

    table = Table("version", "output", "modalities", "description")
    table.columns.insert(0, Table("name").columns[0])
    table.columns[0].no_wrap = table.columns[2].no_wrap = True
    for t in sorted(list_templates(), key=lambda t: t.name):
        table.add_row(t.name, t.version, t.output, ", ".join(t.modalities), t.description)
    Console().print(table)


# -- the prompt author's loop: render, lint, try, refilter, diff, report ---------------------
def _endpoint(base_url: str | None, api_key: str | None, model: str | None,
              model_path: Path | None, timeout: float, max_retries: int, concurrency: int,
              max_response_bytes: int | None = None) -> Any:
    from .llm import EndpointSettings

    extra = {"max_response_bytes": max_response_bytes} if max_response_bytes else {}
    return EndpointSettings(base_url=base_url, api_key=api_key, model=model,
                            model_path=str(model_path) if model_path else None, timeout=timeout,
                            max_retries=max_retries, concurrency=concurrency, **extra)


def _warn(warnings: list[str]) -> None:
    for w in warnings:
        console.print(f"[yellow]warning:[/] {w}", soft_wrap=True, markup=True)


@app.command()
def render(
    input: Annotated[Path, typer.Argument(help="Caption records: .jsonl or .csv.")],
    template: TemplateOpt = "open_vqa",
    record: Annotated[list[str] | None, typer.Option(
        help="Record id to render (repeatable; default: the first valid record).")] = None,
    qa_per_caption: QaPerCaptionOpt = None,
    seed: SeedOpt = 0,
    temperature: TemperatureOpt = 0.7,
    max_tokens: MaxTokensOpt = 1024,
    as_json: Annotated[bool, typer.Option("--json", help="Print the request body as JSON.")
                       ] = False,
) -> None:
    """Print the exact messages and parameters `run` would send for a record. No call is made."""
    from rich.rule import Rule
    from rich.text import Text

    from .authoring import render_request, select_records
    from .pipeline import GenerationSettings
    from .templates import load_template

    try:
        t = load_template(template)
        items = select_records(input, record_ids=record or (), n=None if record else 1)
        settings = GenerationSettings(qa_per_caption=qa_per_caption, seed=seed,
                                      temperature=temperature, max_tokens=max_tokens)
        requests = [render_request(t, i.record, settings) for i in items if i.record]
    except OSError as err:
        raise fail(_os_error(err, None)) from None
    if not requests:
        raise fail(f"no valid record in {input}")
    out = Console(highlight=False, soft_wrap=True)
    for req in requests:
        if as_json:
            out.print_json(json.dumps(req.to_dict(), ensure_ascii=False))
            continue
        out.print(Rule(f"{t.name} {t.version} · record {req.record_id}"))
        if req.skipped:
            out.print(f"[yellow]skipped:[/] {req.skipped} (no call would be made)")
            continue
        for m in req.messages:
            out.print(Rule(m["role"], style="dim", align="left"))
            out.print(Text(m["content"]))
        params = {k: v for k, v in req.params.items() if k != "response_format"}
        out.print(Rule("parameters", style="dim", align="left"))
        out.print(Text(json.dumps(params)))
        if "response_format" in req.params:
            out.print(Rule("response_format", style="dim", align="left"))
            out.print(Text(json.dumps(req.params["response_format"], indent=2)))


@app.command()
def lint(
    template: Annotated[str, typer.Argument(help="Template name or .j2 path.")],
    input: Annotated[Path | None, typer.Option(
        help="Records to render against (default: the bundled samples/captions.jsonl).")
    ] = None,
) -> None:
    """Check a template: header, examples, undefined variables, the JSON instruction, wording
    that leaks "the caption" into questions, rendering on sample records. Exit 1 on errors."""
    from rich.markup import escape

    from .authoring import lint_template

    path = input or _samples_path()
    if path is None or not path.is_file():
        raise fail("no sample records found; pass --input FILE")
    report = lint_template(template, path)
    table = Table("level", "check", "message", title=f"lint {report.template}",
                  title_justify="left")
    for i in report.issues:
        style = "red" if i.level == "error" else "yellow"
        table.add_row(f"[{style}]{i.level}[/]", escape(i.code), escape(i.message))
    out = Console(highlight=False)
    if report.issues:
        out.print(table)
    out.print(f"{report.template}: {len(report.errors)} error(s), {len(report.warnings)} "
              f"warning(s); rendered {report.rendered} record(s), skipped {report.skipped}")
    if report.errors:
        raise typer.Exit(1)


def _samples_path() -> Path | None:
    from .templates import builtin_prompt_dirs

    bundled = Path(__file__).resolve().parent / "_samples" / "captions.jsonl"
    if bundled.is_file():  # an installed wheel (pyproject force-includes samples/)
        return bundled
    for d in builtin_prompt_dirs():
        for p in (d.parent / "samples" / "captions.jsonl", d / "samples" / "captions.jsonl"):
            if p.is_file():
                return p
    return None


def _verdict_cell(g: Any) -> str:
    return (f"[green]kept[/]\n{g.score:.2f}" if g.passed else f"[red]rejected[/]\n{g.score:.2f}")


def _reasons_cell(reasons: Any) -> str:
    from rich.markup import escape

    return "\n".join(f"[bold]{escape(r.code)}[/]" + escape(f" {r.detail}")
                     + (escape(f" ({r.evidence})") if r.evidence else "") for r in reasons)


@app.command("try")
def try_(
    input: Annotated[Path, typer.Argument(help="Caption records: .jsonl or .csv.")],
    template: TemplateOpt = "open_vqa",
    n: Annotated[int, typer.Option("-n", "--n", min=1, help="Records to try.")] = 5,
    record: Annotated[list[str] | None, typer.Option(help="Try these record ids instead.")
                      ] = None,
    base_url: BaseUrlOpt = None,
    api_key: ApiKeyOpt = None,
    model: ModelOpt = None,
    model_path: ModelPathOpt = None,
    qa_per_caption: QaPerCaptionOpt = None,
    temperature: TemperatureOpt = 0.7,
    seed: SeedOpt = 0,
    max_tokens: MaxTokensOpt = 1024,
    concurrency: ConcurrencyOpt = 8,
    timeout: TimeoutOpt = 120.0,
    max_retries: MaxRetriesOpt = 6,
    strictness: StrictnessOpt = None,
    filter_config: FilterConfigOpt = None,
    cache: CacheOpt = None,
    no_cache: NoCacheOpt = False,
) -> None:
    """Generate and grade QA for a few records and show each QA with its verdict and reasons.
    Uses the same endpoint flags as `run` and the response cache: unchanged prompts cost
    nothing."""
    from rich.markup import escape

    from .authoring import try_template
    from .pipeline import GenerationSettings
    from .preflight import check_input, check_model_fit
    from .templates import load_template

    endpoint = _endpoint(base_url, api_key, model, model_path, timeout, max_retries, concurrency)
    check_input(input)
    check_model_fit(load_template(template), endpoint)
    try:
        outcome = try_template(
            input, template, n=n, record_ids=record or (),
            settings=GenerationSettings(qa_per_caption=qa_per_caption, temperature=temperature,
                                        seed=seed, max_tokens=max_tokens),
            filter=_load_filter_config(strictness, filter_config), endpoint=endpoint,
            cache_path=cache, use_cache=not no_cache)
    except OSError as err:
        raise fail(_os_error(err, cache.parent if cache else None)) from None
    _warn(outcome.warnings)
    out = Console(highlight=False)
    kept = total = 0
    for r in outcome.results:
        title = f"{r.record_id or f'line {r.line}'}"
        if r.record is not None:
            title += f" · {r.record.modality or 'unknown'}"
        if r.invalid is not None:
            out.print(f"[red]{escape(title)}: invalid input[/] {escape(r.invalid.reason)}")
            continue
        if r.skipped:
            out.print(f"[yellow]{escape(title)}: skipped[/] ({escape(r.skipped)})")
            continue
        if r.failure is not None:
            out.print(f"[red]{escape(title)}: failed[/] {escape(r.failure.kind)}: "
                      f"{escape(r.failure.message)}")
            continue
        assert r.record is not None  # not invalid, so a record
        # the caption goes above its record's table: below, it reads as the next record's
        out.print(f"[bold]{escape(title)}[/]")
        out.print(f"[dim]caption:[/] {escape(r.record.caption)}", soft_wrap=False)
        samples = sorted(r.kept + r.rejected, key=lambda s: s.index)
        table = Table(show_lines=True)
        table.add_column("#", no_wrap=True)  # 1-based, like "near-duplicate of question 2"
        table.add_column("type", no_wrap=True)
        table.add_column("question", ratio=3, overflow="fold")
        table.add_column("answer", ratio=3, overflow="fold")
        table.add_column("verdict", no_wrap=True)
        # wide enough for the longest reason code, so codes wrap between words, never inside
        table.add_column("reasons", ratio=3, width=max(  # with a ratio: the minimum width
            (len(x.code) for q in samples for x in q.grounding.reasons), default=7))
        for s in samples:
            total += 1
            kept += s.grounding.passed
            answer = escape(s.answer)
            if s.extra.get("options"):
                answer = "\n".join(
                    ("[bold]" if i == s.extra["answer_index"] else "")
                    + escape(f"{'ABCD'[i]}. {o}")
                    + (" ✓[/]" if i == s.extra["answer_index"] else "")
                    for i, o in enumerate(s.extra["options"]))
            question = escape(s.question)
            if s.extra.get("conversation"):
                turns = s.extra["conversation"]
                question = "\n".join(escape(f"{i + 1}. {t['question']}")
                                     for i, t in enumerate(turns))
                answer = "\n".join(
                    escape(f"{i + 1}. {t['answer']}")
                    + ("" if t["grounding"]["passed"] else " [red]✗[/]")
                    for i, t in enumerate(turns))
            table.add_row(str(s.index + 1), escape(s.type), question, answer,
                          _verdict_cell(s.grounding), _reasons_cell(s.grounding.reasons))
        out.print(table)
    rate = f" ({kept / total:.0%})" if total else ""
    out.print(f"{outcome.template.name} {outcome.template.version} on {outcome.model}: kept "
              f"{kept}/{total}{rate} · LLM calls {outcome.calls} · cache hits "
              f"{outcome.cache_hits}")


@app.command()
def refilter(
    out_dir: Annotated[Path, typer.Argument(help="A finished run's output folder.")],
    strictness: Annotated[str | None, typer.Option(
        help="New grounding filter preset: lenient, default or strict.")] = None,
    filter_config: Annotated[Path | None, typer.Option(
        help="New filter settings (JSON). Without this and --strictness, the run's own "
             "settings are re-applied (useful after a filter code change).")] = None,
) -> None:
    """Re-grade a finished run with (new) filter settings from its stored raw replies: zero LLM
    calls. Rewrites its shards and manifest in place."""
    from .refilter import refilter_run

    config = None
    if strictness is not None or filter_config is not None:
        config = _load_filter_config(strictness, filter_config)
    summary = refilter_run(out_dir, config)
    b, a = summary.before, summary.after
    table = Table("", "before", "after", title=f"refiltered {out_dir} (0 LLM calls)",
                  title_justify="left")
    for key in ("qa_generated", "qa_kept", "qa_rejected", "records_failed"):
        table.add_row(key.replace("_", " "), str(b.get(key, "")), str(a.get(key, "")))
    rates = [f"{c['qa_kept'] / c['qa_generated']:.1%}" if c.get("qa_generated") else "-"
             for c in (b, a)]
    table.add_row("kept rate", *rates)
    Console(highlight=False).print(table)
    if summary.reparse_failures:
        console.print(f"[yellow]{summary.reparse_failures} stored repl(ies) no longer parse[/]: "
                      "those records now count as failed (see failed.jsonl)")


@app.command()
def diff(
    dir_a: Annotated[Path, typer.Argument(help="The baseline run folder.")],
    dir_b: Annotated[Path, typer.Argument(help="The run to compare with it.")],
    examples: Annotated[int, typer.Option(min=0, help="Changed records to show.")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="Print the full diff as JSON.")
                       ] = False,
) -> None:
    """Compare two runs: kept rate, rejection reasons, QA types, and the records whose kept or
    rejected QA changed, with examples."""
    from rich.markup import escape

    from .rundiff import diff_runs

    d = diff_runs(dir_a, dir_b)
    s = d.summary()
    out = Console(highlight=False)
    if as_json:
        out.print_json(json.dumps(s, ensure_ascii=False))
        return

    def pct(v: float | None) -> str:
        return "-" if v is None else f"{v:.1%}"

    def delta(a: float, b: float) -> str:
        return f"{b - a:+g}" if b != a else ""

    t = Table("", "A", "B", "Δ", title=f"A = {dir_a}   B = {dir_b}", title_justify="left")
    t.add_row("template", escape(" ".join(map(str, s["template"]))),
              escape(" ".join(map(str, s["template_b"]))), "")
    t.add_row("QA", str(s["qa"][0]), str(s["qa"][1]), delta(*s["qa"]))
    t.add_row("kept", str(s["kept"][0]), str(s["kept"][1]), delta(*s["kept"]))
    ka, kb = s["kept_rate"]
    t.add_row("kept rate", pct(ka), pct(kb),
              f"{(kb - ka) * 100:+.1f} pts" if ka is not None and kb is not None else "")
    out.print(t)
    if s["reasons"]:
        t = Table("reason", "A", "B", "Δ", title="rejected QA by reason", title_justify="left")
        for code, (a, b) in s["reasons"].items():
            t.add_row(code, str(a), str(b), delta(a, b))
        out.print(t)
    t = Table("type", "A kept/all", "B kept/all", title="QA types", title_justify="left")
    for name, v in s["types"].items():
        t.add_row(escape(name), f"{v['kept_a']}/{v['a']}", f"{v['kept_b']}/{v['b']}")
    out.print(t)
    out.print(f"records whose kept/rejected QA changed: {s['records_changed']} of "
              f"{s['records_compared']}")
    for change in d.changes[:examples]:
        t = Table("", "question", "answer", "B verdict", title=escape(change.record_id),
                  title_justify="left", show_lines=True)
        for row in change.newly_kept[:3]:
            t.add_row("[green]+ kept[/]", escape(row["question"]), escape(row["answer"]), "")
        for row in change.no_longer_kept[:3]:
            reasons = ", ".join(r["code"] for r in row.get("grounding", {}).get("reasons", []))
            t.add_row("[red]- kept[/]", escape(row["question"]), escape(row["answer"]),
                      escape(reasons or "(not generated in B)"))
        if change.only_a or change.only_b:
            t.add_row("", f"[dim]{change.only_a} QA only in A, {change.only_b} only in B[/]", "",
                      "")
        out.print(t)


@app.command()
def report(
    out_dir: Annotated[Path, typer.Argument(help="A run's output folder.")],
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Where to write the HTML (default: DIR/report.html).")] = None,
) -> None:
    """Write a self-contained HTML report of a run (counts, charts, rejection reasons,
    examples per modality) that opens in any browser."""
    from .report import write_report

    try:
        path = write_report(out_dir, output)
    except OSError as err:
        raise fail(_os_error(err, (output or out_dir / "report.html").parent)) from None
    Console(highlight=False, soft_wrap=True).print(f"report written to {path}")


@app.command()
def check(
    input: Annotated[Path, typer.Argument(help="QA file to audit: .jsonl or .csv, one QA pair "
                                               "per row with its caption.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output JSONL: every input row plus "
                                                          "a `grounding` verdict.")],
    caption_field: Annotated[str, typer.Option(help="Field holding the caption.")] = "caption",
    question_field: Annotated[str, typer.Option(help="Field holding the question.")
                              ] = "question",
    answer_field: Annotated[str, typer.Option(help="Field holding the answer.")] = "answer",
    record_field: Annotated[str | None, typer.Option(
        help="Field grouping consecutive rows into records for the duplicate-question check "
             "(default: each row is its own record).")] = None,
    strictness: StrictnessOpt = None,
    filter_config: FilterConfigOpt = None,
) -> None:
    """Audit any existing VQA dataset with the caption-grounding filter (no LLM calls)."""
    from .audit import audit_file

    if not input.is_file():
        raise fail(f"{input}: no such file")
    cfg = _load_filter_config(strictness, filter_config)
    try:
        summary = audit_file(input, out, caption_field=caption_field,
                             question_field=question_field, answer_field=answer_field,
                             config=cfg, record_field=record_field)
    except OSError as err:
        raise fail(_os_error(err, out.parent)) from None
    _print_audit(summary, out)


def _print_audit(summary: Any, out: Path) -> None:
    """Pass rate, reasons by count and the worst rows of a `check` run."""
    from rich.markup import escape

    show = Console(highlight=False)
    table = Table(title=escape(f"vqa-gen check · {out}"), show_header=False)
    table.add_column("what", style="bold")
    table.add_column("count", justify="right")
    for name, value in (("rows", summary.rows), ("checked", summary.checked),
                        ("passed", summary.passed), ("failed", summary.failed),
                        ("skipped", summary.skipped)):
        table.add_row(name, f"{value:,}")
    if summary.checked:
        table.add_row("pass rate", f"{summary.passed / summary.checked:.1%}")
    show.print(table)
    if summary.reason_counts:
        reasons = Table("reason", "QA pairs", title="reasons by count")
        for code, n in summary.reason_counts.most_common():
            reasons.add_row(escape(code), f"{n:,}")
        show.print(reasons)
    if summary.worst:
        worst = Table("line", "score", "reasons", "question", "answer",
                      title="lowest-scoring rows")
        for w in summary.worst:  # the text is data: `[/b]` in a question is not markup
            worst.add_row(str(w["line"]), f"{w['score']:.2f}", escape(", ".join(w["codes"])),
                          escape(w["question"][:60]), escape(w["answer"][:60]))
        show.print(worst)
    if summary.skipped:
        console.print(f"[yellow]{summary.skipped} row(s) skipped[/]: "
                      + escape("; ".join(summary.reasons[:3]))
                      + (" ..." if summary.skipped > 3 else ""), soft_wrap=True)


@app.command()
def export(
    run_dir: Annotated[Path, typer.Argument(help="A finished run's output folder.")],
    format: Annotated[str, typer.Option(
        "--format", "-f", help="llava (JSON array), openai (chat fine-tuning JSONL), hf "
                               "(Hugging Face datasets folder) or csv (PMC-VQA columns).")],
    out: Annotated[Path, typer.Option(
        "--out", "-o", help="Output file (llava, openai, csv; with --split one file per split, "
                            "STEM.SPLIT.EXT) or folder (hf).")],
    group: Annotated[str, typer.Option(
        help="llava/openai: `image` = all QA of one image in one conversation, `qa` = one "
             "conversation per QA.")] = "image",
    split: Annotated[str | None, typer.Option(
        help="Splits by image, e.g. train=0.8,val=0.1,test=0.1 (default: all in train).")
                     ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the split assignment.")] = 0,
    types: Annotated[str | None, typer.Option(
        help="Only these QA types, comma-separated (e.g. diagnosis,morphology).")] = None,
    min_score: Annotated[float | None, typer.Option(
        min=0.0, max=1.0, help="Only QA with at least this grounding score.")] = None,
    template: Annotated[str | None, typer.Option(help="Only QA of this template.")] = None,
    include_rejected: Annotated[bool, typer.Option(
        help="csv/hf: also the rejected QA, with the verdict in `passed` and `reasons`.")
                                ] = False,
    image_root: Annotated[Path | None, typer.Option(
        help="Folder the run's `image` paths are relative to (hf: embed the image bytes; "
             "openai: with --embed-images).")] = None,
    image_base_url: Annotated[str | None, typer.Option(
        help="openai: image URL = this + '/' + the image path.")] = None,
    embed_images: Annotated[bool, typer.Option(
        help="openai: images as data URLs read from --image-root.")] = False,
    allow_partial: Annotated[bool, typer.Option(
        help="Export an unfinished run (the records committed so far).")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output.")] = False,
) -> None:
    """Export a run's kept QA as a training set: LLaVA JSON, OpenAI chat JSONL, a Hugging Face
    datasets folder or a PMC-VQA-style CSV, with splits by image. Streams any size; nothing
    appears under the output name until the export is complete."""
    from .export import ExportOptions, export_run, parse_split

    opts = ExportOptions(
        format=format, out=out, group=group,
        split=parse_split(split) if split else (("train", 1.0),), seed=seed,
        types=frozenset(t.strip() for t in types.split(",") if t.strip()) if types
        else None,
        min_score=min_score, template=template, include_rejected=include_rejected,
        image_root=image_root, image_base_url=image_base_url, embed_images=embed_images,
        allow_partial=allow_partial, overwrite=overwrite)
    if format == "hf":
        try:
            import datasets  # noqa: F401
            import pyarrow  # noqa: F401
        except ImportError:
            raise fail("the hf format needs `datasets` and `pyarrow`: pip install "
                       "'vqa-gen[export]'") from None
    summary = export_run(run_dir, opts, on_warning=lambda m: console.print(
        f"[yellow]skipped:[/] {m}", soft_wrap=True, markup=False))
    show = Console(highlight=False, soft_wrap=True)
    table = Table("split", "QA", "items", "images", title=f"exported {run_dir} as {format}",
                  title_justify="left")
    for name, c in summary.splits.items():
        table.add_row(name, f"{c.qa:,}", f"{c.items:,}", f"{c.images:,}")
    show.print(table)
    show.print(f"QA read {summary.read:,} · exported {summary.exported:,} · filtered out "
               f"{summary.filtered:,} · missing image {summary.missing_image:,}")
    for p in summary.outputs:
        show.print(f"  {p}")


# -- batch files: OpenAI Batch API and vLLM run_batch ---------------------------------------
BatchBaseUrlOpt = Annotated[str | None, typer.Option(
    help="Batch API base URL (or OPENAI_BASE_URL; default the OpenAI API).")]
BatchApiKeyOpt = Annotated[str | None, typer.Option(help="API key (or OPENAI_API_KEY).")]
batch_app = typer.Typer(
    help="Run a job as OpenAI Batch files (half the price, no rate limits) or with vLLM's "
         "`run_batch`: prepare, submit, status, fetch, ingest.",
    no_args_is_help=True, rich_markup_mode="markdown")
app.add_typer(batch_app, name="batch")


def _batch_client(base_url: str | None, api_key: str | None) -> Any:
    import openai

    try:
        return openai.OpenAI(base_url=base_url, api_key=api_key)
    except openai.OpenAIError as err:
        raise fail(f"{str(err).splitlines()[0]} (pass --api-key or set OPENAI_API_KEY)"
                   ) from None


@batch_app.command("prepare")
def batch_prepare(
    input: Annotated[Path, typer.Argument(help="Caption records: .jsonl or .csv.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Batch folder (empty or new).")],
    template: TemplateOpt = "open_vqa",
    model: Annotated[str, typer.Option(help="Model name written into every request.")
                     ] = "gpt-4o-mini",
    qa_per_caption: QaPerCaptionOpt = None,
    temperature: TemperatureOpt = 0.7,
    seed: SeedOpt = 0,
    max_tokens: MaxTokensOpt = 1024,
    limit: Annotated[int | None, typer.Option(min=1)] = None,
    shard_size: Annotated[int, typer.Option(min=1, help="QA lines per output shard of the "
                                                        "ingested run.")] = 10_000,
    strictness: StrictnessOpt = None,
    filter_config: FilterConfigOpt = None,
    id_field: IdFieldOpt = "id",
    image_field: ImageFieldOpt = "image",
    caption_field: CaptionFieldOpt = "caption",
    modality_field: ModalityFieldOpt = "modality",
    retry_failed: Annotated[bool, typer.Option(
        help="Re-prepare only the records that failed in the ingested run (DIR/run).")] = False,
    run_dir: Annotated[Path | None, typer.Option(
        help="The ingested run folder for --retry-failed (default DIR/run).")] = None,
    max_requests_per_file: Annotated[int, typer.Option(min=1)] = 50_000,
    max_bytes_per_file: Annotated[int, typer.Option(min=1024)] = 200 * 1024 * 1024,
) -> None:
    """Write requests-NNNNN.jsonl in the OpenAI Batch format: the exact bodies `run` would send
    (template, response_format, per-record seed), split at 50,000 requests or 200 MB."""
    from .batch import PrepareOptions, prepare
    from .pipeline import GenerationSettings
    from .records import FieldMap

    options = PrepareOptions(
        input=input, out_dir=out, model=model, template=template,
        generation=GenerationSettings(qa_per_caption=qa_per_caption, temperature=temperature,
                                      seed=seed, max_tokens=max_tokens),
        filter=_load_filter_config(strictness, filter_config),
        fields=FieldMap(id=id_field, image=image_field, caption=caption_field,
                        modality=modality_field),
        limit=limit, shard_size=shard_size, retry_failed=retry_failed, run_dir=run_dir,
        max_requests_per_file=max_requests_per_file, max_bytes_per_file=max_bytes_per_file)
    summary = prepare(options)
    console.print(f"prepared {summary.requests} request(s) in {len(summary.files)} file(s) in "
                  f"{out} ({summary.records_read} records read, {summary.invalid} invalid, "
                  f"{summary.skipped} skipped by the template)", soft_wrap=True)


def _batch_dir_call(action: str, batch_dir: Path, base_url: str | None, api_key: str | None,
                    **kwargs: Any) -> Any:
    from . import batch

    client = _batch_client(base_url, api_key)
    return getattr(batch, action)(batch_dir, client, **kwargs)


@batch_app.command("submit")
def batch_submit(
    batch_dir: Annotated[Path, typer.Argument(help="A prepared batch folder.")],
    base_url: BatchBaseUrlOpt = None,
    api_key: BatchApiKeyOpt = None,
    completion_window: Annotated[str, typer.Option()] = "24h",
) -> None:
    """Upload each requests file and start its batch. Batch ids are recorded in the folder, so
    running it again never submits a file twice."""
    started = _batch_dir_call("submit", batch_dir, base_url, api_key,
                              completion_window=completion_window)
    for row in started:
        console.print(f"{row['file']}: batch {row['batch_id']} {row['status']}")
    if not started:
        console.print("nothing to submit: every requests file already has a batch")


@batch_app.command("status")
def batch_status(
    batch_dir: Annotated[Path, typer.Argument(help="A submitted batch folder.")],
    base_url: BatchBaseUrlOpt = None,
    api_key: BatchApiKeyOpt = None,
) -> None:
    """Show (and record) the state of every batch of the folder."""
    rows = _batch_dir_call("status", batch_dir, base_url, api_key)
    table = Table("file", "requests", "batch", "status", "done", "failed",
                  title=f"batches of {batch_dir}", title_justify="left")
    for r in rows:
        counts = r.get("request_counts") or {}
        table.add_row(r["file"], str(r["requests"]), r.get("batch_id") or "-", r["status"],
                      str(counts.get("completed", "")), str(counts.get("failed", "")))
    Console(highlight=False).print(table)
    for r in rows:
        for e in r.get("errors") or []:
            console.print(f"[red]{r['file']}[/]: {e}", soft_wrap=True)


@batch_app.command("fetch")
def batch_fetch(
    batch_dir: Annotated[Path, typer.Argument(help="A submitted batch folder.")],
    base_url: BatchBaseUrlOpt = None,
    api_key: BatchApiKeyOpt = None,
) -> None:
    """Download the output and error files of finished batches into DIR/results/."""
    paths = _batch_dir_call("fetch", batch_dir, base_url, api_key)
    console.print(f"{len(paths)} result file(s) in {batch_dir / 'results'}")


@batch_app.command("ingest")
def batch_ingest(
    batch_dir: Annotated[Path, typer.Argument(help="A prepared batch folder.")],
    results: Annotated[list[Path] | None, typer.Option(
        help="Result file(s) in the Batch output format (OpenAI or vLLM run_batch); default: "
             "the files `fetch` downloaded.")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Run folder (default "
                                                                  "DIR/run).")] = None,
    cache: CacheOpt = None,
    no_cache: NoCacheOpt = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Turn batch results into the run folder `run` would write (shards, rejected, failed,
    manifest) and store the replies in the response cache, so a later `run` pays nothing."""
    from .batch import ingest

    with _Progress(None, quiet) as progress:
        manifest, problems = ingest(batch_dir, results or None, out_dir=out,
                                    cache_path=cache, use_cache=not no_cache,
                                    on_result=progress.update)
    for p in problems[:20]:
        console.print(f"[yellow]warning:[/] {p}", soft_wrap=True)
    run_dir = out or batch_dir / "run"
    console.print(_summary_table(manifest, run_dir))
    if manifest["counts"]["records_failed"]:
        console.print(f"[yellow]{manifest['counts']['records_failed']} record(s) failed[/]: see "
                      f"{run_dir / 'failed.jsonl'}; re-prepare them with `vqa-gen batch "
                      f"prepare ... --retry-failed`")


def main() -> None:
    """Entry point of the `vqa-gen` script."""
    try:
        app()
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]")
        sys.exit(130)


if __name__ == "__main__":
    main()
