"""Ranked or scored answers (one prompt, several answers) -> preference pairs.

Records such as UltraFeedback's ``{"instruction", "completions": [{"response",
"overall_score"}, ...]}`` or ``{"prompt", "responses": [...], "scores": [...]}`` rate several
answers to one prompt. A *pair strategy* turns the ratings into (chosen, rejected) pairs:

``best_vs_worst``
    One pair per prompt: the best-rated answer against the worst-rated one (the
    UltraFeedback-binarized recipe, with the lowest instead of a random answer). If they
    rate the same, the prompt gives no pair and one ``tie`` is counted.
``best_vs_each``
    The best answer against every answer rated strictly lower: n - 1 pairs for n distinct
    ratings. Each answer tied with the best counts one ``tie``.
``all_pairs``
    Every two answers whose ratings differ, the better one as chosen: up to n(n-1)/2 pairs.
    Each two answers rated the same count one ``tie``.

Where several answers share the best (or worst) rating, the first of them in the record
is used. Scores and ratings are "higher is better"; ranks are "lower is better" (rank 1
is the best answer).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from dpokit.data.fields import RecordError, preview, type_name

PAIR_STRATEGIES = ("best_vs_worst", "best_vs_each", "all_pairs")

# Keys an answer object may use for its text and for its rating, in order of preference.
TEXT_KEYS = ("response", "text", "content", "answer", "output")
SCORE_KEYS = ("score", "overall_score", "rating", "rank")
# The parallel-list form: {"responses": [...], "scores": [...]}.
LIST_SCORE_KEYS = ("scores", "ratings", "ranks")
ANSWER_LIST_KEYS = ("completions", "responses", "answers")


@dataclass(frozen=True)
class RatedAnswer:
    """One answer and its goodness (higher is better, ranks already negated)."""

    text: str
    goodness: float


def _number(value: Any, field: str) -> float:
    if isinstance(value, bool) or value is None:
        raise RecordError(field, f"expected a number, got {type_name(value)}")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    raise RecordError(field, f"expected a number, got {type_name(value)} ({preview(value)})")


def _text(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise RecordError(field, f"expected text, got {type_name(value)} ({preview(value)})")
    return value


def rated_answers(record: dict, list_key: str) -> list[RatedAnswer]:
    """Read the answers under ``list_key`` with their ratings, in record order."""
    answers = record[list_key]
    if not isinstance(answers, list):
        raise RecordError(list_key, f"expected a list of answers, got {type_name(answers)}")
    if not answers:
        return []
    if all(isinstance(a, str) for a in answers):
        return _parallel_lists(record, list_key, answers)
    first = answers[0]
    if not isinstance(first, dict):
        raise RecordError(f"{list_key}[0]", f"expected an answer object or text, got {type_name(first)}")
    text_key = next((k for k in TEXT_KEYS if k in first), None)
    score_key = next((k for k in SCORE_KEYS if k in first), None)
    if text_key is None or score_key is None:
        raise RecordError(
            f"{list_key}[0]",
            f"an answer needs text ({'/'.join(TEXT_KEYS)}) and a rating ({'/'.join(SCORE_KEYS)}); it has: {', '.join(first)}",
        )
    sign = -1.0 if score_key == "rank" else 1.0
    out = []
    for i, answer in enumerate(answers):
        field = f"{list_key}[{i}]"
        if not isinstance(answer, dict):
            raise RecordError(field, f"expected an answer object, got {type_name(answer)}")
        if text_key not in answer or score_key not in answer:
            raise RecordError(field, f"answer lacks '{text_key}' or '{score_key}' (answer 0 has both)")
        out.append(RatedAnswer(_text(answer[text_key], f"{field}.{text_key}"), sign * _number(answer[score_key], f"{field}.{score_key}")))
    return out


def _parallel_lists(record: dict, list_key: str, answers: list[str]) -> list[RatedAnswer]:
    score_key = next((k for k in LIST_SCORE_KEYS if record.get(k) is not None), None)
    if score_key is None:
        raise RecordError(list_key, f"answers are plain text, so the record needs a parallel list: {' or '.join(LIST_SCORE_KEYS)}")
    scores = record[score_key]
    if not isinstance(scores, list) or len(scores) != len(answers):
        got = f"{len(scores)} values" if isinstance(scores, list) else type_name(scores)
        raise RecordError(score_key, f"expected a list of {len(answers)} numbers (one per answer), got {got}")
    sign = -1.0 if score_key == "ranks" else 1.0
    return [RatedAnswer(a, sign * _number(s, f"{score_key}[{i}]")) for i, (a, s) in enumerate(zip(answers, scores))]


def pair_up(answers: list[RatedAnswer], strategy: str, min_margin: float = 0.0) -> tuple[list[tuple[str, str]], int]:
    """Turn rated answers into (chosen, rejected) texts by ``strategy``; also count ties.

    Returns ``(pairs, ties)``. Fewer than two answers give no pair and no tie. Two answers
    make a pair only when their ratings differ by more than 0 and by at least ``min_margin``;
    closer ones count as a tie (``dpokit iterate``'s minimum score margin).
    """
    def apart(better: RatedAnswer, worse: RatedAnswer) -> bool:
        gap = better.goodness - worse.goodness
        return gap > 0 and gap >= min_margin

    if len(answers) < 2:
        return [], 0
    if strategy == "all_pairs":
        pairs, ties = [], 0
        for a, b in itertools.combinations(answers, 2):
            better, worse = (a, b) if a.goodness >= b.goodness else (b, a)
            if apart(better, worse):
                pairs.append((better.text, worse.text))
            else:
                ties += 1
        return pairs, ties
    # max()/min() return the first of equals, so ties resolve to record order.
    best = max(answers, key=lambda a: a.goodness)
    if strategy == "best_vs_worst":
        worst = min(answers, key=lambda a: a.goodness)
        return ([(best.text, worst.text)], 0) if apart(best, worst) else ([], 1)
    if strategy == "best_vs_each":
        others = [a for a in answers if a is not best]
        ties = sum(1 for a in others if not apart(best, a))
        return [(best.text, a.text) for a in others if apart(best, a)], ties
    raise ValueError(f"unknown pair strategy {strategy!r}")
