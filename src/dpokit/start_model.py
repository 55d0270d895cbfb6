"""The model a run starts from, and how a run keeps it.

``model.name_or_path`` may name a plain model (a dir, a ``.gguf``, an embedded name, a hub
id) or another dpokit run. When it names a LoRA run (SFT, then DPO on top of it), the new
run trains on that run's model with its adapter *merged*, so that the new adapter sits on
the SFT model and the reference is the SFT model, not the original base.

Self-contained run dirs: the earlier run's adapter is copied into the new run's
``RUN_DIR/base/`` (a PEFT adapter dir naming the original base, with the tokenizer), and
``run.json`` records ``base_model: "base"``; when the earlier run carried a base of its own
(a chain of rounds), that goes along inside as ``base/base/``. Copying the run dir to another
machine keeps everything but the original base model (an embedded name or hub id, as for any
LoRA run).

The merged weights themselves are a cache: built once into
``dpokit_home()/merged/<base>+lora-<key>`` by :func:`materialise`, keyed by the adapter's and the
base's file contents, and rebuilt from ``RUN_DIR/base/`` wherever they are missing.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from dpokit.outputs import os_errors, write_json
from dpokit.rundir import BASE_DIR

if TYPE_CHECKING:
    from accelerate import Accelerator

    from dpokit.config import Config


@dataclass
class StartModel:
    """Where a run's policy (and, by default, its reference) starts."""

    recorded_as: str
    """What run.json records as ``base_model``: the user's reference, or ``"base"`` (carried in the run dir)."""
    path: str
    """What ``from_pretrained`` loads (a dir, an embedded name or a hub id)."""
    tokenizer: str
    """Where the tokenizer and its chat template come from."""
    carried_adapter: Optional[Path] = None
    """An earlier run's LoRA adapter to copy into ``RUN_DIR/base/``."""
    carried_base: Optional[str] = None
    """The model that adapter belongs to (recorded in the copy's adapter_config.json)."""
    carried_base_dir: Optional[Path] = None
    """When that model is itself carried by the earlier run (a chain: SFT, DPO, DPO...), its ``base/``
    dir, copied along as ``RUN_DIR/base/base/`` so the whole chain travels with the run."""


def merged_dir(adapter_dir: Path, base_path: str) -> Path:
    """Cache dir for ``base_path`` + the adapter, merged; keyed by both identities, so a sweep merges once."""
    from dpokit.fingerprint import adapter_fingerprint, model_identity
    from dpokit.models import dpokit_home

    identity = json.dumps({"adapter": adapter_fingerprint(adapter_dir), "base": model_identity(base_path)},
                          sort_keys=True)
    key = hashlib.sha256(identity.encode()).hexdigest()[:16]
    # Named by what it is, not where the adapter sits: a run's base/ copy finds the same dir.
    return dpokit_home() / "merged" / f"{Path(base_path).name}+lora-{key}"


def materialise(ref: str) -> str:
    """A path ``from_pretrained`` loads for ``ref``: ``ref``'s own weights, or its base with its LoRA merged.

    A plain model, a full fine-tune run or a checkpoint of one comes back as it is. A LoRA
    run or adapter dir comes back as the merged cache dir (built now if missing; a base that
    is itself a LoRA run is merged first, recursively).
    """
    from dpokit.runs import open_model_or_run

    info = open_model_or_run(ref)
    if info.adapter_dir is None:
        return info.model_dir
    base_path = materialise(info.base_model)
    out = merged_dir(Path(info.adapter_dir), base_path)
    if not (out / "config.json").is_file():
        from dpokit.export import merge_lora

        print(f"dpokit: merging the LoRA adapter of {ref} into {info.base_model} -> {out} (once)", file=sys.stderr)
        merge_lora(ref, out)
    return str(out)


def resolve_start_model(config: "Config", accelerator: "Accelerator") -> StartModel:
    """The model ``config.model.name_or_path`` names, ready to train from (merged on the main process)."""
    from dpokit.runs import open_model_or_run

    name = config.model.name_or_path
    info = open_model_or_run(name)
    if info.adapter_dir is None:
        return StartModel(recorded_as=info.model_dir or name, path=info.model_dir or name,
                          tokenizer=info.tokenizer_dir or name)
    if accelerator.is_main_process:
        merged = materialise(name)
    accelerator.wait_for_everyone()
    if not accelerator.is_main_process:
        merged = materialise(name)  # built by the main process: now only found
    own_base = Path(info.path) / BASE_DIR if info.path is not None else None
    chained = own_base is not None and Path(info.base_model) == own_base.resolve()
    return StartModel(recorded_as=BASE_DIR, path=merged, tokenizer=merged,
                      carried_adapter=Path(info.adapter_dir), carried_base=info.base_model,
                      carried_base_dir=own_base if chained else None)


def carry_into(run_dir: Path, start: StartModel) -> None:
    """Copy the earlier run's adapter into ``RUN_DIR/base/`` (main process; replaces an older copy).

    The copy's ``adapter_config.json`` names the base it goes on: the original base model, or,
    for a chain, ``base`` (relative to the copy: the earlier run's own ``base/``, copied inside it).
    """
    if start.carried_adapter is None:
        return
    target = Path(run_dir) / BASE_DIR
    skip = shutil.ignore_patterns("optimizer.pt", "scheduler.pt", "rng_state_*", "trainer_state.json")
    with os_errors(target):
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(start.carried_adapter, target, ignore=skip)
        if start.carried_base_dir is not None:
            shutil.copytree(start.carried_base_dir, target / BASE_DIR, ignore=skip)
        config_path = target / "adapter_config.json"
        adapter_config = json.loads(config_path.read_text(encoding="utf-8"))
        # The copy must name a base that exists wherever the run dir goes, not the cache path PEFT wrote.
        adapter_config["base_model_name_or_path"] = BASE_DIR if start.carried_base_dir is not None else start.carried_base
        write_json(config_path, adapter_config)
