"""Where training metrics go: ``metrics.jsonl`` always, TensorBoard and/or Weights & Biases on request.

``metrics.jsonl`` has one JSON object per logged step. Train lines carry ``step``,
``epoch``, ``loss`` and the loss's metrics (TRL's names: ``rewards/chosen``,
``rewards/rejected``, ``rewards/margins``, ``rewards/accuracies``, ``logps/chosen``,
``logps/rejected``), ``grad_norm``, ``learning_rate`` and ``tokens_per_second``; eval
lines carry ``step`` and the same metrics prefixed ``eval_``. Only the main process
writes. On resume from step *k* the lines after *k* (written by the run that was killed)
are dropped, and TensorBoard purges its events after *k*, so the log reads as one run.
"""

from __future__ import annotations

import importlib.util
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Optional

from dpokit.errors import DpokitError

METRICS_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"
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


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """All records of a ``metrics.jsonl`` (a torn last line, from a killed run, is skipped)."""
    path = Path(path)
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def truncate_after(path: Path, step: int) -> None:
    """Keep only the records with ``step <= step`` (atomic rewrite)."""
    path = Path(path)
    if not path.is_file():
        return
    kept = [r for r in read_metrics(path) if int(r.get("step", 0)) <= step]
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        for record in kept:
            handle.write(json.dumps(record) + "\n")
    os.replace(tmp, path)


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
