"""The optimizer, the learning-rate schedule and how many optimizer steps a run makes."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dpokit.errors import DpokitError

if TYPE_CHECKING:
    from dpokit.config import Config


def make_optimizer(model, config: "Config"):
    """AdamW; weight decay on matrices only (not on biases and norm scales)."""
    import torch

    trainable = [p for p in model.parameters() if p.requires_grad]
    if not trainable:
        raise DpokitError("the model has no trainable parameters", "check lora.target_modules (it matched no layer)")
    groups = [{"params": [p for p in trainable if p.ndim >= 2], "weight_decay": config.training.weight_decay},
              {"params": [p for p in trainable if p.ndim < 2], "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=config.training.learning_rate)


def warmup_steps(config: "Config", total_steps: int) -> int:
    """Steps of learning-rate warmup: ``warmup_steps``, else ``warmup_ratio`` of the run (rounded up)."""
    training = config.training
    return training.warmup_steps or math.ceil(training.warmup_ratio * total_steps)


def make_scheduler(optimizer, config: "Config", total_steps: int):
    from transformers import get_scheduler

    training = config.training
    name = "constant_with_warmup" if training.lr_scheduler_type == "constant" else training.lr_scheduler_type
    return get_scheduler(name, optimizer, num_warmup_steps=warmup_steps(config, total_steps),
                         num_training_steps=total_steps)


@dataclass
class StepPlan:
    """Micro-batches per epoch (per process), and optimizer steps per epoch and in all."""

    batches_per_epoch: int
    steps_per_epoch: int
    total_steps: int


def plan_steps(config: "Config", batches_per_epoch: int) -> StepPlan:
    """Steps from this process's micro-batches per epoch (the prepared loader's length).

    An epoch's last step takes the micro-batches that are left when fewer than
    ``gradient_accumulation_steps`` remain: a shorter step, weighted as such.
    """
    training = config.training
    steps_per_epoch = math.ceil(batches_per_epoch / training.gradient_accumulation_steps)
    if training.max_steps > 0:
        total = training.max_steps
    else:
        total = max(1, math.ceil(training.num_train_epochs * steps_per_epoch))
    return StepPlan(batches_per_epoch, steps_per_epoch, total)
