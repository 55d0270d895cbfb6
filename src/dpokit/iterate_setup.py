"""The directory of a ``dpokit iterate`` loop, its files, and the checks made before anything slow.

The layout is documented in :mod:`dpokit.iterate`; these are its names and readers.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dpokit.errors import DpokitError
from dpokit.outputs import write_file

if TYPE_CHECKING:
    from dpokit.config import Config, IterateConfig

CONFIG_FILE = "config.yaml"
CANDIDATES_FILE = "candidates.jsonl"
LABELS_DIR = "labels"
JUDGED_FILE = "judged.jsonl"
OFFLINE_FILE = "offline_pairs.jsonl"
PAIRS_FILE = "pairs.jsonl"
RUN_DIR = "run"
EVAL_FILE = "eval.json"
SUMMARY_JSON = "summary.json"
SUMMARY_PNG = "summary.png"


def say(text: str) -> None:
    print(f"dpokit: {text}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Layout:
    """Where a loop keeps each round's files (the layout in :mod:`dpokit.iterate`'s docstring)."""

    root: Path

    def round_dir(self, k: int) -> Path:
        return self.root / f"round-{k}"

    def file(self, k: int, name: str) -> Path:
        return self.round_dir(k) / name

    def run(self, k: int) -> Path:
        return self.file(k, RUN_DIR)


def check_iterate_config(config: "Config") -> "IterateConfig":
    """The loop's settings, or a :class:`DpokitError` for what cannot work (before any loading)."""
    from dpokit.config import ReferenceModel
    from dpokit.preflight import check_config

    settings = config.iterate
    if settings is None:
        raise DpokitError("the config has no iterate: section",
                          "add one, e.g. iterate: {rounds: 2, prompts: prompts.txt, eval_prompts: heldout.txt, "
                          "judge: python:judge.py:score}; see examples/iterate-concise.yaml")
    for key in ("prompts", "eval_prompts", "judge"):
        if not getattr(settings, key):
            raise DpokitError(f"iterate.{key} is required", "see examples/iterate-concise.yaml")
    if config.stage != "dpo":
        raise DpokitError(f"stage: {config.stage}: dpokit iterate trains DPO rounds",
                          "set stage: dpo (or leave it out)")
    if config.output.overwrite_output_dir:
        raise DpokitError("output.overwrite_output_dir: dpokit iterate continues what is in output.output_dir",
                          "to start the loop again, choose a new output.output_dir (or delete the old one)")
    if settings.judge.strip() == "human" and settings.candidates != 2:
        raise DpokitError(f"iterate.candidates: {settings.candidates}: the human judge shows people two answers per "
                          "prompt", "set iterate.candidates: 2")
    if (settings.eval_judge or "").strip() == "human":
        raise DpokitError("iterate.eval_judge: human: the held-out measurement needs a judge that can run unattended",
                          "use rm:PATH, openai:URL#MODEL, python:FILE.py:FUNCTION or dpo:RUN_DIR, or leave it out")
    if isinstance(config.dpo.reference, ReferenceModel) and not config.dpo.reference_free:
        raise DpokitError(f"dpo.reference: {config.dpo.reference.model}: dpokit iterate sets each round's reference",
                          "remove dpo.reference and choose with iterate.reference_round: previous | initial")
    if settings.mix > 0 and not config.data.train_files:
        raise DpokitError(f"iterate.mix: {settings.mix}: no offline pairs to mix in (data.train_files is empty)",
                          "set data.train_files, or iterate.mix: 0")
    root = Path(config.output.output_dir).expanduser()
    if root.exists() and not root.is_dir():
        raise DpokitError(f"output.output_dir: {root} is a file", "choose a directory for the loop")
    check_config(config)
    return settings


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(tree, dict) or not tree:
        return {prefix.rstrip("."): tree}
    out: dict[str, Any] = {}
    for key, value in tree.items():
        out.update(_flatten(value, f"{prefix}{key}.") if isinstance(value, dict) and key != "reference"
                   else {f"{prefix}{key}": value})
    return out


def record_loop_config(layout: Layout, config: "Config") -> None:
    """Write OUTPUT_DIR/config.yaml; on a rerun, first name the settings that changed (finished stages are kept)."""
    import yaml

    from dpokit.config import dump_config

    path = layout.root / CONFIG_FILE
    text = dump_config(config)
    if path.is_file():
        saved = _flatten(yaml.safe_load(path.read_text(encoding="utf-8")) or {})
        now = _flatten(yaml.safe_load(text))
        changed = sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k) and k != "iterate.rounds")
        if changed:
            say("warning: continuing a loop with settings that differ from its config.yaml (finished stages are "
                "kept as they are; delete a round's files to redo them): "
                + ", ".join(f"{k} ({saved.get(k)!r} -> {now.get(k)!r})" for k in changed))
    write_file(path, text)


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The lines of one of the loop's own JSONL files (a damaged one is a clear error)."""
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise DpokitError(f"{path}:{number}: invalid JSON ({err.msg})",
                                  "the file was edited or damaged: delete it and rerun to make it again") from None
    return rows


def count_lines(path: Path) -> int:
    return len(read_rows(path)) if path.is_file() else 0
