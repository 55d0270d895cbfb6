"""write_model_card on hand-made run dirs: every section comes from the run's own files."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from dpokit.config import build_config, dump_config
from dpokit.errors import DpokitError
from dpokit.model_card import render_model_card, write_model_card
from dpokit.plot import plot_run

BASE = "HuggingFaceTB/SmolLM2-135M-Instruct"

DATA_REPORT = {
    "format": "prompt_chosen_rejected", "records": 130, "pairs": 124, "pairs_used": 121,
    "dropped": {"identical_answers": 4, "empty_answer": 2, "empty_after_truncation": 3},
    "errors": [],
    "settings": {"chat_template": True, "max_length": 512, "max_prompt_length": 256},
    "lengths": {"prompt": {"min": 5, "mean": 41.5, "median": 30.0, "p95": 120.0, "max": 300},
                "chosen": {"min": 2, "mean": 60.2, "median": 50.0, "p95": 200.0, "max": 410},
                "rejected": {"min": 1, "mean": 55.0, "median": 45.0, "p95": 190.0, "max": 380}},
    "truncation": {"prompt_truncated": 7, "answer_truncated": 11},
}
EVAL = {"pairs": 40, "reward_accuracy": 0.775, "margin_mean": 0.6125, "margin_ci95": [0.41, 0.815],
        "by_category": {"topic": {"a": {"pairs": 20}}}}


def _metrics_rows() -> list[dict]:
    rows = []
    for step in range(1, 7):
        rows.append({"step": step, "epoch": step / 6, "loss": 0.7 - 0.05 * step, "rewards/chosen": 0.01 * step,
                     "rewards/rejected": -0.02 * step, "rewards/margins": 0.03 * step,
                     "rewards/accuracies": 0.5 + 0.05 * step, "logps/chosen": -80.0 - step,
                     "logps/rejected": -90.0 - 2 * step, "grad_norm": 2.0 / step, "learning_rate": 1e-5,
                     "tokens_per_second": 1234.5})
        if step % 3 == 0:
            rows.append({"step": step, "eval_loss": 0.66 - 0.01 * step, "eval_rewards/accuracies": 0.6,
                         "eval_rewards/margins": 0.1 * step})
    return rows


def _make_run(root, *, adapter=True, with_eval=True, with_plots=True):
    run_dir = root / "my-dpo-run"
    (run_dir / "final").mkdir(parents=True)
    if adapter:
        (run_dir / "final" / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": BASE}))
    else:
        (run_dir / "final" / "config.json").write_text("{}")
    config = build_config({"model": {"name_or_path": BASE}, "dpo": {"beta": 0.25, "loss_type": "sigmoid"},
                           "lora": {"enabled": adapter, "r": 8}, "data": {"train_files": ["prefs.jsonl"]},
                           "training": {"learning_rate": 3e-6}, "output": {"output_dir": str(run_dir)}})
    (run_dir / "config.yaml").write_text(dump_config(config))
    (run_dir / "run.json").write_text(json.dumps({"stage": "dpo", "base_model": BASE, "adapter": adapter,
                                                  "reference": "precompute", "dpokit_version": "0.1.0"}))
    (run_dir / "data_report.json").write_text(json.dumps(DATA_REPORT))
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _metrics_rows()))
    if with_eval:
        (run_dir / "eval.json").write_text(json.dumps(EVAL))
    if with_plots:
        plot_run(run_dir)
    return run_dir


def _table_value(card: str, name: str) -> str:
    match = re.search(rf"^\| {re.escape(name)} \| (.*) \|$", card, re.M)
    assert match, f"no table row '{name}'"
    return match.group(1)


@pytest.fixture(scope="module")
def lora_card(tmp_path_factory):
    run_dir = _make_run(tmp_path_factory.mktemp("card"))
    path = write_model_card(run_dir)
    return run_dir, path, path.read_text()


def test_card_is_written_atomically_with_front_matter(lora_card):
    run_dir, path, card = lora_card
    assert path == run_dir / "README.md"
    assert not [p for p in run_dir.iterdir() if p.name.endswith(".tmp")]
    front = yaml.safe_load(card.split("---")[1])
    assert front["library_name"] == "peft" and front["base_model"] == BASE
    assert {"dpokit", "dpo", "lora"} <= set(front["tags"])
    assert "\n---\n\n# my-dpo-run\n" in card


def test_card_base_model_and_data_summary(lora_card):
    _, _, card = lora_card
    assert f"- base model: `{BASE}`" in card
    assert "- reference model: `precompute`" in card
    assert "Train data: `prefs.jsonl`." in card
    assert _table_value(card, "records read") == "130"
    assert _table_value(card, "pairs found") == "124"
    assert _table_value(card, "pairs used (after tokenisation)") == "121"
    assert _table_value(card, "pairs dropped") == "9"
    assert _table_value(card, "  dropped: identical_answers") == "4"
    assert _table_value(card, "answers truncated (pairs)") == "11"
    assert _table_value(card, "chosen tokens (mean / p95 / max)") == "60.2 / 200 / 410"


def test_card_config_settings_and_full_yaml(lora_card):
    run_dir, _, card = lora_card
    assert _table_value(card, "beta") == "0.25"
    assert _table_value(card, "learning rate") == "3e-06"
    assert _table_value(card, "LoRA r / alpha / dropout") == "8 / 32 / 0.05"
    details = re.search(r"<details>.*?```yaml\n(.*?)```\n\n</details>", card, re.S)
    assert details and details.group(1) == (run_dir / "config.yaml").read_text()


def test_card_metrics_are_the_last_train_line_and_eval_json(lora_card):
    run_dir, _, card = lora_card
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    last_train = [r for r in rows if "loss" in r][-1]
    results = card.split("## Results")[1].split("\n## ")[0]
    assert "(step 6, epoch 1;" in results
    for key in ("loss", "rewards/margins", "rewards/accuracies", "logps/chosen"):
        assert float(_table_value(results, key)) == pytest.approx(last_train[key], rel=1e-3)
    assert "Evaluation (`eval.json`)" in card
    assert _table_value(card, "reward_accuracy") == "0.775"
    assert _table_value(card, "margin_ci95") == "[0.41, 0.815]"
    assert "by_category" not in card


def test_card_links_the_charts_relatively(lora_card):
    run_dir, _, card = lora_card
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", card)
    assert links[0] == "plots/loss.png"
    assert set(links) == {f"plots/{p.name}" for p in (run_dir / "plots").glob("*.png")}
    assert all((run_dir / link).is_file() for link in links)


def test_card_says_how_to_load_a_lora_run(lora_card):
    run_dir, _, card = lora_card
    final = str(run_dir.resolve() / "final")
    assert f"PeftModel.from_pretrained(base, {final!r})" in card
    assert f"AutoModelForCausalLM.from_pretrained({BASE!r})" in card
    assert "merge_and_unload()" in card
    assert f"dpokit merge {run_dir.resolve()} --out" in card
    assert f"dpokit chat {run_dir.resolve()}" in card


def test_full_model_run_without_eval_json_or_plots(tmp_path):
    run_dir = _make_run(tmp_path, adapter=False, with_eval=False, with_plots=False)
    card = render_model_card(run_dir)
    assert "library_name: transformers" in card and "PeftModel" not in card and "dpokit merge" not in card
    assert f"AutoModelForCausalLM.from_pretrained({str(run_dir.resolve() / 'final')!r})" in card
    assert "| LoRA r / alpha" not in card and _table_value(card, "LoRA") == "no"
    # Eval falls back to the last eval line of metrics.jsonl.
    assert "Evaluation during training (step 6" in card
    assert float(_table_value(card, "eval_loss")) == pytest.approx(0.6)
    assert "## Training curves" not in card


def test_sparse_run_dir_and_errors(tmp_path):
    run_dir = tmp_path / "bare"
    run_dir.mkdir()
    with pytest.raises(DpokitError, match="not a dpokit run dir"):
        write_model_card(run_dir)
    with pytest.raises(DpokitError, match="not found"):
        write_model_card(tmp_path / "missing")
    (run_dir / "run.json").write_text(json.dumps({"stage": "sft", "base_model": "/models/base", "adapter": False}))
    card = render_model_card(run_dir)
    assert "No data report" in card and "No metrics were logged" in card
    assert "base_model:" not in card.split("---")[1]  # a local path is not Hub metadata
    (run_dir / "eval.json").write_text("{broken")
    with pytest.raises(DpokitError, match=r"eval.json: not valid JSON"):
        render_model_card(run_dir)


@pytest.mark.parametrize("shape", ["nested", "per_split"])
def test_eval_data_report(tmp_path, shape):
    """The trainer nests the eval data's report under "eval"; a per-split dict works too."""
    run_dir = _make_run(tmp_path, with_plots=False)
    eval_report = {**DATA_REPORT, "pairs": 12}
    report = {**DATA_REPORT, "eval": eval_report} if shape == "nested" else {"train": DATA_REPORT, "eval": eval_report}
    (run_dir / "data_report.json").write_text(json.dumps(report))
    card = render_model_card(run_dir)
    train_part = card.split("### train")[1].split("### eval")[0]
    eval_part = card.split("### eval")[1].split("\n## ")[0]
    assert _table_value(train_part, "pairs found") == "124"
    assert _table_value(eval_part, "pairs found") == "12"
