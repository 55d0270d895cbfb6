"""The data report: what was loaded, what was dropped and why, lengths, truncation, examples.

:func:`build_report` returns a JSON-ready dict (the trainer saves it as
``RUN_DIR/data_report.json``; ``dpokit data inspect --json`` prints it);
:func:`format_report` turns it into text for a terminal.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from dpokit.data.tokenize import TokenizedPair, TokenizeStats
from dpokit.data.types import LoadResult

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


def format_report(report: dict[str, Any]) -> str:
    """The report as readable text."""
    settings, trunc = report["settings"], report["truncation"]
    lines = [
        f"format:            {report['format']}",
        f"records read:      {report['records']}",
        f"pairs found:       {report['pairs']}",
        f"pairs usable:      {report['pairs_used']} (after tokenisation and truncation)",
    ]
    dropped = report["dropped"]
    lines.append(f"pairs dropped:     {sum(dropped.values())}")
    for reason, count in dropped.items():
        lines.append(f"  {reason}: {count}")
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
    turns, system = report["turns"], report["system_prompt"]
    lines += [
        f"turns:             {turns['single_turn']} single-turn, {turns['multi_turn']} multi-turn",
        f"system prompt:     {system['in_data']} in the data, {system['inserted']} inserted"
        + (f" ({settings['system_prompt']!r})" if settings["system_prompt"] else ""),
        f"tokenizer:         {report['tokenizer']} "
        + ("(chat template)" if settings["chat_template"] else "(plain text, no chat template)"),
        "lengths in tokens (before truncation):",
    ]
    for part in ("prompt", "chosen", "rejected"):
        lines.append(f"  {part + ':':10s} {_fmt_lengths(report['lengths'][part])}")
    lines += [
        f"truncation at max_prompt_length={settings['max_prompt_length']}, max_length={settings['max_length']}:",
        f"  prompts cut (left):   {trunc['prompt_truncated']}",
        f"  answers cut (right):  {trunc['answer_truncated']} pairs "
        f"({trunc['chosen_truncated']} chosen, {trunc['rejected_truncated']} rejected)",
        f"  dropped (no room for an answer): {trunc['dropped_empty_after_truncation']}",
    ]
    fallback = report["tokenization"].get("template_fallback", 0)
    if fallback:
        lines.append(f"chat template fallback (prompt tokens not a prefix): {fallback} pairs")
    for i, ex in enumerate(report["examples"], 1):
        lines.append(f"\nexample {i} ({ex['source']}), as the model sees it:")
        for part in ("prompt", "chosen", "rejected"):
            lines.append(f"  [{part}, {ex['tokens'][part]} tokens]")
            lines.append(_indent(_elide(ex[part])))
    return "\n".join(lines)
