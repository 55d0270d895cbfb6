"""Reading typed fields out of one raw record, with errors that name the field.

A raw record is the ``dict`` a reader produced from one JSON line, CSV row or table row.
Format normalisers never see file names or line numbers: they raise :class:`RecordError`
naming the field, and the loader adds the file and line.
"""

from __future__ import annotations

from typing import Any

SCALAR_TYPES = (str, int, float, bool)


class RecordError(Exception):
    """One record cannot be turned into preference pairs.

    Args:
        field: the field at fault (``"rejected"``, ``"prompt[2]"``), or None for the whole record.
        problem: what is wrong, e.g. ``"is missing"``.
        hint: what to do about it; None means the loader's default advice.
    """

    def __init__(self, field: str | None, problem: str, hint: str | None = None):
        super().__init__(problem)
        self.field = field
        self.problem = problem
        self.hint = hint

    def describe(self) -> str:
        """``field 'x': problem`` (or just the problem when no field is at fault)."""
        return f"field '{self.field}': {self.problem}" if self.field else self.problem


def type_name(value: Any) -> str:
    """A user-facing name for a JSON value's type."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, (list, tuple)):
        return "a list"
    return type(value).__name__


def preview(value: Any, width: int = 40) -> str:
    """A short repr of a value for error messages."""
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def require(record: dict, key: str, hint: str | None = None) -> Any:
    """The value of ``key``; a missing key (or a null, as in CSV/Parquet gaps) is an error."""
    value = record.get(key)
    if value is None:
        present = ", ".join(sorted(map(str, record))) or "none"
        problem = "is missing" if key not in record else "is null"
        raise RecordError(key, f"{problem} (the record has: {present})", hint)
    return value


def require_text(record: dict, key: str) -> str:
    """A field that must hold text."""
    return expect_text(require(record, key), key)


def expect_text(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise RecordError(field, f"expected text, got {type_name(value)} ({preview(value)})")
    return value


def optional_text(record: dict, key: str) -> str | None:
    """A text field that may be absent, null or empty (returned as None)."""
    value = record.get(key)
    if value is None or value == "":
        return None
    return expect_text(value, key)


def first_present(record: dict, keys: tuple[str, ...]) -> str | None:
    """The first of ``keys`` that the record has (with a non-null value)."""
    for key in keys:
        if record.get(key) is not None:
            return key
    return None


def extra_meta(record: dict, used: set[str] | frozenset[str]) -> dict[str, Any]:
    """The record's other scalar fields (a category, an id, ...), kept with the pair.

    Lists and objects are left out: they are bulky (UltraFeedback's annotations) and
    would not round-trip through a JSON Lines file that ``datasets`` must read.
    """
    meta = {}
    for key, value in record.items():
        if key in used or not isinstance(value, SCALAR_TYPES):
            continue
        if isinstance(value, float) and value != value:  # NaN (a CSV/Parquet gap) is not JSON
            continue
        meta[str(key)] = value
    return meta
