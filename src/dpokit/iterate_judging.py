"""Asking a judge about a round of ``dpokit iterate``: candidates -> scores -> pairs, and the held-out measure.

Three kinds of judge (:func:`judge_kind`):

``score``
    gives each answer a number (:class:`~dpokit.judges.ScoreJudge`: ``rm:``, ``dpo:``,
    ``python:``). A candidate's score is the judge's.
``pairwise``
    only says which of two answers is better (``openai:``). Every two candidates of a prompt
    are compared; a candidate's score is its wins, a tie counting half (a round robin).
``human``
    people decide on ``dpokit serve``'s label page (:mod:`dpokit.judges.human`); the first two
    candidates of each prompt are shown.

Empty candidates are not judged and never paired (a pair with an empty answer cannot be
trained on). Scores become pairs with :func:`dpokit.data.ranking.pair_up` (the pair
strategies of ranked data, with the minimum score margin).
"""

from __future__ import annotations

import itertools
import json
import math
from collections import Counter
from pathlib import Path
from typing import Any, Optional, Sequence

from dpokit.data.ranking import RatedAnswer, pair_up
from dpokit.data.types import Message, PreferencePair
from dpokit.errors import DpokitError
from dpokit.judges import A, B, TIE, ScoreJudge

SCORE, PAIRWISE, HUMAN = "score", "pairwise", "human"


def judge_kind(judge) -> str:
    from dpokit.judges.human import HumanJudge

    if isinstance(judge, HumanJudge):
        return HUMAN
    return SCORE if isinstance(judge, ScoreJudge) else PAIRWISE


def judgeable(answer: str) -> bool:
    return bool(answer.strip())


def _preview(text: str, width: int = 60) -> str:
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= width else flat[: width - 3] + "...")


def _prompt_text(prompt: Sequence[Message]) -> str:
    users = [m["content"] for m in prompt if m["role"] == "user"]
    return _preview(users[-1] if users else "")


def score_answers(judge, prompts: Sequence[list[Message]], answers: Sequence[str], *,
                  empty_may_be_nan: bool = False) -> list[Optional[float]]:
    """One score per answer from a score judge, checked: a finite number each (None: an empty answer
    the judge could not score, where ``empty_may_be_nan``)."""
    if not answers:
        return []
    if type(judge).score is not ScoreJudge.score:
        values = list(judge.score(list(prompts), list(answers)))
    else:  # a judge that scores only in pairs (dpo:): ask about each answer as both sides
        values = list(judge.score_both(list(prompts), list(answers), list(answers))[0])
    if len(values) != len(answers):
        raise RuntimeError(f"judge {judge.name} returned {len(values)} scores for {len(answers)} answers")
    checked: list[Optional[float]] = []
    for prompt, answer, value in zip(prompts, answers, values):
        number = value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
        if number is not None and math.isnan(number) and empty_may_be_nan and not judgeable(answer):
            checked.append(None)
            continue
        if number is None or not math.isfinite(number):
            raise DpokitError(f"judge {judge.name} gave {value!r} for the prompt {_prompt_text(prompt)} and the answer "
                              f"{_preview(answer)}: expected a finite number",
                              "check the judge (a reward model dir, a DPO run) or use another one")
        checked.append(float(number))
    return checked


def score_candidates(judge, prompts: Sequence[list[Message]], candidates: Sequence[Sequence[str]],
                     ) -> tuple[list[list[Optional[float]]], int]:
    """``(scores[i][j], invalid)``: candidate j of prompt i (None: empty, not judged); ``invalid`` counts
    comparisons a pairwise judge gave no usable verdict for."""
    scores: list[list[Optional[float]]] = [[None] * len(row) for row in candidates]
    if judge_kind(judge) == SCORE:
        where = [(i, j) for i, row in enumerate(candidates) for j, answer in enumerate(row) if judgeable(answer)]
        values = score_answers(judge, [prompts[i] for i, _ in where], [candidates[i][j] for i, j in where])
        for (i, j), value in zip(where, values):
            scores[i][j] = value
        return scores, 0
    # pairwise: a round robin among the non-empty candidates of each prompt
    asks = []
    for i, row in enumerate(candidates):
        live = [j for j, answer in enumerate(row) if judgeable(answer)]
        for j in live:
            scores[i][j] = 0.0
        for j, other in itertools.combinations(live, 2):
            if row[j] == row[other]:
                scores[i][j] += 0.5
                scores[i][other] += 0.5
            else:
                asks.append((i, j, other))
    if not asks:
        return scores, 0
    verdicts = judge.judge([prompts[i] for i, _, _ in asks], [candidates[i][j] for i, j, _ in asks],
                           [candidates[i][k] for i, _, k in asks])
    if len(verdicts) != len(asks):
        raise RuntimeError(f"judge {judge.name} returned {len(verdicts)} verdicts for {len(asks)} comparisons")
    invalid = 0
    for (i, j, k), verdict in zip(asks, verdicts):
        if verdict.winner == A:
            scores[i][j] += 1.0
        elif verdict.winner == B:
            scores[i][k] += 1.0
        elif verdict.winner == TIE:
            scores[i][j] += 0.5
            scores[i][k] += 0.5
        else:
            invalid += 1
    return scores, invalid


def make_pairs(rows: Sequence[dict[str, Any]], strategy: str, min_margin: float, round_number: int,
               ) -> tuple[list[PreferencePair], Counter]:
    """Judged rows -> preference pairs, and what was left out (``tie``, ``below_min_margin``, ``identical``).

    A row holds ``prompt``, ``source``, ``candidates`` and either ``scores`` (None for a
    candidate not judged) or, from people, ``preference`` (``{"chosen", "rejected"}`` texts).
    """
    pairs: list[PreferencePair] = []
    left_out: Counter = Counter()
    for row in rows:
        meta: dict[str, Any] = {"round": round_number}
        if "preference" in row:
            preference = row["preference"]
            if preference is None:
                if row.get("decision") is not None:
                    left_out["not_a_pair"] += 1  # a tie or a skip
                else:
                    left_out["undecided" if row.get("item_id") else "not_shown"] += 1
                continue
            meta.update({k: row[k] for k in ("labeler", "edited") if k in row})
            chosen_rejected = [(preference["chosen"], preference["rejected"], meta)]
        else:
            rated = [RatedAnswer(str(j), score) for j, score in enumerate(row["scores"]) if score is not None]
            any_gap, ties = pair_up(rated, strategy)
            made, _ = pair_up(rated, strategy, min_margin)
            left_out["tie"] += ties
            left_out["below_min_margin"] += len(any_gap) - len(made)
            chosen_rejected = []
            for chosen, rejected in made:
                j, k = int(chosen), int(rejected)
                chosen_rejected.append((row["candidates"][j], row["candidates"][k],
                                        {**meta, "chosen_score": row["scores"][j], "rejected_score": row["scores"][k]}))
        for chosen, rejected, pair_meta in chosen_rejected:
            if chosen.strip() == rejected.strip():
                left_out["identical"] += 1
                continue
            pairs.append(PreferencePair(
                prompt=[dict(m) for m in row["prompt"]], chosen=[{"role": "assistant", "content": chosen}],
                rejected=[{"role": "assistant", "content": rejected}], source=row.get("source", ""), meta=pair_meta))
    return pairs, left_out


# ---------------------------------------------------------------- people


class WaitingForLabels(Exception):
    """People have not decided every queued pair yet; the message says how many and how to go on."""


def human_decisions(judge, labels_dir: Path, rows: Sequence[dict[str, Any]], round_number: int,
                    policy: str, min_decided: float = 1.0) -> list[dict[str, Any]]:
    """Queue each prompt's first two candidates in ``labels_dir`` for people (``policy`` wrote them);
    once at least ``min_decided`` of them are decided, the judged rows (``decision``, ``preference``,
    ``labeler``, ``edited``; ``decision`` None for a prompt still undecided).

    Raises :class:`WaitingForLabels` while fewer are decided. Prompts whose two candidates are
    empty or identical are not shown (no preference can come of them).
    """
    from dpokit.serve.server import DEFAULT_HOST, DEFAULT_PORT

    shown = [i for i, r in enumerate(rows)
             if all(judgeable(c) for c in r["candidates"][:2]) and r["candidates"][0] != r["candidates"][1]]
    if not shown:
        raise DpokitError("no prompt has two different, non-empty candidates to show people",
                          "raise iterate.temperature or iterate.max_new_tokens")
    prompts = [rows[i]["prompt"] for i in shown]
    ids = judge.queue(labels_dir, prompts, [tuple(rows[i]["candidates"][:2]) for i in shown],
                      model=f"round-{round_number - 1}", sampling=rows[shown[0]].get("sampling"))
    status = judge.status(labels_dir, prompts)
    decided = len(shown) - status.pending
    # A small tolerance, so that min_decided=0.5 of 10 prompts asks for 5, not 6 by rounding.
    needed = min(len(shown), max(1, math.ceil(min_decided * len(shown) - 1e-9)))
    if decided < needed:
        to_go = (f"{status.pending} to go" if needed == len(shown)
                 else f"{needed - decided} more to go (iterate.min_decided={min_decided:g} of them)")
        raise WaitingForLabels(
            f"round {round_number} waits for people: {decided} of {len(shown)} prompts decided ({status.pairs} pairs, "
            f"{decided - status.pairs} ties or skips), {to_go}. Label them with\n"
            f"  dpokit serve {policy} --labels-dir {labels_dir}\n"
            f"and the page http://{DEFAULT_HOST}:{DEFAULT_PORT}/label; then stop the server and run the same "
            f"dpokit iterate command again (with iterate.min_decided=SHARE, the round trains once that share "
            f"of the prompts is decided)")
    judged = []
    by_row = dict(zip(shown, ids))
    for i, row in enumerate(rows):
        out = {key: row[key] for key in ("prompt", "source", "candidates")}
        record = status.records.get(by_row[i]) if i in by_row else None
        out["judge"] = "human"
        out["decision"] = record.get("decision") if record else None
        out["preference"] = ({"chosen": record["chosen"][0]["content"], "rejected": record["rejected"][0]["content"]}
                             if record and record.get("decision") in ("left", "right") else None)
        if record:
            out.update(labeler=record.get("labeler"), edited=bool(record.get("edited")), item_id=by_row[i])
        elif i not in by_row:
            out["note"] = "not shown: empty or identical candidates"
        else:
            out.update(item_id=by_row[i], note="not decided when the round went on")
        judged.append(out)
    return judged


# ---------------------------------------------------------------- the held-out measure


def _key(prompt: Sequence[Message], answer: str) -> str:
    return json.dumps([prompt, answer], sort_keys=True, ensure_ascii=False)


class KnownScores(ScoreJudge):
    """A score judge whose scores are already known (asked again only for an answer it has not seen)."""

    def __init__(self, judge: ScoreJudge, known: dict[str, Optional[float]]):
        self.inner, self.known, self.name = judge, known, judge.name

    def score(self, prompts, answers) -> list[float]:
        missing = [i for i, (p, a) in enumerate(zip(prompts, answers)) if _key(p, a) not in self.known]
        if missing:
            fresh = score_answers(self.inner, [prompts[i] for i in missing], [answers[i] for i in missing],
                                  empty_may_be_nan=True)
            for i, value in zip(missing, fresh):
                self.known[_key(prompts[i], answers[i])] = value
        values = [self.known[_key(p, a)] for p, a in zip(prompts, answers)]
        return [math.nan if v is None else v for v in values]


def measure(judge, prompts: Sequence[list[Message]], answers: Sequence[str],
            baseline: Optional[dict[str, Any]] = None) -> dict[str, Any]:
    """The judge's view of one round's greedy answers on the held-out prompts.

    Returns ``scores`` (score judges; None per unscorable empty answer), ``mean_score`` and
    ``mean_score_ci95`` (Student t), and with ``baseline`` (round 0's measure, holding its
    ``answers`` and ``scores``) ``win_rate_vs_round0``: this round's answers against round
    0's on the same prompts, ties half, with a 95% Wilson interval
    (:func:`dpokit.comparison.judge_answers`).
    """
    from dpokit.comparison import judge_answers
    from dpokit.stats import mean_confidence_interval

    result: dict[str, Any] = {"judge": judge.name, "scores": None, "mean_score": None, "mean_score_ci95": None,
                              "win_rate_vs_round0": None}
    scorer = judge
    if judge_kind(judge) == SCORE:
        scores = score_answers(judge, prompts, answers, empty_may_be_nan=True)
        result["scores"] = scores
        result["mean_score"], result["mean_score_ci95"] = mean_confidence_interval([s for s in scores if s is not None])
        known = {_key(p, a): s for p, a, s in zip(prompts, answers, scores)}
        if baseline is not None and baseline.get("scores") is not None:
            known.update({_key(p, a): s for p, a, s in zip(prompts, baseline["answers"], baseline["scores"])})
        scorer = KnownScores(judge, known)
    if baseline is not None:
        _, counts = judge_answers(prompts, baseline["answers"], answers, scorer)
        result["win_rate_vs_round0"] = {"wins": counts.wins, "losses": counts.losses, "ties": counts.ties,
                                        "invalid": counts.invalid, "n": counts.n, "rate": counts.rate,
                                        "ci95": list(counts.ci95) if counts.ci95 else None}
    return result
