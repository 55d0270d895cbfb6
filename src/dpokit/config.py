"""Configuration: pydantic schema, YAML loading, `key=value` overrides and aliases.

A config is nested (``model.name_or_path``, ``dpo.beta``, ...). Users may also write the
flat names they know from PAI-QuickStart, TRL's DPOConfig and LLaMA-Factory
(``dpo_beta``, ``beta``, ``lora_dim``, ``cutoff_len``, ...): :data:`ALIASES` maps each
to its nested path, and any leaf name that is unique across sections (``learning_rate``)
is accepted flat too. Unknown keys are errors naming the nearest valid key.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal, Optional, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from dpokit.errors import DpokitError

DEFAULT_MODEL = "smollm2-135m-instruct"
PAI_DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())


class ModelConfig(_Section):
    """Which model to train and how to load it."""

    name_or_path: str = DEFAULT_MODEL
    """A local Hugging Face model dir, a ``.gguf`` file, an embedded name or a hub id."""
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    """``auto``: bf16 on CUDA when supported, else fp32."""
    load_in_4bit: bool = False
    load_in_8bit: bool = False
    trust_remote_code: bool = False
    attn_implementation: Optional[str] = "sdpa"
    gradient_checkpointing: bool = False

    @model_validator(mode="after")
    def _one_quantisation(self) -> "ModelConfig":
        if self.load_in_4bit and self.load_in_8bit:
            raise ValueError("load_in_4bit and load_in_8bit are exclusive: pick one")
        return self


class LoraConfig(_Section):
    """LoRA adapter settings; ``enabled: false`` (or ``r: 0``) means full fine-tuning."""

    enabled: bool = True
    r: int = Field(16, ge=0)
    alpha: float = 32
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: Union[str, list[str]] = "all-linear"

    @field_validator("target_modules", mode="before")
    @classmethod
    def _split_targets(cls, value: Any) -> Any:
        # LLaMA-Factory writes `lora_target: q_proj,v_proj` or `all`.
        if isinstance(value, str):
            if value in ("all", "all-linear", "all_linear"):
                return "all-linear"
            parts = [p.strip() for p in value.split(",") if p.strip()]
            return parts if len(parts) > 1 else (parts[0] if parts else "all-linear")
        return value

    @model_validator(mode="after")
    def _zero_rank_is_full(self) -> "LoraConfig":
        # PAI-QuickStart: lora_dim 0 means no LoRA.
        if self.r == 0 and self.enabled:
            object.__setattr__(self, "enabled", False)
        return self


class DataConfig(_Section):
    """Where the preference data comes from and how it is tokenised."""

    train_files: list[str] = Field(default_factory=lambda: ["demo:train"])
    """Files or dirs; ``demo:train`` / ``demo:heldout`` are the bundled demo set."""
    eval_files: list[str] = Field(default_factory=list)
    eval_fraction: float = Field(0.0, ge=0, lt=1)
    """Held-out fraction of the train data used for eval when no eval_files are given."""
    format: str = "auto"
    columns: dict[str, str] = Field(default_factory=dict)
    """Column map, e.g. ``{prompt: question, chosen: chatgpt, rejected: llama2-13b-chat}``."""
    registry: Optional[str] = None
    """A LLaMA-Factory ``dataset_info.json``; ``train_files`` then names datasets in it."""
    pair_strategy: Literal["best_vs_worst", "best_vs_each", "all_pairs"] = "best_vs_worst"
    skip_bad_records: bool = False
    apply_chat_template: bool = True
    system_prompt: Optional[str] = None
    template: Optional[str] = None
    """LLaMA-Factory template name; accepted for compatibility, the tokenizer's own template is used."""
    max_length: int = Field(1024, gt=0)
    max_prompt_length: int = Field(512, gt=0)
    max_samples: Optional[int] = Field(None, gt=0)

    @field_validator("train_files", "eval_files", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [p.strip() for p in value.split(",") if p.strip()]
        return value

    @field_validator("columns", mode="before")
    @classmethod
    def _parse_columns(cls, value: Any) -> Any:
        if isinstance(value, str):
            return parse_column_map(value)
        return value


class ReferenceModel(_Section):
    model: str
    """Path (or embedded name) of a separate reference model, e.g. an SFT checkpoint."""


ReferenceSpec = Union[Literal["precompute", "adapter", "none"], ReferenceModel]


class DPOConfig(_Section):
    """The preference loss and its reference."""

    beta: float = Field(0.1, gt=0)
    loss_type: Literal["sigmoid", "robust", "ipo", "hinge", "simpo", "orpo"] = "sigmoid"
    label_smoothing: float = Field(0.0, ge=0, lt=0.5)
    rpo_alpha: Optional[float] = Field(None, ge=0)
    """Weight of an NLL term on the chosen answer (RPO); ``nll_weight`` is an alias."""
    simpo_gamma: float = 0.5
    """SimPO's target reward margin (gamma/beta ratio as in TRL's ``simpo_gamma``)."""
    reference: ReferenceSpec = "precompute"

    @field_validator("loss_type", mode="before")
    @classmethod
    def _loss_alias(cls, value: Any) -> Any:
        # LLaMA-Factory's pref_loss names.
        return {"dpo": "sigmoid", "cdpo": "robust"}.get(value, value)

    @field_validator("reference", mode="before")
    @classmethod
    def _reference_path(cls, value: Any) -> Any:
        if isinstance(value, str) and value not in ("precompute", "adapter", "none"):
            return {"model": value}
        if value is None:
            return "none"
        return value

    @property
    def reference_free(self) -> bool:
        return self.loss_type in ("simpo", "orpo")


class TrainingConfig(_Section):
    """Optimisation and the training loop."""

    learning_rate: float = Field(5e-5, gt=0)
    num_train_epochs: float = Field(1.0, gt=0)
    max_steps: int = -1
    per_device_train_batch_size: int = Field(4, gt=0)
    per_device_eval_batch_size: int = Field(8, gt=0)
    gradient_accumulation_steps: int = Field(1, gt=0)
    lr_scheduler_type: Literal["cosine", "linear", "constant"] = "cosine"
    warmup_steps: int = Field(0, ge=0)
    warmup_ratio: float = Field(0.0, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    max_grad_norm: float = Field(1.0, ge=0)
    seed: int = 42
    logging_steps: int = Field(1, gt=0)
    eval_steps: Optional[int] = Field(None, gt=0)
    save_steps: Optional[int] = Field(None, gt=0)
    save_total_limit: Optional[int] = Field(None, gt=0)
    resume_from_checkpoint: Optional[str] = None
    """``latest`` or a checkpoint dir."""
    mixed_precision: Literal["auto", "no", "bf16", "fp16"] = "auto"
    report_to: list[str] = Field(default_factory=lambda: ["tensorboard"])
    logprob_chunk_size: int = Field(1024, gt=0)
    """Tokens per chunk when turning hidden states into label log-probs."""

    @field_validator("mixed_precision", mode="before")
    @classmethod
    def _yaml_no(cls, value: Any) -> Any:
        # YAML reads a bare `no` (as in `mixed_precision: no`) as the boolean false.
        return "no" if value is False else value

    @field_validator("report_to", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        if value in (None, "none"):
            return []
        if isinstance(value, str):
            return [p.strip() for p in value.split(",") if p.strip()]
        return value


class OutputConfig(_Section):
    output_dir: str = "runs/dpo"
    overwrite_output_dir: bool = False


class Config(_Section):
    """The whole run configuration."""

    stage: Literal["sft", "dpo"] = "dpo"
    model: ModelConfig = Field(default_factory=ModelConfig)
    lora: LoraConfig = Field(default_factory=LoraConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    dpo: DPOConfig = Field(default_factory=DPOConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)

    @field_validator("stage", mode="before")
    @classmethod
    def _stage_alias(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value


SECTIONS: dict[str, type[_Section]] = {
    "model": ModelConfig,
    "lora": LoraConfig,
    "data": DataConfig,
    "dpo": DPOConfig,
    "training": TrainingConfig,
    "output": OutputConfig,
}

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


def parse_column_map(text: str) -> dict[str, str]:
    """Parse ``prompt=question,chosen=chatgpt`` into ``{"prompt": "question", ...}``."""
    mapping = {}
    for part in text.split(","):
        if not part.strip():
            continue
        if "=" not in part:
            raise DpokitError(
                f"column map entry '{part}' is not role=column",
                "write e.g. --columns prompt=question,chosen=chatgpt,rejected=llama2-13b-chat",
            )
        role, _, column = part.partition("=")
        mapping[role.strip()] = column.strip()
    return mapping


def _deep_merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _format_validation_error(err: ValidationError, where: str) -> DpokitError:
    lines = []
    for item in err.errors():
        path = ".".join(str(p) for p in item["loc"] if not str(p).startswith(("function-", "literal[")))
        lines.append(f"{where}: '{path}': {item['msg']} (got {item.get('input')!r})")
    return DpokitError("\n".join(lines), "fix the value(s) above; see the README's config section")


def build_config(raw: Optional[dict] = None, overrides: Optional[list[str]] = None, where: str = "config") -> Config:
    """Validate a user mapping plus ``key=value`` overrides into a :class:`Config`."""
    tree = normalise_tree(raw or {}, where)
    for text in overrides or []:
        key, value = parse_override(text)
        tree = _deep_merge(tree, normalise_tree({key: value}, f"override '{text}'"))
    try:
        return Config.model_validate(tree)
    except ValidationError as err:
        raise _format_validation_error(err, where) from None


def load_config(path: Optional[str | Path] = None, overrides: Optional[list[str]] = None) -> Config:
    """Read a YAML config file (optional) and apply overrides."""
    raw: dict = {}
    where = "config"
    if path is not None:
        path = Path(path)
        where = str(path)
        if not path.is_file():
            raise DpokitError(f"{path}: config file not found", "check the path")
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            line = f":{mark.line + 1}" if mark else ""
            raise DpokitError(f"{path}{line}: invalid YAML ({getattr(err, 'problem', err)})") from None
        except UnicodeDecodeError:
            raise DpokitError(f"{path}: not UTF-8 text", "save the config as UTF-8") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise DpokitError(f"{path}: a config must be a mapping of keys to values")
        raw = loaded
    return build_config(raw, overrides, where)


def dump_config(config: Config) -> str:
    """The resolved config as YAML (what a run dir keeps as ``config.yaml``)."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
