"""`dpokit iterate CONFIG.yaml [key=value ...]`: iterative DPO, rounds of generate -> judge -> pairs -> train."""

from __future__ import annotations

import sys

EPILOG = """examples:
  dpokit iterate examples/iterate-concise.yaml
  dpokit iterate examples/iterate-concise.yaml iterate.rounds=4          # continue the same loop for more rounds
  dpokit iterate my-loop.yaml iterate.judge=rm:path/to/reward-model
  dpokit iterate my-loop.yaml iterate.judge=openai:http://127.0.0.1:8001/v1#judge-model
  dpokit iterate my-loop.yaml iterate.judge=human iterate.candidates=2   # people label in dpokit serve

Rerunning the same command continues where it stopped (finished steps are kept).
Exit status: 0 done, 2 an error, 3 stopped until people label the round's candidates.
"""


def add_parser(sub, name: str, help_text: str) -> None:
    import argparse

    p = sub.add_parser(name, help=help_text, description=help_text, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", help="a YAML config with an iterate: section (and the usual model, lora, dpo, "
                                   "training, output sections)")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. iterate.rounds=3 learning_rate=1e-5")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (log lines only)")
    p.set_defaults(func=run)


def run(args) -> int:
    from dpokit.config import check_relative_paths, load_config
    from dpokit.iterate import WAITING_EXIT_CODE, run_iterate
    from dpokit.iterate_report import format_table

    config = load_config(args.config, list(args.overrides))
    if config.iterate is not None and config.iterate.mix > 0:
        check_relative_paths(config, args.config)  # data.train_files are read only for the offline mix
    if args.no_progress:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    try:
        result = run_iterate(config, show_progress=not args.no_progress and sys.stderr.isatty())
    except KeyboardInterrupt:
        print("\ndpokit: interrupted; finished steps are kept: run the same command again to continue",
              file=sys.stderr)
        return 130
    if result.rows:
        print(format_table(result.rows))
    if result.waiting:
        print(f"dpokit: {result.waiting}", file=sys.stderr)
        return WAITING_EXIT_CODE
    print(f"dpokit: summary in {result.output_dir / 'summary.json'} and summary.png", file=sys.stderr)
    return 0
