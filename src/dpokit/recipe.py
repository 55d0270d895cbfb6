"""`dpokit train`: the training recipe, setup -> data -> reference -> loop -> save.

One optimizer *step* is ``gradient_accumulation_steps`` micro-batches of
``per_device_train_batch_size`` pairs on each process. The data order of epoch *e* is a
pure function of ``(seed, e)``, so a resumed run skips exactly the micro-batches the
killed run had consumed, restores every RNG, and continues bit for bit. ``accelerate``
places the model, runs mixed precision, accumulates gradients and, under
``accelerate launch``, shards the data across processes (DDP, FSDP, DeepSpeed); metrics
are averaged across processes and only the main process writes files.
"""

from __future__ import annotations

import math
import shutil
import sys
import time
import warnings
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from dpokit import checkpoint as ckpt
from dpokit.config import Config, dump_config
from dpokit.errors import DpokitError
from dpokit.metrics_log import MetricsLog, check_reporters
from dpokit.reference import Reference, build_references, check_reference_mode

if TYPE_CHECKING:
    import torch
    from accelerate import Accelerator

    from dpokit.data.tokenize import TokenizedPair

FINAL_DIR = "final"
# What a run dir holds; `overwrite_output_dir` removes these and nothing else.
RUN_ENTRIES = ("config.yaml", "run.json", "data_report.json", "metrics.jsonl", "tensorboard", ckpt.CHECKPOINTS_DIR,
               FINAL_DIR, "plots", "eval.json", "README.md")
# Settings expected to change between a run and its resumption.
RESUME_KEYS = {"training.resume_from_checkpoint", "output.overwrite_output_dir"}


def train(config: Config, *, show_progress: bool = True) -> Path:
    """Train as configured (``stage`` sft or dpo); returns the run dir."""
    from accelerate.utils import set_seed

    # setup: every user error that needs no model comes first
    check_before_loading(config)
    accelerator = make_accelerator(config)
    run_dir, resume_from = prepare_run_dir(config, accelerator)
    set_seed(config.training.seed)
    base = resolve_base_model(config, accelerator)

    # data
    tokenizer = load_tokenizer_for(config, base)
    data = prepare_data(config, tokenizer)
    write_run_files(run_dir, config, base, data.report, accelerator)

    # model and reference
    model = build_policy(config, base.path, accelerator)
    batches = Batches(accelerator, config, data)
    references = build_references(
        config, base.path, model, accelerator,
        {"train": (data.train, lambda: batches.train(epoch=0)), "eval": (data.eval, batches.eval)},
        show_progress, say=partial(say, accelerator))

    # optimisation
    plan = plan_steps(config, batches_per_epoch=len(batches.train(epoch=0)))
    optimizer = make_optimizer(model, config)
    scheduler = make_scheduler(optimizer, config, plan.total_steps)
    model, optimizer = accelerator.prepare(model, optimizer)
    state = ckpt.TrainerState(total_steps=plan.total_steps)
    if resume_from is not None:
        state = ckpt.load_checkpoint(accelerator, resume_from, model, optimizer, scheduler)
        say(accelerator, f"resuming from {resume_from} (step {state.global_step} of {plan.total_steps})")

    # loop
    log = MetricsLog(run_dir, config.training.report_to, enabled=accelerator.is_main_process,
                     resume_step=state.global_step if resume_from is not None else None,
                     run_config=config.model_dump(mode="json"))
    session = Session(config, accelerator, model, optimizer, scheduler, references, batches, plan, state, log, run_dir)
    try:
        run_loop(session, show_progress)
    finally:
        log.close()

    # save
    final = ckpt.save_final(accelerator, model, tokenizer, run_dir, FINAL_DIR)
    say(accelerator, f"saved {final}")
    if accelerator.is_main_process:
        write_report_files(run_dir, accelerator)
    return run_dir


def write_report_files(run_dir: Path, accelerator: "Accelerator") -> None:
    """Charts and the model card; a failure here never loses the trained model."""
    from dpokit.model_card import write_model_card
    from dpokit.plot import plot_run

    try:
        plot_run(run_dir)
    except DpokitError as err:  # e.g. nothing logged in a zero-step run
        say(accelerator, f"no charts: {err.message}")
    say(accelerator, f"model card: {write_model_card(run_dir)}")


# ---------------------------------------------------------------- setup


def say(accelerator: "Accelerator", text: str) -> None:
    if accelerator.is_main_process:
        print(f"dpokit: {text}", file=sys.stderr, flush=True)


def check_before_loading(config: Config) -> None:
    """Every user error that needs no model or data, before anything slow happens."""
    from dpokit.models import check_quantisation

    check_quantisation(config.model)
    check_reporters(config.training.report_to)
    check_reference_mode(config)
    if (config.model.load_in_4bit or config.model.load_in_8bit) and not config.lora.enabled:
        raise DpokitError("model.load_in_4bit/8bit needs LoRA: quantised weights cannot be trained directly",
                          "set lora.enabled: true (QLoRA), or turn quantisation off for full fine-tuning")
    if not config.lora.enabled and config.model.dtype == "float16" and resolve_mixed_precision(
            config.training.mixed_precision) == "fp16":
        raise DpokitError("full fine-tuning of float16 weights with fp16 mixed precision cannot work: the gradient "
                          "scaler needs float32 weights to update",
                          "set model.dtype: float32 (fp16 compute stays), or bfloat16 with training.mixed_precision: bf16")


def resolve_mixed_precision(setting: str) -> str:
    """``auto``: bf16 on CUDA where supported, else fp16 on CUDA, else fp32 (``no``)."""
    import torch

    if setting == "fp16" and not torch.cuda.is_available():
        raise DpokitError("training.mixed_precision: fp16 needs a CUDA GPU", "use auto, no or bf16 on this machine")
    if setting != "auto":
        return setting
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "no"


def make_accelerator(config: Config) -> "Accelerator":
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    # accelerate keeps its settings process-wide; a second train() in the same process (a
    # notebook, a sweep) may ask for others. The distributed setup (PartialState) stays.
    AcceleratorState._reset_state(reset_partial_state=False)
    return Accelerator(
        mixed_precision=resolve_mixed_precision(config.training.mixed_precision),
        gradient_accumulation_steps=config.training.gradient_accumulation_steps,
    )


def prepare_run_dir(config: Config, accelerator: "Accelerator") -> tuple[Path, Optional[Path]]:
    """The run dir, and the checkpoint to resume from (None for a fresh run).

    A non-empty output dir is an error unless the run resumes from it or
    ``overwrite_output_dir`` is set; then only dpokit's own entries are removed.
    """
    run_dir = Path(config.output.output_dir).expanduser()
    if run_dir.is_file():
        raise DpokitError(f"output.output_dir: {run_dir} is a file", "choose a directory for the run")
    spec = config.training.resume_from_checkpoint
    if spec:
        resume_from = ckpt.resolve_resume_path(spec, run_dir)
        warn_config_changes(run_dir, config, accelerator)
        if accelerator.is_main_process:
            ckpt.remove_incomplete(run_dir)
        return run_dir, resume_from
    if run_dir.is_dir() and any(run_dir.iterdir()):
        if not config.output.overwrite_output_dir:
            raise DpokitError(
                f"output.output_dir: {run_dir} exists and is not empty (nothing was changed)",
                "continue it with training.resume_from_checkpoint=latest, replace it with "
                "output.overwrite_output_dir=true, or choose another output.output_dir",
            )
        if accelerator.is_main_process:
            for name in RUN_ENTRIES:
                target = run_dir / name
                if target.is_dir():
                    shutil.rmtree(target)
                elif target.exists():
                    target.unlink()
    accelerator.wait_for_everyone()
    return run_dir, None


def _flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict) and key not in ("reference", "columns"):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def warn_config_changes(run_dir: Path, config: Config, accelerator: "Accelerator") -> None:
    """On resume, name the settings that differ from the run's saved config (results will differ)."""
    import yaml

    saved_path = run_dir / "config.yaml"
    if not saved_path.is_file():
        return
    saved = _flatten(yaml.safe_load(saved_path.read_text(encoding="utf-8")) or {})
    now = _flatten(config.model_dump(mode="json"))
    changed = sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k) and k not in RESUME_KEYS)
    if changed:
        say(accelerator, "warning: resuming with settings that differ from the run's config.yaml: "
                         + ", ".join(f"{k} ({saved.get(k)!r} -> {now.get(k)!r})" for k in changed))


@dataclass
class BaseModel:
    """The model training starts from."""

    path: str
    """What ``from_pretrained`` loads (a dir, an embedded name or a hub id)."""
    tokenizer: str
    """Where the tokenizer and its chat template come from."""


def merged_model_dir(adapter_dir: Path, base_model: str) -> Path:
    """Cache dir for ``base_model`` + the adapter, merged; keyed by both, so a sweep merges once."""
    import hashlib

    from dpokit.models import dpokit_home
    from dpokit.reference import files_fingerprint, model_fingerprint

    key = hashlib.sha256(f"{files_fingerprint(adapter_dir)}|{model_fingerprint(base_model)}".encode()).hexdigest()[:16]
    name = adapter_dir.parent.name if adapter_dir.name == FINAL_DIR else adapter_dir.name
    return dpokit_home() / "merged" / f"{name}-{key}"


def resolve_base_model(config: Config, accelerator: "Accelerator") -> BaseModel:
    """Where the policy starts. A dpokit run (e.g. an SFT run) with a LoRA adapter is merged into
    its base first, so the new adapter goes on top of it and the reference is that model."""
    from dpokit.runs import open_model_or_run

    name = config.model.name_or_path
    info = open_model_or_run(name)
    if info.adapter_dir is None:
        return BaseModel(info.model_dir or name, info.tokenizer_dir or name)
    merged = merged_model_dir(Path(info.adapter_dir), info.base_model)
    if accelerator.is_main_process and not (merged / "config.json").is_file():
        from dpokit.export import merge_lora

        say(accelerator, f"merging the LoRA adapter of {name} into {info.base_model} -> {merged}")
        merge_lora(name, merged)
    accelerator.wait_for_everyone()
    return BaseModel(str(merged), str(merged))


def load_tokenizer_for(config: Config, base: BaseModel):
    from dpokit.models import load_tokenizer

    return load_tokenizer(base.tokenizer, trust_remote_code=config.model.trust_remote_code)


def build_policy(config: Config, base_path: str, accelerator: "Accelerator"):
    """The model to train: the base, optionally quantised, with a fresh LoRA adapter or fully trainable."""
    from accelerate.utils import set_seed

    from dpokit.models import apply_lora, load_model

    quantised = config.model.load_in_4bit or config.model.load_in_8bit
    device_map = {"": accelerator.local_process_index} if quantised else None
    model = load_model(config.model, base_path, device_map=device_map)
    model.config.use_cache = False
    if config.model.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if config.lora.enabled:
        set_seed(config.training.seed)  # the adapter's initial weights depend on the seed alone (as in TRL)
        with warnings.catch_warnings():  # peft calls a transformers method deprecated in v5
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            model = apply_lora(model, config.lora, quantised=quantised)
    if not quantised:
        model.to(accelerator.device)
    return model


# ---------------------------------------------------------------- data


@dataclass
class Data:
    """Tokenised train (and eval) pairs, and the data report."""

    train: list["TokenizedPair"]
    eval: list["TokenizedPair"]
    report: dict
    pad_token_id: int


def prepare_data(config: Config, tokenizer) -> Data:
    """Load, normalise and tokenise the data; every process does the same (it is deterministic)."""
    from dpokit.data.load import load_from_config
    from dpokit.data.report import build_report
    from dpokit.data.tokenize import tokenize_pairs

    train_result, eval_result = load_from_config(config.data, config.training.seed)
    train_pairs, train_stats = tokenize_pairs(train_result.pairs, tokenizer, config.data)
    report = build_report(train_result, train_pairs, train_stats, tokenizer, config.data)
    eval_pairs: list = []
    if eval_result is not None:
        eval_pairs, eval_stats = tokenize_pairs(eval_result.pairs, tokenizer, config.data)
        report["eval"] = build_report(eval_result, eval_pairs, eval_stats, tokenizer, config.data)
    if not train_pairs:
        raise DpokitError(
            f"data.train_files: no usable training pairs ({train_result.records} records, "
            f"{len(train_result.pairs)} pairs before tokenisation; dropped: {report.get('dropped', {})})",
            "run `dpokit data inspect` on the files to see why; raise data.max_length if pairs were truncated away",
        )
    return Data(train_pairs, eval_pairs, report, tokenizer.pad_token_id)


def write_run_files(run_dir: Path, config: Config, base: BaseModel, report: dict, accelerator: "Accelerator") -> None:
    """config.yaml, run.json and data_report.json (main process, atomic writes)."""
    if not accelerator.is_main_process:
        return
    import json

    from dpokit.runs import write_run_json

    run_dir.mkdir(parents=True, exist_ok=True)
    # The run's settings, not how this invocation reached them (a resume or an overwrite).
    kept = config.model_copy(deep=True)
    kept.training.resume_from_checkpoint = None
    kept.output.overwrite_output_dir = False
    atomic_write_text(run_dir / "config.yaml", dump_config(kept))
    atomic_write_text(run_dir / "data_report.json", json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    reference = None
    if config.stage == "dpo":
        ref = config.dpo.reference
        reference = ref if isinstance(ref, str) else ref.model_dump()
    write_run_json(run_dir, stage=config.stage, base_model=base.path, adapter=config.lora.enabled, reference=reference)


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def epoch_order(num_examples: int, seed: int, epoch: int) -> list[int]:
    """The shuffled order of epoch ``epoch``: a pure function of ``(seed, epoch)``."""
    import numpy as np

    return np.random.default_rng([seed % 2**32, epoch]).permutation(num_examples).tolist()


class Batches:
    """The prepared (sharded, device-placing) batches of the train and eval pairs.

    Each batch carries ``index`` (the pairs' positions) so precomputed reference
    log-probs can be looked up.
    """

    def __init__(self, accelerator: "Accelerator", config: Config, data: Data):
        from dpokit.data.collate import collate_preference, collate_sft

        self.accelerator, self.config, self.data = accelerator, config, data
        collate = collate_sft if config.stage == "sft" else collate_preference
        self.collate = partial(collate, pad_token_id=data.pad_token_id)

    def _loader(self, examples: list, order: list[int], batch_size: int, skip: int = 0):
        import torch
        from torch.utils.data import DataLoader

        loader = DataLoader(
            list(enumerate(examples)), batch_size=batch_size, sampler=order, collate_fn=self.collate,
            # Its own generator: starting an iterator must not draw from the global RNG
            # (a resumed run starts one at a different moment than the run it continues).
            generator=torch.Generator().manual_seed(self.config.training.seed),
        )
        loader = self.accelerator.prepare_data_loader(loader)
        return self.accelerator.skip_first_batches(loader, skip) if skip else loader

    def train(self, epoch: int, skip: int = 0):
        """Epoch ``epoch``'s micro-batches on this process, from the ``skip``-th on."""
        order = epoch_order(len(self.data.train), self.config.training.seed, epoch)
        return self._loader(self.data.train, order, self.config.training.per_device_train_batch_size, skip)

    def eval(self):
        return self._loader(self.data.eval, list(range(len(self.data.eval))), self.config.training.per_device_eval_batch_size)


# ---------------------------------------------------------------- optimisation


def make_optimizer(model, config: Config):
    """AdamW; weight decay on matrices only (not on biases and norm scales)."""
    import torch

    trainable = [p for p in model.parameters() if p.requires_grad]
    if not trainable:
        raise DpokitError("the model has no trainable parameters", "check lora.target_modules (it matched no layer)")
    groups = [{"params": [p for p in trainable if p.ndim >= 2], "weight_decay": config.training.weight_decay},
              {"params": [p for p in trainable if p.ndim < 2], "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=config.training.learning_rate)


def make_scheduler(optimizer, config: Config, total_steps: int):
    from transformers import get_scheduler

    training = config.training
    warmup = training.warmup_steps or math.ceil(training.warmup_ratio * total_steps)
    name = "constant_with_warmup" if training.lr_scheduler_type == "constant" else training.lr_scheduler_type
    return get_scheduler(name, optimizer, num_warmup_steps=warmup, num_training_steps=total_steps)


@dataclass
class StepPlan:
    """Micro-batches per epoch (per process) and optimizer steps per epoch and in all."""

    batches_per_epoch: int
    steps_per_epoch: int
    total_steps: int


def plan_steps(config: Config, batches_per_epoch: int) -> StepPlan:
    """Steps from this process's micro-batches per epoch (the prepared loader's length)."""
    training = config.training
    # A last, shorter accumulation at an epoch's end still makes a step (accelerate syncs there).
    steps_per_epoch = math.ceil(batches_per_epoch / training.gradient_accumulation_steps)
    if training.max_steps > 0:
        total = training.max_steps
    else:
        total = max(1, math.ceil(training.num_train_epochs * steps_per_epoch))
    return StepPlan(batches_per_epoch, steps_per_epoch, total)


# ---------------------------------------------------------------- the loop


@dataclass
class Session:
    """Everything the loop touches."""

    config: Config
    accelerator: "Accelerator"
    model: Any
    optimizer: Any
    scheduler: Any
    references: dict[str, Reference]
    batches: Batches
    plan: StepPlan
    state: ckpt.TrainerState
    log: MetricsLog
    run_dir: Path
    window_start: float = field(default_factory=time.perf_counter)


# Metrics that are totals, not means: left out of the logged averages.
_NOT_AVERAGED = {"num_tokens"}


def batch_loss(session: Session, model, batch: dict, split: str = "train"):
    """``(loss, metrics)`` of one batch for the configured stage."""
    from dpokit import objective

    chunk = session.config.training.logprob_chunk_size
    if session.config.stage == "sft":
        return objective.sft_batch_loss(model, batch, chunk)
    ref = session.references[split].logps(model, batch)
    ref_chosen, ref_rejected = ref if ref is not None else (None, None)
    return objective.dpo_batch_loss(model, batch, ref_chosen, ref_rejected, session.config.dpo, chunk)


def _mean_across_processes(accelerator: "Accelerator", values: dict[str, "torch.Tensor"]) -> dict[str, float]:
    import torch

    names = sorted(values)
    stacked = torch.stack([values[n].float().to(accelerator.device) for n in names])
    if accelerator.num_processes > 1:
        stacked = accelerator.reduce(stacked, "mean")
    return dict(zip(names, stacked.tolist()))


def optimizer_step(session: Session) -> float:
    """Clip (or just measure) the gradients, step optimizer and scheduler; returns the gradient norm."""
    training = session.config.training
    max_norm = training.max_grad_norm if training.max_grad_norm > 0 else float("inf")
    grad_norm = session.accelerator.clip_grad_norm_(session.model.parameters(), max_norm)
    session.optimizer.step()
    session.scheduler.step()
    session.optimizer.zero_grad(set_to_none=True)
    return float(grad_norm) if grad_norm is not None else float("nan")


def nan_error(session: Session, step: int, loss: float) -> DpokitError:
    last = ckpt.latest_checkpoint(session.run_dir)
    where = f"the last good checkpoint is {last} (left intact)" if last else "no checkpoint was saved before it"
    hint = ("lower training.learning_rate (or add warmup) and check the data, then "
            + ("resume with training.resume_from_checkpoint=latest" if last else "train again"))
    return DpokitError(f"step {step}: the loss is {loss} (not finite); training stopped, {where}", hint)


def run_loop(session: Session, show_progress: bool) -> None:
    """Optimizer steps until ``total_steps``: forward, backward, step, then log, evaluate, checkpoint."""
    import torch
    from tqdm.auto import tqdm

    accelerator, state, plan, model = session.accelerator, session.state, session.plan, session.model
    model.train()
    bar = tqdm(total=plan.total_steps, initial=state.global_step, desc=f"train ({session.config.stage})", unit="step",
               disable=not (show_progress and accelerator.is_main_process), file=sys.stderr, dynamic_ncols=True)
    sums: dict[str, torch.Tensor] = {}  # metric sums over this step's micro-batches
    micro_batches, tokens = 0, torch.zeros((), device=accelerator.device)
    session.window_start = time.perf_counter()
    try:
        while state.global_step < plan.total_steps:
            for batch in session.batches.train(state.epoch, skip=state.batches_in_epoch):
                with accelerator.accumulate(model):
                    # The whole loss under autocast, not just the model's forward: the chunked LM
                    # head then runs at the forward's precision, as in the reference precompute.
                    with accelerator.autocast():
                        loss, metrics = batch_loss(session, model, batch)
                    accelerator.backward(loss)
                state.batches_in_epoch += 1
                for name, value in {"loss": loss, **metrics}.items():
                    if name not in _NOT_AVERAGED:
                        sums[name] = sums.get(name, 0) + value.detach().float()
                micro_batches += 1
                tokens = tokens + batch["attention_mask"].sum()
                if not accelerator.sync_gradients:
                    continue
                step_metrics = _mean_across_processes(accelerator, {k: v / micro_batches for k, v in sums.items()})
                step_tokens = int(accelerator.reduce(tokens, "sum").item() if accelerator.num_processes > 1 else tokens.item())
                sums, micro_batches, tokens = {}, 0, torch.zeros((), device=accelerator.device)
                if not math.isfinite(step_metrics["loss"]):
                    raise nan_error(session, state.global_step + 1, step_metrics["loss"])
                step_metrics["learning_rate"] = session.scheduler.get_last_lr()[0]  # the rate this step uses
                step_metrics["grad_norm"] = optimizer_step(session)
                state.global_step += 1
                state.tokens_seen += step_tokens
                _roll_epoch_if_done(session)  # before saving: a checkpoint at an epoch's end resumes at the next
                after_step(session, step_metrics, step_tokens, bar)
                if state.global_step >= plan.total_steps:
                    break
            else:  # the epoch's batches are used up (after_step has usually moved on already)
                if state.batches_in_epoch:
                    state.epoch += 1
                    state.batches_in_epoch = 0
    finally:
        bar.close()


def _roll_epoch_if_done(session: Session) -> None:
    state = session.state
    if state.batches_in_epoch >= session.plan.batches_per_epoch:
        state.epoch += 1
        state.batches_in_epoch = 0


def _epoch_progress(session: Session) -> float:
    state = session.state
    return round(state.epoch + state.batches_in_epoch / session.plan.batches_per_epoch, 4)


def _eval_due(session: Session, step: int) -> bool:
    """Every ``eval_steps``, and at the last step (before its checkpoint, so a resumed run never repeats it)."""
    if not session.batches.data.eval:
        return False
    eval_steps = session.config.training.eval_steps
    return step == session.plan.total_steps or (bool(eval_steps) and step % eval_steps == 0)


def after_step(session: Session, step_metrics: dict[str, float], tokens: int, bar) -> None:
    """Progress bar, logging window, periodic eval and checkpoint after optimizer step ``state.global_step``."""
    state, training = session.state, session.config.training
    step = state.global_step
    window = state.log_window  # sums since the last logged step; saved in checkpoints
    for name, value in step_metrics.items():
        window[name] = window.get(name, 0.0) + value
    window["_tokens"] = window.get("_tokens", 0.0) + tokens
    state.log_window_steps += 1

    elapsed = max(time.perf_counter() - session.window_start, 1e-9)
    postfix = {"loss": f"{step_metrics['loss']:.4f}"}
    if "rewards/accuracies" in step_metrics:
        postfix["acc"] = f"{step_metrics['rewards/accuracies']:.2f}"
    postfix["tok/s"] = f"{window['_tokens'] / elapsed:.0f}"
    bar.set_postfix(postfix, refresh=False)
    bar.update(1)

    if step % training.logging_steps == 0 or step == session.plan.total_steps:
        record: dict[str, Any] = {"step": step, "epoch": _epoch_progress(session)}
        record.update({k: v / state.log_window_steps for k, v in window.items() if not k.startswith("_")})
        record["learning_rate"] = step_metrics["learning_rate"]
        record["tokens_per_second"] = round(window["_tokens"] / elapsed, 1)
        session.log.log(record)
        state.log_window, state.log_window_steps = {}, 0
        session.window_start = time.perf_counter()
    if _eval_due(session, step):
        session.log.log(evaluate(session))
    if training.save_steps and (step % training.save_steps == 0 or step == session.plan.total_steps):
        path = ckpt.save_checkpoint(session.accelerator, session.run_dir, session.model, session.optimizer,
                                    session.scheduler, state)
        if session.accelerator.is_main_process:
            ckpt.rotate_checkpoints(session.run_dir, training.save_total_limit, keep=path)
        session.accelerator.wait_for_everyone()


def evaluate(session: Session) -> dict[str, Any]:
    """Loss and metrics over the eval pairs (batch means weighted by pairs), as ``eval_*`` keys.

    Under several processes accelerate's even batches may score a few pairs twice.
    """
    import torch

    accelerator, model = session.accelerator, session.model
    sums: dict[str, torch.Tensor] = {}
    pairs = torch.zeros((), device=accelerator.device)
    model.eval()
    try:
        with torch.no_grad(), accelerator.autocast():
            for batch in session.batches.eval():
                loss, metrics = batch_loss(session, model, batch, split="eval")
                n = batch["index"].numel()
                for name, value in {"loss": loss, **metrics}.items():
                    if name not in _NOT_AVERAGED:
                        sums[name] = sums.get(name, 0) + value.detach().float() * n
                pairs = pairs + n
    finally:
        model.train()
    names = sorted(sums)
    totals = torch.stack([sums[n] for n in names] + [pairs])
    if accelerator.num_processes > 1:
        totals = accelerator.reduce(totals, "sum")
    values = totals.tolist()
    count = max(values[-1], 1)
    record: dict[str, Any] = {"step": session.state.global_step, "epoch": _epoch_progress(session)}
    record.update({f"eval_{name}": value / count for name, value in zip(names, values[:-1])})
    return record
