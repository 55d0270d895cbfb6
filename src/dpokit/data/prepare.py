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
    """Tokenised train (and eval) pairs, and the data report (``data_report.json``)."""

    train: list["TokenizedPair"]
    eval: list["TokenizedPair"]
    report: dict
    pad_token_id: int


def prepare_data(config: "Config", tokenizer) -> RunData:
    """Load, normalise and tokenise the data; every process does the same (it is deterministic)."""
    from dpokit.data.load import load_from_config
    from dpokit.data.report import build_report
    from dpokit.data.tokenize import tokenize_pairs

    train_result, eval_result = load_from_config(config.data, config.training.seed)
    train_pairs, train_stats = tokenize_pairs(train_result.pairs, tokenizer, config.data)
    report = build_report(train_result, train_pairs, train_stats, tokenizer, config.data)
    eval_pairs: list = []
    if eval_result is not None:
        eval_pairs, eval_stats = tokenize_pairs(eval_result.pairs, tokenizer, config.data)
        report["eval"] = build_report(eval_result, eval_pairs, eval_stats, tokenizer, config.data)
    if not train_pairs:
        raise DpokitError(
            f"data.train_files: no usable training pairs ({train_result.records} records, "
            f"{len(train_result.pairs)} pairs before tokenisation; dropped: {report.get('dropped', {})})",
            "run `dpokit data inspect` on the files to see why; raise data.max_length if pairs were truncated away",
        )
    return RunData(train_pairs, eval_pairs, report, tokenizer.pad_token_id)
