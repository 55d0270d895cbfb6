"""The DPO reference: where ``log pi_ref(answer | prompt)`` comes from, and its on-disk cache.

Modes (``dpo.reference``):

* ``precompute`` (default): computed once, before training, with the initial model (the
  policy with its fresh LoRA switched off, or the model a full fine-tune starts from), and
  cached under ``dpokit_home()/refcache/<key>.safetensors``. The key covers the model's
  identity (resolved path, hash of its config and weight files' names, sizes and mtimes),
  how it is run (dtype, mixed precision, quantisation, attention), the tokenised data (a
  hash of every token id, in order) and the tokenisation settings. A beta sweep over the
  same model and data computes them once.
* ``adapter``: the policy itself with its LoRA switched off (``disable_adapter()``), per batch.
* ``{model: PATH}``: a separate frozen model in eval mode, per batch.
* ``none``: reference-free losses (SimPO, ORPO).

Every mode gives, for a batch of ``B`` pairs, ``(chosen [B], rejected [B])`` float32 on the
batch's device, or None when there is no reference.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

from dpokit.errors import DpokitError

if TYPE_CHECKING:
    import torch
    from accelerate import Accelerator

    from dpokit.config import Config
    from dpokit.data.tokenize import TokenizedPair

CACHE_FORMAT = 1
"""Bump when the meaning of cached values changes (a new log-prob definition)."""
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")


# ---------------------------------------------------------------- cache keys


def files_fingerprint(path: Path) -> str:
    """sha256 of a model or adapter dir's config files (content) and weight files (name, size, mtime)."""
    digest = hashlib.sha256()
    for name in ("config.json", "adapter_config.json"):
        if (path / name).is_file():
            digest.update((path / name).read_bytes())
    for file in sorted(path.iterdir()):
        if file.is_file() and (file.suffix in _WEIGHT_SUFFIXES or file.name.endswith(".index.json")):
            stat = file.stat()
            digest.update(f"{file.name}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def model_fingerprint(name_or_path: str) -> dict[str, str]:
    """Identity of a model without reading its weights: resolved path + :func:`files_fingerprint`.

    Retraining into the same dir changes the weight files' mtimes and so the key. A hub id
    has no local files and is keyed by name.
    """
    from dpokit.models import resolve_model_path

    resolved = resolve_model_path(name_or_path)
    path = Path(resolved)
    if not path.is_dir():
        return {"model": resolved, "files": ""}
    return {"model": str(path.resolve()), "files": files_fingerprint(path)}


def data_fingerprint(examples: Sequence["TokenizedPair"]) -> str:
    """sha256 over every pair's prompt, chosen and rejected token ids, in order."""
    import numpy as np

    digest = hashlib.sha256()
    for ex in examples:
        for ids in (ex.prompt_ids, ex.chosen_ids, ex.rejected_ids):
            digest.update(np.asarray(ids, dtype=np.int64).tobytes())
            digest.update(b"|")
        digest.update(b"\n")
    return digest.hexdigest()


def cache_key_parts(config: "Config", model_path: str, examples: Sequence["TokenizedPair"], mixed_precision: str) -> dict[str, Any]:
    """Everything the cached values depend on, as a JSON-ready dict (kept beside the cache)."""
    data = config.data
    return {
        "format": CACHE_FORMAT,
        **model_fingerprint(model_path),
        "dtype": config.model.dtype,
        "mixed_precision": mixed_precision,
        "load_in_4bit": config.model.load_in_4bit,
        "load_in_8bit": config.model.load_in_8bit,
        "attn_implementation": config.model.attn_implementation,
        "tokenization": {
            "max_length": data.max_length,
            "max_prompt_length": data.max_prompt_length,
            "apply_chat_template": data.apply_chat_template,
            "system_prompt": data.system_prompt,
        },
        "data": data_fingerprint(examples),
        "pairs": len(examples),
    }


def cache_key(parts: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


def cache_dir() -> Path:
    from dpokit.models import dpokit_home

    return dpokit_home() / "refcache"


# ---------------------------------------------------------------- cache files


@dataclass
class ReferenceLogps:
    """Reference log-probs of a whole dataset: ``chosen`` and ``rejected`` ``[N]`` float32."""

    chosen: "torch.Tensor"
    rejected: "torch.Tensor"


def load_cached(key: str, expected_pairs: int) -> Optional[ReferenceLogps]:
    """The cached values for ``key``, or None (missing, unreadable or the wrong size)."""
    from safetensors.torch import load_file

    path = cache_dir() / f"{key}.safetensors"
    if not path.is_file():
        return None
    try:
        tensors = load_file(str(path))
    except Exception:  # a damaged cache file is recomputed, never trusted
        return None
    chosen, rejected = tensors.get("chosen"), tensors.get("rejected")
    if chosen is None or rejected is None or chosen.shape[0] != expected_pairs or rejected.shape[0] != expected_pairs:
        return None
    return ReferenceLogps(chosen, rejected)


def save_cached(key: str, logps: ReferenceLogps, parts: dict[str, Any]) -> Path:
    """Write ``<key>.safetensors`` (+ ``<key>.json`` describing the key) atomically."""
    from safetensors.torch import save_file

    root = cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    path = root / f"{key}.safetensors"
    fd, tmp = tempfile.mkstemp(prefix=f".{key}.", dir=root)
    os.close(fd)
    try:
        save_file({"chosen": logps.chosen.contiguous().cpu(), "rejected": logps.rejected.contiguous().cpu()}, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    (root / f"{key}.json").write_text(json.dumps(parts, indent=2) + "\n", encoding="utf-8")
    return path


# ---------------------------------------------------------------- computing


def _batched_by_length(examples: Sequence["TokenizedPair"], indices: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length (less padding); order inside is irrelevant."""
    ordered = sorted(indices, key=lambda i: len(examples[i].prompt_ids) + max(len(examples[i].chosen_ids), len(examples[i].rejected_ids)))
    return [ordered[i : i + batch_size] for i in range(0, len(ordered), batch_size)]


def compute_reference_logps(
    accelerator: "Accelerator",
    model,
    examples: Sequence["TokenizedPair"],
    logps_fn: Callable[[Any, dict], tuple["torch.Tensor", "torch.Tensor"]],
    collate: Callable[[list], dict],
    batch_size: int,
    show_progress: bool = True,
    desc: str = "reference log-probs",
) -> ReferenceLogps:
    """Run ``logps_fn`` over every pair, without gradients, in eval mode; each process takes a shard.

    ``model`` must not be wrapped for distributed training yet (its forward must not
    synchronise), only placed on ``accelerator.device``. Results from all processes are
    summed into full ``[N]`` tensors, so every process ends with every value.
    """
    import torch
    from tqdm.auto import tqdm

    n = len(examples)
    mine = list(range(accelerator.process_index, n, accelerator.num_processes))
    chosen = torch.zeros(n, dtype=torch.float32, device=accelerator.device)
    rejected = torch.zeros(n, dtype=torch.float32, device=accelerator.device)
    was_training = model.training
    model.eval()
    batches = _batched_by_length(examples, mine, batch_size)
    bar = tqdm(batches, desc=desc, unit="batch", disable=not (show_progress and accelerator.is_main_process),
               file=sys.stderr, dynamic_ncols=True)
    try:
        with torch.no_grad(), accelerator.autocast():
            for batch_indices in bar:
                batch = collate([(i, examples[i]) for i in batch_indices])
                batch = {k: v.to(accelerator.device) for k, v in batch.items()}
                c, r = logps_fn(model, batch)
                chosen[batch["index"]] = c.float()
                rejected[batch["index"]] = r.float()
    finally:
        bar.close()
        model.train(was_training)
    if accelerator.num_processes > 1:
        chosen, rejected = accelerator.reduce(chosen, "sum"), accelerator.reduce(rejected, "sum")
    return ReferenceLogps(chosen.cpu(), rejected.cpu())


def precompute_reference(
    accelerator: "Accelerator",
    model,
    examples: Sequence["TokenizedPair"],
    key_parts: dict[str, Any],
    logps_fn: Callable,
    collate: Callable,
    batch_size: int,
    show_progress: bool = True,
    desc: str = "reference log-probs",
) -> tuple[ReferenceLogps, bool]:
    """Cached reference log-probs for ``examples``, computing and storing them on a miss.

    Returns ``(logps, hit)``. Only the main process writes the cache.
    """
    key = cache_key(key_parts)
    cached = load_cached(key, len(examples))
    # Every process must agree on hit/miss, or some would wait in a collective forever.
    hit = cached is not None
    if accelerator.num_processes > 1:
        import torch

        flag = torch.tensor([1 if hit else 0], device=accelerator.device)
        hit = bool(accelerator.reduce(flag, "min").item())
    if hit:
        return cached, True
    logps = compute_reference_logps(accelerator, model, examples, logps_fn, collate, batch_size, show_progress, desc)
    if accelerator.is_main_process:
        save_cached(key, logps, key_parts)
    accelerator.wait_for_everyone()
    return logps, False


# ---------------------------------------------------------------- per-batch references


class Reference:
    """Gives a batch's reference log-probs: ``(chosen [B], rejected [B])`` or None."""

    def logps(self, model, batch: dict) -> Optional[tuple["torch.Tensor", "torch.Tensor"]]:
        raise NotImplementedError


class NoReference(Reference):
    """Reference-free losses (SimPO, ORPO)."""

    def logps(self, model, batch):
        return None


class PrecomputedReference(Reference):
    """Looks the batch's pairs up (``batch["index"]``) in precomputed ``[N]`` tensors."""

    def __init__(self, values: ReferenceLogps, device):
        self.chosen = values.chosen.to(device)
        self.rejected = values.rejected.to(device)

    def logps(self, model, batch):
        index = batch["index"].to(self.chosen.device)
        return self.chosen[index], self.rejected[index]


class AdapterReference(Reference):
    """The policy with its LoRA adapter switched off: the base model it started from."""

    def __init__(self, accelerator: "Accelerator", logps_fn: Callable):
        self.accelerator = accelerator
        self.logps_fn = logps_fn

    def logps(self, model, batch):
        import torch

        peft_model = self.accelerator.unwrap_model(model)
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad(), peft_model.disable_adapter():
                c, r = self.logps_fn(model, batch)
        finally:
            model.train(was_training)
        return c.detach(), r.detach()


class ModelReference(Reference):
    """A separate frozen model (e.g. an SFT checkpoint), in eval mode."""

    def __init__(self, ref_model, logps_fn: Callable, accelerator: "Accelerator"):
        self.model = ref_model
        self.logps_fn = logps_fn
        self.accelerator = accelerator

    def logps(self, model, batch):
        import torch

        with torch.no_grad(), self.accelerator.autocast():
            c, r = self.logps_fn(self.model, batch)
        return c.detach(), r.detach()


def disabled_adapter(model):
    """Context that switches a PEFT model's adapter off (a no-op for a plain model)."""
    disable = getattr(model, "disable_adapter", None)
    return disable() if callable(disable) else nullcontext()


def check_reference_mode(config: "Config") -> None:
    """Fail early on a reference spec that cannot work with the loss or model settings."""
    ref = config.dpo.reference
    if config.stage != "dpo":
        return
    if ref == "none" and not config.dpo.reference_free:
        raise DpokitError(
            f"dpo.reference: none, but loss_type '{config.dpo.loss_type}' needs a reference model",
            "use dpo.reference: precompute (the default), or a reference-free loss (loss_type: simpo or orpo)",
        )
    if ref == "adapter" and not config.lora.enabled:
        raise DpokitError(
            "dpo.reference: adapter needs a LoRA policy (the reference is the policy with its adapter off), but lora.enabled is false",
            "use dpo.reference: precompute for full fine-tuning, or set lora.enabled: true",
        )
