"""Batch layout: tokenised pairs -> tensors. The one place that owns the layout.

A preference batch of ``B`` pairs is ``B`` right-padded rows, one per pair, each holding the
prompt once and both answers after it: ``prompt + chosen + rejected`` (prefix sharing).
``segment_ids`` says which part each token is; ``position_ids`` restart at ``len(prompt)``
for the rejected answer, so that it sits where it would in its own ``prompt + rejected``
sequence. :mod:`dpokit.logprobs` builds the attention mask from ``segment_ids``: the
rejected answer sees the prompt and itself, never the chosen answer, so both answers get
the log-probs two separate sequences would give (within float noise), for the cost of one
prompt instead of two. Where a model cannot take that mask, :func:`split_shared_rows` turns
the batch into the two-rows-per-pair layout (``prompt + chosen`` rows, then ``prompt +
rejected`` rows, as TRL's DPOTrainer lays them out).

An SFT batch is ``B`` right-padded ``prompt + chosen`` rows with ``attention_mask`` and
``loss_mask`` (nothing to share).

:mod:`dpokit.logprobs` is the only reader of these tensors' meaning, besides the small
readers here (:func:`pair_count`, :func:`sequence_tokens`).

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

PADDING, PROMPT, CHOSEN, REJECTED = -1, 0, 1, 2
"""``segment_ids`` values."""

LAYOUT = "shared-prompt-v1"
"""Names this layout in cache keys (reference log-probs): a new layout must get a new name."""


def _split_indices(examples: Sequence[Example]) -> tuple[list[Any], list[int] | None]:
    """Separate ``(index, pair)`` tuples into pairs and indices (``None`` when none given)."""
    if not examples:
        raise ValueError("cannot collate an empty batch")
    if isinstance(examples[0], tuple):
        return [pair for _, pair in examples], [int(index) for index, _ in examples]
    return list(examples), None


def row_length(pair: "TokenizedPair") -> int:
    """The tokens of a pair's row: its prompt and both answers (an SFT example has no rejected one)."""
    return len(pair.prompt_ids) + len(pair.chosen_ids) + len(pair.rejected_ids)


def _pad_rows(rows: Sequence[Sequence[int] | torch.Tensor], answer_starts: list[int], pad_token_id: int,
              device: torch.device | None = None) -> dict[str, torch.Tensor]:
    """Right-pad token rows into ``input_ids``, ``attention_mask`` and ``loss_mask``.

    ``answer_starts[i]`` is where row ``i``'s answer begins; every real token from there on
    is an answer token. Returns tensors of shape ``[len(rows), max row length]`` on ``device``.
    """
    width = max(len(row) for row in rows)
    input_ids = torch.full((len(rows), width), pad_token_id, dtype=torch.long, device=device)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long, device=device)
    loss_mask = torch.zeros((len(rows), width), dtype=torch.bool, device=device)
    for i, (row, start) in enumerate(zip(rows, answer_starts)):
        input_ids[i, : len(row)] = torch.as_tensor(row, dtype=torch.long, device=device)
        attention_mask[i, : len(row)] = 1
        loss_mask[i, start : len(row)] = True
    return {"input_ids": input_ids, "attention_mask": attention_mask, "loss_mask": loss_mask}


def collate_preference(examples: Sequence[Example], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Lay out ``B`` preference pairs as ``B`` right-padded ``prompt + chosen + rejected`` rows.

    Returns:
        ``input_ids`` ``[B, T]`` long, padded on the right with ``pad_token_id``;
        ``segment_ids`` ``[B, T]`` long: ``PROMPT``, ``CHOSEN``, ``REJECTED`` or ``PADDING``;
        ``position_ids`` ``[B, T]`` long: ``0..P+C-1`` over prompt and chosen, ``P..P+R-1``
        over the rejected answer, 0 on padding;
        ``index`` ``[B]`` long: dataset positions, only when examples are ``(index, pair)``.
    """
    pairs, indices = _split_indices(examples)
    width = max(row_length(p) for p in pairs)
    input_ids = torch.full((len(pairs), width), pad_token_id, dtype=torch.long)
    segment_ids = torch.full((len(pairs), width), PADDING, dtype=torch.long)
    position_ids = torch.zeros((len(pairs), width), dtype=torch.long)
    for i, p in enumerate(pairs):
        prompt, chosen, rejected = len(p.prompt_ids), len(p.chosen_ids), len(p.rejected_ids)
        end = prompt + chosen + rejected
        input_ids[i, :end] = torch.tensor(p.prompt_ids + p.chosen_ids + p.rejected_ids, dtype=torch.long)
        segment_ids[i, :prompt] = PROMPT
        segment_ids[i, prompt:prompt + chosen] = CHOSEN
        segment_ids[i, prompt + chosen:end] = REJECTED
        position_ids[i, :prompt + chosen] = torch.arange(prompt + chosen)
        position_ids[i, prompt + chosen:end] = torch.arange(prompt, prompt + rejected)
    batch = {"input_ids": input_ids, "segment_ids": segment_ids, "position_ids": position_ids}
    if indices is not None:
        batch["index"] = torch.tensor(indices, dtype=torch.long)
    return batch


def split_shared_rows(batch: dict[str, torch.Tensor], pad_token_id: int = 0) -> dict[str, torch.Tensor]:
    """A :func:`collate_preference` batch as ``2B`` padded rows, on the batch's device.

    Rows ``0..B-1`` are ``prompt + chosen``, rows ``B..2B-1`` ``prompt + rejected``; returns
    ``input_ids``, ``attention_mask`` and ``loss_mask`` of shape ``[2B, W]`` (``W`` the longest
    such row), for models that cannot take the shared layout's attention mask.
    """
    input_ids, segments = batch["input_ids"], batch["segment_ids"]
    rows, starts = [], []
    for answer in (CHOSEN, REJECTED):
        for ids, seg in zip(input_ids, segments):
            keep = (seg == PROMPT) | (seg == answer)
            rows.append(ids[keep])
            starts.append(int((seg == PROMPT).sum()))
    return _pad_rows(rows, starts, pad_token_id, input_ids.device)


def shared_attention(segment_ids: torch.Tensor) -> torch.Tensor:
    """Who may attend to whom in a :func:`collate_preference` batch: ``[B, 1, T, T]`` bool.

    ``[b, 0, q, k]`` is True when token ``q`` may see token ``k``: causal, never padding, and
    the rejected answer never sees the chosen one. Every token sees itself (so a padding
    query has a non-empty softmax row; its output is never read).
    """
    width = segment_ids.shape[1]
    causal = torch.ones((width, width), dtype=torch.bool, device=segment_ids.device).tril()
    real = segment_ids != PADDING  # [B, T]
    rejected_sees_chosen = (segment_ids == REJECTED)[:, :, None] & (segment_ids == CHOSEN)[:, None, :]
    allowed = causal[None] & real[:, None, :] & ~rejected_sees_chosen
    allowed |= torch.eye(width, dtype=torch.bool, device=segment_ids.device)[None]
    return allowed[:, None]


def shared_answer_tokens(segment_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Where each scored answer token of a :func:`collate_preference` batch is, and what predicts it.

    Returns three ``[M]`` long tensors over the ``M`` scored tokens, row by row in order:
    ``position`` (flat index into ``[B * T]``: the token), ``predecessor`` (flat index of the
    hidden state that predicts it: the previous token, or the prompt's last token for an
    answer's first token) and ``slot`` (``b`` for row ``b``'s chosen answer, ``B + b`` for its
    rejected one). A token with no predecessor (an answer with an empty prompt) is not scored,
    as position 0 of a separate sequence would not be.
    """
    rows, width = segment_ids.shape
    steps = torch.arange(width, device=segment_ids.device).expand(rows, width)
    prompt_end = (segment_ids == PROMPT).sum(dim=1, keepdim=True)  # [B, 1]
    before = torch.cat([segment_ids.new_full((rows, 1), PADDING), segment_ids[:, :-1]], dim=1)
    starts_rejected = (segment_ids == REJECTED) & (before != REJECTED)
    predecessor = torch.where(starts_rejected, prompt_end - 1, steps - 1)  # [B, T]
    scored = ((segment_ids == CHOSEN) | (segment_ids == REJECTED)) & (predecessor >= 0)
    row_start = (torch.arange(rows, device=segment_ids.device) * width)[:, None]
    row = torch.arange(rows, device=segment_ids.device)[:, None].expand(rows, width)
    slot = torch.where(segment_ids == REJECTED, row + rows, row)
    return (steps + row_start)[scored], (predecessor + row_start)[scored], slot[scored]


def pair_count(batch: dict[str, torch.Tensor]) -> int:
    """How many pairs (preference batch) or examples (SFT batch) a batch holds."""
    return int(batch["input_ids"].shape[0])


def sequence_tokens(batch: dict[str, torch.Tensor]) -> int:
    """Tokens of the sequences a batch stands for, without padding: ``prompt + chosen`` and
    ``prompt + rejected`` per pair (the prompt counted twice, as two separate sequences would
    have it, so throughput compares across layouts and with other trainers); ``prompt + chosen``
    per SFT example."""
    if "segment_ids" in batch:
        segments = batch["segment_ids"]
        return int((segments != PADDING).sum() + (segments == PROMPT).sum())
    return int(batch["attention_mask"].sum())


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

