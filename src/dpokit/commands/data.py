"""`dpokit data inspect|convert`: look at training data before training, or normalise it to JSONL.

``inspect`` loads the files (any supported format), tokenises them with the model's chat
template and prints the data report (``--json``: the same as one JSON object).
``convert`` writes the normalised pairs as canonical conversational JSONL (what TRL reads).
``--stage sft`` does both for SFT data (prompt/completion, chat messages, alpaca, ShareGPT,
or preference files' chosen answers); ``convert`` then writes ``{"messages": [...]}`` lines.
Data settings come from ``--config`` (its ``data`` section, and its ``stage``) and are
overridden by flags.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pydantic import ValidationError

from dpokit.config import Config, DataConfig, load_config, parse_column_map
from dpokit.errors import DpokitError, with_flags

PAIR_STRATEGIES = ("best_vs_worst", "best_vs_each", "all_pairs")
STAGES = ("dpo", "sft")

FLAGS = {
    "data.skip_bad_records=true": "--skip-bad-records", "data.skip_bad_records": "--skip-bad-records",
    "data.apply_chat_template: false": "--no-chat-template", "data.columns": "--columns", "data.format": "--format",
    "data.max_length": "--max-length", "data.max_prompt_length": "--max-prompt-length",
    "data.pair_strategy": "--pair-strategy", "data.registry": "--registry", "data.max_samples": "--max-samples",
    "data.system_prompt": "--system-prompt",
}
"""Config keys in library errors -> the flags of these commands that set them (see errors.with_flags)."""


def _add_loading_flags(p) -> None:
    p.add_argument("files", nargs="*", metavar="FILE",
                   help="data files or dirs (with --registry: dataset names); default: the config's train_files")
    p.add_argument("--stage", choices=STAGES,
                   help="dpo: preference pairs; sft: SFT examples (prompt + completion; preference files give their "
                        "chosen answers) (default: the config's stage, else dpo)")
    p.add_argument("--format", help="data format (default: auto-detect)")
    p.add_argument("--columns", metavar="MAP", help="column map, e.g. prompt=question,chosen=chatgpt,rejected=llama2-13b-chat")
    p.add_argument("--registry", metavar="JSON", help="a LLaMA-Factory dataset_info.json; FILEs are dataset names in it")
    p.add_argument("--pair-strategy", choices=PAIR_STRATEGIES, help="how ranked/scored answers become pairs")
    p.add_argument("--skip-bad-records", action="store_true", default=None,
                   help="skip (and list) records that cannot be read instead of stopping")
    p.add_argument("--max-samples", type=int, metavar="N", help="use at most N pairs (SFT: examples)")
    p.add_argument("--config", metavar="YAML", help="take data settings from this config (flags override)")


# `data convert --split`'s defaults; the flags default to None so that giving them without
# --split can be refused.
SPLIT_EVAL_FRACTION = 0.1
SPLIT_SEED = 42

def add_parser(sub, name: str, help_text: str) -> None:
    p = sub.add_parser(name, help=help_text, description=help_text)
    actions = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    inspect = actions.add_parser(
        "inspect", help="report pairs, drops, lengths, truncation and examples as the model sees them",
        description="Load preference data (--stage sft: SFT data), tokenise it with the model's chat template "
                    "and report on it.",
    )
    _add_loading_flags(inspect)
    inspect.add_argument("--model", help="model whose tokenizer and chat template to use (default: the config's, "
                                         "else the embedded smollm2-135m-instruct)")
    inspect.add_argument("--max-length", type=int, metavar="N", help="max tokens of prompt + answer")
    inspect.add_argument("--max-prompt-length", type=int, metavar="N", help="max prompt tokens (cut from the left)")
    inspect.add_argument("--system-prompt", metavar="TEXT", help="system message for records that have none")
    inspect.add_argument("--no-chat-template", action="store_true", help="plain text instead of the chat template")
    inspect.add_argument("--json", action="store_true", help="print the report as one JSON object")

    convert = actions.add_parser(
        "convert", help="write normalised pairs as conversational JSONL (prompt/chosen/rejected messages)",
        description="Normalise preference data of any supported format to canonical conversational JSONL "
                    "(with --stage sft: SFT data to {\"messages\": [...]} lines).",
    )
    _add_loading_flags(convert)
    convert.add_argument("--out", required=True, metavar="OUT.jsonl", help="output file (never one of the inputs)")
    convert.add_argument("--split", choices=("train", "eval"),
                         help="write only one side of a seeded split that holds out whole prompts; run once "
                              "with train and once with eval (same --eval-fraction and --seed) for two "
                              "files that share no prompt")
    convert.add_argument("--eval-fraction", type=float, metavar="F",
                         help=f"share of prompts the eval side holds (with --split; default {SPLIT_EVAL_FRACTION})")
    convert.add_argument("--seed", type=int, help=f"seed of the split (with --split; default {SPLIT_SEED})")
    p.set_defaults(func=run)


def resolve_settings(args) -> Config:
    """The config (``--config`` or defaults) with the command-line flags applied to it."""
    config = load_config(args.config) if args.config else Config()
    updates: dict = {}
    if args.files:
        updates["train_files"] = list(args.files)
    if args.format:
        updates["format"] = args.format
    if args.columns:
        updates["columns"] = parse_column_map(args.columns)
    if args.registry:
        updates["registry"] = args.registry
    if args.pair_strategy:
        updates["pair_strategy"] = args.pair_strategy
    if args.skip_bad_records:
        updates["skip_bad_records"] = True
    if args.max_samples is not None:
        updates["max_samples"] = args.max_samples
    for flag, key in (("max_length", "max_length"), ("max_prompt_length", "max_prompt_length"),
                      ("system_prompt", "system_prompt")):
        if getattr(args, flag, None) is not None:
            updates[key] = getattr(args, flag)
    if getattr(args, "no_chat_template", False):
        updates["apply_chat_template"] = False
    try:
        data = DataConfig.model_validate({**config.data.model_dump(), **updates})
    except ValidationError as err:
        lines = [f"--{'.'.join(map(str, e['loc'])).replace('_', '-')}: {e['msg']} (got {e.get('input')!r})"
                 for e in err.errors()]
        raise DpokitError("\n".join(lines), "fix the flag value(s) above") from None
    config = config.model_copy(update={"data": data})
    for note in data.adjustments:
        print(f"dpokit: note: {note}", file=sys.stderr)
    if getattr(args, "model", None):
        config.model.name_or_path = args.model
    return config


def load_pairs(data: DataConfig, stage: str = "dpo"):
    """Load ``data.train_files`` with the data settings (dpokit.data.load does the work).

    ``stage`` ``sft``: SFT examples (an :class:`~dpokit.data.types.SftLoadResult`).
    """
    from dpokit.data.load import load_preference_data, load_sft_data

    load = load_sft_data if stage == "sft" else load_preference_data
    return load(
        data.train_files,
        format=data.format,
        columns=data.columns or None,
        registry=data.registry,
        skip_bad_records=data.skip_bad_records,
        pair_strategy=data.pair_strategy,
        max_samples=data.max_samples,
    )


def stage_of(args, config: Config) -> str:
    """``--stage``, else the config's stage (``dpo`` without a config)."""
    return args.stage or config.stage


def run(args) -> int:
    try:
        return {"inspect": run_inspect, "convert": run_convert}[args.data_command](args)
    except DpokitError as err:
        raise with_flags(err, {} if args.config else FLAGS) from None


def run_inspect(args) -> int:
    from dpokit.data.report import build_report, build_sft_report, format_report, format_sft_report
    from dpokit.data.tokenize import tokenize_pairs, tokenize_sft
    from dpokit.models import load_tokenizer

    config = resolve_settings(args)
    data = config.data
    stage = stage_of(args, config)
    loaded = load_pairs(data, stage)
    tokenizer = load_tokenizer(config.model.name_or_path, trust_remote_code=config.model.trust_remote_code)
    if stage == "sft":
        tokenized, stats = tokenize_sft(loaded.examples, tokenizer, data)
        report = build_sft_report(loaded, tokenized, stats, tokenizer, data)
    else:
        tokenized, stats = tokenize_pairs(loaded.pairs, tokenizer, data)
        report = build_report(loaded, tokenized, stats, tokenizer, data)
    report["sources"] = list(data.train_files)
    report["model"] = config.model.name_or_path
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=2))
    else:
        print(f"data:              {', '.join(data.train_files)}")
        print(f"model:             {config.model.name_or_path}")
        print((format_sft_report if stage == "sft" else format_report)(report))
    return 0


def _registry_files(registry: str, names: list[str], stage: str = "dpo") -> list[Path]:
    """Files the registry's entries for ``names`` point at (names that are plain paths are skipped)."""
    from dpokit.data.registry import read_registry, resolve_dataset

    info = read_registry(registry)
    return [resolve_dataset(registry, name, info, sft=stage == "sft").path for name in names if name in info]


def check_output_path(out: Path, data: DataConfig, stage: str = "dpo") -> None:
    """Refuse an output that is one of the inputs, or inside an input dir (inputs are never modified)."""
    inputs = [Path(f) for f in data.train_files if Path(f).exists()]
    if data.registry:
        inputs += [Path(data.registry)] + _registry_files(data.registry, data.train_files, stage)
    target = out.expanduser().resolve()
    for source in inputs:
        source = source.expanduser().resolve()
        if target == source or (source.is_dir() and source in target.parents):
            raise DpokitError(
                f"{out}: the output would overwrite or land inside input {source}",
                "write the converted pairs to a new file outside the input data, e.g. --out converted.jsonl",
            )
    if target.is_dir():
        raise DpokitError(f"{out}: is a directory", "give a file name, e.g. --out pairs.jsonl")


def run_convert(args) -> int:
    from dpokit.data.write import write_pairs_jsonl, write_sft_jsonl

    config = resolve_settings(args)
    data = config.data
    stage = stage_of(args, config)
    out = Path(args.out)
    check_output_path(out, data, stage)
    if not args.split and (args.eval_fraction is not None or args.seed is not None):
        raise DpokitError("--eval-fraction and --seed choose a split: they need --split train or --split eval",
                          "add --split train (or eval), or leave the two flags out")
    loaded = load_pairs(data, stage)
    items, noun = (loaded.examples, "examples") if stage == "sft" else (loaded.pairs, "pairs")
    items, split_note = _one_side(items, args, noun) if args.split else (items, "")
    dropped = sum(loaded.dropped.values())
    if not items:
        reasons = ", ".join(f"{k}: {v}" for k, v in loaded.dropped.items()) or "no records"
        raise DpokitError(f"no {noun} to write ({reasons}); {out} was not written",
                          "check the input with `dpokit data inspect`" + (" --stage sft" if stage == "sft" else ""))
    written = (write_sft_jsonl if stage == "sft" else write_pairs_jsonl)(items, out)  # temp file + rename
    print(f"wrote {written} {noun} to {out}{split_note} (format {loaded.format}; {loaded.records} records read; "
          f"{dropped} {noun} dropped" + (f": {_reasons(loaded.dropped)}" if dropped else "") + ")")
    if loaded.errors:
        print(f"skipped {len(loaded.errors)} bad records:")
        for error in loaded.errors[:10]:
            print(f"  {error}")
    return 0


def _one_side(items: list, args, noun: str) -> tuple[list, str]:
    """The ``--split`` side of ``items``, and the words that say which side it is."""
    from dpokit.data.load import split_off_eval

    fraction = SPLIT_EVAL_FRACTION if args.eval_fraction is None else args.eval_fraction
    seed = SPLIT_SEED if args.seed is None else args.seed
    if not 0 < fraction < 1:
        raise DpokitError(f"--eval-fraction {fraction}: must be between 0 and 1",
                          "give a share of the prompts, e.g. --eval-fraction 0.1")
    train, held_out = split_off_eval(items, fraction, seed, noun, setting="--eval-fraction")
    side = train if args.split == "train" else held_out
    note = (f" (the {args.split} side of --eval-fraction {fraction} --seed {seed}: "
            f"{len(train)} train / {len(held_out)} eval {noun}, no prompt on both)")
    return side, note


def _reasons(counter) -> str:
    return ", ".join(f"{reason} {count}" for reason, count in counter.most_common())
