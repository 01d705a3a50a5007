"""A self-contained HTML report of a run: counts, QA types and modalities, rejection reasons,
and examples of kept and rejected QA per modality.

One file, no scripts, no external resources (charts are CSS bars), so it opens from disk in any
browser and can be mailed around. Every piece of dataset text (captions, questions, answers,
reasons) is HTML-escaped: captions come from the wild and may contain markup.
"""

from __future__ import annotations

import html
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import orjson

from .grounding import CODES
from .output import STATE_DIR, STATE_FILE
from .records import FieldMap, read_records
from .rundiff import RunData, load_run

EXAMPLES_PER_MODALITY = 3

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


def _qa_html(row: dict[str, Any], caption: str | None) -> str:
    g = row.get("grounding", {})
    cls = "k" if g.get("passed") else "r"
    parts = [f'<div class="qa {cls}">']
    if caption:
        parts.append(f'<div class="caption">{_e(caption)}</div>')
    parts.append(f'<div class="meta">{_e(row.get("id"))} · {_e(row.get("type"))} · score '
                 f'{_e(g.get("score"))}</div>')
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

    examples: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: {"kept": [],
                                                                                "rejected": []})
    for which, rows in (("kept", kept_rows), ("rejected", rej_rows)):
        for row in rows:
            bucket = examples[str(row.get("modality") or "unknown")][which]
            # one example per record, so the examples show different captions
            if len(bucket) < EXAMPLES_PER_MODALITY and all(
                    r.get("record_id") != row.get("record_id") for r in bucket):
                bucket.append(row)
    wanted = {str(r.get("record_id")) for e in examples.values() for rows in e.values()
              for r in rows}
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
    rate = run.kept_rate or 0.0
    out.append(f'<h2 id="counts">Counts</h2><p>Kept <b id="kept-rate">{rate:.1%}</b> of {n_qa} '
               f'QA {_bar([("kept", len(kept_rows)), ("rej", len(rej_rows))], n_qa)}</p><table>')
    for key in ("records_read", "records_done", "records_skipped", "records_failed",
                "records_invalid", "qa_generated", "qa_kept", "qa_rejected", "llm_calls",
                "cache_hits"):
        if key in c:
            out.append(f'<tr><td>{_e(key.replace("_", " "))}</td><td class="num" '
                       f'id="count-{_e(key)}">{_e(c[key])}</td></tr>')
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

    out.append('<h2 id="examples">Examples per modality</h2>')
    for modality in sorted(examples):
        out.append(f'<section class="modality" data-modality="{_e(modality)}"><h3>'
                   f"{_e(modality)}</h3>")
        for which in ("kept", "rejected"):
            rows = examples[modality][which]
            out.append(f"<h4>{which} ({len(rows)} shown)</h4>")
            out.extend(_qa_html(r, captions.get(str(r.get("record_id")))) for r in rows)
        out.append("</section>")
    out.append("</body></html>\n")
    return "".join(out)


def write_report(out_dir: Path, path: Path | None = None) -> Path:
    """Write the report (default `out_dir/report.html`) and return its path."""
    target = path or out_dir / "report.html"
    target.write_text(render_report(out_dir), encoding="utf-8")
    return target
