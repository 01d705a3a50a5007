"""A self-contained HTML report of a run: counts (skipped, failed by kind, retries), QA types
and modalities, rejection reasons, failures, and a seeded random sample of examples per
modality: kept, kept but flagged, rejected, and failed records.

One file, no scripts, no external resources (charts are CSS bars), so it opens from disk in any
browser and can be mailed around. Every piece of dataset text (captions, questions, answers,
reasons) is HTML-escaped: captions come from the wild and may contain markup.
"""

from __future__ import annotations

import html
import random
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import orjson

from .grounding import CODES
from .output import STATE_DIR, STATE_FILE, failure_kinds, side_file_rows, skip_reasons
from .records import FieldMap, read_records
from .rundiff import RunData, load_run

EXAMPLES_PER_MODALITY = 3
"""Records sampled per modality and kind of example (kept, kept but flagged, rejected)."""
FAILED_EXAMPLES = 5
CATEGORIES = (("kept", "kept"), ("flagged", "kept but flagged"), ("rejected", "rejected"))

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;
max-width:1100px;padding:0 1rem;color:#1d2330}
h1{font-size:1.5rem;margin-bottom:.2rem}h2{margin-top:2rem;border-bottom:1px solid #ddd}
.meta{color:#555}table{border-collapse:collapse}td,th{padding:.2rem .6rem;text-align:left;
vertical-align:top}th{background:#f3f4f7}.num{text-align:right;font-variant-numeric:tabular-nums}
.bar{display:flex;height:14px;min-width:2px;background:#eceef3;width:320px}
.bar span{display:block;height:100%}.kept{background:#2e9b5f}.rej{background:#d1495b}
.reason{background:#e08a2b}.qa{border:1px solid #e1e3ea;border-radius:6px;padding:.5rem .8rem;
margin:.5rem 0}.qa.k{border-left:4px solid #2e9b5f}.qa.r{border-left:4px solid #d1495b}
.qa.f{border-left:4px solid #e0b02b}.qa.x{border-left:4px solid #777}
.alert{background:#fbe9eb;border:1px solid #d1495b;border-radius:6px;padding:.5rem .8rem}
.caption{color:#555;font-style:italic}.codes code{background:#f6e3e5;padding:0 .3rem;
margin-right:.3rem;border-radius:3px}.legend span{display:inline-block;width:10px;height:10px;
margin:0 .3rem 0 1rem}ol.opts{margin:.2rem 0}.correct{font-weight:600}
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _bar(parts: list[tuple[str, float]], total: float) -> str:
    if total <= 0:
        return '<div class="bar"></div>'
    spans = "".join(f'<span class="{cls}" style="width:{100 * v / total:.2f}%"></span>'
                    for cls, v in parts if v > 0)
    return f'<div class="bar">{spans}</div>'


def _split_chart(title: str, label: str, kept: Counter[str], rejected: Counter[str],
                 css_id: str) -> str:
    keys = sorted(set(kept) | set(rejected), key=lambda k: -(kept[k] + rejected[k]))
    top = max((kept[k] + rejected[k] for k in keys), default=0)
    rows = "".join(
        f'<tr><td>{_e(k)}</td><td class="num">{kept[k]}</td><td class="num">{rejected[k]}</td>'
        f'<td class="num">{kept[k] / (kept[k] + rejected[k]):.0%}</td>'
        f'<td>{_bar([("kept", kept[k]), ("rej", rejected[k])], top)}</td></tr>'
        for k in keys)
    return (f'<h2 id="{css_id}">{_e(title)}</h2><p class="legend"><span class="kept"></span>kept'
            f'<span class="rej"></span>rejected</p><table><tr><th>{_e(label)}</th>'
            f'<th>kept</th><th>rejected</th><th>kept rate</th><th></th></tr>{rows}</table>')


def _captions(run: RunData, record_ids: set[str]) -> dict[str, str]:
    """Captions of the given records from the run's input, if it is still there."""
    try:
        state = orjson.loads((run.path / STATE_DIR / STATE_FILE).read_bytes())
        settings = state.get("settings", {})
        path = Path(settings.get("input", {}).get("path") or run.manifest.get("input", ""))
        fields = FieldMap.from_dict(settings.get("fields") or {})
        if not path.is_file():
            return {}
        out = {}
        for item in read_records(path, fields=fields):
            if item.record is not None and item.record.id in record_ids:
                out[item.record.id] = item.record.caption
                if len(out) == len(record_ids):
                    break
        return out
    except (OSError, ValueError, TypeError):
        return {}


def _score(value: Any) -> str:
    """Scores as 0.16 / 1.00, not 0.1554 / 1.0."""
    try:
        return f"{float(value):.2f}"
    except (TypeError, ValueError):
        return "-"


def _category(row: dict[str, Any]) -> str:
    """kept (no reason raised), flagged (kept although a check raised a reason), rejected."""
    g = row.get("grounding") or {}
    if not g.get("passed"):
        return "rejected"
    return "flagged" if g.get("reasons") else "kept"


def sample_examples(rows: list[dict[str, Any]], seed: int, per_group: int = EXAMPLES_PER_MODALITY
                    ) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """A seeded random sample per modality and category: at most `per_group` QA, each from a
    different record, so the examples show different captions and not always the first (and
    often best) records. The same run and seed give the same sample."""
    groups: dict[tuple[str, str], dict[str, list[dict[str, Any]]]] = defaultdict(dict)
    for row in rows:
        key = (str(row.get("modality") or "unknown"), _category(row))
        groups[key].setdefault(str(row.get("record_id")), []).append(row)
    out: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(
        lambda: {c: [] for c, _ in CATEGORIES})
    for (modality, category), by_record in sorted(groups.items()):
        rng = random.Random(f"{seed}/{modality}/{category}")
        ids = rng.sample(sorted(by_record), min(per_group, len(by_record)))
        out[modality][category] = [rng.choice(by_record[i]) for i in ids]
    return out


def _qa_html(row: dict[str, Any], caption: str | None) -> str:
    g = row.get("grounding", {})
    cls = {"kept": "k", "flagged": "f", "rejected": "r"}[_category(row)]
    parts = [f'<div class="qa {cls}">']
    if caption:
        parts.append(f'<div class="caption">{_e(caption)}</div>')
    parts.append(f'<div class="meta">{_e(row.get("id"))} · {_e(row.get("type"))} · score '
                 f'<span class="score">{_score(g.get("score"))}</span></div>')
    if row.get("conversation"):
        for turn in row["conversation"]:
            ok = turn.get("grounding", {}).get("passed")
            parts.append(f'<div><b>Q:</b> {_e(turn.get("question"))}<br><b>A:</b> '
                         f'{_e(turn.get("answer"))} {"" if ok else "✗"}</div>')
    else:
        parts.append(f'<div><b>Q:</b> {_e(row.get("question"))}</div>')
        if row.get("options"):
            items = "".join(
                f'<li class="{"correct" if i == row.get("answer_index") else ""}">{_e(o)}</li>'
                for i, o in enumerate(row["options"]))
            parts.append(f'<ol class="opts" type="A">{items}</ol>')
        parts.append(f'<div><b>A:</b> {_e(row.get("answer"))}</div>')
    reasons = g.get("reasons") or []
    if reasons:
        codes = "".join(f'<code title="{_e(r.get("detail", ""))}">{_e(r["code"])}</code>'
                        f'{_e(r.get("evidence") or "")} ' for r in reasons)
        parts.append(f'<div class="codes">{codes}</div>')
    parts.append("</div>")
    return "".join(parts)


def render_report(out_dir: Path) -> str:
    """The HTML report of the run in `out_dir`."""
    run = load_run(out_dir)
    m = run.manifest
    c = m.get("counts", {})
    kept_rows, rej_rows = run.kept, run.rejected
    n_qa = len(kept_rows) + len(rej_rows)
    t = m.get("template") or {}
    f = m.get("filter") or {}

    seed = int((m.get("generation") or {}).get("seed") or 0)
    examples = sample_examples(kept_rows + rej_rows, seed)
    failed_rows = list(side_file_rows(out_dir, "failed.jsonl"))
    failed_sample = random.Random(f"{seed}/failed").sample(
        failed_rows, min(FAILED_EXAMPLES, len(failed_rows)))
    failed_sample.sort(key=lambda r: r.get("line", 0))
    wanted = {str(r.get("record_id")) for e in examples.values() for rows in e.values()
              for r in rows} | {str(r.get("record_id")) for r in failed_sample}
    captions = _captions(run, wanted)

    out = ['<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>vqa-gen report: {_e(out_dir.name or out_dir)}</title>",
           f"<style>{_CSS}</style></head><body>",
           f'<h1>vqa-gen report</h1><p class="meta">{_e(out_dir)} · status '
           f'<b id="status">{_e(m.get("status"))}</b> · template {_e(t.get("name"))} '
           f'{_e(t.get("version"))} ({_e(t.get("content_hash"))}, output '
           f'{_e(t.get("output"))}) · model {_e(m.get("model"))} · filter '
           f'{_e(f.get("strictness"))} (threshold {_e(f.get("threshold"))})'
           + (f' · refiltered {_e(m["refiltered"])}' if m.get("refiltered") else "")
           + "</p>"]
    produced = c.get("records_done", 0) - c.get("records_skipped", 0)
    if c.get("records_read") and produced <= 0:
        out.append(f'<p class="alert" id="no-output"><b>No record produced QA</b>: '
                   f'{_e(c.get("records_failed", 0))} failed, {_e(c.get("records_skipped", 0))} '
                   f'skipped, {_e(c.get("records_invalid", 0))} invalid of '
                   f'{_e(c.get("records_read"))} read. See <a href="#failures">failures</a>.</p>')
    elif m.get("error"):
        out.append(f'<p class="alert" id="error">{_e(m.get("status"))}: {_e(m["error"])}</p>')
    rate = run.kept_rate or 0.0
    out.append(f'<h2 id="counts">Counts</h2><p>Kept <b id="kept-rate">{rate:.1%}</b> of {n_qa} '
               f'QA {_bar([("kept", len(kept_rows)), ("rej", len(rej_rows))], n_qa)}</p><table>')
    kinds = failure_kinds(out_dir)
    skips = skip_reasons(out_dir)
    notes = {
        "records_done": "of which skipped below" if c.get("records_skipped") else "",
        "records_skipped": "; ".join(f"{k}: {v}" for k, v in skips.items()),
        "records_failed": ", ".join(f"{k} {v}" for k, v in kinds.items()),
        "llm_calls": "every attempt counts: first asks, re-asks and HTTP retries",
    }
    counts = dict(c)
    counts["http_retries"] = m.get("http_retries", 0)
    for key in ("records_read", "records_done", "records_skipped", "records_failed",
                "records_invalid", "qa_generated", "qa_kept", "qa_rejected", "llm_calls",
                "reasks", "http_retries", "cache_hits"):
        if key in counts:
            out.append(f'<tr><td>{_e(key.replace("_", " ").replace("reasks", "re-asks"))}</td>'
                       f'<td class="num" id="count-{_e(key)}">{_e(counts[key])}</td>'
                       f'<td class="meta">{_e(notes.get(key, ""))}</td></tr>')
    out.append("</table>")
    out.append(_split_chart("QA types", "type", run.type_counts("kept"),
                            run.type_counts("rejected"), "types"))
    out.append(_split_chart("Modalities", "modality", run.modality_counts("kept"),
                            run.modality_counts("rejected"), "modalities"))

    reasons = run.reason_counts()
    top = max(reasons.values(), default=0)
    out.append('<h2 id="reasons">Rejection reasons</h2><p class="meta">Rejected QA per reason '
               "code (a QA can have several).</p><table><tr><th>code</th><th>rejected QA</th>"
               "<th></th><th>meaning</th></tr>")
    for code, n in reasons.most_common():
        out.append(f'<tr><td><code>{_e(code)}</code></td><td class="num">{n}</td>'
                   f'<td>{_bar([("reason", n)], top)}</td><td>{_e(CODES.get(code, ""))}</td>'
                   "</tr>")
    if not reasons:
        out.append('<tr><td colspan="4">no rejections</td></tr>')
    out.append("</table>")

    out.append('<h2 id="failures">Failed records</h2>')
    if kinds:
        out.append('<table><tr><th>kind</th><th>records</th><th>example message</th></tr>')
        first_message = {}
        for r in failed_rows:
            first_message.setdefault((r.get("error") or {}).get("kind"),
                                     (r.get("error") or {}).get("message", ""))
        for kind, n in kinds.items():
            out.append(f'<tr><td><code>{_e(kind)}</code></td><td class="num" '
                       f'id="failed-{_e(kind)}">{n}</td><td>{_e(first_message.get(kind, ""))}'
                       "</td></tr>")
        out.append(f"</table><h4>failed (sample of {len(failed_sample)})</h4>")
        for r in failed_sample:
            err = r.get("error") or {}
            caption = captions.get(str(r.get("record_id")))
            out.append('<div class="qa x">'
                       + (f'<div class="caption">{_e(caption)}</div>' if caption else "")
                       + f'<div class="meta">{_e(r.get("record_id"))} · line {_e(r.get("line"))}'
                       f' · {_e(err.get("attempts", 0))} attempt(s)</div><div><code>'
                       f'{_e(err.get("kind"))}</code> {_e(err.get("message"))}</div></div>')
    else:
        out.append("<p>no failed records</p>")

    out.append('<h2 id="examples">Examples per modality</h2><p class="meta">A random sample '
               f"(seed {seed}) of up to {EXAMPLES_PER_MODALITY} records per modality and kind; "
               "<i>kept but flagged</i> are kept QA for which a check raised a reason below the "
               "threshold.</p>")
    for modality in sorted(examples):
        out.append(f'<section class="modality" data-modality="{_e(modality)}"><h3>'
                   f"{_e(modality)}</h3>")
        for which, label in CATEGORIES:
            rows = examples[modality][which]
            out.append(f'<h4 data-kind="{which}">{label} ({len(rows)} shown)</h4>')
            out.extend(_qa_html(r, captions.get(str(r.get("record_id")))) for r in rows)
        out.append("</section>")
    out.append("</body></html>\n")
    return "".join(out)


def write_report(out_dir: Path, path: Path | None = None) -> Path:
    """Write the report (default `out_dir/report.html`) and return its path."""
    target = path or out_dir / "report.html"
    target.write_text(render_report(out_dir), encoding="utf-8")
    return target
