"""``python:FILE.py:FUNCTION``: a user's rule scores each answer, ``f(prompt_messages, answer_text) -> float``.

For rewards a rule can give: format, length, a verifier, a unit test. Higher is better.
The file is loaded once, with :mod:`importlib`, when the judge is built (so a missing file,
a syntax error or a missing function fails before any generation). Every value the function
returns must be a finite real number (``bool`` counts as 0/1); anything else, and any
exception it raises, is a :class:`~dpokit.errors.DpokitError` naming the prompt, the answer
and what came back.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import math
import numbers
import sys
import traceback
from pathlib import Path
from typing import Any, Callable, Sequence

from dpokit.data.types import Message
from dpokit.errors import DpokitError
from dpokit.judges import ScoreJudge

SPEC_HINT = "write python:FILE.py:FUNCTION, e.g. python:examples/judges/concise.py:score"


def _preview(text: str, width: int = 60) -> str:
    flat = " ".join(str(text).split())
    return repr(flat if len(flat) <= width else flat[: width - 3] + "...")


def _prompt_preview(prompt: Sequence[Message]) -> str:
    users = [m["content"] for m in prompt if m.get("role") == "user"]
    return _preview(users[-1] if users else "")


def _load_function(path: Path, name: str, spec: str) -> Callable[[list[Message], str], Any]:
    if not path.is_file():
        raise DpokitError(f"judge {spec}: {path}: file not found", "check the path (relative paths are read from the "
                          "working directory)")
    module_name = "dpokit_rule_" + hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    loader_spec = importlib.util.spec_from_file_location(module_name, path)
    if loader_spec is None or loader_spec.loader is None:
        raise DpokitError(f"judge {spec}: {path}: cannot be loaded as a Python module", SPEC_HINT)
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules[module_name] = module  # dataclasses and pickling look the module up by name
    try:
        loader_spec.loader.exec_module(module)
    except Exception as err:  # the user's file: any error it raises is theirs to fix
        sys.modules.pop(module_name, None)
        raise DpokitError(f"judge {spec}: loading {path} failed: {_exception_text(err, path)}",
                          "fix the file; it must run on its own (python FILE.py)") from None
    function = getattr(module, name, None)
    if function is None:
        defined = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_")
                         and getattr(v, "__module__", None) == module_name)
        raise DpokitError(f"judge {spec}: {path} has no function '{name}'",
                          f"functions defined there: {', '.join(defined) or 'none'}")
    if not callable(function):
        raise DpokitError(f"judge {spec}: {path}: '{name}' is a {type(function).__name__}, not a function", SPEC_HINT)
    try:
        inspect.signature(function).bind([], "")
    except TypeError:
        raise DpokitError(f"judge {spec}: {name}{inspect.signature(function)} cannot be called as "
                          f"{name}(prompt_messages, answer_text)",
                          "define it as def score(prompt, answer): ... returning a number, higher is better") from None
    except ValueError:  # a builtin without a signature: let the call decide
        pass
    return function


def _exception_text(err: BaseException, path: Path) -> str:
    """``ValueError: bad (FILE.py line 12)``: the exception and the deepest line of the user's file."""
    where = ""
    for frame in reversed(traceback.extract_tb(err.__traceback__)):
        if Path(frame.filename).resolve() == path.resolve():
            where = f" ({path} line {frame.lineno})"
            break
    return f"{type(err).__name__}: {err}{where}"


def as_score(value: Any) -> float:
    """``value`` as a float if it is a finite real number (or a bool), else raise ValueError."""
    if isinstance(value, numbers.Real):
        number = float(value)
        if math.isfinite(number):
            return number
        raise ValueError("not finite")
    raise ValueError("not a number")


class PythonJudge(ScoreJudge):
    """Scores answers with ``FUNCTION`` from ``FILE.py`` (see the module docstring)."""

    def __init__(self, rest: str):
        self.name = f"python:{rest}"
        file, sep, function = rest.rpartition(":")
        if not sep or not file or not function or function.endswith(".py") or not file.endswith(".py"):
            raise DpokitError(f"judge {self.name}: expected python:FILE.py:FUNCTION", SPEC_HINT)
        self.path = Path(file).expanduser()
        self.function_name = function
        self.function = _load_function(self.path, function, self.name)

    def score(self, prompts: Sequence[list[Message]], answers: Sequence[str]) -> list[float]:
        scores = []
        for prompt, answer in zip(prompts, answers):
            about = f"for the prompt {_prompt_preview(prompt)} and the answer {_preview(answer)}"
            try:
                value = self.function([dict(m) for m in prompt], answer)
            except Exception as err:  # the user's rule failed: say where, keep the traceback out
                raise DpokitError(f"judge {self.name} raised {_exception_text(err, self.path)} {about}",
                                  "fix the function; it must return a number for every answer") from None
            try:
                scores.append(as_score(value))
            except ValueError as why:
                raise DpokitError(
                    f"judge {self.name} returned {value!r} ({type(value).__name__}: {why}) {about}",
                    "the function must return a finite number for every answer (higher is better)",
                ) from None
        return scores
