"""`dpokit compare A B --prompts FILE`: answers side by side, and B's judged win rate over A."""

from __future__ import annotations

import json
import sys
from pathlib import Path

JUDGE_HELP = (
    "who decides which answer is better: rm:PATH (a reward model dir, higher score wins), "
    "dpo:RUN_DIR (a DPO run's implicit reward beta*(log pi - log pi_ref)), openai:URL[#MODEL] "
    "(an OpenAI-compatible chat endpoint as LLM judge; key from $OPENAI_API_KEY; answer order "
    "randomised per prompt with --seed), or python:FILE.py:FUNCTION (your f(prompt_messages, answer) -> "
    "number, higher wins). Without a judge: side by side only"
)


def add_parser(sub, name: str, help_text: str) -> None:
    from dpokit.commands.generate import add_sampling_args

    p = sub.add_parser(
        name, help=help_text,
        description=help_text + ". B's win rate over A counts ties as half a win and comes with a "
        "95%% Wilson score interval. Decoding is greedy unless --temperature > 0.",
    )
    p.add_argument("model_a", metavar="A", help="baseline: a run dir, model dir, .gguf file or model name")
    p.add_argument("model_b", metavar="B", help="contender, same kinds as A")
    p.add_argument("--prompts", required=True, metavar="FILE",
                   help="plain text (one prompt a line), JSONL with 'prompt' (text or messages), or a preference file")
    p.add_argument("--judge", metavar="JUDGE", help=JUDGE_HELP)
    p.add_argument("--allow-self-judge", action="store_true",
                   help="run even when the judge is one of the compared models (or scores against one): "
                        "the result is then flagged as not independent")
    p.add_argument("--out", metavar="report.html", help="write a self-contained HTML report here")
    p.add_argument("--json", action="store_true", help="print the result as JSON instead of text")
    p.add_argument("--limit", type=int, metavar="N", help="use only the first N prompts")
    p.add_argument("--system-prompt", default=None, help="system message for prompts that have none")
    p.add_argument("--batch-size", type=int, default=8, help="prompts per generation batch (default 8)")
    add_sampling_args(p, temperature=0.0, max_new_tokens=256)
    p.set_defaults(func=run)


def sampling_from(args) -> dict:
    """Keyword arguments for dpokit.generate.generate_answers."""
    return {
        "max_new_tokens": args.max_new_tokens, "do_sample": args.temperature > 0, "temperature": args.temperature,
        "top_p": args.top_p, "top_k": args.top_k, "repetition_penalty": args.repetition_penalty,
        "repetition_window": args.repetition_window,
        "seed": args.seed, "batch_size": args.batch_size,
    }


def run(args) -> int:
    from dpokit.commands.generate import sampling_settings
    from dpokit.comparison import compare, judge_conflict, load_prompts
    from dpokit.comparison_report import format_text, summary_line, write_report
    from dpokit.errors import DpokitError
    from dpokit.judges import make_judge

    if args.limit is not None and args.limit <= 0:
        raise DpokitError(f"--limit {args.limit}: must be a positive number of prompts")
    if args.out and Path(args.out).is_dir():
        raise DpokitError(f"--out {args.out}: is a directory", "give a file name, e.g. report.html")
    sampling_settings(args)  # validates the flags before anything loads
    # Everything cheap is checked before any model loads: prompts, judge spec and endpoint.
    prompts = load_prompts(args.prompts, limit=args.limit, system_prompt=args.system_prompt)
    conflict = judge_conflict(args.judge, args.model_a, args.model_b) if args.judge else None
    if conflict and not args.allow_self_judge:
        raise DpokitError(
            f"--judge {args.judge}: {conflict}",
            "judge with something independent of both models: a reward model (rm:DIR), an LLM endpoint "
            "(openai:URL#MODEL), a rule (python:FILE.py:FUNCTION), or people in `dpokit serve`'s compare page; "
            "--allow-self-judge runs it anyway, flagged",
        )
    judge = make_judge(args.judge, seed=args.seed or 0) if args.judge else None
    result = compare(args.model_a, args.model_b, prompts, judge, sampling_from(args), dtype=args.dtype, progress=True)
    result.judge_warning = conflict
    if args.out:
        path = write_report(result, args.out)
        print(f"report: {path}", file=sys.stderr)
    if args.json:
        print(json.dumps(result.to_json(), indent=2, ensure_ascii=False))
    elif args.out:
        print(summary_line(result))
    else:
        print(format_text(result))
    if result.judge_error:
        kept = f"the answers are in {args.out}" if args.out else "the answers are printed above"
        raise DpokitError(f"judging failed ({kept}): {result.judge_error}")
    return 0
