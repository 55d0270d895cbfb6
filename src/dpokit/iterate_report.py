"""What ``dpokit iterate`` reports: ``OUTPUT_DIR/summary.json``, the printed table and ``summary.png``.

``summary.json``::

    {"rounds": [{"round": 0, "pairs": 0, "mean_score": 0.81, "win_rate_vs_round0": null,
                 "win_rate_ci95": null, "run_dir": "smollm2-135m-instruct"},
                {"round": 1, "pairs": 28, "mean_score": 1.12, "win_rate_vs_round0": 0.62,
                 "win_rate_ci95": [0.41, 0.79], "run_dir": "runs/iterate/round-1/run"}, ...],
     "judge": "...", "eval_judge": "..."}

``mean_score`` is the eval judge's mean score of the round's greedy answers on the held-out
prompts (None for a pairwise judge, which gives no scores, or without an eval judge);
``win_rate_vs_round0`` is those answers' win rate against round 0's (ties half), with its 95%
Wilson interval. Charts use matplotlib's object API on the Agg canvas, as :mod:`dpokit.plot`.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any, Optional, Sequence

from dpokit.outputs import write_file, write_json

SUMMARY_KEYS = ("round", "pairs", "mean_score", "win_rate_vs_round0", "win_rate_ci95", "run_dir")


def summary_row(round_number: int, pairs: int, measured: dict[str, Any], run_dir: str) -> dict[str, Any]:
    """One round's line of ``summary.json`` from its ``eval.json`` contents."""
    win = measured.get("win_rate_vs_round0") or {}
    return {"round": round_number, "pairs": pairs, "mean_score": measured.get("mean_score"),
            "win_rate_vs_round0": win.get("rate"), "win_rate_ci95": win.get("ci95"), "run_dir": run_dir}


def write_summary(path: Path, rows: Sequence[dict[str, Any]], **extra: Any) -> Path:
    return write_json(path, {"rounds": list(rows), **extra})


def _number(value: Optional[float], digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """The summary as an aligned text table (one line per round)."""
    header = ("round", "pairs", "mean score", "win rate vs round 0 [95% CI]", "model")
    lines = []
    for row in rows:
        ci = row.get("win_rate_ci95")
        win = "-" if row.get("win_rate_vs_round0") is None else (
            f"{row['win_rate_vs_round0']:.2f} [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else f"{row['win_rate_vs_round0']:.2f}")
        lines.append((str(row["round"]), str(row["pairs"]), _number(row.get("mean_score")), win, str(row["run_dir"])))
    widths = [max(len(h), *(len(line[i]) for line in lines)) if lines else len(h) for i, h in enumerate(header)]
    out = ["  ".join(h.rjust(w) if i < 4 else h for i, (h, w) in enumerate(zip(header, widths)))]
    for line in lines:
        out.append("  ".join(v.rjust(w) if i < 4 else v for i, (v, w) in enumerate(zip(line, widths))))
    return "\n".join(out)


def plot_summary(rows: Sequence[dict[str, Any]]) -> bytes:
    """PNG: the mean score per round (left) and the win rate against round 0 with its interval (right)."""
    from matplotlib.figure import Figure

    rounds = [row["round"] for row in rows]
    fig = Figure(figsize=(9, 3.6), dpi=100, layout="constrained")
    score_ax, win_ax = fig.subplots(1, 2)
    scores = [math.nan if row.get("mean_score") is None else row["mean_score"] for row in rows]
    score_ax.plot(rounds, scores, marker="o", color="tab:blue")
    score_ax.set_title("Judge's mean score, held-out prompts")
    score_ax.set_ylabel("mean score")
    measured = [(row["round"], row["win_rate_vs_round0"], row.get("win_rate_ci95")) for row in rows
                if row.get("win_rate_vs_round0") is not None]
    if measured:
        xs = [m[0] for m in measured]
        ys = [m[1] for m in measured]
        low = [y - (ci[0] if ci else y) for _, y, ci in measured]
        high = [(ci[1] if ci else y) - y for _, y, ci in measured]
        win_ax.errorbar(xs, ys, yerr=[low, high], marker="o", capsize=4, color="tab:green")
    win_ax.axhline(0.5, color="grey", linestyle="--", linewidth=1)
    win_ax.set_ylim(-0.02, 1.02)
    win_ax.set_title("Win rate vs round 0 (95% interval)")
    win_ax.set_ylabel("win rate")
    for ax in (score_ax, win_ax):
        ax.set_xlabel("round")
        ax.set_xticks(rounds)
        ax.set_xlim(min(rounds) - 0.3, max(rounds) + 0.3)
        ax.grid(True, alpha=0.3)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def write_plot(path: Path, rows: Sequence[dict[str, Any]]) -> Path:
    return write_file(path, plot_summary(rows))
