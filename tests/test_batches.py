"""The length-grouped epoch order (training.group_by_length)."""

import numpy as np

from dpokit.data.batches import LENGTH_GROUP_BATCHES, epoch_order, length_grouped_order


def _padded(lengths, order, batch_size):
    """Tokens a run pays for: each micro-batch padded to its longest pair."""
    return sum(max(lengths[i] for i in order[s : s + batch_size]) * len(order[s : s + batch_size])
               for s in range(0, len(order), batch_size))


def test_grouped_order_is_a_seeded_permutation_with_less_padding():
    rng = np.random.default_rng(0)
    lengths = rng.lognormal(4.5, 0.6, size=1403).astype(int).tolist()  # skewed, like hh-rlhf turns
    batch = 4
    order = length_grouped_order(lengths, batch, seed=42, epoch=0)
    assert sorted(order) == list(range(len(lengths)))
    assert order == length_grouped_order(lengths, batch, seed=42, epoch=0)  # resumable: a pure function
    assert order != length_grouped_order(lengths, batch, seed=42, epoch=1)
    assert order != length_grouped_order(lengths, batch, seed=7, epoch=0)
    plain = epoch_order(len(lengths), 42, 0)
    assert order[-(len(lengths) % batch):] == plain[-(len(lengths) % batch):]  # the short batch stays last
    real = sum(lengths)
    waste_plain = 1 - real / _padded(lengths, plain, batch)
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
