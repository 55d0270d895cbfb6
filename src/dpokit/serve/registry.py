"""What `dpokit serve` serves: names -> loaded models, LoRA runs sharing one base.

Each ``NAME=REF`` is opened with :func:`dpokit.runs.open_model_or_run` (anything the other
commands take). References are grouped by the weights they run on (the base model for a
LoRA run, the model itself otherwise, with the load settings that change the weights:
dtype, quantisation, attention). Each group is loaded ONCE with
:func:`dpokit.runs.load_for_inference`; further LoRA runs of the group are added to the same
``PeftModel`` with ``load_adapter`` under their own adapter name, and the base model itself is
served from that ``PeftModel`` with its adapters disabled (as vLLM's ``--lora-modules``).
So N LoRA runs of one base cost one base plus N small adapters.

Names: the run dir's name by default (``quickstart``; a checkpoint is
``quickstart-checkpoint-50``), the dir or file name of a model, the name as given for an
embedded or hub model; ``--model NAME=REF`` chooses one. The base of a LoRA run is served
too, under its own default name, unless it already is (``include_bases=False`` turns that off).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from dpokit.errors import DpokitError

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,127}$")


@dataclass
class ModelSpec:
    """One model to serve as the user gave it."""

    ref: str
    name: Optional[str] = None
    """None: the default name for the reference."""


@dataclass
class ModelGroup:
    """One set of loaded weights and everything served from it.

    ``model`` is a ``PeftModel`` when any member is a LoRA run (its adapters loaded under
    the members' ``adapter`` names), else the plain model.
    """

    key: tuple
    model: Any
    is_peft: bool = False
    members: list["ServedModel"] = field(default_factory=list)
    context_length: Optional[int] = None


@dataclass
class ServedModel:
    """One served name."""

    name: str
    ref: str
    info: Any
    """:class:`dpokit.runs.RunInfo` of the reference."""
    tokenizer: Any
    renderer: Any
    """:class:`dpokit.render.Renderer` with the run's data settings."""
    group: ModelGroup
    adapter: Optional[str] = None
    """The PEFT adapter name inside ``group.model``; None for the base (adapters disabled) or a plain model."""
    parent: Optional[str] = None
    """The served name of the base, for a LoRA adapter."""

    @property
    def model(self):
        return self.group.model

    @property
    def context_length(self) -> Optional[int]:
        return self.group.context_length


def parse_specs(refs: Sequence[str], named: Sequence[str]) -> list[ModelSpec]:
    """Positional references and ``NAME=REF`` strings -> specs (named ones after positional ones)."""
    specs = [ModelSpec(str(r)) for r in refs]
    for text in named:
        name, sep, ref = str(text).partition("=")
        if not sep or not name.strip() or not ref.strip():
            raise DpokitError(f"--model {text}: expected NAME=MODEL_OR_RUN", "e.g. --model tuned=runs/quickstart")
        specs.append(ModelSpec(ref.strip(), name.strip()))
    for spec in specs:
        if spec.name is not None and not NAME_PATTERN.match(spec.name):
            raise DpokitError(f"--model {spec.name}=...: invalid name",
                              "use letters, digits and . _ - : / @ + (up to 128 characters)")
    return specs


def default_name(ref: str, info) -> str:
    """The name a reference is served under when none is given."""
    if info.kind == "checkpoint" and info.path is not None and info.checkpoint is not None:
        return f"{info.path.name}-{info.checkpoint.name}"
    if info.kind == "run" and info.path is not None:
        return info.path.name
    if info.kind in ("adapter", "model", "gguf"):
        path = Path(ref).expanduser().resolve()
        if info.kind == "gguf":
            return path.stem
        return path.parent.name if path.name == "final" else path.name
    return str(ref)


def weights_key(info, dtype: Any = None) -> tuple:
    """What makes two references run on the same weights: the loaded dir and its load settings."""
    from dpokit.models import resolve_model_path
    from dpokit.runs import inference_model_config

    cfg = inference_model_config(info, dtype)
    where = resolve_model_path(info.model_dir)
    if Path(where).exists():
        where = str(Path(where).resolve())
    return (where, cfg.dtype, cfg.load_in_4bit, cfg.load_in_8bit, cfg.trust_remote_code, cfg.attn_implementation)


def context_length_of(model, tokenizer) -> Optional[int]:
    """The most tokens (prompt + answer) the model takes: its config's position limit."""
    config = getattr(model, "config", None)
    for attr in ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length"):
        value = getattr(config, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    value = getattr(tokenizer, "model_max_length", None)
    return value if isinstance(value, int) and 0 < value < 10**7 else None


class Registry:
    """Served names -> :class:`ServedModel`, in the order given."""

    def __init__(self, models: Sequence[ServedModel]):
        self.models: dict[str, ServedModel] = {m.name: m for m in models}
        self.groups: list[ModelGroup] = []
        for m in models:
            if all(m.group is not g for g in self.groups):
                self.groups.append(m.group)

    @property
    def names(self) -> list[str]:
        return list(self.models)

    def get(self, name: str) -> Optional[ServedModel]:
        return self.models.get(name)


def _say(text: str) -> None:
    print(f"dpokit: {text}", file=sys.stderr, flush=True)


def load_registry(specs: Sequence[ModelSpec], *, dtype: Any = None, device: Any = None,
                  include_bases: bool = True, say=_say) -> Registry:
    """Open every reference, then load each group of shared weights once (see the module docstring)."""
    from dpokit.render import Renderer
    from dpokit.runs import open_model_or_run

    if not specs:
        from dpokit.config import DEFAULT_MODEL

        specs = [ModelSpec(DEFAULT_MODEL)]
    opened = []  # (name, ref, info, key, explicit)
    for spec in specs:
        info = open_model_or_run(spec.ref)
        opened.append([spec.name or default_name(spec.ref, info), spec.ref, info, weights_key(info, dtype)])
    if include_bases:
        served_dirs = {key[0] for _, _, info, key in opened if not info.is_lora}
        for name, ref, info, key in list(opened):
            if info.is_lora and key[0] not in served_dirs:
                # Served from the run's weights (its load settings), with the adapters disabled.
                base_info = open_model_or_run(info.base_model)
                opened.append([default_name(info.base_model, base_info), info.base_model, base_info, key])
                served_dirs.add(key[0])
    names = [o[0] for o in opened]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise DpokitError(f"two models would be served as '{duplicates[0]}'",
                          "name them: --model NAME=MODEL_OR_RUN (e.g. --model tuned=runs/quickstart)")

    groups: dict[tuple, list[list]] = {}
    for entry in opened:
        groups.setdefault(entry[3], []).append(entry)
    served: list[ServedModel] = []
    for key, members in groups.items():
        served.extend(_load_group(key, members, dtype, device, Renderer, say))
    order = {name: i for i, name in enumerate(names)}
    served.sort(key=lambda m: order[m.name])
    return Registry(served)


def _load_group(key: tuple, members: list[list], dtype, device, renderer_cls, say) -> list[ServedModel]:
    """Load one set of weights and attach every member to it."""
    from dpokit.runs import attach_adapter, inference_model_config, load_for_inference, load_run_tokenizer

    loras = [m for m in members if m[2].is_lora]
    plain = [m for m in members if not m[2].is_lora]
    first = loras[0] if loras else plain[0]
    say(f"loading {first[2].describe()} ...")
    model, tokenizer, _ = load_for_inference(first[1], dtype=dtype, device=device)
    group = ModelGroup(key=key, model=model, is_peft=bool(loras))
    group.context_length = context_length_of(model, tokenizer)
    out: list[ServedModel] = []
    base_name = plain[0][0] if plain else None
    for k, (name, ref, info, _) in enumerate(loras):
        adapter = "default" if k == 0 else f"adapter_{k}"
        tok = tokenizer
        if k > 0:
            say(f"adding LoRA adapter {info.adapter_dir} (shares the base weights)")
            attach_adapter(model, info, adapter)
            tok = load_run_tokenizer(info, trust_remote_code=inference_model_config(info, dtype).trust_remote_code)
        out.append(ServedModel(name=name, ref=ref, info=info, tokenizer=tok, renderer=renderer_cls.for_run(tok, info),
                               group=group, adapter=adapter, parent=base_name))
    for name, ref, info, _ in plain:
        tok = tokenizer if not loras else load_run_tokenizer(
            info, trust_remote_code=inference_model_config(info, dtype).trust_remote_code)
        out.append(ServedModel(name=name, ref=ref, info=info, tokenizer=tok, renderer=renderer_cls.for_run(tok, info),
                               group=group))
    group.members = out
    return out
