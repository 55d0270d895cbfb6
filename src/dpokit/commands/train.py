"""`dpokit train CONFIG.yaml [key=value ...]`: run a training config (stage sft or dpo)."""

from __future__ import annotations

import sys
from pathlib import Path

from dpokit.config import check_relative_paths, load_config

EPILOG = """examples:
  dpokit train examples/quickstart.yaml
  dpokit train examples/quickstart.yaml dpo.beta=0.2 training.max_steps=50 output.output_dir=runs/beta0.2
  dpokit train runs/dpo/config.yaml training.resume_from_checkpoint=latest
  accelerate launch -m dpokit.cli train examples/qwen2.5-7b-lora-dpo.yaml   # several GPUs
"""


def add_parser(sub, name: str, help_text: str) -> None:
    import argparse

    p = sub.add_parser(name, help=help_text, description=help_text, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", nargs="?", help="a YAML config (default: built-in defaults: SmolLM2 + the demo set)")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. dpo.beta=0.2 learning_rate=1e-5")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (log lines only)")
    p.set_defaults(func=run)


def run(args) -> int:
    config_path, overrides = args.config, list(args.overrides)
    if config_path and "=" in config_path:  # only overrides were given
        config_path, overrides = None, [config_path] + overrides
    config = load_config(config_path, overrides)
    check_relative_paths(config, config_path)

    from dpokit.metrics_log import read_train_rows
    from dpokit.recipe import train
    from dpokit.rundir import CONFIG_YAML, FINAL_DIR, latest_checkpoint

    if args.no_progress:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    try:
        run_dir = train(config, show_progress=not args.no_progress)
    except KeyboardInterrupt:
        out = Path(config.output.output_dir)
        last = latest_checkpoint(out)
        if last is not None:
            print(f"\ndpokit: interrupted; the last checkpoint is {last}. Resume with:\n"
                  f"  dpokit train {out / CONFIG_YAML} training.resume_from_checkpoint=latest", file=sys.stderr)
        else:
            print("\ndpokit: interrupted before any checkpoint was saved, so there is nothing to resume: train again "
                  "(set training.save_steps to make long runs resumable)", file=sys.stderr)
        return 130

    from accelerate import PartialState

    if not PartialState().is_main_process:  # under `accelerate launch`, one summary is enough
        return 0
    train_lines = read_train_rows(run_dir)
    if len(train_lines) > 1:
        first, last = train_lines[0], train_lines[-1]
        print(f"dpokit: loss {first['loss']:.4f} (step {first['step']}) -> {last['loss']:.4f} (step {last['step']})",
              file=sys.stderr)
    elif train_lines:
        print(f"dpokit: loss {train_lines[0]['loss']:.4f} (step {train_lines[0]['step']})", file=sys.stderr)
    print(f"dpokit: model saved in {run_dir / FINAL_DIR}", file=sys.stderr)
    print(run_dir)
    return 0
