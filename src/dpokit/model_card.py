"""The run's model card: ``RUN_DIR/README.md``, written from what the run dir holds.

Sources, each optional except ``run.json`` or ``config.yaml``: ``run.json`` (stage, base
model, adapter, reference), ``config.yaml`` (the resolved config), ``data_report.json``
(load and tokenisation counts; one report, or one per split), ``metrics.jsonl`` (the last
train line and the last eval line), ``eval.json`` (``dpokit eval``'s result) and
``plots/*.png`` (linked relatively, so the card renders wherever the dir is copied). The
Diagnostics section lists what :mod:`dpokit.doctor` finds in the run.
The card opens with Hugging Face front matter, so it is ready for the Hub.
"""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable, Optional, Union

import yaml

from dpokit.errors import DpokitError
from dpokit.metrics_log import read_metrics
from dpokit.outputs import write_file
from dpokit.plot import CHARTS
from dpokit.rundir import FINAL_DIR, MODEL_CARD, PLOTS_DIR
MAX_TABLE_ROWS = 40

# Settings worth a line in the summary table: (label, dotted path in the config).
KEY_SETTINGS = [
    ("stage", "stage"), ("model", "model.name_or_path"), ("dtype", "model.dtype"),
    ("4-bit / 8-bit", "model.load_in_4bit|model.load_in_8bit"),
    ("LoRA", "lora.enabled"), ("LoRA r / alpha / dropout", "lora.r|lora.alpha|lora.dropout"),
    ("LoRA target modules", "lora.target_modules"),
    ("loss type", "dpo.loss_type"), ("beta", "dpo.beta"), ("reference", "dpo.reference"),
    ("label smoothing", "dpo.label_smoothing"), ("rpo_alpha (NLL weight)", "dpo.rpo_alpha"),
    ("train files", "data.train_files"), ("eval files", "data.eval_files"),
    ("max length / max prompt length", "data.max_length|data.max_prompt_length"),
    ("learning rate", "training.learning_rate"), ("scheduler", "training.lr_scheduler_type"),
    ("epochs / max steps", "training.num_train_epochs|training.max_steps"),
    ("batch size x grad accumulation", "training.per_device_train_batch_size|training.gradient_accumulation_steps"),
    ("warmup steps / ratio", "training.warmup_steps|training.warmup_ratio"),
    ("seed", "training.seed"),
]
DPO_ONLY = ("loss type", "beta", "reference", "label smoothing", "rpo_alpha (NLL weight)")
TRAIN_METRICS = ("loss", "rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies",
                 "logps/chosen", "logps/rejected", "grad_norm", "learning_rate", "tokens_per_second")


# ----------------------------------------------------------------------------- reading


def _read_json(path: Path) -> Optional[Any]:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DpokitError(f"{path}: not valid JSON ({err})", "restore the file or delete it to leave it out of the card") from None


def _read_config(path: Path) -> tuple[Optional[dict], str]:
    if not path.is_file():
        return None, ""
    text = path.read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise DpokitError(f"{path}: invalid YAML ({err})") from None
    return (data if isinstance(data, dict) else None), text


def _get(tree: Optional[dict], dotted: str) -> Any:
    node: Any = tree
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


# ----------------------------------------------------------------------------- formatting


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(_fmt(v) for v in value) if value else "-"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_fmt(v)}" for k, v in value.items()) or "-"
    return str(value)


def _cell(value: Any) -> str:
    """A Markdown table cell: pipes escaped, newlines flattened."""
    return _fmt(value).replace("|", "\\|").replace("\n", " ")


def _table(header: tuple[str, str], rows: Iterable[tuple[str, Any]]) -> list[str]:
    rows = list(rows)[:MAX_TABLE_ROWS]
    if not rows:
        return []
    lines = [f"| {header[0]} | {header[1]} |", "|---|---|"]
    lines += [f"| {_cell(name)} | {_cell(value)} |" for name, value in rows]
    return lines


def _flatten(tree: dict, prefix: str = "") -> list[tuple[str, Any]]:
    """Scalars (and short number lists such as confidence intervals) of a nested dict, dotted keys."""
    out: list[tuple[str, Any]] = []
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out += _flatten(value, name + ".")
        elif isinstance(value, (list, tuple)):
            if 0 < len(value) <= 2 and all(isinstance(v, (int, float)) for v in value):
                out.append((name, "[" + ", ".join(_fmt(v) for v in value) + "]"))
        elif isinstance(value, (str, int, float, bool)) or value is None:
            out.append((name, value))
    return out


# ----------------------------------------------------------------------------- sections


def _front_matter(run: dict, config: Optional[dict], adapter: bool) -> list[str]:
    base = str(run.get("base_model") or _get(config, "model.name_or_path") or "")
    stage = run.get("stage") or _get(config, "stage") or "dpo"
    tags = ["dpokit", stage] + (["lora", "peft"] if adapter else [])
    meta: dict[str, Any] = {"library_name": "peft" if adapter else "transformers", "tags": tags}
    # A hub id ("org/name") is linkable metadata; a local path is not.
    if base.count("/") == 1 and not base.startswith((".", "/", "~")):
        meta["base_model"] = base
    return ["---", yaml.safe_dump(meta, sort_keys=False).strip(), "---", ""]


def _summary(run_dir: Path, run: dict, config: Optional[dict], adapter: bool) -> list[str]:
    stage = run.get("stage") or _get(config, "stage") or "dpo"
    base = run.get("base_model") or _get(config, "model.name_or_path") or "unknown"
    if stage == "dpo":
        how = (f"Direct Preference Optimization (loss `{_get(config, 'dpo.loss_type') or 'sigmoid'}`, "
               f"beta {_fmt(_get(config, 'dpo.beta'))})")
    else:
        how = "supervised fine-tuning on the preferred answers"
    weights = (f"a LoRA adapter (r {_fmt(_get(config, 'lora.r'))}) in `{FINAL_DIR}/`" if adapter
               else f"a full model in `{FINAL_DIR}/`")
    version = run.get("dpokit_version") or "unknown"
    return [
        f"# {run_dir.name}", "",
        f"`{base}` fine-tuned with {how} using [dpokit](https://pypi.org/project/dpokit/) {version}. "
        f"The weights are {weights}.", "",
        "## Base model", "",
        f"- base model: `{base}`",
        f"- weights: {'LoRA adapter on the base model' if adapter else 'full model (no adapter)'}",
    ] + ([f"- reference model: `{_fmt(run.get('reference'))}`"] if stage == "dpo" else []) + [""]


def _data_reports(report: Any) -> list[tuple[str, dict]]:
    """(title, report) pairs: the train report and, nested under ``eval``, the eval data's
    (the trainer's shape), or one report per split (``{"train": {...}, "eval": {...}}``)."""
    if not isinstance(report, dict):
        return []
    is_report = lambda value: isinstance(value, dict) and ("pairs" in value or "records" in value)  # noqa: E731
    if is_report(report):
        if is_report(report.get("eval")):
            return [("train", report), ("eval", report["eval"])]
        return [("", report)]
    return [(str(name), sub) for name, sub in report.items() if is_report(sub)]


def _data_rows(report: dict) -> list[tuple[str, Any]]:
    dropped = report.get("dropped") or {}
    truncation = report.get("truncation") or {}
    lengths = report.get("lengths") or {}
    noun = "examples" if report.get("stage") == "sft" else "pairs"  # an SFT report counts examples
    rows: list[tuple[str, Any]] = [
        ("format", report.get("format")), ("records read", report.get("records")),
        (f"{noun} found", report.get(f"{noun}_found" if noun == "examples" else "pairs")),
        (f"{noun} used (after tokenisation)", report.get(f"{noun}_used")),
    ]
    if isinstance(dropped, dict):
        rows.append((f"{noun} dropped", sum(v for v in dropped.values() if isinstance(v, (int, float)))))
        rows += [(f"  dropped: {reason}", count) for reason, count in dropped.items()]
    if report.get("errors"):
        rows.append(("bad records skipped", len(report["errors"])))
    if isinstance(truncation, dict):
        rows += [("prompts truncated", truncation.get("prompt_truncated")),
                 ("answers truncated (pairs)", truncation.get("answer_truncated")),
                 ("completions truncated", truncation.get("completion_truncated"))]
    for part in ("prompt", "chosen", "rejected", "completion"):
        summary = lengths.get(part) if isinstance(lengths, dict) else None
        if isinstance(summary, dict) and summary.get("max") is not None:
            rows.append((f"{part} tokens (mean / p95 / max)",
                         f"{_fmt(summary.get('mean'))} / {_fmt(summary.get('p95'))} / {_fmt(summary.get('max'))}"))
    return [(name, value) for name, value in rows if value is not None]


def _data_section(report: Any, config: Optional[dict]) -> list[str]:
    lines = ["## Training data", ""]
    files = _get(config, "data.train_files")
    if files:
        lines += [f"Train data: {', '.join(f'`{f}`' for f in files)}.", ""]
    reports = _data_reports(report)
    if not reports:
        return lines + ["No data report was saved with this run (`data_report.json`).", ""]
    for title, sub in reports:
        if title:
            lines += [f"### {title}", ""]
        lines += _table(("", "value"), _data_rows(sub)) + [""]
    return lines


def _config_section(config: Optional[dict], config_text: str) -> list[str]:
    if config is None:
        return []
    stage = _get(config, "stage")
    lora = bool(_get(config, "lora.enabled"))
    rows = []
    for label, paths in KEY_SETTINGS:
        if stage != "dpo" and label in DPO_ONLY:
            continue
        if label.startswith("LoRA ") and not lora:
            continue
        values = [_get(config, p) for p in paths.split("|")]
        rows.append((label, " / ".join(_fmt(v) for v in values) if len(values) > 1 else values[0]))
    return ["## Training configuration", ""] + _table(("setting", "value"), rows) + [
        "", "<details><summary>Full config (<code>config.yaml</code>)</summary>", "",
        "```yaml", config_text.rstrip(), "```", "", "</details>", "",
    ]


def _results_section(run_dir: Path, evaluation: Any) -> list[str]:
    lines = ["## Results", ""]
    train_row = eval_row = None
    if (run_dir / "metrics.jsonl").is_file():
        metrics = read_metrics(run_dir)
        train_row = metrics.train[-1] if metrics.train else None
        eval_row = metrics.eval[-1] if metrics.eval else None
    if train_row:
        where = f"step {train_row['step']}" + (f", epoch {_fmt(train_row['epoch'])}" if "epoch" in train_row else "")
        lines += [f"Final training metrics ({where}; the last logged step, from `metrics.jsonl`):", ""]
        lines += _table(("metric", "value"), [(k, train_row[k]) for k in TRAIN_METRICS if k in train_row]) + [""]
    if isinstance(evaluation, dict):
        lines += ["Evaluation (`eval.json`):", ""]
        rows = [(k, v) for k, v in _flatten(evaluation) if not k.startswith(("by_category", "examples"))]
        lines += _table(("metric", "value"), rows) + [""]
    elif eval_row:
        lines += [f"Evaluation during training (step {eval_row['step']}, from `metrics.jsonl`):", ""]
        lines += _table(("metric", "value"), [(k, v) for k, v in eval_row.items() if k.startswith("eval_")]) + [""]
    if len(lines) == 2:
        lines += ["No metrics were logged (`metrics.jsonl` and `eval.json` are missing).", ""]
    return lines


def _diagnostics_section(run_dir: Path) -> list[str]:
    """The doctor's findings (the ones the trainer printed live), or that it found none."""
    from dpokit.doctor import diagnose_run

    lines = ["## Diagnostics", ""]
    try:
        doctor = diagnose_run(run_dir)
    except DpokitError as err:
        return lines + [f"`dpokit doctor` could not check this run: {err.message}", ""]
    if not doctor.findings:
        checked, _ = doctor.coverage()
        return lines + [f"`dpokit doctor` found no problems (checked: {', '.join(checked) or 'nothing'}).", ""]
    lines += ["`dpokit doctor` found:", ""]
    for finding in doctor.findings:
        where = f" (step {finding.step})" if finding.step is not None else ""
        lines += [f"- **{finding.code}**{where}: {finding.message}  ", f"  hint: {finding.hint}"]
    return lines + [""]


def _plots_section(run_dir: Path) -> list[str]:
    plots_dir = run_dir / PLOTS_DIR
    found = sorted(plots_dir.glob("*.png")) if plots_dir.is_dir() else []
    if not found:
        return []
    order = {name: i for i, name in enumerate(CHARTS)}
    found.sort(key=lambda p: (order.get(p.stem, len(order)), p.stem))
    lines = ["## Training curves", ""]
    for path in found:
        title = CHARTS[path.stem][0] if path.stem in CHARTS else path.stem
        lines += [f"![{title}]({PLOTS_DIR}/{path.name})", ""]
    return lines


def _usage_section(run_dir: Path, run: dict, config: Optional[dict], adapter: bool) -> list[str]:
    base = run.get("base_model") or _get(config, "model.name_or_path") or "BASE_MODEL"
    where = str(run_dir.resolve())
    lines = [
        "## How to use", "",
        "With dpokit" + (" (it loads the base model plus the adapter, unmerged):" if adapter else ":"), "",
        "```bash",
        f"dpokit chat {where}",
        f"dpokit generate {where} --prompts prompts.txt --out answers.jsonl",
    ]
    if adapter:
        lines += [f"dpokit merge {where} --out merged/   # LoRA merged into the base: a plain Hugging Face model dir"]
    lines += ["```", ""]
    if adapter:
        lines += [
            "With transformers + PEFT:", "",
            "```python",
            "from peft import PeftModel",
            "from transformers import AutoModelForCausalLM, AutoTokenizer",
            "",
            f"base = AutoModelForCausalLM.from_pretrained({str(base)!r})",
            f"model = PeftModel.from_pretrained(base, {where + '/' + FINAL_DIR!r})",
            f"tokenizer = AutoTokenizer.from_pretrained({where + '/' + FINAL_DIR!r})",
            "model = model.merge_and_unload()  # optional: fold the adapter into the weights",
            "```", "",
        ]
    else:
        lines += [
            "With transformers:", "",
            "```python",
            "from transformers import AutoModelForCausalLM, AutoTokenizer",
            "",
            f"model = AutoModelForCausalLM.from_pretrained({where + '/' + FINAL_DIR!r})",
            f"tokenizer = AutoTokenizer.from_pretrained({where + '/' + FINAL_DIR!r})",
            "```", "",
        ]
    return lines


def _versions_section(run: dict) -> list[str]:
    rows = [("dpokit (training)", run.get("dpokit_version"))]
    for package in ("torch", "transformers", "peft", "accelerate"):
        try:
            rows.append((package + " (card written with)", metadata.version(package)))
        except metadata.PackageNotFoundError:
            pass
    return ["## Framework versions", ""] + _table(("package", "version"), rows) + [""]


# ----------------------------------------------------------------------------- entry point


def render_model_card(run_dir: Union[str, Path]) -> str:
    """The model card's Markdown for ``run_dir`` (see the module docstring for its sources)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DpokitError(f"{run_dir}: run directory not found")
    run = _read_json(run_dir / "run.json")
    config, config_text = _read_config(run_dir / "config.yaml")
    if run is None and config is None:
        raise DpokitError(f"{run_dir}: not a dpokit run dir (no run.json or config.yaml)",
                          "pass the output_dir of a `dpokit train` run")
    run = run if isinstance(run, dict) else {}
    adapter_flag = run.get("adapter")
    adapter = bool(adapter_flag) if adapter_flag is not None else (run_dir / FINAL_DIR / "adapter_config.json").is_file()
    report = _read_json(run_dir / "data_report.json")
    evaluation = _read_json(run_dir / "eval.json")
    lines = (
        _front_matter(run, config, adapter)
        + _summary(run_dir, run, config, adapter)
        + _data_section(report, config)
        + _config_section(config, config_text)
        + _results_section(run_dir, evaluation)
        + _diagnostics_section(run_dir)
        + _plots_section(run_dir)
        + _usage_section(run_dir, run, config, adapter)
        + _versions_section(run)
    )
    return "\n".join(lines).rstrip() + "\n"


def write_model_card(run_dir: Union[str, Path]) -> Path:
    """Write ``RUN_DIR/README.md`` (atomically) and return its path."""
    return write_file(Path(run_dir) / MODEL_CARD, render_model_card(run_dir))
