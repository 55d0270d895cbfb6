"""Chat messages: role names, message lists in their common spellings, hh-rlhf text.

Every format ends in lists of ``{"role": "system"|"user"|"assistant", "content": str}``.
Message text is never changed, except that hh-rlhf turn text is stripped of the spaces
around it (its ``"\\n\\nHuman: "`` markup leaves them).
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from dpokit.data.fields import RecordError, preview, type_name
from dpokit.data.types import Message

ROLE_ALIASES: dict[str, str] = {
    "system": "system",
    "user": "user",
    "human": "user",
    "assistant": "assistant",
    "gpt": "assistant",
    "bot": "assistant",
}
"""Role spellings seen in the wild (TRL/OpenAI, ShareGPT, LLaMA-Factory) -> dpokit's role."""

ROLE_HINT = (
    "use one of the roles system, user (or human), assistant (or gpt, bot); "
    "tool, function-call and observation messages are not supported"
)

# LLaMA-Factory's tag names (`dataset_info.json` "tags") -> the dpokit role they stand for.
TAG_ROLES = {"user_tag": "user", "assistant_tag": "assistant", "system_tag": "system"}


def role_table(tags: Mapping[str, str] | None = None) -> dict[str, str]:
    """Role spelling -> dpokit role, with a registry's own tags taking precedence."""
    table = dict(ROLE_ALIASES)
    for tag, role in TAG_ROLES.items():
        if tags and tags.get(tag):
            table[str(tags[tag]).lower()] = role
    return table


def parse_message(value: Any, field: str, tags: Mapping[str, str] | None = None) -> Message:
    """One message from ``{"role", "content"}``, ShareGPT's ``{"from", "value"}`` or a registry's tags."""
    if not isinstance(value, dict):
        raise RecordError(field, f"expected a message object with a role and content, got {type_name(value)} ({preview(value)})")
    role_keys = ((tags or {}).get("role_tag"), "role", "from")
    content_keys = ((tags or {}).get("content_tag"), "content", "value")
    role_key = next((k for k in role_keys if k and value.get(k) is not None), None)
    # A non-null content first: Parquet/`datasets` give every message struct all the keys any has.
    content_key = next((k for k in content_keys if k and value.get(k) is not None), None) or next(
        (k for k in content_keys if k and k in value), None)
    if role_key is None:
        raise RecordError(field, f"message has no role (expected a 'role' or 'from' key; it has: {', '.join(map(str, value)) or 'none'})")
    if content_key is None:
        raise RecordError(field, f"message has no content (expected a 'content' or 'value' key; it has: {', '.join(map(str, value))})")
    raw_role, content = value[role_key], value[content_key]
    if not isinstance(raw_role, str):
        raise RecordError(f"{field}.{role_key}", f"expected a role name, got {type_name(raw_role)} ({preview(raw_role)})")
    role = role_table(tags).get(raw_role.lower())
    if role is None:
        raise RecordError(f"{field}.{role_key}", f"unknown role '{raw_role}'", ROLE_HINT)
    if not isinstance(content, str):
        raise RecordError(f"{field}.{content_key}", f"expected text, got {type_name(content)} ({preview(content)})")
    return {"role": role, "content": content}


def parse_messages(value: Any, field: str, tags: Mapping[str, str] | None = None) -> list[Message]:
    """A list of messages; the field names each bad one by index (``prompt[2]``)."""
    if not isinstance(value, list):
        raise RecordError(field, f"expected a list of messages, got {type_name(value)} ({preview(value)})")
    return [parse_message(item, f"{field}[{i}]", tags) for i, item in enumerate(value)]


def prompt_messages(value: Any, field: str, tags: Mapping[str, str] | None = None) -> list[Message]:
    """A prompt given as text (one user turn) or as a list of messages."""
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if isinstance(value, list):
        return parse_messages(value, field, tags)
    raise RecordError(field, f"expected text or a list of messages, got {type_name(value)} ({preview(value)})")


def answer_messages(
    value: Any, field: str, tags: Mapping[str, str] | None = None, repeats: list[Message] | None = None
) -> list[Message]:
    """An answer given as text, one message (ShareGPT ranking) or a list of assistant messages.

    ``repeats``: the prompt, if the answer may repeat it before the answer proper (as in
    HuggingFaceH4/ultrafeedback_binarized, whose chosen/rejected are whole conversations);
    a repeated prompt is cut off.
    """
    if isinstance(value, str):
        return [{"role": "assistant", "content": value}]
    if isinstance(value, dict):
        messages = [parse_message(value, field, tags)]
    elif isinstance(value, list):
        messages = parse_messages(value, field, tags)
    else:
        raise RecordError(field, f"expected text or assistant message(s), got {type_name(value)} ({preview(value)})")
    skipped = 0
    if repeats and messages[: len(repeats)] == repeats:
        skipped = len(repeats)
    for i, message in enumerate(messages[skipped:], start=skipped):
        if message["role"] != "assistant":
            where = field if isinstance(value, dict) else f"{field}[{i}]"
            raise RecordError(
                where,
                f"an answer must be assistant message(s), got a '{message['role']}' message",
                "put the conversation so far in the prompt field and only the answer here",
            )
    return messages[skipped:]


def with_system(prompt: list[Message], system: str | None, field: str = "system") -> list[Message]:
    """Prepend a ``system`` field's text as a leading system message (if any)."""
    if not system:
        return prompt
    if prompt and prompt[0]["role"] == "system":
        if prompt[0]["content"] == system:
            return prompt
        raise RecordError(field, "the record has both a system field and a different system message in its prompt", "keep only one of them")
    return [{"role": "system", "content": system}] + prompt


def history_messages(value: Any, field: str = "history") -> list[Message]:
    """Alpaca's ``history``: ``[[user text, assistant text], ...]`` -> messages (None: no history)."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise RecordError(field, f"expected a list of [user, assistant] pairs, got {type_name(value)}")
    messages: list[Message] = []
    for i, turn in enumerate(value):
        if not (isinstance(turn, (list, tuple)) and len(turn) == 2 and all(isinstance(t, str) for t in turn)):
            raise RecordError(f"{field}[{i}]", f"expected a [user text, assistant text] pair, got {preview(turn)}")
        messages += [{"role": "user", "content": turn[0]}, {"role": "assistant", "content": turn[1]}]
    return messages


_HH_TURN = re.compile(r"(?:^|\n\n)(Human|Assistant):[ \t]?")
_HH_ROLES = {"Human": "user", "Assistant": "assistant"}


def looks_like_hh(text: Any) -> bool:
    """True for Anthropic hh-rlhf style text with ``Human:`` and ``Assistant:`` turns."""
    return isinstance(text, str) and "Human:" in text and "\n\nAssistant:" in text


def split_hh_text(text: str, field: str) -> list[Message]:
    """Split ``"\\n\\nHuman: ...\\n\\nAssistant: ..."`` into messages.

    Turn text is stripped of surrounding whitespace. Two turns in a row by the same
    speaker (a few hh-rlhf records have them) become one message, their texts joined
    by the blank line that separated them, so roles alternate as chat templates expect.
    """
    parts = _HH_TURN.split(text)
    # parts = [before first tag, tag1, text1, tag2, text2, ...]
    if parts[0].strip():
        raise RecordError(field, f"text before the first 'Human:' turn ({preview(parts[0])})", "hh-rlhf text starts with '\\n\\nHuman: '")
    if len(parts) < 3:
        raise RecordError(field, "no 'Human:' / 'Assistant:' turns found", "use hh-rlhf text ('\\n\\nHuman: ...\\n\\nAssistant: ...') or set the format explicitly")
    messages: list[Message] = []
    for tag, turn in zip(parts[1::2], parts[2::2]):
        role, content = _HH_ROLES[tag], turn.strip()
        if messages and messages[-1]["role"] == role:
            messages[-1]["content"] += "\n\n" + content
        else:
            messages.append({"role": role, "content": content})
    return messages


def split_shared_prompt(
    chosen: list[Message], rejected: list[Message]
) -> tuple[list[Message], list[Message], list[Message]] | None:
    """Split two full conversations into (prompt, chosen answer, rejected answer).

    The prompt is the messages both share up to their first difference, backed up to end
    before an assistant turn (answers start with the assistant). Returns None when the
    conversations share no prompt or differ before their last user turn (the answers
    would then contain user messages), which is no usable preference pair.
    """
    shared = 0
    while shared < min(len(chosen), len(rejected)) and chosen[shared] == rejected[shared]:
        shared += 1
    while shared > 0 and chosen[shared - 1]["role"] == "assistant":
        shared -= 1
    if shared == 0:
        return None
    chosen_answer, rejected_answer = chosen[shared:], rejected[shared:]
    if any(m["role"] != "assistant" for m in chosen_answer + rejected_answer):
        return None
    return chosen[:shared], chosen_answer, rejected_answer
