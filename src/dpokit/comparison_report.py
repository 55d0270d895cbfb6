"""A comparison's report: a summary line, a plain-text side-by-side, and one self-contained HTML page.

Every piece of model output and prompt text is HTML-escaped: the page has no scripts and
shows answers as text, whatever they contain.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Optional, Union

from dpokit.comparison import CompareResult
from dpokit.judges import A, B, TIE, Judgement
from dpokit.outputs import write_file


def _percent(value: Optional[float]) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def summary_line(result: CompareResult) -> str:
    """``B vs A: 7 wins, 2 losses, 1 tie (n=10): win rate 75.0% [95% CI 46.8%, 91.1%]``."""
    w = result.win_rate
    if result.judge_error:
        return f"{len(result.rows)} prompts answered; judging failed: {result.judge_error}"
    if w is None:
        return f"{len(result.rows)} prompts answered (no judge: side by side only)"
    line = f"B vs A: {w.wins} wins, {w.losses} losses, {w.ties} ties (n={w.n})"
    if w.invalid:
        line += f", {w.invalid} without a verdict (not counted)"
    if w.rate is not None:
        line += f": win rate {_percent(w.rate)} [95% CI {_percent(w.ci95[0])}, {_percent(w.ci95[1])}], ties count half"
    if result.judge_warning:
        line = f"WARNING, NOT AN INDEPENDENT JUDGE: {result.judge_warning}\n{line}"
    return line


def format_text(result: CompareResult) -> str:
    """A plain-text side-by-side for the terminal."""
    rule = "-" * 72
    lines = [f"A: {result.model_a}", f"B: {result.model_b}", f"judge: {result.judge or 'none'}", ""]
    for number, row in enumerate(result.rows, start=1):
        lines += [rule, f"[{number}] {row.prompt[-1]['content']}", "", f"A: {row.answer_a}", "", f"B: {row.answer_b}"]
        if row.judgement is not None:
            lines += ["", f"verdict: {_verdict_label(row.judgement)}"]
    lines += [rule, summary_line(result)]
    return "\n".join(lines)


def _verdict_label(judgement: Judgement) -> str:
    label = {A: "A better", B: "B better", TIE: "tie"}.get(judgement.winner, "no verdict")
    if judgement.score_a is not None and judgement.score_b is not None:
        label += f" (score A {judgement.score_a:.4g}, B {judgement.score_b:.4g})"
    return label + (f"; {judgement.note}" if judgement.note else "")


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1200px;
 padding:0 1rem;color:#1d1d1f;background:#fafafa}
h1{font-size:1.5rem}table.meta td{padding:.15rem .8rem .15rem 0;vertical-align:top}
.summary{background:#fff;border:1px solid #ddd;border-radius:8px;padding:1rem;margin:1rem 0}
.counts span{display:inline-block;margin-right:1.2rem;font-size:1.1rem}
.item{background:#fff;border:1px solid #ddd;border-radius:8px;margin:1rem 0;padding:1rem}
.prompt{margin-bottom:.8rem}.turn{margin:.2rem 0}.role{font-weight:600;color:#555;margin-right:.4rem}
.pair{display:grid;grid-template-columns:1fr 1fr;gap:1rem}
.answer{border:2px solid #e5e5e5;border-radius:6px;padding:.6rem}
.answer h3{margin:0 0 .4rem;font-size:.95rem}.win{border-color:#2e9e44;background:#f2fbf4}
.lose{opacity:.8}.tie{border-color:#c9a227}
pre{white-space:pre-wrap;word-wrap:break-word;margin:0;font-family:inherit}
.verdict{margin-top:.6rem;color:#444;font-size:.9rem}.muted{color:#777}
.warning{border:3px solid #c62828;background:#fdecea;color:#8e0000;font-size:1.05rem}
@media (max-width:800px){.pair{grid-template-columns:1fr}}
"""


def _answer_class(judgement: Optional[Judgement], side: str) -> str:
    if judgement is None or judgement.winner is None:
        return "answer"
    if judgement.winner == TIE:
        return "answer tie"
    return "answer win" if judgement.winner == side else "answer lose"


def render_html(result: CompareResult) -> str:
    """The report as one self-contained HTML page (inline CSS, no scripts, all text escaped)."""
    e = lambda value: html.escape(str(value), quote=True)  # noqa: E731
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>dpokit compare: {e(result.model_b)} vs {e(result.model_a)}</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>dpokit compare</h1>",
        '<table class="meta">',
        f"<tr><td>A</td><td>{e(result.model_a)}</td></tr>",
        f"<tr><td>B</td><td>{e(result.model_b)}</td></tr>",
        f"<tr><td>judge</td><td>{e(result.judge or 'none (side by side only)')}</td></tr>",
        f"<tr><td>sampling</td><td>{e(json.dumps(result.sampling, sort_keys=True))}</td></tr>",
        f"<tr><td>prompts</td><td>{len(result.rows)}</td></tr>",
        f"<tr><td>created</td><td>{e(result.created)}</td></tr>",
        "</table>",
    ]
    if result.judge_error:
        parts.append(f'<div class="summary"><b>Judging failed:</b> <pre>{e(result.judge_error)}</pre></div>')
    if result.judge_warning:
        parts.append(f'<div class="summary warning"><b>Not an independent judge.</b> {e(result.judge_warning)}. '
                     "Read the win rate below as the judge's opinion of itself, not as evidence.</div>")
    w = result.win_rate
    if w is not None:
        interval = f"{_percent(w.ci95[0])} to {_percent(w.ci95[1])}" if w.ci95 else "-"
        parts += [
            '<div class="summary"><div class="counts">',
            f"<span>B wins: <b>{w.wins}</b></span><span>A wins: <b>{w.losses}</b></span>",
            f"<span>ties: <b>{w.ties}</b></span>",
            f"<span>no verdict: <b>{w.invalid}</b></span>" if w.invalid else "",
            "</div>",
            f"<p>Win rate of B over A: <b>{_percent(w.rate)}</b> (95% Wilson interval {interval}, n = {w.n}).</p>",
            '<p class="muted">Ties count as half a win; prompts without a usable verdict are left out of n. '
            "Identical answers are ties without asking the judge.</p></div>",
        ]
    for number, row in enumerate(result.rows, start=1):
        turns = "".join(
            f'<div class="turn"><span class="role">{e(m["role"])}</span><pre>{e(m["content"])}</pre></div>'
            for m in row.prompt
        )
        parts += [
            f'<div class="item" id="p{number}"><div class="prompt"><b>#{number}</b>{turns}</div><div class="pair">',
            f'<div class="{_answer_class(row.judgement, A)}"><h3>A <span class="muted">{e(result.model_a)}</span></h3><pre>{e(row.answer_a)}</pre></div>',
            f'<div class="{_answer_class(row.judgement, B)}"><h3>B <span class="muted">{e(result.model_b)}</span></h3><pre>{e(row.answer_b)}</pre></div>',
            "</div>",
        ]
        if row.judgement is not None:
            parts.append(f'<div class="verdict">verdict: {e(_verdict_label(row.judgement))}</div>')
        parts.append("</div>")
    parts.append("</body></html>\n")
    return "\n".join(p for p in parts if p)


def write_report(result: CompareResult, path: Union[str, Path]) -> Path:
    """Write the HTML report atomically."""
    return write_file(path, render_html(result))
