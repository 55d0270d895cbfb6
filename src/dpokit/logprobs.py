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

A preference batch in the shared-prompt layout (:mod:`dpokit.data.collate`: one
``prompt + chosen + rejected`` row per pair) is run with a 4D attention mask and explicit
position ids, so that each answer is scored as in its own sequence. That needs an
attention implementation that applies a given mask (``sdpa``, ``eager``) and a model
whose ``forward`` takes ``position_ids``; on first sight of each model the shared layout
is also checked against two separate rows on the batch's first pair. Where any of that
fails, the batch is split into two rows per pair (a warning says so once) and the numbers
stay right, only slower.
"""

from __future__ import annotations

import inspect
import sys
import weakref
from dataclasses import dataclass
from typing import Any, Optional

import torch
from torch.utils.checkpoint import checkpoint

from dpokit.data.collate import shared_answer_tokens, shared_attention, split_shared_rows
from dpokit.errors import DpokitError

# Heads already checked against their model's own logits (see _check_head_once).
_CHECKED_HEADS: "weakref.WeakSet[torch.nn.Module]" = weakref.WeakSet()
# Per model: None when the shared-prompt layout gave the same log-probs as separate rows,
# else why it cannot be used (see _shared_layout_problem).
_SHARED_LAYOUT_VERDICT: "weakref.WeakKeyDictionary[torch.nn.Module, Optional[str]]" = weakref.WeakKeyDictionary()
# Models already warned about falling back to two rows per pair.
_WARNED_FALLBACK: "weakref.WeakSet[torch.nn.Module]" = weakref.WeakSet()

SHARED_LAYOUT_ATTENTION = ("sdpa", "eager")
"""Attention implementations that apply a given 4D mask (flash-attention kernels take none)."""

SHARED_LAYOUT_TOLERANCE = 0.05
"""Largest mean per-token log-prob difference, shared layout vs separate rows, that the
first-sight check accepts: float32 differs by ~1e-6, bf16 autocast by ~6e-3, a mask the
model ignores by ~1 or more."""


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
    accepts_position_ids: bool


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
        accepts_position_ids="position_ids" in params,
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


def _forward_hidden(model: torch.nn.Module, parts: _Parts, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                    position_ids: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Final hidden states ``[N, T, H]`` from one forward through ``model`` (wrappers included).

    ``attention_mask`` is ``[N, T]`` (1 on real tokens) or a ready 4D mask ``[N, 1, T, T]``;
    ``position_ids`` ``[N, T]`` or ``None`` (the model counts from 0).
    """
    captured: dict[str, torch.Tensor] = {}

    def grab(_module, _args, output):
        captured["hidden"] = output.last_hidden_state if hasattr(output, "last_hidden_state") else output[0]

    kwargs: dict[str, Any] = {"input_ids": input_ids, "attention_mask": attention_mask, "use_cache": False}
    if position_ids is not None:
        kwargs["position_ids"] = position_ids
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


def _answer_logps(parts: _Parts, hidden: torch.Tensor, input_ids: torch.Tensor, position: torch.Tensor,
                  predecessor: torch.Tensor, slot: torch.Tensor, slots: int, chunk_size: int
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum the log-probs of scored tokens into per-answer slots.

    ``hidden`` ``[N, T, H]`` and ``input_ids`` ``[N, T]``; ``position``, ``predecessor`` and
    ``slot`` are ``[M]``: the flat index (into ``N * T``) of each scored token, of the hidden
    state that predicts it, and the answer it belongs to (``0..slots-1``). Returns
    ``(logps [slots], counts [slots])`` on the head's device.
    """
    head_device = parts.head.weight.device if hasattr(parts.head, "weight") else hidden.device
    selected = hidden.reshape(-1, hidden.shape[-1])[predecessor.to(hidden.device)].to(head_device)  # [M, H]
    labels = input_ids.reshape(-1)[position.to(input_ids.device)].to(head_device)  # [M]
    token_logps = chunked_label_logps(selected, labels, parts.head, parts.transform, chunk_size)  # [M]
    slot = slot.to(head_device)
    logps = token_logps.new_zeros(slots).index_add(0, slot, token_logps)
    return logps, torch.bincount(slot, minlength=slots)


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
    scored = loss_mask.bool() & attention_mask.bool()  # [N, T]
    scored[:, 0] = False
    position = scored.reshape(-1).nonzero().squeeze(1)  # [M]
    return _answer_logps(parts, hidden, input_ids, position, position - 1, position // input_ids.shape[1],
                         input_ids.shape[0], chunk_size)


def _shared_mask(parts: _Parts, segment_ids: torch.Tensor) -> torch.Tensor:
    """The 4D mask ``[B, 1, T, T]`` the model's attention takes: bool for sdpa, additive float for eager."""
    allowed = shared_attention(segment_ids)
    if parts.causal_lm.config._attn_implementation == "sdpa":
        return allowed
    dtype = getattr(parts.causal_lm, "dtype", torch.float32)
    dtype = dtype if dtype.is_floating_point else torch.float32
    return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill(~allowed, torch.finfo(dtype).min)


def _shared_logps(model: torch.nn.Module, parts: _Parts, batch: dict[str, torch.Tensor], chunk_size: int
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(logps [2B], counts [2B])`` of a shared-prompt batch in one forward over its ``B`` rows."""
    segment_ids = batch["segment_ids"]
    hidden = _forward_hidden(model, parts, batch["input_ids"], _shared_mask(parts, segment_ids),
                             batch["position_ids"])  # [B, T, H]
    position, predecessor, slot = shared_answer_tokens(segment_ids)
    return _answer_logps(parts, hidden, batch["input_ids"], position, predecessor, slot,
                         2 * segment_ids.shape[0], chunk_size)


def _split_logps(model: torch.nn.Module, batch: dict[str, torch.Tensor], chunk_size: int
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(logps [2B], counts [2B])`` of a shared-prompt batch scored as ``2B`` separate rows."""
    rows = split_shared_rows(batch)
    return sequence_logps(model, rows["input_ids"], rows["attention_mask"], rows["loss_mask"], chunk_size)


def _static_shared_problem(parts: _Parts) -> Optional[str]:
    """Why this model can never take the shared-prompt layout, or ``None``."""
    implementation = getattr(parts.causal_lm.config, "_attn_implementation", None)
    if implementation not in SHARED_LAYOUT_ATTENTION:
        return f"attention implementation {implementation!r} takes no custom mask (sdpa and eager do)"
    if not parts.accepts_position_ids:
        return "its forward takes no position_ids"
    return None


def _agrees_with_split_rows(model: torch.nn.Module, parts: _Parts, batch: dict[str, torch.Tensor],
                            chunk_size: int) -> Optional[str]:
    """Score the batch's first pair both ways (no grad, eval mode); ``None`` if they agree, else why not."""
    real = int((batch["segment_ids"][0] >= 0).sum())
    first = {name: batch[name][:1, :real] for name in ("input_ids", "segment_ids", "position_ids")}
    was_training = model.training
    model.eval()  # dropout would make the two passes differ
    try:
        with torch.no_grad():
            shared, counts = _shared_logps(model, parts, first, chunk_size)
            split, _ = _split_logps(model, first, chunk_size)
    finally:
        model.train(was_training)
    per_token = ((shared - split).abs() / counts.clamp(min=1)).max().item()
    if not per_token <= SHARED_LAYOUT_TOLERANCE:
        return f"its log-probs with the shared-prompt mask differ from separate rows by {per_token:.3g} per token"
    return None


def _shared_layout_problem(model: torch.nn.Module, parts: _Parts, batch: dict[str, torch.Tensor],
                           chunk_size: int) -> Optional[str]:
    """Why this batch cannot be scored in the shared-prompt layout, or ``None`` when it can."""
    config = parts.causal_lm.config
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    window = getattr(text, "sliding_window", None)
    if isinstance(window, int) and batch["input_ids"].shape[1] > window:
        return f"its rows are longer than the model's sliding window ({window} tokens), which a custom mask bypasses"
    if parts.causal_lm not in _SHARED_LAYOUT_VERDICT:
        problem = _static_shared_problem(parts) or _agrees_with_split_rows(model, parts, batch, chunk_size)
        _SHARED_LAYOUT_VERDICT[parts.causal_lm] = problem
    return _SHARED_LAYOUT_VERDICT[parts.causal_lm]


def batch_logps(model: torch.nn.Module, batch: dict[str, torch.Tensor], chunk_size: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-answer summed log-probs and token counts of a batch from :mod:`dpokit.data.collate`.

    The layout-aware entry point: ``[2B]`` values (chosen answers, then rejected) for a
    preference batch (``segment_ids`` present), ``[B]`` for an SFT batch.
    """
    if "segment_ids" not in batch:
        return sequence_logps(model, batch["input_ids"], batch["attention_mask"], batch["loss_mask"], chunk_size)
    parts = model_parts(model)
    problem = _shared_layout_problem(model, parts, batch, chunk_size)
    if problem is None:
        return _shared_logps(model, parts, batch, chunk_size)
    if parts.causal_lm not in _WARNED_FALLBACK:
        _WARNED_FALLBACK.add(parts.causal_lm)
        print(f"warning: {type(parts.causal_lm).__name__}: {problem}; scoring each pair as two rows "
              "(prompt + chosen, prompt + rejected): same numbers, more compute", file=sys.stderr)
    return _split_logps(model, batch, chunk_size)
