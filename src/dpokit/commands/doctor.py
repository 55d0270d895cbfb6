"""`dpokit doctor RUN_DIR [--json]`: what is going wrong in a training run, and what to change."""

from __future__ import annotations

import json


def add_parser(sub, name: str, help_text: str) -> None:
    p = sub.add_parser(
        name, help=help_text,
        description=help_text + ": reads the run's metrics.jsonl, data_report.json and config.yaml and names "
        "each problem found (pairs_too_easy, likelihood_displacement, not_learning, overfitting, length_bias, "
        "train_eval_overlap, unstable) with the step, the figures and a hint. A finding is not an error: the "
        "exit status is 0 either way (2 when the run dir cannot be read).",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a training run's output dir (holds config.yaml, metrics.jsonl)")
    p.add_argument("--json", action="store_true", help='print {"findings": [{"code", "step", "message", "hint"}, ...]}')
    p.set_defaults(func=run)


def run(args) -> int:
    from dpokit.doctor import diagnose_run

    doctor = diagnose_run(args.run_dir)
    checked, skipped = doctor.coverage()
    if args.json:
        print(json.dumps({"findings": [f.to_json() for f in doctor.findings], "checked": checked,
                          "skipped": skipped}, indent=2, ensure_ascii=False))
        return 0
    facts, steps = doctor.facts, len(doctor.history.train)
    last = int(doctor.history.train[-1]["step"]) if steps else 0
    print(f"{args.run_dir}: {facts.stage} run, {steps} logged train steps (last step {last} of {facts.total_steps})")
    if doctor.findings:
        for finding in doctor.findings:
            where = f" (step {finding.step})" if finding.step is not None else " (data)"
            print(f"\n{finding.code}{where}: {finding.message}\n  hint: {finding.hint}")
    else:
        print(f"no problems found; checked: {', '.join(checked) or 'nothing'}")
    if skipped:
        print("\nnot checked: " + "; ".join(f"{code} ({why})" for code, why in skipped.items()))
    return 0
