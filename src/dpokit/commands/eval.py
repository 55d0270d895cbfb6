"""`dpokit eval`: preference accuracy and reward margins of a model or run on held-out pairs."""

from __future__ import annotations

import argparse
from pathlib import Path

from dpokit.commands.data import FLAGS as DATA_FLAGS
from dpokit.config import parse_column_map
from dpokit.errors import DpokitError, with_flags
from dpokit.rundir import EVAL_JSON

EVAL_FLAGS = {key: flag for key, flag in DATA_FLAGS.items()
              if flag in ("--skip-bad-records", "--columns", "--format", "--max-length", "--max-prompt-length",
                          "--registry")}
"""Config keys in library errors -> this command's flags (see errors.with_flags)."""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got '{text}'") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got '{text}'") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def add_parser(sub, name: str, help_text: str) -> None:
    p = sub.add_parser(
        name, help=help_text, description=help_text,
        epilog=(
            "Reward accuracy uses DPO's implicit reward beta*log(pi/pi_ref): the reference is the run's "
            "(a LoRA run's base with the adapter off, a full fine-tune's base, or its dpo.reference model), "
            "--ref overrides, and a plain model has none unless --ref is given. Log-prob accuracy "
            "(chosen answer more likely than rejected, summed and per token) needs no reference. "
            "Ties count as not correct. The 95%% interval of the mean margin is a Student t interval over pairs. "
            "For a run dir the result is also written to RUN_DIR/eval.json."
        ),
    )
    p.add_argument("model", metavar="MODEL_OR_RUN", help="a run dir (or its final/ or a checkpoint), a model dir, a .gguf file or a model name")
    p.add_argument("--data", nargs="+", metavar="FILE", help="held-out preference files/dirs, demo:heldout, or dataset names with --registry (default: the run's data.eval_files)")
    p.add_argument("--ref", metavar="MODEL", help="reference model or run for the implicit reward; 'none' for no reference, 'adapter' for the LoRA adapter switched off")
    p.add_argument("--format", default="auto", help="data format (default: detected per file)")
    p.add_argument("--columns", type=parse_column_map, metavar="ROLE=COL,...", help="column map, e.g. prompt=question,chosen=good,rejected=bad")
    p.add_argument("--registry", metavar="DATASET_INFO", help="a LLaMA-Factory dataset_info.json; --data then names datasets in it")
    p.add_argument("--max-length", type=_positive_int, metavar="N", help="max prompt+answer tokens (default: the run's, else 1024)")
    p.add_argument("--max-prompt-length", type=_positive_int, metavar="N", help="max prompt tokens (default: the run's, else 512)")
    p.add_argument("--batch-size", type=_positive_int, default=8, metavar="B", help="pairs per forward pass (default 8)")
    p.add_argument("--max-pairs", type=_positive_int, metavar="N", help="evaluate only the first N pairs")
    p.add_argument("--beta", type=_positive_float, help="DPO beta for the implicit reward (default: the run's, else 0.1)")
    p.add_argument("--by", action="append", metavar="FIELD", help="break results down by this record field (repeatable; default: detected category fields)")
    p.add_argument("--skip-bad-records", action="store_true", help="skip unreadable records instead of failing (they are counted)")
    p.add_argument("--dtype", choices=["auto", "float32", "bfloat16", "float16"], help="load weights in this dtype (default: the run's)")
    p.add_argument("--output", metavar="FILE", help="also write the JSON result here (default for a run dir: RUN_DIR/eval.json)")
    p.add_argument("--no-save", action="store_true", help="do not write RUN_DIR/eval.json")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    p.set_defaults(func=run)


def _default_output(model_ref: str) -> Path | None:
    """RUN_DIR/eval.json when ``model_ref`` is a run dir itself (not a checkpoint or a plain model)."""
    from dpokit.runs import open_model_or_run

    info = open_model_or_run(model_ref)
    if info.kind != "run" or info.path is None:
        return None
    # Keep the user's own spelling of the run dir, so "written:" names the path they typed.
    given = Path(model_ref)
    run_dir = given if given.exists() and given.resolve() == info.path.resolve() else info.path
    return run_dir / EVAL_JSON


def run(args) -> int:
    from dpokit.eval_report import format_report, to_json
    from dpokit.evaluate import evaluate_ref
    from dpokit.outputs import write_file

    output = Path(args.output) if args.output else (None if args.no_save else _default_output(args.model))
    if output is not None and output.is_dir():
        raise DpokitError(f"--output {output}: is a directory", "name a file, e.g. eval.json")
    try:
        result = evaluate_ref(
            args.model, args.data, reference=args.ref, format=args.format, columns=args.columns,
            registry=args.registry, max_length=args.max_length, max_prompt_length=args.max_prompt_length,
            batch_size=args.batch_size, max_pairs=args.max_pairs, beta=args.beta, by=args.by,
            skip_bad_records=args.skip_bad_records, dtype=args.dtype, progress=not args.json,
        )
    except DpokitError as err:
        raise with_flags(err, EVAL_FLAGS) from None
    text = to_json(result)
    if output is not None:
        write_file(output, text + "\n")
    if args.json:
        print(text)
    else:
        print(format_report(result))
        if output is not None:
            print(f"\nwritten: {output}")
    return 0
