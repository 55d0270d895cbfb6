"""Load preference or SFT data from files, directories, the demo set or a LLaMA-Factory registry.

:func:`load_preference_data` reads every source, detects (or is told) its format, turns
each record into :class:`PreferencePair`s and leaves out what cannot be trained on, counting
each reason in :attr:`LoadResult.dropped`:

``empty_answer``        the chosen or the rejected answer has no text
``empty_prompt``        the prompt has no user text
``identical_answers``   chosen == rejected
``duplicate_pair``      the same prompt, chosen and rejected were seen before (in any source)
``tie``                 rated answers with equal ratings (see :mod:`dpokit.data.ranking`)
``too_few_answers``     a rated record with fewer than two answers
``no_shared_prompt``    two full conversations that differ before their last user turn
``unparseable_record``  a bad record, skipped because ``skip_bad_records`` is set

A bad record (invalid JSON, a missing field, a wrong type, an unknown role) is an error by
default; ``skip_bad_records=True`` counts and lists it instead. A source that yields no
usable pair at all is always an error. Input files are only read, never written.

:func:`load_sft_data` does the same for supervised fine-tuning: records in the SFT formats of
:mod:`dpokit.data.sft_formats` (prompt/completion, chat messages, alpaca, ShareGPT) or in
any preference format (their prompt and chosen answer) become :class:`SftExample`s, from the
same containers, with the same errors, ``skip_bad_records`` and ``max_samples``. Its drop
reasons: ``empty_completion`` (the answer has no text), ``empty_prompt``,
``duplicate_example`` (the same prompt and completion seen before, in any source),
``undesirable_completion`` (a KTO-style ``label`` of false), ``unparseable_record``, and a
preference format's own (``tie``, ``no_shared_prompt``, ...).

What is kept and why the rest is dropped is decided by :mod:`dpokit.data.collect`; writing
canonical JSONL is :mod:`dpokit.data.write`.
"""

from __future__ import annotations

import difflib
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from importlib import resources
from itertools import chain
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from dpokit.config import DataConfig
from dpokit.data.collect import DEMO_SETS, PREFERENCE, PREFERENCE_DEMO_SETS, SFT, SFT_DEMO_SETS, Collector, Kind
from dpokit.data.fields import RecordError
from dpokit.data.formats import FORMAT_NAMES, FormatOptions
from dpokit.data.ranking import PAIR_STRATEGIES
from dpokit.data.readers import RawRecord, data_files, is_saved_dataset, read_records
from dpokit.data.registry import read_registry, resolve_dataset
from dpokit.data.sft_formats import SFT_FORMAT_NAMES, SFT_ONLY_FORMATS, detect_sft_format
from dpokit.data.types import LoadResult, SftLoadResult, prompt_key
from dpokit.errors import DpokitError

__all__ = ["FORMAT_NAMES", "SFT_FORMAT_NAMES", "DEMO_SETS", "load_preference_data", "load_from_config",
           "load_sft_data", "load_sft_from_config"]

DETECT_RECORDS = 20
"""Format detection looks at up to this many readable records at the start of a file."""

@dataclass(frozen=True)
class _Source:
    """One file (or saved dataset dir) to read, and how."""

    path: Path
    format: str
    columns: Mapping[str, str] = field(default_factory=dict)
    optional_columns: frozenset[str] = frozenset()
    tags: Mapping[str, str] | None = None


def load_preference_data(
    sources: Sequence[str],
    *,
    format: str = "auto",
    columns: Mapping[str, str] | None = None,
    registry: str | None = None,
    skip_bad_records: bool = False,
    pair_strategy: str = "best_vs_worst",
    max_samples: int | None = None,
) -> LoadResult:
    """Read preference pairs from ``sources``.

    Args:
        sources: files, directories (every data file in it, or a ``datasets`` save_to_disk
            dir), ``demo:train`` / ``demo:heldout``, or with ``registry`` dataset names.
        format: one of :data:`FORMAT_NAMES`; ``auto`` detects per file.
        columns: role -> the file's column, e.g. ``{"prompt": "question", "chosen": "chatgpt"}``
            (roles: :data:`~dpokit.data.formats.COLUMN_ROLES`). Not used for registry datasets,
            whose entries carry their own.
        registry: a LLaMA-Factory ``dataset_info.json``.
        skip_bad_records: count and list unreadable records instead of failing.
        pair_strategy: how rated answers become pairs (``best_vs_worst``, ``best_vs_each``,
            ``all_pairs``; see :mod:`dpokit.data.ranking`).
        max_samples: stop after this many pairs in all (the first ones, in source order).
    """
    return _load(PREFERENCE, sources, format=format, columns=columns, registry=registry,
                 skip_bad_records=skip_bad_records, pair_strategy=pair_strategy, max_samples=max_samples)


def load_sft_data(
    sources: Sequence[str],
    *,
    format: str = "auto",
    columns: Mapping[str, str] | None = None,
    registry: str | None = None,
    skip_bad_records: bool = False,
    pair_strategy: str = "best_vs_worst",
    max_samples: int | None = None,
) -> SftLoadResult:
    """Read SFT examples (prompt + completion) from ``sources``; the arguments are those of
    :func:`load_preference_data`.

    ``format``: one of :data:`~dpokit.data.sft_formats.SFT_FORMAT_NAMES` (an SFT format or a
    preference format, whose chosen answers are the completions). ``sources`` may also be
    ``demo:sft``; with ``registry``, non-ranking (instruction) datasets are taken too.
    ``max_samples`` caps the examples.
    """
    return _load(SFT, sources, format=format, columns=columns, registry=registry,
                 skip_bad_records=skip_bad_records, pair_strategy=pair_strategy, max_samples=max_samples)


def _load(kind: Kind, sources: Sequence[str], *, format: str, columns: Mapping[str, str] | None,
          registry: str | None, skip_bad_records: bool, pair_strategy: str, max_samples: int | None):
    if isinstance(sources, (str, Path)):
        sources = [str(sources)]
    format = _check_format(format, kind)
    columns = _check_columns(columns or {}, kind)
    if pair_strategy not in PAIR_STRATEGIES:
        raise DpokitError(f"unknown pair strategy '{pair_strategy}'", f"use one of: {', '.join(PAIR_STRATEGIES)}")
    if max_samples is not None and max_samples <= 0:
        raise DpokitError(f"max_samples must be a positive number, got {max_samples}")
    if not sources:
        demo = "demo:sft" if kind is SFT else "demo:train"
        raise DpokitError(f"no {kind.name} data given", f"name at least one file, directory or {demo}")
    collector = Collector(kind, skip_bad_records=skip_bad_records, max_samples=max_samples)
    for spec in sources:
        for source in _resolve(str(spec), format, columns, registry, kind):
            options = FormatOptions(tags=source.tags, pair_strategy=pair_strategy)
            try:
                _load_file(source, options, collector)
            finally:
                collector.result.choices.update(_name_mapped_columns(options.choices, source.columns))
            if collector.full:
                return collector.result
    return collector.result


def load_from_config(data_cfg: DataConfig, seed: int = 42) -> tuple[LoadResult, LoadResult | None]:
    """Train and eval data as a config describes them.

    Eval comes from ``data.eval_files`` when given; else about ``data.eval_fraction`` of the
    train pairs is held out by a seeded shuffle of the distinct prompts, so that a prompt asked
    by several pairs is on one side only (same seed, same split; both parts keep file order);
    else there is no eval (None). After a split the train result keeps the load counts
    (records, dropped, errors) and the eval result's ``records`` is its number of pairs.
    ``data.max_samples`` caps the train load and the eval files' load each (before a split).
    """
    train = load_preference_data(data_cfg.train_files, **_config_options(data_cfg))
    if data_cfg.eval_files:
        return train, load_preference_data(data_cfg.eval_files, **_config_options(data_cfg))
    if not data_cfg.eval_fraction:
        return train, None
    train.pairs, eval_pairs = split_off_eval(train.pairs, data_cfg.eval_fraction, seed, "pairs")
    return train, LoadResult(pairs=eval_pairs, format=train.format, records=len(eval_pairs))


def load_sft_from_config(data_cfg: DataConfig, seed: int = 42) -> tuple[SftLoadResult, SftLoadResult | None]:
    """SFT train and eval examples as a config describes them (``stage: sft``).

    The same rules as :func:`load_from_config`: ``data.eval_files``, else a seeded
    ``data.eval_fraction`` of the train examples' prompts (the same split for the same seed), else no
    eval; ``data.max_samples`` caps each load. Files may be SFT or preference data.
    """
    train = load_sft_data(data_cfg.train_files, **_config_options(data_cfg))
    if data_cfg.eval_files:
        return train, load_sft_data(data_cfg.eval_files, **_config_options(data_cfg))
    if not data_cfg.eval_fraction:
        return train, None
    train.examples, eval_examples = split_off_eval(train.examples, data_cfg.eval_fraction, seed, "examples")
    return train, SftLoadResult(examples=eval_examples, format=train.format, records=len(eval_examples))


def _config_options(data_cfg: DataConfig) -> dict[str, Any]:
    return dict(
        format=data_cfg.format,
        columns=data_cfg.columns,
        registry=data_cfg.registry,
        skip_bad_records=data_cfg.skip_bad_records,
        pair_strategy=data_cfg.pair_strategy,
        max_samples=data_cfg.max_samples,
    )


def split_off_eval(items: list, fraction: float, seed: int, noun: str,
                   setting: str = "data.eval_fraction") -> tuple[list, list]:
    """(train, eval): a seeded ``fraction`` of the distinct prompts of ``items`` (pairs or SFT
    examples) held out whole, so no prompt is on both sides; the eval part holds about
    ``fraction`` of the items, and both parts keep their order. ``setting`` names where the
    fraction came from, for the error.
    """
    total = len(items)
    keys = [prompt_key(x) for x in items]
    distinct = list(dict.fromkeys(keys))
    n_eval = max(1, round(len(distinct) * fraction))
    if total < 2 or n_eval >= len(distinct):
        raise DpokitError(
            f"{setting}={fraction} leaves no training data ({total} {noun} loaded)",
            f"give more data, a smaller {setting}" + (", or data.eval_files" if setting.startswith("data.") else ""),
        )
    held_out = set(random.Random(seed).sample(distinct, n_eval))
    return ([x for x, k in zip(items, keys) if k not in held_out],
            [x for x, k in zip(items, keys) if k in held_out])


# --- options and sources ---------------------------------------------------------------


def _check_format(name: str, kind: Kind) -> str:
    canonical = (name or "auto").strip().lower().replace("-", "_")
    if kind is PREFERENCE and canonical in SFT_ONLY_FORMATS:
        raise DpokitError(f"'{name}' is an SFT data format, not a preference format",
                          "SFT data is for stage: sft (`dpokit data inspect --stage sft`); preference formats: "
                          + ", ".join(FORMAT_NAMES))
    if canonical not in kind.formats:
        close = difflib.get_close_matches(canonical, kind.formats, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        what = "SFT data format" if kind is SFT else "data format"
        raise DpokitError(f"unknown {what} '{name}'", f"{hint}formats: {', '.join(kind.formats)}")
    return canonical


def _check_columns(columns: Mapping[str, str], kind: Kind) -> dict[str, str]:
    roles = kind.column_roles
    for role, column in columns.items():
        if role not in roles:
            close = difflib.get_close_matches(role, roles, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise DpokitError(
                f"column map: unknown role '{role}' (in {role}={column})",
                f"{hint}a column map is role=your_column with roles: {', '.join(roles)}",
            )
        if not isinstance(column, str) or not column:
            raise DpokitError(f"column map: role '{role}' needs a column name, got {column!r}")
    return dict(columns)


def _resolve(spec: str, format: str, columns: Mapping[str, str], registry: str | None, kind: Kind,
             ) -> Iterator[_Source]:
    """The files one source spec stands for."""
    if spec.startswith("demo:"):
        yield _Source(_demo_path(spec, kind), format, columns)
        return
    if registry is not None:
        info = read_registry(registry)
        if spec in info or not Path(spec).exists():
            entry = resolve_dataset(registry, spec, info, sft=kind is SFT)
            paths = [entry.path] if not entry.path.is_dir() or is_saved_dataset(entry.path) else data_files(entry.path)
            for path in paths:
                yield _Source(path, entry.format, entry.columns, entry.optional_columns, entry.tags or None)
            return
    path = Path(spec)
    if not path.exists():
        hint = "check the path"
        if re.fullmatch(r"[\w.-]+/[\w.-]+", spec):
            hint = "no dataset hub is reachable: download the dataset and give its local file or directory"
        raise DpokitError(f"{spec}: file not found", hint)
    if path.is_dir() and not is_saved_dataset(path):
        for file in data_files(path):
            yield _Source(file, format, columns)
    else:
        yield _Source(path, format, columns)


def _demo_path(spec: str, kind: Kind) -> Path:
    name = spec.partition(":")[2]
    if name in SFT_DEMO_SETS and kind is not SFT:
        raise DpokitError(f"{spec} is SFT data (chat messages), not preference pairs",
                          f"use it with stage: sft (`dpokit data inspect --stage sft {spec}`); "
                          f"preference demo sets: {', '.join('demo:' + n for n in PREFERENCE_DEMO_SETS)}")
    if name not in kind.demo_sets:
        raise DpokitError(f"unknown demo set '{spec}'", f"use one of: {', '.join('demo:' + n for n in kind.demo_sets)}")
    path = Path(str(resources.files("dpokit.data") / "demo" / f"{name}.jsonl"))
    if not path.is_file():
        raise DpokitError(f"{spec}: the demo set is not installed ({path} is missing)", "reinstall dpokit")
    return path


# --- reading one file ------------------------------------------------------------------


def _name_mapped_columns(choices: Counter, columns: Mapping[str, str]) -> Counter:
    """Choices as the user's file names things: ``by chosen_id`` -> ``by safer_response_id`` under a column map."""
    named: Counter = Counter()
    for choice, count in choices.items():
        for role, column in columns.items():
            choice = choice.replace(f"by {role}", f"by {column}")
        named[choice] += count
    return named


def _apply_columns(record: dict, columns: Mapping[str, str], optional: frozenset[str]) -> dict:
    """The record with the mapped columns renamed to their roles."""
    if not columns:
        return record
    mapped = set(columns.values())
    out = {k: v for k, v in record.items() if k not in mapped}
    for role, column in columns.items():
        if column in record:
            out[role] = record[column]
        elif role not in optional:
            present = ", ".join(map(str, record)) or "none"
            raise RecordError(
                column,
                f"not in the record (the column map takes '{role}' from it); the record's columns are: {present}",
                "fix the column map (data.columns, role=column) to name existing columns",
            )
    return out


def _detect(head: list[RawRecord], source: _Source, kind: Kind) -> str:
    """The format of a file from its first readable records."""
    first: RawRecord | None = None
    for raw in head:
        if raw.data is None:
            continue
        if first is None:
            first = raw
            try:
                _apply_columns(raw.data, source.columns, source.optional_columns)
            except RecordError as err:  # a map naming a column the file lacks: a file error
                raise DpokitError(f"{raw.where}: {err.describe()}", err.hint) from None
        if source.format != "auto":
            return source.format
        try:
            found = kind.detect(_apply_columns(raw.data, source.columns, source.optional_columns))
        except RecordError:
            continue
        if found:
            return found
    if first is None:  # nothing readable: the records' own errors will say why
        return source.format
    keys = ", ".join(map(str, first.data or {})) or "none"
    what = "SFT" if kind is SFT else "preference"
    hint = kind.format_hint + ", ".join(kind.formats[1:])
    sft_format = detect_sft_format(first.data or {}) if kind is PREFERENCE else None
    if sft_format:
        hint = (f"it looks like SFT data ({sft_format}: no chosen/rejected answers to compare); train on it with "
                f"stage: sft (`dpokit data inspect --stage sft`), or {hint[0].lower()}{hint[1:]}")
    raise DpokitError(f"{first.where}: cannot tell the {what} data format (the record's fields: {keys})", hint)


def _load_file(source: _Source, options: FormatOptions, collector: "Collector") -> None:
    records = read_records(source.path)
    head: list[RawRecord] = []
    readable = 0
    for raw in records:
        head.append(raw)
        readable += raw.data is not None
        if readable >= DETECT_RECORDS:
            break
    format_name = _detect(head, source, collector.kind)
    collector.begin_source(source.path, format_name)
    for raw in chain(head, records):
        collector.result.records += 1
        try:
            if raw.error is not None:
                raise raw.error
            record = _apply_columns(raw.data or {}, source.columns, source.optional_columns)
            outcomes = collector.kind.normalise(record, format_name, options)
        except RecordError as err:
            collector.bad_record(raw.where, err)
            continue
        for outcome in outcomes:
            collector.add(outcome, raw.where)
            if collector.full:
                return
    collector.end_source()


