"""Checkpoints: atomic layout, rotation, and exact resume after SIGKILL (real subprocesses)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from dpokit import checkpoint as ckpt
from dpokit import rundir
from dpokit.config import dump_config
from dpokit.errors import DpokitError
from test_train import home, one_thread, read_lines, tiny_config, write_pairs  # noqa: F401  (fixtures)


def _fake_checkpoint(root: Path, name: str, complete: bool = True) -> Path:
    path = root / "checkpoints" / name
    path.mkdir(parents=True)
    if complete:
        (path / rundir.TRAINER_STATE).write_text(ckpt.TrainerState(global_step=1).to_json())
    return path


def test_incomplete_saves_are_never_taken_and_get_cleaned(tmp_path):
    for step in (2, 10, 4):
        _fake_checkpoint(tmp_path, f"checkpoint-{step}")
    _fake_checkpoint(tmp_path, ".tmp-checkpoint-12")  # a save killed before its rename
    _fake_checkpoint(tmp_path, "checkpoint-14", complete=False)  # not written by dpokit
    assert [p.name for p in rundir.list_checkpoints(tmp_path)] == ["checkpoint-2", "checkpoint-4", "checkpoint-10"]
    assert rundir.resolve_resume_path("latest", tmp_path).name == "checkpoint-10"
    rundir.remove_incomplete_checkpoints(tmp_path)
    assert not (tmp_path / "checkpoints" / ".tmp-checkpoint-12").exists()
    assert (tmp_path / "checkpoints" / "checkpoint-14").exists()  # not ours to delete


def test_rotation_keeps_the_newest_and_the_one_asked_for(tmp_path):
    for step in (1, 2, 3, 4):
        _fake_checkpoint(tmp_path, f"checkpoint-{step}")
    deleted = ckpt.rotate_checkpoints(tmp_path, 2, keep=tmp_path / "checkpoints" / "checkpoint-1")
    assert [p.name for p in deleted] == ["checkpoint-2"]
    assert [p.name for p in rundir.list_checkpoints(tmp_path)] == ["checkpoint-1", "checkpoint-3", "checkpoint-4"]
    assert ckpt.rotate_checkpoints(tmp_path, None) == []


def test_resume_path_errors_name_what_to_do(tmp_path):
    with pytest.raises(DpokitError, match="no checkpoint in") as err:
        rundir.resolve_resume_path("latest", tmp_path)
    assert "save_steps" in str(err.value)
    with pytest.raises(DpokitError, match="not a dpokit checkpoint"):
        rundir.resolve_resume_path(str(tmp_path), tmp_path)


def _adapter(run_dir: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(run_dir / "final" / "adapter_model.safetensors"))


def _without_timing(record: dict) -> dict:
    return {k: v for k, v in record.items() if k != "tokens_per_second"}


def test_sigkill_then_resume_gives_the_same_weights_and_metrics(tmp_path, tiny_model_dir, home):
    """Uninterrupted run vs. a CLI run SIGKILLed once a checkpoint exists and resumed with `latest`.

    LoRA dropout on, length-grouped batches, gradient accumulation 2, epoch boundaries, eval
    lines and a logging window that straddles checkpoints: everything that draws random
    numbers or depends on the position in the data or in the log.
    """
    from dpokit.recipe import train

    data = write_pairs(tmp_path / "pairs.jsonl", 10)
    settings = ["lora.dropout=0.1", "training.group_by_length=true", "training.max_steps=8", "training.save_steps=2", "training.save_total_limit=2",
                "training.gradient_accumulation_steps=2", "data.eval_fraction=0.2", "training.eval_steps=3",
                "training.learning_rate=2e-3", "training.logging_steps=3"]
    # 8 train pairs, 2 per micro-batch, 2 micro-batches per step: 2 steps per epoch.
    reference_run = train(tiny_config(tiny_model_dir, data, tmp_path / "whole", settings), show_progress=False)
    assert [p.name for p in rundir.list_checkpoints(reference_run)] == ["checkpoint-6", "checkpoint-8"]

    out = tmp_path / "killed"
    config_file = tmp_path / "config.yaml"
    config_file.write_text(dump_config(tiny_config(tiny_model_dir, data, out, settings)))
    cmd = [sys.executable, "-m", "dpokit.cli", "train", "--no-progress", str(config_file)]
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")  # one thread, like this process
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    try:
        while not (out / "checkpoints" / "checkpoint-2").is_dir():
            assert proc.poll() is None, f"run ended before its first checkpoint: {proc.stderr.read()[-2000:]}"
            assert time.monotonic() < deadline, "no checkpoint within 240 s"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "final").exists(), "the run finished before it was killed; the test proves nothing"
    k = rundir.checkpoint_step(rundir.latest_checkpoint(out))

    resumed = subprocess.run(cmd + ["training.resume_from_checkpoint=latest"], env=env, capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming from {out / 'checkpoints' / f'checkpoint-{k}'}" in resumed.stderr

    whole, pieced = _adapter(reference_run), _adapter(out)
    assert whole.keys() == pieced.keys()
    for name in whole:
        torch.testing.assert_close(pieced[name], whole[name], rtol=0, atol=1e-6, msg=name)
    expected = [_without_timing(r) for r in read_lines(reference_run)]
    got = [_without_timing(r) for r in read_lines(out)]
    assert [r for r in got if r["step"] > k] == [r for r in expected if r["step"] > k]
    assert got == expected  # the lines up to k, written before the kill, too: one clean log
    assert [r["step"] for r in got if "loss" in r] == [3, 6, 8]
    assert [p.name for p in rundir.list_checkpoints(out)] == ["checkpoint-6", "checkpoint-8"]
    state = json.loads((out / "checkpoints" / "checkpoint-8" / rundir.TRAINER_STATE).read_text())
    assert state["global_step"] == 8 and state["epoch"] == 4 and state["batches_in_epoch"] == 0
