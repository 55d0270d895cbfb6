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


def test_the_cli_in_a_log_silences_library_bars():
    """Bars dpokit does not draw (transformers' GGUF conversion is plain tqdm) stay out of a log."""
    import os
    import subprocess
    import sys

    script = ("from dpokit.cli import main; main(['config', 'keys'])\n"
              "from tqdm.auto import tqdm\n"
              "for _ in tqdm(range(3), desc='Converting and de-quantizing GGUF tensors...'): pass\n")
    env = {k: v for k, v in os.environ.items() if k not in ("TQDM_DISABLE", "HF_HUB_DISABLE_PROGRESS_BARS")}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "\r" not in done.stderr and "Converting" not in done.stderr, done.stderr
