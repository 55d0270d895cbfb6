"""The data report: what was loaded, what was dropped and why, lengths, truncation, examples.

:func:`build_report` (preference pairs) and :func:`build_sft_report` (SFT examples) return
a JSON-ready dict (the trainer saves it as ``RUN_DIR/data_report.json``; ``dpokit data
inspect --json`` prints it); :func:`format_report` and :func:`format_sft_report` turn it
into text for a terminal.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from dpokit.data.tokenize import TokenizedPair, TokenizeStats
from dpokit.data.types import LoadResult, SftLoadResult

if TYPE_CHECKING:
    from dpokit.config import DataConfig

NUM_EXAMPLES = 3
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


def merge_dropped(*counters: Counter) -> dict[str, int]:
    """Reason -> count over several sources of drops, largest first."""
    total: Counter = Counter()
    for counter in counters:
        total.update(counter)
    return dict(sorted(((k, v) for k, v in total.items() if v), key=lambda kv: (-kv[1], kv[0])))


def _example(pair: TokenizedPair, tokenizer) -> dict[str, Any]:
    decode = lambda ids: tokenizer.decode(ids, skip_special_tokens=False)  # noqa: E731
    return {
        "source": pair.source,
        "prompt": decode(pair.prompt_ids),
        "chosen": decode(pair.chosen_ids),
        "rejected": decode(pair.rejected_ids),
        "tokens": {"prompt": len(pair.prompt_ids), "chosen": len(pair.chosen_ids), "rejected": len(pair.rejected_ids)},
    }


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
    ``truncation``, ``tokenization``, ``turns``, ``system_prompt``, ``examples``.
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
    settings, trunc = report["settings"], report["truncation"]
    parts = ("prompt", "chosen", "rejected")
    lines = [
        f"format:            {report['format']}",
        f"records read:      {report['records']}",
        f"pairs found:       {report['pairs']}",
        f"pairs usable:      {report['pairs_used']} (after tokenisation and truncation)",
    ]
    lines += _dropped_and_error_lines(report, "pairs")
    lines += _context_lines(report, parts)
    lines += [
        f"truncation at max_prompt_length={settings['max_prompt_length']}, max_length={settings['max_length']}:",
        f"  prompts cut (left):   {trunc['prompt_truncated']}",
        f"  answers cut (right):  {trunc['answer_truncated']} pairs "
        f"({trunc['chosen_truncated']} chosen, {trunc['rejected_truncated']} rejected)",
        f"  dropped (no room for an answer): {trunc['dropped_empty_after_truncation']}",
    ]
    lines += _example_lines(report, parts, "pairs")
    return "\n".join(lines)


# --- SFT examples -----------------------------------------------------------------------


def _sft_example(example: TokenizedPair, tokenizer) -> dict[str, Any]:
    decode = lambda ids: tokenizer.decode(ids, skip_special_tokens=False)  # noqa: E731
    return {
        "source": example.source,
        "prompt": decode(example.prompt_ids),
        "completion": decode(example.chosen_ids),
        "tokens": {"prompt": len(example.prompt_ids), "completion": len(example.chosen_ids)},
    }


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
        "examples": [_sft_example(e, tokenizer) for e in tokenized[:NUM_EXAMPLES]],
    }


def format_sft_report(report: dict[str, Any]) -> str:
    """An SFT report (:func:`build_sft_report`) as readable text."""
    settings, trunc = report["settings"], report["truncation"]
    parts = ("prompt", "completion")
    lines = [
        f"format:            {report['format']}",
        f"records read:      {report['records']}",
        f"examples found:    {report['examples_found']}",
        f"examples usable:   {report['examples_used']} (after tokenisation and truncation)",
    ]
    lines += _dropped_and_error_lines(report, "examples")
    lines += _context_lines(report, parts)
    lines += [
        f"truncation at max_prompt_length={settings['max_prompt_length']}, max_length={settings['max_length']}:",
        f"  prompts cut (left):       {trunc['prompt_truncated']}",
        f"  completions cut (right):  {trunc['completion_truncated']}",
        f"  dropped (no room for an answer): {trunc['dropped_empty_after_truncation']}",
    ]
    lines += _example_lines(report, parts, "examples")
    return "\n".join(lines)
