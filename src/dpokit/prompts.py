"""Prompt files: the prompts generate, compare, serve's label queue and iterate answer.

A prompt is a message list ending with a user turn. :func:`read_prompt_records` reads them
from JSONL/JSON records, plain text (one prompt a line), any preference file the data loader
reads (its distinct prompts), or ``demo:prompts``; every record keeps its ``file:line``.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

from dpokit.data.types import Message
from dpokit.errors import DpokitError, location
from dpokit.render import with_system_prompt

_ROLE_NAMES = {"user": "user", "human": "user", "assistant": "assistant", "gpt": "assistant",
               "bot": "assistant", "model": "assistant", "system": "system"}
_PROMPT_KEYS = ("prompt", "messages", "conversations", "question", "instruction", "query")
_PREFERENCE_KEYS = ("chosen", "rejected", "completions", "responses", "response_0", "response_j")
_TABLE_SUFFIXES = (".csv", ".parquet", ".arrow", ".tsv")


@dataclass
class PromptRecord:
    messages: list[Message]
    source: str


def _read_text(path: Path) -> str:
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise DpokitError(f"{path}: not UTF-8 text (byte {err.start})", "save the prompts file as UTF-8") from None
    except (OSError, EOFError) as err:
        raise DpokitError(f"{path}: cannot read ({err})") from None


def _messages(value: Any, where: str, field: str) -> list[Message]:
    if not isinstance(value, list) or not value:
        raise DpokitError(f"{where}: field '{field}': expected a non-empty list of messages")
    out = []
    for i, msg in enumerate(value):
        if not isinstance(msg, dict):
            raise DpokitError(f"{where}: field '{field}[{i}]': expected a message object with role and content")
        role = msg.get("role", msg.get("from"))
        content = msg.get("content", msg.get("value"))
        if str(role).lower() not in _ROLE_NAMES:
            raise DpokitError(f"{where}: field '{field}[{i}]': unknown role '{role}'", "use system, user or assistant")
        if not isinstance(content, str):
            raise DpokitError(f"{where}: field '{field}[{i}].content': expected text")
        out.append({"role": _ROLE_NAMES[str(role).lower()], "content": content})
    # The model answers the last user turn: drop trailing assistant turns of a full conversation.
    while out and out[-1]["role"] == "assistant":
        out.pop()
    if not out or out[-1]["role"] != "user":
        raise DpokitError(f"{where}: field '{field}': no user message to answer")
    return out


def _record_prompt(record: Any, where: str) -> list[Message]:
    if isinstance(record, str):
        if not record.strip():
            raise DpokitError(f"{where}: empty prompt")
        return [{"role": "user", "content": record}]
    if not isinstance(record, dict):
        raise DpokitError(f"{where}: expected a JSON object or string, got {type(record).__name__}")
    key = next((k for k in _PROMPT_KEYS if k in record), None)
    if key is None:
        raise DpokitError(f"{where}: no prompt field", "give each record a 'prompt' (text or a list of messages)")
    value = record[key]
    if key == "instruction" and isinstance(record.get("input"), str) and record["input"].strip():
        value = f"{value}\n\n{record['input']}"
    if isinstance(value, str):
        if not value.strip():
            raise DpokitError(f"{where}: field '{key}': empty prompt")
        messages = [{"role": "user", "content": value}]
    else:
        messages = _messages(value, where, key)
    system = record.get("system")
    if isinstance(system, str) and system.strip() and messages[0]["role"] != "system":
        messages.insert(0, {"role": "system", "content": system})
    return messages


def _parse_json_records(path: Path, text: str) -> list[tuple[Any, str]]:
    """(record, where) for a JSON array file or a JSONL file."""
    if text.lstrip().startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise DpokitError(f"{location(path, err.lineno)}: invalid JSON ({err.msg})", "fix the file") from None
        return [(rec, f"{path}: record {i + 1}") for i, rec in enumerate(data)]
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append((json.loads(line), location(path, number)))
        except json.JSONDecodeError as err:
            raise DpokitError(
                f"{location(path, number)}: invalid JSON ({err.msg}, column {err.colno})",
                "each line must be one JSON object, e.g. {\"prompt\": \"...\"}; or use a plain .txt file, one prompt a line",
            ) from None
    return records


def _is_preference_record(record: Any) -> bool:
    return isinstance(record, dict) and any(k in record for k in _PREFERENCE_KEYS)


def _prompts_from_preference_file(path: Path) -> list[PromptRecord]:
    """The distinct prompts of a preference file, in file order (via the data loader)."""
    from dpokit.data.load import load_preference_data

    result = load_preference_data([str(path)])
    seen: set[str] = set()
    prompts = []
    for pair in result.pairs:
        key = json.dumps(pair.prompt, sort_keys=True, ensure_ascii=False)
        if key not in seen:
            seen.add(key)
            prompts.append(PromptRecord([dict(m) for m in pair.prompt], pair.source))
    return prompts


def demo_prompts_path(spec: str) -> Path:
    """``demo:prompts`` (the bundled held-out prompts) or a demo preference set (its distinct prompts)."""
    from importlib import resources

    from dpokit.data.load import DEMO_SETS

    name = spec.partition(":")[2]
    if name != "prompts" and name not in DEMO_SETS:
        names = ", ".join(f"demo:{n}" for n in ("prompts", *DEMO_SETS))
        raise DpokitError(f"unknown demo prompts '{spec}'", f"use one of: {names}")
    return Path(str(resources.files("dpokit.data") / "demo" / f"{name}.jsonl"))


def read_prompt_records(path: Union[str, Path]) -> list[PromptRecord]:
    """Read prompts from a file (each with its ``file:line`` source).

    Accepted: JSONL (or a JSON array) of records with ``prompt`` (text or a list of
    messages; also ``messages``, ``instruction`` + ``input``, ``question``), an optional
    ``system``; a plain text file with one prompt per line; any preference file the data
    loader reads (its distinct prompts are used); or ``demo:prompts`` (the bundled held-out
    demo prompts; ``demo:heldout``/``demo:train``: the demo pairs' prompts). An empty file is an error.
    """
    if str(path).startswith("demo:"):
        path = demo_prompts_path(str(path))
    path = Path(path).expanduser()
    if not path.exists():
        raise DpokitError(f"{path}: prompts file not found", "check the path (or use demo:prompts, the demo prompts)")
    if path.is_dir() or path.suffix in _TABLE_SUFFIXES:
        prompts = _prompts_from_preference_file(path)
    else:
        text = _read_text(path)
        stripped = text.lstrip()
        if not stripped:
            raise DpokitError(f"{path}: prompts file is empty", "write one prompt per line, or JSONL with a 'prompt' field")
        base_suffix = Path(path.stem).suffix if path.suffix == ".gz" else path.suffix
        is_json = base_suffix in (".json", ".jsonl") or (stripped[0] in "{[" and base_suffix != ".txt")
        if is_json:
            records = _parse_json_records(path, text)
            if any(_is_preference_record(rec) for rec, _ in records):
                prompts = _prompts_from_preference_file(path)
            else:
                prompts = [PromptRecord(_record_prompt(rec, where), where) for rec, where in records]
        else:
            prompts = [
                PromptRecord([{"role": "user", "content": line}], location(path, number))
                for number, line in enumerate(text.splitlines(), start=1)
                if line.strip()
            ]
    if not prompts:
        raise DpokitError(f"{path}: no prompts found", "write one prompt per line, or JSONL with a 'prompt' field")
    return prompts


def read_prompts(path: Union[str, Path], system_prompt: Optional[str] = None) -> list[list[Message]]:
    """The prompts of a file as message lists (see :func:`read_prompt_records`)."""
    return [with_system_prompt(r.messages, system_prompt)[0] for r in read_prompt_records(path)]
