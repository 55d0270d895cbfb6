"""Held-out preference evaluation: implicit-reward accuracy, log-prob accuracy, reward margins.

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
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Optional, Sequence, Union

from dpokit.errors import DpokitError

if TYPE_CHECKING:  # heavy imports stay lazy so `dpokit --help` is fast
    import torch

    from dpokit.config import DataConfig
    from dpokit.data.types import PreferencePair

DEFAULT_BETA = 0.1
CONFIDENCE = 0.95
MAX_CATEGORY_VALUES = 20
MISSING_CATEGORY = "(none)"


# ----------------------------------------------------------------------------- statistics


def _t_central_probability(t: float, df: int) -> float:
    """``P(|T| <= t)`` for Student's t with integer ``df`` (Abramowitz & Stegun 26.7.3/26.7.4).

    The closed-form finite series is exact for integer degrees of freedom, which is all a
    sample of ``n`` pairs needs (``df = n - 1``).
    """
    theta = math.atan(t / math.sqrt(df))
    sin, cos2 = math.sin(theta), math.cos(theta) ** 2
    if df % 2 == 1:
        if df == 1:
            return 2 * theta / math.pi
        term = total = math.cos(theta)
        for j in range(1, (df - 3) // 2 + 1):
            term *= cos2 * (2 * j) / (2 * j + 1)
            total += term
        return 2 / math.pi * (theta + sin * total)
    term = total = 1.0
    for j in range(1, (df - 2) // 2 + 1):
        term *= cos2 * (2 * j - 1) / (2 * j)
        total += term
    return sin * total


def t_quantile(confidence: float, df: int) -> float:
    """The ``t`` with ``P(|T| <= t) = confidence`` (e.g. 12.706 for 0.95, df 1; 1.96 as df grows)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    low, high = 0.0, 1.0
    while _t_central_probability(high, df) < confidence:
        low, high = high, high * 2
    for _ in range(80):
        mid = (low + high) / 2
        if _t_central_probability(mid, df) < confidence:
            low = mid
        else:
            high = mid
    return (low + high) / 2


def mean_confidence_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[Optional[float], Optional[list[float]]]:
    """Sample mean and its two-sided Student-t interval ``[low, high]``.

    Returns ``(None, None)`` for no values and ``(mean, None)`` for one (no spread to estimate).
    """
    n = len(values)
    if n == 0:
        return None, None
    mean = math.fsum(values) / n
    if n == 1:
        return mean, None
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    half = t_quantile(confidence, n - 1) * std / math.sqrt(n)
    return mean, [mean - half, mean + half]


# ----------------------------------------------------------------------------- metrics


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


# ----------------------------------------------------------------------------- categories


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
            label: _metrics_for(scores, indices, beta)
            for label, indices in sorted(groups.items(), key=lambda item: (-len(item[1]), item[0]))
        }
    return breakdown


def _metrics_for(scores: dict[str, list], indices: Sequence[int], beta: float) -> dict[str, Any]:
    def pick(key: str) -> Optional[list]:
        column = scores.get(key)
        return None if column is None else [column[i] for i in indices]

    return preference_metrics(
        pick("policy_chosen"), pick("policy_rejected"), pick("chosen_tokens"), pick("rejected_tokens"),
        pick("ref_chosen"), pick("ref_rejected"), beta=beta,
    )


# ----------------------------------------------------------------------------- scoring

ReferenceArg = Union[None, str, "torch.nn.Module"]


def _model_device(model) -> "torch.device":
    return next(model.parameters()).device


def score_pairs(
    model, examples: Sequence[Any], pad_token_id: int, *, batch_size: int = 8, chunk_size: int = 1024,
    adapter_disabled: bool = False, progress: Optional[str] = None,
) -> dict[str, list]:
    """Summed answer log-probs of every tokenised pair under ``model``.

    Pairs are batched longest first (less padding) under ``torch.inference_mode()`` with the
    model in eval mode (dropout off); ``adapter_disabled`` scores a PEFT model with its
    adapter switched off. Returns per-pair lists in the order of ``examples`` (length N):
    ``chosen``, ``rejected`` (float) and ``chosen_tokens``, ``rejected_tokens`` (int).
    """
    from contextlib import nullcontext

    import torch
    from tqdm.auto import tqdm

    from dpokit.data.collate import collate_preference
    from dpokit.objective import policy_logps
    from dpokit.reference import disabled_adapter

    def padded_length(i: int) -> int:
        ex = examples[i]
        return len(ex.prompt_ids) + max(len(ex.chosen_ids), len(ex.rejected_ids))

    n = len(examples)
    order = sorted(range(n), key=padded_length, reverse=True)
    batches = [order[start:start + batch_size] for start in range(0, n, batch_size)]
    out: dict[str, list] = {key: [None] * n for key in ("chosen", "rejected", "chosen_tokens", "rejected_tokens")}
    device = _model_device(model)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), disabled_adapter(model) if adapter_disabled else nullcontext():
            for indices in tqdm(batches, desc=progress, disable=True if progress is None else None, leave=False):
                batch = collate_preference([examples[i] for i in indices], pad_token_id)
                batch = {key: value.to(device) for key, value in batch.items()}
                logps = policy_logps(model, batch, chunk_size)  # each [B]
                columns = zip(logps.chosen.tolist(), logps.rejected.tolist(),
                              logps.chosen_counts.tolist(), logps.rejected_counts.tolist())
                for i, (c, r, nc, nr) in zip(indices, columns):
                    out["chosen"][i], out["rejected"][i] = c, r
                    out["chosen_tokens"][i], out["rejected_tokens"][i] = int(nc), int(nr)
    finally:
        model.train(was_training)
    return out


def _check_adapter(model) -> None:
    if not callable(getattr(model, "disable_adapter", None)):
        raise DpokitError(
            "reference 'adapter' needs a LoRA (PEFT) model: the reference is the model with its adapter switched off",
            "evaluate a LoRA run, or name a reference model with --ref MODEL",
        )


def tokenize_for_eval(pairs: Sequence["PreferencePair"], tokenizer, data_cfg: Optional["DataConfig"]):
    """``(examples, stats)`` as :func:`dpokit.data.tokenize.tokenize_pairs`; an error if none is left."""
    from dpokit.config import DataConfig
    from dpokit.data.tokenize import tokenize_pairs

    if not pairs:
        raise DpokitError("no preference pairs to evaluate", "pass a file with at least one pair")
    examples, stats = tokenize_pairs(pairs, tokenizer, data_cfg or DataConfig())
    if not examples:
        dropped = ", ".join(f"{reason}: {count}" for reason, count in stats.dropped().items())
        raise DpokitError(
            f"no pair is left to evaluate after tokenisation ({len(pairs)} pairs in, dropped: {dropped})",
            "raise --max-length (or lower --max-prompt-length) so that answers fit",
        )
    return examples, stats


def build_result(
    examples: Sequence[Any], stats: Any, policy: dict[str, list], reference: Optional[dict[str, list]],
    *, beta: float, by: Optional[Sequence[str]] = None,
) -> dict[str, Any]:
    """The evaluation result from per-pair scores (see :func:`evaluate_preferences` for the keys)."""
    from dpokit.reference import data_fingerprint

    scores = {
        "policy_chosen": policy["chosen"], "policy_rejected": policy["rejected"],
        "chosen_tokens": policy["chosen_tokens"], "rejected_tokens": policy["rejected_tokens"],
    }
    if reference is not None:
        scores["ref_chosen"], scores["ref_rejected"] = reference["chosen"], reference["rejected"]
    result = _metrics_for(scores, range(len(examples)), beta)
    result["beta"] = beta
    result["by_category"] = category_breakdown(examples, category_fields(examples, by), scores, beta)
    result["tokenization"] = {
        "pairs_in": stats.pairs_in,
        "pairs_dropped": stats.pairs_in - stats.pairs_out,
        "prompt_truncated": stats.prompt_truncated,
        "answer_truncated": stats.answer_truncated,
        "chat_template": stats.chat_template,
        "answer_tokens": sum(policy["chosen_tokens"]) + sum(policy["rejected_tokens"]),
        "fingerprint": data_fingerprint(examples)[:16],
    }
    return result


def evaluate_preferences(
    model, tokenizer, pairs: Sequence["PreferencePair"], data_cfg: Optional["DataConfig"] = None, *,
    reference: ReferenceArg = None, beta: float = DEFAULT_BETA, batch_size: int = 8, chunk_size: int = 1024,
    by: Optional[Sequence[str]] = None, progress: bool = False,
) -> dict[str, Any]:
    """Score preference pairs with ``model`` (and a reference) and compute the metrics.

    Args:
        model: a causal LM (plain or PEFT-wrapped).
        tokenizer: its tokenizer (with its chat template).
        pairs: the held-out :class:`~dpokit.data.types.PreferencePair` s.
        data_cfg: tokenisation settings (``max_length``, ``max_prompt_length``, chat template,
            system prompt); defaults when None. Same settings -> same token ids.
        reference: None (no reference: reward metrics are None), ``"adapter"`` (``model``
            with its LoRA adapter switched off) or a separate causal LM with the same tokenizer.
        beta: DPO's beta in the implicit reward.
        by: ``meta`` fields to break down by (default: detected, see :func:`category_fields`).

    Returns:
        A JSON-ready dict: ``pairs``, ``reward_accuracy``, ``logprob_accuracy``,
        ``logprob_accuracy_per_token``, ``margin_mean``, ``margin_ci95`` (``[low, high]``),
        ``rewards_chosen_mean``, ``rewards_rejected_mean``, ``reward_ties``,
        ``logprob_margin_mean``, ``logprob_margin_ci95``, ``logprob_ties``,
        ``logps_chosen_mean``, ``logps_rejected_mean``, ``beta``, ``reference``,
        ``by_category`` (``{field: {value: same metrics}}``) and ``tokenization`` (counts and
        a fingerprint of the token ids).
    """
    if reference == "adapter":
        _check_adapter(model)
    elif isinstance(reference, str):
        raise ValueError(f"reference must be None, 'adapter' or a model, got {reference!r}")
    examples, stats = tokenize_for_eval(pairs, tokenizer, data_cfg)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    options = dict(batch_size=batch_size, chunk_size=chunk_size)
    policy = score_pairs(model, examples, pad, progress="policy" if progress else None, **options)
    ref_scores = None
    if reference == "adapter":
        ref_scores = score_pairs(model, examples, pad, adapter_disabled=True,
                                 progress="reference" if progress else None, **options)
    elif reference is not None:
        ref_scores = score_pairs(reference, examples, pad, progress="reference" if progress else None, **options)
    result = build_result(examples, stats, policy, ref_scores, beta=beta, by=by)
    result["reference"] = None if reference is None else (
        "adapter disabled" if reference == "adapter" else type(reference).__name__)
    return result


# ----------------------------------------------------------------------------- models and runs


def run_reference(info: Any) -> Optional[str]:
    """The reference a run was trained against, as :func:`evaluate_ref` loads it.

    ``"adapter"`` (a LoRA run's base: the policy with its adapter off), a model reference
    (a full fine-tune's base model, or ``dpo.reference: {model: PATH}``) or None (a plain
    model, an SFT run, a reference-free loss such as SimPO/ORPO, ``dpo.reference: none``).
    """
    if info.kind == "adapter":
        return "adapter"
    if info.path is None or info.stage == "sft":
        return None
    config = info.config
    spec = info.reference if info.reference is not None else (config.dpo.reference if config is not None else None)
    if isinstance(spec, dict):
        spec = spec.get("model")
    elif hasattr(spec, "model"):
        spec = spec.model
    if (config is not None and config.dpo.reference_free) or spec in (None, "none"):
        return None
    if spec in ("precompute", "adapter"):  # both mean: the model training started from
        return "adapter" if info.is_lora else info.base_model
    candidate = Path(str(spec)).expanduser()
    if not candidate.is_absolute() and (info.path / candidate).exists():
        return str((info.path / candidate).resolve())
    return str(spec)


def _describe_reference(spec: Optional[str], info: Any) -> Optional[str]:
    if spec is None:
        return None
    if spec == "adapter":
        return f"{info.base_model} (the LoRA adapter switched off)"
    return spec


def _eval_data_config(info: Any, max_length: Optional[int], max_prompt_length: Optional[int]) -> "DataConfig":
    """The run's data settings (tokenisation as in training), else defaults, plus CLI limits."""
    from pydantic import ValidationError

    from dpokit.config import DataConfig

    base = info.config.data if info.config is not None else DataConfig()
    values = base.model_dump()
    for name, value in (("max_length", max_length), ("max_prompt_length", max_prompt_length)):
        if value is not None:
            values[name] = value
    try:
        return DataConfig.model_validate(values)
    except ValidationError as err:
        item = err.errors()[0]
        field = ".".join(str(p) for p in item["loc"])
        raise DpokitError(f"--{field.replace('_', '-')}: {item['msg']} (got {item.get('input')!r})") from None


def _same_tokenizer(policy_tokenizer, ref_tokenizer) -> bool:
    return policy_tokenizer.get_vocab() == ref_tokenizer.get_vocab()


def _release_memory() -> None:
    """Give freed model weights back (call after dropping the last reference to a model)."""
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def evaluate_ref(
    ref: Union[str, Path], data_sources: Optional[Sequence[str]] = None, *,
    reference: Optional[str] = None, format: str = "auto", columns: Optional[dict[str, str]] = None,
    registry: Optional[str] = None, max_length: Optional[int] = None, max_prompt_length: Optional[int] = None,
    batch_size: int = 8, max_pairs: Optional[int] = None, beta: Optional[float] = None,
    by: Optional[Sequence[str]] = None, skip_bad_records: bool = False, dtype: Optional[str] = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Evaluate a model or run (anything :func:`dpokit.runs.open_model_or_run` opens) on preference data.

    Args:
        ref: a run dir (or its ``final/`` / a checkpoint), a model dir, ``.gguf`` or model name.
        data_sources: preference files (any format the data pipeline reads), ``demo:heldout``,
            or dataset names with ``registry``. Default: the run's ``data.eval_files``.
        reference: None: the run's own reference (see :func:`run_reference`; none for a plain
            model); ``"none"``: no reference; ``"adapter"``: the LoRA adapter switched off;
            anything else: a model or run to load as the reference.
        max_length, max_prompt_length: override the tokenisation limits. Tokenisation follows
            the run's ``data`` settings, else the defaults, so a base model and a run with
            default data settings are scored on the same token ids.
        max_pairs: evaluate only the first N pairs.
        beta: DPO's beta; default the run's ``dpo.beta``, else 0.1.

    Returns:
        :func:`evaluate_preferences`'s dict plus ``model``, ``reference`` (what was used, or
        None) and ``data`` (sources, format, records read, pairs loaded, drops).
    """
    from dpokit.data.load import load_preference_data
    from dpokit.runs import load_for_inference, open_model_or_run

    info = open_model_or_run(ref)
    data_cfg = _eval_data_config(info, max_length, max_prompt_length)
    load_options = dict(format=format, columns=columns, registry=registry)
    if not data_sources:
        if info.config is None or not info.config.data.eval_files:
            raise DpokitError(f"{ref}: no evaluation data given", "pass --data FILE [FILE ...] (e.g. --data demo:heldout)")
        data_sources = info.config.data.eval_files
        cfg = info.config.data
        load_options = dict(format=cfg.format, columns=cfg.columns, registry=cfg.registry)
    loaded = load_preference_data(
        list(data_sources), **load_options, skip_bad_records=skip_bad_records,
        pair_strategy=data_cfg.pair_strategy, max_samples=max_pairs,
    )
    if beta is None:
        beta = info.config.dpo.beta if info.config is not None else DEFAULT_BETA
    if reference is None:
        ref_spec = run_reference(info)
    elif reference == "none":
        ref_spec = None
    else:
        ref_spec = reference
        if ref_spec != "adapter":
            open_model_or_run(ref_spec)  # fail on a bad path before any model is loaded
    chunk_size = info.config.training.logprob_chunk_size if info.config is not None else 1024
    options = dict(batch_size=batch_size, chunk_size=chunk_size)

    model, tokenizer, info = load_for_inference(ref, dtype=dtype)
    if ref_spec == "adapter":
        _check_adapter(model)
    examples, stats = tokenize_for_eval(loaded.pairs, tokenizer, data_cfg)
    pad = tokenizer.pad_token_id
    policy = score_pairs(model, examples, pad, progress="policy" if progress else None, **options)
    ref_scores = None
    if ref_spec == "adapter":
        ref_scores = score_pairs(model, examples, pad, adapter_disabled=True,
                                 progress="reference" if progress else None, **options)
    elif ref_spec is not None:
        model = None  # the policy's scores are in; make room for the reference
        _release_memory()
        ref_model, ref_tokenizer, _ = load_for_inference(ref_spec, dtype=dtype)
        if not _same_tokenizer(tokenizer, ref_tokenizer):
            raise DpokitError(
                f"reference {ref_spec}: its tokenizer differs from {ref}'s, so their log-probs cannot be compared",
                "use a reference from the same model family (same vocabulary), e.g. the base model",
            )
        ref_scores = score_pairs(ref_model, examples, pad, progress="reference" if progress else None, **options)
        ref_model = None
        _release_memory()
    result = build_result(examples, stats, policy, ref_scores, beta=beta, by=by)
    result["model"] = str(ref)
    result["reference"] = _describe_reference(ref_spec, info)
    result["data"] = {
        "sources": [str(s) for s in data_sources],
        "format": loaded.format,
        "records": loaded.records,
        "pairs_loaded": len(loaded.pairs),
        "dropped": dict(loaded.dropped),
        "max_length": data_cfg.max_length,
        "max_prompt_length": data_cfg.max_prompt_length,
    }
    return result


def to_json(result: dict[str, Any]) -> str:
    """The result as JSON text; non-finite floats (which JSON cannot hold) become null."""
    import json

    def clean(value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {str(k): clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        return value

    return json.dumps(clean(result), indent=2, ensure_ascii=False, allow_nan=False)


# ----------------------------------------------------------------------------- text report


def _num(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _mean_ci(mean: Optional[float], ci: Optional[list[float]]) -> str:
    if mean is None:
        return "-"
    if ci is None:
        return _num(mean)
    return f"{_num(mean)}  [{_num(ci[0])}, {_num(ci[1])}]"


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)


def format_report(result: dict[str, Any]) -> str:
    """The human-readable report: a (metric, value) table, then one table per category field."""
    no_ref = result.get("reward_accuracy") is None
    rows = [
        ["metric", "value"],
        ["pairs", _num(result["pairs"])],
        ["reward accuracy", _num(result["reward_accuracy"])],
        ["reward margin (mean, 95% CI)", _mean_ci(result["margin_mean"], result["margin_ci95"])],
        ["rewards chosen / rejected (mean)",
         "-" if no_ref else f"{_num(result['rewards_chosen_mean'])} / {_num(result['rewards_rejected_mean'])}"],
        ["log-prob accuracy (summed)", _num(result["logprob_accuracy"])],
        ["log-prob accuracy (per token)", _num(result["logprob_accuracy_per_token"])],
        ["log-prob margin (mean, 95% CI)", _mean_ci(result["logprob_margin_mean"], result["logprob_margin_ci95"])],
        ["log-probs chosen / rejected (mean)",
         f"{_num(result['logps_chosen_mean'])} / {_num(result['logps_rejected_mean'])}"],
    ]
    lines = []
    if result.get("model"):
        lines.append(f"model:     {result['model']}")
    if "reference" in result:
        lines.append(f"reference: {result['reference'] or 'none (reward metrics need one: pass --ref MODEL)'}")
    if "beta" in result:
        lines.append(f"beta:      {result['beta']:g}")
    data, tokens = result.get("data"), result.get("tokenization")
    if data:
        dropped = sum(data.get("dropped", {}).values())
        lines.append(f"data:      {', '.join(data['sources'])} ({data['format']}; {data['records']} records, "
                     f"{data['pairs_loaded']} pairs loaded" + (f", {dropped} dropped" if dropped else "") + ")")
    if tokens and tokens.get("pairs_dropped"):
        lines.append(f"           {tokens['pairs_dropped']} pairs dropped in tokenisation (too long for max_length)")
    if lines:
        lines.append("")
    lines.append(_table(rows))
    for name, groups in (result.get("by_category") or {}).items():
        header = [name, "pairs", "reward acc", "margin (mean, 95% CI)", "log-prob acc", "per-token acc"]
        body = [
            [label, str(m["pairs"]), _num(m["reward_accuracy"]), _mean_ci(m["margin_mean"], m["margin_ci95"]),
             _num(m["logprob_accuracy"]), _num(m["logprob_accuracy_per_token"])]
            for label, m in groups.items()
        ]
        lines += ["", f"by {name}:", _table([header] + body)]
    lines += [
        "",
        "ties count as not correct; 95% CI: Student t interval over pairs (mean ± t·s/√n)",
    ]
    return "\n".join(lines)
