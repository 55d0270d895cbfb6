"""Config keys users write: nested paths, unique flat leaves, aliases from other tools, ``key=value`` overrides.

:data:`ALIASES` maps each flat name users bring from PAI-QuickStart, TRL's DPOConfig and
LLaMA-Factory to its nested path; any leaf name that is unique across sections
(``learning_rate``) is accepted flat too. Unknown keys are errors naming the nearest valid key.
"""

from __future__ import annotations

import difflib
from typing import Any, Optional

import yaml

from dpokit.config import SECTIONS
from dpokit.errors import DpokitError


# Flat names users bring from other tools -> nested path in this schema.
ALIASES: dict[str, str] = {
    # PAI-QuickStart
    "training_strategy": "stage",
    "seq_length": "data.max_length",
    "lora_dim": "lora.r",
    "dpo_beta": "dpo.beta",
    # TRL DPOConfig
    "beta": "dpo.beta",
    "precompute_ref_log_probs": "dpo.reference",
    "nll_weight": "dpo.rpo_alpha",
    "lr_scheduler": "training.lr_scheduler_type",
    "bf16": "training.mixed_precision",
    "fp16": "training.mixed_precision",
    "gradient_checkpointing": "model.gradient_checkpointing",
    "use_peft": "lora.enabled",
    "lora_r": "lora.r",
    "lora_dropout": "lora.dropout",
    "lora_target_modules": "lora.target_modules",
    "ref_model": "dpo.reference",
    "eval_strategy": None,  # accepted and ignored: eval happens when eval_steps is set
    # LLaMA-Factory
    "lora_rank": "lora.r",
    "lora_target": "lora.target_modules",
    "pref_beta": "dpo.beta",
    "pref_loss": "dpo.loss_type",
    "pref_ftx": "dpo.rpo_alpha",
    "cutoff_len": "data.max_length",
    "model_name_or_path": "model.name_or_path",
    "finetuning_type": "lora.enabled",
    "dataset": "data.train_files",
    "eval_dataset": "data.eval_files",
    "dataset_info": "data.registry",
    "val_size": "data.eval_fraction",
    "per_device_batch_size": "training.per_device_train_batch_size",
    "model": "model.name_or_path",  # only when given a plain string
}


def _alias_value(alias: str, value: Any) -> Any:
    """Translate values whose meaning differs between the alias and our field."""
    if alias == "precompute_ref_log_probs":
        return "precompute" if value else "adapter"
    if alias == "finetuning_type":
        return str(value).lower() == "lora"
    if alias == "bf16":
        return "bf16" if value else "no"
    if alias == "fp16":
        return "fp16" if value else "no"
    return value


def _leaf_index() -> dict[str, list[str]]:
    index: dict[str, list[str]] = {}
    for section, model in SECTIONS.items():
        for name in model.model_fields:
            index.setdefault(name, []).append(f"{section}.{name}")
    return index


LEAVES = _leaf_index()


def documented_keys() -> list[str]:
    """The keys `dpokit config keys` lists: full dotted paths (and ``stage``); aliases are listed apart."""
    return ["stage"] + sorted(p for paths in LEAVES.values() for p in paths)


def valid_keys() -> list[str]:
    """Every key a user may write: nested paths, unique flat leaves and aliases."""
    keys = ["stage"] + [p for paths in LEAVES.values() for p in paths]
    keys += [leaf for leaf, paths in LEAVES.items() if len(paths) == 1]
    keys += [a for a in ALIASES]
    return sorted(set(keys))


def _unknown_key(key: str, where: str) -> DpokitError:
    close = difflib.get_close_matches(key, valid_keys(), n=1, cutoff=0.6)
    hint = f"did you mean '{close[0]}'?" if close else "run `dpokit config keys` to list valid keys"
    return DpokitError(f"{where}: unknown config key '{key}'", hint)


def _resolve_key(key: str, where: str) -> Optional[str]:
    """Map a user key (nested, flat or alias) to a nested dotted path (None: ignore)."""
    if key == "stage":
        return "stage"
    head, _, rest = key.partition(".")
    if rest:
        if head in SECTIONS and rest.split(".")[0] in SECTIONS[head].model_fields:
            return key
        raise _unknown_key(key, where)
    if key in ALIASES:
        return ALIASES[key]
    section, _, leaf = key.partition("_")  # `lora_alpha` -> lora.alpha
    if section in SECTIONS and leaf in SECTIONS[section].model_fields:
        return f"{section}.{leaf}"
    paths = LEAVES.get(key, [])
    if len(paths) == 1:
        return paths[0]
    if len(paths) > 1:
        raise DpokitError(
            f"{where}: config key '{key}' is ambiguous", f"write one of: {', '.join(paths)}"
        )
    raise _unknown_key(key, where)


def _set_path(tree: dict, path: str, value: Any) -> None:
    parts = path.split(".")
    node = tree
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise DpokitError(f"config: '{part}' is not a section")
    node[parts[-1]] = value


def normalise_tree(raw: dict, where: str = "config") -> dict:
    """Turn a user mapping (nested sections, flat keys, aliases) into the nested schema shape."""
    tree: dict = {}
    for key, value in raw.items():
        key = str(key)
        if key in SECTIONS and value is None:  # an empty section (`lora:` with nothing under it, `iterate: null`)
            continue
        if key in SECTIONS and isinstance(value, dict):
            for sub_key, sub_value in value.items():
                full = f"{key}.{sub_key}"
                if str(sub_key) not in SECTIONS[key].model_fields:
                    raise _unknown_key(full, where)
                _set_path(tree, full, sub_value)
            continue
        path = _resolve_key(key, where)
        if path is None:
            continue
        _set_path(tree, path, _alias_value(key, value))
    return tree


def parse_override(text: str) -> tuple[str, Any]:
    """Parse one ``key=value`` argument; the value is read as YAML (``0.1``, ``true``, ``[a, b]``)."""
    if "=" not in text:
        raise DpokitError(f"override '{text}' is not key=value", "write e.g. dpo.beta=0.2")
    key, _, value = text.partition("=")
    try:
        parsed = yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError:
        parsed = value
    return key.strip(), parsed


def deep_merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


