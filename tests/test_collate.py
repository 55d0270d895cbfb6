"""Batch layout: one prompt + chosen + rejected row per pair, and its split into two rows per pair."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from dpokit.data.collate import (  # noqa: E402
    CHOSEN, PADDING, PROMPT, REJECTED, collate_preference, collate_sft, pair_count, sequence_tokens,
    shared_answer_tokens, shared_attention, split_shared_rows,
)
from dpokit.data.tokenize import TokenizedPair  # noqa: E402

PAD = 0
P, C, R, X = PROMPT, CHOSEN, REJECTED, PADDING

PAIRS = [
    TokenizedPair(prompt_ids=[11, 12, 13], chosen_ids=[21, 22], rejected_ids=[31]),
    TokenizedPair(prompt_ids=[14, 15], chosen_ids=[23], rejected_ids=[32, 33, 34, 35]),
]


def test_a_pair_is_one_row_prompt_chosen_rejected_with_rejected_positions_restarting_after_the_prompt():
    batch = collate_preference(PAIRS, PAD)
    assert batch["input_ids"].tolist() == [
        [11, 12, 13, 21, 22, 31, PAD],
        [14, 15, 23, 32, 33, 34, 35],
    ]
    assert batch["segment_ids"].tolist() == [[P, P, P, C, C, R, X], [P, P, C, R, R, R, R]]
    # The rejected answer sits where it would in its own prompt + rejected sequence.
    assert batch["position_ids"].tolist() == [[0, 1, 2, 3, 4, 3, 0], [0, 1, 2, 2, 3, 4, 5]]
    assert batch["input_ids"].dtype == batch["segment_ids"].dtype == batch["position_ids"].dtype == torch.long
    assert "index" not in batch
    assert pair_count(batch) == 2
    # Tokens of the four sequences the batch stands for: 5 + 3 + 4 + 6.
    assert sequence_tokens(batch) == 18


def test_split_rows_are_the_two_rows_per_pair_layout_chosen_first():
    rows = split_shared_rows(collate_preference(PAIRS, pad_token_id=99), pad_token_id=99)
    assert rows["input_ids"].tolist() == [
        [11, 12, 13, 21, 22, 99],
        [14, 15, 23, 99, 99, 99],
        [11, 12, 13, 31, 99, 99],
        [14, 15, 32, 33, 34, 35],
    ]
    assert rows["attention_mask"].tolist() == [
        [1, 1, 1, 1, 1, 0],
        [1, 1, 1, 0, 0, 0],
        [1, 1, 1, 1, 0, 0],
        [1, 1, 1, 1, 1, 1],
    ]
    assert rows["loss_mask"].dtype == torch.bool
    assert rows["loss_mask"].int().tolist() == [
        [0, 0, 0, 1, 1, 0],
        [0, 0, 1, 0, 0, 0],
        [0, 0, 0, 1, 0, 0],
        [0, 0, 1, 1, 1, 1],
    ]


def test_attention_is_causal_skips_padding_and_hides_the_chosen_answer_from_the_rejected_one():
    allowed = shared_attention(collate_preference(PAIRS, PAD)["segment_ids"])
    assert allowed.shape == (2, 1, 7, 7) and allowed.dtype == torch.bool
    assert allowed[0, 0].int().tolist() == [
        [1, 0, 0, 0, 0, 0, 0],
        [1, 1, 0, 0, 0, 0, 0],
        [1, 1, 1, 0, 0, 0, 0],
        [1, 1, 1, 1, 0, 0, 0],  # chosen sees the prompt and itself
        [1, 1, 1, 1, 1, 0, 0],
        [1, 1, 1, 0, 0, 1, 0],  # rejected sees the prompt and itself, not the chosen answer
        [1, 1, 1, 1, 1, 1, 1],  # a padding query: real tokens and itself (its output is never read)
    ]
    assert allowed[1, 0, 6].int().tolist() == [1, 1, 0, 1, 1, 1, 1]
    assert not allowed[0, 0, :6, 6].any()  # nothing attends to padding


def test_answer_tokens_are_predicted_by_the_previous_token_or_for_the_rejected_start_by_the_prompt_end():
    position, predecessor, slot = shared_answer_tokens(collate_preference(PAIRS, PAD)["segment_ids"])
    # Row 0 (flat 0..6): chosen at 3, 4; rejected at 5 (predicted from the prompt's last token, 2).
    # Row 1 (flat 7..13): chosen at 9; rejected at 10..13 (10 predicted from 8, the prompt's end).
    assert position.tolist() == [3, 4, 5, 9, 10, 11, 12, 13]
    assert predecessor.tolist() == [2, 3, 2, 8, 8, 10, 11, 12]
    assert slot.tolist() == [0, 0, 2, 1, 3, 3, 3, 3]  # chosen answers 0..B-1, rejected B..2B-1


def test_an_empty_prompt_leaves_each_answers_first_token_unscored_as_in_separate_rows():
    pair = TokenizedPair(prompt_ids=[], chosen_ids=[21, 22], rejected_ids=[31, 32])
    batch = collate_preference([pair], PAD)
    assert batch["position_ids"].tolist() == [[0, 1, 0, 1]]
    position, predecessor, slot = shared_answer_tokens(batch["segment_ids"])
    assert (position.tolist(), predecessor.tolist(), slot.tolist()) == ([1, 3], [0, 2], [0, 1])
    assert split_shared_rows(batch)["loss_mask"][:, 1:].sum().item() == 2


def test_an_empty_chosen_answer_scores_nothing_for_it():
    pair = TokenizedPair(prompt_ids=[5, 6], chosen_ids=[], rejected_ids=[31])
    position, predecessor, slot = shared_answer_tokens(collate_preference([pair], PAD)["segment_ids"])
    assert (position.tolist(), predecessor.tolist(), slot.tolist()) == ([2], [1], [1])


def test_indexed_examples_carry_their_dataset_positions():
    batch = collate_preference([(7, PAIRS[0]), (3, PAIRS[1])], PAD)
    assert batch["index"].tolist() == [7, 3]
    assert batch["input_ids"].tolist() == collate_preference(PAIRS, PAD)["input_ids"].tolist()
    assert pair_count(collate_sft(PAIRS, PAD)) == 2


def test_sft_rows_are_prompt_plus_chosen_with_loss_on_the_answer():
    batch = collate_sft([(0, PAIRS[0]), (1, PAIRS[1])], PAD)
    assert batch["input_ids"].tolist() == [[11, 12, 13, 21, 22], [14, 15, 23, PAD, PAD]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]
    assert batch["loss_mask"].int().tolist() == [[0, 0, 0, 1, 1], [0, 0, 1, 0, 0]]
    assert batch["index"].tolist() == [0, 1]
    assert sequence_tokens(batch) == 8


def test_empty_batch_is_an_error():
    with pytest.raises(ValueError):
        collate_preference([], PAD)
