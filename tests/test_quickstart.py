"""`dpokit quickstart`: its settings, its summary, and a short real run on the embedded model."""

from __future__ import annotations

import json
from pathlib import Path


from dpokit.cli import main
from dpokit.commands.quickstart import free_run_dir
from dpokit.config import load_config
from dpokit.before_after import demo_prompts, quickstart_config

REPO = Path(__file__).resolve().parents[1]


def test_examples_quickstart_yaml_is_what_quickstart_runs():
    assert load_config(REPO / "examples" / "quickstart.yaml") == quickstart_config()


def test_shown_prompts_are_held_out():
    from dpokit.data.load import load_preference_data

    train_prompts = {p.prompt[-1]["content"] for p in load_preference_data(["demo:train"]).pairs}
    shown = demo_prompts()
    assert len(shown) == 3
    assert not {m[-1]["content"] for m in shown} & train_prompts


def test_free_run_dir_never_reuses_a_non_empty_dir(tmp_path):
    base = tmp_path / "runs" / "quickstart"
    assert free_run_dir(str(base)) == str(base)
    base.mkdir(parents=True)
    assert free_run_dir(str(base)) == str(base)  # empty: fine to use
    (base / "config.yaml").write_text("x")
    assert free_run_dir(str(base)) == f"{base}-2"


def test_short_quickstart_run_reports_before_and_after(tmp_path, capsys):
    from importlib import resources

    # A short run: 12 training pairs, 3 steps, and 8 of the held-out pairs (the real run uses all).
    heldout = [json.loads(line) for line in
               resources.files("dpokit.data.demo")
               .joinpath("heldout.jsonl").read_text(encoding="utf-8").splitlines()[:8]]
    small = tmp_path / "heldout8.jsonl"
    small.write_text("".join(json.dumps(r) + "\n" for r in heldout))
    out = tmp_path / "qs"
    code = main(["quickstart", "--out", str(out), "--no-progress", f"data.eval_files=[{small}]",
                 "training.max_steps=3", "data.max_samples=12", "training.learning_rate=1e-3"])
    assert code == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "quickstart.json").read_text())
    before, after = summary["before"], summary["after"]
    assert before["pairs"] == after["pairs"] == 8
    assert before["reward_accuracy"] is None and after["reward_accuracy"] is not None
    assert before["tokenization"]["fingerprint"] == after["tokenization"]["fingerprint"]
    # every held-out prompt is answered: the three shown ones first, then the 8 pairs' other prompts
    answered = [a["prompt"] for a in summary["answers"]]
    shown = [m[-1]["content"] for m in demo_prompts()]
    assert answered[:3] == shown and set(answered) >= {r["prompt"] for r in heldout}
    assert all(a["before"] and a["after"] and a["category"] in {"harmful", "benign"} for a in summary["answers"])
    quality = summary["answer_quality"]
    for side in ("before", "after"):
        assert quality[side]["harmful"] + quality[side]["benign"] == len(answered)
        assert 0 <= quality[side]["degenerate"] <= 1
    assert "Held-out preference accuracy" in printed and f"Run directory: {out}" in printed
    assert "training in fp32" in printed  # conftest pins fp32 (DPOKIT_CPU_BF16=0)
    assert "What the greedy answers do" in printed and "harmful requests refused" in printed
    assert (out / "final" / "adapter_config.json").is_file()
    assert (out / "README.md").is_file()
