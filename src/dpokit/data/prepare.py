"""A run's data, ready to batch: loaded, normalised, tokenised, and reported."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from dpokit.errors import DpokitError

if TYPE_CHECKING:
    from dpokit.config import Config
    from dpokit.data.tokenize import TokenizedPair


@dataclass
class RunData:
    """Tokenised train (and eval) pairs (SFT: examples, as pairs with no rejected answer), and the data report."""

    train: list["TokenizedPair"]
    eval: list["TokenizedPair"]
    report: dict
    pad_token_id: int


def prepare_data(config: "Config", tokenizer) -> RunData:
    """Load, normalise and tokenise the data; every process does the same (it is deterministic).

    ``stage: sft`` reads SFT files (prompt/completion, messages, alpaca, ShareGPT) and
    preference files' chosen answers; ``stage: dpo`` reads preference pairs.
    """
    from dpokit.data.load import load_from_config, load_sft_from_config
    from dpokit.data.report import build_report, build_sft_report, prompt_overlap
    from dpokit.data.tokenize import tokenize_pairs, tokenize_sft

    sft = config.stage == "sft"
    load, tokenize, build = ((load_sft_from_config, tokenize_sft, build_sft_report) if sft
                             else (load_from_config, tokenize_pairs, build_report))
    noun = "examples" if sft else "pairs"
    train_result, eval_result = load(config.data, config.training.seed)
    train_items, train_stats = tokenize(getattr(train_result, noun), tokenizer, config.data)
    report = build(train_result, train_items, train_stats, tokenizer, config.data)
    eval_items: list = []
    if eval_result is not None:
        eval_items, eval_stats = tokenize(getattr(eval_result, noun), tokenizer, config.data)
        report["eval"] = build(eval_result, eval_items, eval_stats, tokenizer, config.data)
        report["prompt_overlap"] = prompt_overlap(getattr(train_result, noun), getattr(eval_result, noun))
    if not train_items:
        raise DpokitError(
            f"data.train_files: no usable training {noun} ({train_result.records} records, "
            f"{len(getattr(train_result, noun))} {noun} before tokenisation; dropped: {report.get('dropped', {})})",
            f"run `dpokit data inspect{' --stage sft' if sft else ''}` on the files to see why; "
            f"raise data.max_length if {noun} were truncated away",
        )
    return RunData(train_items, eval_items, report, tokenizer.pad_token_id)
