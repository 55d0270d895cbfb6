"""The run directory: its layout, its names, how it is created, replaced and written. The one owner.

A run dir is the unit a user keeps: everything needed to resume, evaluate, merge, serve or
reproduce a run is in it, in open formats::

    RUN_DIR/config.yaml         the resolved config (the run's settings, not how this invocation got there)
    RUN_DIR/run.json            {"stage", "base_model", "adapter", "reference", "mixed_precision" (what
                                `auto` became), "dpokit_version", ...}
    RUN_DIR/data_report.json    what was loaded, dropped and truncated (dpokit.data.report)
    RUN_DIR/metrics.jsonl       one JSON object per logged step (dpokit.metrics_log)
    RUN_DIR/tensorboard/        TensorBoard events
    RUN_DIR/checkpoints/checkpoint-<step>/   resumable state (dpokit.checkpoint)
    RUN_DIR/final/              a PEFT adapter dir or a full model dir, with the tokenizer
    RUN_DIR/base/               the LoRA adapter this run's base model carries, when the run was
                                trained on top of another LoRA run (SFT then DPO); run.json's
                                ``base_model`` is then ``"base"``, so the dir is self-contained
    RUN_DIR/plots/*.png, eval.json, quickstart.json, README.md (model card)

Opening what a user points at (a run, one of its checkpoints, a model) is
:mod:`dpokit.runs`; writing checkpoints is :mod:`dpokit.checkpoint`. Both take their names
and lookups from here. Every write goes through :mod:`dpokit.outputs` (atomic, umask modes).
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Union

from dpokit.errors import DpokitError
from dpokit.outputs import make_dirs, os_errors, write_file, write_json

if TYPE_CHECKING:
    from accelerate import Accelerator

    from dpokit.config import Config

RUN_JSON = "run.json"
CONFIG_YAML = "config.yaml"
DATA_REPORT = "data_report.json"
METRICS_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"
CHECKPOINTS_DIR = "checkpoints"
FINAL_DIR = "final"
BASE_DIR = "base"
PLOTS_DIR = "plots"
EVAL_JSON = "eval.json"
QUICKSTART_JSON = "quickstart.json"
MODEL_CARD = "README.md"

RUN_ENTRIES = (CONFIG_YAML, RUN_JSON, DATA_REPORT, METRICS_FILE, TENSORBOARD_DIR, CHECKPOINTS_DIR, FINAL_DIR,
               BASE_DIR, PLOTS_DIR, EVAL_JSON, QUICKSTART_JSON, MODEL_CARD)
"""What a run dir holds; replacing a run (``overwrite_output_dir``) moves these and nothing else."""

TRAINER_STATE = "trainer_state.json"
"""Written last into a checkpoint: a checkpoint dir without it is not complete."""
TMP_PREFIX = ".tmp-"
PREVIOUS_DIR = ".previous-run"
_CHECKPOINT_NAME = re.compile(r"checkpoint-(\d+)")

RESUME_KEYS = {"training.resume_from_checkpoint", "output.overwrite_output_dir"}
"""Settings expected to change between a run and its resumption."""


# ---------------------------------------------------------------- lookups


def is_run_dir(path: Path) -> bool:
    """A dir ``dpokit train`` wrote: it has run.json, or config.yaml beside final/ or checkpoints/."""
    path = Path(path)
    return (path / RUN_JSON).is_file() or (
        (path / CONFIG_YAML).is_file() and ((path / FINAL_DIR).is_dir() or (path / CHECKPOINTS_DIR).is_dir())
    )


def checkpoint_step(path: Union[str, Path]) -> int:
    """The step a ``checkpoint-<step>`` dir was saved at, or -1 for any other name."""
    match = _CHECKPOINT_NAME.fullmatch(Path(path).name)
    return int(match.group(1)) if match else -1


def list_checkpoints(run_dir: Union[str, Path]) -> list[Path]:
    """The run's complete checkpoints, oldest first.

    Complete means named ``checkpoint-<step>`` and holding ``trainer_state.json``; the temp
    dirs of a save that was killed (``.tmp-checkpoint-<step>``) never count.
    """
    root = Path(run_dir) / CHECKPOINTS_DIR
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and checkpoint_step(p) >= 0 and (p / TRAINER_STATE).is_file()]
    return sorted(found, key=checkpoint_step)


def latest_checkpoint(run_dir: Union[str, Path]) -> Optional[Path]:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def read_json_object(path: Union[str, Path]) -> dict[str, Any]:
    """A small JSON file holding one object (run.json, config.json, adapter_config.json); damage is a clear error."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DpokitError(f"{path}:{err.lineno}: invalid JSON ({err.msg})",
                          "the file is damaged; restore it or re-create it") from None
    except UnicodeDecodeError:
        raise DpokitError(f"{path}: not UTF-8 text") from None
    except OSError as err:
        raise DpokitError(f"{path}: cannot read ({err.strerror or err})") from None
    if not isinstance(data, dict):
        raise DpokitError(f"{path}: expected a JSON object")
    return data


def read_run_json(run_dir: Union[str, Path]) -> dict[str, Any]:
    """``RUN_DIR/run.json`` as a dict ({} when there is none)."""
    path = Path(run_dir) / RUN_JSON
    return read_json_object(path) if path.is_file() else {}


def resolve_in_run(name: str, run_dir: Path) -> str:
    """A path run.json gives relative to its run dir (``base``) as an absolute path; anything else as is."""
    candidate = Path(name).expanduser()
    if not candidate.is_absolute() and (run_dir / candidate).exists():
        return str((run_dir / candidate).resolve())
    return name


# ---------------------------------------------------------------- writes


def write_run_json(run_dir: Union[str, Path], *, stage: str, base_model: str, adapter: bool,
                   reference: Any = None, **extra: Any) -> Path:
    """Write ``RUN_DIR/run.json`` (the contract :mod:`dpokit.runs` reads), atomically."""
    from dpokit import __version__

    run_dir = make_dirs(run_dir)
    data = {"stage": stage, "base_model": base_model, "adapter": adapter, "reference": reference,
            **extra, "dpokit_version": __version__}
    return write_json(run_dir / RUN_JSON, data)


def write_run_file(run_dir: Union[str, Path], name: str, text: str) -> Path:
    return write_file(Path(run_dir) / name, text)


# ---------------------------------------------------------------- creating and replacing


def say(accelerator: "Accelerator", text: str) -> None:
    if accelerator.is_main_process:
        print(f"dpokit: {text}", file=sys.stderr, flush=True)


def check_run_dir(config: "Config") -> tuple[Path, Optional[Path]]:
    """The run dir, and the checkpoint to resume from (None for a fresh run). Changes nothing.

    A non-empty output dir is an error unless the run resumes from it or
    ``overwrite_output_dir`` is set (it is replaced later, by :class:`PreviousRun`, once the
    new run's config, data and model have all been checked).
    """
    run_dir = Path(config.output.output_dir).expanduser()
    if run_dir.exists() and not run_dir.is_dir():
        raise DpokitError(f"output.output_dir: {run_dir} is a file", "choose a directory for the run")
    spec = config.training.resume_from_checkpoint
    if spec:
        return run_dir, resolve_resume_path(spec, run_dir)
    if run_dir.is_dir() and any(run_dir.iterdir()) and not config.output.overwrite_output_dir:
        raise DpokitError(
            f"output.output_dir: {run_dir} exists and is not empty (nothing was changed)",
            "continue it with training.resume_from_checkpoint=latest, replace it with "
            "output.overwrite_output_dir=true, or choose another output.output_dir",
        )
    return run_dir, None


def resolve_resume_path(spec: str, run_dir: Path) -> Path:
    """Turn ``resume_from_checkpoint`` (``latest`` or a dir) into a checkpoint dir, or explain why not."""
    if spec == "latest":
        found = latest_checkpoint(run_dir)
        if found is None:
            raise DpokitError(
                f"training.resume_from_checkpoint: latest: no checkpoint in {Path(run_dir) / CHECKPOINTS_DIR}",
                "set training.save_steps so runs write checkpoints, or start fresh with output.overwrite_output_dir=true",
            )
        return found
    path = Path(spec).expanduser()
    if not (path / TRAINER_STATE).is_file():
        raise DpokitError(
            f"training.resume_from_checkpoint: {path}: not a dpokit checkpoint (no {TRAINER_STATE})",
            f"pass 'latest' or a dir like {Path(run_dir) / CHECKPOINTS_DIR / 'checkpoint-100'}",
        )
    return path


def remove_incomplete_checkpoints(run_dir: Path) -> None:
    """Delete temp dirs left by a save that was killed (never a complete checkpoint)."""
    root = Path(run_dir) / CHECKPOINTS_DIR
    if root.is_dir():
        for path in root.iterdir():
            if path.name.startswith(TMP_PREFIX):
                shutil.rmtree(path, ignore_errors=True)


class PreviousRun:
    """The entries of a run being replaced (``overwrite_output_dir``), moved aside, not deleted.

    They stay in ``RUN_DIR/.previous-run/`` until the new run has started training
    (:meth:`discard`); if it fails before that, :meth:`restore` puts them back and removes
    what the new run wrote. Only the main process moves files.
    """

    def __init__(self, run_dir: Path, accelerator: "Accelerator"):
        self.run_dir, self.accelerator = Path(run_dir), accelerator
        self.aside = self.run_dir / PREVIOUS_DIR
        self.moved: list[str] = []
        if accelerator.is_main_process and self.run_dir.is_dir():
            with os_errors(self.run_dir, "cannot move the previous run aside"):
                if self.aside.exists():  # left by a replacement that was killed: that run was already kept once
                    shutil.rmtree(self.aside)
                present = [name for name in RUN_ENTRIES if (self.run_dir / name).exists()]
                if present:
                    self.aside.mkdir()
                    for name in present:
                        (self.run_dir / name).rename(self.aside / name)
                    self.moved = present
                    say(accelerator, f"replacing the run in {self.run_dir} (the old one is kept in "
                                     f"{self.aside} until this one starts training)")
        accelerator.wait_for_everyone()

    def restore(self) -> None:
        if not (self.accelerator.is_main_process and self.moved):
            return
        for name in RUN_ENTRIES:
            target = self.run_dir / name
            if target.is_dir():
                shutil.rmtree(target, ignore_errors=True)
            elif target.exists():
                target.unlink()
        for name in self.moved:
            (self.aside / name).rename(self.run_dir / name)
        shutil.rmtree(self.aside, ignore_errors=True)
        self.moved = []

    def discard(self) -> None:
        if self.accelerator.is_main_process and self.aside.exists():
            shutil.rmtree(self.aside, ignore_errors=True)
        self.moved = []


def _flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict) and key not in ("reference", "columns"):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def warn_config_changes(run_dir: Path, config: "Config", accelerator: "Accelerator") -> None:
    """On resume, name the settings that differ from the run's saved config (results will differ)."""
    import yaml

    saved_path = run_dir / CONFIG_YAML
    if not saved_path.is_file():
        return
    saved = _flatten(yaml.safe_load(saved_path.read_text(encoding="utf-8")) or {})
    now = _flatten(config.model_dump(mode="json"))
    changed = sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k) and k not in RESUME_KEYS)
    if changed:
        say(accelerator, "warning: resuming with settings that differ from the run's config.yaml: "
                         + ", ".join(f"{k} ({saved.get(k)!r} -> {now.get(k)!r})" for k in changed))


def write_start_files(run_dir: Path, config: "Config", base_model: str, report: dict,
                      accelerator: "Accelerator", **run_json_extra: Any) -> None:
    """config.yaml, run.json and data_report.json at the start of a run (main process, atomic)."""
    if not accelerator.is_main_process:
        return
    from dpokit.config import dump_config

    make_dirs(run_dir)
    # The run's settings, not how this invocation reached them (a resume or an overwrite).
    kept = config.model_copy(deep=True)
    kept.training.resume_from_checkpoint = None
    kept.output.overwrite_output_dir = False
    write_run_file(run_dir, CONFIG_YAML, dump_config(kept))
    write_json(run_dir / DATA_REPORT, report)
    reference = None
    if config.stage == "dpo":
        ref = config.dpo.reference
        reference = ref if isinstance(ref, str) else ref.model_dump()
    write_run_json(run_dir, stage=config.stage, base_model=base_model, adapter=config.lora.enabled,
                   reference=reference, mixed_precision=accelerator.mixed_precision,
                   started=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **run_json_extra)
