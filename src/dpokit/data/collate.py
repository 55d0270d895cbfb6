"""Batch layout: tokenised pairs -> padded tensors. The one place that owns the layout.

Today a batch of ``B`` preference pairs is ``2B`` right-padded rows: rows ``0..B-1`` are
``prompt + chosen`` and rows ``B..2B-1`` are ``prompt + rejected`` (the layout TRL's
DPOTrainer uses too). ``loss_mask`` marks the answer tokens, i.e. the tokens whose
log-probability is scored. :func:`dpokit.logprobs.batch_logps` is the only reader of
this layout; a move to padding-free, prefix-shared packing changes this module and
:mod:`dpokit.logprobs` and nothing else.

An example is anything with ``prompt_ids``, ``chosen_ids`` and ``rejected_ids`` lists of
ints (``dpokit.data.tokenize.TokenizedPair``), or an ``(index, pair)`` tuple, where
``index`` is the pair's position in its dataset: the batch then carries ``index`` so
that cached reference log-probs can be looked up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence, Union

import torch

if TYPE_CHECKING:
    from dpokit.data.tokenize import TokenizedPair

Example = Union["TokenizedPair", tuple[int, "TokenizedPair"]]

LAYOUT = "padded-pairs-v1"
"""Names this layout in cache keys (reference log-probs): a new layout must get a new name."""


def _split_indices(examples: Sequence[Example]) -> tuple[list[Any], list[int] | None]:
    """Separate ``(index, pair)`` tuples into pairs and indices (``None`` when none given)."""
    if not examples:
        raise ValueError("cannot collate an empty batch")
    if isinstance(examples[0], tuple):
        return [pair for _, pair in examples], [int(index) for index, _ in examples]
    return list(examples), None


def row_length(pair: "TokenizedPair") -> int:
    """The width a pair's rows are padded to: its prompt and longer answer (an SFT example has no rejected one)."""
    return len(pair.prompt_ids) + max(len(pair.chosen_ids), len(pair.rejected_ids))


def _pad_rows(rows: list[list[int]], answer_starts: list[int], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Right-pad token rows into ``input_ids``, ``attention_mask`` and ``loss_mask``.

    ``answer_starts[i]`` is where row ``i``'s answer begins; every real token from there on
    is an answer token. Returns tensors of shape ``[len(rows), max row length]``.
    """
    width = max(len(row) for row in rows)
    input_ids = torch.full((len(rows), width), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    loss_mask = torch.zeros((len(rows), width), dtype=torch.bool)
    for i, (row, start) in enumerate(zip(rows, answer_starts)):
        input_ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        attention_mask[i, : len(row)] = 1
        loss_mask[i, start : len(row)] = True
    return {"input_ids": input_ids, "attention_mask": attention_mask, "loss_mask": loss_mask}


def collate_preference(examples: Sequence[Example], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Lay out ``B`` preference pairs as ``2B`` right-padded rows.

    Returns:
        ``input_ids`` ``[2B, T]`` long: rows ``0..B-1`` prompt+chosen, rows ``B..2B-1``
        prompt+rejected, padded on the right with ``pad_token_id``;
        ``attention_mask`` ``[2B, T]`` long: 1 on real tokens;
        ``loss_mask`` ``[2B, T]`` bool: True where the token is an answer token (a label
        position; the first token of a row is never scored, having no context);
        ``index`` ``[B]`` long: dataset positions, only when examples are ``(index, pair)``.
    """
    pairs, indices = _split_indices(examples)
    rows = [p.prompt_ids + p.chosen_ids for p in pairs] + [p.prompt_ids + p.rejected_ids for p in pairs]
    starts = [len(p.prompt_ids) for p in pairs] * 2
    batch = _pad_rows(rows, starts, pad_token_id)
    if indices is not None:
        batch["index"] = torch.tensor(indices, dtype=torch.long)
    return batch


def collate_sft(examples: Sequence[Example], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Lay out ``B`` pairs as ``B`` right-padded prompt+chosen rows, for supervised fine-tuning.

    Returns ``input_ids``, ``attention_mask``, ``loss_mask`` of shape ``[B, T]`` (as in
    :func:`collate_preference`, loss on the chosen answer only) and, for ``(index, pair)``
    examples, ``index`` ``[B]``.
    """
    pairs, indices = _split_indices(examples)
    rows = [p.prompt_ids + p.chosen_ids for p in pairs]
    batch = _pad_rows(rows, [len(p.prompt_ids) for p in pairs], pad_token_id)
    if indices is not None:
        batch["index"] = torch.tensor(indices, dtype=torch.long)
    return batch

