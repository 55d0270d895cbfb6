"""The doctor's rules: each check's exact rule, thresholds (module constants) and why, in its docstring."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional

import numpy as np

from dpokit.doctor.facts import (
    SMOOTH_LINES,
    Finding,
    History,
    RunFacts,
    at_step,
    finite,
    fmt_number,
    preference_loss,
    spearman,
    tail_mean,
    train_mean_between,
)
from dpokit.metrics_log import EVAL_PREFIX

"""Logged lines averaged for a value "now" (per-batch metrics are noisy)."""

# pairs_too_easy (check_pairs_too_easy)
TOO_EASY_FRACTION = 0.2  # share of the run's steps within which separation is "at once"
TOO_EASY_LOSS = 0.05  # preference loss (sigmoid: margin above ~3 in reward units)
TOO_EASY_SATURATED_LOSS = 0.01  # preference loss of a saturated run, at any step (margin above ~4.6)
TOO_EASY_MIN_PAIRS = 16  # pairs the judged window must average
TOO_EASY_MIN_LINES = 2  # logged lines the judged window must hold
TOO_EASY_MIN_MARGIN = 0.05  # mean reward margin (beta x nats) below which accuracy 1.0 separates nothing

# likelihood_displacement (check_likelihood_displacement)
DISPLACEMENT_MIN_POINTS = 5  # logged lines after warmup before a trend is judged
DISPLACEMENT_MIN_RHO = 0.6  # |Spearman rank correlation| with the step of a "steady" trend
DISPLACEMENT_MIN_DROP = 2.0  # nats (summed over an answer) the chosen log-prob must be below the reference
DISPLACEMENT_MIN_DROP_PER_TOKEN = 0.05  # ... or this many nats per token of the mean chosen answer, if more
TREND_MAX_POINTS = 500  # trends use at most the last this many logged lines

# not_learning (check_not_learning)
NOT_LEARNING_REWARD_EPS = 1e-3  # |reward| (beta x nats) under which the policy counts as its reference
NOT_LEARNING_MIN_LINES = 3  # logged lines after warmup
NOT_LEARNING_MIN_STEPS = 5  # steps after warmup
NOT_LEARNING_MIN_FRACTION = 0.1  # ... and this share of the run's steps, if more

# overfitting (check_overfitting)
OVERFIT_ACCURACY_DROP = 0.05  # absolute fall of eval reward accuracy from its best
OVERFIT_MARGIN_DROP = 0.2  # relative fall of eval margin from its best
OVERFIT_LOSS_RISE = 0.1  # relative rise of eval loss from its lowest

# length_bias (check_length_bias)
LENGTH_BIAS_SHARE = 0.7  # share of pairs whose one side is longer
LENGTH_BIAS_RATIO = 1.1  # mean length of that side over the other's

# unstable (check_unstable)
GRAD_SPIKE_FACTOR = 10.0  # a spike's gradient norm over the usual
GRAD_MIN_HISTORY = 5  # logged lines before spikes are judged
GRAD_WINDOW = 10  # lines whose median is the recent usual
GRAD_USUAL_QUANTILE = 0.9  # quantile of ...
GRAD_USUAL_WINDOW = 200  # ... these many lines that is the run's usual
LOSS_JUMP_WINDOW = 50  # lines back that a jump is measured from
LOSS_JUMP_FACTOR = 2.0  # smoothed loss over its recent low
LOSS_JUMP_MIN_RISE = 0.25  # and above it by at least this much
NONFINITE_ALLOWED_FP16 = 2
"""Non-finite gradient norms fp16 may log without a finding (its loss scaler skips such steps while it calibrates)."""



# ----------------------------------------------------------------------------- metrics checks


def check_pairs_too_easy(facts: RunFacts, history: History) -> Optional[Finding]:
    """The pairs are told apart almost at once, or with margin to spare: nothing is left to
    learn from them, and more steps only over-optimise (margins grow by pushing the answers'
    likelihoods around). Easy pairs usually differ in a surface cue (form, length, a phrase).

    Rule, on the mean over the last ``k`` logged train lines: (a) at a step within the first
    :data:`TOO_EASY_FRACTION` (20%) of the run, the reward accuracy is 1.0, or (for
    ``sigmoid``/``robust`` losses without label smoothing, whose preference loss falls to 0)
    the preference loss (the logged loss less the NLL term) is below :data:`TOO_EASY_LOSS`
    (0.05); or (b) at any step, for those losses, the accuracy is 1.0 and the preference
    loss below :data:`TOO_EASY_SATURATED_LOSS` (0.01): the loss has saturated, which a short
    run (whose first 20% is a handful of steps) reaches without (a). ``k`` is the number of
    lines that averages at least :data:`TOO_EASY_MIN_PAIRS` (16) pairs, and at least
    :data:`TOO_EASY_MIN_LINES` (2): one batch of 4 all right by chance is not evidence. The
    mean reward margin over those lines must be at least :data:`TOO_EASY_MIN_MARGIN` too: a
    policy that has barely moved from its reference (see ``not_learning``) orders every pair
    the same way without having separated them.
    """
    if not history.train:
        return None
    step = int(history.train[-1]["step"])
    k = max(TOO_EASY_MIN_LINES, math.ceil(TOO_EASY_MIN_PAIRS / max(1, facts.pairs_per_line)))
    accuracy = history.column("rewards/accuracies")[-k:]
    margin = history.column("rewards/margins")[-k:]
    loss = preference_loss(history, facts)[-k:]
    if len(accuracy) < k or not np.isfinite(accuracy).all() or not np.isfinite(margin).all():
        return None
    mean_accuracy, mean_loss, mean_margin = float(accuracy.mean()), float(loss.mean()), float(margin.mean())
    if mean_margin < TOO_EASY_MIN_MARGIN:
        return None
    all_right = mean_accuracy >= 1.0 - 1e-9
    loss_applies = facts.loss_type in ("sigmoid", "robust") and facts.label_smoothing == 0
    early = step <= TOO_EASY_FRACTION * facts.total_steps and (all_right or (loss_applies and mean_loss < TOO_EASY_LOSS))
    saturated = all_right and loss_applies and mean_loss < TOO_EASY_SATURATED_LOSS
    if not (early or saturated):
        return None
    first = int(history.train[-k]["step"])
    loss_name = "preference loss" if facts.nll_weight else "loss"
    if early:
        why = (f"the pairs are told apart within the first {TOO_EASY_FRACTION:.0%} of training, so the rest of the run "
               "only pushes the margins up (over-optimisation)")
    else:
        why = ("the loss has saturated: every pair is separated with margin to spare, so further steps have nothing "
               "to learn from these pairs and only push the margins up (over-optimisation)")
    return Finding(
        "pairs_too_easy", step,
        f"{at_step(step, facts)} ({step / facts.total_steps:.0%} of the run): reward accuracy {mean_accuracy:.2f}, "
        f"{loss_name} {mean_loss:.3f}, margin {mean_margin:.2f} (mean of the {k} logged steps {first}-{step}): {why}",
        "use pairs that are harder to tell apart (rejected answers that differ from the chosen in substance, not in "
        "form, length or a tell-tale phrase: see `dpokit data inspect`); or train more gently: "
        f"training.learning_rate={fmt_number(facts.learning_rate / 5)} (now {facts.learning_rate:g}) and "
        + (f"dpo.rpo_alpha={fmt_number(2 * facts.rpo_alpha)}" if facts.rpo_alpha else "dpo.rpo_alpha=0.5")
        + " to keep the chosen answers likely",
    )


def check_likelihood_displacement(facts: RunFacts, history: History) -> Optional[Finding]:
    """The chosen answers become less likely while the margin grows: the margin is won by pushing
    both answers down, and the probability goes to other text, often worse (likelihood
    displacement: Razin et al. 2024, "Unintentional Unalignment: Likelihood Displacement in
    Direct Preference Optimization", arXiv 2410.08847).

    The fall of the chosen log-prob is read from ``rewards/chosen / beta``, the chosen answers'
    summed log-prob minus the reference's: batch-to-batch differences in answer length cancel,
    which raw ``logps/chosen`` does not do. Reference-free losses (simpo, orpo) have nothing
    to measure against and are skipped.

    Rule: over the logged train steps after warmup (the last :data:`TREND_MAX_POINTS`, at least
    :data:`DISPLACEMENT_MIN_POINTS`), the chosen log-prob change falls steadily (Spearman rank
    correlation with the step <= -:data:`DISPLACEMENT_MIN_RHO`), the margin grows steadily
    (rank correlation >= :data:`DISPLACEMENT_MIN_RHO`, and its mean over the last
    :data:`SMOOTH_LINES` lines above that over the first), and the chosen log-prob is now
    (mean of the last :data:`SMOOTH_LINES` lines) at least :data:`DISPLACEMENT_MIN_DROP` nats
    below the reference, or :data:`DISPLACEMENT_MIN_DROP_PER_TOKEN` per token of the mean
    chosen answer when the data report gives its length, whichever is more.
    """
    steps = history.steps()
    chosen, margins = history.column("rewards/chosen") / facts.beta, history.column("rewards/margins")
    keep = np.nonzero((steps > facts.warmup_steps) & np.isfinite(chosen) & np.isfinite(margins))[0]
    keep = keep[-TREND_MAX_POINTS:]
    if len(keep) < DISPLACEMENT_MIN_POINTS:
        return None
    steps, chosen, margins = steps[keep], chosen[keep], margins[keep]
    chosen_now, margin_now, margin_start = tail_mean(chosen), tail_mean(margins), float(margins[:SMOOTH_LINES].mean())
    min_drop = max(DISPLACEMENT_MIN_DROP, DISPLACEMENT_MIN_DROP_PER_TOKEN * (facts.mean_chosen_tokens or 0.0))
    if chosen_now > -min_drop or margin_now <= margin_start:
        return None
    rho_chosen, rho_margin = spearman(steps, chosen), spearman(steps, margins)
    if not (rho_chosen <= -DISPLACEMENT_MIN_RHO and rho_margin >= DISPLACEMENT_MIN_RHO):
        return None
    step = int(steps[-1])
    if facts.rpo_alpha:
        nll = f"dpo.rpo_alpha={fmt_number(2 * facts.rpo_alpha)} (now {facts.rpo_alpha:g}: a stronger NLL term on the chosen answers)"
    else:
        nll = "dpo.rpo_alpha=0.5 (an NLL term that keeps the chosen answers likely)"
    return Finding(
        "likelihood_displacement", step,
        f"{at_step(step, facts)}: the chosen answers' log-probability has fallen steadily since warmup, to "
        f"{-chosen_now:.1f} nats below the reference (summed over an answer; rank correlation with the step "
        f"{rho_chosen:.2f} over {len(steps)} logged steps), while the reward margin grew from {margin_start:.2f} to "
        f"{margin_now:.2f}: the margin grows because the rejected answers fall faster, and the probability moves to "
        "other text (likelihood displacement, Razin et al. 2024, arXiv 2410.08847)",
        f"add {nll}; or lower the learning rate: training.learning_rate={fmt_number(facts.learning_rate / 2)} (now "
        f"{facts.learning_rate:g}); or raise beta to keep the policy nearer its reference: dpo.beta={fmt_number(2 * facts.beta)} "
        f"(now {facts.beta:g})",
    )


def check_not_learning(facts: RunFacts, history: History) -> Optional[Finding]:
    """The policy is still its reference after warmup: nothing is being learned.

    Rewards are ``beta * (policy - reference)`` log-probs, exactly 0 while the policy is the
    reference (the loss is then ln 2 for ``sigmoid``/``robust``). Causes: a learning rate or
    beta so small nothing moves, a LoRA adapter that trains nothing, a reference that is the
    policy itself. Reference-free losses (simpo, orpo) are skipped.

    Rule: every logged train line after step ``warmup + 1`` (step 1 always runs with the
    policy equal to the reference) has ``|rewards/chosen|`` and ``|rewards/rejected|`` below
    :data:`NOT_LEARNING_REWARD_EPS`, there are at least :data:`NOT_LEARNING_MIN_LINES` such
    lines, and they reach at least :data:`NOT_LEARNING_MIN_STEPS` steps and
    :data:`NOT_LEARNING_MIN_FRACTION` of the run past that point.
    """
    steps = history.steps()
    after = steps > facts.warmup_steps + 1
    if after.sum() < NOT_LEARNING_MIN_LINES:
        return None
    step = int(steps[-1])
    if step - (facts.warmup_steps + 1) < max(NOT_LEARNING_MIN_STEPS, NOT_LEARNING_MIN_FRACTION * facts.total_steps):
        return None
    rewards = np.stack([history.column("rewards/chosen")[after], history.column("rewards/rejected")[after]])
    if not np.isfinite(rewards).all():
        return None
    biggest = float(np.abs(rewards).max())
    if biggest >= NOT_LEARNING_REWARD_EPS:
        return None
    loss = float(preference_loss(history, facts)[-1])
    loss_text = f"loss {loss:.4f}" + (" (ln 2 = 0.6931)" if facts.loss_type in ("sigmoid", "robust") else "")
    since = f"since warmup ({facts.warmup_steps} steps)" if facts.warmup_steps else "after step 1"
    return Finding(
        "not_learning", step,
        f"{at_step(step, facts)}: {loss_text}, and the rewards have stayed within {NOT_LEARNING_REWARD_EPS:g} of 0 "
        f"(largest {biggest:.2g}) on every logged step {since}: the policy is still its reference",
        f"raise training.learning_rate (now {facts.learning_rate:g}; LoRA DPO usually takes 5e-6 to 5e-4, full "
        f"fine-tuning 5e-7 to 5e-6) or dpo.beta (now {facts.beta:g}); if they are sensible, check that "
        "lora.target_modules matches the model's layers and that dpo.reference is not the policy itself",
    )


# (metric, higher is better, threshold, relative?) compared between eval and train.
_OVERFIT_METRICS = (
    ("rewards/accuracies", "reward accuracy", True, OVERFIT_ACCURACY_DROP, False),
    ("rewards/margins", "reward margin", True, OVERFIT_MARGIN_DROP, True),
    ("loss", "loss", False, OVERFIT_LOSS_RISE, True),
)


def check_overfitting(facts: RunFacts, history: History) -> Optional[Finding]:
    """Eval gets worse while train gets better: the model learns the train pairs, not the preference.

    Rule: comparing the latest eval line with the best earlier one (at least two eval lines),
    eval reward accuracy fell by at least :data:`OVERFIT_ACCURACY_DROP` (absolute), or eval
    margin fell by at least :data:`OVERFIT_MARGIN_DROP` of the best (best > 0), or eval loss
    rose by at least :data:`OVERFIT_LOSS_RISE` of the lowest, while the same train metric
    (mean of the last :data:`SMOOTH_LINES` train lines at or before each eval step) improved
    over the same steps. Train's value at an eval is the mean of the train lines logged since
    the eval before it (the start, for the first): per-batch values are noisy, and that window
    is what the model trained on between the two evals. The eval set is fixed, so its changes
    are the model's, not sampling noise. SFT runs are judged on the loss alone.
    """
    if len(history.eval) < 2 or history.last_split != "eval":  # nothing it compares changed since
        return None
    eval_steps = history.steps("eval")
    step = int(eval_steps[-1])
    for key, name, higher, threshold, relative in _OVERFIT_METRICS:
        if not facts.dpo and key != "loss":
            continue
        values = history.column(EVAL_PREFIX + key, "eval")
        earlier = values[:-1]
        if not np.isfinite(values[-1]) or not np.isfinite(earlier).any():
            continue
        best_index = int(np.nanargmax(earlier) if higher else np.nanargmin(earlier))
        best, now = float(earlier[best_index]), float(values[-1])
        worse = best - now if higher else now - best
        if relative:
            if best <= 0:
                continue
            worse /= best
        if worse < threshold:
            continue
        best_step = int(eval_steps[best_index])
        before_best = float(eval_steps[best_index - 1]) if best_index else -math.inf
        train_then = train_mean_between(history, key, before_best, best_step)
        train_now = train_mean_between(history, key, float(eval_steps[-2]), step)
        if not (math.isfinite(train_then) and math.isfinite(train_now)):
            continue
        if not (train_now > train_then if higher else train_now < train_then):
            continue
        verb, train_verb = ("fell", "rose") if higher else ("rose", "fell")
        return Finding(
            "overfitting", step,
            f"{at_step(step, facts)}: eval {name} {verb} to {now:.3g} from {best:.3g} at step {best_step}, while train's "
            f"{train_verb} to {train_now:.3g} from {train_then:.3g}: the model is learning the train pairs, not the "
            "preference",
            f"keep the model of step {best_step} (training.max_steps={best_step}, or training.save_steps to keep "
            f"checkpoints), lower training.learning_rate (now {facts.learning_rate:g}), or train on more and more "
            "varied pairs",
        )
    return None


def check_unstable(facts: RunFacts, history: History) -> Optional[Finding]:
    """The optimisation is unstable: what comes before a NaN loss (which stops training).

    Rule, at the latest train line: (a) a logged loss or gradient norm is NaN or infinite
    (with fp16 mixed precision, whose loss scaler skips such steps while it calibrates, only
    past :data:`NONFINITE_ALLOWED_FP16` of them); or (b) the gradient norm is at least
    :data:`GRAD_SPIKE_FACTOR` (10) times both the median of the :data:`GRAD_WINDOW` lines
    before it and the :data:`GRAD_USUAL_QUANTILE` quantile of the :data:`GRAD_USUAL_WINDOW`
    lines before it (at least :data:`GRAD_MIN_HISTORY`): a spike above anything usual in the
    run, not its slow growth, nor gradients coming back after a saturated stretch shrank
    them; or (c) the loss (mean of the last :data:`SMOOTH_LINES` lines) is at least
    :data:`LOSS_JUMP_FACTOR` times the lowest such mean of the :data:`LOSS_JUMP_WINDOW` lines
    before, and at least :data:`LOSS_JUMP_MIN_RISE` above it: a jump, not a slow drift.
    """
    if not history.train:
        return None
    step = int(history.train[-1]["step"])
    # "auto" only where the run's resolved precision is unknown (a run.json from before it was recorded)
    allowed = NONFINITE_ALLOWED_FP16 if facts.mixed_precision in ("fp16", "auto") else 0
    for key, name in (("loss", "loss"), ("grad_norm", "gradient norm")):
        bad = history.nonfinite.get(key, [])
        limit = 0 if key == "loss" else allowed
        if len(bad) > limit and bad[-1] == step:
            return _unstable(facts, step, f"{at_step(step, facts)}: the {name} is {history.train[-1][key]}"
                             + (f" ({len(bad)} logged steps so far)" if len(bad) > 1 else ""))
    grads = history.column("grad_norm")
    before = grads[-GRAD_USUAL_WINDOW - 1:-1]
    before, now = before[np.isfinite(before)], float(grads[-1])
    if len(before) >= GRAD_MIN_HISTORY and math.isfinite(now):
        recent, usual = float(np.median(before[-GRAD_WINDOW:])), float(np.quantile(before, GRAD_USUAL_QUANTILE))
        baseline = max(recent, usual)
        if baseline > 0 and now >= GRAD_SPIKE_FACTOR * baseline:
            return _unstable(facts, step, f"{at_step(step, facts)}: gradient norm {now:.3g}, {now / baseline:.0f}x the "
                             f"usual {baseline:.3g} of the steps before")
    loss = history.column("loss")[-LOSS_JUMP_WINDOW - SMOOTH_LINES:]
    loss = loss[np.isfinite(loss)]
    if len(loss) >= SMOOTH_LINES + 2:
        smoothed = np.convolve(loss, np.ones(SMOOTH_LINES) / SMOOTH_LINES, mode="valid")
        lowest, now_loss = float(smoothed[:-1].min()), float(smoothed[-1])
        if now_loss - lowest >= LOSS_JUMP_MIN_RISE and now_loss >= LOSS_JUMP_FACTOR * lowest:
            return _unstable(facts, step, f"{at_step(step, facts)}: the loss jumped to {now_loss:.3f} (mean of the last "
                             f"{SMOOTH_LINES} logged steps) from a low of {lowest:.3f}")
    return None


def _unstable(facts: RunFacts, step: int, seen: str) -> Finding:
    advice = [f"lower the learning rate: training.learning_rate={fmt_number(facts.learning_rate / 3)} (now {facts.learning_rate:g})"]
    if facts.max_grad_norm <= 0:
        advice.append("turn gradient clipping on: training.max_grad_norm=1.0")
    if facts.warmup_steps == 0:
        advice.append("warm up: training.warmup_ratio=0.1")
    if facts.mixed_precision == "fp16":
        advice.append("prefer training.mixed_precision=bf16 where the GPU has it")
    return Finding("unstable", step, seen + ": the optimisation is unstable and may end in a NaN loss",
                   "; ".join(advice))


# ----------------------------------------------------------------------------- data checks


def check_length_bias(facts: RunFacts, report: Mapping[str, Any]) -> Optional[Finding]:
    """One side's answers are longer in most pairs: the model can lower the loss by learning length
    instead of quality (DPO's summed log-probs favour it).

    Rule (DPO only; the train report's ``length_comparison``): the chosen answer is longer in
    tokens in at least :data:`LENGTH_BIAS_SHARE` (70%) of the pairs and the chosen answers
    are on average at least :data:`LENGTH_BIAS_RATIO` (1.1) times as long as the rejected
    ones; or the same with the sides swapped (the model may learn to be short).
    """
    comparison = report.get("length_comparison") or {}
    pairs = comparison.get("pairs")
    chosen, rejected = finite(comparison.get("mean_chosen_tokens")), finite(comparison.get("mean_rejected_tokens"))
    if not pairs or chosen is None or rejected is None:
        return None
    for side, other, share_key, count_key, mean, other_mean, learns in (
            ("chosen", "rejected", "chosen_longer_share", "chosen_longer", chosen, rejected, "longer"),
            ("rejected", "chosen", "rejected_longer_share", "rejected_longer", rejected, chosen, "shorter")):
        share = finite(comparison.get(share_key))
        if share is None or share < LENGTH_BIAS_SHARE or mean < LENGTH_BIAS_RATIO * other_mean:
            continue
        return Finding(
            "length_bias", None,
            f"the {side} answer is longer than the {other} in {comparison.get(count_key)} of {pairs} train pairs "
            f"({share:.0%}; mean {chosen:.1f} chosen vs {rejected:.1f} rejected tokens): the model can lower the loss "
            f"by making answers {learns} rather than better",
            "balance the data (enough pairs where the other answer is the longer one), compare answer lengths before "
            "and after training (`dpokit compare`), or use a loss on per-token log-probs (dpo.loss_type=ipo)",
        )
    return None


def check_train_eval_overlap(facts: RunFacts, report: Mapping[str, Any]) -> Optional[Finding]:
    """Eval asks prompts that train also asks: eval figures on them measure memory, not generalisation.

    Rule: the report's ``prompt_overlap`` (see :func:`dpokit.data.report.prompt_overlap`)
    counts at least one eval pair whose prompt (system message left out, whitespace and case
    normalised) is also a train pair's prompt.
    """
    overlap = report.get("prompt_overlap") or {}
    count, total = overlap.get("overlapping"), overlap.get("eval_items")
    if not isinstance(count, int) or count < 1 or not total:
        return None
    examples = overlap.get("examples") or []
    example = ""
    if examples and isinstance(examples[0], dict):
        first = examples[0]
        example = (f", e.g. {first.get('prompt', '')!r} (eval {first.get('eval_source', '?')}, "
                   f"train {first.get('train_source', '?')})")
    return Finding(
        "train_eval_overlap", None,
        f"{count} of {total} eval {'pairs' if facts.dpo else 'examples'} ({count / total:.0%}) ask a prompt the "
        f"train data also asks{example}: "
        "eval figures on them measure memory, not generalisation",
        "remove those prompts from one side, or hold out whole prompts: data.eval_fraction (instead of "
        "data.eval_files) or `dpokit data convert --split` keep each prompt on one side",
    )


@dataclass(frozen=True)
class Check:
    code: str
    run: Callable[..., Optional[Finding]]
    on: str
    """``metrics`` (run after each record) or ``data`` (run once, on the data report)."""
    applies: Callable[[RunFacts], Optional[str]]
    """Why the check does not apply to this run (None: it does)."""


def _dpo_only(facts: RunFacts) -> Optional[str]:
    return None if facts.dpo else "SFT run: no preference rewards"


def _reference_only(facts: RunFacts) -> Optional[str]:
    if not facts.dpo:
        return "SFT run: no preference rewards"
    return None if facts.reference_based else f"loss_type {facts.loss_type} has no reference to compare with"


def _always(facts: RunFacts) -> Optional[str]:
    return None


CHECKS: tuple[Check, ...] = (
    Check("pairs_too_easy", check_pairs_too_easy, "metrics", _dpo_only),
    Check("likelihood_displacement", check_likelihood_displacement, "metrics", _reference_only),
    Check("not_learning", check_not_learning, "metrics", _reference_only),
    Check("overfitting", check_overfitting, "metrics", _always),
    Check("length_bias", check_length_bias, "data", _dpo_only),
    Check("train_eval_overlap", check_train_eval_overlap, "data", _always),
    Check("unstable", check_unstable, "metrics", _always),
)
CODES = tuple(check.code for check in CHECKS)


