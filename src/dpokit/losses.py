"""Preference losses: pure functions of per-pair log-probabilities.

Every loss has one signature::

    loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, cfg)
        -> (losses [B], chosen_rewards [B], rejected_rewards [B])

where the inputs are ``[B]`` log-probabilities of the chosen / rejected answer under the
policy and the reference (summed over the answer, or averaged per token for the losses in
:data:`MEAN_LOGP_LOSSES`; :mod:`dpokit.objective` does that normalisation), and ``cfg`` is a
:class:`dpokit.config.DPOConfig` (``beta``, ``label_smoothing``, ``simpo_gamma``).
Reference-free losses (``simpo``, ``orpo``) ignore ``ref_*``, which may be ``None``.
Rewards are detached; they are what the loss treats as each answer's implicit reward.

The definitions follow TRL 1.16 (``DPOTrainer``; ``CPOTrainer`` for SimPO, ``ORPOTrainer``
for ORPO), so that dpokit's numbers can be checked against it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Optional

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from dpokit.config import DPOConfig

Tensor = torch.Tensor
LossOutput = tuple[Tensor, Tensor, Tensor]
LossFn = Callable[[Tensor, Tensor, Optional[Tensor], Optional[Tensor], "DPOConfig"], LossOutput]


def _implicit_rewards(policy_chosen: Tensor, policy_rejected: Tensor, ref_chosen: Tensor, ref_rejected: Tensor, beta: float) -> tuple[Tensor, Tensor]:
    """DPO's implicit rewards ``beta * log(pi / pi_ref)`` (Rafailov et al. 2023, eq. 5), detached."""
    return beta * (policy_chosen - ref_chosen).detach(), beta * (policy_rejected - ref_rejected).detach()


def _dpo_margin(policy_chosen: Tensor, policy_rejected: Tensor, ref_chosen: Tensor, ref_rejected: Tensor) -> Tensor:
    """``h = log(pi(y_w)/pi_ref(y_w)) - log(pi(y_l)/pi_ref(y_l))``, ``[B]``."""
    return (policy_chosen - ref_chosen) - (policy_rejected - ref_rejected)


def sigmoid_loss(policy_chosen: Tensor, policy_rejected: Tensor, ref_chosen: Tensor, ref_rejected: Tensor, cfg: "DPOConfig") -> LossOutput:
    """DPO: ``-log sigmoid(beta * h)`` (Rafailov et al. 2023, arXiv 2305.18290, eq. 7).

    With ``label_smoothing = eps > 0`` this is conservative DPO (cDPO, Mitchell 2023, "A note
    on DPO with noisy preferences"), TRL's pre-1.0 meaning of ``label_smoothing`` for
    ``sigmoid``: ``-(1 - eps) log sigmoid(beta h) - eps log sigmoid(-beta h)``. (TRL 1.16
    ignores ``label_smoothing`` for ``sigmoid``; both agree at ``eps = 0``.)
    """
    logits = cfg.beta * _dpo_margin(policy_chosen, policy_rejected, ref_chosen, ref_rejected)
    eps = cfg.label_smoothing
    losses = -(1 - eps) * F.logsigmoid(logits) - eps * F.logsigmoid(-logits)
    return (losses, *_implicit_rewards(policy_chosen, policy_rejected, ref_chosen, ref_rejected, cfg.beta))


def robust_loss(policy_chosen: Tensor, policy_rejected: Tensor, ref_chosen: Tensor, ref_rejected: Tensor, cfg: "DPOConfig") -> LossOutput:
    """Robust DPO (Chowdhury et al. 2024, "Provably Robust DPO", arXiv 2403.00409, the rDPO loss).

    An unbiased loss under preference labels flipped with probability ``eps =
    label_smoothing`` (< 0.5): ``[-(1 - eps) log sigmoid(beta h) + eps log sigmoid(-beta h)] /
    (1 - 2 eps)``, as TRL's ``robust``.
    """
    logits = cfg.beta * _dpo_margin(policy_chosen, policy_rejected, ref_chosen, ref_rejected)
    eps = cfg.label_smoothing
    losses = (-(1 - eps) * F.logsigmoid(logits) + eps * F.logsigmoid(-logits)) / (1 - 2 * eps)
    return (losses, *_implicit_rewards(policy_chosen, policy_rejected, ref_chosen, ref_rejected, cfg.beta))


def ipo_loss(policy_chosen: Tensor, policy_rejected: Tensor, ref_chosen: Tensor, ref_rejected: Tensor, cfg: "DPOConfig") -> LossOutput:
    """IPO: ``(h - 1 / (2 beta))^2`` (Azar et al. 2023, arXiv 2310.12036, eq. 17; ``beta`` is tau).

    Expects per-token mean log-probs (as TRL, whose normalisation the IPO authors confirmed);
    the returned rewards are then per-token implicit rewards (:mod:`dpokit.objective` logs
    the summed ones, as TRL does).
    """
    margin = _dpo_margin(policy_chosen, policy_rejected, ref_chosen, ref_rejected)
    losses = (margin - 1 / (2 * cfg.beta)) ** 2
    return (losses, *_implicit_rewards(policy_chosen, policy_rejected, ref_chosen, ref_rejected, cfg.beta))


def hinge_loss(policy_chosen: Tensor, policy_rejected: Tensor, ref_chosen: Tensor, ref_rejected: Tensor, cfg: "DPOConfig") -> LossOutput:
    """SLiC hinge: ``max(0, 1 - beta * h)``: the calibration loss of SLiC-HF (Zhao et al. 2023,
    arXiv 2305.10425) on the reference-normalised log-ratio, margin ``1 / beta``, as TRL's ``hinge``."""
    logits = cfg.beta * _dpo_margin(policy_chosen, policy_rejected, ref_chosen, ref_rejected)
    losses = torch.relu(1 - logits)
    return (losses, *_implicit_rewards(policy_chosen, policy_rejected, ref_chosen, ref_rejected, cfg.beta))


def simpo_loss(policy_chosen: Tensor, policy_rejected: Tensor, ref_chosen: Optional[Tensor], ref_rejected: Optional[Tensor], cfg: "DPOConfig") -> LossOutput:
    """SimPO: ``-log sigmoid(beta (m_w - m_l) - gamma)`` (Meng et al. 2024, arXiv 2405.14734, eq. 6).

    Reference-free; ``m_w, m_l`` are per-token mean log-probs and ``gamma = simpo_gamma``
    is the target reward margin. ``label_smoothing`` smooths it as in TRL's CPOTrainer.
    Rewards are ``beta * m``.
    """
    logits = cfg.beta * (policy_chosen - policy_rejected) - cfg.simpo_gamma
    eps = cfg.label_smoothing
    losses = -(1 - eps) * F.logsigmoid(logits) - eps * F.logsigmoid(-logits)
    return losses, cfg.beta * policy_chosen.detach(), cfg.beta * policy_rejected.detach()


def _log1mexp(x: Tensor) -> Tensor:
    """``log(1 - exp(x))`` for ``x < 0``, stable at both ends (Maechler 2012)."""
    return torch.where(x > -0.6931471805599453, torch.log(-torch.expm1(x)), torch.log1p(-torch.exp(x)))


def orpo_loss(policy_chosen: Tensor, policy_rejected: Tensor, ref_chosen: Optional[Tensor], ref_rejected: Optional[Tensor], cfg: "DPOConfig") -> LossOutput:
    """ORPO's odds-ratio term: ``-beta * log sigmoid(log odds(y_w) - log odds(y_l))``
    (Hong et al. 2024, arXiv 2403.07691, eqs. 6-7; ``beta`` is lambda).

    Reference-free; inputs are per-token mean log-probs ``m``, ``odds = p / (1 - p)`` with
    ``p = exp(m)``. ORPO's full objective adds the chosen answer's NLL, which
    :func:`dpokit.objective.dpo_batch_loss` does. Rewards are ``beta * m``.
    """
    wide = torch.promote_types(policy_chosen.dtype, torch.float32)  # log1mexp is ill-conditioned in half precision
    chosen, rejected = policy_chosen.to(wide), policy_rejected.to(wide)
    log_odds = (chosen - rejected) - (_log1mexp(chosen) - _log1mexp(rejected))
    losses = -cfg.beta * F.logsigmoid(log_odds)
    return losses, cfg.beta * chosen.detach(), cfg.beta * rejected.detach()


LOSSES: dict[str, LossFn] = {
    "sigmoid": sigmoid_loss,
    "robust": robust_loss,
    "ipo": ipo_loss,
    "hinge": hinge_loss,
    "simpo": simpo_loss,
    "orpo": orpo_loss,
}

MEAN_LOGP_LOSSES = frozenset({"ipo", "simpo", "orpo"})
"""Losses defined on per-token mean log-probs rather than sums (as TRL computes them)."""

REFERENCE_FREE_LOSSES = frozenset({"simpo", "orpo"})
"""Losses that never look at a reference model."""
