"""Open what a user points at (a run dir, a checkpoint, a model dir, a ``.gguf``, a name)
and load it for inference.

The run dir's layout and names are :mod:`dpokit.rundir`'s. :func:`open_model_or_run` only
reads small JSON/YAML files; :func:`load_for_inference` loads the weights. A LoRA run loads
its base model plus the adapter *without merging* (``PeftModel.from_pretrained``), so what is
evaluated or chatted with is exactly what was trained. A base that is itself a LoRA run or
adapter (``RUN_DIR/base`` of a DPO run trained on an SFT run) is merged once, cached, by
:func:`dpokit.start_model.materialise`. :func:`run_reference` says which reference a run
was trained against; evaluation and the DPO judge both ask it.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Union

from dpokit.errors import DpokitError
from dpokit.rundir import (
    CHECKPOINTS_DIR,
    CONFIG_YAML,
    FINAL_DIR,
    RUN_JSON,
    checkpoint_step,
    is_run_dir,
    list_checkpoints,
    read_json_object,
    read_run_json,
    resolve_in_run,
)

if TYPE_CHECKING:
    from dpokit.config import Config

ADAPTER_CONFIG = "adapter_config.json"
MODEL_CONFIG = "config.json"
# Where a checkpoint may keep its weights: the dir itself or one of these sub-dirs.
WEIGHT_SUBDIRS = ("", "adapter", "model", "policy", FINAL_DIR)
TOKENIZER_FILES = ("tokenizer_config.json", "tokenizer.json", "tokenizer.model")


@dataclass
class RunInfo:
    """What a model reference points at.

    ``base_model`` is the model the adapter sits on (LoRA) or the model a full fine-tune
    started from; for a plain model reference it is the reference itself. ``model_dir``
    is what gets loaded as the network's weights: the base for a LoRA run, ``final/``
    (or the checkpoint) for a full fine-tune, the reference for a plain model.
    """

    path: Optional[Path]
    """The run dir, or None for a plain model."""
    stage: Optional[str]
    """``"dpo"`` / ``"sft"`` for runs, None for plain models."""
    base_model: str
    adapter_dir: Optional[Path]
    config: Optional["Config"]
    model_dir: str = ""
    tokenizer_dir: str = ""
    """Where the tokenizer (and its chat template) is loaded from."""
    reference: Any = None
    """``run.json``'s reference spec (a string, a ``{"model": ...}`` dict or None)."""
    checkpoint: Optional[Path] = None
    """Set when the reference named a checkpoint rather than a run's final model."""
    kind: str = "model"
    """``run`` | ``checkpoint`` | ``adapter`` | ``model`` | ``gguf`` | ``embedded`` | ``hub``."""

    @property
    def is_lora(self) -> bool:
        return self.adapter_dir is not None

    def describe(self) -> str:
        """One line for logs: what will be loaded."""
        if self.adapter_dir is not None:
            return f"{self.base_model} + LoRA adapter {self.adapter_dir}"
        return self.model_dir or self.base_model


# ---------------------------------------------------------------- reading refs


def _weights_in(path: Path) -> tuple[Optional[Path], Optional[Path]]:
    """(adapter dir, full model dir) found in ``path`` or its usual sub-dirs; either may be None."""
    for sub in WEIGHT_SUBDIRS:
        candidate = path / sub if sub else path
        if (candidate / ADAPTER_CONFIG).is_file():
            return candidate, None
        if (candidate / MODEL_CONFIG).is_file():
            return None, candidate
    return None, None


def _has_tokenizer(path: Optional[Path]) -> bool:
    return path is not None and any((path / name).is_file() for name in TOKENIZER_FILES)


def _load_run_config(run_dir: Path) -> Optional["Config"]:
    path = run_dir / CONFIG_YAML
    if not path.is_file():
        return None
    from dpokit.config import load_config

    return load_config(path)


def _no_final_model_error(run_dir: Path) -> DpokitError:
    checkpoints = list_checkpoints(run_dir)
    if checkpoints:
        names = ", ".join(p.name for p in checkpoints[-5:])
        hint = (
            f"resume training with `dpokit train {run_dir / CONFIG_YAML} training.resume_from_checkpoint=latest`, "
            f"or use a checkpoint directly, e.g. {checkpoints[-1]}"
        )
        return DpokitError(f"{run_dir}: run has no final model ({FINAL_DIR}/ is missing); checkpoints: {names}", hint)
    return DpokitError(
        f"{run_dir}: run has no final model ({FINAL_DIR}/ is missing) and no checkpoints",
        "the run stopped before saving anything; train it again",
    )


def _run_info(run_dir: Path, weights_dir: Path, checkpoint: Optional[Path]) -> RunInfo:
    """RunInfo for a run's ``final/`` or one of its checkpoints (``weights_dir``)."""
    meta = read_run_json(run_dir)
    config = _load_run_config(run_dir)
    adapter, full = _weights_in(weights_dir)
    if adapter is None and full is None:
        raise DpokitError(
            f"{weights_dir}: no model weights found (expected {ADAPTER_CONFIG} or {MODEL_CONFIG})",
            "the checkpoint is incomplete; use another one or the run's final/ dir",
        )
    base = meta.get("base_model") or (config.model.name_or_path if config else None)
    if base is None and adapter is not None:
        base = read_json_object(adapter / ADAPTER_CONFIG).get("base_model_name_or_path")
    if not base:
        raise DpokitError(f"{run_dir}: cannot tell the base model (no base_model in {RUN_JSON}, no {CONFIG_YAML})")
    base = resolve_in_run(str(base), run_dir)
    stage = meta.get("stage") or (config.stage if config else None)
    own = adapter or full
    tokenizer_dir = own if _has_tokenizer(own) else (run_dir / FINAL_DIR if _has_tokenizer(run_dir / FINAL_DIR) else None)
    return RunInfo(
        path=run_dir,
        stage=stage,
        base_model=base,
        adapter_dir=adapter,
        config=config,
        model_dir=str(full) if full is not None else base,
        tokenizer_dir=str(tokenizer_dir) if tokenizer_dir is not None else base,
        reference=meta.get("reference"),
        checkpoint=checkpoint,
        kind="checkpoint" if checkpoint is not None else "run",
    )


def _enclosing_run(path: Path) -> tuple[Optional[Path], Optional[Path]]:
    """(run dir, checkpoint dir) when ``path`` is a run's final/ or checkpoints/checkpoint-N."""
    path = path.resolve()
    if path.name == FINAL_DIR and is_run_dir(path.parent):
        return path.parent, None
    if checkpoint_step(path) >= 0 and path.parent.name == CHECKPOINTS_DIR and is_run_dir(path.parent.parent):
        return path.parent.parent, path
    return None, None


def _check_causal_lm(model_dir: Path) -> None:
    """Fail early, naming the architecture, when a model dir is not a causal LM.

    ``architectures`` decides when the config lists it (a ``LlamaForSequenceClassification``
    reward model is a Llama, but not a text generator); else the ``model_type``.
    """
    config = read_json_object(model_dir / MODEL_CONFIG)
    if "AutoModelForCausalLM" in (config.get("auto_map") or {}):
        return
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    model_type = config.get("model_type")
    archs = config.get("architectures") or []
    causal_classes = set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values())
    if archs:
        if any(a in causal_classes or a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs):
            return
    elif model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        return
    raise DpokitError(
        f"{model_dir}: not a causal language model (model_type '{model_type}', "
        f"architectures: {', '.join(archs) or 'none listed'})",
        "dpokit needs a text-generation model (AutoModelForCausalLM), e.g. a Llama, Qwen or Mistral instruct model",
    )


def _model_dir_info(path: Path) -> RunInfo:
    _check_causal_lm(path)
    return RunInfo(path=None, stage=None, base_model=str(path), adapter_dir=None, config=None,
                   model_dir=str(path), tokenizer_dir=str(path), kind="model")


def _adapter_dir_info(path: Path) -> RunInfo:
    """A bare PEFT adapter dir (not inside a run): its base is in adapter_config.json."""
    base = read_json_object(path / ADAPTER_CONFIG).get("base_model_name_or_path")
    if base:
        base = resolve_in_run(str(base), path)  # a run's base/ copy may name base/base (a chain)
    if not base:
        raise DpokitError(f"{path / ADAPTER_CONFIG}: no 'base_model_name_or_path'", "cannot tell which model the adapter belongs to")
    return RunInfo(path=None, stage=None, base_model=base, adapter_dir=path, config=None, model_dir=base,
                   tokenizer_dir=str(path) if _has_tokenizer(path) else base, kind="adapter")


def open_model_or_run(ref: Union[str, Path]) -> RunInfo:
    """Work out what ``ref`` is, reading only small metadata files.

    Accepted: a run dir, its ``final/`` or a ``checkpoints/checkpoint-N`` dir, a PEFT
    adapter dir, a Hugging Face model dir, a ``.gguf`` file, an embedded model name
    (``smollm2-135m-instruct``) or a hub id. Raises :class:`DpokitError` for a path that
    does not exist, a run without a final model (naming its checkpoints), or a model
    dir that is not a causal LM.
    """
    from dpokit.models import EMBEDDED_MODELS

    text = str(ref)
    path = Path(text).expanduser()
    if path.exists():
        if path.is_file():
            if path.suffix == ".gguf":
                return RunInfo(path=None, stage=None, base_model=text, adapter_dir=None, config=None,
                               model_dir=text, tokenizer_dir=text, kind="gguf")
            raise DpokitError(f"{path}: a file, not a model", "pass a run dir, a model dir, a .gguf file or a model name")
        if is_run_dir(path):
            run_dir = path.resolve()
            if not (run_dir / FINAL_DIR).is_dir():
                raise _no_final_model_error(run_dir)
            return _run_info(run_dir, run_dir / FINAL_DIR, None)
        run_dir, checkpoint = _enclosing_run(path)
        if run_dir is not None:
            return _run_info(run_dir, path.resolve(), checkpoint)
        if (path / ADAPTER_CONFIG).is_file():
            return _adapter_dir_info(path.resolve())
        if (path / MODEL_CONFIG).is_file():
            return _model_dir_info(path.resolve())
        raise DpokitError(
            f"{path}: not a model dir, adapter dir or dpokit run dir (no {MODEL_CONFIG}, {ADAPTER_CONFIG} or {RUN_JSON})",
            "pass a run dir written by `dpokit train`, a Hugging Face model dir, a .gguf file or a model name",
        )
    if text.lower() in EMBEDDED_MODELS:
        return RunInfo(path=None, stage=None, base_model=text, adapter_dir=None, config=None,
                       model_dir=text, tokenizer_dir=text, kind="embedded")
    if text.startswith((".", "/", "~")) or text.count("/") > 1 or path.suffix == ".gguf":
        raise DpokitError(f"{text}: path does not exist", "check the path (a run dir, a model dir or a .gguf file)")
    return RunInfo(path=None, stage=None, base_model=text, adapter_dir=None, config=None,
                   model_dir=text, tokenizer_dir=text, kind="hub")


# ---------------------------------------------------------------- loading


def _dtype_name(dtype: Any) -> Optional[str]:
    if dtype is None:
        return None
    name = str(dtype).replace("torch.", "")
    if name not in ("auto", "float32", "bfloat16", "float16"):
        raise DpokitError(f"dtype '{dtype}' is not supported", "use auto, float32, bfloat16 or float16")
    return name


def inference_model_config(info: RunInfo, dtype: Any = None):
    """The ModelConfig to load ``info`` with: the run's own settings when it has a config.

    4/8-bit quantisation is kept only where it can run (CUDA + bitsandbytes); elsewhere a
    QLoRA run is loaded unquantised, which gives the same adapter on full-precision weights.
    """
    import importlib.util

    from dpokit.config import ModelConfig
    from dpokit.models import cuda_available

    cfg = info.config.model.model_copy() if info.config is not None else ModelConfig()
    if cfg.load_in_4bit or cfg.load_in_8bit:
        if not cuda_available() or importlib.util.find_spec("bitsandbytes") is None:
            cfg = cfg.model_copy(update={"load_in_4bit": False, "load_in_8bit": False})
    name = _dtype_name(dtype)
    if name is not None:
        cfg = cfg.model_copy(update={"dtype": name})
    return cfg


def load_for_inference(ref: Union[str, Path], *, dtype: Any = None, device: Any = None):
    """Load ``ref`` ready to generate or score: ``(model, tokenizer, RunInfo)``.

    A LoRA run (or adapter dir) loads base + adapter with ``PeftModel.from_pretrained``,
    not merged (a base that is itself a LoRA run is merged first: :func:`dpokit.start_model.materialise`). The model is in eval mode on ``device`` (default: CUDA when available,
    else CPU). The tokenizer is the run's own (with its chat template) where saved.
    """
    from dpokit.models import cuda_available, load_model
    from dpokit.start_model import materialise

    info = open_model_or_run(ref)
    model_cfg = inference_model_config(info, dtype)
    quantised = model_cfg.load_in_4bit or model_cfg.load_in_8bit
    model = load_model(model_cfg, materialise(info.model_dir))
    if info.adapter_dir is not None:
        model = attach_adapter(model, info)
    if not quantised:
        model.to(device or ("cuda" if cuda_available() else "cpu"))
    model.eval()
    tokenizer = load_run_tokenizer(info, trust_remote_code=model_cfg.trust_remote_code)
    return model, tokenizer, info


def attach_adapter(model, info: RunInfo, adapter_name: str = "default"):
    """``model`` with the run's LoRA adapter, frozen, not merged.

    A plain model comes back wrapped in a ``PeftModel``; a ``PeftModel`` gets the adapter
    added under ``adapter_name`` (so several runs on one base share its weights, as
    ``dpokit serve`` does) and comes back as it is.
    """
    from peft import PeftModel

    try:
        with warnings.catch_warnings():  # a deprecation notice from inside transformers/peft
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            if isinstance(model, PeftModel):
                model.load_adapter(str(info.adapter_dir), adapter_name=adapter_name, is_trainable=False)
                return model
            return PeftModel.from_pretrained(model, str(info.adapter_dir), adapter_name=adapter_name,
                                             is_trainable=False)
    except (ValueError, OSError, RuntimeError, KeyError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DpokitError(
            f"{info.adapter_dir}: cannot load the LoRA adapter onto {info.base_model} ({first})",
            "check that the run's base model is the one the adapter was trained on",
        ) from None


def load_run_tokenizer(info: RunInfo, trust_remote_code: bool = False):
    """The tokenizer a run saved beside its weights (an adapter dir has no config.json,
    which :func:`dpokit.models.load_tokenizer` needs), else the base model's."""
    from dpokit.models import load_tokenizer

    path = Path(info.tokenizer_dir)
    if not (path.is_dir() and _has_tokenizer(path) and not (path / MODEL_CONFIG).is_file()):
        return load_tokenizer(info.tokenizer_dir, trust_remote_code=trust_remote_code)
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path), trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as err:
        raise DpokitError(f"{path}: cannot load the tokenizer ({str(err).splitlines()[0]})") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    return tokenizer


# ---------------------------------------------------------------- a run's reference


def run_reference(info: RunInfo) -> Optional[str]:
    """The reference ``info``'s run was trained against, as a model reference to load.

    ``"adapter"`` (a LoRA run's base: the policy with its adapter switched off), a model
    reference (a full fine-tune's start model, or ``dpo.reference: {model: PATH}``), or None
    (a plain model, an SFT run, a reference-free loss such as SimPO/ORPO, ``dpo.reference:
    none``). Evaluation and the DPO judge both ask this; nothing else decides it.
    """
    if info.kind == "adapter":
        return "adapter"
    if info.path is None or info.stage == "sft":
        return None
    config = info.config
    spec = info.reference if info.reference is not None else (config.dpo.reference if config is not None else None)
    if isinstance(spec, dict):
        spec = spec.get("model")
    elif hasattr(spec, "model"):
        spec = spec.model
    if (config is not None and config.dpo.reference_free) or spec in (None, "none"):
        return None
    if spec in ("precompute", "adapter"):  # both mean: the model training started from
        return "adapter" if info.is_lora else info.base_model
    return resolve_in_run(str(spec), info.path)
