"""Judges: decide, per prompt, whether answer A or answer B is better (or a tie).

A judge is any object with a ``name`` and
``judge(prompts, answers_a, answers_b) -> list[Judgement]``. Built in, picked by a spec
string (:func:`make_judge`), one module each:

* ``rm:PATH`` (:mod:`.reward_model`): a reward model dir (``AutoModelForSequenceClassification``);
  the answer with the higher score wins, equal scores tie.
* ``dpo:RUN_DIR`` (:mod:`.dpo_reward`): a DPO run's implicit reward
  ``beta * (log pi(y|x) - log pi_ref(y|x))`` (Rafailov et al. 2023, eq. 5) of each answer.
* ``openai:URL[#MODEL]`` (:mod:`.llm`): an OpenAI-compatible chat-completions endpoint as
  an LLM judge, answer order randomised per prompt (seeded) against position bias; its HTTP
  client is :mod:`.openai_client`.
* ``python:FILE.py:FUNCTION`` (:mod:`.rule`): a user's ``f(prompt_messages, answer_text) -> float``
  (higher is better), for rule-based rewards: format, length, a verifier.
* ``human`` (:mod:`.human`): people on ``dpokit serve``'s label page; only ``dpokit iterate``
  can wait for them.

Judges validate their spec when built (cheap: paths exist, endpoint accepts a
connection) and load models only when first asked to judge, so a bad judge fails before
minutes of generation, and the models being compared are out of memory by then.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Protocol, Sequence

from dpokit.data.types import Message
from dpokit.errors import DpokitError

A, B, TIE = "A", "B", "tie"
JUDGE_KINDS = ("rm", "dpo", "openai", "python", "human")


@dataclass
class Judgement:
    """One verdict. ``winner`` is ``"A"``, ``"B"``, ``"tie"``, or None when the judge gave
    no usable verdict (counted apart, not in the win rate). Score judges fill the scores."""

    winner: Optional[str]
    score_a: Optional[float] = None
    score_b: Optional[float] = None
    note: str = ""


class Judge(Protocol):
    name: str

    def judge(self, prompts: Sequence[list[Message]], answers_a: Sequence[str],
              answers_b: Sequence[str]) -> list[Judgement]: ...


def _by_score(score_a: float, score_b: float) -> Judgement:
    if math.isnan(score_a) or math.isnan(score_b):
        return Judgement(None, score_a, score_b, "score is NaN")
    winner = A if score_a > score_b else B if score_b > score_a else TIE
    return Judgement(winner, score_a, score_b)


class ScoreJudge:
    """Base of judges that give each answer a number; subclasses implement :meth:`score`."""

    name = "score"

    def score(self, prompts: Sequence[list[Message]], answers: Sequence[str]) -> list[float]:
        raise NotImplementedError

    def score_both(self, prompts: Sequence[list[Message]], answers_a: Sequence[str],
                   answers_b: Sequence[str]) -> tuple[list[float], list[float]]:
        return self.score(prompts, answers_a), self.score(prompts, answers_b)

    def judge(self, prompts, answers_a, answers_b) -> list[Judgement]:
        scores_a, scores_b = self.score_both(prompts, answers_a, answers_b)
        return [_by_score(a, b) for a, b in zip(scores_a, scores_b)]


def make_judge(spec: str, *, seed: int = 0) -> Judge:
    """Build a judge from ``rm:PATH``, ``dpo:RUN_DIR``, ``openai:URL[#MODEL]``, ``python:FILE.py:FUNCTION`` or ``human``."""
    if spec.strip() == "human":
        from dpokit.judges.human import HumanJudge

        return HumanJudge()
    kind, sep, rest = spec.partition(":")
    if not sep or kind not in JUDGE_KINDS or kind == "human" or (kind != "openai" and not rest):
        raise DpokitError(
            f"--judge {spec}: unknown judge",
            "use rm:PATH (a reward model dir), dpo:RUN_DIR (a DPO run's implicit reward), "
            "openai:URL[#MODEL] (an OpenAI-compatible chat endpoint), python:FILE.py:FUNCTION (your own rule) "
            "or human (people, on dpokit serve's label page; dpokit iterate only)",
        )
    if kind == "python":
        from dpokit.judges.rule import PythonJudge

        return PythonJudge(rest)
    if kind == "rm":
        from dpokit.judges.reward_model import RewardModelJudge

        return RewardModelJudge(rest)
    if kind == "dpo":
        from dpokit.judges.dpo_reward import DpoRewardJudge

        return DpoRewardJudge(rest)
    from dpokit.judges.llm import OpenAIJudge, split_openai_spec

    url, model = split_openai_spec(rest)
    return OpenAIJudge(url, model, seed=seed)
