"""The DPO reference: where ``log pi_ref(answer | prompt)`` comes from, and its on-disk cache.

Modes (``dpo.reference``):

* ``precompute`` (default): computed once, before training, with the initial model (the
  policy with its fresh LoRA switched off, or the model a full fine-tune starts from), on
  the very batches training will see, and cached under
  ``dpokit_home()/refcache/<key>.safetensors``. The key covers everything that changes the
  numbers: the model's identity (:func:`dpokit.fingerprint.model_identity`: its files'
  contents, a hub id's resolved commit), how it is run (dtype, mixed precision,
  quantisation, attention), the tokenised data (every token id, in order), the
  tokenisation settings, and the batches (layout, batch size, order seed, length grouping,
  processes). A beta or learning-rate sweep over the same model and data computes them
  once. A model whose identity cannot be told (a hub id neither cached nor reachable) is
  not cached.
* ``adapter``: the policy itself with its LoRA switched off (``disable_adapter()``), per batch.
* ``{model: PATH}``: a separate frozen model in eval mode, per batch.
* ``none``: reference-free losses (SimPO, ORPO).

Every mode gives, for a batch of ``B`` pairs, ``(chosen [B], rejected [B])`` float32 on the
batch's device, or None when there is no reference.
"""

from __future__ import annotations

import hashlib
import json
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Optional, Sequence

from dpokit.errors import DpokitError
from dpokit.outputs import write_file, write_json

if TYPE_CHECKING:
    import torch
    from accelerate import Accelerator

    from dpokit.config import Config
    from dpokit.data.tokenize import TokenizedPair

CACHE_FORMAT = 2
"""Bump when the meaning of cached values changes (a new log-prob definition, a new key)."""


def cache_key_parts(config: "Config", model_path: str, examples: Sequence["TokenizedPair"], mixed_precision: str,
                    *, batch_size: int, shuffled: bool, num_processes: int = 1) -> dict[str, Any]:
    """Everything the cached values depend on, as a JSON-ready dict (kept beside the cache).

    ``batch_size``, ``shuffled`` (train: the seeded epoch-0 order; eval: dataset order), the
    length grouping (either split) and ``num_processes`` say which batches were scored:
    padding within a batch moves the values in their last bits, and step 1 must be exactly
    the policy's own forward.
    """
    from dpokit.data.collate import LAYOUT
    from dpokit.fingerprint import data_fingerprint, model_identity

    data = config.data
    return {
        "format": CACHE_FORMAT,
        **model_identity(model_path),
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
        "batches": {"layout": LAYOUT, "batch_size": batch_size, "processes": num_processes,
                    "order_seed": config.training.seed if shuffled else None,
                    # Only when on, so the keys of runs without it (and their caches) stay as they were.
                    **({"grouped_by_length": True} if config.training.group_by_length else {})},
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
    from safetensors.torch import save

    root = cache_dir()
    path = root / f"{key}.safetensors"
    write_file(path, save({"chosen": logps.chosen.contiguous().cpu(), "rejected": logps.rejected.contiguous().cpu()}))
    write_json(root / f"{key}.json", parts)
    return path


# ---------------------------------------------------------------- computing


def precompute_reference(
    accelerator: "Accelerator",
    model,
    batches: Iterable[dict],
    num_pairs: int,
    key_parts: dict[str, Any],
    chunk_size: int,
    show_progress: bool = True,
    desc: str = "reference log-probs",
) -> tuple[ReferenceLogps, Optional[bool]]:
    """Reference log-probs of ``batches`` scored by ``model`` with its adapter off (cached on disk).

    ``batches`` are the ones training will see (this process's shard of epoch 0, or the eval
    batches), so at step 1 the policy and its reference are the same computation on the same
    padded tensors: the loss is exactly ln 2 and the rewards exactly 0. ``model`` must not be
    wrapped for distributed training yet (its forward must not synchronise). Returns
    ``(logps, hit)``; ``hit`` is None when the model's identity is unknown and nothing was
    cached. Only the main process writes the cache.
    """
    from dpokit.fingerprint import identity_known
    from dpokit.scoring import score_pairs

    cacheable = identity_known(key_parts)
    key = cache_key(key_parts)
    cached = load_cached(key, num_pairs) if cacheable else None
    # Every process must agree on hit/miss, or some would wait in a collective forever.
    hit = cached is not None
    if accelerator.num_processes > 1:
        import torch

        misses = torch.tensor([0 if hit else 1], device=accelerator.device)
        hit = accelerator.reduce(misses, "sum").item() == 0
    if hit:
        return cached, True
    scores = score_pairs(model, batches, num_pairs, chunk_size=chunk_size, accelerator=accelerator,
                         adapter_disabled=True, progress=desc if show_progress else None)
    logps = ReferenceLogps(scores.chosen, scores.rejected)
    if accelerator.is_main_process and cacheable:
        save_cached(key, logps, key_parts)
    accelerator.wait_for_everyone()
    return logps, (False if cacheable else None)


@dataclass
class SplitToScore:
    """A split whose reference log-probs are precomputed: its pairs and the batches that will be seen."""

    examples: Sequence["TokenizedPair"]
    batches: Callable[[], Iterable[dict]]
    """Gives this process's batches, each with ``index``, as training (or evaluation) will see them."""
    batch_size: int
    shuffled: bool
    """True for the seeded training order, False for dataset order (eval)."""


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
    splits: dict[str, "SplitToScore"],
    show_progress: bool = True,
    say: Callable[[str], None] = lambda text: None,
) -> dict[str, Reference]:
    """One :class:`Reference` per split (``train``, ``eval``) as ``config.dpo.reference`` asks.

    ``precompute`` scores each split's batches (the ones training or evaluation will see)
    with ``model``'s adapter switched off, before any training step, and caches the result,
    keyed by ``base_model`` (the start model's path) among the rest.
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

    references: dict[str, Reference] = {}
    for split, part in splits.items():
        if not part.examples:
            references[split] = NoReference()
            continue
        parts = cache_key_parts(config, base_model, part.examples, accelerator.mixed_precision,
                                batch_size=part.batch_size, shuffled=part.shuffled,
                                num_processes=accelerator.num_processes)
        values, hit = precompute_reference(accelerator, model, part.batches(), len(part.examples), parts,
                                           config.training.logprob_chunk_size, show_progress,
                                           desc=f"reference log-probs ({split})")
        how = {True: "reused from cache", False: "computed and cached",
               None: "computed (not cached: the model's identity cannot be told)"}[hit]
        say(f"reference log-probs ({split}, {len(part.examples)} pairs): {how} [{cache_key(parts)}]")
        references[split] = PrecomputedReference(values, accelerator.device)
    return references
