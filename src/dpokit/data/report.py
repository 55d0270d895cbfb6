"""The data report: what was loaded, what was dropped and why, lengths, truncation, examples.

:func:`build_report` (preference pairs) and :func:`build_sft_report` (SFT examples) return
a JSON-ready dict (the trainer saves it as ``RUN_DIR/data_report.json``; ``dpokit data
inspect --json`` prints it); :func:`format_report` and :func:`format_sft_report` turn it
into text for a terminal.

Two parts feed ``dpokit doctor`` (:mod:`dpokit.doctor`), which skips its check when a
report lacks them (reports written before they existed):

``length_comparison`` (in every report :func:`build_report` makes, so in the train report
and in its ``eval`` sub-report), from :func:`length_comparison`: how the chosen and the
rejected answer of each pair compare in tokens, as the model sees them (after truncation)::

    {"pairs": 120, "chosen_longer": 96, "rejected_longer": 20, "same_length": 4,
     "chosen_longer_share": 0.8, "rejected_longer_share": 0.1667,
     "mean_chosen_tokens": 61.2, "mean_rejected_tokens": 40.5, "mean_difference": 20.7}

``mean_difference`` is the mean over pairs of chosen minus rejected tokens (negative: the
rejected answers are the longer ones).

``prompt_overlap`` (top level of the train report, set by the trainer when there is eval
data), from :func:`prompt_overlap`: eval pairs (SFT: examples) whose prompt is also a train
one's (same turns after whitespace and case are normalised, system message left out)::

    {"eval_items": 40, "overlapping": 3, "share": 0.075,
     "examples": [{"prompt": "How do I ...", "eval_source": "heldout.jsonl:4",
                   "train_source": "train.jsonl:17"}]}
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from dpokit.data.tokenize import TokenizedPair, TokenizeStats
from dpokit.data.types import LoadResult, PreferencePair, SftExample, SftLoadResult, prompt_key

if TYPE_CHECKING:
    from dpokit.config import DataConfig

NUM_EXAMPLES = 3
NUM_OVERLAP_EXAMPLES = 3
MAX_OVERLAP_PROMPT_CHARS = 200
MAX_ERRORS_SHOWN = 10
MAX_EXAMPLE_CHARS = 1500
"""Text output shows at most this many characters of each example part (JSON has all)."""


def length_summary(lengths: Sequence[int]) -> dict[str, float | int | None]:
    """min, mean, median, p95 (linear interpolation) and max of token counts; None when empty."""
    if not lengths:
        return {"min": None, "mean": None, "median": None, "p95": None, "max": None}
    values = np.asarray(lengths, dtype=np.float64)
    return {
        "min": int(values.min()),
        "mean": round(float(values.mean()), 1),
        "median": round(float(np.median(values)), 1),
        "p95": round(float(np.percentile(values, 95)), 1),
        "max": int(values.max()),
    }


def length_comparison(tokenized: Sequence[TokenizedPair]) -> dict[str, Any]:
    """Per pair, is the chosen or the rejected answer longer in tokens, and by how much on average.

    Counts the answers' tokens as the model sees them (``chosen_ids``/``rejected_ids``, after
    truncation; the template's end-of-turn tokens included on both sides, so they cancel).
    Shares and means are None when there are no pairs.
    """
    chosen = np.asarray([len(p.chosen_ids) for p in tokenized], dtype=np.float64)
    rejected = np.asarray([len(p.rejected_ids) for p in tokenized], dtype=np.float64)
    n = len(tokenized)
    longer, shorter = int((chosen > rejected).sum()), int((chosen < rejected).sum())
    comparison: dict[str, Any] = {"pairs": n, "chosen_longer": longer, "rejected_longer": shorter,
                                  "same_length": n - longer - shorter}
    if not n:
        return comparison | dict.fromkeys(("chosen_longer_share", "rejected_longer_share", "mean_chosen_tokens",
                                           "mean_rejected_tokens", "mean_difference"))
    return comparison | {
        "chosen_longer_share": round(longer / n, 4),
        "rejected_longer_share": round(shorter / n, 4),
        "mean_chosen_tokens": round(float(chosen.mean()), 1),
        "mean_rejected_tokens": round(float(rejected.mean()), 1),
        "mean_difference": round(float((chosen - rejected).mean()), 1),
    }


def _prompt_text(pair: PreferencePair | SftExample) -> str:
    """The prompt's last user turn (what a reader recognises), cut to a readable length."""
    users = [m["content"] for m in pair.prompt if m["role"] == "user"]
    text = " ".join(str(users[-1] if users else "").split())
    return text if len(text) <= MAX_OVERLAP_PROMPT_CHARS else text[: MAX_OVERLAP_PROMPT_CHARS - 3] + "..."


def prompt_overlap(train_pairs: Sequence[PreferencePair | SftExample],
                   eval_pairs: Sequence[PreferencePair | SftExample]) -> dict[str, Any]:
    """How many eval pairs ask a prompt that a train pair also asks (the report's ``prompt_overlap``).

    Works the same on SFT examples (anything with ``prompt`` messages and a ``source``).
    Two prompts are the same when their turns (role and text, system message left out)
    match after whitespace is collapsed and case folded: a system prompt that only one
    split has does not hide a repeated question. Eval figures on such pairs measure memory,
    not generalisation. Gives up to :data:`NUM_OVERLAP_EXAMPLES` examples, in eval order.
    """
    train_sources: dict[tuple, str] = {}
    for pair in train_pairs:
        train_sources.setdefault(prompt_key(pair), pair.source)
    overlapping, examples = 0, []
    for pair in eval_pairs:
        source = train_sources.get(prompt_key(pair))
        if source is None:
            continue
        overlapping += 1
        if len(examples) < NUM_OVERLAP_EXAMPLES:
            examples.append({"prompt": _prompt_text(pair), "eval_source": pair.source, "train_source": source})
    n = len(eval_pairs)
    return {"eval_items": n, "overlapping": overlapping, "share": round(overlapping / n, 4) if n else None,
            "examples": examples}


def merge_dropped(*counters: Counter) -> dict[str, int]:
    """Reason -> count over several sources of drops, largest first."""
    total: Counter = Counter()
    for counter in counters:
        total.update(counter)
    return dict(sorted(((k, v) for k, v in total.items() if v), key=lambda kv: (-kv[1], kv[0])))


def _example(pair: TokenizedPair, tokenizer, answers: tuple[str, ...] = ("chosen", "rejected")) -> dict[str, Any]:
    """One example as the model sees it: each part's text (special tokens kept) and length.

    ``answers`` name the answer parts: a pair's ``chosen``/``rejected``; an SFT example's
    ``completion`` (its ``chosen_ids``).
    """
    ids = {"prompt": pair.prompt_ids}
    ids.update(zip(answers, (pair.chosen_ids, pair.rejected_ids)))
    out: dict[str, Any] = {"source": pair.source}
    out.update({part: tokenizer.decode(tokens, skip_special_tokens=False) for part, tokens in ids.items()})
    out["tokens"] = {part: len(tokens) for part, tokens in ids.items()}
    return out


def build_report(
    load_result: LoadResult,
    tokenized: Sequence[TokenizedPair],
    stats: TokenizeStats,
    tokenizer,
    data_cfg: "DataConfig",
) -> dict[str, Any]:
    """Everything a user needs to trust the data before training on it (JSON-ready).

    Keys: ``format``, ``records``, ``pairs`` (pairs the loader found), ``pairs_used`` (left
    after tokenisation), ``dropped`` (reason -> count, loading and tokenisation together),
    ``errors``, ``choices`` (what a format chose for the user -> records, e.g. which
    PKU-SafeRLHF column named the chosen answer), ``tokenizer``, ``settings``, ``lengths`` (tokens before truncation),
    ``truncation``, ``tokenization``, ``turns``, ``system_prompt``, ``length_comparison``
    (see the module docstring), ``examples``.
    """
    pairs = load_result.pairs
    multi_turn = sum(1 for p in pairs if p.num_user_turns > 1)
    return {
        "format": load_result.format,
        "records": load_result.records,
        "pairs": len(pairs),
        "pairs_used": len(tokenized),
        "dropped": merge_dropped(load_result.dropped, stats.dropped()),
        "errors": list(load_result.errors),
        "choices": dict(load_result.choices),
        "tokenizer": getattr(tokenizer, "name_or_path", ""),
        "settings": {
            "chat_template": stats.chat_template,
            "system_prompt": data_cfg.system_prompt,
            "max_length": data_cfg.max_length,
            "max_prompt_length": data_cfg.max_prompt_length,
            "pair_strategy": data_cfg.pair_strategy,
        },
        "lengths": {
            "prompt": length_summary(stats.prompt_lengths),
            "chosen": length_summary(stats.chosen_lengths),
            "rejected": length_summary(stats.rejected_lengths),
        },
        "truncation": {
            "prompt_truncated": stats.prompt_truncated,
            "answer_truncated": stats.answer_truncated,
            "chosen_truncated": stats.chosen_truncated,
            "rejected_truncated": stats.rejected_truncated,
            "dropped_empty_after_truncation": stats.dropped_empty_after_truncation,
        },
        "tokenization": stats.counts(),
        "turns": {"single_turn": len(pairs) - multi_turn, "multi_turn": multi_turn},
        "system_prompt": {
            "in_data": sum(1 for p in pairs if p.system is not None),
            "inserted": stats.system_prompt_inserted,
        },
        "length_comparison": length_comparison(tokenized),
        "examples": [_example(p, tokenizer) for p in tokenized[:NUM_EXAMPLES]],
    }


def _fmt_lengths(summary: dict) -> str:
    if summary["min"] is None:
        return "-"
    return (f"min {summary['min']}, mean {summary['mean']}, median {summary['median']}, "
            f"p95 {summary['p95']}, max {summary['max']}")


def _indent(text: str, prefix: str = "    | ") -> str:
    return "\n".join(prefix + line for line in text.split("\n"))


def _elide(text: str, limit: int = MAX_EXAMPLE_CHARS) -> str:
    """Head and tail of a long text, with the cut marked (the tail is where a prompt ends)."""
    if len(text) <= limit:
        return text
    head, tail = text[: limit * 2 // 3], text[-(limit // 3):]
    return f"{head}\n[... {len(text) - len(head) - len(tail)} characters not shown; --json has all ...]\n{tail}"


def _dropped_and_error_lines(report: dict[str, Any], noun: str) -> list[str]:
    dropped = report["dropped"]
    lines = [f"{noun + ' dropped:':19s}{sum(dropped.values())}"]
    lines += [f"  {reason}: {count}" for reason, count in dropped.items()]
    errors = report["errors"]
    if errors:
        lines.append(f"bad records skipped: {len(errors)}")
        lines += [f"  {e}" for e in errors[:MAX_ERRORS_SHOWN]]
        if len(errors) > MAX_ERRORS_SHOWN:
            lines.append(f"  ... and {len(errors) - MAX_ERRORS_SHOWN} more (see --json)")
    for choice, count in (report.get("choices") or {}).items():
        lines.append(f"{choice} ({count} records)")
        if "better_response_id" in choice:
            lines.append("  (the more helpful answer; for the safer one: --columns chosen_id=safer_response_id)")
    return lines


def _head_lines(report: dict[str, Any], noun: str, found: int, used: int, parts: tuple[str, ...]) -> list[str]:
    """Format, counts, drops, context and lengths, then the truncation heading: what both reports open with."""
    settings = report["settings"]
    lines = [
        f"format:            {report['format']}",
        f"records read:      {report['records']}",
        f"{noun + ' found:':19s}{found}",
        f"{noun + ' usable:':19s}{used} (after tokenisation and truncation)",
    ]
    lines += _dropped_and_error_lines(report, noun)
    lines += _context_lines(report, parts)
    lines.append(f"truncation at max_prompt_length={settings['max_prompt_length']}, max_length={settings['max_length']}:")
    return lines


def _context_lines(report: dict[str, Any], parts: tuple[str, ...]) -> list[str]:
    """Turns, system prompt, tokenizer and the length summaries of ``parts``."""
    settings, turns, system = report["settings"], report["turns"], report["system_prompt"]
    lines = [
        f"turns:             {turns['single_turn']} single-turn, {turns['multi_turn']} multi-turn",
        f"system prompt:     {system['in_data']} in the data, {system['inserted']} inserted"
        + (f" ({settings['system_prompt']!r})" if settings["system_prompt"] else ""),
        f"tokenizer:         {report['tokenizer']} "
        + ("(chat template)" if settings["chat_template"] else "(plain text, no chat template)"),
        "lengths in tokens (before truncation):",
    ]
    width = max(10, max(len(part) + 2 for part in parts))
    for part in parts:
        lines.append(f"  {part + ':':{width}s} {_fmt_lengths(report['lengths'][part])}")
    return lines


def _example_lines(report: dict[str, Any], parts: tuple[str, ...], noun: str) -> list[str]:
    lines = []
    fallback = report["tokenization"].get("template_fallback", 0)
    if fallback:
        lines.append(f"chat template fallback (prompt tokens not a prefix): {fallback} {noun}")
    for i, ex in enumerate(report["examples"], 1):
        lines.append(f"\nexample {i} ({ex['source']}), as the model sees it:")
        for part in parts:
            lines.append(f"  [{part}, {ex['tokens'][part]} tokens]")
            lines.append(_indent(_elide(ex[part])))
    return lines


def format_report(report: dict[str, Any]) -> str:
    """The report as readable text."""
    trunc = report["truncation"]
    parts = ("prompt", "chosen", "rejected")
    lines = _head_lines(report, "pairs", report["pairs"], report["pairs_used"], parts)
    lines += [
        f"  prompts cut (left):   {trunc['prompt_truncated']}",
        f"  answers cut (right):  {trunc['answer_truncated']} pairs "
        f"({trunc['chosen_truncated']} chosen, {trunc['rejected_truncated']} rejected)",
        f"  dropped (no room for an answer): {trunc['dropped_empty_after_truncation']}",
    ]
    comparison = report.get("length_comparison")
    if comparison and comparison.get("pairs"):
        lines.append(
            f"chosen vs rejected: chosen longer in {comparison['chosen_longer']} of {comparison['pairs']} pairs "
            f"({comparison['chosen_longer_share']:.0%}), rejected longer in {comparison['rejected_longer']}; "
            f"mean {comparison['mean_chosen_tokens']} vs {comparison['mean_rejected_tokens']} tokens")
    lines += _example_lines(report, parts, "pairs")
    return "\n".join(lines)


# --- SFT examples -----------------------------------------------------------------------


def build_sft_report(
    load_result: SftLoadResult,
    tokenized: Sequence[TokenizedPair],
    stats: TokenizeStats,
    tokenizer,
    data_cfg: "DataConfig",
) -> dict[str, Any]:
    """The data report for SFT examples (from :func:`dpokit.data.tokenize.tokenize_sft`), JSON-ready.

    Keys: ``stage`` (``"sft"``), ``format``, ``records``, ``examples_found`` (examples the
    loader found), ``examples_used`` (left after tokenisation), ``dropped`` (reason -> count,
    loading and tokenisation together), ``errors``, ``tokenizer``, ``settings``, ``lengths``
    (``prompt``, ``completion``: tokens before truncation), ``truncation``, ``tokenization``,
    ``turns``, ``system_prompt``, and ``examples``: the first examples' prompt and completion
    decoded from their token ids (after truncation), as the model sees them.
    """
    examples = load_result.examples
    multi_turn = sum(1 for e in examples if e.num_user_turns > 1)
    return {
        "stage": "sft",
        "format": load_result.format,
        "records": load_result.records,
        "examples_found": len(examples),
        "examples_used": len(tokenized),
        "dropped": merge_dropped(load_result.dropped, stats.dropped()),
        "errors": list(load_result.errors),
        "tokenizer": getattr(tokenizer, "name_or_path", ""),
        "settings": {
            "chat_template": stats.chat_template,
            "system_prompt": data_cfg.system_prompt,
            "max_length": data_cfg.max_length,
            "max_prompt_length": data_cfg.max_prompt_length,
        },
        "lengths": {
            "prompt": length_summary(stats.prompt_lengths),
            "completion": length_summary(stats.chosen_lengths),
        },
        "truncation": {
            "prompt_truncated": stats.prompt_truncated,
            "completion_truncated": stats.chosen_truncated,
            "dropped_empty_after_truncation": stats.dropped_empty_after_truncation,
        },
        "tokenization": {
            "examples_in": stats.pairs_in,
            "examples_out": stats.pairs_out,
            "template_fallback": stats.template_fallback,
            "system_prompt_inserted": stats.system_prompt_inserted,
            "dropped_empty_answer": stats.dropped_empty_answer,
            "chat_template": stats.chat_template,
        },
        "turns": {"single_turn": len(examples) - multi_turn, "multi_turn": multi_turn},
        "system_prompt": {
            "in_data": sum(1 for e in examples if e.system is not None),
            "inserted": stats.system_prompt_inserted,
        },
        "examples": [_example(e, tokenizer, answers=("completion",)) for e in tokenized[:NUM_EXAMPLES]],
    }


def format_sft_report(report: dict[str, Any]) -> str:
    """An SFT report (:func:`build_sft_report`) as readable text."""
    trunc = report["truncation"]
    parts = ("prompt", "completion")
    lines = _head_lines(report, "examples", report["examples_found"], report["examples_used"], parts)
    lines += [
        f"  prompts cut (left):       {trunc['prompt_truncated']}",
        f"  completions cut (right):  {trunc['completion_truncated']}",
        f"  dropped (no room for an answer): {trunc['dropped_empty_after_truncation']}",
    ]
    lines += _example_lines(report, parts, "examples")
    return "\n".join(lines)
