"""Where training metrics go: ``metrics.jsonl`` always, TensorBoard and/or Weights & Biases on request.

``metrics.jsonl`` has one JSON object per logged step. Train lines carry ``step``,
``epoch``, ``loss`` and the loss's metrics (TRL's names: ``rewards/chosen``,
``rewards/rejected``, ``rewards/margins``, ``rewards/accuracies``, ``logps/chosen``,
``logps/rejected``), ``grad_norm``, ``learning_rate`` and ``tokens_per_second``; eval
lines carry ``step`` and the same metrics prefixed ``eval_``. Only the main process
writes. On resume from step *k* the lines after *k* (written by the run that was killed)
are dropped, and TensorBoard purges its events after *k*, so the log reads as one run.
:func:`read_metrics` is the one reader of the file (plots, the model card, the doctor).
"""

from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional, Union

from dpokit.errors import DpokitError
from dpokit.outputs import write_jsonl
from dpokit.rundir import METRICS_FILE, TENSORBOARD_DIR

EVAL_PREFIX = "eval_"
REPORTERS = ("tensorboard", "wandb")


def check_reporters(report_to: Iterable[str]) -> list[str]:
    """Validate ``training.report_to`` before anything heavy is loaded."""
    wanted = [r for r in report_to if r != "none"]
    for name in wanted:
        if name not in REPORTERS:
            raise DpokitError(f"training.report_to: unknown reporter '{name}'", f"use one or more of: {', '.join(REPORTERS)}, none")
        module = "tensorboard" if name == "tensorboard" else "wandb"
        if importlib.util.find_spec(module) is None:
            raise DpokitError(f"training.report_to: {name} is not installed", f"pip install {module}, or remove '{name}' from training.report_to")
    return wanted


@dataclass
class Metrics:
    """The rows of a ``metrics.jsonl``, split into training and eval lines."""

    train: list[dict[str, Any]] = field(default_factory=list)
    eval: list[dict[str, Any]] = field(default_factory=list)
    path: Path | None = None


def is_eval_row(row: dict[str, Any]) -> bool:
    return any(str(key).startswith(EVAL_PREFIX) for key in row)


def read_metrics(run_dir: Union[str, Path]) -> Metrics:
    """Parse ``RUN_DIR/metrics.jsonl`` (see :func:`read_metrics_file`); a missing run dir or file is an error."""
    run_dir = Path(run_dir)
    path = run_dir / METRICS_FILE
    if not run_dir.is_dir():
        raise DpokitError(f"{run_dir}: run directory not found", "pass the output_dir of a training run")
    if not path.is_file():
        raise DpokitError(
            f"{path}: no metrics file in this run directory",
            "is this a dpokit run dir? metrics.jsonl appears after the first logged training step",
        )
    return read_metrics_file(path)


def read_metrics_file(path: Path) -> Metrics:
    """The rows of a metrics file, split into train and eval lines (eval lines have ``eval_`` keys).

    An unterminated last line that does not parse is skipped: it is what a run killed
    mid-write leaves. Any other bad line is an error naming the file and line.
    """
    path = Path(path)
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


def read_train_rows(run_dir: Union[str, Path]) -> list[dict[str, Any]]:
    """The training lines of a run's metrics (none when nothing was logged yet)."""
    path = Path(run_dir) / METRICS_FILE
    return [r for r in read_metrics_file(path).train if "loss" in r] if path.is_file() else []


def truncate_after(path: Path, step: int) -> None:
    """Keep only the records with ``step <= step`` (atomic rewrite)."""
    path = Path(path)
    if not path.is_file():
        return
    metrics = read_metrics_file(path)
    kept = sorted(metrics.train + metrics.eval, key=lambda r: (int(r["step"]), is_eval_row(r)))
    write_jsonl(path, [r for r in kept if int(r["step"]) <= step])


class MetricsLog:
    """Append-only metrics sink for one run; a no-op on non-main processes.

    Args:
        run_dir: the run directory.
        report_to: reporters besides metrics.jsonl (``tensorboard``, ``wandb``).
        enabled: False on non-main processes.
        resume_step: when resuming, the checkpoint's step: later records are dropped.
        run_config: the resolved config as a dict (sent to wandb).
    """

    def __init__(self, run_dir: Path, report_to: Iterable[str], *, enabled: bool = True,
                 resume_step: Optional[int] = None, run_config: Optional[dict] = None):
        self.enabled = enabled
        self.path = Path(run_dir) / METRICS_FILE
        self._tensorboard = None
        self._wandb = None
        if not enabled:
            return
        reporters = check_reporters(report_to)
        if resume_step is not None:
            truncate_after(self.path, resume_step)
        elif self.path.exists():
            self.path.unlink()
        self._file = open(self.path, "a", encoding="utf-8")
        if "tensorboard" in reporters:
            from torch.utils.tensorboard import SummaryWriter

            purge = resume_step + 1 if resume_step is not None else None
            self._tensorboard = SummaryWriter(str(Path(run_dir) / TENSORBOARD_DIR), purge_step=purge)
        if "wandb" in reporters:
            import wandb

            self._wandb = wandb.init(project=os.environ.get("WANDB_PROJECT", "dpokit"), name=Path(run_dir).name,
                                     config=run_config, dir=str(run_dir), resume="allow")

    def log(self, record: dict[str, Any]) -> None:
        """Write one record; it must carry ``step``."""
        if not self.enabled:
            return
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        step = int(record["step"])
        for key, value in record.items():
            if key in ("step",) or not isinstance(value, (int, float)):
                continue
            tag = key.replace("eval_", "eval/", 1) if key.startswith("eval_") else f"train/{key}"
            if self._tensorboard is not None:
                self._tensorboard.add_scalar(tag, value, step)
        if self._tensorboard is not None:
            self._tensorboard.flush()
        if self._wandb is not None:
            self._wandb.log({k: v for k, v in record.items() if k != "step"}, step=step)

    def close(self) -> None:
        if not self.enabled:
            return
        self._file.close()
        if self._tensorboard is not None:
            self._tensorboard.close()
        if self._wandb is not None:
            self._wandb.finish()
