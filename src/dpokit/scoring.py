"""Pair scoring: the summed log-probs of both answers of every pair under a model. The one scoring loop.

The reference precompute (on the very batches training will see, across processes),
``dpokit eval`` and the DPO judge all call :func:`score_pairs`. The batch layout is
:mod:`dpokit.data.collate`'s and the log-probs :func:`dpokit.objective.policy_logps`', so a
new layout changes those, not this loop or its callers.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Optional, Sequence

if TYPE_CHECKING:
    import torch
    from accelerate import Accelerator

    from dpokit.data.tokenize import TokenizedPair


@dataclass
class PairScores:
    """Per-pair results, in dataset order: ``chosen``/``rejected`` ``[N]`` float32 summed answer
    log-probs, ``chosen_tokens``/``rejected_tokens`` ``[N]`` long answer lengths (scored tokens)."""

    chosen: "torch.Tensor"
    rejected: "torch.Tensor"
    chosen_tokens: "torch.Tensor"
    rejected_tokens: "torch.Tensor"

    def to_lists(self) -> dict[str, list]:
        return {"chosen": self.chosen.tolist(), "rejected": self.rejected.tolist(),
                "chosen_tokens": [int(n) for n in self.chosen_tokens.tolist()],
                "rejected_tokens": [int(n) for n in self.rejected_tokens.tolist()]}


def length_sorted_batches(examples: Sequence["TokenizedPair"], pad_token_id: int, batch_size: int) -> list[dict]:
    """Collated batches of ``examples``, longest first (least padding), each with ``index`` ``[B]``."""
    from dpokit.data.collate import collate_preference, row_length

    order = sorted(range(len(examples)), key=lambda i: row_length(examples[i]), reverse=True)
    return [collate_preference([(i, examples[i]) for i in order[start:start + batch_size]], pad_token_id)
            for start in range(0, len(order), batch_size)]


def score_pairs(
    model,
    batches: Iterable[dict],
    num_pairs: int,
    *,
    chunk_size: int = 1024,
    accelerator: Optional["Accelerator"] = None,
    adapter_disabled: bool = False,
    progress: Optional[str] = None,
) -> PairScores:
    """Score every pair of ``batches`` (preference batches carrying ``index``) with ``model``.

    Runs without gradients, in eval mode (dropout off; the mode is restored after), and with
    ``adapter_disabled`` a PEFT model's adapter switched off. With an ``accelerator`` each
    process scores its shard under the accelerator's autocast and the results are combined,
    so every process ends with all ``num_pairs`` values (a pair two processes both scored,
    from accelerate's even-batch padding, is averaged). ``progress`` names a progress bar.
    Raises RuntimeError if some pair was never scored (the batches do not cover the data).
    """
    import torch

    from dpokit.objective import policy_logps
    from dpokit.progress import progress as progress_bar
    from dpokit.reference import disabled_adapter

    device = accelerator.device if accelerator is not None else next(model.parameters()).device
    totals = torch.zeros(5, num_pairs, dtype=torch.float64, device=device)  # chosen, rejected, counts x2, seen
    main = accelerator is None or accelerator.is_main_process
    was_training = model.training
    model.eval()
    total = len(batches) if hasattr(batches, "__len__") else None
    bar = progress_bar(total, progress or "", "batch", enabled=progress is not None and main)
    autocast = accelerator.autocast() if accelerator is not None else nullcontext()
    try:
        with torch.no_grad(), autocast, disabled_adapter(model) if adapter_disabled else nullcontext():
            for batch in batches:
                batch = {key: value.to(device) for key, value in batch.items()}
                out = policy_logps(model, batch, chunk_size)  # each [B]
                columns = torch.stack([out.chosen.double(), out.rejected.double(), out.chosen_counts.double(),
                                       out.rejected_counts.double(), torch.ones_like(out.chosen, dtype=torch.float64)])
                totals.index_add_(1, batch["index"], columns.to(device))
                bar.update(1)
    finally:
        bar.close()
        model.train(was_training)
    if accelerator is not None and accelerator.num_processes > 1:
        totals = accelerator.reduce(totals, "sum")
    seen = totals[4]
    if bool((seen == 0).any()):
        raise RuntimeError(f"pair scoring: {int((seen == 0).sum())} of {num_pairs} pairs were never scored")
    means = (totals[:4] / seen).cpu()
    return PairScores(means[0].float(), means[1].float(), means[2].round().long(), means[3].round().long())


def score_examples(model, examples: Sequence["TokenizedPair"], pad_token_id: int, *, batch_size: int = 8,
                   **options: Any) -> PairScores:
    """:func:`score_pairs` over tokenised pairs, batched longest first (eval, judges)."""
    return score_pairs(model, length_sorted_batches(examples, pad_token_id, batch_size), len(examples), **options)
