"""PNG charts of a run's metrics (loss, rewards, margins, accuracies, log-probs).

Reads ``RUN_DIR/metrics.jsonl`` (through :func:`dpokit.metrics_log.read_metrics`) and
writes ``RUN_DIR/plots/<chart>.png`` plus
``RUN_DIR/plots/series.json``: the exact (step, value) series drawn, so that what a chart
shows can be checked against the metrics without reading pixels.

Matplotlib is used through its object API (``Figure`` + the Agg canvas), never pyplot, so
plotting works headless and leaves the process's global backend alone.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from dpokit.errors import DpokitError
from dpokit.metrics_log import EVAL_PREFIX, Metrics, read_metrics
from dpokit.outputs import write_file
from dpokit.rundir import PLOTS_DIR

SERIES_FILE = "series.json"

# chart file stem -> (title, y-axis label, metric names drawn on it)
CHARTS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "loss": ("Loss", "loss", ("loss",)),
    "rewards": ("Implicit rewards: chosen vs rejected", "reward", ("rewards/chosen", "rewards/rejected")),
    "margins": ("Reward margin (chosen - rejected)", "margin", ("rewards/margins",)),
    "accuracies": ("Reward accuracy (chosen reward > rejected)", "accuracy", ("rewards/accuracies",)),
    "logps": ("Log-probability of the answers", "log-prob", ("logps/chosen", "logps/rejected")),
}


# Chosen is green and rejected red on every chart; train solid, eval dashed in the same colour.
COLOURS = {"chosen": "tab:green", "rejected": "tab:red"}


@dataclass
class Series:
    """One plotted line: ``steps[i]`` is the x of ``values[i]`` (NaN/None values are gaps)."""

    steps: list[float] = field(default_factory=list)
    values: list[float | None] = field(default_factory=list)

    def to_json(self) -> dict[str, list]:
        return {"step": self.steps, "value": self.values}


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _series(rows: list[dict[str, Any]], key: str) -> Series:
    series = Series()
    for row in rows:
        if key in row:
            series.steps.append(row["step"])
            series.values.append(_number(row[key]))
    return series


def collect_series(metrics: Metrics) -> dict[str, dict[str, Series]]:
    """The series each chart draws: ``{chart: {"train loss": Series, "eval loss": Series}}``.

    Charts and series with no data points are left out (an SFT run has no rewards).
    """
    charts: dict[str, dict[str, Series]] = {}
    for chart, (_, _, names) in CHARTS.items():
        lines: dict[str, Series] = {}
        for name in names:
            for split, rows, key in (("train", metrics.train, name), ("eval", metrics.eval, EVAL_PREFIX + name)):
                series = _series(rows, key)
                if series.steps:
                    lines[f"{split} {name}"] = series
        if lines:
            charts[chart] = lines
    return charts


def _draw(title: str, ylabel: str, lines: dict[str, Series]):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    for label, series in lines.items():
        values = [math.nan if v is None else v for v in series.values]
        split, _, name = label.partition(" ")
        is_eval = split == "eval"
        colour = COLOURS.get(name.rpartition("/")[2], "tab:blue")
        # Eval points are few: markers make single points visible.
        ax.plot(series.steps, values, label=label, color=colour, linestyle="--" if is_eval else "-",
                marker="o" if is_eval or len(values) == 1 else None, markersize=4)
    ax.set_title(title)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    return fig


def plot_run(run_dir: Union[str, Path]) -> list[Path]:
    """Write ``RUN_DIR/plots/*.png`` and ``plots/series.json``; return the PNG paths.

    Raises :class:`DpokitError` when the run dir or its ``metrics.jsonl`` is missing or
    holds no data point to plot.
    """
    import io

    run_dir = Path(run_dir)
    metrics = read_metrics(run_dir)
    charts = collect_series(metrics)
    if not charts:
        raise DpokitError(
            f"{metrics.path}: no metric to plot (no line has loss, rewards/* or logps/*)",
            "let training log at least one step (training.logging_steps)",
        )
    out_dir = run_dir / PLOTS_DIR
    written = []
    for chart, lines in charts.items():
        title, ylabel, _ = CHARTS[chart]
        buffer = io.BytesIO()
        _draw(title, ylabel, lines).savefig(buffer, format="png")
        written.append(write_file(out_dir / f"{chart}.png", buffer.getvalue()))
    payload = {chart: {label: s.to_json() for label, s in lines.items()} for chart, lines in charts.items()}
    write_file(out_dir / SERIES_FILE, json.dumps(payload, indent=1) + "\n")
    return written
