"""Progress: a bar on a terminal, plain lines (no carriage returns) in a log."""

from __future__ import annotations

from dpokit.progress import LineProgress, progress


def test_a_log_gets_lines_not_carriage_returns(capsys):
    bar = progress(3, "train (dpo)")  # pytest's stderr is not a terminal
    assert isinstance(bar, LineProgress)
    bar.interval = 0.0
    for loss in (0.69, 0.5, 0.3):
        bar.set_postfix({"loss": f"{loss:.2f}"})
        bar.update(1)
    err = capsys.readouterr().err
    assert "\r" not in err
    assert err.splitlines() == ["dpokit: train (dpo): 1/3 step (loss 0.69)", "dpokit: train (dpo): 2/3 step (loss 0.50)",
                                "dpokit: train (dpo): 3/3 step (loss 0.30)"]


def test_lines_come_every_so_often_and_at_the_end(capsys):
    bar = LineProgress(100, "scoring", "batch", interval=3600)
    for _ in range(100):
        bar.update(1)
    assert capsys.readouterr().err.splitlines() == ["dpokit: scoring: 100/100 batch"]
    quiet = progress(5, "x", enabled=False)
    quiet.update(5)
    assert capsys.readouterr().err == ""
