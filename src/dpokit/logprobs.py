"""Summed label log-probabilities of answer tokens, without full-vocabulary logits.

A causal LM's head turns each hidden state into ``vocab``-wide logits; for a batch of
``N`` rows of ``T`` tokens that is an ``[N, T, vocab]`` tensor (49k-152k wide), the tensor
that makes naive DPO run out of memory. Here the decoder body runs to its final hidden
states, and the head, log-softmax and label gather run only on the answer positions,
``chunk_size`` tokens at a time. In training each chunk is wrapped in activation
checkpointing, so backward keeps only the hidden states and recomputes one chunk's
logits at a time.

The model is called through its own ``forward`` (so DDP, FSDP and PEFT wrappers work as
they expect) with ``logits_to_keep=1``; a forward hook on the decoder body captures the
hidden states. The model's own logits for the last position are used, on first sight of
each model, to check that dpokit's head reproduces them (scale and soft-capping
included), so an architecture that post-processes logits in an unknown way fails loudly
instead of training on wrong numbers.
"""

from __future__ import annotations

import inspect
import weakref
from dataclasses import dataclass
from typing import Any, Optional

import torch
from torch.utils.checkpoint import checkpoint

from dpokit.errors import DpokitError

# Heads already checked against their model's own logits (see _check_head_once).
_CHECKED_HEADS: "weakref.WeakSet[torch.nn.Module]" = weakref.WeakSet()


@dataclass(frozen=True)
class LogitTransform:
    """What a model does to ``lm_head`` outputs before the softmax: ``cap * tanh(scale * z / cap)``."""

    scale: float = 1.0
    softcap: Optional[float] = None

    @classmethod
    def from_config(cls, config: Any) -> "LogitTransform":
        """Read the logit scaling and soft-capping a Hugging Face config declares.

        ``logit_scale`` (Cohere) and ``lm_head_multiplier`` (Falcon-H1) multiply the logits,
        ``logits_scaling`` (Granite) divides them, ``final_logit_softcapping`` (Gemma 2/3)
        soft-caps them after scaling.
        """
        text = config.get_text_config() if hasattr(config, "get_text_config") else config
        scale = 1.0
        for name in ("logit_scale", "lm_head_multiplier"):
            value = getattr(text, name, None)
            if isinstance(value, (int, float)):
                scale *= float(value)
        divisor = getattr(text, "logits_scaling", None)
        if isinstance(divisor, (int, float)) and divisor:
            scale /= float(divisor)
        softcap = getattr(text, "final_logit_softcapping", None)
        return cls(scale=scale, softcap=float(softcap) if softcap else None)

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        if self.scale != 1.0:
            logits = logits * self.scale
        if self.softcap is not None:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        return logits


@dataclass
class _Parts:
    """The pieces of a (possibly wrapped) causal LM that the log-prob computation needs."""

    causal_lm: torch.nn.Module
    decoder: torch.nn.Module
    head: torch.nn.Module
    transform: LogitTransform
    accepts_logits_to_keep: bool


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The plain Hugging Face causal LM inside DDP / DataParallel / torch.compile / PEFT wrappers."""
    while True:
        if isinstance(model, (torch.nn.parallel.DistributedDataParallel, torch.nn.DataParallel)):
            model = model.module
        elif hasattr(model, "_orig_mod"):  # torch.compile
            model = model._orig_mod
        elif hasattr(model, "get_base_model") and callable(model.get_base_model):  # PEFT
            model = model.get_base_model()
        else:
            return model


def model_parts(model: torch.nn.Module) -> _Parts:
    """Find the decoder body, the LM head and the logit transform of ``model``."""
    causal_lm = _unwrap(model)
    name = type(causal_lm).__name__
    get_decoder = getattr(causal_lm, "get_decoder", None)
    get_head = getattr(causal_lm, "get_output_embeddings", None)
    decoder = get_decoder() if callable(get_decoder) else None
    head = get_head() if callable(get_head) else None
    if decoder is None or head is None or decoder is causal_lm:
        raise DpokitError(
            f"{name}: cannot find the decoder body and LM head of this model",
            "dpokit trains causal language models (AutoModelForCausalLM); check model.name_or_path",
        )
    params = inspect.signature(causal_lm.forward).parameters
    return _Parts(
        causal_lm=causal_lm,
        decoder=decoder,
        head=head,
        transform=LogitTransform.from_config(causal_lm.config),
        accepts_logits_to_keep="logits_to_keep" in params,
    )


def _label_logps(hidden: torch.Tensor, labels: torch.Tensor, head: torch.nn.Module, transform: LogitTransform) -> torch.Tensor:
    """``log p(label)`` for each row: hidden ``[M, H]``, labels ``[M]`` -> ``[M]``, float32 or wider.

    Computed as ``logit[label] - logsumexp(logits)`` in at least float32 (half-precision
    logits are upcast), so no ``[M, vocab]`` log-softmax output is kept besides the logits.
    """
    logits = head(hidden)
    logits = transform(logits.to(torch.promote_types(logits.dtype, torch.float32)))
    return logits.gather(-1, labels.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)


def chunked_label_logps(
    hidden: torch.Tensor, labels: torch.Tensor, head: torch.nn.Module, transform: LogitTransform, chunk_size: int
) -> torch.Tensor:
    """:func:`_label_logps` over ``chunk_size`` rows at a time: hidden ``[M, H]``, labels ``[M]`` -> ``[M]``.

    With gradients enabled each chunk is checkpointed: its ``[chunk_size, vocab]`` logits
    are freed after the forward and recomputed in backward, one chunk at a time.
    """
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    pieces = []
    for start in range(0, hidden.shape[0], chunk_size):
        h, y = hidden[start : start + chunk_size], labels[start : start + chunk_size]
        if torch.is_grad_enabled() and (h.requires_grad or any(p.requires_grad for p in head.parameters())):
            pieces.append(checkpoint(_label_logps, h, y, head, transform, use_reentrant=False))
        else:
            pieces.append(_label_logps(h, y, head, transform))
    if not pieces:
        return hidden.new_zeros(0, dtype=torch.promote_types(hidden.dtype, torch.float32))
    return torch.cat(pieces)


def _check_head_once(parts: _Parts, last_hidden: torch.Tensor, model_logits: torch.Tensor) -> None:
    """Fail if dpokit's head + transform does not reproduce the model's own logits.

    ``last_hidden`` ``[N, H]`` and ``model_logits`` ``[N, vocab]`` are the final position of
    each row from the same forward pass. Checked once per head module.
    """
    if parts.head in _CHECKED_HEADS:
        return
    with torch.no_grad():
        ours = parts.transform(parts.head(last_hidden).float())
        theirs = model_logits.float()
        # Loose enough for a model that ran its head in bf16 (autocast, possibly with its
        # outputs cast back to fp32); unknown scales and soft-caps miss by far more.
        tolerance = 2e-2 * max(1.0, theirs.abs().max().item())
        error = (ours - theirs).abs().max().item()
    if error > tolerance:
        raise DpokitError(
            f"{type(parts.causal_lm).__name__}: its logits are post-processed in a way dpokit does not reproduce "
            f"(max difference {error:.3g} on the model's own output)",
            "this architecture is not supported by dpokit's chunked log-probs yet; please report it",
        )
    _CHECKED_HEADS.add(parts.head)


def _forward_hidden(model: torch.nn.Module, parts: _Parts, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Final hidden states ``[N, T, H]`` from one forward through ``model`` (wrappers included)."""
    captured: dict[str, torch.Tensor] = {}

    def grab(_module, _args, output):
        captured["hidden"] = output.last_hidden_state if hasattr(output, "last_hidden_state") else output[0]

    kwargs: dict[str, Any] = {"input_ids": input_ids, "attention_mask": attention_mask, "use_cache": False}
    if parts.accepts_logits_to_keep:
        kwargs["logits_to_keep"] = 1  # the head runs on one position only; we do the rest in chunks
    handle = parts.decoder.register_forward_hook(grab)
    try:
        outputs = model(**kwargs)
    finally:
        handle.remove()
    hidden = captured.get("hidden")
    if hidden is None or hidden.shape[:2] != input_ids.shape:
        raise DpokitError(
            f"{type(parts.causal_lm).__name__}: the decoder's hidden states do not line up with the input tokens",
            "prompt-learning adapters (prefix/prompt tuning) are not supported; use LoRA",
        )
    _check_head_once(parts, hidden[:, -1], outputs.logits[:, -1])
    return hidden


def sequence_logps(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    loss_mask: torch.Tensor,
    chunk_size: int = 1024,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed log-probabilities of the answer tokens of each row.

    Args:
        model: a Hugging Face causal LM, possibly PEFT-, DDP- or compile-wrapped.
        input_ids: ``[N, T]`` token ids (right-padded).
        attention_mask: ``[N, T]``, 1 on real tokens.
        loss_mask: ``[N, T]`` bool, True where the token is an answer token; token ``t`` is
            scored with the hidden state at ``t - 1``, so position 0 is never scored.
        chunk_size: tokens per head/log-softmax chunk.

    Returns:
        ``(logps, counts)``: ``logps`` ``[N]`` float32 (float64 for a float64 model), the
        sum of ``log p(token | prefix)`` over each row's answer tokens (differentiable), and
        ``counts`` ``[N]`` long, how many tokens were summed. Padding never counts, whatever
        ``loss_mask`` says there.
    """
    parts = model_parts(model)
    hidden = _forward_hidden(model, parts, input_ids, attention_mask)  # [N, T, H]
    label_mask = loss_mask[:, 1:].bool() & attention_mask[:, 1:].bool()  # [N, T-1]
    head_device = parts.head.weight.device if hasattr(parts.head, "weight") else hidden.device
    label_mask = label_mask.to(hidden.device)
    selected = hidden[:, :-1][label_mask].to(head_device)  # [M, H]
    labels = input_ids[:, 1:].to(hidden.device)[label_mask].to(head_device)  # [M]
    token_logps = chunked_label_logps(selected, labels, parts.head, parts.transform, chunk_size)  # [M]
    rows = torch.arange(input_ids.shape[0], device=head_device).unsqueeze(1).expand(-1, label_mask.shape[1])
    row_of_token = rows[label_mask.to(head_device)]  # [M]
    logps = token_logps.new_zeros(input_ids.shape[0]).index_add(0, row_of_token, token_logps)
    return logps, label_mask.sum(dim=1).to(head_device)


def batch_logps(model: torch.nn.Module, batch: dict[str, torch.Tensor], chunk_size: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-answer summed log-probs and token counts of a batch from :mod:`dpokit.data.collate`.

    The layout-aware entry point: ``[2B]`` values (chosen answers, then rejected) for a
    preference batch, ``[B]`` for an SFT batch. A new batch layout (e.g. prefix-shared
    packing) changes the collate functions and this function, not their callers.
    """
    return sequence_logps(model, batch["input_ids"], batch["attention_mask"], batch["loss_mask"], chunk_size)
