"""The order and grouping of a run's batches: epochs, micro-batches, optimizer steps.

One optimizer *step* is ``gradient_accumulation_steps`` micro-batches of
``per_device_train_batch_size`` pairs on each process (fewer at an epoch's end). The data
order of epoch *e* is a pure function of ``(seed, e)``, so a resumed run skips exactly the
micro-batches the killed run had consumed. Under ``accelerate launch`` the loaders are
sharded across processes.
"""

from __future__ import annotations

from functools import partial
from itertools import islice
from typing import TYPE_CHECKING, Iterable, Iterator

if TYPE_CHECKING:
    from accelerate import Accelerator

    from dpokit.config import Config
    from dpokit.data.prepare import RunData
    from dpokit.reference import SplitToScore


def epoch_order(num_examples: int, seed: int, epoch: int) -> list[int]:
    """The shuffled order of epoch ``epoch``: a pure function of ``(seed, epoch)``."""
    import numpy as np

    return np.random.default_rng([seed % 2**32, epoch]).permutation(num_examples).tolist()


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

    def train(self, epoch: int, skip: int = 0):
        """Epoch ``epoch``'s micro-batches on this process, from the ``skip``-th on."""
        order = epoch_order(len(self.data.train), self.config.training.seed, epoch)
        return self._loader(self.data.train, order, self.config.training.per_device_train_batch_size, skip)

    def eval(self):
        return self._loader(self.data.eval, list(range(len(self.data.eval))), self.config.training.per_device_eval_batch_size)

    def reference_splits(self) -> dict[str, "SplitToScore"]:
        """What the reference precompute scores: epoch 0's train batches and the eval batches."""
        from dpokit.reference import SplitToScore

        training = self.config.training
        return {"train": SplitToScore(self.data.train, lambda: self.train(epoch=0),
                                      training.per_device_train_batch_size, shuffled=True),
                "eval": SplitToScore(self.data.eval, self.eval, training.per_device_eval_batch_size, shuffled=False)}
