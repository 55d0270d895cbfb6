"""``human``: people decide, on ``dpokit serve``'s label page, which of two candidates is better.

Used by ``dpokit iterate``: a round's candidate pairs are queued in a labels dir
(:class:`dpokit.serve.labels.LabelStore`, the store the page writes to), the loop stops, people
label them (``dpokit serve MODEL --labels-dir DIR``, page ``/label``), and a rerun reads the
decisions back: *left* / *right* are preference pairs (the better answer as the person left it,
edits included), *tie* and *skip* give none. Nothing here writes a decision; only the page does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence, Union

from dpokit.data.types import Message
from dpokit.errors import DpokitError


@dataclass
class LabelStatus:
    """What people have decided about the queued prompts of one labels dir.

    ``records`` maps a queued prompt's item id to its decision record (a preference line of
    ``preferences.jsonl`` or a tie/skip line of ``decisions.jsonl``); prompts not in it are pending.
    """

    item_ids: list[str]
    records: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def pending(self) -> int:
        return sum(1 for key in self.item_ids if key not in self.records)

    @property
    def pairs(self) -> int:
        return sum(1 for key in self.item_ids if self.records.get(key, {}).get("decision") in ("left", "right"))

    @property
    def complete(self) -> bool:
        return self.pending == 0


class HumanJudge:
    """People labelling on ``dpokit serve``'s page; only ``dpokit iterate`` can wait for them."""

    name = "human"

    def judge(self, prompts, answers_a, answers_b):
        raise DpokitError("the human judge works in dpokit iterate (its candidates go to dpokit serve's label page)",
                          "to compare two models by hand, use dpokit serve's /compare page; here use --judge "
                          "rm:PATH, dpo:RUN_DIR, openai:URL#MODEL or python:FILE.py:FUNCTION")

    @staticmethod
    def queue(labels_dir: Union[str, Path], prompts: Sequence[list[Message]], pairs: Sequence[tuple[str, str]],
              model: str, sampling: Optional[dict[str, Any]] = None) -> list[str]:
        """Queue each prompt with its two candidates (idempotent: a queued prompt is kept as it is).

        Returns the item ids, in the prompts' order.
        """
        from dpokit.serve.labels import Candidate, LabelStore

        with LabelStore(labels_dir) as store:
            ids = []
            for prompt, (left, right) in zip(prompts, pairs):
                item, _ = store.add_prompt(prompt, candidates=[Candidate(model, left, dict(sampling or {})),
                                                               Candidate(model, right, dict(sampling or {}))],
                                           added_by="dpokit iterate")
                ids.append(item.id)
            return ids

    @staticmethod
    def status(labels_dir: Union[str, Path], prompts: Sequence[list[Message]]) -> LabelStatus:
        """The decisions recorded so far for ``prompts`` (as they were queued)."""
        from dpokit.serve.labels import LabelStore, item_id

        ids = [item_id(p) for p in prompts]
        wanted = set(ids)
        with LabelStore(labels_dir) as store:
            records = {}
            for record in store.preferences() + store.decisions():
                key = record.get("item_id")
                if key in wanted:
                    records.setdefault(key, record)  # the first decision counts, as the store keeps it
        return LabelStatus(ids, records)
