"""Collecting what a load keeps: pairs (or SFT examples), drop reasons, bad records, per source.

What a load produces is a :class:`Kind`: preference pairs (:data:`PREFERENCE`) or SFT
examples (:data:`SFT`), each with its formats, column roles, demo sets and wording. The
:class:`Collector` decides, record outcome by outcome, what is kept and why the rest is
dropped (the reasons :mod:`dpokit.data.load` documents), and makes a source that yields
nothing usable an error.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from dpokit.data.fields import RecordError
from dpokit.data.formats import COLUMN_ROLES, FORMAT_NAMES, FormatOptions, detect_format, normalise
from dpokit.data.sft_formats import SFT_COLUMN_ROLES, SFT_FORMAT_NAMES, detect_sft_format, normalise_sft
from dpokit.data.types import LoadResult, Message, PreferencePair, SftExample, SftLoadResult
from dpokit.errors import DpokitError

PREFERENCE_DEMO_SETS = ("train", "heldout")
SFT_DEMO_SETS = ("sft",)
DEMO_SETS = PREFERENCE_DEMO_SETS + SFT_DEMO_SETS
"""``demo:NAME`` sets; ``demo:sft`` (chat messages) is SFT data only, the others are preference pairs."""
SKIP_HINT = "fix the record, or set data.skip_bad_records=true to skip bad records (they are counted and listed)"


@dataclass(frozen=True)
class Kind:
    """What a load produces: preference pairs or SFT examples (formats, columns, demo sets, words)."""

    name: str
    noun: str
    formats: tuple[str, ...]
    column_roles: tuple[str, ...]
    demo_sets: tuple[str, ...]
    detect: Callable[[dict], str | None]
    normalise: Callable[[dict, str, FormatOptions], list]
    format_hint: str
    empty_hint: str


PREFERENCE = Kind(
    name="preference", noun="preference pair", formats=FORMAT_NAMES, column_roles=COLUMN_ROLES,
    demo_sets=PREFERENCE_DEMO_SETS, detect=detect_format, normalise=normalise,
    format_hint="use prompt/chosen/rejected fields, map yours with data.columns "
                "(e.g. prompt=question,chosen=good,rejected=bad), or set data.format to one of: ",
    empty_hint="check that the file holds preference pairs with distinct, non-empty answers",
)
SFT = Kind(
    name="sft", noun="SFT example", formats=SFT_FORMAT_NAMES, column_roles=SFT_COLUMN_ROLES,
    demo_sets=PREFERENCE_DEMO_SETS + SFT_DEMO_SETS, detect=detect_sft_format, normalise=normalise_sft,
    format_hint="use messages (a conversation ending with the assistant), prompt/completion, alpaca "
                "instruction/output, ShareGPT conversations or preference prompt/chosen/rejected fields; map yours "
                "with data.columns (e.g. prompt=question,completion=reply), or set data.format to one of: ",
    empty_hint="check that the file holds prompts with non-empty answers",
)


class Collector:
    """Accumulates pairs (or SFT examples), drop counts and skipped-record errors across sources."""

    def __init__(self, kind: Kind, skip_bad_records: bool, max_samples: int | None):
        self.kind = kind
        self.skip_bad_records = skip_bad_records
        self.max_samples = max_samples
        self.result: LoadResult | SftLoadResult = SftLoadResult() if kind is SFT else LoadResult()
        self.kept: list = self.result.examples if kind is SFT else self.result.pairs
        self._seen: set[bytes] = set()
        self._formats: list[str] = []
        self._path: Path | None = None
        self._start = (0, 0, Counter(), 0)

    @property
    def full(self) -> bool:
        return self.max_samples is not None and len(self.kept) >= self.max_samples

    def begin_source(self, path: Path, format_name: str) -> None:
        self._path = path
        if format_name not in self._formats:
            self._formats.append(format_name)
            self.result.format = ", ".join(self._formats)
        r = self.result
        self._start = (len(self.kept), r.records, Counter(r.dropped), len(r.errors))

    def end_source(self) -> None:
        """A source that gave no usable pair (or example) is an error, whatever the reason."""
        r = self.result
        kept0, records0, dropped0, errors0 = self._start
        if len(self.kept) > kept0:
            return
        records = r.records - records0
        dropped = r.dropped - dropped0
        why = ", ".join(f"{reason}: {n}" for reason, n in dropped.most_common()) or "no records"
        message = f"{self._path}: no usable {self.kind.noun} ({records} records read; dropped: {why})"
        if len(r.errors) > errors0:
            message += f"\n  first bad record: {r.errors[errors0]}"
        raise DpokitError(message, self.kind.empty_hint)

    def bad_record(self, where: str, err: RecordError) -> None:
        message = f"{where}: {err.describe()}"
        if not self.skip_bad_records:
            raise DpokitError(message, err.hint or SKIP_HINT)
        self.result.dropped["unparseable_record"] += 1
        self.result.errors.append(message)

    def add(self, outcome: PreferencePair | SftExample | str, where: str) -> None:
        if isinstance(outcome, str):
            self.result.dropped[outcome] += 1
            return
        outcome.source = where
        reason = self._sft_drop_reason(outcome) if self.kind is SFT else self._drop_reason(outcome)
        if reason:
            self.result.dropped[reason] += 1
        else:
            self.kept.append(outcome)

    def _sft_drop_reason(self, example: SftExample) -> str | None:
        if not _has_text(example.completion):
            return "empty_completion"
        if not any(m["role"] == "user" and m["content"].strip() for m in example.prompt):
            return "empty_prompt"
        if self._seen_before([example.prompt, example.completion]):
            return "duplicate_example"
        return None

    def _seen_before(self, parts: list) -> bool:
        key = hashlib.blake2b(json.dumps(parts, ensure_ascii=False).encode("utf-8"), digest_size=16).digest()
        if key in self._seen:
            return True
        self._seen.add(key)
        return False

    def _drop_reason(self, pair: PreferencePair) -> str | None:
        if not _has_text(pair.chosen) or not _has_text(pair.rejected):
            return "empty_answer"
        if not any(m["role"] == "user" and m["content"].strip() for m in pair.prompt):
            return "empty_prompt"
        if pair.chosen == pair.rejected:
            return "identical_answers"
        if self._seen_before([pair.prompt, pair.chosen, pair.rejected]):
            return "duplicate_pair"
        return None


def _has_text(messages: list[Message]) -> bool:
    return any(m["content"].strip() for m in messages)


def _has_text(messages: list[Message]) -> bool:
    return any(m["content"].strip() for m in messages)
