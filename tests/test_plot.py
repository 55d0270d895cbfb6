"""`dpokit plot` / plot_run: charts exist, are real PNGs, and draw exactly what metrics.jsonl holds."""

from __future__ import annotations

import json

import pytest

from dpokit.cli import main
from dpokit.errors import DpokitError
from dpokit.metrics_log import read_metrics
from dpokit.plot import CHARTS, collect_series, plot_run

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _train_row(step: int) -> dict:
    return {
        "step": step, "epoch": step / 10, "loss": 0.7 - 0.02 * step,
        "rewards/chosen": 0.01 * step, "rewards/rejected": -0.015 * step,
        "rewards/margins": 0.025 * step, "rewards/accuracies": min(1.0, 0.5 + 0.05 * step),
        "logps/chosen": -120.0 + step, "logps/rejected": -130.0 - step,
        "grad_norm": 1.5, "learning_rate": 5e-5, "tokens_per_second": 900.0,
    }


def _eval_row(step: int) -> dict:
    return {
        "step": step, "eval_loss": 0.69 - 0.01 * step, "eval_rewards/chosen": 0.02 * step,
        "eval_rewards/rejected": -0.01 * step, "eval_rewards/margins": 0.03 * step,
        "eval_rewards/accuracies": 0.6, "eval_logps/chosen": -110.0, "eval_logps/rejected": -115.0,
    }


@pytest.fixture
def run_dir(tmp_path):
    rows = [_train_row(s) for s in range(1, 11)]
    rows.insert(5, _eval_row(5))
    rows.append(_eval_row(10))
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return tmp_path


def _expected(rows: list[dict], key: str) -> tuple[list, list]:
    picked = [r for r in rows if key in r]
    return [r["step"] for r in picked], [r[key] for r in picked]


def test_plot_run_writes_valid_pngs(run_dir):
    import matplotlib.image

    paths = plot_run(run_dir)
    assert sorted(p.stem for p in paths) == sorted(CHARTS)
    for path in paths:
        assert path.parent == run_dir / "plots"
        assert path.read_bytes()[:8] == PNG_SIGNATURE
        pixels = matplotlib.image.imread(path)
        assert pixels.shape[0] > 100 and pixels.shape[1] > 100
        assert pixels.std() > 0  # something was drawn
    assert not [p for p in (run_dir / "plots").iterdir() if p.name.endswith(".tmp")]


def test_plotted_series_equal_metrics(run_dir):
    plot_run(run_dir)
    series = json.loads((run_dir / "plots" / "series.json").read_text())
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if "loss" in r]
    evals = [r for r in rows if "eval_loss" in r]
    for chart, (_, _, names) in CHARTS.items():
        for name in names:
            steps, values = _expected(train, name)
            assert series[chart][f"train {name}"] == {"step": steps, "value": values}
            steps, values = _expected(evals, "eval_" + name)
            assert series[chart][f"eval {name}"] == {"step": steps, "value": values}
    # Chosen and rejected share the rewards chart.
    assert set(series["rewards"]) == {
        "train rewards/chosen", "train rewards/rejected", "eval rewards/chosen", "eval rewards/rejected"}


def test_drawn_lines_hold_the_series(run_dir):
    """What goes onto the axes (Line2D data) is the collected series, NaN for gaps."""
    from dpokit.plot import _draw

    lines = collect_series(read_metrics(run_dir))["rewards"]
    fig = _draw("t", "y", lines)
    drawn = {line.get_label(): line for line in fig.axes[0].get_lines()}
    assert set(drawn) == set(lines)
    for label, series in lines.items():
        assert list(drawn[label].get_xdata()) == series.steps
        assert list(drawn[label].get_ydata()) == series.values


def test_sft_run_and_gaps(tmp_path):
    """Only a loss chart for an SFT run; a non-finite value becomes a gap (null)."""
    rows = [{"step": 1, "loss": 2.0}, {"step": 2, "loss": float("nan")}, {"step": 3, "loss": 1.5}]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    paths = plot_run(tmp_path)
    assert [p.name for p in paths] == ["loss.png"]
    series = json.loads((tmp_path / "plots" / "series.json").read_text())
    assert series == {"loss": {"train loss": {"step": [1, 2, 3], "value": [2.0, None, 1.5]}}}


def test_torn_last_line_is_skipped_but_bad_middle_line_is_an_error(tmp_path):
    good = json.dumps({"step": 1, "loss": 1.0}) + "\n"
    (tmp_path / "metrics.jsonl").write_text(good + '{"step": 2, "lo')
    metrics = read_metrics(tmp_path)
    assert [r["step"] for r in metrics.train] == [1]

    (tmp_path / "metrics.jsonl").write_text(good + "{oops\n" + good)
    with pytest.raises(DpokitError, match=r"metrics.jsonl:2: not valid JSON"):
        read_metrics(tmp_path)


def test_missing_metrics_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(DpokitError, match="no metrics file"):
        plot_run(tmp_path)
    assert main(["plot", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "metrics.jsonl" in err and "Traceback" not in err
    assert main(["plot", str(tmp_path / "nope")]) == 2
    assert "run directory not found" in capsys.readouterr().err


def test_metrics_without_plottable_values(tmp_path):
    (tmp_path / "metrics.jsonl").write_text(json.dumps({"step": 1, "learning_rate": 1e-5}) + "\n")
    with pytest.raises(DpokitError, match="no metric to plot"):
        plot_run(tmp_path)


def test_cli_prints_written_paths(run_dir, capsys):
    assert main(["plot", str(run_dir)]) == 0
    printed = capsys.readouterr().out.split()
    assert sorted(printed) == sorted(str(run_dir / "plots" / f"{c}.png") for c in CHARTS)
