"""PNG charts of a run's metrics (loss, rewards, margins, accuracies, log-probs).

Reads ``RUN_DIR/metrics.jsonl`` (one JSON object per logged step; eval lines carry
``eval_``-prefixed keys) and writes ``RUN_DIR/plots/<chart>.png`` plus
``RUN_DIR/plots/series.json``: the exact (step, value) series drawn, so that what a chart
shows can be checked against the metrics without reading pixels.

Matplotlib is used through its object API (``Figure`` + the Agg canvas), never pyplot, so
plotting works headless and leaves the process's global backend alone.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from dpokit.errors import DpokitError

METRICS_FILE = "metrics.jsonl"
PLOTS_DIR = "plots"
SERIES_FILE = "series.json"
EVAL_PREFIX = "eval_"

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
class Metrics:
    """The rows of a ``metrics.jsonl``, split into training and eval lines."""

    train: list[dict[str, Any]] = field(default_factory=list)
    eval: list[dict[str, Any]] = field(default_factory=list)
    path: Path | None = None


@dataclass
class Series:
    """One plotted line: ``steps[i]`` is the x of ``values[i]`` (NaN/None values are gaps)."""

    steps: list[float] = field(default_factory=list)
    values: list[float | None] = field(default_factory=list)

    def to_json(self) -> dict[str, list]:
        return {"step": self.steps, "value": self.values}


def write_atomic(path: Union[str, Path], data: Union[str, bytes]) -> Path:
    """Write ``data`` to ``path`` through a temp file in the same dir and a rename.

    A reader (or a killed process) never sees a half-written file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(raw)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def is_eval_row(row: dict[str, Any]) -> bool:
    return any(str(key).startswith(EVAL_PREFIX) for key in row)


def read_metrics(run_dir: Union[str, Path]) -> Metrics:
    """Parse ``RUN_DIR/metrics.jsonl``.

    An unterminated last line that does not parse is skipped: it is what a run killed
    mid-write leaves. Any other bad line is an error naming the file and line.
    """
    run_dir = Path(run_dir)
    path = run_dir / METRICS_FILE
    if not run_dir.is_dir():
        raise DpokitError(f"{run_dir}: run directory not found", "pass the output_dir of a training run")
    if not path.is_file():
        raise DpokitError(
            f"{path}: no metrics file in this run directory",
            "is this a dpokit run dir? metrics.jsonl appears after the first logged training step",
        )
    text = path.read_text(encoding="utf-8", errors="replace")
    lines = text.split("\n")
    metrics = Metrics(path=path)
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            is_torn_tail = number == len(lines) and not text.endswith("\n")
            if is_torn_tail:
                continue
            raise DpokitError(f"{path}:{number}: not valid JSON ({err.msg})", "fix or delete that line") from None
        if not isinstance(row, dict):
            raise DpokitError(f"{path}:{number}: expected a JSON object per line, got {type(row).__name__}")
        if "step" not in row:
            raise DpokitError(f"{path}:{number}: field 'step' missing", "every metrics line needs a 'step'")
        (metrics.eval if is_eval_row(row) else metrics.train).append(row)
    return metrics


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
        written.append(write_atomic(out_dir / f"{chart}.png", buffer.getvalue()))
    payload = {chart: {label: s.to_json() for label, s in lines.items()} for chart, lines in charts.items()}
    write_atomic(out_dir / SERIES_FILE, json.dumps(payload, indent=1) + "\n")
    return written
