"""Writing normalised data as canonical JSON Lines: preference pairs in TRL's conversational
form, SFT examples as ``{"messages": [...]}``; never over one of the input files."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Iterable, Sequence

from dpokit.data.types import PreferencePair, SftExample
from dpokit.errors import DpokitError
from dpokit.outputs import write_jsonl


def write_pairs_jsonl(pairs: Iterable[PreferencePair], out: str | Path) -> int:
    """Write pairs as TRL's conversational JSON Lines; returns the number written.

    Each line is ``{"prompt": [...], "chosen": [...], "rejected": [...]}`` plus the pair's
    scalar meta fields under their own names (a meta key whose values mix types is written
    as text, so that ``datasets`` can read the column). UTF-8, non-ASCII kept as is. The
    file is written by :func:`dpokit.outputs.write_jsonl` (atomic for a regular file, written
    through for ``/dev/stdout`` or a FIFO); ``out`` must not be one of the files the pairs
    were loaded from.
    """
    return _write_items(pairs, out, reserved=("prompt", "chosen", "rejected"))


def write_sft_jsonl(examples: Iterable[SftExample], out: str | Path) -> int:
    """Write SFT examples as canonical chat JSON Lines; returns the number written.

    Each line is ``{"messages": [...]}`` (the prompt's messages then the completion's, the
    form :func:`load_sft_data` reads back as ``messages``) plus the example's scalar meta
    fields, as :func:`write_pairs_jsonl` writes them. ``out`` must not be an input file.
    """
    return _write_items(examples, out, reserved=("messages",))


def _write_items(items: Iterable[PreferencePair | SftExample], out: str | Path, reserved: tuple[str, ...]) -> int:
    """Each item's canonical JSON (``to_json``) after its scalar meta fields, as one JSONL file."""
    items = list(items)
    out = Path(out)
    _refuse_input_file(out, items)
    meta_casts = _meta_casts(items, reserved=reserved)
    rows = []
    for item in items:
        row: dict[str, Any] = {}
        for key, cast in meta_casts.items():
            value = item.meta.get(key)
            row[key] = None if value is None else cast(value)
        row.update(item.to_json())
        rows.append(row)
    write_jsonl(out, rows)
    return len(rows)


def _refuse_input_file(out: Path, items: Sequence[PreferencePair | SftExample]) -> None:
    if out.is_dir():
        raise DpokitError(f"{out}: is a directory", "give a file name such as pairs.jsonl")
    if out.exists():
        for src in {source_path(item.source) for item in items if item.source}:
            if src.exists() and os.path.samefile(src, out):
                raise DpokitError(f"{out}: refusing to overwrite an input file", "write to a new file name")


_SOURCE = re.compile(r"^(?P<path>.*?)(?::\d+(?: \(record \d+\))?|: record \d+)$")


def source_path(source: str) -> Path:
    """The file a pair's ``source`` (``path:line``, ``path:line (record N)``, ``path: record N``) names."""
    match = _SOURCE.match(source)
    return Path(match.group("path") if match else source)


def _meta_casts(items: Sequence[PreferencePair | SftExample],
                reserved: tuple[str, ...] = ("prompt", "chosen", "rejected")) -> dict[str, Any]:
    """Meta key -> how to write its values, so each column has one type ``datasets`` can read.

    ``reserved``: the keys the record's own fields use (a meta field of that name is not written).
    """
    kinds: dict[str, set[type]] = {}
    for item in items:
        for key, value in item.meta.items():
            if key in reserved or value is None:
                continue
            kinds.setdefault(key, set()).add(type(value))
    casts: dict[str, Any] = {}
    for key, types in kinds.items():
        if len(types) == 1 and types <= {str, int, float, bool}:
            casts[key] = lambda v: v
        elif types <= {int, float}:
            casts[key] = float
        else:
            casts[key] = lambda v: v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)
    return casts
