"""The normalised records every format is turned into: preference pairs, and SFT examples."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

Message = dict[str, str]
"""One chat message: ``{"role": "system"|"user"|"assistant", "content": str}``."""

ROLES = ("system", "user", "assistant")


class _HasPrompt:
    """What pairs and SFT examples say about their ``prompt`` (messages before the answer)."""

    prompt: list[Message]

    @property
    def system(self) -> str | None:
        if self.prompt and self.prompt[0]["role"] == "system":
            return self.prompt[0]["content"]
        return None

    @property
    def num_user_turns(self) -> int:
        return sum(1 for m in self.prompt if m["role"] == "user")


def prompt_key(item: _HasPrompt) -> tuple[tuple[str, str], ...]:
    """The prompt's turns, system message left out, with whitespace collapsed and case folded:
    what makes two pairs or examples ask "the same prompt" (eval splits, overlap reports)."""
    return tuple((m["role"], " ".join(str(m["content"]).split()).casefold())
                 for m in item.prompt if m["role"] != "system")


@dataclass
class PreferencePair(_HasPrompt):
    """One preference: a conversation so far, and a preferred and a dispreferred answer.

    ``prompt`` holds the messages before the answer (an optional leading system message,
    then alternating user/assistant turns ending with a user turn). ``chosen`` and
    ``rejected`` each hold the answer as assistant message(s), usually exactly one.
    ``source`` is ``file:line`` (or ``file:record N``) for error messages and reports;
    ``meta`` keeps extra fields a record had (e.g. a category, for eval breakdowns).
    """

    prompt: list[Message]
    chosen: list[Message]
    rejected: list[Message]
    source: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The canonical conversational form TRL reads."""
        return {"prompt": self.prompt, "chosen": self.chosen, "rejected": self.rejected}


@dataclass
class LoadResult:
    """What loading one or more preference sources produced.

    ``dropped`` counts pairs left out by reason (``empty_answer``, ``identical_answers``,
    ``duplicate_pair``, ``unparseable_record``, ``tie``, ...); ``errors`` lists the
    messages of skipped bad records (only with ``skip_bad_records``); ``choices`` counts the
    choices formats made on the user's behalf (which column held the preference).
    """

    pairs: list[PreferencePair] = field(default_factory=list)
    dropped: Counter = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    format: str = ""
    records: int = 0
    choices: Counter = field(default_factory=Counter)


@dataclass
class SftExample(_HasPrompt):
    """One supervised fine-tuning example: a conversation so far and the answer to learn.

    ``prompt`` is shaped as :attr:`PreferencePair.prompt` (an optional system message, then
    user/assistant turns ending with a user turn); ``completion`` holds the target answer as
    assistant message(s), usually exactly one. Training puts the loss on the completion only.
    """

    prompt: list[Message]
    completion: list[Message]
    source: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The canonical SFT form: the whole conversation as ``{"messages": [...]}``."""
        return {"messages": self.prompt + self.completion}


@dataclass
class SftLoadResult:
    """What loading one or more SFT sources produced (as :class:`LoadResult`, with examples).

    ``dropped`` counts examples left out by reason (``empty_completion``, ``empty_prompt``,
    ``duplicate_example``, ``unparseable_record``, ...).
    """

    examples: list[SftExample] = field(default_factory=list)
    dropped: Counter = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    format: str = ""
    records: int = 0
    choices: Counter = field(default_factory=Counter)
