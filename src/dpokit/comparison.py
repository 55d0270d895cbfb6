"""Compare two models: their answers to the same prompts side by side, and a judged win rate.

The text and HTML reports are :mod:`dpokit.comparison_report`'s.

``B``'s win rate over ``A`` counts a tie as half a win::

    win_rate = (wins + ties / 2) / (wins + losses + ties)

with a 95% Wilson score interval (Wilson 1927; Newcombe 1998, method 3) computed on that
rate and ``n = wins + losses + ties``. Prompts where the judge gave no usable verdict
("invalid") are reported and left out of ``n``. Identical answers are a tie without asking
the judge.
"""

from __future__ import annotations

import gc
import sys
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

from dpokit.data.types import Message
from dpokit.errors import DpokitError
from dpokit.judges import A, B, TIE, Judge, Judgement
from dpokit.stats import wilson_interval

# ----------------------------------------------------------------------------- prompts


def load_prompts(path: Union[str, Path], limit: Optional[int] = None,
                 system_prompt: Optional[str] = None) -> list[list[Message]]:
    """The prompts to compare on, read as ``dpokit generate`` reads them (the first ``limit``).

    Accepted: a ``.txt`` file (one prompt per line), JSONL/JSON records with ``prompt``
    (text or messages), ``messages``, ``instruction`` [+ ``input``] or ``question``, or any
    preference file (its distinct prompts). A missing or empty file is a :class:`DpokitError`.
    """
    from dpokit.prompts import read_prompts

    prompts = read_prompts(path, system_prompt)
    return prompts[:limit] if limit else prompts


# ----------------------------------------------------------------------------- statistics


@dataclass
class WinRate:
    """B's results against A. ``rate`` and ``ci95`` are None when no prompt was judged."""

    wins: int
    losses: int
    ties: int
    invalid: int = 0
    rate: Optional[float] = None
    ci95: Optional[tuple[float, float]] = None
    ties_count: str = "half"

    @property
    def n(self) -> int:
        return self.wins + self.losses + self.ties


def win_rate(wins: int, losses: int, ties: int, invalid: int = 0) -> WinRate:
    """B's win rate (ties count half) with its 95% Wilson interval."""
    result = WinRate(wins, losses, ties, invalid)
    if result.n:
        result.rate = (wins + ties / 2) / result.n
        result.ci95 = wilson_interval(wins + ties / 2, result.n)
    return result


# ----------------------------------------------------------------------------- comparing


@dataclass
class CompareRow:
    prompt: list[Message]
    answer_a: str
    answer_b: str
    judgement: Optional[Judgement] = None


@dataclass
class CompareResult:
    model_a: str
    model_b: str
    rows: list[CompareRow]
    judge: Optional[str] = None
    win_rate: Optional[WinRate] = None
    sampling: dict[str, Any] = field(default_factory=dict)
    judge_error: Optional[str] = None
    """Set when judging failed after the answers were generated (the answers are kept)."""
    judge_warning: Optional[str] = None
    """Set when the judge is not independent of the models compared (see :func:`judge_conflict`)."""
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))

    def to_json(self) -> dict[str, Any]:
        summary = None
        if self.win_rate is not None:
            summary = asdict(self.win_rate)
            summary["n"] = self.win_rate.n
            summary["ci95"] = list(self.win_rate.ci95) if self.win_rate.ci95 else None
        return {
            "model_a": self.model_a, "model_b": self.model_b, "judge": self.judge, "judge_error": self.judge_error,
            "judge_warning": self.judge_warning,
            "sampling": self.sampling, "created": self.created, "summary": summary,
            "rows": [
                {"prompt": r.prompt, "answer_a": r.answer_a, "answer_b": r.answer_b,
                 **({"winner": r.judgement.winner, "score_a": r.judgement.score_a,
                     "score_b": r.judgement.score_b, "note": r.judgement.note} if r.judgement else {})}
                for r in self.rows
            ],
        }


def _identity(ref: str) -> str:
    """What a model reference points at: a run's dir, else the model dir or name."""
    from dpokit.runs import open_model_or_run

    info = open_model_or_run(ref)
    if info.path is not None:
        return str(info.path)
    if info.kind == "embedded":
        from dpokit.models import resolve_model_path

        return str(Path(resolve_model_path(info.model_dir)).resolve())
    candidate = Path(info.model_dir).expanduser()
    return str(candidate.resolve()) if candidate.exists() else info.model_dir


def judge_conflict(judge_spec: str, model_a: str, model_b: str) -> Optional[str]:
    """Why ``judge_spec`` is not independent of the two models compared, or None.

    A ``dpo:RUN`` judge scores answers by RUN's implicit reward ``beta * log(pi/pi_ref)``:
    when RUN is one of the compared models, the model grades itself (a tuned model prefers
    its own answers, whatever their quality); when RUN's reference is one of them, that
    model's answers are scored against themselves. Either way the win rate says nothing.
    """
    from dpokit.runs import open_model_or_run, run_reference

    kind, _, rest = judge_spec.partition(":")
    if kind != "dpo" or not rest:
        return None
    judge_info = open_model_or_run(rest)
    compared = {"A": _identity(model_a), "B": _identity(model_b)}
    judge_run = _identity(rest)
    for side, identity in compared.items():
        if identity == judge_run:
            return (f"the judge dpo:{rest} is model {side} itself: a DPO model's implicit reward prefers its own "
                    f"answers whatever their quality, so this win rate says nothing about which model is better")
    reference = run_reference(judge_info)
    base = judge_info.base_model if reference == "adapter" else reference
    if base is not None:
        for side, identity in compared.items():
            if identity == _identity(base):
                return (f"the judge dpo:{rest} scores answers against model {side} (its reference): "
                        f"it is not independent of the models compared")
    return None


def judge_answers(prompts: Sequence[list[Message]], answers_a: Sequence[str], answers_b: Sequence[str],
                  judge: Judge) -> tuple[list[Judgement], WinRate]:
    """Ask ``judge`` about every prompt whose answers differ; count B's wins, losses and ties."""
    if not (len(prompts) == len(answers_a) == len(answers_b)):
        raise ValueError("prompts, answers_a and answers_b differ in length")
    judgements: list[Optional[Judgement]] = [
        Judgement(TIE, note="identical answers") if a == b else None for a, b in zip(answers_a, answers_b)
    ]
    ask = [i for i, j in enumerate(judgements) if j is None]
    if ask:
        verdicts = judge.judge([prompts[i] for i in ask], [answers_a[i] for i in ask], [answers_b[i] for i in ask])
        if len(verdicts) != len(ask):
            raise RuntimeError(f"judge {judge.name} returned {len(verdicts)} verdicts for {len(ask)} prompts")
        for i, verdict in zip(ask, verdicts):
            judgements[i] = verdict
    winners = [j.winner for j in judgements]
    counts = win_rate(winners.count(B), winners.count(A), winners.count(TIE),
                      sum(1 for w in winners if w not in (A, B, TIE)))
    return judgements, counts


def generate_with(ref: str, prompts: Sequence[list[Message]], sampling: dict[str, Any], *,
                  dtype: Optional[str] = None, progress: bool = False) -> list[str]:
    """Load ``ref`` (a run, model dir or name), answer every prompt, then free the model."""
    from dpokit.generate import generate_answers
    from dpokit.render import Renderer
    from dpokit.runs import load_for_inference

    model, tokenizer, info = load_for_inference(ref, dtype=dtype)
    if progress:
        print(f"dpokit: answering {len(prompts)} prompts with {info.describe()}", file=sys.stderr)
    try:
        return generate_answers(model, Renderer.for_run(tokenizer, info), list(prompts), show_progress=progress, **sampling)
    finally:
        del model
        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:
            pass


def compare(model_a: str, model_b: str, prompts: Sequence[list[Message]], judge: Optional[Judge] = None,
            sampling: Optional[dict[str, Any]] = None, *, dtype: Optional[str] = None, progress: bool = False,
            generate: Optional[Callable[[str, Sequence[list[Message]], dict[str, Any]], list[str]]] = None,
            ) -> CompareResult:
    """Answers of A, then of B (one model in memory at a time), then the judge's verdicts.

    ``sampling`` holds :func:`dpokit.generate.generate_answers`' keyword arguments
    (``max_new_tokens``, ``do_sample``, ``temperature``, ...; greedy when empty).
    ``generate(ref, prompts, sampling) -> answers`` replaces :func:`generate_with` (tests).
    """
    sampling = dict(sampling or {})
    generate = generate or partial(generate_with, dtype=dtype, progress=progress)
    answers_a = generate(model_a, prompts, sampling)
    answers_b = generate(model_b, prompts, sampling)
    rows = [CompareRow(p, a, b) for p, a, b in zip(prompts, answers_a, answers_b)]
    result = CompareResult(str(model_a), str(model_b), rows, sampling=sampling)
    if judge is not None:
        if progress:
            print(f"dpokit: judging with {judge.name}", file=sys.stderr)
        result.judge = judge.name
        try:
            judgements, result.win_rate = judge_answers(prompts, answers_a, answers_b, judge)
        except DpokitError as err:  # minutes of generation are not thrown away for a judge outage
            result.judge_error = str(err)
            return result
        for row, judgement in zip(rows, judgements):
            row.judgement = judgement
    return result
