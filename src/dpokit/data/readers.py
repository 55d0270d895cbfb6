"""Containers: turn a file or directory into raw records, each with where it came from.

Supported: JSON Lines and JSON arrays (plain or gzip; the content decides which, not the
extension), CSV/TSV (plain or gzip), Parquet, a directory written by ``datasets``'
``save_to_disk``, and a directory of such files. JSON is parsed here with :mod:`json` so
that every record knows its line. Files are only ever opened for reading.

Errors about the whole file (missing, empty, not UTF-8, invalid JSON array) raise
:class:`DpokitError`; a JSON Lines line that cannot be parsed is yielded as a record with
an ``error``, so that ``skip_bad_records`` can skip it.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from dpokit.data.fields import RecordError, type_name
from dpokit.errors import DpokitError

JSON_SUFFIXES = (".jsonl", ".json", ".ndjson", ".jsonl.gz", ".json.gz", ".ndjson.gz")
CSV_SUFFIXES = (".csv", ".tsv", ".csv.gz", ".tsv.gz")
PARQUET_SUFFIXES = (".parquet",)
DATA_SUFFIXES = JSON_SUFFIXES + CSV_SUFFIXES + PARQUET_SUFFIXES

UTF8_HINT = "save the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8 in > out`)"


@dataclass
class RawRecord:
    """One record as read: ``where`` is ``path:line`` or ``path: record N`` (1-based).

    Exactly one of ``data`` (the record) and ``error`` (why it could not be read) is set.
    """

    where: str
    data: dict | None = None
    error: RecordError | None = None


def is_saved_dataset(path: Path) -> bool:
    """A directory written by ``datasets.Dataset(Dict).save_to_disk``."""
    return path.is_dir() and ((path / "state.json").is_file() or (path / "dataset_dict.json").is_file())


def data_files(directory: Path) -> list[Path]:
    """The data files directly inside ``directory`` (sorted by name)."""
    files = [p for p in sorted(directory.iterdir()) if p.is_file() and p.name.lower().endswith(DATA_SUFFIXES)]
    if not files:
        if (directory / "dataset_info.json").is_file():
            raise DpokitError(
                f"{directory}: directory has a dataset_info.json but is not a `datasets` save_to_disk dir",
                f"if it is a LLaMA-Factory data dir, set data.registry={directory / 'dataset_info.json'} "
                "and name the datasets in data.train_files",
            )
        raise DpokitError(
            f"{directory}: directory has no data files",
            f"put the data in it as {', '.join(DATA_SUFFIXES)} files, "
            "or point at a directory written by `datasets` save_to_disk",
        )
    return files


def read_records(path: Path) -> Iterator[RawRecord]:
    """The records of one data file or one saved ``datasets`` directory, in order."""
    if path.is_dir():
        return _dataset_records(path)
    name = path.name.lower()
    if name.endswith(PARQUET_SUFFIXES):
        return _parquet_records(path)
    if name.endswith(CSV_SUFFIXES):
        return _csv_records(path, delimiter="\t" if ".tsv" in name else ",")
    return _json_records(path)


def _read_text(path: Path) -> str:
    """The file's text: gunzipped if it is gzip, decoded as UTF-8 (a BOM is allowed)."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise DpokitError(f"{path}: cannot read file ({err.strerror})", "check the path and its permissions") from None
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as err:
            raise DpokitError(f"{path}: not a valid gzip file ({err})", "re-compress it with gzip, or decompress it") from None
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        bad = data[err.start : err.start + 1].hex()
        raise DpokitError(f"{path}:{line}: not UTF-8 text (byte 0x{bad} at offset {err.start})", UTF8_HINT) from None
    if not text.strip():
        raise DpokitError(f"{path}: file is empty", "give a file with at least one record")
    return text


def _json_records(path: Path) -> Iterator[RawRecord]:
    text = _read_text(path)
    if text.lstrip().startswith("["):
        yield from _json_array_records(path, text)
        return
    first = True
    for line_no, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        where = f"{path}:{line_no}"
        try:
            value = json.loads(line)
        except json.JSONDecodeError as err:
            if first:
                _refuse_single_object(path, text)
            problem = f"invalid JSON: {err.msg} (column {err.colno})"
            yield RawRecord(where, error=RecordError(None, problem, "fix the JSON on this line (one JSON object per line), or set data.skip_bad_records=true to skip such lines"))
            continue
        first = False
        yield _object_record(where, value)


def _refuse_single_object(path: Path, text: str) -> None:
    """A pretty-printed single JSON object (e.g. a registry file) is not a list of records."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return
    raise DpokitError(
        f"{path}: the file is one JSON {type_name(value).removeprefix('an ').removeprefix('a ')}, not a list of records",
        "data is a JSON array of records ([{...}, {...}]) or JSON Lines (one record per line); "
        "for a LLaMA-Factory dataset_info.json, set data.registry to it instead",
    )


def _object_record(where: str, value: Any) -> RawRecord:
    if isinstance(value, dict):
        return RawRecord(where, data=value)
    return RawRecord(where, error=RecordError(None, f"expected a JSON object (a record with fields), got {type_name(value)}"))


def _json_array_records(path: Path, text: str) -> Iterator[RawRecord]:
    """Records of a JSON array, each located by the line it starts on."""
    decoder = json.JSONDecoder()
    pos = _skip_space(text, text.index("[") + 1)
    line, counted_to = 1, 0
    index = 0
    if pos < len(text) and text[pos] == "]":
        return
    while True:
        try:
            value, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as err:
            raise DpokitError(
                f"{path}:{err.lineno}: invalid JSON: {err.msg} (column {err.colno})",
                "fix the JSON there; a JSON array is parsed as a whole, so data.skip_bad_records "
                "cannot skip it (JSON Lines can skip bad lines)",
            ) from None
        index += 1
        line += text.count("\n", counted_to, pos)
        counted_to = pos
        yield _object_record(f"{path}:{line} (record {index})", value)
        pos = _skip_space(text, end)
        if pos < len(text) and text[pos] == ",":
            pos = _skip_space(text, pos + 1)
            continue
        if pos < len(text) and text[pos] == "]" and not text[pos + 1 :].strip():
            return
        bad_line = text.count("\n", 0, pos) + 1
        raise DpokitError(f"{path}:{bad_line}: invalid JSON: expected ',' or ']' after record {index}", "fix the JSON array there")


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def _csv_records(path: Path, delimiter: str) -> Iterator[RawRecord]:
    text = _read_text(path)
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    next_line = 2  # the header is line 1 (multi-line cells make rows span lines)
    try:
        for row in reader:
            where = f"{path}:{next_line}"
            next_line = reader.line_num + 1
            if None in row:
                yield RawRecord(where, error=RecordError(None, f"row has {len(reader.fieldnames or []) + len(row[None])} cells but the header has {len(reader.fieldnames or [])}", "quote cells that contain the delimiter"))
                continue
            yield RawRecord(where, data=dict(row))
    except csv.Error as err:
        raise DpokitError(f"{path}:{reader.line_num}: invalid CSV ({err})", "fix the quoting there") from None


def _parquet_records(path: Path) -> Iterator[RawRecord]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
        index = 0
        for batch in parquet.iter_batches(batch_size=1024):
            for row in batch.to_pylist():
                index += 1
                yield RawRecord(f"{path}: record {index}", data=row)
    except (pa.ArrowException, OSError) as err:
        raise DpokitError(f"{path}: cannot read Parquet file ({err})", "check that it is a valid .parquet file") from None


def _dataset_records(path: Path) -> Iterator[RawRecord]:
    import datasets

    try:
        loaded = datasets.load_from_disk(str(path))
    except (FileNotFoundError, ValueError, OSError) as err:
        raise DpokitError(f"{path}: cannot load `datasets` directory ({err})", "re-save it with save_to_disk") from None
    if isinstance(loaded, datasets.DatasetDict):
        splits = list(loaded)
        if "train" in loaded:
            split = "train"
        elif len(splits) == 1:
            split = splits[0]
        else:
            raise DpokitError(
                f"{path}: the saved dataset has splits {', '.join(splits)} and none is 'train'",
                f"point at one split's directory, e.g. {path / splits[0]}",
            )
        loaded = loaded[split]
    for index, row in enumerate(loaded, start=1):
        yield RawRecord(f"{path}: record {index}", data=dict(row))
