"""Every user error a config can hold that needs no model or data: checked before anything slow happens."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dpokit.errors import DpokitError

if TYPE_CHECKING:
    from dpokit.config import Config


def check_config(config: "Config") -> None:
    """Raise :class:`DpokitError` for settings that cannot work on this machine or together."""
    from dpokit.devices import resolve_mixed_precision
    from dpokit.metrics_log import check_reporters
    from dpokit.models import check_quantisation
    from dpokit.reference import check_reference_mode

    check_quantisation(config.model)
    check_reporters(config.training.report_to)
    check_reference_mode(config)
    if (config.model.load_in_4bit or config.model.load_in_8bit) and not config.lora.enabled:
        raise DpokitError("model.load_in_4bit/8bit needs LoRA: quantised weights cannot be trained directly",
                          "set lora.enabled: true (QLoRA), or turn quantisation off for full fine-tuning")
    if not config.lora.enabled and config.model.dtype == "float16" and resolve_mixed_precision(
            config.training.mixed_precision) == "fp16":
        raise DpokitError("full fine-tuning of float16 weights with fp16 mixed precision cannot work: the gradient "
                          "scaler needs float32 weights to update",
                          "set model.dtype: float32 (fp16 compute stays), or bfloat16 with training.mixed_precision: bf16")
