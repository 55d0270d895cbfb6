"""Preference data formats: detect which one a record is in, and normalise it to pairs.

Each format is a function from one raw record (a ``dict``) to a list of outcomes: a
:class:`PreferencePair`, or the name of the reason a would-be pair was dropped (``"tie"``,
``"no_shared_prompt"``, ...). Normalisers raise :class:`RecordError` for records they cannot
read; the loader adds the file and line to it.

Formats (``data.format`` / ``--format``; ``auto`` detects from the first records):

=========================  ===========================================================
``standard``               ``prompt``, ``chosen``, ``rejected`` as text (TRL, PAI-QuickStart)
``conversational``         the same with message lists (TRL's conversational form)
``implicit_prompt``        only ``chosen`` and ``rejected``, full conversations whose
                           shared first messages are the prompt
``hh_rlhf``                ``chosen``/``rejected`` as ``"\\n\\nHuman: ...\\n\\nAssistant: ..."`` text
``sharegpt``               LLaMA-Factory's ranking form: ``conversations`` (``from``/``value``
                           messages) plus a ``chosen`` and a ``rejected`` message
``alpaca``                 LLaMA-Factory's alpaca ranking form: ``instruction``, ``input``,
                           ``chosen``, ``rejected`` (optional ``system``, ``history``)
``orca_dpo_pairs``         Intel/orca_dpo_pairs: ``system``, ``question``, ``chatgpt``
                           (chosen), ``llama2-13b-chat`` (rejected)
``stack_exchange_paired``  lvwerra/stack-exchange-paired: ``question``, ``response_j``
                           (chosen), ``response_k`` (rejected)
``pku_saferlhf``           PKU-SafeRLHF: ``prompt``, ``response_0``, ``response_1`` and
                           ``better_response_id`` or ``safer_response_id`` (or a column
                           map's ``chosen_id``) naming the chosen one
``ranked``                 one prompt (``prompt``/``instruction``/``question``) and several
                           rated answers, see :mod:`dpokit.data.ranking`
=========================  ===========================================================

A ``system`` field, where a format has one, becomes a leading system message.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Union

from dpokit.data.fields import (
    RecordError,
    extra_meta,
    first_present,
    optional_text,
    preview,
    require,
    require_text,
)
from dpokit.data.messages import (
    answer_messages,
    history_messages,
    looks_like_hh,
    parse_messages,
    prompt_messages,
    split_hh_text,
    split_shared_prompt,
    with_system,
)
from dpokit.data.ranking import ANSWER_LIST_KEYS, pair_up, rated_answers
from dpokit.data.types import Message, PreferencePair

Outcome = Union[PreferencePair, str]
"""A normalised pair, or the reason (a drop-count key) a would-be pair was left out."""


@dataclass(frozen=True)
class FormatOptions:
    """What a normaliser needs besides the record.

    ``tags`` are a LLaMA-Factory registry entry's role/content tag names (ShareGPT);
    ``pair_strategy`` picks how rated answers become pairs; ``choices`` counts the choices a
    normaliser made that the user should see in the report (``"chosen_id from
    better_response_id"``), filled in as records are read.
    """

    tags: Mapping[str, str] | None = None
    pair_strategy: str = "best_vs_worst"
    choices: Counter = field(default_factory=Counter)


def _pair(prompt: list[Message], chosen: list[Message], rejected: list[Message], record: dict, used: set[str]) -> PreferencePair:
    return PreferencePair(prompt=prompt, chosen=chosen, rejected=rejected, meta=extra_meta(record, used))


def _explicit(record: dict, opts: FormatOptions) -> list[Outcome]:
    """``prompt``/``chosen``/``rejected`` as text or message lists (standard and conversational)."""
    tags = opts.tags
    prompt = prompt_messages(require(record, "prompt"), "prompt", tags)
    chosen = answer_messages(require(record, "chosen"), "chosen", tags, repeats=prompt)
    rejected = answer_messages(require(record, "rejected"), "rejected", tags, repeats=prompt)
    prompt = with_system(prompt, optional_text(record, "system"))
    return [_pair(prompt, chosen, rejected, record, {"prompt", "chosen", "rejected", "system"})]


def _implicit_prompt(record: dict, opts: FormatOptions) -> list[Outcome]:
    """Two full conversations; their shared first messages are the prompt."""
    chosen = parse_messages(require(record, "chosen"), "chosen", opts.tags)
    rejected = parse_messages(require(record, "rejected"), "rejected", opts.tags)
    return _split_conversations(record, chosen, rejected)


def _hh_rlhf(record: dict, opts: FormatOptions) -> list[Outcome]:
    """Anthropic hh-rlhf: two transcripts that differ in the last Assistant turn."""
    chosen = split_hh_text(require_text(record, "chosen"), "chosen")
    rejected = split_hh_text(require_text(record, "rejected"), "rejected")
    return _split_conversations(record, chosen, rejected)


def _split_conversations(record: dict, chosen: list[Message], rejected: list[Message]) -> list[Outcome]:
    split = split_shared_prompt(chosen, rejected)
    if split is None:
        return ["no_shared_prompt"]
    prompt, chosen_answer, rejected_answer = split
    prompt = with_system(prompt, optional_text(record, "system"))
    return [_pair(prompt, chosen_answer, rejected_answer, record, {"chosen", "rejected", "system"})]


def _sharegpt(record: dict, opts: FormatOptions) -> list[Outcome]:
    """LLaMA-Factory ranking data: a conversation plus one chosen and one rejected message.

    A leading system message in the conversation, or a ``system`` column, is the system prompt.
    """
    key = first_present(record, ("messages", "conversations")) or "conversations"
    prompt = parse_messages(require(record, key), key, opts.tags)
    chosen = answer_messages(require(record, "chosen"), "chosen", opts.tags)
    rejected = answer_messages(require(record, "rejected"), "rejected", opts.tags)
    prompt = with_system(prompt, optional_text(record, "system"))
    return [_pair(prompt, chosen, rejected, record, {key, "chosen", "rejected", "system", "tools"})]


def _alpaca(record: dict, opts: FormatOptions) -> list[Outcome]:
    """LLaMA-Factory alpaca ranking: instruction (+ "\\n" + input), optional history of [user, assistant]."""
    user = require_text(record, "instruction")
    extra = optional_text(record, "input")
    if extra:
        user = f"{user}\n{extra}"
    prompt = history_messages(record.get("history")) + [{"role": "user", "content": user}]
    chosen = answer_messages(require(record, "chosen"), "chosen", opts.tags)
    rejected = answer_messages(require(record, "rejected"), "rejected", opts.tags)
    prompt = with_system(prompt, optional_text(record, "system"))
    return [_pair(prompt, chosen, rejected, record, {"instruction", "input", "history", "chosen", "rejected", "system"})]


def _fixed_columns(prompt_key: str, chosen_key: str, rejected_key: str) -> Callable[[dict, FormatOptions], list[Outcome]]:
    """A normaliser for datasets with fixed text columns (orca_dpo_pairs, stack-exchange-paired)."""

    def normalise(record: dict, opts: FormatOptions) -> list[Outcome]:
        prompt = [{"role": "user", "content": require_text(record, prompt_key)}]
        prompt = with_system(prompt, optional_text(record, "system"))
        chosen = [{"role": "assistant", "content": require_text(record, chosen_key)}]
        rejected = [{"role": "assistant", "content": require_text(record, rejected_key)}]
        return [_pair(prompt, chosen, rejected, record, {prompt_key, chosen_key, rejected_key, "system"})]

    return normalise


PKU_ID_KEYS = ("chosen_id", "better_response_id", "safer_response_id")


def _pku_saferlhf(record: dict, opts: FormatOptions) -> list[Outcome]:
    """PKU-SafeRLHF: two responses and the id (0 or 1) of the chosen one.

    The id comes from ``chosen_id`` (a column map may point it at ``safer_response_id``),
    else ``better_response_id``, else ``safer_response_id``; the report says which was used.
    The dataset has both: ``better_response_id`` is the more *helpful* answer,
    ``safer_response_id`` the *safer* one (what the tutorials train on to make answers safer:
    ``--columns chosen_id=safer_response_id``).
    """
    id_key = first_present(record, PKU_ID_KEYS)
    if id_key is None:
        raise RecordError(PKU_ID_KEYS[1], f"is missing: the record needs one of {', '.join(PKU_ID_KEYS)}")
    raw_id = record[id_key]
    opts.choices[f"pku_saferlhf: chosen answer by {id_key}"] += 1
    chosen_id = _response_id(raw_id)
    if chosen_id is None:
        raise RecordError(id_key, f"expected 0 or 1, got {preview(raw_id)}")
    prompt = with_system([{"role": "user", "content": require_text(record, "prompt")}], optional_text(record, "system"))
    responses = [require_text(record, "response_0"), require_text(record, "response_1")]
    chosen = [{"role": "assistant", "content": responses[chosen_id]}]
    rejected = [{"role": "assistant", "content": responses[1 - chosen_id]}]
    used = {"prompt", "response_0", "response_1", "system", *PKU_ID_KEYS}
    return [_pair(prompt, chosen, rejected, record, used)]


def _response_id(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.strip() in ("0", "1"):
        return int(value)
    if isinstance(value, (int, float)) and value in (0, 1):
        return int(value)
    return None


RANKED_PROMPT_KEYS = ("prompt", "instruction", "question")


def _ranked(record: dict, opts: FormatOptions) -> list[Outcome]:
    """One prompt, several rated answers -> pairs by ``opts.pair_strategy``."""
    prompt_key = first_present(record, RANKED_PROMPT_KEYS) or "prompt"
    prompt = prompt_messages(require(record, prompt_key), prompt_key, opts.tags)
    prompt = with_system(prompt, optional_text(record, "system"))
    list_key = first_present(record, ANSWER_LIST_KEYS)
    if list_key is None:
        raise RecordError(ANSWER_LIST_KEYS[0], f"is missing: the record needs one of {', '.join(ANSWER_LIST_KEYS)}")
    answers = rated_answers(record, list_key)
    if len(answers) < 2:
        return ["too_few_answers"]
    texts, ties = pair_up(answers, opts.pair_strategy)
    used = {prompt_key, list_key, "system", "scores", "ratings", "ranks"}
    outcomes: list[Outcome] = [
        _pair(prompt, [{"role": "assistant", "content": c}], [{"role": "assistant", "content": r}], record, used)
        for c, r in texts
    ]
    return outcomes + ["tie"] * ties


NORMALISERS: dict[str, Callable[[dict, FormatOptions], list[Outcome]]] = {
    "standard": _explicit,
    "conversational": _explicit,
    "implicit_prompt": _implicit_prompt,
    "hh_rlhf": _hh_rlhf,
    "sharegpt": _sharegpt,
    "alpaca": _alpaca,
    "orca_dpo_pairs": _fixed_columns("question", "chatgpt", "llama2-13b-chat"),
    "stack_exchange_paired": _fixed_columns("question", "response_j", "response_k"),
    "pku_saferlhf": _pku_saferlhf,
    "ranked": _ranked,
}

FORMAT_NAMES: tuple[str, ...] = ("auto", *NORMALISERS)
"""What ``data.format`` / ``--format`` accepts."""

COLUMN_ROLES: tuple[str, ...] = (
    "prompt", "chosen", "rejected", "system", "messages", "instruction", "input", "history",
    "question", "chosen_id", "response_0", "response_1", "completions", "responses", "answers",
    "scores", "ratings", "ranks",
)  # fmt: skip
"""Field names a column map (``data.columns``: role -> the file's column) may map to."""


def detect_format(record: dict) -> str | None:
    """The format one record looks like, or None. Specific dataset shapes are tried first."""

    def has(*keys: str) -> bool:
        return all(k in record for k in keys)

    if has("chosen", "rejected") and "prompt" not in record and first_present(record, ("conversations", "messages")):
        return "sharegpt"
    if has("prompt", "response_0", "response_1") and first_present(record, PKU_ID_KEYS):
        return "pku_saferlhf"
    list_key = first_present(record, ANSWER_LIST_KEYS)
    if list_key and isinstance(record[list_key], list) and first_present(record, RANKED_PROMPT_KEYS):
        return "ranked"
    if has("question", "chatgpt", "llama2-13b-chat"):
        return "orca_dpo_pairs"
    if has("question", "response_j", "response_k"):
        return "stack_exchange_paired"
    if has("prompt", "chosen", "rejected"):
        texts = all(isinstance(record[k], str) for k in ("prompt", "chosen", "rejected"))
        return "standard" if texts else "conversational"
    if has("instruction", "chosen", "rejected"):
        return "alpaca"
    if has("chosen", "rejected"):
        if looks_like_hh(record["chosen"]):
            return "hh_rlhf"
        if isinstance(record["chosen"], list):
            return "implicit_prompt"
    return None


def normalise(record: dict, format_name: str, options: FormatOptions) -> list[Outcome]:
    """Turn one record in ``format_name`` into pairs (or drop reasons); raises RecordError."""
    return NORMALISERS[format_name](record, options)
