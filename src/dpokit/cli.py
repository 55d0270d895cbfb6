"""The `dpokit` command line: parse, call, print. Each command lives in dpokit.commands.*."""

from __future__ import annotations

import argparse
import importlib
import sys

from dpokit import __version__
from dpokit.errors import DpokitError

# (command, module in dpokit.commands, one-line help). Modules are imported only when
# their command runs, so `dpokit --help` never pays for torch/transformers.
COMMANDS: list[tuple[str, str, str]] = [
    ("quickstart", "quickstart", "train DPO+LoRA on the embedded model and demo data, show before -> after"),
    ("data", "data", "inspect or convert preference data (any supported format)"),
    ("train", "train", "run a training config (stage sft or dpo)"),
    ("merge", "merge", "merge a LoRA run into its base model -> plain Hugging Face dir"),
    ("eval", "eval", "preference accuracy and reward margins on held-out pairs"),
    ("generate", "generate", "batched generation with the chat template"),
    ("compare", "compare", "answers of two models side by side, with a judged win rate"),
    ("iterate", "iterate", "iterative DPO: the model writes candidates, a judge picks, the next round trains"),
    ("chat", "chat", "terminal chat with a model or run"),
    ("serve", "serve", "OpenAI-compatible API and a web page to chat, compare and label preferences"),
    ("plot", "plot", "PNG charts of a run's metrics"),
    ("doctor", "doctor", "what is going wrong in a training run, and what to change"),
    ("config", "config", "show the default config, or list valid keys and aliases"),
]


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    parser = argparse.ArgumentParser(
        prog="dpokit",
        description="Align language models with preference data (Direct Preference Optimization).",
    )
    parser.add_argument("--version", action="version", version=f"dpokit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    argv = sys.argv[1:]
    for name, module, help_text in COMMANDS:
        # Only the chosen command's module is imported; the rest get a placeholder parser.
        if argv and argv[0] == name:
            mod = importlib.import_module(f"dpokit.commands.{module}")
            mod.add_parser(sub, name, help_text)
        else:
            sub.add_parser(name, help=help_text, description=help_text)
    return parser, sub.choices


def parse_args(parser: argparse.ArgumentParser, commands: dict[str, argparse.ArgumentParser], argv: list[str]):
    """Parse, letting flags stand anywhere among a command's positional arguments
    (``dpokit train CONFIG --no-progress key=value``), where argparse allows it."""
    command = commands.get(argv[0]) if argv else None
    if command is not None:
        try:
            args = command.parse_intermixed_args(argv[1:])
        except TypeError:  # a command with sub-commands of its own (`dpokit data inspect ...`)
            return parser.parse_args(argv)
        args.command = argv[0]
        return args
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    if argv is not None:
        sys.argv = [sys.argv[0]] + list(argv)
    parser, commands = build_parser()
    args = parse_args(parser, commands, sys.argv[1:])
    if not sys.stderr.isatty():  # a log, not a terminal: no carriage-return bars from the libraries
        import os

        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # hub downloads, "Loading weights"
        os.environ.setdefault("TQDM_DISABLE", "1")  # plain tqdm bars (transformers' GGUF conversion)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0 if args.command is None else 2
    try:
        return int(args.func(args) or 0)
    except DpokitError as err:
        print(f"dpokit: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("\ndpokit: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except OSError as err:  # the environment (a full disk, no permission) where no module named the path itself
        where = f"{err.filename}: " if err.filename else ""
        print(f"dpokit: error: {where}{err.strerror or err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
