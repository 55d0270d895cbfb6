"""`dpokit plot RUN_DIR`: PNG charts of a run's metrics into RUN_DIR/plots/."""

from __future__ import annotations


def add_parser(sub, name: str, help_text: str) -> None:
    p = sub.add_parser(
        name, help=help_text,
        description=help_text + ": loss, rewards (chosen vs rejected), margins, accuracies and "
        "log-probs over steps, train and eval. Also writes plots/series.json, the plotted numbers.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a training run's output dir (holds metrics.jsonl)")
    p.set_defaults(func=run)


def run(args) -> int:
    from dpokit.plot import plot_run

    for path in plot_run(args.run_dir):
        print(path)
    return 0
