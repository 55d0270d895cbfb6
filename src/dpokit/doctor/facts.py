"""What the doctor knows about a run: its findings' shape, the run's facts, its metrics so far."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Union

import numpy as np

from dpokit.config import Config, build_config
from dpokit.metrics_log import is_eval_row
from dpokit.optim import plan_steps, warmup_steps

SMOOTH_LINES = 3
"""Logged lines averaged for a value "now"."""
REFERENCE_FREE = ("simpo", "orpo")


@dataclass(frozen=True)
class Finding:
    """One problem: ``code`` (e.g. ``pairs_too_easy``), the step it appeared at (None for
    data findings, known before training), what was seen (with figures) and what to change."""

    code: str
    step: Optional[int]
    message: str
    hint: str

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "step": self.step, "message": self.message, "hint": self.hint}

    def as_warning(self) -> str:
        """The trainer's live line (after its ``dpokit: `` prefix)."""
        return f"warning: {self.code}: {self.message}\n  hint: {self.hint}"


@dataclass(frozen=True)
class RunFacts:
    """The settings the rules need, from the run's config (and data report)."""

    stage: str
    loss_type: str
    beta: float
    label_smoothing: float
    rpo_alpha: Optional[float]
    learning_rate: float
    max_grad_norm: float
    mixed_precision: str
    warmup_steps: int
    total_steps: int
    pairs_per_line: int
    """Pairs averaged into one logged train line on one process (batch x accumulation x logging_steps)."""
    mean_chosen_tokens: Optional[float]

    @property
    def dpo(self) -> bool:
        return self.stage == "dpo"

    @property
    def reference_based(self) -> bool:
        """DPO with a reference: rewards are ``beta * (policy - reference)`` log-probs, 0 at the start."""
        return self.dpo and self.loss_type not in REFERENCE_FREE

    @property
    def nll_weight(self) -> float:
        """Weight of the NLL term inside the logged ``loss`` (see :func:`dpokit.objective.dpo_batch_loss`)."""
        if self.rpo_alpha is not None:
            return self.rpo_alpha
        return 1.0 if self.loss_type == "orpo" else 0.0


def as_config(config: Union[Config, Mapping[str, Any]]) -> Config:
    return config if isinstance(config, Config) else build_config(dict(config), where="config.yaml")


def planned_steps(config: Config, data_report: Optional[Mapping[str, Any]]) -> Optional[int]:
    """Optimizer steps the run was set to take (:func:`dpokit.optim.plan_steps`), with the
    report's ``pairs_used`` as one process's batches; None when that is needed and unknown."""
    if config.training.max_steps > 0:
        return config.training.max_steps
    pairs = (data_report or {}).get("pairs_used")
    if not isinstance(pairs, int) or isinstance(pairs, bool) or pairs <= 0:
        return None
    return plan_steps(config, batches_per_epoch=math.ceil(pairs / config.training.per_device_train_batch_size)).total_steps


def run_facts(config: Union[Config, Mapping[str, Any]], total_steps: int,
              data_report: Optional[Mapping[str, Any]] = None, mixed_precision: Optional[str] = None) -> RunFacts:
    """``mixed_precision``: what the run trained in (``no``/``fp16``/``bf16``, run.json's record of
    what ``auto`` became); None takes the config's setting, where ``auto`` may mean fp16."""
    config = as_config(config)
    training, dpo = config.training, config.dpo
    lengths = ((data_report or {}).get("length_comparison") or {})
    return RunFacts(
        stage=config.stage, loss_type=dpo.loss_type, beta=dpo.beta, label_smoothing=dpo.label_smoothing,
        rpo_alpha=dpo.rpo_alpha, learning_rate=training.learning_rate, max_grad_norm=training.max_grad_norm,
        mixed_precision=mixed_precision or training.mixed_precision, warmup_steps=warmup_steps(config, total_steps),
        total_steps=max(1, int(total_steps)),
        pairs_per_line=(training.per_device_train_batch_size * training.gradient_accumulation_steps
                        * training.logging_steps),
        mean_chosen_tokens=finite(lengths.get("mean_chosen_tokens")),
    )


# ----------------------------------------------------------------------------- the metrics so far


def finite(value: Any) -> Optional[float]:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


class History:
    """The metrics records seen so far, per split, as columns aligned with the records.

    ``column(key)`` is a read-only float array with one entry per train (or eval) record,
    NaN where the record lacks the key or its value is not a number; ``nonfinite[key]``
    lists the steps whose logged value was NaN or infinite. Columns live in buffers that
    double when full, so a rule that looks at the whole run stays cheap when it is asked
    after every record.
    """

    def __init__(self) -> None:
        self.train: list[dict[str, Any]] = []
        self.eval: list[dict[str, Any]] = []
        self.last_split = ""
        self.nonfinite: dict[str, list[int]] = {}
        self._buffers: dict[str, dict[str, np.ndarray]] = {"train": {}, "eval": {}}
        self._capacity = {"train": 0, "eval": 0}

    def add(self, record: Mapping[str, Any]) -> None:
        split = "eval" if is_eval_row(record) else "train"
        rows = self.eval if split == "eval" else self.train
        buffers, n = self._buffers[split], len(rows)
        if n == self._capacity[split]:
            capacity = max(64, 2 * n)
            for key, old in buffers.items():
                buffers[key] = np.concatenate([old, np.full(capacity - len(old), math.nan)])
            self._capacity[split] = capacity
        step = int(record["step"])
        for key, value in record.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            if key not in buffers:
                buffers[key] = np.full(self._capacity[split], math.nan)
            buffers[key][n] = value
            if key != "step" and not math.isfinite(value):
                self.nonfinite.setdefault(key, []).append(step)
        rows.append(dict(record))
        self.last_split = split

    def column(self, key: str, split: str = "train") -> np.ndarray:
        n = len(self.eval if split == "eval" else self.train)
        buffer = self._buffers[split].get(key)
        view = buffer[:n] if buffer is not None else np.full(n, math.nan)
        view.flags.writeable = False
        return view

    def steps(self, split: str = "train") -> np.ndarray:
        return self.column("step", split)


def tail_mean(values: np.ndarray, n: int = SMOOTH_LINES) -> float:
    tail = values[-n:]
    tail = tail[np.isfinite(tail)]
    return float(tail.mean()) if tail.size else math.nan


def _ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 0..n-1, ties given their average rank."""
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.arange(len(values), dtype=np.float64)
    sorted_values = values[order]
    start = 0
    for end in range(1, len(values) + 1):
        if end == len(values) or sorted_values[end] != sorted_values[start]:
            if end - start > 1:
                ranks[order[start:end]] = (start + end - 1) / 2
            start = end
    return ranks


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rank correlation (1: y rises with x in every step, -1: falls in every step)."""
    if len(x) < 2:
        return math.nan
    rx, ry = _ranks(np.asarray(x, dtype=np.float64)), _ranks(np.asarray(y, dtype=np.float64))
    if rx.std() == 0 or ry.std() == 0:
        return 0.0
    return float(np.corrcoef(rx, ry)[0, 1])


def preference_loss(history: History, facts: RunFacts) -> np.ndarray:
    """The logged train loss less its NLL term (``rpo_alpha``, ORPO): the preference part alone."""
    loss = history.column("loss")
    if facts.dpo and facts.nll_weight:
        nll = history.column("nll_loss")
        loss = loss - facts.nll_weight * np.where(np.isfinite(nll), nll, 0.0)
    return loss


def train_mean_between(history: History, key: str, after: float, upto: float) -> float:
    """The mean of the train values of ``key`` logged at steps in ``(after, upto]``."""
    steps, values = history.steps(), history.column(key)
    chosen = values[(steps > after) & (steps <= upto)]
    chosen = chosen[np.isfinite(chosen)]
    return float(chosen.mean()) if chosen.size else math.nan


def at_step(step: int, facts: RunFacts) -> str:
    return f"step {step} of {facts.total_steps}"


def fmt_number(value: float) -> str:
    return f"{value:.2g}"


