"""``openai:URL[#MODEL]``: an LLM behind an OpenAI-compatible chat endpoint judges which answer is better."""

from __future__ import annotations

import random
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Optional, Sequence

from dpokit.data.types import Message
from dpokit.judges import A, B, TIE, Judgement
from dpokit.judges.openai_client import DEFAULT_OPENAI_URL, OpenAIClient


JUDGE_SYSTEM_PROMPT = (
    "You are an impartial judge of AI assistant answers. You are shown a conversation and two "
    "candidate answers to its last user message. Decide which answer is better: more helpful, "
    "correct, honest and harmless, and clearer. Do not let the order in which the answers are "
    "shown, their length, or the assistants' names influence you. If they are equally good, say tie. "
    "End your reply with exactly one verdict: [[A]] if answer A is better, [[B]] if answer B is "
    "better, or [[tie]]."
)

_VERDICT_TAG = re.compile(r"\[\[\s*(A|B|tie)\s*\]\]", re.IGNORECASE)


def parse_verdict(text: str) -> Optional[str]:
    """``"A"``, ``"B"``, ``"tie"`` from a judge reply, or None when it has no clear verdict.

    The last ``[[A]]``/``[[B]]``/``[[tie]]`` tag wins; otherwise the whole reply must be
    just the verdict (``A``, ``"B".``, ``Tie``).
    """
    tags = _VERDICT_TAG.findall(text or "")
    word = tags[-1] if tags else (text or "").strip().strip("\"'`*.!()[] \n").strip()
    word = word.lower()
    return {"a": A, "b": B, "tie": TIE}.get(word)


def render_conversation(prompt: Sequence[Message]) -> str:
    return "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in prompt)


def judge_user_message(prompt: Sequence[Message], first: str, second: str) -> str:
    return (
        f"<conversation>\n{render_conversation(prompt)}\n</conversation>\n\n"
        f"<answer_A>\n{first}\n</answer_A>\n\n<answer_B>\n{second}\n</answer_B>\n\n"
        "Which answer is better? End with [[A]], [[B]] or [[tie]]."
    )


def split_openai_spec(rest: str) -> tuple[str, Optional[str]]:
    url, _, model = rest.partition("#")
    return url.strip() or DEFAULT_OPENAI_URL, model.strip() or None


class OpenAIJudge:
    """An LLM judge behind an OpenAI-compatible ``/chat/completions`` endpoint (see :class:`OpenAIClient`).

    With no ``model``, the endpoint's first listed model is used. Prompt ``i`` is shown
    swapped (B first) when a ``random.Random(seed)`` draw says so.
    """

    def __init__(self, url: str = DEFAULT_OPENAI_URL, model: Optional[str] = None, *, api_key: Optional[str] = None,
                 seed: int = 0, timeout: float = 120.0, retries: int = 2, workers: int = 4):
        self.client = OpenAIClient(url, api_key=api_key, timeout=timeout, retries=retries)
        self.seed, self.workers = seed, workers
        self.model = model or self.client.first_model()
        self.name = f"openai:{self.client.base}#{self.model}"

    def ask(self, prompt: Sequence[Message], first: str, second: str) -> str:
        """The judge's raw reply for answers shown in this order."""
        return self.client.chat(self.model, [
            {"role": "system", "content": JUDGE_SYSTEM_PROMPT},
            {"role": "user", "content": judge_user_message(prompt, first, second)},
        ], temperature=0)

    def swap_order(self, n: int) -> list[bool]:
        """For each of ``n`` prompts, whether B is shown first (deterministic in the seed)."""
        rng = random.Random(self.seed)
        return [rng.random() < 0.5 for _ in range(n)]

    def judge(self, prompts, answers_a, answers_b) -> list[Judgement]:
        swaps = self.swap_order(len(prompts))

        def one(i: int) -> Judgement:
            first, second = (answers_b[i], answers_a[i]) if swaps[i] else (answers_a[i], answers_b[i])
            reply = self.ask(prompts[i], first, second)
            shown = parse_verdict(reply)
            winner = {A: B, B: A}.get(shown, shown) if swaps[i] else shown
            order = "shown B first" if swaps[i] else "shown A first"
            note = f"{order}; judge said: {reply.strip()[-300:]}" if winner is None else order
            return Judgement(winner, note=note)

        with ThreadPoolExecutor(max_workers=max(1, self.workers)) as pool:
            return list(pool.map(one, range(len(prompts))))
