"""User-facing errors.

Anything the user can fix (a bad file, a bad config key, a missing GPU) raises
:class:`DpokitError`. The CLI prints its message and exits non-zero with no traceback;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class DpokitError(Exception):
    """An error the user can act on.

    Args:
        message: what went wrong, naming the file, line/record and field where known.
        hint: what to do about it (printed on its own line).
    """

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


def location(path: object, line: int | None = None, field: str | None = None) -> str:
    """Format 'path:line: field' for error messages (parts that are None are left out)."""
    text = str(path)
    if line is not None:
        text += f":{line}"
    if field is not None:
        text += f": field '{field}'"
    return text


def with_flags(err: DpokitError, flags: dict[str, str]) -> DpokitError:
    """``err`` with the config keys it names written as a command's flags.

    Library errors name config keys (``data.skip_bad_records=true``), the form a config file
    and ``key=value`` overrides use; a command whose flags set those keys translates them, so
    the hint names what its user types (``--skip-bad-records``). ``flags`` maps a key, or a key
    with its value as the text writes it, to the flag; the longest match wins.
    """
    def translate(text: str | None) -> str | None:
        if text is None:
            return None
        for key in sorted(flags, key=len, reverse=True):
            text = text.replace(key, flags[key])
        return text

    translated = DpokitError(translate(err.message), translate(err.hint))
    translated.exit_code = err.exit_code
    return translated
