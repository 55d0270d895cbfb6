"""`dpokit doctor`: each rule on a synthetic metrics.jsonl that triggers it and on a near miss
that must not, a healthy run with no findings, the live form, the CLI, the model card's
Diagnostics section, the data report's length comparison and prompt overlap, and real
tiny-model runs (one that does not learn, one on pairs too easy to tell apart)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from test_train import QA, tiny_config, write_pairs

from dpokit.cli import main
from dpokit.config import build_config, dump_config
from dpokit.data.tokenize import TokenizedPair
from dpokit.data.types import PreferencePair
from dpokit.doctor import CODES, LiveDoctor, diagnose, diagnose_run, spearman

N = 60  # steps of a synthetic run; 20% is step 12; warmup_ratio 0.1 is 6 steps
LN2 = math.log(2)


def synthetic_config(**training):
    settings = {"max_steps": N, "per_device_train_batch_size": 4, "logging_steps": 1, "warmup_ratio": 0.1,
                "learning_rate": 5e-5, "mixed_precision": "no", **training}
    return build_config({"training": settings})


def healthy_rows(seed: int = 0, n: int = N, eval_every: int = 20) -> list[dict]:
    """A DPO run learning at a sane pace: noisy per-batch metrics (batches of 4), loss ln 2 -> ~0.45,
    accuracy ~0.5 -> ~0.8, margins up to ~1, chosen log-prob near the reference, eval improving."""
    rng = np.random.default_rng(seed)
    rows = []
    for step in range(1, n + 1):
        t = step / n
        margin = 1.0 * t + rng.normal(0, 0.1)
        chosen = 0.1 * t + rng.normal(0, 0.05)
        accuracy = float(np.clip(np.round((0.5 + 0.3 * t + rng.normal(0, 0.15)) * 4) / 4, 0, 1))
        rows.append({"step": step, "epoch": round(t, 4), "loss": LN2 - 0.25 * t + rng.normal(0, 0.05),
                     "rewards/chosen": chosen, "rewards/rejected": chosen - margin, "rewards/margins": margin,
                     "rewards/accuracies": accuracy, "logps/chosen": -60 + rng.normal(0, 8),
                     "logps/rejected": -70 + rng.normal(0, 8), "grad_norm": 1.0 + 0.2 * abs(rng.normal()),
                     "learning_rate": 5e-5, "tokens_per_second": 900.0})
        if step % eval_every == 0:
            rows.append({"step": step, "epoch": round(t, 4), "eval_loss": LN2 - 0.2 * t,
                         "eval_rewards/accuracies": 0.55 + 0.25 * t, "eval_rewards/margins": 0.8 * t,
                         "eval_rewards/chosen": 0.05 * t, "eval_logps/chosen": -61.0})
    return rows


def healthy_report() -> dict:
    return {
        "pairs_used": 240,
        "length_comparison": {"pairs": 240, "chosen_longer": 118, "rejected_longer": 112, "same_length": 10,
                              "chosen_longer_share": 0.4917, "rejected_longer_share": 0.4667,
                              "mean_chosen_tokens": 41.0, "mean_rejected_tokens": 40.2, "mean_difference": 0.8},
        "prompt_overlap": {"eval_items": 40, "overlapping": 0, "share": 0.0, "examples": []},
    }


def train_rows(rows):
    return [r for r in rows if "loss" in r]


def write_run(root: Path, rows, report=None, config=None, *, finished: bool = True) -> Path:
    """A run dir as the trainer leaves it: config.yaml, data_report.json, metrics.jsonl (and final/)."""
    run_dir = root / "run"
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(dump_config(config or synthetic_config()))
    if report is not None:
        (run_dir / "data_report.json").write_text(json.dumps(report))
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if finished:
        (run_dir / "final").mkdir()
    return run_dir


def findings_of(tmp_path, rows, report=None, config=None) -> dict:
    """code -> finding, from a synthetic metrics.jsonl in a run dir (the same path `dpokit doctor` takes)."""
    doctor = diagnose_run(write_run(tmp_path, rows, healthy_report() if report is None else report, config))
    return {f.code: f for f in doctor.findings}


# ----------------------------------------------------------------------------- healthy


@pytest.mark.parametrize("seed", range(5))
def test_a_healthy_run_has_no_findings_and_every_check_ran(tmp_path, seed):
    doctor = diagnose_run(write_run(tmp_path, healthy_rows(seed), healthy_report()))
    assert doctor.findings == []
    checked, skipped = doctor.coverage()
    assert checked == list(CODES) and skipped == {}


def test_an_sft_run_is_judged_only_on_what_applies(tmp_path):
    rows = [{"step": r["step"], "loss": 2.5 - r["step"] / N, "nll_loss": 2.5 - r["step"] / N, "logps/chosen": -80.0,
             "grad_norm": r["grad_norm"]} for r in train_rows(healthy_rows())]
    doctor = diagnose_run(write_run(tmp_path, rows, healthy_report(), synthetic_config().model_copy(update={"stage": "sft"})))
    assert doctor.findings == []
    checked, skipped = doctor.coverage()
    assert set(checked) == {"unstable", "train_eval_overlap"}
    assert set(skipped) == {"pairs_too_easy", "likelihood_displacement", "not_learning", "length_bias", "overfitting"}
    assert skipped["pairs_too_easy"].startswith("SFT run")


# ----------------------------------------------------------------------------- pairs_too_easy


def separated(rows, first: int, last: int = N, margin: float = 2.0):
    for r in train_rows(rows):
        if first <= r["step"] <= last:
            r["rewards/accuracies"], r["rewards/margins"] = 1.0, margin
            r["rewards/rejected"] = r["rewards/chosen"] - margin
    return rows


def test_accuracy_one_within_the_first_fifth_is_too_easy(tmp_path):
    rows = separated(healthy_rows(), 5)
    found = findings_of(tmp_path, rows)
    assert set(found) == {"pairs_too_easy"}
    finding = found["pairs_too_easy"]
    # 4 pairs a line: 4 lines hold 16 pairs, so the first all-right window is steps 5-8.
    assert finding.step == 8
    assert finding.message.startswith("step 8 of 60 (13% of the run): reward accuracy 1.00, loss ")
    assert "margin 2.00 (mean of the 4 logged steps 5-8)" in finding.message and "first 20%" in finding.message
    assert "training.learning_rate=1e-05" in finding.hint and "dpo.rpo_alpha=0.5" in finding.hint


@pytest.mark.parametrize("first, last, margin", [(13, N, 2.0), (5, 7, 2.0), (5, N, 0.01)],
                         ids=["after-the-first-fifth", "three-lines-only", "margin-0.01"])
def test_accuracy_one_late_briefly_or_by_a_hair_is_not_too_easy(tmp_path, first, last, margin):
    assert "pairs_too_easy" not in findings_of(tmp_path, separated(healthy_rows(), first, last, margin))


@pytest.mark.parametrize("loss, flagged", [(0.03, True), (0.06, False)])
def test_a_loss_below_005_early_is_too_easy(tmp_path, loss, flagged):
    rows = healthy_rows()
    for r in train_rows(rows):
        if r["step"] >= 6:
            r["loss"] = loss
    found = findings_of(tmp_path, rows)
    assert ("pairs_too_easy" in found) is flagged
    if flagged:
        assert found["pairs_too_easy"].step == 9 and "loss 0.030" in found["pairs_too_easy"].message


@pytest.mark.parametrize("loss, flagged", [(0.005, True), (0.02, False)])
def test_a_saturated_loss_later_in_the_run_is_too_easy(tmp_path, loss, flagged):
    rows = separated(healthy_rows(), 30, margin=6.0)
    for r in train_rows(rows):
        if r["step"] >= 30:
            r["loss"] = loss
    found = findings_of(tmp_path, rows)
    assert set(found) == ({"pairs_too_easy"} if flagged else set())
    if flagged:
        assert found["pairs_too_easy"].step == 33 and "the loss has saturated" in found["pairs_too_easy"].message


def test_the_nll_term_is_taken_out_of_the_loss(tmp_path):
    """With rpo_alpha the logged loss includes alpha * NLL; the preference part alone is judged."""
    rows = healthy_rows()
    for r in train_rows(rows):
        r["nll_loss"] = 1.5
        r["loss"] = (0.03 if r["step"] >= 6 else r["loss"]) + 0.5 * 1.5
    config = build_config({"dpo": {"rpo_alpha": 0.5}, "training": synthetic_config().training.model_dump()})
    found = findings_of(tmp_path, rows, config=config)
    assert found["pairs_too_easy"].step == 9
    assert "preference loss 0.030" in found["pairs_too_easy"].message
    assert "dpo.rpo_alpha=1" in found["pairs_too_easy"].hint  # already on: doubled


# ----------------------------------------------------------------------------- likelihood_displacement


def displaced(rows, chosen_per_step: float, margin_per_step: float = 0.1):
    for r in train_rows(rows):
        r["rewards/chosen"] = chosen_per_step * r["step"]
        r["rewards/margins"] = margin_per_step * r["step"]
        r["rewards/rejected"] = r["rewards/chosen"] - r["rewards/margins"]
    return rows


def test_chosen_falling_while_margins_grow_is_displacement(tmp_path):
    found = findings_of(tmp_path, displaced(healthy_rows(), -0.05))
    assert set(found) == {"likelihood_displacement"}
    finding = found["likelihood_displacement"]
    # beta 0.1: the chosen log-prob falls 0.5 nats a step; after warmup (6) the 5th point is step 11,
    # where the last 3 lines average 5 nats below the reference.
    assert finding.step == 11
    assert "5.0 nats below the reference" in finding.message and "arXiv 2410.08847" in finding.message
    assert "dpo.rpo_alpha=0.5" in finding.hint and "dpo.beta=0.2" in finding.hint
    assert "training.learning_rate=2.5e-05" in finding.hint


def test_the_drop_needed_grows_with_the_answers_length(tmp_path):
    rows = displaced(healthy_rows(), -0.011)  # 0.11 nats a step: the last 3 lines average 0.11 * (step - 1)
    assert findings_of(tmp_path / "short", rows)["likelihood_displacement"].step == 20  # 2 nats
    report = healthy_report()
    report["length_comparison"]["mean_chosen_tokens"] = 100.0  # 0.05 nats/token -> 5 nats
    report["length_comparison"]["mean_rejected_tokens"] = 100.0
    assert findings_of(tmp_path / "long", rows, report)["likelihood_displacement"].step == 47


@pytest.mark.parametrize("chosen, margin", [(-0.0025, 0.1), (-0.05, 0.0)], ids=["small-fall", "flat-margin"])
def test_a_small_fall_or_a_flat_margin_is_not_displacement(tmp_path, chosen, margin):
    rows = displaced(healthy_rows(), chosen, margin)
    for r in train_rows(rows):
        r["rewards/margins"] += 0.001 * math.sin(r["step"])  # flat, not constant
    assert "likelihood_displacement" not in findings_of(tmp_path, rows)


def test_a_noisy_rise_and_fall_is_not_a_steady_fall(tmp_path):
    """The chosen log-prob dips below -2 nats for a while and comes back: no steady fall."""
    rows = healthy_rows()
    for r in train_rows(rows):
        r["rewards/chosen"] = -0.3 * math.sin(math.pi * r["step"] / N * 2) + 0.02 * (-1) ** r["step"]
    assert "likelihood_displacement" not in findings_of(tmp_path, rows)


# ----------------------------------------------------------------------------- not_learning


def frozen(rows, reward_per_step: float = 0.0):
    for r in train_rows(rows):
        r["rewards/chosen"] = reward_per_step * r["step"]
        r["rewards/rejected"] = -reward_per_step * r["step"]
        r["rewards/margins"] = 2 * reward_per_step * r["step"]
        r["rewards/accuracies"] = 0.0 if not reward_per_step else 1.0 if r["step"] > 30 else 0.5
        r["loss"] = LN2 - reward_per_step * r["step"]
    for r in rows:
        if "eval_loss" in r:
            r.update({"eval_loss": LN2, "eval_rewards/accuracies": 0.0, "eval_rewards/margins": 0.0})
    return rows


def test_rewards_stuck_at_zero_after_warmup_is_not_learning(tmp_path):
    found = findings_of(tmp_path, frozen(healthy_rows()))
    assert set(found) == {"not_learning"}
    finding = found["not_learning"]
    # warmup 6: from step 8 on, for max(5, 10% of 60) = 6 steps -> step 13.
    assert finding.step == 13
    assert "loss 0.6931 (ln 2 = 0.6931)" in finding.message and "since warmup (6 steps)" in finding.message
    assert "training.learning_rate" in finding.hint and "lora.target_modules" in finding.hint


def test_slow_but_real_learning_is_not_not_learning(tmp_path):
    assert "not_learning" not in findings_of(tmp_path, frozen(healthy_rows(), 2e-4))


# ----------------------------------------------------------------------------- overfitting


def with_evals(rows, accuracies, margins=None):
    evals = [r for r in rows if "eval_loss" in r]
    for r, acc in zip(evals, accuracies):
        r["eval_rewards/accuracies"] = acc
    for r, margin in zip(evals, margins or []):
        r["eval_rewards/margins"] = margin
    return rows


def test_eval_accuracy_falling_while_train_rises_is_overfitting(tmp_path):
    found = findings_of(tmp_path, with_evals(healthy_rows(), [0.8, 0.7, 0.65]))
    assert set(found) == {"overfitting"}
    finding = found["overfitting"]
    assert finding.step == 40
    assert "eval reward accuracy fell to 0.7 from 0.8 at step 20, while train's rose" in finding.message
    assert "training.max_steps=20" in finding.hint


def test_eval_margin_falling_is_overfitting(tmp_path):
    found = findings_of(tmp_path, with_evals(healthy_rows(), [0.6, 0.7, 0.8], [0.6, 0.7, 0.5]))
    assert found["overfitting"].step == 60 and "eval reward margin fell to 0.5 from 0.7" in found["overfitting"].message


@pytest.mark.parametrize("accuracies, margins", [([0.8, 0.78, 0.77], None), ([0.6, 0.7, 0.8], [0.6, 0.7, 0.6])],
                         ids=["accuracy-dips-0.03", "margin-dips-14%"])
def test_small_eval_dips_are_not_overfitting(tmp_path, accuracies, margins):
    assert "overfitting" not in findings_of(tmp_path, with_evals(healthy_rows(), accuracies, margins))


def test_eval_falling_while_train_falls_too_is_not_overfitting(tmp_path):
    rows = with_evals(healthy_rows(), [0.8, 0.7, 0.65])
    for r in train_rows(rows):
        r["rewards/accuracies"] = 0.9 - 0.3 * r["step"] / N
    assert "overfitting" not in findings_of(tmp_path, rows)


def test_sft_eval_loss_rising_while_train_loss_falls_is_overfitting(tmp_path):
    rows = [{"step": s, "loss": 2.5 - s / N, "nll_loss": 2.5 - s / N, "grad_norm": 1.0} for s in range(1, N + 1)]
    rows += [{"step": 20, "eval_loss": 2.2}, {"step": 40, "eval_loss": 2.3}, {"step": 60, "eval_loss": 2.5}]
    config = synthetic_config().model_copy(update={"stage": "sft"})
    found = findings_of(tmp_path, rows, config=config)
    assert set(found) == {"overfitting"} and found["overfitting"].step == 60  # +4.5% at 40, +13.6% at 60
    assert "eval loss rose to 2.5 from 2.2 at step 20" in found["overfitting"].message


# ----------------------------------------------------------------------------- data checks


def length_report(share_chosen, share_rejected, chosen, rejected):
    report = healthy_report()
    pairs = 200
    report["length_comparison"] = {
        "pairs": pairs, "chosen_longer": round(share_chosen * pairs), "rejected_longer": round(share_rejected * pairs),
        "same_length": pairs - round(share_chosen * pairs) - round(share_rejected * pairs),
        "chosen_longer_share": share_chosen, "rejected_longer_share": share_rejected,
        "mean_chosen_tokens": chosen, "mean_rejected_tokens": rejected, "mean_difference": chosen - rejected}
    return report


def test_chosen_longer_in_most_pairs_is_length_bias(tmp_path):
    found = findings_of(tmp_path, healthy_rows(), length_report(0.85, 0.1, 80.0, 40.0))
    assert set(found) == {"length_bias"}
    finding = found["length_bias"]
    assert finding.step is None
    assert finding.message.startswith("the chosen answer is longer than the rejected in 170 of 200 train pairs (85%; "
                                      "mean 80.0 chosen vs 40.0 rejected tokens)")
    assert "longer rather than better" in finding.message


def test_rejected_longer_in_most_pairs_is_length_bias_too(tmp_path):
    found = findings_of(tmp_path, healthy_rows(), length_report(0.1, 0.8, 30.0, 60.0))
    assert "rejected answer is longer" in found["length_bias"].message and "shorter" in found["length_bias"].message


@pytest.mark.parametrize("share, chosen", [(0.65, 80.0), (0.85, 42.0)], ids=["65%-of-pairs", "5%-longer"])
def test_a_mild_length_difference_is_not_length_bias(tmp_path, share, chosen):
    assert "length_bias" not in findings_of(tmp_path, healthy_rows(), length_report(share, 0.3, chosen, 40.0))


@pytest.mark.parametrize("overlapping", [2, 0])
def test_prompts_in_both_splits_are_train_eval_overlap(tmp_path, overlapping):
    report = healthy_report()
    report["prompt_overlap"] = {"eval_items": 10, "overlapping": overlapping, "share": overlapping / 10,
                                "examples": [{"prompt": "Why is the sky blue?", "eval_source": "heldout.jsonl:3",
                                              "train_source": "train.jsonl:17"}] if overlapping else []}
    found = findings_of(tmp_path, healthy_rows(), report)
    if not overlapping:
        assert found == {}
        return
    finding = found["train_eval_overlap"]
    assert finding.step is None
    assert finding.message.startswith("2 of 10 eval pairs (20%) ask a prompt the train data also asks, e.g. "
                                      "'Why is the sky blue?' (eval heldout.jsonl:3, train train.jsonl:17)")


def test_a_report_without_the_new_parts_skips_those_checks(tmp_path):
    doctor = diagnose_run(write_run(tmp_path, healthy_rows(), {"pairs_used": 240}))
    checked, skipped = doctor.coverage()
    assert doctor.findings == [] and set(skipped) == {"length_bias", "train_eval_overlap"}


# ----------------------------------------------------------------------------- unstable


def test_a_gradient_norm_spike_is_unstable(tmp_path):
    rows = healthy_rows()
    train_rows(rows)[39]["grad_norm"] = 25.0
    found = findings_of(tmp_path, rows)
    assert set(found) == {"unstable"}
    assert found["unstable"].step == 40
    assert "gradient norm 25, 19x the usual 1.35 of the steps before" in found["unstable"].message
    assert "training.learning_rate=1.7e-05" in found["unstable"].hint


def test_an_8x_gradient_norm_is_not_a_spike(tmp_path):
    rows = healthy_rows()
    train_rows(rows)[39]["grad_norm"] = 8.0
    assert "unstable" not in findings_of(tmp_path, rows)


def test_a_saturated_run_whose_gradients_come_back_is_not_a_spike(tmp_path):
    """Gradients shrink to ~0 as the loss saturates; a return to the run's usual size is no spike."""
    rows = healthy_rows()
    for r in train_rows(rows):
        if 20 <= r["step"] < 40:
            r["grad_norm"] = 0.01
    assert "unstable" not in findings_of(tmp_path, rows)


def test_a_loss_jump_is_unstable(tmp_path):
    rows = healthy_rows()
    for r in train_rows(rows)[39:42]:
        r["loss"] = 1.6
    found = findings_of(tmp_path, rows)
    assert found["unstable"].step == 41 and "the loss jumped to" in found["unstable"].message


@pytest.mark.parametrize("precision, flagged", [("no", True), ("fp16", False)])
def test_a_nan_gradient_norm_is_unstable_except_once_under_fp16(tmp_path, precision, flagged):
    rows = healthy_rows()
    train_rows(rows)[29]["grad_norm"] = float("nan")
    found = findings_of(tmp_path, rows, config=synthetic_config(mixed_precision=precision))
    assert ("unstable" in found) is flagged
    if flagged:
        assert found["unstable"].step == 30 and "the gradient norm is nan" in found["unstable"].message


@pytest.mark.parametrize("recorded, flagged", [("bf16", True), ("no", True), ("fp16", False), (None, False)])
def test_an_auto_run_is_judged_by_the_precision_run_json_records(tmp_path, recorded, flagged):
    """``auto`` resolved to bf16 or fp32 has no loss scaler to excuse a NaN; only fp16 (or an older
    run.json without the record, where ``auto`` may have meant fp16) does."""
    rows = healthy_rows()
    train_rows(rows)[29]["grad_norm"] = float("nan")
    run_dir = write_run(tmp_path, rows, healthy_report(), synthetic_config(mixed_precision="auto"))
    run_json = {"stage": "dpo", "base_model": "tiny", "adapter": True}
    if recorded is not None:
        run_json["mixed_precision"] = recorded
    (run_dir / "run.json").write_text(json.dumps(run_json))
    found = {f.code: f for f in diagnose_run(run_dir).findings}
    assert ("unstable" in found) is flagged


# ----------------------------------------------------------------------------- the live form


def test_live_doctor_reports_each_finding_once_when_it_first_appears():
    rows = separated(with_evals(healthy_rows(), [0.8, 0.7, 0.65]), 5)
    doctor = LiveDoctor(synthetic_config(), length_report(0.85, 0.1, 80.0, 40.0), total_steps=N)
    assert [f.code for f in doctor.begin()] == ["length_bias"]
    assert doctor.begin() == []
    seen = []
    for record in rows:
        for finding in doctor.observe(record):
            seen.append((finding.code, record["step"], "eval_loss" in record))
    assert seen == [("pairs_too_easy", 8, False), ("overfitting", 40, True)]
    assert [f.code for f in doctor.findings] == ["length_bias", "pairs_too_easy", "overfitting"]
    warning = doctor.findings[1].as_warning()
    assert warning.startswith("warning: pairs_too_easy: step 8 of 60") and "\n  hint: " in warning


def test_live_doctor_without_begin_still_reports_data_findings_and_a_resume_does_not_repeat():
    report = length_report(0.85, 0.1, 80.0, 40.0)
    rows = displaced(healthy_rows(), -0.05)
    doctor = LiveDoctor(synthetic_config(), report, N)
    assert [f.code for f in doctor.observe(rows[0])] == ["length_bias"]
    resumed = LiveDoctor(synthetic_config(), report, N, history=rows[:30])
    assert {f.code for f in resumed.findings} == {"length_bias", "likelihood_displacement"}
    assert all(resumed.observe(r) == [] for r in rows[30:])


def test_offline_findings_are_the_live_ones(tmp_path):
    rows = displaced(with_evals(healthy_rows(), [0.8, 0.7, 0.65]), -0.05)
    live = LiveDoctor(synthetic_config(), healthy_report(), N)
    printed = [f for r in rows for f in live.observe(r)]
    assert diagnose(synthetic_config(), reversed(rows), healthy_report(), N).findings == printed  # any order in


def test_a_config_dict_works_as_the_config():
    rows = displaced(healthy_rows(), -0.05)
    as_dict = diagnose(synthetic_config().model_dump(mode="json"), rows, healthy_report())
    assert as_dict.findings == diagnose(synthetic_config(), rows, healthy_report()).findings != []


def test_total_steps_come_from_max_steps_else_the_data(tmp_path):
    config = build_config({"training": {"per_device_train_batch_size": 4, "num_train_epochs": 2}})
    rows = train_rows(healthy_rows())[:10]
    assert diagnose(config, rows, {"pairs_used": 101}).facts.total_steps == 52  # 26 batches x 2 epochs
    assert diagnose(config, rows, None).facts.total_steps == 10  # unknown: the last logged step
    assert diagnose(synthetic_config(), rows, None).facts.total_steps == N


def test_spearman():
    x = np.arange(6.0)
    assert spearman(x, x ** 3) == pytest.approx(1.0) and spearman(x, -x) == pytest.approx(-1.0)
    assert spearman(x, np.array([1.0, 1.0, 2.0, 2.0, 3.0, 3.0])) == pytest.approx(0.9562, abs=1e-4)  # ties averaged
    assert spearman(x, np.ones(6)) == 0.0


# ----------------------------------------------------------------------------- the command


def run_cli(args, capsys):
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_lists_findings_with_hints_and_exits_0(tmp_path, capsys):
    rows = displaced(healthy_rows(), -0.05)
    code, out, err = run_cli(["doctor", str(write_run(tmp_path, rows, length_report(0.85, 0.1, 80.0, 40.0)))], capsys)
    assert code == 0 and err == ""
    assert "dpo run, 60 logged train steps (last step 60 of 60)" in out
    assert "\nlength_bias (data): the chosen answer is longer" in out
    assert "\nlikelihood_displacement (step 11): step 11 of 60:" in out
    assert out.count("\n  hint: ") == 2


def test_cli_on_a_healthy_run_says_what_it_checked(tmp_path, capsys):
    code, out, _ = run_cli(["doctor", str(write_run(tmp_path, healthy_rows(), healthy_report()))], capsys)
    assert code == 0
    assert "no problems found; checked: " + ", ".join(CODES) in out and "not checked" not in out


def test_cli_json_shape(tmp_path, capsys):
    rows = frozen(healthy_rows())
    code, out, _ = run_cli(["doctor", str(write_run(tmp_path, rows, {"pairs_used": 240})), "--json"], capsys)
    payload = json.loads(out)
    assert code == 0
    assert [set(f) for f in payload["findings"]] == [{"code", "step", "message", "hint"}]
    assert payload["findings"][0]["code"] == "not_learning" and payload["findings"][0]["step"] == 13
    assert set(payload["skipped"]) == {"length_bias", "train_eval_overlap"}
    assert "not_learning" in payload["checked"]


def test_cli_json_of_a_healthy_run_has_no_findings(tmp_path, capsys):
    code, out, _ = run_cli(["doctor", str(write_run(tmp_path, healthy_rows(), healthy_report())), "--json"], capsys)
    assert code == 0 and json.loads(out)["findings"] == []


def test_cli_errors_exit_2_without_traceback(tmp_path, capsys):
    code, _, err = run_cli(["doctor", str(tmp_path / "nope")], capsys)
    assert code == 2 and "run directory not found" in err and "Traceback" not in err
    (tmp_path / "empty").mkdir()
    code, _, err = run_cli(["doctor", str(tmp_path / "empty")], capsys)
    assert code == 2 and "no config.yaml" in err


def test_a_bad_metrics_line_is_an_error_naming_it_but_a_torn_last_line_is_skipped(tmp_path, capsys):
    run_dir = write_run(tmp_path, healthy_rows())
    good = (run_dir / "metrics.jsonl").read_text()
    (run_dir / "metrics.jsonl").write_text(good + '{"step": 61, "loss": 0.4')  # killed mid-write
    code, out, _ = run_cli(["doctor", str(run_dir)], capsys)
    assert code == 0 and "no problems found" in out
    lines = good.splitlines()
    (run_dir / "metrics.jsonl").write_text("\n".join(lines[:2] + ["not json"] + lines[2:]) + "\n")
    code, _, err = run_cli(["doctor", str(run_dir)], capsys)
    assert code == 2 and "metrics.jsonl:3: not valid JSON" in err


def test_a_bad_data_report_is_an_error_and_a_missing_one_is_fine(tmp_path, capsys):
    run_dir = write_run(tmp_path, healthy_rows())
    assert run_cli(["doctor", str(run_dir)], capsys)[0] == 0
    (run_dir / "data_report.json").write_text("{not json")
    code, _, err = run_cli(["doctor", str(run_dir)], capsys)
    assert code == 2 and "data_report.json:1: invalid JSON" in err


def test_a_run_without_metrics_is_checked_on_its_data(tmp_path):
    run_dir = write_run(tmp_path, [], length_report(0.85, 0.1, 80.0, 40.0), finished=False)
    (run_dir / "metrics.jsonl").unlink()
    doctor = diagnose_run(run_dir)
    assert [f.code for f in doctor.findings] == ["length_bias"]
    assert doctor.coverage()[1]["unstable"] == "no train lines in the metrics"


# ----------------------------------------------------------------------------- the model card


def test_the_model_card_lists_the_findings(tmp_path):
    from dpokit.model_card import render_model_card

    run_dir = write_run(tmp_path, displaced(healthy_rows(), -0.05), healthy_report())
    (run_dir / "run.json").write_text(json.dumps({"stage": "dpo", "base_model": "m", "adapter": True}))
    card = render_model_card(run_dir)
    section = card.split("## Diagnostics\n", 1)[1].split("\n## ", 1)[0]
    assert "- **likelihood_displacement** (step 11): step 11 of 60:" in section
    assert "  hint: add dpo.rpo_alpha=0.5" in section


def test_the_model_card_of_a_healthy_run_says_so(tmp_path):
    from dpokit.model_card import render_model_card

    run_dir = write_run(tmp_path, healthy_rows(), healthy_report())
    card = render_model_card(run_dir)
    assert "## Diagnostics" in card and "`dpokit doctor` found no problems" in card


# ----------------------------------------------------------------------------- data report parts


def tok(chosen: int, rejected: int) -> TokenizedPair:
    return TokenizedPair([1, 2], list(range(chosen)), list(range(rejected)))


def test_length_comparison_counts_pairs_and_means():
    from dpokit.data.report import length_comparison

    comparison = length_comparison([tok(10, 5), tok(8, 4), tok(3, 3), tok(2, 6)])
    assert comparison == {"pairs": 4, "chosen_longer": 2, "rejected_longer": 1, "same_length": 1,
                          "chosen_longer_share": 0.5, "rejected_longer_share": 0.25, "mean_chosen_tokens": 5.8,
                          "mean_rejected_tokens": 4.5, "mean_difference": 1.2}
    empty = length_comparison([])
    assert empty["pairs"] == 0 and empty["chosen_longer_share"] is None and empty["mean_difference"] is None


def pair(question: str, system: str | None = None, source: str = "") -> PreferencePair:
    prompt = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": question}]
    return PreferencePair(prompt, [{"role": "assistant", "content": "yes"}], [{"role": "assistant", "content": "no"}],
                          source=source)


def test_prompt_overlap_ignores_the_system_prompt_case_and_spacing():
    from dpokit.data.report import prompt_overlap

    train = [pair("Why is the sky blue?", source="t:1"), pair("Name a colour.", source="t:2")]
    evals = [pair("why is the  sky blue?", system="Be brief.", source="e:1"), pair("What is 2+2?", source="e:2")]
    evals += [pair("Name a colour.", source=f"e:{i}") for i in range(3, 7)]
    overlap = prompt_overlap(train, evals)
    assert overlap["eval_items"] == 6 and overlap["overlapping"] == 5 and overlap["share"] == pytest.approx(0.8333)
    assert overlap["examples"] == [
        {"prompt": "why is the sky blue?", "eval_source": "e:1", "train_source": "t:1"},
        {"prompt": "Name a colour.", "eval_source": "e:3", "train_source": "t:2"},
        {"prompt": "Name a colour.", "eval_source": "e:4", "train_source": "t:2"}]
    # A different earlier turn makes a different prompt.
    two_turn = PreferencePair([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
                               {"role": "user", "content": "Name a colour."}], [], [])
    assert prompt_overlap(train, [two_turn])["overlapping"] == 0
    assert prompt_overlap(train, [])["share"] is None


def test_build_report_includes_the_length_comparison(tokenizer):
    from dpokit.config import DataConfig
    from dpokit.data.report import build_report, format_report
    from dpokit.data.tokenize import tokenize_pairs
    from dpokit.data.types import LoadResult

    pairs = [PreferencePair([{"role": "user", "content": "Say hi."}],
                            [{"role": "assistant", "content": "Hi there, nice to meet you today!"}],
                            [{"role": "assistant", "content": "No."}], source=f"f:{i}") for i in range(3)]
    tokenized, stats = tokenize_pairs(pairs, tokenizer, DataConfig())
    report = build_report(LoadResult(pairs=pairs, format="test", records=3), tokenized, stats, tokenizer, DataConfig())
    comparison = report["length_comparison"]
    assert comparison["pairs"] == 3 and comparison["chosen_longer"] == 3 and comparison["mean_difference"] > 5
    assert "chosen vs rejected: chosen longer in 3 of 3 pairs (100%)" in format_report(report)


# ----------------------------------------------------------------------------- real runs (tiny model)


@pytest.fixture
def train_env(tmp_path, monkeypatch, one_torch_thread):
    monkeypatch.setenv("DPOKIT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TQDM_DISABLE", "1")
    from dpokit.recipe import train

    return lambda config: train(config, show_progress=False)


def obvious_pairs(path: Path, n: int = 24) -> Path:
    """Pairs a model tells apart at once: every chosen answer is "Sure.", every rejected one "No."."""
    with open(path, "w", encoding="utf-8") as handle:
        for i in range(n):
            handle.write(json.dumps({"prompt": [{"role": "user", "content": f"{QA[i % len(QA)][0]} ({i})"}],
                                     "chosen": [{"role": "assistant", "content": "Sure."}],
                                     "rejected": [{"role": "assistant", "content": "No."}]}) + "\n")
    return path


def test_real_short_run_with_eval_has_no_findings(tmp_path, tiny_model_dir, train_env):
    run_dir = train_env(tiny_config(tiny_model_dir, write_pairs(tmp_path / "pairs.jsonl"), tmp_path / "run", [
        "training.max_steps=8", "data.eval_fraction=0.25", "training.eval_steps=4"]))
    doctor = diagnose_run(run_dir)
    assert doctor.findings == []
    checked, skipped = doctor.coverage()
    assert {"pairs_too_easy", "likelihood_displacement", "not_learning", "overfitting", "length_bias", "unstable"} <= set(checked)
    assert set(skipped) <= {"train_eval_overlap"}  # the trainer does not write prompt_overlap yet
    assert "`dpokit doctor` found no problems" in (run_dir / "README.md").read_text()


def test_real_run_with_a_tiny_learning_rate_is_not_learning(tmp_path, tiny_model_dir, train_env, capsys):
    run_dir = train_env(tiny_config(tiny_model_dir, write_pairs(tmp_path / "pairs.jsonl"), tmp_path / "run", [
        "training.max_steps=8", "training.learning_rate=1e-9"]))
    capsys.readouterr()
    code, out, _ = run_cli(["doctor", str(run_dir), "--json"], capsys)
    by_code = {f["code"]: f for f in json.loads(out)["findings"]}
    assert code == 0 and "not_learning" in by_code
    # 8 steps, no warmup: step 1 runs with policy == reference, then max(5, 10% of 8) steps from step 1.
    assert by_code["not_learning"]["step"] == 6
    assert "training.learning_rate (now 1e-09" in by_code["not_learning"]["hint"]
    assert "pairs_too_easy" not in by_code  # rewards of ~1e-7 order the pairs, but separate nothing


def test_real_run_on_obvious_pairs_is_too_easy(tmp_path, tiny_model_dir, train_env):
    run_dir = train_env(tiny_config(tiny_model_dir, obvious_pairs(tmp_path / "pairs.jsonl"), tmp_path / "run", [
        "training.max_steps=30", "training.learning_rate=1e-2", "training.per_device_train_batch_size=4",
        "training.lr_scheduler_type=constant"]))
    doctor = diagnose_run(run_dir)
    finding = {f.code: f for f in doctor.findings}["pairs_too_easy"]
    assert finding.step <= 6 and "reward accuracy 1.00" in finding.message
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    window = [r for r in metrics if finding.step - 4 < r["step"] <= finding.step]
    assert len(window) == 4 and all(r["rewards/accuracies"] == 1.0 for r in window)  # the figures are the run's
    card = (run_dir / "README.md").read_text()
    assert "## Diagnostics" in card and f"**pairs_too_easy** (step {finding.step})" in card


def test_real_data_with_eval_files_equal_to_train_overlaps(tmp_path):
    from dpokit.data.load import load_from_config
    from dpokit.data.report import prompt_overlap

    data = write_pairs(tmp_path / "pairs.jsonl")
    config = build_config({"data": {"train_files": [str(data)], "eval_files": [str(data)]}})
    train, held_out = load_from_config(config.data, seed=0)
    report = {"prompt_overlap": prompt_overlap(train.pairs, held_out.pairs)}
    assert report["prompt_overlap"]["overlapping"] == 12 and len(report["prompt_overlap"]["examples"]) == 3
    finding = diagnose(config, [], report, 10).findings[0]
    assert finding.code == "train_eval_overlap" and finding.message.startswith("12 of 12 eval pairs (100%)")
    assert "pairs.jsonl:1" in finding.message


def test_real_training_prints_each_finding_once_as_it_appears(tmp_path, tiny_model_dir, train_env, capsys):
    data = obvious_pairs(tmp_path / "pairs.jsonl")
    run_dir = train_env(tiny_config(tiny_model_dir, data, tmp_path / "run", [
        "training.max_steps=30", "training.learning_rate=1e-2", "training.per_device_train_batch_size=4",
        "training.lr_scheduler_type=constant", f"data.eval_files=[{data}]", "training.eval_steps=10"]))
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if line.startswith("dpokit: warning: ")]
    offline = diagnose_run(run_dir).findings
    assert {f.code for f in offline} >= {"pairs_too_easy", "train_eval_overlap"}
    assert warnings == [f"dpokit: warning: {f.code}: {f.message}" for f in offline]  # once each, as the card has them
    assert err.index("warning: train_eval_overlap") < err.index("warning: pairs_too_easy")  # data first
    assert json.loads((run_dir / "data_report.json").read_text())["prompt_overlap"]["overlapping"] == 24
