"""LLaMA-Factory dataset registries (``dataset_info.json``): a dataset name -> file and format.

An entry such as::

    "dpo_en_demo": {"file_name": "dpo_en_demo.json", "ranking": true, "formatting": "sharegpt",
                    "columns": {"messages": "conversations", "chosen": "chosen", "rejected": "rejected"}}

names a file (relative to the registry's directory), its formatting (``alpaca``, the
default, or ``sharegpt``), which columns hold what, and for ShareGPT the ``tags`` (role and
content key names, user/assistant/system role names). Only ``ranking: true`` entries are
preference data; SFT loading (``sft=True``) takes the other entries too (alpaca
``prompt``/``query``/``response``, sharegpt ``messages``; a ``kto_tag`` column becomes the
``label`` whose false rows are dropped), and ranking entries' chosen answers. Hub-only
entries cannot be used here: there is no hub to download from.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from pathlib import Path

from dpokit.errors import DpokitError


@dataclass(frozen=True)
class RegistryDataset:
    """What a registry entry says about one dataset, in dpokit's terms.

    ``columns`` maps dpokit field names to the file's columns; ``optional_columns`` are the
    dpokit fields whose columns may be absent from a record.
    """

    name: str
    path: Path
    format: str
    columns: dict[str, str]
    optional_columns: frozenset[str] = frozenset()
    tags: dict[str, str] = field(default_factory=dict)


def read_registry(path: str | Path) -> dict[str, dict]:
    """The parsed ``dataset_info.json``."""
    path = Path(path)
    if not path.is_file():
        raise DpokitError(f"{path}: registry file not found", "set data.registry to a LLaMA-Factory dataset_info.json")
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DpokitError(f"{path}:{err.lineno}: invalid JSON in registry: {err.msg} (column {err.colno})", "fix the JSON there") from None
    except UnicodeDecodeError:
        raise DpokitError(f"{path}: registry is not UTF-8 text", "save it as UTF-8") from None
    if not isinstance(info, dict) or not all(isinstance(v, dict) for v in info.values()):
        raise DpokitError(f"{path}: a registry must map dataset names to entries (JSON objects)")
    return info


MULTIMODAL_COLUMNS = ("images", "videos", "audios")
OPENAI_TAGS = {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant",
               "system_tag": "system"}
"""The tags LLaMA-Factory's ``formatting: openai`` implies."""


def ranking_names(info: dict[str, dict]) -> list[str]:
    return [name for name, entry in info.items() if entry.get("ranking")]


def local_names(info: dict[str, dict]) -> list[str]:
    return [name for name, entry in info.items() if entry.get("file_name")]


def resolve_dataset(registry: str | Path, name: str, info: dict[str, dict] | None = None, *, sft: bool = False,
                    ) -> RegistryDataset:
    """Look ``name`` up in the registry and say where its file is and how to read it.

    ``sft``: for SFT loading, where non-ranking (instruction) entries are valid too.
    """
    registry = Path(registry)
    info = read_registry(registry) if info is None else info
    entry = info.get(name)
    if entry is None:
        close = difflib.get_close_matches(name, list(info), n=1)
        known = f"datasets in it: {', '.join(local_names(info)) or 'none'}" if sft else \
            f"preference datasets in it: {', '.join(ranking_names(info)) or 'none'}"
        hint = f"did you mean '{close[0]}'?" if close else known
        raise DpokitError(f"{registry}: no dataset named '{name}' in the registry, and no such file", hint)
    where = f"{registry}: dataset '{name}'"
    if not entry.get("ranking") and not sft:
        raise DpokitError(
            f"{where}: not preference data (its entry lacks \"ranking\": true)",
            f"name a ranking dataset: {', '.join(ranking_names(info)) or 'none in this registry'}; "
            "instruction (SFT) datasets are for stage: sft",
        )
    file_name = entry.get("file_name")
    if not file_name:
        hub = next((entry[k] for k in ("hf_hub_url", "ms_hub_url", "om_hub_url", "script_url") if entry.get(k)), None)
        hint = (f"download {hub} and add \"file_name\" to the entry" if hub else "add \"file_name\" to the entry")
        raise DpokitError(f"{where}: has no local file_name (no hub is reachable from dpokit)", hint)
    path = registry.parent / file_name
    if not path.exists():
        raise DpokitError(f"{where}: file_name '{file_name}' not found at {path}", "file names are relative to the registry's directory")
    formatting = str(entry.get("formatting", "alpaca")).lower()
    columns = entry.get("columns") or {}
    tags = {str(k): str(v) for k, v in (entry.get("tags") or {}).items()}
    if not entry.get("ranking"):
        return _instruction_dataset(name, path, where, formatting, columns, tags)
    if formatting in ("sharegpt", "openai"):
        if formatting == "openai":
            tags = {**OPENAI_TAGS, **tags}
        mapping = {
            "messages": columns.get("messages", "conversations" if formatting == "sharegpt" else "messages"),
            "chosen": columns.get("chosen", "chosen"),
            "rejected": columns.get("rejected", "rejected"),
        }
        optional = {"system"}
        if columns.get("system"):
            mapping["system"] = columns["system"]
        return RegistryDataset(name, path, "sharegpt", mapping, frozenset(optional), tags)
    if formatting != "alpaca":
        raise DpokitError(f"{where}: unsupported formatting '{formatting}'", "use alpaca or sharegpt")
    mapping = {
        "instruction": columns.get("prompt", "instruction"),
        "input": columns.get("query", "input"),
        "chosen": columns.get("chosen", "chosen"),
        "rejected": columns.get("rejected", "rejected"),
    }
    for ours, theirs in (("system", "system"), ("history", "history")):
        if columns.get(theirs):
            mapping[ours] = columns[theirs]
    return RegistryDataset(name, path, "alpaca", mapping, frozenset({"input", "system", "history"}), tags)


def _instruction_dataset(name: str, path: Path, where: str, formatting: str, columns: dict, tags: dict[str, str],
                         ) -> RegistryDataset:
    """A non-ranking (SFT) entry in the SFT formats' field names (see :mod:`dpokit.data.sft_formats`)."""
    media = [c for c in MULTIMODAL_COLUMNS if columns.get(c)]
    if media:
        raise DpokitError(f"{where}: multimodal data ({', '.join(media)}) is not supported", "use a text-only dataset")
    if formatting in ("sharegpt", "openai"):
        if formatting == "openai":
            tags = {**OPENAI_TAGS, **tags}
        mapping = {"messages": columns.get("messages", "conversations" if formatting == "sharegpt" else "messages")}
        sft_format, optional = "sharegpt", {"system", "label"}
    elif formatting == "alpaca":
        mapping = {
            "instruction": columns.get("prompt", "instruction"),
            "input": columns.get("query", "input"),
            "output": columns.get("response", "output"),
        }
        if columns.get("history"):
            mapping["history"] = columns["history"]
        sft_format, optional = "alpaca", {"input", "system", "history", "label"}
    else:
        raise DpokitError(f"{where}: unsupported formatting '{formatting}'", "use alpaca or sharegpt")
    if columns.get("system"):
        mapping["system"] = columns["system"]
    if columns.get("kto_tag"):
        mapping["label"] = columns["kto_tag"]
    return RegistryDataset(name, path, sft_format, mapping, frozenset(optional), tags)
