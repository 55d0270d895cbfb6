"""Progress for long loops: a tqdm bar on a terminal, a plain line every so often in a log.

Carriage-return progress bars turn a non-interactive log (CI, ``nohup``, ``| tee``) into one
huge line; when stderr is not a terminal a short line is printed instead, at most every
:data:`LINE_INTERVAL` seconds and at the end.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Optional

LINE_INTERVAL = 30.0


class LineProgress:
    """The part of tqdm's interface dpokit uses, printing ``dpokit: DESC: N/TOTAL UNIT (postfix)`` lines."""

    def __init__(self, total: Optional[int], desc: str, unit: str, initial: int = 0, interval: float = LINE_INTERVAL):
        self.total, self.desc, self.unit, self.n = total, desc, unit, initial
        self.interval, self.postfix = interval, ""
        self._last = time.monotonic()

    def set_postfix(self, values: dict[str, Any], refresh: bool = False) -> None:
        self.postfix = ", ".join(f"{k} {v}" for k, v in values.items())

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self._last >= self.interval or (self.total is not None and self.n >= self.total):
            self._last = now
            self._print()

    def _print(self) -> None:
        of = f"/{self.total}" if self.total is not None else ""
        tail = f" ({self.postfix})" if self.postfix else ""
        print(f"dpokit: {self.desc}: {self.n}{of} {self.unit}{tail}", file=sys.stderr, flush=True)

    def close(self) -> None:
        pass


class _Silent(LineProgress):
    def update(self, n: int = 1) -> None:
        self.n += n


def progress(total: Optional[int], desc: str, unit: str = "step", *, enabled: bool = True, initial: int = 0):
    """A progress reporter for ``total`` units: tqdm on a terminal, :class:`LineProgress` otherwise."""
    if not enabled:
        return _Silent(total, desc, unit, initial)
    if sys.stderr.isatty():
        from tqdm.auto import tqdm

        return tqdm(total=total, initial=initial, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True)
    return LineProgress(total, desc, unit, initial)
