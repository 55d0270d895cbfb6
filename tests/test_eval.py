"""`dpokit eval`: metrics against a full-logits oracle, the t interval, breakdowns, CLI and bad input."""

from __future__ import annotations

import json
import math
import shutil
import statistics
from pathlib import Path

import pytest
import torch

from dpokit import cli
from dpokit.config import DataConfig
from dpokit.data.load import load_preference_data
from dpokit.data.tokenize import tokenize_pairs
from dpokit.data.types import PreferencePair
from dpokit.errors import DpokitError
from dpokit.evaluate import evaluate_preferences, evaluate_ref
from dpokit.preference_metrics import category_fields, preference_metrics
from dpokit.stats import mean_confidence_interval, t_quantile
from conftest import HH_RLHF

SHORT = DataConfig(max_length=160, max_prompt_length=96)
"""Short sequences keep the tiny model's forwards fast."""

JSON_KEYS = {"pairs", "reward_accuracy", "logprob_accuracy", "logprob_accuracy_per_token",
             "margin_mean", "margin_ci95", "by_category"}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ----------------------------------------------------------------------------- oracle


def oracle_logps(model, example) -> tuple[float, float, int, int]:
    """Summed answer log-probs from a plain, unpadded, full-vocabulary forward per sequence."""
    out = []
    for answer in (example.chosen_ids, example.rejected_ids):
        ids = example.prompt_ids + answer
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ids])).logits[0].float()  # [T, vocab]
        logprobs = logits.log_softmax(-1)
        start = len(example.prompt_ids)
        out.append(sum(logprobs[t - 1, ids[t]].item() for t in range(start, len(ids))))
    return out[0], out[1], len(example.chosen_ids), len(example.rejected_ids)


def expected_metrics(policy, reference, beta):
    """Accuracies and margin stats computed by hand from oracle log-probs."""
    margins = [beta * ((pc - rc) - (pr - rr)) for (pc, pr, _, _), (rc, rr, _, _) in zip(policy, reference)]
    mean = statistics.fmean(margins)
    half = t_quantile(0.95, len(margins) - 1) * statistics.stdev(margins) / math.sqrt(len(margins))
    return {
        "reward_accuracy": sum(m > 0 for m in margins) / len(margins),
        "logprob_accuracy": sum(pc > pr for pc, pr, _, _ in policy) / len(policy),
        "logprob_accuracy_per_token": sum(pc / nc > pr / nr for pc, pr, nc, nr in policy) / len(policy),
        "margin_mean": mean,
        "margin_ci95": [mean - half, mean + half],
    }


@pytest.fixture(scope="module")
def hh_pairs() -> list[PreferencePair]:
    return load_preference_data([str(HH_RLHF)], max_samples=6).pairs


@pytest.fixture(scope="module")
def lora_model(tiny_lora_run):
    from dpokit.runs import load_for_inference

    model, tokenizer, _ = load_for_inference(tiny_lora_run)
    return model, tokenizer


# ----------------------------------------------------------------------------- statistics


@pytest.mark.parametrize("df, table", [(1, 12.706), (2, 4.303), (4, 2.776), (9, 2.262), (30, 2.042), (120, 1.980)])
def test_t_quantile_matches_the_t_table(df, table):
    assert t_quantile(0.95, df) == pytest.approx(table, abs=6e-4)


def test_t_quantile_tends_to_the_normal_quantile():
    assert t_quantile(0.95, 50_000) == pytest.approx(1.95996, abs=1e-4)
    assert t_quantile(0.99, 50_000) == pytest.approx(2.57583, abs=1e-4)


def test_confidence_interval_of_a_known_sample():
    # mean 3, sample std sqrt(2.5), n 5: 3 ± 2.7764 * 1.5811 / sqrt(5) = 3 ± 1.9632
    mean, (low, high) = mean_confidence_interval([1.0, 2.0, 3.0, 4.0, 5.0])
    assert mean == 3.0
    assert low == pytest.approx(1.0368, abs=1e-4) and high == pytest.approx(4.9632, abs=1e-4)
    assert mean_confidence_interval([2.5]) == (2.5, None)
    assert mean_confidence_interval([]) == (None, None)
    assert mean_confidence_interval([0.7, 0.7, 0.7])[1] == pytest.approx([0.7, 0.7])


def test_metrics_by_hand_and_ties_are_not_correct():
    # policy log-probs (chosen, rejected) and reference log-probs; beta 0.5
    metrics = preference_metrics(
        policy_chosen=[-10.0, -8.0, -6.0, -5.0], policy_rejected=[-12.0, -8.0, -4.0, -9.0],
        chosen_tokens=[2, 4, 3, 1], rejected_tokens=[4, 4, 1, 3],
        ref_chosen=[-11.0, -8.0, -6.0, -5.0], ref_rejected=[-11.0, -8.0, -6.0, -5.0], beta=0.5,
    )
    # reward margins 0.5*((pc-rc)-(pr-rr)): 0.5*(1+1)=1, 0 (tie), 0.5*(0-2)=-1, 0.5*(0+4)=2
    assert metrics["pairs"] == 4
    assert metrics["reward_accuracy"] == 0.5 and metrics["reward_ties"] == 1
    assert metrics["margin_mean"] == pytest.approx(0.5)
    half = 3.1824 * statistics.stdev([1, 0, -1, 2]) / 2
    assert metrics["margin_ci95"] == pytest.approx([0.5 - half, 0.5 + half], abs=1e-3)
    # summed log-prob margins 2, 0 (tie), -2, 4; per token: -5 > -3, -2 = -2 (tie), -2 < -4? no: -2 > -4, -5 < -3
    assert metrics["logprob_accuracy"] == 0.5 and metrics["logprob_ties"] == 1
    assert metrics["logprob_accuracy_per_token"] == 0.25
    assert metrics["rewards_chosen_mean"] == pytest.approx(0.5 * (1 + 0 + 0 + 0) / 4)
    no_ref = preference_metrics([-1.0], [-2.0], [1], [1])
    assert no_ref["reward_accuracy"] is None and no_ref["margin_mean"] is None and no_ref["margin_ci95"] is None
    assert no_ref["logprob_accuracy"] == 1.0


# ----------------------------------------------------------------------------- against the oracle


def test_lora_run_metrics_match_a_full_logits_oracle(lora_model, hh_pairs):
    model, tokenizer = lora_model
    result = evaluate_preferences(model, tokenizer, hh_pairs, SHORT, reference="adapter", beta=0.3, batch_size=4)
    examples, _ = tokenize_pairs(hh_pairs, tokenizer, SHORT)
    policy = [oracle_logps(model, ex) for ex in examples]
    with model.disable_adapter():
        reference = [oracle_logps(model, ex) for ex in examples]
    expected = expected_metrics(policy, reference, beta=0.3)

    assert result["pairs"] == len(examples) == len(hh_pairs)
    for key in ("reward_accuracy", "logprob_accuracy", "logprob_accuracy_per_token"):
        assert result[key] == expected[key], key
    assert result["margin_mean"] == pytest.approx(expected["margin_mean"], abs=1e-4)
    assert result["margin_ci95"] == pytest.approx(expected["margin_ci95"], abs=1e-4)
    assert result["logps_chosen_mean"] == pytest.approx(statistics.fmean(p[0] for p in policy), abs=1e-3)
    assert result["logps_rejected_mean"] == pytest.approx(statistics.fmean(p[1] for p in policy), abs=1e-3)
    # The adapter really changes the model, so the rewards are not trivially zero.
    assert abs(result["margin_mean"]) > 1e-3 and result["margin_ci95"][0] < result["margin_ci95"][1]
    assert model.training is False and result["beta"] == 0.3


def test_a_model_without_reference_is_scored_by_log_prob_only(lora_model, hh_pairs):
    model, tokenizer = lora_model
    result = evaluate_preferences(model, tokenizer, hh_pairs[:3], SHORT)
    assert result["reference"] is None
    assert result["reward_accuracy"] is None and result["margin_mean"] is None and result["margin_ci95"] is None
    assert result["logprob_accuracy"] is not None and result["logprob_margin_ci95"] is not None


def test_a_model_against_itself_has_zero_margins_and_ties_count_as_wrong(lora_model, hh_pairs):
    model, tokenizer = lora_model
    result = evaluate_preferences(model, tokenizer, hh_pairs[:3], SHORT, reference=model)
    assert result["margin_mean"] == 0.0 and result["reward_ties"] == 3
    assert result["reward_accuracy"] == 0.0


def test_reference_adapter_needs_a_lora_model(tiny_model_dir, tokenizer, hh_pairs):
    from transformers import AutoModelForCausalLM

    plain = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    with pytest.raises(DpokitError, match="LoRA"):
        evaluate_preferences(plain, tokenizer, hh_pairs[:2], SHORT, reference="adapter")


def test_nothing_left_after_tokenisation_is_a_clear_error(lora_model, hh_pairs):
    model, tokenizer = lora_model
    with pytest.raises(DpokitError, match="no pair is left"):
        evaluate_preferences(model, tokenizer, hh_pairs[:2], DataConfig(max_length=8, max_prompt_length=8))


# ----------------------------------------------------------------------------- categories


def _pair(i: int, **meta) -> PreferencePair:
    return PreferencePair([{"role": "user", "content": f"q{i}"}], [{"role": "assistant", "content": "a"}],
                          [{"role": "assistant", "content": "b"}], meta=meta)


def test_category_fields_are_repeating_short_values():
    pairs = [_pair(i, category=["x", "y"][i % 2], id=f"r{i}", topic=f"t{i}", note="same",
                   score=i / 3, text="long\nfree text", split=i % 3) for i in range(8)]
    # id: an id; topic: every value distinct; note: one value; score: floats; text: free text
    assert category_fields(pairs) == ["category", "split"]
    assert category_fields(pairs, ["topic"]) == ["topic"]
    with pytest.raises(DpokitError, match="(?s)--by colour.*category"):
        category_fields(pairs, ["colour"])


def test_breakdown_by_the_demo_sets_category(lora_model):
    model, tokenizer = lora_model
    pairs = load_preference_data(["demo:heldout"]).pairs
    picked = [p for p in pairs if p.meta.get("category") == "benign"][:3]
    picked += [p for p in pairs if p.meta.get("category") == "harmful"][:2]
    result = evaluate_preferences(model, tokenizer, picked, SHORT, reference="adapter", batch_size=2)
    groups = result["by_category"]["category"]
    assert set(groups) == {"benign", "harmful"}
    assert groups["benign"]["pairs"] == 3 and groups["harmful"]["pairs"] == 2
    # Each group's numbers are those of evaluating that group alone.
    alone = evaluate_preferences(model, tokenizer, picked[3:], SHORT, reference="adapter", batch_size=2)
    for key in ("reward_accuracy", "logprob_accuracy", "logprob_accuracy_per_token"):
        assert groups["harmful"][key] == alone[key]
    assert groups["harmful"]["margin_mean"] == pytest.approx(alone["margin_mean"], abs=1e-5)
    assert groups["harmful"]["margin_ci95"] == pytest.approx(alone["margin_ci95"], abs=1e-5)
    overall = (3 * groups["benign"]["margin_mean"] + 2 * groups["harmful"]["margin_mean"]) / 5
    assert result["margin_mean"] == pytest.approx(overall, abs=1e-5)


# ----------------------------------------------------------------------------- runs, models, the CLI


def _cli(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main(["eval", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_base_and_run_are_scored_on_the_same_pairs_and_tokens(tiny_model_dir, tiny_lora_run):
    base = evaluate_ref(tiny_model_dir, [str(HH_RLHF)], max_pairs=5, max_length=160, max_prompt_length=96)
    run = evaluate_ref(tiny_lora_run, [str(HH_RLHF)], max_pairs=5, max_length=160, max_prompt_length=96)
    assert base["pairs"] == run["pairs"] == 5
    assert base["tokenization"]["fingerprint"] == run["tokenization"]["fingerprint"]
    assert base["tokenization"]["answer_tokens"] == run["tokenization"]["answer_tokens"]
    assert base["reference"] is None and base["reward_accuracy"] is None
    assert "adapter switched off" in run["reference"] and run["reward_accuracy"] is not None
    # The run's reference is the base model: policy - reward/beta gives the base's log-probs back.
    beta = run["beta"]
    assert run["logps_chosen_mean"] - run["rewards_chosen_mean"] / beta == pytest.approx(base["logps_chosen_mean"], abs=1e-3)
    assert run["logps_rejected_mean"] - run["rewards_rejected_mean"] / beta == pytest.approx(base["logps_rejected_mean"], abs=1e-3)


def test_full_finetune_run_uses_its_base_model_as_reference(tmp_path, tiny_model_dir, tokenizer):
    from transformers import AutoModelForCausalLM

    from dpokit.rundir import write_run_json

    run_dir = tmp_path / "full-run"
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    with torch.no_grad():
        model.lm_head.weight.mul_(1.5)  # tied to the embeddings: changes every log-prob
    model.save_pretrained(run_dir / "final")
    tokenizer.save_pretrained(run_dir / "final")
    write_run_json(run_dir, stage="dpo", base_model=tiny_model_dir, adapter=False, reference="precompute")
    args = dict(max_pairs=4, max_length=160, max_prompt_length=96)
    run = evaluate_ref(run_dir, [str(HH_RLHF)], **args)
    base = evaluate_ref(tiny_model_dir, [str(HH_RLHF)], **args)
    assert run["reference"] == tiny_model_dir and run["beta"] == 0.1
    assert run["logps_chosen_mean"] - run["rewards_chosen_mean"] / 0.1 == pytest.approx(base["logps_chosen_mean"], abs=1e-3)
    # --ref none switches the reward off; --ref names any model.
    assert evaluate_ref(run_dir, [str(HH_RLHF)], reference="none", **args)["reward_accuracy"] is None
    with_ref = evaluate_ref(tiny_model_dir, [str(HH_RLHF)], reference=str(run_dir / "final"), **args)
    assert with_ref["margin_mean"] == pytest.approx(-run["margin_mean"], abs=1e-4)


def test_cli_json_has_the_documented_keys(capsys, tiny_model_dir):
    code, out, err = _cli(capsys, tiny_model_dir, "--data", "demo:heldout", "--max-pairs", "6", "--ref", tiny_model_dir,
                          "--max-length", "160", "--max-prompt-length", "96", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert JSON_KEYS <= set(result)
    assert result["pairs"] == 6 and result["reward_accuracy"] == 0.0  # a model against itself: all ties
    assert result["margin_ci95"] == [0.0, 0.0] and result["reference"] == tiny_model_dir
    assert "category" in result["by_category"]
    assert 0.0 <= result["logprob_accuracy"] <= 1.0 and 0.0 <= result["logprob_accuracy_per_token"] <= 1.0


def test_cli_table_and_eval_json_for_a_run_on_its_eval_files(capsys, monkeypatch, tiny_lora_run, tmp_path):
    from dpokit.config import dump_config, load_config

    run = shutil.copytree(tiny_lora_run, tmp_path / "run")
    config = load_config(run / "config.yaml", [f"data.eval_files=[{HH_RLHF}]"])
    (run / "config.yaml").write_text(dump_config(config))
    monkeypatch.chdir(tmp_path)
    code, out, err = _cli(capsys, "run", "--max-pairs", "3", "--max-length", "160",
                          "--max-prompt-length", "96", "--batch-size", "2")
    assert code == 0, err
    assert "reward accuracy" in out and "log-prob accuracy (per token)" in out and "ties count as not correct" in out
    assert f"written: {Path('run', 'eval.json')}" in out  # the run dir as the user typed it
    saved = json.loads((run / "eval.json").read_text())
    assert saved["pairs"] == 3 and JSON_KEYS <= set(saved)
    assert saved["data"]["sources"] == [str(HH_RLHF)] and saved["data"]["format"] == "hh_rlhf"
    assert not list(run.glob(".eval.json*"))  # no temp file left behind


def test_cli_model_dir_that_is_not_a_causal_lm(capsys, tmp_path):
    bad = tmp_path / "bert"
    bad.mkdir()
    (bad / "config.json").write_text(json.dumps({"model_type": "bert", "architectures": ["BertForMaskedLM"]}))
    code, out, err = _cli(capsys, bad, "--data", HH_RLHF)
    assert code == 2 and "not a causal language model" in err and "Traceback" not in err


def test_cli_run_without_final_model(capsys, tiny_lora_run, tmp_path):
    run = shutil.copytree(tiny_lora_run, tmp_path / "run")
    shutil.rmtree(run / "final")
    code, out, err = _cli(capsys, run, "--data", HH_RLHF)
    assert code == 2 and "no final model" in err and "Traceback" not in err
    assert not (run / "eval.json").exists()


def test_cli_bad_data_and_bad_reference(capsys, tiny_model_dir, tmp_path):
    code, _, err = _cli(capsys, tiny_model_dir, "--data", tmp_path / "missing.jsonl")
    assert code == 2 and "missing.jsonl" in err and "Traceback" not in err
    code, _, err = _cli(capsys, tiny_model_dir, "--data", HH_RLHF, "--ref", tmp_path / "nowhere")
    assert code == 2 and "nowhere" in err and "Traceback" not in err
    code, _, err = _cli(capsys, tiny_model_dir)
    assert code == 2 and "--data" in err
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["eval", tiny_model_dir, "--data", str(HH_RLHF), "--max-pairs", "0"])
    assert exit_info.value.code == 2
