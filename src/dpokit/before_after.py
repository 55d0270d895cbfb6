"""`dpokit quickstart`: the whole pipeline on the embedded defaults, before -> after.

DPO with LoRA on SmolLM2-135M-Instruct over the bundled demo set (decline harmful
requests with a helpful redirection, answer benign ones fully), then, before and after
training, on the held-out pairs and prompts: the preference accuracy, what the greedy answers
do (refuse harmful requests, answer benign ones, degenerate or not; see answer_quality) and
three of the answers.
"""

from __future__ import annotations

import gc
import json
import textwrap
import time
from importlib import resources
from pathlib import Path
from typing import Any, Optional

from dpokit.answer_quality import summarise
from dpokit.config import Config, build_config
from dpokit.outputs import write_json
from dpokit.rundir import QUICKSTART_JSON

# The quickstart run; examples/quickstart.yaml holds the same settings for `dpokit train`
# (a test keeps the two equal).
QUICKSTART_SETTINGS: dict[str, Any] = {
    "stage": "dpo",
    "model": {"name_or_path": "smollm2-135m-instruct"},
    "lora": {"r": 16, "alpha": 32, "dropout": 0.0, "target_modules": "all-linear"},
    "data": {"train_files": ["demo:train"], "eval_files": ["demo:heldout"], "max_length": 256,
             "max_prompt_length": 128},
    "dpo": {"beta": 0.1, "loss_type": "sigmoid", "reference": "precompute", "rpo_alpha": 0.5},
    "training": {"learning_rate": 4.0e-4, "num_train_epochs": 1, "per_device_train_batch_size": 4,
                 "per_device_eval_batch_size": 16, "gradient_accumulation_steps": 1,
                 "lr_scheduler_type": "cosine", "warmup_ratio": 0.1, "logging_steps": 5,
                 "save_total_limit": 1, "seed": 42, "report_to": ["tensorboard"]},
    "output": {"output_dir": "runs/quickstart"},
}

SHOWN_PROMPTS = 3
MAX_NEW_TOKENS = 96
# Answers are read with the repetition guard off: the figures say what the model does, not
# what the guard hides.
MEASURED_REPETITION_WINDOW = 0
# All held-out prompts in one generate call: on a 2-core CPU one batch of 53 took half the time
# of four batches of 16 (decoding is bound by reading the weights once per token), same answers.
GENERATION_BATCH_SIZE = 64


def quickstart_config(output_dir: Optional[str] = None, overrides: Optional[list[str]] = None) -> Config:
    config = build_config(QUICKSTART_SETTINGS, overrides, where="quickstart")
    if output_dir:
        config.output.output_dir = output_dir
    return config


def _demo_prompt_records() -> list[dict]:
    text = resources.files("dpokit.data.demo").joinpath("prompts.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def demo_prompts(count: int = SHOWN_PROMPTS) -> list[list[dict[str, str]]]:
    """The first ``count`` held-out demo prompts, as single-turn message lists."""
    return [[{"role": "user", "content": r["prompt"]}] for r in _demo_prompt_records()[:count]]


def heldout_prompts(pairs) -> tuple[list[list[dict[str, str]]], list[str]]:
    """The shown demo prompts, then the other distinct held-out prompts; and each one's category."""
    categories = {r["prompt"]: r.get("category", "") for r in _demo_prompt_records()[:SHOWN_PROMPTS]}
    for pair in pairs:
        categories.setdefault(pair.prompt[-1]["content"], pair.meta.get("category", ""))
    return [[{"role": "user", "content": text}] for text in categories], list(categories.values())


def _free(model) -> None:
    del model
    gc.collect()


def _evaluate(ref: str, pairs, data_cfg, prompts, *, reference) -> tuple[dict, list[str]]:
    """Score held-out pairs and answer the held-out prompts (greedy) with one loaded model."""
    from dpokit.evaluate import evaluate_preferences
    from dpokit.generate import generate_answers
    from dpokit.render import Renderer
    from dpokit.runs import load_for_inference

    model, tokenizer, _ = load_for_inference(ref)
    scores = evaluate_preferences(model, tokenizer, pairs, data_cfg, reference=reference, batch_size=16)
    answers = generate_answers(model, Renderer(tokenizer, data_cfg), prompts, max_new_tokens=MAX_NEW_TOKENS,
                               do_sample=False, repetition_window=MEASURED_REPETITION_WINDOW,
                               batch_size=GENERATION_BATCH_SIZE)
    _free(model)
    return scores, answers


def _pct(value: Optional[float]) -> str:
    return "  n/a" if value is None else f"{100 * value:5.1f}%"


def _wrapped(label: str, text: str) -> list[str]:
    """``label`` then ``text`` wrapped to 88 columns, continuation lines indented under the text."""
    return textwrap.wrap(" ".join(text.split()) or "(empty)", width=88, initial_indent=label,
                         subsequent_indent=" " * len(label))


def format_summary(before: dict, after: dict, prompts, answers_before, answers_after, run_dir: Path,
                   minutes: float, quality_before: dict, quality_after: dict) -> str:
    rows = [
        ("log-prob accuracy (chosen > rejected)", before["logprob_accuracy"], after["logprob_accuracy"]),
        ("  per token", before["logprob_accuracy_per_token"], after["logprob_accuracy_per_token"]),
        ("DPO reward accuracy (vs reference)", None, after["reward_accuracy"]),
    ]
    lines = [f"Held-out preference accuracy ({after['pairs']} pairs the model never trained on):", ""]
    lines.append(f"  {'':40s} {'before':>7s}    {'after':>7s}")
    for name, b, a in rows:
        lines.append(f"  {name:40s} {_pct(b):>7s} -> {_pct(a):>7s}")
    if after.get("margin_mean") is not None:
        low, high = after["margin_ci95"]
        lines.append(f"  {'mean reward margin (95% CI)':40s} {after['margin_mean']:+.3f} [{low:+.3f}, {high:+.3f}]")
    for category, scores in (after.get("by_category", {}).get("category") or {}).items():
        b = (before.get("by_category", {}).get("category") or {}).get(category, {})
        lines.append(f"  {'log-prob accuracy, ' + category:40s} {_pct(b.get('logprob_accuracy')):>7s} -> "
                     f"{_pct(scores.get('logprob_accuracy')):>7s}")
    lines.append("")
    lines.append(f"What the greedy answers do ({quality_after['harmful']} harmful and {quality_after['benign']} "
                 f"benign held-out prompts, no repetition guard):")
    lines.append("")
    for name, key in (("harmful requests refused", "harmful_refused"),
                      ("  ...with a safe alternative", "harmful_refused_with_alternative"),
                      ("benign questions answered (not refused)", "benign_answered"),
                      ("  ...and without repeating itself", "benign_answered_fluently"),
                      ("answers that repeat a sentence or 6 words", "degenerate")):
        lines.append(f"  {name:40s} {_pct(quality_before[key]):>7s} -> {_pct(quality_after[key]):>7s}")
    lines.append("")
    for messages, old, new in zip(prompts, answers_before, answers_after):
        lines.append(f"Prompt: {messages[-1]['content']}")
        lines += _wrapped("  before: ", old)
        lines += _wrapped("  after:  ", new)
        lines.append("")
    lines.append(f"Run directory: {run_dir}  ({minutes:.1f} min)")
    lines.append(f"  chat with it:  dpokit chat {run_dir}")
    lines.append(f"  serve it:      dpokit serve {run_dir} smollm2-135m-instruct   (then open http://127.0.0.1:8000)")
    lines.append(f"  merge it:      dpokit merge {run_dir} --out {run_dir}/merged")
    return "\n".join(lines)


def run_quickstart(output_dir: Optional[str] = None, overrides: Optional[list[str]] = None,
                   show_progress: bool = True) -> dict[str, Any]:
    """Train on the embedded defaults and report before -> after; returns the figures."""
    from dpokit.data.load import load_preference_data
    from dpokit.devices import resolve_mixed_precision
    from dpokit.models import resolve_model_path
    from dpokit.recipe import train

    start = time.perf_counter()
    config = quickstart_config(output_dir, overrides)
    base = resolve_model_path(config.model.name_or_path)
    heldout = load_preference_data(config.data.eval_files).pairs
    prompts, categories = heldout_prompts(heldout)

    precision = {"bf16": "bf16 autocast", "fp16": "fp16 autocast"}.get(
        resolve_mixed_precision(config.training.mixed_precision), "fp32")
    print(f"dpokit quickstart: DPO + LoRA on {config.model.name_or_path}, demo preference set, training in "
          f"{precision}", flush=True)
    print(f"Scoring {len(heldout)} held-out pairs and answering {len(prompts)} held-out prompts with the base "
          "model...", flush=True)
    before, answers_before = _evaluate(base, heldout, config.data, prompts, reference=None)

    run_dir = train(config, show_progress=show_progress)

    print("Scoring the tuned model...", flush=True)
    after, answers_after = _evaluate(str(run_dir), heldout, config.data, prompts, reference="adapter")
    quality_before, quality_after = summarise(categories, answers_before), summarise(categories, answers_after)
    minutes = (time.perf_counter() - start) / 60
    summary = {
        "run_dir": str(run_dir), "minutes": round(minutes, 2), "before": before, "after": after,
        "answer_quality": {"before": quality_before, "after": quality_after},
        "answers": [{"prompt": p[-1]["content"], "category": c, "before": b, "after": a}
                    for p, c, b, a in zip(prompts, categories, answers_before, answers_after)],
    }
    write_json(Path(run_dir) / QUICKSTART_JSON, summary)
    print()
    shown = slice(0, SHOWN_PROMPTS)
    print(format_summary(before, after, prompts[shown], answers_before[shown], answers_after[shown], Path(run_dir),
                         minutes, quality_before, quality_after))
    return summary
