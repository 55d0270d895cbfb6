"""Configuration: the pydantic schema, YAML loading and dumping.

A config is nested (``model.name_or_path``, ``dpo.beta``, ...) and validated here; the keys
users may write instead (flat names from PAI-QuickStart, TRL and LLaMA-Factory such as
``dpo_beta``, ``lora_dim``, ``cutoff_len``; unique leaf names; ``key=value`` overrides) are
translated by :mod:`dpokit.config_keys`. Unknown keys are errors naming the nearest valid key.

Relative paths in a config (data files, output dir) are read from the working directory,
as TRL and LLaMA-Factory read them; :func:`check_relative_paths` gives a hint when a data
file sits next to the config instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Optional, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

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

    _adjustments: list[str] = PrivateAttr(default_factory=list)

    train_files: list[str] = Field(default_factory=lambda: ["demo:train"])
    """Files or dirs; ``demo:train`` / ``demo:heldout`` are the bundled demo set."""
    eval_files: list[str] = Field(default_factory=list)
    eval_fraction: float = Field(0.0, ge=0, lt=1)
    """Held-out fraction of the train prompts used for eval when no eval_files are given (whole prompts)."""
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

    @model_validator(mode="after")
    def _prompt_fits(self) -> "DataConfig":
        # `seq_length: 256` (PAI) or `cutoff_len: 256` (LLaMA-Factory) alone would leave the
        # default max_prompt_length (512) at or above the whole length: no room for any answer.
        if self.max_prompt_length < self.max_length or "max_prompt_length" in self.model_fields_set:
            return self  # set on purpose: pairs whose prompt fills max_length are dropped and counted
        was, clamped = self.max_prompt_length, max(1, self.max_length // 2)
        object.__setattr__(self, "max_prompt_length", clamped)
        self.model_fields_set.add("max_prompt_length")
        self._adjustments.append(f"data.max_prompt_length set to {clamped}, half of data.max_length {self.max_length} "
                                 f"(the default {was} would leave no room for answers); set it to choose another value")
        return self

    @property
    def adjustments(self) -> list[str]:
        """Defaults validation changed to fit the other settings (for commands to say)."""
        return list(self._adjustments)


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
    group_by_length: bool = False
    """Put pairs of similar length in the same micro-batch, and score eval pairs longest first (less padding;
    the train order differs from TRL's)."""

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


class IterateConfig(_Section):
    """``dpokit iterate``: rounds of generate -> judge -> pairs -> DPO (see :mod:`dpokit.iterate`).

    Three names differ from the issue's (``sampling_seed``, ``pairing``, ``reference_round``):
    ``seed``, ``pair_strategy`` and ``reference`` are already unique flat keys of other sections.
    """

    rounds: int = Field(2, ge=1)
    """Training rounds; round 0 is the starting model, measured only."""
    prompts: Optional[str] = None
    """Training prompts: any prompt file ``dpokit generate --prompts`` reads."""
    eval_prompts: Optional[str] = None
    """Held-out prompts the loop only measures on (greedy answers)."""
    candidates: int = Field(4, ge=2)
    """Answers sampled per training prompt each round."""
    temperature: float = Field(0.8, gt=0)
    top_p: float = Field(0.95, gt=0, le=1)
    max_new_tokens: int = Field(128, gt=0)
    sampling_seed: int = 0
    """Round k samples with seed ``sampling_seed + k``."""
    judge: Optional[str] = None
    """``rm:PATH``, ``dpo:RUN_DIR``, ``openai:URL#MODEL``, ``python:FILE.py:FUNCTION`` or ``human``."""
    eval_judge: Optional[str] = None
    """The judge of the held-out measurement (default: ``judge``; needed for a human judge)."""
    min_decided: float = Field(1.0, gt=0, le=1)
    """With ``judge: human``: the share of a round's shown prompts people must decide (a tie or a
    skip counts) before the round trains; the prompts still undecided then are left out of it."""
    pairing: Literal["best_vs_worst", "best_vs_each", "all_pairs"] = "best_vs_worst"
    """How scored candidates become pairs, as ``data.pair_strategy`` for ranked data."""
    min_margin: float = Field(0.0, ge=0)
    """A pair is made only when its two scores differ by at least this much (and by more than 0)."""
    reference_round: Literal["previous", "initial"] = "previous"
    """Round k's DPO reference: round k-1's policy, or the starting model."""
    mix: float = Field(0.0, ge=0, le=1)
    """Share of the offline pairs (``data.train_files``) sampled afresh into each round's training data."""


class Config(_Section):
    """The whole run configuration."""

    stage: Literal["sft", "dpo"] = "dpo"
    model: ModelConfig = Field(default_factory=ModelConfig)
    lora: LoraConfig = Field(default_factory=LoraConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    dpo: DPOConfig = Field(default_factory=DPOConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    iterate: Optional[IterateConfig] = None
    """Only in ``dpokit iterate`` configs."""

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
    "iterate": IterateConfig,
}

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


def _format_validation_error(err: ValidationError, where: str) -> DpokitError:
    lines = []
    for item in err.errors():
        path = ".".join(str(p) for p in item["loc"] if not str(p).startswith(("function-", "literal[")))
        lines.append(f"{where}: '{path}': {item['msg']} (got {item.get('input')!r})")
    return DpokitError("\n".join(lines), "fix the value(s) above; see the README's config section")


def build_config(raw: Optional[dict] = None, overrides: Optional[list[str]] = None, where: str = "config") -> Config:
    """Validate a user mapping plus ``key=value`` overrides into a :class:`Config`."""
    from dpokit.config_keys import deep_merge, normalise_tree, parse_override

    tree = normalise_tree(raw or {}, where)
    for text in overrides or []:
        key, value = parse_override(text)
        tree = deep_merge(tree, normalise_tree({key: value}, f"override '{text}'"))
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
    """The resolved config as YAML (what a run dir keeps as ``config.yaml``; no ``iterate:`` unless set)."""
    data = config.model_dump(mode="json")
    if data.get("iterate") is None:
        data.pop("iterate", None)
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def check_relative_paths(config: Config, config_path: Optional[str | Path]) -> None:
    """Relative paths in a config are read from the working directory (as TRL and LLaMA-Factory do).

    A data file that is missing from there but sits next to the config file is the usual
    slip; say so, with the path to write instead.
    """
    if config_path is None or config.data.registry:
        return
    folder = Path(config_path).parent
    for key in ("train_files", "eval_files"):
        for name in getattr(config.data, key):
            path = Path(name).expanduser()
            if name.startswith("demo:") or path.is_absolute() or path.exists() or not (folder / path).exists():
                continue
            raise DpokitError(
                f"{config_path}: data.{key}: {name}: file not found (relative paths in a config are read from "
                f"the working directory, {Path.cwd()})",
                f"it is next to the config: write {folder / path}, an absolute path, or run dpokit from {folder}",
            )
