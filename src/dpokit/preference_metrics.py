"""Preference metrics from per-pair scores: implicit-reward accuracy, log-prob accuracy, margins, by category.

For pair *i* let ``pc, pr`` be the policy's summed log-probs of the chosen and rejected
answer given the prompt, ``rc, rr`` the reference's, and ``nc, nr`` the answers' token counts.

* reward margin ``m_i = beta * ((pc - rc) - (pr - rr))``: the difference of DPO's implicit
  rewards ``beta * log(pi / pi_ref)`` (Rafailov et al. 2023, eq. 5), as TRL's
  ``rewards/margins``;
* ``reward_accuracy``: fraction of pairs with ``m_i > 0``;
* ``logprob_accuracy``: fraction with ``pc > pr`` (needs no reference);
* ``logprob_accuracy_per_token``: fraction with ``pc / nc > pr / nr`` (length-normalised);
* ``margin_mean`` / ``margin_ci95``: mean of ``m_i`` and its two-sided 95% Student-t interval
  ``mean ± t(0.975, n-1) * s / sqrt(n)`` (``s``: sample standard deviation, ddof 1; the pairs
  are treated as an i.i.d. sample, and for large ``n`` this is the normal approximation).

Ties (equal values) count as *not* correct, so a model scored against itself has reward
accuracy 0, not 0.5. Every reward metric is ``None`` when there is no reference.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Iterable, Optional, Sequence

from dpokit.errors import DpokitError
from dpokit.stats import mean_confidence_interval

if TYPE_CHECKING:
    from dpokit.data.types import PreferencePair

DEFAULT_BETA = 0.1
MAX_CATEGORY_VALUES = 20
MISSING_CATEGORY = "(none)"


def preference_metrics(
    policy_chosen: Sequence[float],
    policy_rejected: Sequence[float],
    chosen_tokens: Sequence[int],
    rejected_tokens: Sequence[int],
    ref_chosen: Optional[Sequence[float]] = None,
    ref_rejected: Optional[Sequence[float]] = None,
    beta: float = DEFAULT_BETA,
) -> dict[str, Any]:
    """Accuracy and margin metrics from per-pair summed log-probs (see the module docstring).

    All sequences have one entry per pair (length N). ``ref_*`` are ``None`` when there is no
    reference: the reward metrics are then ``None``. Ties count as not correct.
    """
    n = len(policy_chosen)
    if not (len(policy_rejected) == len(chosen_tokens) == len(rejected_tokens) == n):
        raise ValueError("policy_chosen, policy_rejected, chosen_tokens, rejected_tokens differ in length")
    logprob_margins = [c - r for c, r in zip(policy_chosen, policy_rejected)]
    per_token_wins = [
        c / max(nc, 1) > r / max(nr, 1)
        for c, r, nc, nr in zip(policy_chosen, policy_rejected, chosen_tokens, rejected_tokens)
    ]
    logprob_mean, logprob_ci = mean_confidence_interval(logprob_margins)
    out: dict[str, Any] = {
        "pairs": n,
        "reward_accuracy": None,
        "logprob_accuracy": _fraction(m > 0 for m in logprob_margins),
        "logprob_accuracy_per_token": _fraction(per_token_wins),
        "margin_mean": None,
        "margin_ci95": None,
        "rewards_chosen_mean": None,
        "rewards_rejected_mean": None,
        "reward_ties": None,
        "logprob_margin_mean": logprob_mean,
        "logprob_margin_ci95": logprob_ci,
        "logprob_ties": sum(1 for m in logprob_margins if m == 0),
        "logps_chosen_mean": _mean(policy_chosen),
        "logps_rejected_mean": _mean(policy_rejected),
    }
    if ref_chosen is None or ref_rejected is None:
        return out
    if not (len(ref_chosen) == len(ref_rejected) == n):
        raise ValueError("reference log-probs must have one entry per pair")
    rewards_chosen = [beta * (p - r) for p, r in zip(policy_chosen, ref_chosen)]
    rewards_rejected = [beta * (p - r) for p, r in zip(policy_rejected, ref_rejected)]
    margins = [c - r for c, r in zip(rewards_chosen, rewards_rejected)]
    margin_mean, margin_ci = mean_confidence_interval(margins)
    out.update(
        reward_accuracy=_fraction(m > 0 for m in margins),
        margin_mean=margin_mean,
        margin_ci95=margin_ci,
        rewards_chosen_mean=_mean(rewards_chosen),
        rewards_rejected_mean=_mean(rewards_rejected),
        reward_ties=sum(1 for m in margins if m == 0),
    )
    return out


def _fraction(flags: Iterable[bool]) -> Optional[float]:
    flags = list(flags)
    return sum(flags) / len(flags) if flags else None


def _mean(values: Sequence[float]) -> Optional[float]:
    return math.fsum(values) / len(values) if len(values) else None


def _is_category_value(value: Any) -> bool:
    if isinstance(value, bool) or isinstance(value, int):
        return True
    return isinstance(value, str) and 0 < len(value) <= 64 and "\n" not in value


def category_fields(pairs: Sequence["PreferencePair"], requested: Optional[Sequence[str]] = None) -> list[str]:
    """The ``meta`` fields to break results down by.

    ``requested`` fields are used as given (an error names a field no pair has). Otherwise a
    field counts as a category when every value it has is a short string, int or bool, it
    takes 2 to ``MAX_CATEGORY_VALUES`` distinct values, and the values repeat (at most
    ``n / 2`` distinct), which leaves out ids and free text.
    """
    if requested:
        present = {key for pair in pairs for key in pair.meta}
        for name in requested:
            if name not in present:
                known = ", ".join(sorted(present)) or "none"
                raise DpokitError(
                    f"--by {name}: no evaluated pair has a field '{name}'",
                    f"fields the data has: {known}",
                )
        return list(requested)
    values: dict[str, set] = {}
    unusable: set[str] = set()
    for pair in pairs:
        for key, value in pair.meta.items():
            if not _is_category_value(value):
                unusable.add(key)
            else:
                values.setdefault(key, set()).add(value)
    limit = min(MAX_CATEGORY_VALUES, len(pairs) // 2)
    return sorted(
        key
        for key, seen in values.items()
        if key not in unusable and not _looks_like_id(key) and 2 <= len(seen) <= limit
    )


def _looks_like_id(name: str) -> bool:
    lowered = name.lower()
    return lowered in ("id", "idx", "index", "uid", "uuid") or lowered.endswith(("_id", "_idx"))


def category_breakdown(
    pairs: Sequence["PreferencePair"], fields: Sequence[str], scores: dict[str, list], beta: float
) -> dict[str, dict[str, dict[str, Any]]]:
    """``{field: {value: metrics}}`` for each field, with :func:`preference_metrics` per group.

    ``scores`` holds per-pair lists aligned with ``pairs``: ``policy_chosen``,
    ``policy_rejected``, ``chosen_tokens``, ``rejected_tokens`` and, optionally,
    ``ref_chosen``/``ref_rejected``. Pairs without the field are grouped under ``(none)``.
    """
    breakdown: dict[str, dict[str, dict[str, Any]]] = {}
    for name in fields:
        groups: dict[str, list[int]] = {}
        for index, pair in enumerate(pairs):
            value = pair.meta.get(name)
            label = MISSING_CATEGORY if value is None else str(value)
            groups.setdefault(label, []).append(index)
        breakdown[name] = {
            label: metrics_for(scores, indices, beta)
            for label, indices in sorted(groups.items(), key=lambda item: (-len(item[1]), item[0]))
        }
    return breakdown


def metrics_for(scores: dict[str, list], indices: Sequence[int], beta: float) -> dict[str, Any]:
    """:func:`preference_metrics` over the pairs at ``indices`` of per-pair ``scores`` columns."""
    def pick(key: str) -> Optional[list]:
        column = scores.get(key)
        return None if column is None else [column[i] for i in indices]

    return preference_metrics(
        pick("policy_chosen"), pick("policy_rejected"), pick("chosen_tokens"), pick("rejected_tokens"),
        pick("ref_chosen"), pick("ref_rejected"), beta=beta,
    )
