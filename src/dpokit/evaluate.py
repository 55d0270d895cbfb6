"""Held-out preference evaluation: tokenise as the run did, score policy and reference, compute the metrics.

The metrics are :mod:`dpokit.preference_metrics`' (their definitions are there); scoring is
:func:`dpokit.scoring.score_examples`; which reference a run has is
:func:`dpokit.runs.run_reference`; the text report is :mod:`dpokit.eval_report`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence, Union

from dpokit.errors import DpokitError
from dpokit.preference_metrics import DEFAULT_BETA, category_breakdown, category_fields, metrics_for

if TYPE_CHECKING:  # heavy imports stay lazy so `dpokit --help` is fast
    import torch

    from dpokit.config import DataConfig
    from dpokit.data.types import PreferencePair


ReferenceArg = Union[None, str, "torch.nn.Module"]


def _score(model, examples, pad_token_id: int, *, progress: Optional[str] = None, adapter_disabled: bool = False,
           batch_size: int = 8, chunk_size: int = 1024) -> dict[str, list]:
    """Per-pair lists ``chosen``, ``rejected``, ``chosen_tokens``, ``rejected_tokens`` (the one scorer's)."""
    from dpokit.scoring import score_examples

    return score_examples(model, examples, pad_token_id, batch_size=batch_size, chunk_size=chunk_size,
                          adapter_disabled=adapter_disabled, progress=progress).to_lists()


def _score_policy_and_reference(model, examples, pad_token_id: int, reference: ReferenceArg, progress: bool,
                                **options: Any) -> tuple[dict[str, list], Optional[dict[str, list]]]:
    """``model``'s scores, and the reference's: None, ``"adapter"`` (``model`` with its adapter off) or a model."""
    policy = _score(model, examples, pad_token_id, progress="policy" if progress else None, **options)
    if reference is None:
        return policy, None
    reference_model, disabled = (model, True) if reference == "adapter" else (reference, False)
    return policy, _score(reference_model, examples, pad_token_id, adapter_disabled=disabled,
                          progress="reference" if progress else None, **options)


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
    from dpokit.fingerprint import data_fingerprint

    scores = {
        "policy_chosen": policy["chosen"], "policy_rejected": policy["rejected"],
        "chosen_tokens": policy["chosen_tokens"], "rejected_tokens": policy["rejected_tokens"],
    }
    if reference is not None:
        scores["ref_chosen"], scores["ref_rejected"] = reference["chosen"], reference["rejected"]
    result = metrics_for(scores, range(len(examples)), beta)
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
    policy, ref_scores = _score_policy_and_reference(model, examples, pad, reference, progress,
                                                     batch_size=batch_size, chunk_size=chunk_size)
    result = build_result(examples, stats, policy, ref_scores, beta=beta, by=by)
    result["reference"] = None if reference is None else (
        "adapter disabled" if reference == "adapter" else type(reference).__name__)
    return result


# ----------------------------------------------------------------------------- models and runs


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
        reference: None: the run's own reference (see :func:`dpokit.runs.run_reference`; none for a plain
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
    from dpokit.runs import load_for_inference, open_model_or_run, run_reference

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
    separate = ref_spec not in (None, "adapter")
    policy, ref_scores = _score_policy_and_reference(model, examples, pad, None if separate else ref_spec,
                                                     progress, **options)
    if separate:
        model = None  # the policy's scores are in; make room for the reference
        _release_memory()
        ref_model, ref_tokenizer, _ = load_for_inference(ref_spec, dtype=dtype)
        if not _same_tokenizer(tokenizer, ref_tokenizer):
            raise DpokitError(
                f"reference {ref_spec}: its tokenizer differs from {ref}'s, so their log-probs cannot be compared",
                "use a reference from the same model family (same vocabulary), e.g. the base model",
            )
        ref_scores = _score(ref_model, examples, pad, progress="reference" if progress else None, **options)
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
