"""Batch layout: 2B right-padded rows, chosen first, loss mask on answer tokens only."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from dpokit.data.collate import collate_preference, collate_sft  # noqa: E402
from dpokit.data.tokenize import TokenizedPair  # noqa: E402

PAD = 0

PAIRS = [
    TokenizedPair(prompt_ids=[11, 12, 13], chosen_ids=[21, 22], rejected_ids=[31]),
    TokenizedPair(prompt_ids=[14, 15], chosen_ids=[23], rejected_ids=[32, 33, 34, 35]),
]


def test_preference_rows_are_prompt_plus_answer_chosen_first_right_padded():
    batch = collate_preference(PAIRS, PAD)
    assert batch["input_ids"].tolist() == [
        [11, 12, 13, 21, 22, PAD],
        [14, 15, 23, PAD, PAD, PAD],
        [11, 12, 13, 31, PAD, PAD],
        [14, 15, 32, 33, 34, 35],
    ]
    assert batch["attention_mask"].tolist() == [
        [1, 1, 1, 1, 1, 0],
        [1, 1, 1, 0, 0, 0],
        [1, 1, 1, 1, 0, 0],
        [1, 1, 1, 1, 1, 1],
    ]
    assert batch["loss_mask"].dtype == torch.bool
    assert batch["loss_mask"].int().tolist() == [
        [0, 0, 0, 1, 1, 0],
        [0, 0, 1, 0, 0, 0],
        [0, 0, 0, 1, 0, 0],
        [0, 0, 1, 1, 1, 1],
    ]
    assert batch["input_ids"].dtype == torch.long
    assert "index" not in batch


def test_loss_mask_counts_equal_answer_lengths_and_never_touch_padding():
    batch = collate_preference(PAIRS, pad_token_id=99)
    answers = [len(p.chosen_ids) for p in PAIRS] + [len(p.rejected_ids) for p in PAIRS]
    assert batch["loss_mask"].sum(1).tolist() == answers
    assert not (batch["loss_mask"] & (batch["attention_mask"] == 0)).any()
    assert (batch["input_ids"][batch["attention_mask"] == 0] == 99).all()


def test_indexed_examples_carry_their_dataset_positions():
    batch = collate_preference([(7, PAIRS[0]), (3, PAIRS[1])], PAD)
    assert batch["index"].tolist() == [7, 3]
    assert batch["input_ids"].tolist() == collate_preference(PAIRS, PAD)["input_ids"].tolist()


def test_sft_rows_are_prompt_plus_chosen_with_loss_on_the_answer():
    batch = collate_sft([(0, PAIRS[0]), (1, PAIRS[1])], PAD)
    assert batch["input_ids"].tolist() == [[11, 12, 13, 21, 22], [14, 15, 23, PAD, PAD]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]
    assert batch["loss_mask"].int().tolist() == [[0, 0, 0, 1, 1], [0, 0, 1, 0, 0]]
    assert batch["index"].tolist() == [0, 1]


def test_empty_batch_is_an_error():
    with pytest.raises(ValueError):
        collate_preference([], PAD)
