"""What is going wrong in a training run: named, with the step, the figures and what to change.

One set of rules serves every caller. :class:`LiveDoctor` takes a run's metrics records one
at a time, as the trainer logs them, and returns each finding the first time its rule holds
(each code once per run). :func:`diagnose` replays a finished (or killed) run's records
through a ``LiveDoctor``, and :func:`diagnose_run` does so from a run dir, so ``dpokit
doctor``, the model card and the trainer's live warnings name the same findings at the same
steps.

Each metrics check is a function ``(facts, history) -> Finding | None`` that judges the run
as it stands after the latest record (a replay shows it every prefix of the run); each data
check is ``(facts, data_report) -> Finding | None``. Their docstrings give the exact rule,
its thresholds (module constants) and why. Rules look at smoothed values, trends over many
logged steps or a spike against the median of the steps before, never at one noisy point.

Inputs: the run's config (:class:`~dpokit.config.Config` or the dict of its
``config.yaml``); metrics records as :mod:`dpokit.metrics_log` writes them (train lines:
``step``, ``loss``, ``rewards/*``, ``logps/*``, ``grad_norm``, ``learning_rate``, maybe
``nll_loss``; eval lines: the same keys prefixed ``eval_``); and the data report
(:mod:`dpokit.data.report`: ``length_comparison`` and ``prompt_overlap``; a check whose
part is missing is skipped). SFT runs have no rewards: only ``unstable``, ``overfitting``
(eval loss) and ``train_eval_overlap`` apply to them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence, Union

import numpy as np

from dpokit.config import Config, build_config, load_config
from dpokit.errors import DpokitError
from dpokit.metrics_log import EVAL_PREFIX, is_eval_row, read_metrics
from dpokit.optim import plan_steps, warmup_steps
from dpokit.rundir import CONFIG_YAML, DATA_REPORT, FINAL_DIR, METRICS_FILE, read_json_object

SMOOTH_LINES = 3
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

REFERENCE_FREE = ("simpo", "orpo")


# ----------------------------------------------------------------------------- the run


@dataclass(frozen=True)
class Finding:
    """One problem: ``code`` (e.g. ``pairs_too_easy``), the step it appeared at (None for
    data findings, known before training), what was seen (with figures) and what to change."""

    code: str
    step: Optional[int]
    message: str
    hint: str

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "step": self.step, "message": self.message, "hint": self.hint}

    def as_warning(self) -> str:
        """The trainer's live line (after its ``dpokit: `` prefix)."""
        return f"warning: {self.code}: {self.message}\n  hint: {self.hint}"


@dataclass(frozen=True)
class RunFacts:
    """The settings the rules need, from the run's config (and data report)."""

    stage: str
    loss_type: str
    beta: float
    label_smoothing: float
    rpo_alpha: Optional[float]
    learning_rate: float
    max_grad_norm: float
    mixed_precision: str
    warmup_steps: int
    total_steps: int
    pairs_per_line: int
    """Pairs averaged into one logged train line on one process (batch x accumulation x logging_steps)."""
    mean_chosen_tokens: Optional[float]

    @property
    def dpo(self) -> bool:
        return self.stage == "dpo"

    @property
    def reference_based(self) -> bool:
        """DPO with a reference: rewards are ``beta * (policy - reference)`` log-probs, 0 at the start."""
        return self.dpo and self.loss_type not in REFERENCE_FREE

    @property
    def nll_weight(self) -> float:
        """Weight of the NLL term inside the logged ``loss`` (see :func:`dpokit.objective.dpo_batch_loss`)."""
        if self.rpo_alpha is not None:
            return self.rpo_alpha
        return 1.0 if self.loss_type == "orpo" else 0.0


def as_config(config: Union[Config, Mapping[str, Any]]) -> Config:
    return config if isinstance(config, Config) else build_config(dict(config), where="config.yaml")


def planned_steps(config: Config, data_report: Optional[Mapping[str, Any]]) -> Optional[int]:
    """Optimizer steps the run was set to take (:func:`dpokit.optim.plan_steps`), with the
    report's ``pairs_used`` as one process's batches; None when that is needed and unknown."""
    if config.training.max_steps > 0:
        return config.training.max_steps
    pairs = (data_report or {}).get("pairs_used")
    if not isinstance(pairs, int) or isinstance(pairs, bool) or pairs <= 0:
        return None
    return plan_steps(config, batches_per_epoch=math.ceil(pairs / config.training.per_device_train_batch_size)).total_steps


def run_facts(config: Union[Config, Mapping[str, Any]], total_steps: int,
              data_report: Optional[Mapping[str, Any]] = None) -> RunFacts:
    config = as_config(config)
    training, dpo = config.training, config.dpo
    lengths = ((data_report or {}).get("length_comparison") or {})
    return RunFacts(
        stage=config.stage, loss_type=dpo.loss_type, beta=dpo.beta, label_smoothing=dpo.label_smoothing,
        rpo_alpha=dpo.rpo_alpha, learning_rate=training.learning_rate, max_grad_norm=training.max_grad_norm,
        mixed_precision=training.mixed_precision, warmup_steps=warmup_steps(config, total_steps),
        total_steps=max(1, int(total_steps)),
        pairs_per_line=(training.per_device_train_batch_size * training.gradient_accumulation_steps
                        * training.logging_steps),
        mean_chosen_tokens=_finite(lengths.get("mean_chosen_tokens")),
    )


# ----------------------------------------------------------------------------- the metrics so far


def _finite(value: Any) -> Optional[float]:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


class History:
    """The metrics records seen so far, per split, as columns aligned with the records.

    ``column(key)`` is a read-only float array with one entry per train (or eval) record,
    NaN where the record lacks the key or its value is not a number; ``nonfinite[key]``
    lists the steps whose logged value was NaN or infinite. Columns live in buffers that
    double when full, so a rule that looks at the whole run stays cheap when it is asked
    after every record.
    """

    def __init__(self) -> None:
        self.train: list[dict[str, Any]] = []
        self.eval: list[dict[str, Any]] = []
        self.last_split = ""
        self.nonfinite: dict[str, list[int]] = {}
        self._buffers: dict[str, dict[str, np.ndarray]] = {"train": {}, "eval": {}}
        self._capacity = {"train": 0, "eval": 0}

    def add(self, record: Mapping[str, Any]) -> None:
        split = "eval" if is_eval_row(record) else "train"
        rows = self.eval if split == "eval" else self.train
        buffers, n = self._buffers[split], len(rows)
        if n == self._capacity[split]:
            capacity = max(64, 2 * n)
            for key, old in buffers.items():
                buffers[key] = np.concatenate([old, np.full(capacity - len(old), math.nan)])
            self._capacity[split] = capacity
        step = int(record["step"])
        for key, value in record.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            if key not in buffers:
                buffers[key] = np.full(self._capacity[split], math.nan)
            buffers[key][n] = value
            if key != "step" and not math.isfinite(value):
                self.nonfinite.setdefault(key, []).append(step)
        rows.append(dict(record))
        self.last_split = split

    def column(self, key: str, split: str = "train") -> np.ndarray:
        n = len(self.eval if split == "eval" else self.train)
        buffer = self._buffers[split].get(key)
        view = buffer[:n] if buffer is not None else np.full(n, math.nan)
        view.flags.writeable = False
        return view

    def steps(self, split: str = "train") -> np.ndarray:
        return self.column("step", split)


def _tail_mean(values: np.ndarray, n: int = SMOOTH_LINES) -> float:
    tail = values[-n:]
    tail = tail[np.isfinite(tail)]
    return float(tail.mean()) if tail.size else math.nan


def _ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 0..n-1, ties given their average rank."""
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.arange(len(values), dtype=np.float64)
    sorted_values = values[order]
    start = 0
    for end in range(1, len(values) + 1):
        if end == len(values) or sorted_values[end] != sorted_values[start]:
            if end - start > 1:
                ranks[order[start:end]] = (start + end - 1) / 2
            start = end
    return ranks


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rank correlation (1: y rises with x in every step, -1: falls in every step)."""
    if len(x) < 2:
        return math.nan
    rx, ry = _ranks(np.asarray(x, dtype=np.float64)), _ranks(np.asarray(y, dtype=np.float64))
    if rx.std() == 0 or ry.std() == 0:
        return 0.0
    return float(np.corrcoef(rx, ry)[0, 1])


def _preference_loss(history: History, facts: RunFacts) -> np.ndarray:
    """The logged train loss less its NLL term (``rpo_alpha``, ORPO): the preference part alone."""
    loss = history.column("loss")
    if facts.dpo and facts.nll_weight:
        nll = history.column("nll_loss")
        loss = loss - facts.nll_weight * np.where(np.isfinite(nll), nll, 0.0)
    return loss


def _train_mean_between(history: History, key: str, after: float, upto: float) -> float:
    """The mean of the train values of ``key`` logged at steps in ``(after, upto]``."""
    steps, values = history.steps(), history.column(key)
    chosen = values[(steps > after) & (steps <= upto)]
    chosen = chosen[np.isfinite(chosen)]
    return float(chosen.mean()) if chosen.size else math.nan


def _of(step: int, facts: RunFacts) -> str:
    return f"step {step} of {facts.total_steps}"


def _g(value: float) -> str:
    return f"{value:.2g}"


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
    loss = _preference_loss(history, facts)[-k:]
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
        f"{_of(step, facts)} ({step / facts.total_steps:.0%} of the run): reward accuracy {mean_accuracy:.2f}, "
        f"{loss_name} {mean_loss:.3f}, margin {mean_margin:.2f} (mean of the {k} logged steps {first}-{step}): {why}",
        "use pairs that are harder to tell apart (rejected answers that differ from the chosen in substance, not in "
        "form, length or a tell-tale phrase: see `dpokit data inspect`); or train more gently: "
        f"training.learning_rate={_g(facts.learning_rate / 5)} (now {facts.learning_rate:g}) and "
        + (f"dpo.rpo_alpha={_g(2 * facts.rpo_alpha)}" if facts.rpo_alpha else "dpo.rpo_alpha=0.5")
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
    chosen_now, margin_now, margin_start = _tail_mean(chosen), _tail_mean(margins), float(margins[:SMOOTH_LINES].mean())
    min_drop = max(DISPLACEMENT_MIN_DROP, DISPLACEMENT_MIN_DROP_PER_TOKEN * (facts.mean_chosen_tokens or 0.0))
    if chosen_now > -min_drop or margin_now <= margin_start:
        return None
    rho_chosen, rho_margin = spearman(steps, chosen), spearman(steps, margins)
    if not (rho_chosen <= -DISPLACEMENT_MIN_RHO and rho_margin >= DISPLACEMENT_MIN_RHO):
        return None
    step = int(steps[-1])
    if facts.rpo_alpha:
        nll = f"dpo.rpo_alpha={_g(2 * facts.rpo_alpha)} (now {facts.rpo_alpha:g}: a stronger NLL term on the chosen answers)"
    else:
        nll = "dpo.rpo_alpha=0.5 (an NLL term that keeps the chosen answers likely)"
    return Finding(
        "likelihood_displacement", step,
        f"{_of(step, facts)}: the chosen answers' log-probability has fallen steadily since warmup, to "
        f"{-chosen_now:.1f} nats below the reference (summed over an answer; rank correlation with the step "
        f"{rho_chosen:.2f} over {len(steps)} logged steps), while the reward margin grew from {margin_start:.2f} to "
        f"{margin_now:.2f}: the margin grows because the rejected answers fall faster, and the probability moves to "
        "other text (likelihood displacement, Razin et al. 2024, arXiv 2410.08847)",
        f"add {nll}; or lower the learning rate: training.learning_rate={_g(facts.learning_rate / 2)} (now "
        f"{facts.learning_rate:g}); or raise beta to keep the policy nearer its reference: dpo.beta={_g(2 * facts.beta)} "
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
    loss = float(_preference_loss(history, facts)[-1])
    loss_text = f"loss {loss:.4f}" + (" (ln 2 = 0.6931)" if facts.loss_type in ("sigmoid", "robust") else "")
    since = f"since warmup ({facts.warmup_steps} steps)" if facts.warmup_steps else "after step 1"
    return Finding(
        "not_learning", step,
        f"{_of(step, facts)}: {loss_text}, and the rewards have stayed within {NOT_LEARNING_REWARD_EPS:g} of 0 "
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
        train_then = _train_mean_between(history, key, before_best, best_step)
        train_now = _train_mean_between(history, key, float(eval_steps[-2]), step)
        if not (math.isfinite(train_then) and math.isfinite(train_now)):
            continue
        if not (train_now > train_then if higher else train_now < train_then):
            continue
        verb, train_verb = ("fell", "rose") if higher else ("rose", "fell")
        return Finding(
            "overfitting", step,
            f"{_of(step, facts)}: eval {name} {verb} to {now:.3g} from {best:.3g} at step {best_step}, while train's "
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
    allowed = NONFINITE_ALLOWED_FP16 if facts.mixed_precision in ("fp16", "auto") else 0
    for key, name in (("loss", "loss"), ("grad_norm", "gradient norm")):
        bad = history.nonfinite.get(key, [])
        limit = 0 if key == "loss" else allowed
        if len(bad) > limit and bad[-1] == step:
            return _unstable(facts, step, f"{_of(step, facts)}: the {name} is {history.train[-1][key]}"
                             + (f" ({len(bad)} logged steps so far)" if len(bad) > 1 else ""))
    grads = history.column("grad_norm")
    before = grads[-GRAD_USUAL_WINDOW - 1:-1]
    before, now = before[np.isfinite(before)], float(grads[-1])
    if len(before) >= GRAD_MIN_HISTORY and math.isfinite(now):
        recent, usual = float(np.median(before[-GRAD_WINDOW:])), float(np.quantile(before, GRAD_USUAL_QUANTILE))
        baseline = max(recent, usual)
        if baseline > 0 and now >= GRAD_SPIKE_FACTOR * baseline:
            return _unstable(facts, step, f"{_of(step, facts)}: gradient norm {now:.3g}, {now / baseline:.0f}x the "
                             f"usual {baseline:.3g} of the steps before")
    loss = history.column("loss")[-LOSS_JUMP_WINDOW - SMOOTH_LINES:]
    loss = loss[np.isfinite(loss)]
    if len(loss) >= SMOOTH_LINES + 2:
        smoothed = np.convolve(loss, np.ones(SMOOTH_LINES) / SMOOTH_LINES, mode="valid")
        lowest, now_loss = float(smoothed[:-1].min()), float(smoothed[-1])
        if now_loss - lowest >= LOSS_JUMP_MIN_RISE and now_loss >= LOSS_JUMP_FACTOR * lowest:
            return _unstable(facts, step, f"{_of(step, facts)}: the loss jumped to {now_loss:.3f} (mean of the last "
                             f"{SMOOTH_LINES} logged steps) from a low of {lowest:.3f}")
    return None


def _unstable(facts: RunFacts, step: int, seen: str) -> Finding:
    advice = [f"lower the learning rate: training.learning_rate={_g(facts.learning_rate / 3)} (now {facts.learning_rate:g})"]
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
    chosen, rejected = _finite(comparison.get("mean_chosen_tokens")), _finite(comparison.get("mean_rejected_tokens"))
    if not pairs or chosen is None or rejected is None:
        return None
    for side, other, share_key, count_key, mean, other_mean, learns in (
            ("chosen", "rejected", "chosen_longer_share", "chosen_longer", chosen, rejected, "longer"),
            ("rejected", "chosen", "rejected_longer_share", "rejected_longer", rejected, chosen, "shorter")):
        share = _finite(comparison.get(share_key))
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
        "remove those prompts from one side, or hold out whole prompts: data.eval_fraction splits pairs, so the "
        "pairs of one prompt can land on both sides",
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


# ----------------------------------------------------------------------------- callers


class LiveDoctor:
    """The checks, fed one metrics record at a time; each finding is returned once, when it first appears.

    Args:
        config: the run's config (a :class:`~dpokit.config.Config` or ``config.yaml``'s dict).
        data_report: the run's data report (``data_report.json``), or None.
        total_steps: the optimizer steps the run will take.
        history: records already logged (a resumed run's ``metrics.jsonl``, in any order);
            their findings count as reported and are not returned again.
    """

    def __init__(self, config: Union[Config, Mapping[str, Any]], data_report: Optional[Mapping[str, Any]],
                 total_steps: int, history: Iterable[Mapping[str, Any]] = ()):
        self.report: Mapping[str, Any] = data_report if isinstance(data_report, Mapping) else {}
        self.facts = run_facts(config, total_steps, self.report)
        self.history = History()
        self.findings: list[Finding] = []
        self._active = [check for check in CHECKS if check.applies(self.facts) is None]
        self._data_done = False
        for record in _in_log_order(history):
            self.observe(record)

    def begin(self) -> list[Finding]:
        """The data findings (known before the first step); later calls return nothing."""
        if self._data_done:
            return []
        self._data_done = True
        return self._run([c for c in self._active if c.on == "data"], self.report)

    def observe(self, record: Mapping[str, Any]) -> list[Finding]:
        """Add one logged record (train or eval line); the findings that appear with it."""
        self.history.add(record)
        return self.begin() + self._run([c for c in self._active if c.on == "metrics"], self.history)

    def _run(self, checks: Sequence[Check], evidence: Any) -> list[Finding]:
        new = []
        reported = {f.code for f in self.findings}
        for check in checks:
            if check.code in reported:
                continue
            finding = check.run(self.facts, evidence)
            if finding is not None:
                new.append(finding)
        self.findings += new
        return new

    def coverage(self) -> tuple[list[str], dict[str, str]]:
        """``(checked, skipped)``: the codes judged on this run, and code -> why not, for the rest."""
        skipped: dict[str, str] = {}
        for check in CHECKS:
            reason = check.applies(self.facts)
            if reason is None and check.code == "overfitting" and len(self.history.eval) < 2:
                reason = "fewer than 2 eval lines in the metrics (set training.eval_steps)"
            if reason is None and check.code == "length_bias" and not (self.report.get("length_comparison") or {}).get("pairs"):
                reason = "the data report has no length comparison"
            if reason is None and check.code == "train_eval_overlap" and "prompt_overlap" not in self.report:
                reason = "the data report has no prompt overlap (no eval data, or an older report)"
            if reason is None and check.on == "metrics" and not self.history.train:
                reason = "no train lines in the metrics"
            if reason is not None:
                skipped[check.code] = reason
        return [c for c in CODES if c not in skipped], skipped


def _in_log_order(records: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Records by step, a step's train line before its eval line (the order the trainer logs them)."""
    return sorted(records, key=lambda r: (int(r["step"]), is_eval_row(r)))


def diagnose(config: Union[Config, Mapping[str, Any]], records: Iterable[Mapping[str, Any]],
             data_report: Optional[Mapping[str, Any]] = None, total_steps: Optional[int] = None) -> LiveDoctor:
    """Replay a run's metrics records through a :class:`LiveDoctor`; its ``findings`` are the run's.

    ``total_steps`` defaults to :func:`planned_steps` (or the last logged step when that is
    unknown), and is at least the last logged step.
    """
    records = _in_log_order(records)
    last = max((int(r["step"]) for r in records), default=0)
    planned = total_steps or planned_steps(as_config(config), data_report) or last
    doctor = LiveDoctor(config, data_report, max(planned, last, 1))
    doctor.begin()
    for record in records:
        doctor.observe(record)
    return doctor


def diagnose_run(run_dir: Union[str, Path]) -> LiveDoctor:
    """The doctor of a run dir: its ``config.yaml``, ``data_report.json`` (optional) and
    ``metrics.jsonl`` (optional: without it only the data is checked).

    A run that has its ``final/`` model finished, so its last logged step is its last step;
    otherwise the planned steps come from the config and the data report. Raises
    :class:`DpokitError` when the dir, its config or one of its files cannot be read.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DpokitError(f"{run_dir}: run directory not found", "pass the output_dir of a `dpokit train` run")
    config_path = run_dir / CONFIG_YAML
    if not config_path.is_file():
        raise DpokitError(f"{run_dir}: not a dpokit run dir (no {CONFIG_YAML})", "pass the output_dir of a `dpokit train` run")
    try:
        config = load_config(config_path)
        report = read_json_object(run_dir / DATA_REPORT) if (run_dir / DATA_REPORT).is_file() else None
        records: list[dict] = []
        if (run_dir / METRICS_FILE).is_file():
            metrics = read_metrics(run_dir)
            records = metrics.train + metrics.eval
    except OSError as err:
        raise DpokitError(f"{run_dir}: cannot read the run ({err.strerror or err})") from None
    total = None
    if (run_dir / FINAL_DIR).is_dir():
        total = max((int(r["step"]) for r in records if not is_eval_row(r)), default=None)
    return diagnose(config, records, report, total)
