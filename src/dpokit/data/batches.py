"""The order and grouping of a run's batches: epochs, micro-batches, optimizer steps.

One optimizer *step* is ``gradient_accumulation_steps`` micro-batches of
``per_device_train_batch_size`` pairs on each process (fewer at an epoch's end). The data
order of epoch *e* is a pure function of ``(seed, e)`` (with ``training.group_by_length``,
of the lengths and the batch size too), so a resumed run skips exactly the
micro-batches the killed run had consumed. Under ``accelerate launch`` the loaders are
sharded across processes.
"""

from __future__ import annotations

from functools import partial
from itertools import islice
from typing import TYPE_CHECKING, Iterable, Iterator, Sequence

if TYPE_CHECKING:
    from accelerate import Accelerator

    from dpokit.config import Config
    from dpokit.data.prepare import RunData
    from dpokit.reference import SplitToScore


def epoch_order(num_examples: int, seed: int, epoch: int) -> list[int]:
    """The shuffled order of epoch ``epoch``: a pure function of ``(seed, epoch)``."""
    import numpy as np

    return np.random.default_rng([seed % 2**32, epoch]).permutation(num_examples).tolist()


LENGTH_GROUP_BATCHES = 50
"""Micro-batches per pool that ``length_grouped_order`` sorts by length: large enough to find
similar lengths, small enough that an epoch still mixes short and long pairs throughout."""


def length_grouped_order(lengths: Sequence[int], batch_size: int, seed: int, epoch: int) -> list[int]:
    """An epoch order whose consecutive ``batch_size`` runs hold pairs of similar length.

    The shuffled order of :func:`epoch_order` is cut into pools of ``LENGTH_GROUP_BATCHES``
    micro-batches; each pool is sorted by length and cut into micro-batches, and the full
    micro-batches are shuffled again, so long and short batches alternate in no fixed pattern.
    The ``len(lengths) % batch_size`` left over keep the end, so every other run of
    ``batch_size`` stays one micro-batch. A pure function of its arguments, like ``epoch_order``.
    """
    import numpy as np

    order = epoch_order(len(lengths), seed, epoch)
    whole = len(order) - len(order) % batch_size
    pool = batch_size * LENGTH_GROUP_BATCHES
    batches: list[list[int]] = []
    for start in range(0, whole, pool):
        ranked = sorted(order[start : min(start + pool, whole)], key=lambda i: -lengths[i])
        batches += [ranked[i : i + batch_size] for i in range(0, len(ranked), batch_size)]
    shuffled = np.random.default_rng([seed % 2**32, epoch, 1]).permutation(len(batches)).tolist()
    return [i for b in shuffled for i in batches[b]] + order[whole:]


def step_groups(micro_batches: Iterable[dict], accumulation: int) -> Iterator[list[dict]]:
    """Consecutive micro-batches grouped into optimizer steps of ``accumulation`` (the last may be shorter)."""
    iterator = iter(micro_batches)
    while group := list(islice(iterator, accumulation)):
        yield group


class Batches:
    """The prepared (sharded, device-placing) batches of a run's train and eval pairs.

    Each batch carries ``index`` (the pairs' positions) so precomputed reference
    log-probs can be looked up.
    """

    def __init__(self, accelerator: "Accelerator", config: "Config", data: "RunData"):
        from dpokit.data.collate import collate_preference, collate_sft

        self.accelerator, self.config, self.data = accelerator, config, data
        collate = collate_sft if config.stage == "sft" else collate_preference
        self.collate = partial(collate, pad_token_id=data.pad_token_id)

    def _loader(self, examples: list, order: list[int], batch_size: int, skip: int = 0):
        import torch
        from torch.utils.data import DataLoader

        loader = DataLoader(
            list(enumerate(examples)), batch_size=batch_size, sampler=order, collate_fn=self.collate,
            # Its own generator: starting an iterator must not draw from the global RNG
            # (a resumed run starts one at a different moment than the run it continues).
            generator=torch.Generator().manual_seed(self.config.training.seed),
        )
        loader = self.accelerator.prepare_data_loader(loader)
        return self.accelerator.skip_first_batches(loader, skip) if skip else loader

    def train_order(self, epoch: int) -> list[int]:
        """The positions of the train pairs in epoch ``epoch``'s order."""
        training = self.config.training
        if not training.group_by_length:
            return epoch_order(len(self.data.train), training.seed, epoch)
        from dpokit.data.collate import row_length

        lengths = [row_length(p) for p in self.data.train]
        return length_grouped_order(lengths, training.per_device_train_batch_size, training.seed, epoch)

    def eval_order(self) -> list[int]:
        """Dataset order; longest first with ``training.group_by_length`` (eval figures are means over pairs)."""
        positions = list(range(len(self.data.eval)))
        if not self.config.training.group_by_length:
            return positions
        from dpokit.data.collate import row_length

        return sorted(positions, key=lambda i: -row_length(self.data.eval[i]))

    def train(self, epoch: int, skip: int = 0):
        """Epoch ``epoch``'s micro-batches on this process, from the ``skip``-th on."""
        return self._loader(self.data.train, self.train_order(epoch), self.config.training.per_device_train_batch_size,
                            skip)

    def eval(self):
        return self._loader(self.data.eval, self.eval_order(), self.config.training.per_device_eval_batch_size)

    def reference_splits(self) -> dict[str, "SplitToScore"]:
        """What the reference precompute scores: epoch 0's train batches and the eval batches."""
        from dpokit.reference import SplitToScore

        training = self.config.training
        return {"train": SplitToScore(self.data.train, lambda: self.train(epoch=0),
                                      training.per_device_train_batch_size, shuffled=True),
                "eval": SplitToScore(self.data.eval, self.eval, training.per_device_eval_batch_size, shuffled=False)}
