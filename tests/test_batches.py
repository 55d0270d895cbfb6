"""The length-grouped epoch order (training.group_by_length)."""

from types import SimpleNamespace

import numpy as np
import pytest

from dpokit.config import build_config
from dpokit.data.batches import LENGTH_GROUP_BATCHES, Batches, epoch_order, length_grouped_order


def _padded(lengths, order, batch_size):
    """Tokens a run pays for: each micro-batch padded to its longest pair."""
    return sum(max(lengths[i] for i in order[s : s + batch_size]) * len(order[s : s + batch_size])
               for s in range(0, len(order), batch_size))


def _check_grouping(lengths, batch, seed=42, epoch=0):
    """Each full micro-batch is a run of one pool sorted by length; the remainder is epoch_order's tail."""
    order = length_grouped_order(lengths, batch, seed=seed, epoch=epoch)
    plain = epoch_order(len(lengths), seed, epoch)
    assert sorted(order) == list(range(len(lengths)))
    whole = len(lengths) - len(lengths) % batch
    assert order[whole:] == plain[whole:]
    pool = batch * LENGTH_GROUP_BATCHES
    sorted_pools = []  # each pool's pairs, longest first, cut into micro-batches
    for start in range(0, whole, pool):
        ranked = sorted(plain[start : min(start + pool, whole)], key=lambda i: -lengths[i])
        sorted_pools += [sorted(lengths[i] for i in ranked[k : k + batch]) for k in range(0, len(ranked), batch)]
    got = [sorted(lengths[i] for i in order[s : s + batch]) for s in range(0, whole, batch)]
    assert sorted(got) == sorted(sorted_pools)
    return order


@pytest.mark.parametrize("n, batch", [(0, 4), (3, 4), (4, 4), (200, 4), (201, 4), (437, 4), (1403, 4), (57, 1), (90, 7)])
def test_grouped_order_cuts_sorted_pools_into_batches(n, batch):
    lengths = np.random.default_rng(n).integers(5, 300, size=n).tolist()
    _check_grouping(lengths, batch)


def test_grouped_order_is_a_seeded_permutation_with_less_padding():
    rng = np.random.default_rng(0)
    lengths = rng.lognormal(4.5, 0.6, size=1403).astype(int).tolist()  # skewed, like hh-rlhf turns
    batch = 4
    order = _check_grouping(lengths, batch)
    assert order == length_grouped_order(lengths, batch, seed=42, epoch=0)  # resumable: a pure function
    assert order != length_grouped_order(lengths, batch, seed=42, epoch=1)
    assert order != length_grouped_order(lengths, batch, seed=7, epoch=0)
    real = sum(lengths)
    waste_plain = 1 - real / _padded(lengths, epoch_order(len(lengths), 42, 0), batch)
    waste_grouped = 1 - real / _padded(lengths, order, batch)
    assert waste_plain > 0.2 and waste_grouped < waste_plain / 4, (waste_plain, waste_grouped)


def test_grouped_batches_are_not_sorted_across_the_epoch():
    """Long and short micro-batches alternate: no pool runs longest to shortest."""
    lengths = list(range(4 * LENGTH_GROUP_BATCHES * 2))
    order = length_grouped_order(lengths, 4, seed=42, epoch=0)
    longest = [max(lengths[i] for i in order[s : s + 4]) for s in range(0, len(order), 4)]
    assert longest != sorted(longest) and longest != sorted(longest, reverse=True)
    rises = sum(b > a for a, b in zip(longest, longest[1:]))
    assert 0.3 < rises / (len(longest) - 1) < 0.7


def _pair(prompt, chosen, rejected):
    return SimpleNamespace(prompt_ids=[1] * prompt, chosen_ids=[2] * chosen, rejected_ids=[3] * rejected)


@pytest.mark.parametrize("stage", ["dpo", "sft"])
def test_batches_train_order_follows_the_setting(stage):
    """The run's loader order: epoch_order by default, grouped by each pair's row length when asked."""
    rng = np.random.default_rng(1)
    pairs = [_pair(int(p), int(c), int(r) if stage == "dpo" else 0)
             for p, c, r in rng.integers(3, 200, size=(120, 3))]
    data = SimpleNamespace(train=pairs, eval=[], pad_token_id=0)
    plain = Batches(None, build_config({"stage": stage}), data)
    assert plain.train_order(0) == epoch_order(len(pairs), 42, 0)
    grouped = Batches(None, build_config({"stage": stage}, ["training.group_by_length=true"]), data)
    rows = [len(p.prompt_ids) + len(p.chosen_ids) + len(p.rejected_ids) for p in pairs]  # prompt once
    assert grouped.train_order(1) == length_grouped_order(rows, 4, 42, 1) != plain.train_order(1)


def test_eval_order_is_longest_first_only_when_grouping():
    pairs = [_pair(p, c, r) for p, c, r in [(5, 9, 2), (40, 1, 1), (3, 3, 30), (5, 9, 2)]]
    data = SimpleNamespace(train=[], eval=pairs, pad_token_id=0)
    assert Batches(None, build_config({}), data).eval_order() == [0, 1, 2, 3]
    grouped = Batches(None, build_config({}, ["training.group_by_length=true"]), data)
    assert grouped.eval_order() == [1, 2, 0, 3]  # rows 42, 36, 16, 16: ties keep dataset order
