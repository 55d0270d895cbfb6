"""Devices and precision: the ``accelerate.Accelerator`` a run uses, and metric reduction across processes.

``accelerate`` places the model, runs mixed precision and, under ``accelerate launch``,
shards the data across processes (DDP, FSDP, DeepSpeed). dpokit makes one Accelerator per
run and asks nothing else of the distributed setup.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dpokit.errors import DpokitError

if TYPE_CHECKING:
    import torch
    from accelerate import Accelerator

    from dpokit.config import Config


# Tests (and anyone who wants the same fp32 numbers on every CPU) set this to 0; 1 forces bf16.
CPU_BF16_ENV = "DPOKIT_CPU_BF16"


def cpu_has_native_bf16() -> bool:
    """Whether this CPU has bf16 dot-product instructions (AVX512-BF16 or AMX).

    Only there is bf16 autocast faster than fp32 (measured on an AMX CPU: 1.25x per training step,
    1.8x for the reference pass); elsewhere PyTorch emulates bf16 and it is slower.
    """
    import os

    import torch

    forced = os.environ.get(CPU_BF16_ENV)
    if forced in ("0", "1"):
        return forced == "1"
    # torch.cpu's probes are private API: a release without them means fp32, never an error.
    probes = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(probe() for probe in probes if probe is not None)


def resolve_mixed_precision(setting: str) -> str:
    """``auto``: bf16 on CUDA where supported, else fp16 on CUDA; on a CPU bf16 where it has bf16
    instructions, else fp32 (``no``)."""
    import torch

    if setting == "fp16" and not torch.cuda.is_available():
        raise DpokitError("training.mixed_precision: fp16 needs a CUDA GPU", "use auto, no or bf16 on this machine")
    if setting != "auto":
        return setting
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if cpu_has_native_bf16() else "no"


def make_accelerator(config: "Config") -> "Accelerator":
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    # accelerate keeps its settings process-wide; a second train() in the same process (a
    # notebook, a sweep) may ask for others. The distributed setup (PartialState) stays.
    AcceleratorState._reset_state(reset_partial_state=False)
    return Accelerator(
        mixed_precision=resolve_mixed_precision(config.training.mixed_precision),
        gradient_accumulation_steps=config.training.gradient_accumulation_steps,
    )


def mean_across_processes(accelerator: "Accelerator", values: dict[str, "torch.Tensor"]) -> dict[str, float]:
    """Each 0-dim tensor averaged over the processes, as floats."""
    import torch

    names = sorted(values)
    if not names:
        return {}
    stacked = torch.stack([values[n].float().to(accelerator.device) for n in names])
    if accelerator.num_processes > 1:
        stacked = accelerator.reduce(stacked, "mean")
    return dict(zip(names, stacked.tolist()))


def sum_across_processes(accelerator: "Accelerator", value: "torch.Tensor") -> "torch.Tensor":
    return accelerator.reduce(value, "sum") if accelerator.num_processes > 1 else value
