"""Batch objectives: one forward, the configured loss, TRL-named metrics.

A preference batch comes from :func:`dpokit.data.collate.collate_preference`; the
reference log-probs come from the cache (or a no-grad :func:`policy_logps` of the
reference model). Metric values are detached 0-dim tensors, batch means, with TRL's names
and meanings, so the trainer can gather them across processes before logging.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple, Optional

import torch

from dpokit.data.collate import pair_count
from dpokit.logprobs import batch_logps
from dpokit.losses import LOSSES, MEAN_LOGP_LOSSES, REFERENCE_FREE_LOSSES

if TYPE_CHECKING:
    from dpokit.config import Config, DPOConfig
    from dpokit.reference import Reference

Tensor = torch.Tensor


class PolicyLogps(NamedTuple):
    """Per-pair answer log-probs of a preference batch (each ``[B]``)."""

    chosen: Tensor
    """Summed log-prob of the chosen answer (float32, differentiable)."""
    rejected: Tensor
    """Summed log-prob of the rejected answer."""
    chosen_counts: Tensor
    """Tokens in the chosen answer (long)."""
    rejected_counts: Tensor
    """Tokens in the rejected answer."""


def policy_logps(model: torch.nn.Module, batch: dict[str, Tensor], chunk_size: int = 1024) -> PolicyLogps:
    """Summed answer log-probs of a preference batch (``input_ids`` etc. ``[2B, T]``) under ``model``.

    Call it under ``torch.no_grad()`` to precompute reference log-probs or to evaluate.
    """
    logps, counts = batch_logps(model, batch, chunk_size)
    chosen, rejected = logps.chunk(2)
    chosen_counts, rejected_counts = counts.chunk(2)
    return PolicyLogps(chosen, rejected, chosen_counts, rejected_counts)


def chosen_nll(policy: PolicyLogps) -> Tensor:
    """Mean negative log-likelihood per chosen-answer token over the whole batch (0-dim).

    This is TRL's NLL term (``rpo_alpha`` in TRL < 1.0, the ``sft`` loss in TRL 1.x): total
    over all chosen tokens divided by their number, not a mean of per-pair means.
    """
    return -policy.chosen.sum() / policy.chosen_counts.sum().clamp(min=1)


def _per_token(logps: Optional[Tensor], counts: Tensor) -> Optional[Tensor]:
    return None if logps is None else logps / counts.clamp(min=1).to(logps.dtype)


def dpo_batch_loss(
    model: torch.nn.Module,
    batch: dict[str, Tensor],
    ref_chosen: Optional[Tensor],
    ref_rejected: Optional[Tensor],
    dpo_cfg: "DPOConfig",
    chunk_size: int = 1024,
) -> tuple[Tensor, dict[str, Tensor]]:
    """The preference loss of one batch and its metrics.

    Args:
        batch: a :func:`~dpokit.data.collate.collate_preference` batch of ``B`` pairs.
        ref_chosen, ref_rejected: ``[B]`` summed reference log-probs of the answers
            (``None`` for the reference-free ``simpo`` and ``orpo``).
        dpo_cfg: ``loss_type``, ``beta``, ``label_smoothing``, ``simpo_gamma``, ``rpo_alpha``.

    Losses in :data:`~dpokit.losses.MEAN_LOGP_LOSSES` (ipo, simpo, orpo) get per-token
    mean log-probs, as TRL computes them. The loss is the batch mean of the per-pair
    losses plus ``w * NLL(chosen)``, where ``w`` is ``rpo_alpha`` when set, 1 for ORPO
    (its objective includes the NLL) and 0 otherwise.

    Returns:
        ``(loss, metrics)``: ``loss`` a differentiable 0-dim tensor; ``metrics`` detached
        0-dim batch means: ``rewards/chosen``, ``rewards/rejected``, ``rewards/margins``,
        ``rewards/accuracies`` (DPO's implicit rewards ``beta * (policy - ref)`` of the summed
        log-probs for reference-based losses, ``beta * mean log-prob`` for simpo/orpo),
        ``logps/chosen``, ``logps/rejected`` (summed over the answer), and ``nll_loss``
        when an NLL term is used.
    """
    loss_type = dpo_cfg.loss_type
    reference_free = loss_type in REFERENCE_FREE_LOSSES
    if not reference_free and (ref_chosen is None or ref_rejected is None):
        raise ValueError(f"loss_type '{loss_type}' needs reference log-probs")
    policy = policy_logps(model, batch, chunk_size)
    if not reference_free:
        ref_chosen = ref_chosen.to(device=policy.chosen.device, dtype=policy.chosen.dtype)
        ref_rejected = ref_rejected.to(device=policy.rejected.device, dtype=policy.rejected.dtype)
    else:
        ref_chosen = ref_rejected = None

    inputs = (policy.chosen, policy.rejected, ref_chosen, ref_rejected)
    if loss_type in MEAN_LOGP_LOSSES:
        counts = (policy.chosen_counts, policy.rejected_counts, policy.chosen_counts, policy.rejected_counts)
        inputs = tuple(_per_token(x, n) for x, n in zip(inputs, counts))
    losses, chosen_rewards, rejected_rewards = LOSSES[loss_type](*inputs, dpo_cfg)
    if not reference_free and loss_type in MEAN_LOGP_LOSSES:
        # TRL logs DPO's summed implicit reward whatever normalisation the loss uses.
        chosen_rewards = dpo_cfg.beta * (policy.chosen - ref_chosen).detach()
        rejected_rewards = dpo_cfg.beta * (policy.rejected - ref_rejected).detach()
    loss = losses.mean()

    metrics = {
        "rewards/chosen": chosen_rewards.mean(),
        "rewards/rejected": rejected_rewards.mean(),
        "rewards/margins": (chosen_rewards - rejected_rewards).mean(),
        "rewards/accuracies": (chosen_rewards > rejected_rewards).float().mean(),
        "logps/chosen": policy.chosen.detach().mean(),
        "logps/rejected": policy.rejected.detach().mean(),
    }
    nll_weight = dpo_cfg.rpo_alpha if dpo_cfg.rpo_alpha is not None else (1.0 if loss_type == "orpo" else 0.0)
    if nll_weight:
        nll = chosen_nll(policy)
        loss = loss + nll_weight * nll
        metrics["nll_loss"] = nll.detach()
    return loss, metrics


def sft_batch_loss(model: torch.nn.Module, batch: dict[str, Tensor], chunk_size: int = 1024) -> tuple[Tensor, dict[str, Tensor]]:
    """Supervised fine-tuning loss of a :func:`~dpokit.data.collate.collate_sft` batch.

    Returns ``(loss, metrics)``: ``loss`` the mean NLL per answer token over the whole
    batch (0-dim, differentiable); ``metrics`` detached: ``nll_loss`` (the same value),
    ``logps/chosen`` (mean summed answer log-prob) and ``num_tokens`` (answer tokens).
    """
    logps, counts = batch_logps(model, batch, chunk_size)
    total = counts.sum()
    loss = -logps.sum() / total.clamp(min=1)
    return loss, {"nll_loss": loss.detach(), "logps/chosen": logps.detach().mean(), "num_tokens": total}


def batch_loss(config: "Config", model: torch.nn.Module, batch: dict[str, Tensor],
               reference: "Reference") -> tuple[Tensor, dict[str, Tensor]]:
    """``(loss, metrics)`` of one batch for the configured stage (SFT, or DPO against ``reference``)."""
    chunk = config.training.logprob_chunk_size
    if config.stage == "sft":
        return sft_batch_loss(model, batch, chunk)
    ref = reference.logps(model, batch)
    ref_chosen, ref_rejected = ref if ref is not None else (None, None)
    return dpo_batch_loss(model, batch, ref_chosen, ref_rejected, config.dpo, chunk)


def loss_weight(config: "Config", batch: dict[str, Tensor]) -> int:
    """What a batch's loss is a mean over: its pairs (DPO) or its scored answer tokens (SFT).

    The micro-batches of one optimizer step are weighted by it, so a step's gradient is that
    of the mean over the whole step, whatever its split into micro-batches (a short last
    step of an epoch included).
    """
    if config.stage == "sft":
        return int((batch["loss_mask"][:, 1:].bool() & batch["attention_mask"][:, 1:].bool()).sum())
    return pair_count(batch)
