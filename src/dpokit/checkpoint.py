"""Training checkpoints: atomic save, rotation, discovery and exact restore.

A checkpoint is everything needed to continue a run as if it had never stopped::

    RUN_DIR/checkpoints/checkpoint-<step>/
        adapter_config.json + adapter_model.safetensors   (LoRA)  or  config.json + model.safetensors (full)
        optimizer.pt              the optimizer's state_dict
        scheduler.pt              the learning-rate scheduler's state_dict
        rng_state_<rank>.pth      python, numpy, torch and CUDA RNG states of each process
        trainer_state.json        step, epoch, position in the epoch's data order, open log window

It is written into ``checkpoints/.tmp-checkpoint-<step>`` and renamed into place once
complete, so a run killed mid-save never leaves a directory that :func:`latest_checkpoint`
would take. Under FSDP or DeepSpeed, where parameters and optimizer state are sharded
across processes, ``accelerate``'s own ``save_state``/``load_state`` write the shards into
``sharded_state/`` instead of ``optimizer.pt``.
"""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from dpokit.errors import DpokitError
from dpokit.outputs import fix_tree_modes, os_errors
from dpokit.rundir import CHECKPOINTS_DIR, FINAL_DIR, TMP_PREFIX, TRAINER_STATE, list_checkpoints

if TYPE_CHECKING:
    from accelerate import Accelerator

OPTIMIZER_FILE = "optimizer.pt"
SCHEDULER_FILE = "scheduler.pt"
SHARDED_STATE_DIR = "sharded_state"


@dataclass
class TrainerState:
    """Where the loop stands; saved as ``trainer_state.json``.

    ``epoch`` is the index of the epoch in progress and ``batches_in_epoch`` the number of
    micro-batches this process has consumed from that epoch's data order, so a resumed run
    skips exactly those. ``log_window`` holds the sums of the metrics logged since the last
    logging step (a window may straddle a checkpoint).
    """

    global_step: int = 0
    epoch: int = 0
    batches_in_epoch: int = 0
    total_steps: int = 0
    tokens_seen: int = 0
    log_window: dict[str, float] = field(default_factory=dict)
    log_window_steps: int = 0
    last_checkpoint: Optional[str] = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, allow_nan=True) + "\n"

    @classmethod
    def from_file(cls, path: Path) -> "TrainerState":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            raise DpokitError(f"{path}: cannot read the trainer state ({err})", "the checkpoint is damaged; resume from another one") from None
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def _is_sharded(accelerator: "Accelerator") -> bool:
    from accelerate.utils import DistributedType

    return accelerator.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED)


def rng_state() -> dict[str, Any]:
    import numpy as np
    import torch

    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    import numpy as np
    import torch

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_trainable_weights(accelerator: "Accelerator", model, out_dir: Path) -> None:
    """A PEFT adapter dir (LoRA) or a full model dir; the main process writes it."""
    state_dict = accelerator.get_state_dict(model)  # gathers shards under FSDP/DeepSpeed
    if accelerator.is_main_process:
        unwrapped = accelerator.unwrap_model(model)
        unwrapped.save_pretrained(out_dir, state_dict=state_dict, safe_serialization=True)


def save_final(accelerator: "Accelerator", model, tokenizer, run_dir: Path, name: str = FINAL_DIR) -> Path:
    """``RUN_DIR/final``: the adapter (or full model) and the tokenizer with its chat template.

    Written into a temp dir and renamed into place when complete; every process must call it.
    """
    run_dir = Path(run_dir)
    final = run_dir / name
    tmp = run_dir / f"{TMP_PREFIX}{name}"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    save_trainable_weights(accelerator, model, tmp)
    if accelerator.is_main_process:
        with os_errors(final):
            tokenizer.save_pretrained(tmp)
            fix_tree_modes(tmp)  # safetensors and tempdirs write private modes; a model dir is shared
            if final.exists():  # a resumed run that had already finished
                shutil.rmtree(final)
            tmp.rename(final)
    accelerator.wait_for_everyone()
    return final


def save_checkpoint(accelerator: "Accelerator", run_dir: Path, model, optimizer, scheduler, state: TrainerState) -> Path:
    """Write ``checkpoint-<state.global_step>`` atomically; every process must call it."""
    import torch

    root = Path(run_dir) / CHECKPOINTS_DIR
    final = root / f"checkpoint-{state.global_step}"
    tmp = root / f"{TMP_PREFIX}{final.name}"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    if _is_sharded(accelerator):
        accelerator.save_state(str(tmp / SHARDED_STATE_DIR))
    elif accelerator.is_main_process:
        torch.save(optimizer.state_dict(), tmp / OPTIMIZER_FILE)
    save_trainable_weights(accelerator, model, tmp)
    torch.save(rng_state(), tmp / f"rng_state_{accelerator.process_index}.pth")
    if accelerator.is_main_process:
        torch.save(scheduler.state_dict(), tmp / SCHEDULER_FILE)
        state.last_checkpoint = str(final)
        (tmp / TRAINER_STATE).write_text(state.to_json(), encoding="utf-8")  # last: it marks the checkpoint complete
        fix_tree_modes(tmp)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if final.exists():  # re-saving a step after resuming from an earlier checkpoint
            old = root / f"{TMP_PREFIX}old-{final.name}"
            final.rename(old)
            tmp.rename(final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(final)
    accelerator.wait_for_everyone()
    return final


def rotate_checkpoints(run_dir: Path, limit: Optional[int], keep: Optional[Path] = None) -> list[Path]:
    """Delete the oldest checkpoints beyond ``limit`` (never ``keep``); returns what was deleted."""
    if not limit:
        return []
    found = list_checkpoints(run_dir)
    doomed = [p for p in found[: max(0, len(found) - limit)] if keep is None or p.resolve() != Path(keep).resolve()]
    for path in doomed:
        shutil.rmtree(path, ignore_errors=True)
    return doomed


def _load_trainable_weights(model, checkpoint: Path, is_peft: bool) -> None:
    from safetensors.torch import load_file

    if is_peft:
        from peft import set_peft_model_state_dict

        file = checkpoint / "adapter_model.safetensors"
        if not file.is_file():
            raise DpokitError(f"{checkpoint}: no adapter_model.safetensors", "this checkpoint is from a full fine-tune; set lora.enabled to match the run")
        result = set_peft_model_state_dict(model, load_file(str(file)))
        unexpected = getattr(result, "unexpected_keys", [])
        if unexpected:
            raise DpokitError(f"{checkpoint}: adapter does not match the model ({len(unexpected)} unexpected tensors, e.g. {unexpected[0]})",
                              "resume with the same lora settings the run was started with")
        return
    files = sorted(checkpoint.glob("model*.safetensors"))
    if not files:
        raise DpokitError(f"{checkpoint}: no model*.safetensors", "this checkpoint holds a LoRA adapter; set lora.enabled: true to match the run")
    state_dict: dict = {}
    for file in files:
        state_dict.update(load_file(str(file)))
    missing, unexpected = model.load_state_dict(state_dict, strict=False)
    # Tied weights (lm_head = embed_tokens) are saved once: a missing key is fine when its
    # tensor is shared with one that was loaded.
    params = dict(model.named_parameters(remove_duplicate=False))
    loaded = {params[k].data_ptr() for k in state_dict if k in params}
    missing = [k for k in missing if k not in params or params[k].data_ptr() not in loaded]
    if missing or unexpected:
        raise DpokitError(f"{checkpoint}: weights do not match the model (missing {missing[:3]}, unexpected {unexpected[:3]})",
                          "resume with the model the run was started with")


def load_checkpoint(accelerator: "Accelerator", checkpoint: Path, model, optimizer, scheduler) -> TrainerState:
    """Restore weights, optimizer, scheduler and this process's RNG state; returns the trainer state.

    Call it after ``accelerator.prepare`` and right before the loop: restoring the RNG
    last means nothing built in between draws from it.
    """
    import torch

    checkpoint = Path(checkpoint)
    state = TrainerState.from_file(checkpoint / TRAINER_STATE)
    if _is_sharded(accelerator):
        accelerator.load_state(str(checkpoint / SHARDED_STATE_DIR))
    else:
        from peft import PeftModel

        unwrapped = accelerator.unwrap_model(model)
        _load_trainable_weights(unwrapped, checkpoint, isinstance(unwrapped, PeftModel))
        # Loaded on CPU: load_state_dict moves each state tensor to its parameter's device.
        optimizer.load_state_dict(torch.load(checkpoint / OPTIMIZER_FILE, map_location="cpu", weights_only=True))
    scheduler.load_state_dict(torch.load(checkpoint / SCHEDULER_FILE, weights_only=True))
    rng_file = checkpoint / f"rng_state_{accelerator.process_index}.pth"
    if not rng_file.is_file():
        rng_file = checkpoint / "rng_state_0.pth"
    # Our own file: it holds numpy's RNG tuple, which the weights-only unpickler refuses.
    set_rng_state(torch.load(rng_file, weights_only=False))
    return state
