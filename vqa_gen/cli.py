"""The `vqa-gen` command line: a thin layer of flags and display over the library API."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    name="vqa-gen",
    help="Turn image captions into grounded visual question answering (VQA) data with an LLM.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True, highlight=False)


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print a one-line error (no traceback) and return the Exit to raise."""
    console.print(f"[bold red]error:[/] {message}", soft_wrap=True)
    return typer.Exit(code)


def _load_filter_config(strictness: str | None, filter_config: Path | None) -> Any:
    from .grounding import FilterConfig

    data: dict[str, Any] = {}
    if filter_config is not None:
        try:
            data = json.loads(filter_config.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            raise fail(f"{filter_config}: cannot read filter settings ({err})") from None
    if strictness:
        data["strictness"] = strictness
    try:
        return FilterConfig.model_validate(data)
    except ValueError as err:
        raise fail(f"filter settings: {str(err).splitlines()[0]}") from None


class _Progress:
    """A one-line live status: records/s, kept rate, failures."""

    def __init__(self, total: int | None, quiet: bool) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.quiet = quiet
        self.start = time.monotonic()
        self.progress = Progress(
            TextColumn("[bold]generating"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"), TimeElapsedColumn(),
            console=console, disable=quiet, transient=False,
        )
        self.task = self.progress.add_task("run", total=total, stats="")
        self.seen = 0

    def __enter__(self) -> _Progress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)  # type: ignore[arg-type]

    def update(self, result: Any, writer: Any) -> None:
        self.seen += 1
        if self.quiet:
            return
        c = writer.counts
        elapsed = max(1e-6, time.monotonic() - self.start)
        kept_rate = c.qa_kept / c.qa_generated if c.qa_generated else 0.0
        stats = (f"{self.seen / elapsed:.1f} rec/s · kept {c.qa_kept}/{c.qa_generated} "
                 f"({kept_rate:.0%}) · failed {c.records_failed} · invalid {c.records_invalid}")
        self.progress.update(self.task, completed=self.seen, stats=stats)


def _summary_table(manifest: dict[str, Any], out_dir: Path) -> Table:
    c = manifest["counts"]
    table = Table(title=f"vqa-gen run · {manifest['status']} · {out_dir}", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("count", justify="right")
    rows = [
        ("records read", c["records_read"]), ("records done", c["records_done"]),
        ("records failed", c["records_failed"]), ("records invalid", c["records_invalid"]),
        ("QA generated", c["qa_generated"]), ("QA kept", c["qa_kept"]),
        ("QA rejected", c["qa_rejected"]), ("LLM calls", c["llm_calls"]),
        ("cache hits", c["cache_hits"]), ("tokens", manifest["usage"]["total_tokens"]),
    ]
    for name, value in rows:
        table.add_row(name, f"{value:,}")
    if c["qa_generated"]:
        table.add_row("kept rate", f"{c['qa_kept'] / c['qa_generated']:.1%}")
    return table


@app.command()
def run(
    input: Annotated[Path, typer.Argument(help="Caption records: .jsonl or .csv.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path("out"),
    template: Annotated[str, typer.Option(help="Template name (see `vqa-gen templates`) or "
                                               "path to a .j2 file.")] = "open_vqa",
    base_url: Annotated[str | None, typer.Option(
        help="OpenAI-compatible endpoint, e.g. http://host:8000/v1 (or OPENAI_BASE_URL). "
             "Without it (and without --model) the embedded local model is used.")] = None,
    api_key: Annotated[str | None, typer.Option(
        help="API key (or OPENAI_API_KEY). Never written to logs or outputs.")] = None,
    model: Annotated[str | None, typer.Option(help="Model name at the endpoint.")] = None,
    model_path: Annotated[Path | None, typer.Option(
        help="Serve this GGUF file with the embedded llama.cpp server.")] = None,
    qa_per_caption: Annotated[int | None, typer.Option(
        min=1, max=50, help="QA pairs to ask for per caption (template default if unset).")
    ] = None,
    temperature: Annotated[float, typer.Option(min=0.0, max=2.0)] = 0.7,
    seed: Annotated[int, typer.Option(help="Sampling seed (per record: derived from this "
                                           "and the record id).")] = 0,
    max_tokens: Annotated[int, typer.Option(min=16)] = 1024,
    concurrency: Annotated[int, typer.Option(min=1, max=1024,
                                             help="LLM calls in flight at once.")] = 8,
    timeout: Annotated[float, typer.Option(help="Seconds per LLM call.")] = 120.0,
    max_retries: Annotated[int, typer.Option(min=0, help="Retries per call on 429, 5xx, "
                                                         "timeouts.")] = 6,
    limit: Annotated[int | None, typer.Option(min=1, help="Process at most this many input "
                                                          "records.")] = None,
    shard_size: Annotated[int, typer.Option(min=1, help="QA lines per output shard.")] = 10_000,
    strictness: Annotated[str | None, typer.Option(
        help="Grounding filter preset: lenient, default or strict.")] = None,
    filter_config: Annotated[Path | None, typer.Option(
        help="JSON file with grounding filter settings.")] = None,
    id_field: Annotated[str, typer.Option(help="Input column holding the record id.")] = "id",
    image_field: Annotated[str, typer.Option(help="Input column holding the image.")] = "image",
    caption_field: Annotated[str, typer.Option(help="Input column holding the caption.")
                             ] = "caption",
    modality_field: Annotated[str, typer.Option(help="Input column holding the modality.")
                              ] = "modality",
    cache: Annotated[Path | None, typer.Option(
        help="Response cache file (default: $VQA_GEN_CACHE or ~/.cache/vqa-gen).")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Do not read or write the "
                                                              "response cache.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Start again in an output folder that holds "
                                                 "another run.")] = False,
    retry_failed: Annotated[bool, typer.Option(help="Retry the records that failed in an "
                                                    "earlier run of this folder.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Generate grounded QA pairs for every caption record in INPUT.

    Rerunning the same command on the same --out resumes an unfinished run.
    """
    from .embedded import EmbeddedModelError
    from .pipeline import GenerationSettings
    from .records import FieldMap
    from .runner import EndpointSettings, Run, RunError, RunOptions
    from .templates import TemplateError

    options = RunOptions(
        input=input, out_dir=out, template=template,
        generation=GenerationSettings(qa_per_caption=qa_per_caption, temperature=temperature,
                                      seed=seed, max_tokens=max_tokens),
        filter=_load_filter_config(strictness, filter_config),
        endpoint=EndpointSettings(base_url=base_url, api_key=api_key, model=model,
                                  model_path=str(model_path) if model_path else None,
                                  timeout=timeout, max_retries=max_retries,
                                  concurrency=concurrency),
        shard_size=shard_size, limit=limit,
        fields=FieldMap(id=id_field, image=image_field, caption=caption_field,
                        modality=modality_field),
        overwrite=overwrite, retry_failed=retry_failed, cache_path=cache, use_cache=not no_cache,
    )
    try:
        job = Run(options)
        with _Progress(limit, quiet) as progress:
            manifest = job.run(on_result=progress.update)
    except KeyboardInterrupt:
        console.print(f"[yellow]interrupted:[/] work so far is kept in {out}; run the same "
                      "command again to resume.")
        raise typer.Exit(130) from None
    except (RunError, TemplateError, EmbeddedModelError) as err:
        raise fail(str(err)) from None
    except OSError as err:
        raise fail(f"{getattr(err, 'filename', '') or ''} {err.strerror or err}".strip()
                   ) from None
    console.print(_summary_table(manifest, out))
    if manifest["counts"]["records_invalid"]:
        console.print(f"[yellow]{manifest['counts']['records_invalid']} invalid input "
                      f"record(s)[/]: see {out / 'invalid.jsonl'}")
    if manifest["counts"]["records_failed"]:
        console.print(f"[yellow]{manifest['counts']['records_failed']} record(s) failed[/]: see "
                      f"{out / 'failed.jsonl'}; retry them with --retry-failed")


@app.command()
def templates() -> None:
    """List the available prompt templates."""
    from .templates import list_templates

    table = Table("name", "version", "output", "description")
    for t in sorted(list_templates(), key=lambda t: t.name):
        table.add_row(t.name, t.version, t.output, t.description)
    Console().print(table)


def main() -> None:
    """Entry point of the `vqa-gen` script."""
    try:
        app()
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]")
        sys.exit(130)


if __name__ == "__main__":
    main()
