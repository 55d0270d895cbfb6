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
from typing import TYPE_CHECKING, Any, Callable, Iterable, Optional, Sequence

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


def compute_reference_logps(
    accelerator: "Accelerator",
    model,
    batches: Iterable[dict],
    num_pairs: int,
    logps_fn: Callable[[Any, dict], tuple["torch.Tensor", "torch.Tensor"]],
    show_progress: bool = True,
    desc: str = "reference log-probs",
) -> ReferenceLogps:
    """Run ``logps_fn`` over ``batches`` (each with ``index``), without gradients, in eval mode.

    ``batches`` are the ones training will see (this process's shard of epoch 0, or the eval
    batches), so at step 1 the policy and its reference are the same computation on the same
    padded tensors: the loss is exactly ln 2 and the rewards exactly 0. ``model`` must not be
    wrapped for distributed training yet (its forward must not synchronise). Results from
    all processes are combined into full ``[N]`` tensors (a pair two processes both scored,
    from accelerate's even-batch padding, is averaged), so every process ends with every value.
    """
    import torch
    from tqdm.auto import tqdm

    device = accelerator.device
    chosen = torch.zeros(num_pairs, dtype=torch.float32, device=device)
    rejected = torch.zeros(num_pairs, dtype=torch.float32, device=device)
    seen = torch.zeros(num_pairs, dtype=torch.float32, device=device)
    was_training = model.training
    model.eval()
    bar = tqdm(batches, desc=desc, unit="batch", disable=not (show_progress and accelerator.is_main_process),
               file=sys.stderr, dynamic_ncols=True)
    try:
        with torch.no_grad(), accelerator.autocast():
            for batch in bar:
                index = batch["index"].to(device)
                c, r = logps_fn(model, batch)
                chosen.index_add_(0, index, c.float().to(device))
                rejected.index_add_(0, index, r.float().to(device))
                seen.index_add_(0, index, torch.ones_like(index, dtype=torch.float32))
    finally:
        bar.close()
        model.train(was_training)
    if accelerator.num_processes > 1:
        chosen, rejected, seen = (accelerator.reduce(t, "sum") for t in (chosen, rejected, seen))
    if bool((seen == 0).any()):
        raise RuntimeError(f"reference log-probs: {int((seen == 0).sum())} of {num_pairs} pairs were never scored")
    return ReferenceLogps((chosen / seen).cpu(), (rejected / seen).cpu())


def precompute_reference(
    accelerator: "Accelerator",
    model,
    batches: Iterable[dict],
    num_pairs: int,
    key_parts: dict[str, Any],
    logps_fn: Callable,
    show_progress: bool = True,
    desc: str = "reference log-probs",
) -> tuple[ReferenceLogps, bool]:
    """Cached reference log-probs, computed with :func:`compute_reference_logps` and stored on a miss.

    Returns ``(logps, hit)``. Only the main process writes the cache.
    """
    key = cache_key(key_parts)
    cached = load_cached(key, num_pairs)
    # Every process must agree on hit/miss, or some would wait in a collective forever.
    hit = cached is not None
    if accelerator.num_processes > 1:
        import torch

        misses = torch.tensor([0 if hit else 1], device=accelerator.device)
        hit = accelerator.reduce(misses, "sum").item() == 0
    if hit:
        return cached, True
    logps = compute_reference_logps(accelerator, model, batches, num_pairs, logps_fn, show_progress, desc)
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


# ---------------------------------------------------------------- choosing the mode


def pair_logps_fn(chunk_size: int) -> Callable[[Any, dict], tuple["torch.Tensor", "torch.Tensor"]]:
    """``(model, batch) -> (chosen [B], rejected [B])``: summed answer log-probs of a preference batch."""
    from dpokit.objective import policy_logps

    def logps(model, batch):
        out = policy_logps(model, batch, chunk_size)
        return out.chosen, out.rejected

    return logps


def load_reference_model(config: "Config", name: str, accelerator: "Accelerator"):
    """A separate reference model (a model dir, a run dir or an adapter), frozen and in eval mode."""
    from dpokit.runs import load_for_inference

    dtype = config.model.dtype if config.model.dtype != "auto" else None
    model, _tokenizer, _info = load_for_inference(name, dtype=dtype, device=accelerator.device)
    model.requires_grad_(False)
    model.eval()
    return model


def build_references(
    config: "Config",
    base_model: str,
    model,
    accelerator: "Accelerator",
    splits: dict[str, tuple[Sequence["TokenizedPair"], Callable[[], Iterable[dict]]]],
    show_progress: bool = True,
    say: Callable[[str], None] = lambda text: None,
) -> dict[str, Reference]:
    """One :class:`Reference` per split (``train``, ``eval``) as ``config.dpo.reference`` asks.

    ``splits`` maps a split to its pairs and a function giving the batches training (or
    evaluation) will see; ``precompute`` scores those batches with ``model``'s adapter
    switched off (before any training step) and caches the result, keyed by ``base_model``.
    """
    spec = config.dpo.reference
    if config.stage == "sft" or config.dpo.reference_free or spec == "none":
        return {split: NoReference() for split in splits}
    logps = pair_logps_fn(config.training.logprob_chunk_size)
    if spec == "adapter":
        return {split: AdapterReference(accelerator, logps) for split in splits}
    if not isinstance(spec, str):
        separate = ModelReference(load_reference_model(config, spec.model, accelerator), logps, accelerator)
        return {split: separate for split in splits}

    def initial_model_logps(m, batch):
        with disabled_adapter(m):
            return logps(m, batch)

    references: dict[str, Reference] = {}
    for split, (examples, batches) in splits.items():
        if not examples:
            references[split] = NoReference()
            continue
        parts = cache_key_parts(config, base_model, examples, accelerator.mixed_precision)
        values, hit = precompute_reference(accelerator, model, batches(), len(examples), parts, initial_model_logps,
                                           show_progress, desc=f"reference log-probs ({split})")
        say(f"reference log-probs ({split}, {len(examples)} pairs): "
            f"{'reused from cache' if hit else 'computed and cached'} [{cache_key(parts)}]")
        references[split] = PrecomputedReference(values, accelerator.device)
    return references
