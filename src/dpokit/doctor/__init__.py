"""What is going wrong in a training run: named, with the step, the figures and what to change.

The package: :mod:`.facts` (a finding, the run's facts, its metrics so far), :mod:`.checks`
(the rules and their thresholds), and here the callers (live, replayed, from a run dir).

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

from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence, Union

from dpokit.config import Config, load_config
from dpokit.doctor.checks import CHECKS, CODES, Check
from dpokit.doctor.facts import Finding, History, as_config, planned_steps, run_facts, spearman
from dpokit.errors import DpokitError
from dpokit.metrics_log import is_eval_row, read_metrics
from dpokit.rundir import CONFIG_YAML, DATA_REPORT, FINAL_DIR, METRICS_FILE, read_json_object, read_run_json

RESOLVED_PRECISIONS = ("no", "fp16", "bf16")
"""What run.json records as trained in (accelerate's names; ``auto`` resolved at the start)."""

__all__ = ["CODES", "Finding", "LiveDoctor", "diagnose", "diagnose_run", "spearman"]


class LiveDoctor:
    """The checks, fed one metrics record at a time; each finding is returned once, when it first appears.

    Args:
        config: the run's config (a :class:`~dpokit.config.Config` or ``config.yaml``'s dict).
        data_report: the run's data report (``data_report.json``), or None.
        total_steps: the optimizer steps the run will take.
        history: records already logged (a resumed run's ``metrics.jsonl``, in any order);
            their findings count as reported and are not returned again.
        mixed_precision: what the run trains in (``no``/``fp16``/``bf16``); None: the config's setting.
    """

    def __init__(self, config: Union[Config, Mapping[str, Any]], data_report: Optional[Mapping[str, Any]],
                 total_steps: int, history: Iterable[Mapping[str, Any]] = (),
                 mixed_precision: Optional[str] = None):
        self.report: Mapping[str, Any] = data_report if isinstance(data_report, Mapping) else {}
        self.facts = run_facts(config, total_steps, self.report, mixed_precision)
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
             data_report: Optional[Mapping[str, Any]] = None, total_steps: Optional[int] = None,
             mixed_precision: Optional[str] = None) -> LiveDoctor:
    """Replay a run's metrics records through a :class:`LiveDoctor`; its ``findings`` are the run's.

    ``total_steps`` defaults to :func:`planned_steps` (or the last logged step when that is
    unknown), and is at least the last logged step.
    """
    records = _in_log_order(records)
    last = max((int(r["step"]) for r in records), default=0)
    planned = total_steps or planned_steps(as_config(config), data_report) or last
    doctor = LiveDoctor(config, data_report, max(planned, last, 1), mixed_precision=mixed_precision)
    doctor.begin()
    for record in records:
        doctor.observe(record)
    return doctor


def diagnose_run(run_dir: Union[str, Path]) -> LiveDoctor:
    """The doctor of a run dir: its ``config.yaml``, ``data_report.json`` (optional),
    ``metrics.jsonl`` (optional: without it only the data is checked) and ``run.json``'s record of
    the precision trained in (optional: older runs have none; then the config's setting counts).

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
        precision = read_run_json(run_dir).get("mixed_precision")
        records: list[dict] = []
        if (run_dir / METRICS_FILE).is_file():
            metrics = read_metrics(run_dir)
            records = metrics.train + metrics.eval
    except OSError as err:
        raise DpokitError(f"{run_dir}: cannot read the run ({err.strerror or err})") from None
    total = None
    if (run_dir / FINAL_DIR).is_dir():
        total = max((int(r["step"]) for r in records if not is_eval_row(r)), default=None)
    return diagnose(config, records, report, total,
                    mixed_precision=precision if precision in RESOLVED_PRECISIONS else None)
