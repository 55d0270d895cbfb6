"""`dpokit train`: the training recipe, top to bottom: setup, data, model and reference, loop, save.

One optimizer *step* is ``gradient_accumulation_steps`` micro-batches of
``per_device_train_batch_size`` pairs on each process (fewer at an epoch's end). Each
micro-batch's loss is weighted by its share of the step's pairs (SFT: answer tokens), so a
step's gradient is that of the mean over the step however it is split. The data order of
epoch *e* is a pure function of ``(seed, e)`` (and, with ``training.group_by_length``, of
the pairs' lengths and the batch size), so a resumed run skips exactly the
micro-batches the killed run had consumed, restores every RNG, and continues bit for bit.
Metrics are averaged across processes and only the main process writes files.

Everything the recipe calls lives in the module that owns it: the run dir
(:mod:`dpokit.rundir`), the start model (:mod:`dpokit.start_model`), data
(:mod:`dpokit.data.prepare`, :mod:`dpokit.data.batches`), the model (:mod:`dpokit.models`),
the reference (:mod:`dpokit.reference`), the loss (:mod:`dpokit.objective`), optimisation
(:mod:`dpokit.optim`), checkpoints (:mod:`dpokit.checkpoint`), metrics
(:mod:`dpokit.metrics_log`).
"""

from __future__ import annotations

import math
import time
from contextlib import nullcontext
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dpokit import checkpoint as ckpt
from dpokit.errors import DpokitError
from dpokit.rundir import FINAL_DIR, say

if TYPE_CHECKING:
    from accelerate import Accelerator

    from dpokit.config import Config
    from dpokit.data.batches import Batches
    from dpokit.reference import Reference

NOT_AVERAGED = {"num_tokens"}
"""Metrics that are totals, not means: left out of the logged averages."""


def train(config: "Config", *, show_progress: bool = True) -> Path:
    """Train as configured (``stage`` sft or dpo); returns the run dir."""
    import torch
    from accelerate.utils import set_seed

    from dpokit.data.batches import Batches, step_groups
    from dpokit.data.collate import sequence_tokens
    from dpokit.data.prepare import prepare_data
    from dpokit.devices import make_accelerator, mean_across_processes, sum_across_processes
    from dpokit.doctor import LiveDoctor
    from dpokit.metrics_log import MetricsLog, read_metrics
    from dpokit.models import build_policy, load_tokenizer
    from dpokit.objective import batch_loss, loss_weight
    from dpokit.optim import make_optimizer, make_scheduler, plan_steps
    from dpokit.preflight import check_config
    from dpokit.progress import progress
    from dpokit.reference import build_references
    from dpokit.rundir import (PreviousRun, check_run_dir, remove_incomplete_checkpoints, warn_config_changes,
                               write_start_files)
    from dpokit.start_model import carry_into, resolve_start_model

    # ---- setup: every user error that needs no model comes first; nothing is changed on disk yet
    check_config(config)
    accelerator = make_accelerator(config)
    for note in config.data.adjustments:
        say(accelerator, f"note: {note}")
    run_dir, resume_from = check_run_dir(config)
    if resume_from is not None:
        warn_config_changes(run_dir, config, accelerator)
    set_seed(config.training.seed)
    start = resolve_start_model(config, accelerator)
    tokenizer = load_tokenizer(start.tokenizer, trust_remote_code=config.model.trust_remote_code)
    data = prepare_data(config, tokenizer)

    # ---- model and reference; a run being replaced is kept aside until this one starts training
    previous = PreviousRun(run_dir, accelerator) if resume_from is None else None
    try:
        if resume_from is not None and accelerator.is_main_process:
            remove_incomplete_checkpoints(run_dir)
        write_start_files(run_dir, config, start.recorded_as, data.report, accelerator)
        if accelerator.is_main_process:
            carry_into(run_dir, start)
        model = build_policy(config, start.path, accelerator)
        batches = Batches(accelerator, config, data)
        references = build_references(config, start.path, model, accelerator, batches.reference_splits(),
                                      show_progress, say=partial(say, accelerator))
    except BaseException:
        if previous is not None:
            previous.restore()
        raise
    if previous is not None:
        previous.discard()

    # ---- optimisation
    training = config.training
    plan = plan_steps(config, batches_per_epoch=len(batches.train(epoch=0)))
    optimizer = make_optimizer(model, config)
    scheduler = make_scheduler(optimizer, config, plan.total_steps)
    model, optimizer = accelerator.prepare(model, optimizer)
    state = ckpt.TrainerState(total_steps=plan.total_steps)
    if resume_from is not None:
        state = ckpt.load_checkpoint(accelerator, resume_from, model, optimizer, scheduler)
        say(accelerator, f"resuming from {resume_from} (step {state.global_step} of {plan.total_steps})")
    log = MetricsLog(run_dir, training.report_to, enabled=accelerator.is_main_process,
                     resume_step=state.global_step if resume_from is not None else None,
                     run_config=config.model_dump(mode="json"))
    logged = read_metrics(run_dir) if resume_from is not None and accelerator.is_main_process else None
    doctor = LiveDoctor(config, data.report, plan.total_steps, history=logged.train + logged.eval if logged else (),
                        mixed_precision=accelerator.mixed_precision)
    for finding in doctor.begin():  # each finding once, when it first appears (a resumed run's are not repeated)
        say(accelerator, finding.as_warning())

    def log_and_diagnose(record: dict[str, Any]) -> None:
        log.log(record)
        for finding in doctor.observe(record):
            say(accelerator, finding.as_warning())
    max_norm = training.max_grad_norm if training.max_grad_norm > 0 else float("inf")
    accumulation = training.gradient_accumulation_steps

    # ---- the loop: one optimizer step per group of micro-batches
    bar = progress(plan.total_steps, f"train ({config.stage})", initial=state.global_step,
                   enabled=show_progress and accelerator.is_main_process)
    window_start = time.perf_counter()
    model.train()
    try:
        while state.global_step < plan.total_steps:
            for group in step_groups(batches.train(state.epoch, skip=state.batches_in_epoch), accumulation):
                weights = [loss_weight(config, batch) for batch in group]
                step_total = max(sum(weights), 1)
                sums: dict[str, torch.Tensor] = {}
                for i, (batch, weight) in enumerate(zip(group, weights)):
                    last = i == len(group) - 1
                    accelerator.sync_gradients = last  # DDP/DeepSpeed reduce the gradients once per step
                    with nullcontext() if last else accelerator.no_sync(model):
                        # The whole loss under autocast, not just the model's forward: the chunked LM
                        # head then runs at the forward's precision, as in the reference precompute.
                        with accelerator.autocast():
                            loss, metrics = batch_loss(config, model, batch, references["train"])
                        # accelerate divides by the accumulation count; the micro-batch's share remains.
                        accelerator.backward(loss * (weight * accumulation / step_total))
                    for name, value in {"loss": loss, **metrics}.items():
                        if name not in NOT_AVERAGED:
                            sums[name] = sums.get(name, 0) + value.detach().float() * (weight / step_total)
                step = mean_across_processes(accelerator, sums)
                if not math.isfinite(step["loss"]):
                    raise nan_error(run_dir, state.global_step + 1, step["loss"])
                step["learning_rate"] = scheduler.get_last_lr()[0]  # the rate this step uses
                grad_norm = accelerator.clip_grad_norm_(model.parameters(), max_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                step["grad_norm"] = float(grad_norm) if grad_norm is not None else float("nan")
                tokens = int(sum_across_processes(accelerator, sum(sequence_tokens(b) for b in group)))
                state.global_step += 1
                state.tokens_seen += tokens
                state.batches_in_epoch += len(group)
                if state.batches_in_epoch >= plan.batches_per_epoch:  # before saving: a checkpoint here resumes at the next epoch
                    state.epoch, state.batches_in_epoch = state.epoch + 1, 0

                # ---- after the step: progress, logging window, evaluation, checkpoint
                elapsed = max(time.perf_counter() - window_start, 1e-9)
                bar.set_postfix(step_postfix(step, (state.log_window.get("_tokens", 0.0) + tokens) / elapsed),
                                refresh=False)
                bar.update(1)
                record = add_to_window(state, step, tokens, elapsed, plan.batches_per_epoch,
                                       due=state.global_step % training.logging_steps == 0
                                       or state.global_step == plan.total_steps)
                if record is not None:
                    log_and_diagnose(record)
                    window_start = time.perf_counter()
                if eval_due(config, state.global_step, plan.total_steps, bool(data.eval)):
                    log_and_diagnose(eval_losses(config, accelerator, model, batches, references["eval"], state,
                                                 plan.batches_per_epoch))
                if training.save_steps and (state.global_step % training.save_steps == 0
                                            or state.global_step == plan.total_steps):
                    path = ckpt.save_checkpoint(accelerator, run_dir, model, optimizer, scheduler, state)
                    if accelerator.is_main_process:
                        ckpt.rotate_checkpoints(run_dir, training.save_total_limit, keep=path)
                    accelerator.wait_for_everyone()
                if state.global_step >= plan.total_steps:
                    break
            else:  # the epoch's batches are used up (the step above has usually moved on already)
                if state.batches_in_epoch:
                    state.epoch, state.batches_in_epoch = state.epoch + 1, 0
    finally:
        bar.close()
        log.close()

    # ---- save
    final = ckpt.save_final(accelerator, model, tokenizer, run_dir, FINAL_DIR)
    say(accelerator, f"saved {final}")
    if accelerator.is_main_process:
        write_report_files(run_dir, accelerator)
    return run_dir


# ---------------------------------------------------------------- pieces of the loop


def epoch_progress(state: ckpt.TrainerState, batches_per_epoch: int) -> float:
    return round(state.epoch + state.batches_in_epoch / batches_per_epoch, 4)


def add_to_window(state: ckpt.TrainerState, step: dict[str, float], tokens: int, elapsed: float,
                  batches_per_epoch: int, *, due: bool) -> "dict[str, Any] | None":
    """Add a step to the logging window (kept in the trainer state: a window may straddle a
    checkpoint); when ``due``, close it and return the record to log (window means)."""
    window = state.log_window
    for name, value in step.items():
        window[name] = window.get(name, 0.0) + value
    window["_tokens"] = window.get("_tokens", 0.0) + tokens
    state.log_window_steps += 1
    if not due:
        return None
    record: dict[str, Any] = {"step": state.global_step, "epoch": epoch_progress(state, batches_per_epoch)}
    record.update({k: v / state.log_window_steps for k, v in window.items() if not k.startswith("_")})
    record["learning_rate"] = step["learning_rate"]
    record["tokens_per_second"] = round(window["_tokens"] / elapsed, 1)
    state.log_window, state.log_window_steps = {}, 0
    return record


def step_postfix(step: dict[str, float], tokens_per_second: float) -> dict[str, str]:
    postfix = {"loss": f"{step['loss']:.4f}"}
    if "rewards/accuracies" in step:
        postfix["acc"] = f"{step['rewards/accuracies']:.2f}"
    postfix["tok/s"] = f"{tokens_per_second:.0f}"
    return postfix


def eval_due(config: "Config", step: int, total_steps: int, has_eval: bool) -> bool:
    """Every ``eval_steps``, and at the last step (before its checkpoint, so a resumed run never repeats it)."""
    if not has_eval:
        return False
    eval_steps = config.training.eval_steps
    return step == total_steps or (bool(eval_steps) and step % eval_steps == 0)


def eval_losses(config: "Config", accelerator: "Accelerator", model, batches: "Batches", reference: "Reference",
                state: ckpt.TrainerState, batches_per_epoch: int) -> dict[str, Any]:
    """Loss and metrics over the eval pairs (batch means weighted by pairs), as ``eval_*`` keys.

    Under several processes accelerate's even batches may score a few pairs twice.
    """
    import torch

    from dpokit.devices import sum_across_processes
    from dpokit.objective import batch_loss

    sums: dict[str, torch.Tensor] = {}
    pairs = torch.zeros((), device=accelerator.device)
    model.eval()
    try:
        with torch.no_grad(), accelerator.autocast():
            for batch in batches.eval():
                loss, metrics = batch_loss(config, model, batch, reference)
                n = batch["index"].numel()
                for name, value in {"loss": loss, **metrics}.items():
                    if name not in NOT_AVERAGED:
                        sums[name] = sums.get(name, 0) + value.detach().float() * n
                pairs = pairs + n
    finally:
        model.train()
    names = sorted(sums)
    values = sum_across_processes(accelerator, torch.stack([sums[n] for n in names] + [pairs])).tolist()
    count = max(values[-1], 1)
    record: dict[str, Any] = {"step": state.global_step, "epoch": epoch_progress(state, batches_per_epoch)}
    record.update({f"eval_{name}": value / count for name, value in zip(names, values[:-1])})
    return record


def nan_error(run_dir: Path, step: int, loss: float) -> DpokitError:
    from dpokit.rundir import latest_checkpoint

    last = latest_checkpoint(run_dir)
    where = f"the last good checkpoint is {last} (left intact)" if last else "no checkpoint was saved before it"
    hint = ("lower training.learning_rate (or add warmup) and check the data, then "
            + ("resume with training.resume_from_checkpoint=latest" if last else "train again"))
    return DpokitError(f"step {step}: the loss is {loss} (not finite); training stopped, {where}", hint)


def write_report_files(run_dir: Path, accelerator: "Accelerator") -> None:
    """Charts and the model card; a failure here never loses the trained model."""
    from dpokit.model_card import write_model_card
    from dpokit.plot import plot_run

    try:
        plot_run(run_dir)
    except DpokitError as err:  # e.g. nothing logged in a zero-step run
        say(accelerator, f"no charts: {err.message}")
    say(accelerator, f"model card: {write_model_card(run_dir)}")
