"""Compare two models: their answers to the same prompts side by side, and a judged win rate.

``B``'s win rate over ``A`` counts a tie as half a win::

    win_rate = (wins + ties / 2) / (wins + losses + ties)

with a 95% Wilson score interval (Wilson 1927; Newcombe 1998, method 3) computed on that
rate and ``n = wins + losses + ties``. Prompts where the judge gave no usable verdict
("invalid") are reported and left out of ``n``. Identical answers are a tie without asking
the judge.
"""

from __future__ import annotations

import gc
import html
import json
import math
import sys
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

from dpokit.data.types import Message
from dpokit.errors import DpokitError
from dpokit.judges import A, B, TIE, Judge, Judgement
from dpokit.plot import write_atomic

Z_95 = 1.959963984540054
"""Two-sided 95% quantile of the standard normal."""


# ----------------------------------------------------------------------------- prompts


def load_prompts(path: Union[str, Path], limit: Optional[int] = None,
                 system_prompt: Optional[str] = None) -> list[list[Message]]:
    """The prompts to compare on, read as ``dpokit generate`` reads them (the first ``limit``).

    Accepted: a ``.txt`` file (one prompt per line), JSONL/JSON records with ``prompt``
    (text or messages), ``messages``, ``instruction`` [+ ``input``] or ``question``, or any
    preference file (its distinct prompts). A missing or empty file is a :class:`DpokitError`.
    """
    from dpokit.generate import read_prompts

    prompts = read_prompts(path, system_prompt)
    return prompts[:limit] if limit else prompts


# ----------------------------------------------------------------------------- statistics


def wilson_interval(successes: float, n: float, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval for a proportion ``successes / n`` (``successes`` may be fractional)."""
    if n <= 0:
        raise ValueError("the Wilson interval needs n > 0")
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass
class WinRate:
    """B's results against A. ``rate`` and ``ci95`` are None when no prompt was judged."""

    wins: int
    losses: int
    ties: int
    invalid: int = 0
    rate: Optional[float] = None
    ci95: Optional[tuple[float, float]] = None
    ties_count: str = "half"

    @property
    def n(self) -> int:
        return self.wins + self.losses + self.ties


def win_rate(wins: int, losses: int, ties: int, invalid: int = 0) -> WinRate:
    """B's win rate (ties count half) with its 95% Wilson interval."""
    result = WinRate(wins, losses, ties, invalid)
    if result.n:
        result.rate = (wins + ties / 2) / result.n
        result.ci95 = wilson_interval(wins + ties / 2, result.n)
    return result


# ----------------------------------------------------------------------------- comparing


@dataclass
class CompareRow:
    prompt: list[Message]
    answer_a: str
    answer_b: str
    judgement: Optional[Judgement] = None


@dataclass
class CompareResult:
    model_a: str
    model_b: str
    rows: list[CompareRow]
    judge: Optional[str] = None
    win_rate: Optional[WinRate] = None
    sampling: dict[str, Any] = field(default_factory=dict)
    judge_error: Optional[str] = None
    """Set when judging failed after the answers were generated (the answers are kept)."""
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))

    def to_json(self) -> dict[str, Any]:
        summary = None
        if self.win_rate is not None:
            summary = asdict(self.win_rate)
            summary["n"] = self.win_rate.n
            summary["ci95"] = list(self.win_rate.ci95) if self.win_rate.ci95 else None
        return {
            "model_a": self.model_a, "model_b": self.model_b, "judge": self.judge, "judge_error": self.judge_error,
            "sampling": self.sampling, "created": self.created, "summary": summary,
            "rows": [
                {"prompt": r.prompt, "answer_a": r.answer_a, "answer_b": r.answer_b,
                 **({"winner": r.judgement.winner, "score_a": r.judgement.score_a,
                     "score_b": r.judgement.score_b, "note": r.judgement.note} if r.judgement else {})}
                for r in self.rows
            ],
        }


def judge_answers(prompts: Sequence[list[Message]], answers_a: Sequence[str], answers_b: Sequence[str],
                  judge: Judge) -> tuple[list[Judgement], WinRate]:
    """Ask ``judge`` about every prompt whose answers differ; count B's wins, losses and ties."""
    if not (len(prompts) == len(answers_a) == len(answers_b)):
        raise ValueError("prompts, answers_a and answers_b differ in length")
    judgements: list[Optional[Judgement]] = [
        Judgement(TIE, note="identical answers") if a == b else None for a, b in zip(answers_a, answers_b)
    ]
    ask = [i for i, j in enumerate(judgements) if j is None]
    if ask:
        verdicts = judge.judge([prompts[i] for i in ask], [answers_a[i] for i in ask], [answers_b[i] for i in ask])
        if len(verdicts) != len(ask):
            raise RuntimeError(f"judge {judge.name} returned {len(verdicts)} verdicts for {len(ask)} prompts")
        for i, verdict in zip(ask, verdicts):
            judgements[i] = verdict
    winners = [j.winner for j in judgements]
    counts = win_rate(winners.count(B), winners.count(A), winners.count(TIE),
                      sum(1 for w in winners if w not in (A, B, TIE)))
    return judgements, counts


def generate_with(ref: str, prompts: Sequence[list[Message]], sampling: dict[str, Any], *,
                  dtype: Optional[str] = None, progress: bool = False) -> list[str]:
    """Load ``ref`` (a run, model dir or name), answer every prompt, then free the model."""
    from dpokit.generate import generate_answers
    from dpokit.render import Renderer
    from dpokit.runs import load_for_inference

    model, tokenizer, info = load_for_inference(ref, dtype=dtype)
    if progress:
        print(f"dpokit: answering {len(prompts)} prompts with {info.describe()}", file=sys.stderr)
    try:
        return generate_answers(model, Renderer.for_run(tokenizer, info), list(prompts), show_progress=progress, **sampling)
    finally:
        del model
        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:
            pass


def compare(model_a: str, model_b: str, prompts: Sequence[list[Message]], judge: Optional[Judge] = None,
            sampling: Optional[dict[str, Any]] = None, *, dtype: Optional[str] = None, progress: bool = False,
            generate: Optional[Callable[[str, Sequence[list[Message]], dict[str, Any]], list[str]]] = None,
            ) -> CompareResult:
    """Answers of A, then of B (one model in memory at a time), then the judge's verdicts.

    ``sampling`` holds :func:`dpokit.generate.generate_answers`' keyword arguments
    (``max_new_tokens``, ``do_sample``, ``temperature``, ...; greedy when empty).
    ``generate(ref, prompts, sampling) -> answers`` replaces :func:`generate_with` (tests).
    """
    sampling = dict(sampling or {})
    generate = generate or partial(generate_with, dtype=dtype, progress=progress)
    answers_a = generate(model_a, prompts, sampling)
    answers_b = generate(model_b, prompts, sampling)
    rows = [CompareRow(p, a, b) for p, a, b in zip(prompts, answers_a, answers_b)]
    result = CompareResult(str(model_a), str(model_b), rows, sampling=sampling)
    if judge is not None:
        if progress:
            print(f"dpokit: judging with {judge.name}", file=sys.stderr)
        result.judge = judge.name
        try:
            judgements, result.win_rate = judge_answers(prompts, answers_a, answers_b, judge)
        except DpokitError as err:  # minutes of generation are not thrown away for a judge outage
            result.judge_error = str(err)
            return result
        for row, judgement in zip(rows, judgements):
            row.judgement = judgement
    return result


# ----------------------------------------------------------------------------- reporting


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
    return write_atomic(path, render_html(result))
