"""`dpokit generate MODEL_OR_RUN --prompts FILE --out OUT.jsonl`: batched generation with the chat template."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dpokit.errors import DpokitError


def add_sampling_args(p: argparse.ArgumentParser, *, temperature: float, max_new_tokens: int) -> None:
    """The sampling flags `generate` and `chat` share."""
    from dpokit.generate import DEFAULT_REPETITION_WINDOW, DEFAULT_TOP_K, DEFAULT_TOP_P

    g = p.add_argument_group("sampling")
    g.add_argument("--temperature", type=float, default=temperature, help=f"0 = greedy (default {temperature})")
    g.add_argument("--top-p", type=float, default=DEFAULT_TOP_P, help=f"nucleus sampling (default {DEFAULT_TOP_P})")
    g.add_argument("--top-k", type=int, default=DEFAULT_TOP_K, help=f"0 = off (default {DEFAULT_TOP_K})")
    g.add_argument("--max-new-tokens", type=int, default=max_new_tokens, help=f"default {max_new_tokens}")
    g.add_argument("--repetition-penalty", type=float, default=1.0, help="1.0 = none (default)")
    g.add_argument("--repetition-window", type=int, default=DEFAULT_REPETITION_WINDOW, metavar="N",
                   help=f"stop a reply once its last N tokens repeat an earlier part of it (a loop); "
                        f"0 = never (default {DEFAULT_REPETITION_WINDOW})")
    g.add_argument("--seed", type=int, default=None, help="same seed, same outputs")
    g.add_argument("--dtype", choices=["auto", "float32", "bfloat16", "float16"], default=None,
                   help="weights dtype (default: the run's config, else auto)")


def sampling_settings(args):
    from dpokit.generate import SamplingSettings

    return SamplingSettings(
        max_new_tokens=args.max_new_tokens, do_sample=args.temperature > 0, temperature=args.temperature,
        top_p=args.top_p, top_k=args.top_k, repetition_penalty=args.repetition_penalty,
        repetition_window=args.repetition_window,
    )


def add_parser(sub, name: str, help_text: str) -> None:
    from dpokit.generate import DEFAULT_MAX_NEW_TOKENS, DEFAULT_TEMPERATURE

    p = sub.add_parser(name, help=help_text, description=help_text + ". A LoRA run generates without merging.")
    p.add_argument("model", metavar="MODEL_OR_RUN", help="a run dir, model dir, .gguf file or model name")
    p.add_argument("--prompts", required=True, metavar="FILE",
                   help="JSONL with 'prompt' (text or messages), plain text (one prompt a line), or a preference file")
    p.add_argument("--out", required=True, metavar="OUT.jsonl", help="one JSON line per prompt")
    p.add_argument("--n", type=int, default=1, help="candidates per prompt (2: a pair to label)")
    p.add_argument("--batch-size", type=int, default=8, help="prompts per generate call (default 8)")
    p.add_argument("--system-prompt", default=None, metavar="TEXT", help="system message for prompts that have none")
    add_sampling_args(p, temperature=DEFAULT_TEMPERATURE, max_new_tokens=DEFAULT_MAX_NEW_TOKENS)
    p.set_defaults(func=run)


def run(args) -> int:
    from dpokit.generate import generate_candidates
    from dpokit.prompts import read_prompt_records
    from dpokit.outputs import write_jsonl
    from dpokit.render import Renderer, with_system_prompt
    from dpokit.runs import load_for_inference

    out = Path(args.out)
    if out.exists() and out.resolve() == Path(args.prompts).resolve():
        raise DpokitError(f"{out}: --out is the prompts file", "write the outputs to a new file")
    if out.is_dir():
        raise DpokitError(f"{out}: --out is a directory", "give a file name, e.g. outputs.jsonl")
    settings = sampling_settings(args)
    if args.n > 1 and settings.greedy:
        raise DpokitError(f"--n {args.n} with --temperature 0 (greedy) gives {args.n} identical candidates",
                          "use a temperature > 0, e.g. --temperature 0.8")
    records = read_prompt_records(args.prompts)
    prompts = [with_system_prompt(r.messages, args.system_prompt)[0] for r in records]
    model, tokenizer, info = load_for_inference(args.model, dtype=args.dtype)
    print(f"dpokit: {len(prompts)} prompts x {args.n} with {info.describe()}", file=sys.stderr)
    candidates = generate_candidates(model, Renderer.for_run(tokenizer, info), prompts, settings, n=args.n, seed=args.seed,
                                     batch_size=args.batch_size, show_progress=True)
    rows = []
    for record, prompt, answers in zip(records, prompts, candidates):
        row = {"prompt": prompt, "candidates": answers}
        if args.n > 1:
            # Fill in a score per candidate (higher = better) to turn the line into preference pairs.
            row["scores"] = [None] * len(answers)
        row.update({"source": record.source, "model": str(args.model)})
        rows.append(row)
    write_jsonl(out, rows)
    print(f"wrote {len(rows)} lines ({len(rows) * args.n} answers) to {out}")
    if args.n > 1:
        print(f"to label: fill in each line's scores (higher = better), then "
              f"`dpokit data convert {out} --columns responses=candidates --out pairs.jsonl`")
    return 0
