"""SFT data formats: detect which one a record is in, and normalise it to SFT examples.

An SFT example is a prompt (the conversation so far) and a completion (the assistant's
answer to learn). Each format is a function from one raw record to a list of outcomes: an
:class:`SftExample`, or the name of the reason it was dropped. Normalisers raise
:class:`RecordError` for records they cannot read; the loader adds the file and line.

Formats (``data.format`` / ``--format`` with ``stage: sft``; ``auto`` detects from the first records):

=====================  ===============================================================
``prompt_completion``  a prompt and its answer, each text or a message list (TRL's
                       prompt-completion form). The prompt is the first of ``prompt``,
                       ``question``, ``query``, ``input``; the answer the first of
                       ``completion``, ``response``, ``output``, ``answer``
``messages``           a whole conversation: ``messages``, ``{"role", "content"}`` items
                       (OpenAI/TRL). The **final assistant turn** (the assistant message(s)
                       after the last user message) is the completion, everything before it
                       the prompt; a conversation must end with the assistant
``sharegpt``           the same under ``conversations`` with ``{"from", "value"}`` items
                       (ShareGPT, LLaMA-Factory ``formatting: sharegpt``); also role/content
``alpaca``             ``instruction``, optional ``input`` (appended after a newline),
                       ``output``; optional ``system`` and ``history``
                       (``[[user, assistant], ...]``, turns before the instruction)
any preference format  (``standard``, ``conversational``, ``hh_rlhf``, ... see
                       :mod:`dpokit.data.formats`): the prompt and the **chosen** answer;
                       ``sharegpt`` and ``alpaca`` records with ``chosen``/``rejected``
                       (LLaMA-Factory ranking data) are read the same way
=====================  ===============================================================

A ``system`` field, where a format has one, becomes a leading system message. An SFT record
whose ``label`` is false (KTO data, e.g. TRL's unpaired prompt/completion/label form or a
LLaMA-Factory ``kto_tag`` column, marks undesirable completions so) is dropped as
``undesirable_completion``: SFT must not learn it.
"""

from __future__ import annotations

from typing import Any, Callable, Union

from dpokit.data.fields import (
    RecordError,
    extra_meta,
    first_present,
    optional_text,
    require,
    require_text,
)
from dpokit.data.formats import COLUMN_ROLES, FORMAT_NAMES, NORMALISERS, FormatOptions, detect_format, normalise
from dpokit.data.messages import answer_messages, history_messages, parse_messages, prompt_messages, with_system
from dpokit.data.types import Message, SftExample

SftOutcome = Union[SftExample, str]
"""A normalised example, or the reason (a drop-count key) it was left out."""

PROMPT_KEYS = ("prompt", "question", "query", "input")
COMPLETION_KEYS = ("completion", "response", "output", "answer")
CONVERSATION_KEYS = ("messages", "conversations")
PREFERENCE_KEYS = ("chosen", "rejected")

DROP_UNDESIRABLE = "undesirable_completion"

END_WITH_ASSISTANT_HINT = (
    "end each conversation with the assistant's answer (the turn SFT learns), "
    "or set data.skip_bad_records=true to skip such records"
)


def _example(prompt: list[Message], completion: list[Message], record: dict, used: set[str]) -> SftExample:
    return SftExample(prompt=prompt, completion=completion, meta=extra_meta(record, used | {"label"}))


def _is_preference(record: dict) -> bool:
    return any(k in record for k in PREFERENCE_KEYS)


def _from_preference(record: dict, format_name: str, opts: FormatOptions) -> list[SftOutcome]:
    """A preference record read by its preference format: each pair's prompt and chosen answer."""
    return [o if isinstance(o, str) else SftExample(o.prompt, o.chosen, meta=o.meta)
            for o in normalise(record, format_name, opts)]


def _prompt_completion(record: dict, opts: FormatOptions) -> list[SftOutcome]:
    """A prompt (text or messages) and its completion (text or assistant message(s))."""
    prompt_key = first_present(record, PROMPT_KEYS)
    completion_key = first_present(record, COMPLETION_KEYS)
    for key, keys in ((prompt_key, PROMPT_KEYS), (completion_key, COMPLETION_KEYS)):
        if key is None:
            present = ", ".join(sorted(map(str, record))) or "none"
            raise RecordError(keys[0], f"is missing: the record needs one of {', '.join(keys)} (it has: {present})")
    prompt = prompt_messages(record[prompt_key], prompt_key, opts.tags)
    completion = answer_messages(record[completion_key], completion_key, opts.tags, repeats=prompt)
    prompt = with_system(prompt, optional_text(record, "system"))
    return [_example(prompt, completion, record, {prompt_key, completion_key, "system"})]


def _conversation(record: dict, opts: FormatOptions) -> list[SftOutcome]:
    """A whole conversation: its final assistant turn is the completion, the rest the prompt."""
    if _is_preference(record):
        return _from_preference(record, "sharegpt", opts)
    key = first_present(record, CONVERSATION_KEYS) or "messages"
    messages = parse_messages(require(record, key), key, opts.tags)
    if not messages:
        raise RecordError(key, "is an empty conversation", "give each record at least a user message and the assistant's answer")
    if messages[-1]["role"] != "assistant":
        raise RecordError(
            f"{key}[{len(messages) - 1}]",
            f"the conversation ends with a '{messages[-1]['role']}' message; SFT learns its final assistant turn, "
            "so the last message must be the assistant's",
            END_WITH_ASSISTANT_HINT,
        )
    start = len(messages)
    while start > 0 and messages[start - 1]["role"] == "assistant":
        start -= 1
    prompt = with_system(messages[:start], optional_text(record, "system"))
    return [_example(prompt, messages[start:], record, {key, "system", "tools"})]


def _alpaca(record: dict, opts: FormatOptions) -> list[SftOutcome]:
    """Alpaca: instruction (+ "\\n" + input) -> output, after an optional history of [user, assistant] turns."""
    if _is_preference(record) and "output" not in record:
        return _from_preference(record, "alpaca", opts)
    user = require_text(record, "instruction")
    extra = optional_text(record, "input")
    if extra:
        user = f"{user}\n{extra}"
    prompt = history_messages(record.get("history")) + [{"role": "user", "content": user}]
    completion = answer_messages(require(record, "output"), "output", opts.tags)
    prompt = with_system(prompt, optional_text(record, "system"))
    return [_example(prompt, completion, record, {"instruction", "input", "output", "history", "system"})]


SFT_NORMALISERS: dict[str, Callable[[dict, FormatOptions], list[SftOutcome]]] = {
    "prompt_completion": _prompt_completion,
    "messages": _conversation,
    "sharegpt": _conversation,
    "alpaca": _alpaca,
}

SFT_FORMAT_NAMES: tuple[str, ...] = ("auto", *SFT_NORMALISERS, *(n for n in NORMALISERS if n not in SFT_NORMALISERS))
"""What ``data.format`` / ``--format`` accepts for SFT data: the SFT formats, then the preference ones."""

SFT_ONLY_FORMATS: frozenset[str] = frozenset(SFT_FORMAT_NAMES) - frozenset(FORMAT_NAMES)

SFT_COLUMN_ROLES: tuple[str, ...] = (*COLUMN_ROLES, "completion", "output", "label")
"""Field names an SFT column map may map to (the preference ones, plus completion, output, label)."""


def _label_is_false(value: Any) -> bool:
    if isinstance(value, bool):
        return not value
    return isinstance(value, str) and value.strip().lower() == "false"


def detect_sft_format(record: dict) -> str | None:
    """The format one record looks like (an SFT or a preference format), or None."""
    if _is_preference(record):
        return detect_format(record)
    if isinstance(record.get("messages"), list):
        return "messages"
    if isinstance(record.get("conversations"), list):
        return "sharegpt"
    if "instruction" in record and "output" in record:
        return "alpaca"
    if first_present(record, PROMPT_KEYS) and first_present(record, COMPLETION_KEYS):
        return "prompt_completion"
    return detect_format(record)


def normalise_sft(record: dict, format_name: str, options: FormatOptions) -> list[SftOutcome]:
    """Turn one record in ``format_name`` into SFT examples (or drop reasons); raises RecordError."""
    if format_name in SFT_NORMALISERS:
        if not _is_preference(record) and _label_is_false(record.get("label")):
            return [DROP_UNDESIRABLE]
        return SFT_NORMALISERS[format_name](record, options)
    return _from_preference(record, format_name, options)
