"""Export a run as a plain Hugging Face model dir: LoRA merged into its base.

The result loads with ``AutoModelForCausalLM.from_pretrained`` alone (no dpokit, no
peft): safetensors weights, ``config.json``, ``generation_config.json`` and the tokenizer
with its chat template. It is written into a temp dir beside ``out_dir`` and renamed, so
an interrupted export never leaves a dir that looks complete.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Union

from dpokit.errors import DpokitError
from dpokit.outputs import check_new_dir, staged_dir
from dpokit.runs import RunInfo, attach_adapter, load_run_tokenizer, open_model_or_run


def check_output_dir(out_dir: Path) -> None:
    """Refuse an output dir that exists and holds anything (nothing is ever overwritten)."""
    check_new_dir(out_dir, "output dir for the merged model")


def _write_merged(info: RunInfo, tmp: Path) -> None:
    """Load base + adapter on CPU in the base's stored dtype, merge, save into ``tmp``."""
    from transformers import AutoModelForCausalLM

    from dpokit.models import resolve_model_path
    from dpokit.start_model import materialise

    # A base that is itself a LoRA run is merged first; an embedded name or .gguf becomes its cached dir.
    base_path = resolve_model_path(materialise(info.base_model))
    trust = bool(info.config and info.config.model.trust_remote_code)
    try:
        base = AutoModelForCausalLM.from_pretrained(base_path, dtype="auto", trust_remote_code=trust)
    except (OSError, ValueError) as err:
        raise DpokitError(f"{info.base_model}: cannot load the base model to merge into ({str(err).splitlines()[0]})") from None
    merged = attach_adapter(base, info).merge_and_unload()
    # The adapter's base path is meaningless to whoever receives the merged dir.
    merged.config._name_or_path = ""
    merged.save_pretrained(tmp, safe_serialization=True)
    load_run_tokenizer(info, trust_remote_code=trust).save_pretrained(tmp)


def _copy_full_model(info: RunInfo, tmp: Path) -> None:
    """A full fine-tune is already a plain model dir: copy its files (tokenizer included)."""
    source = Path(info.model_dir)
    for item in source.iterdir():
        if item.is_dir():
            shutil.copytree(item, tmp / item.name)
        else:
            shutil.copy2(item, tmp / item.name)
    if not any((tmp / name).is_file() for name in ("tokenizer_config.json", "tokenizer.json")):
        load_run_tokenizer(info).save_pretrained(tmp)


def merge_lora(run_or_adapter: Union[str, Path], out_dir: Union[str, Path]) -> Path:
    """Merge a LoRA run (or adapter dir, or checkpoint) into its base; write a plain HF model dir.

    A full fine-tune run is copied as it is. ``out_dir`` must not exist or be empty.
    Returns ``out_dir``.
    """
    out_dir = Path(out_dir).expanduser()
    check_output_dir(out_dir)
    info = open_model_or_run(run_or_adapter)
    if info.adapter_dir is None and info.path is None:
        raise DpokitError(
            f"{run_or_adapter}: not a LoRA run or adapter, nothing to merge",
            "pass a run dir written by `dpokit train` (or a PEFT adapter dir)",
        )
    with staged_dir(out_dir) as tmp:
        if info.adapter_dir is not None:
            print(f"dpokit: merging {info.adapter_dir} into {info.base_model}...", file=sys.stderr)
            _write_merged(info, tmp)
        else:
            _copy_full_model(info, tmp)
    return out_dir
