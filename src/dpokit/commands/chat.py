"""`dpokit chat [MODEL_OR_RUN]`: terminal chat with streamed replies."""

from __future__ import annotations

from dpokit.commands.generate import add_sampling_args, sampling_settings


def add_parser(sub, name: str, help_text: str) -> None:
    from dpokit.config import DEFAULT_MODEL

    p = sub.add_parser(name, help=help_text, description=help_text + ". Commands: /system TEXT, /reset, /help, /exit.")
    p.add_argument("model", metavar="MODEL_OR_RUN", nargs="?", default=DEFAULT_MODEL,
                   help=f"a run dir, model dir, .gguf file or model name (default {DEFAULT_MODEL})")
    p.add_argument("--system", default=None, metavar="TEXT", help="system prompt (default: the run's data.system_prompt)")
    add_sampling_args(p, temperature=0.7, max_new_tokens=512)
    p.set_defaults(func=run)


def run(args) -> int:
    import sys

    from dpokit.chat import ChatSession, run_chat
    from dpokit.render import Renderer
    from dpokit.runs import load_for_inference, open_model_or_run

    settings = sampling_settings(args)  # validate flags and the reference before loading anything
    open_model_or_run(args.model)
    try:
        import readline  # noqa: F401  line editing and history for input()
    except ImportError:
        pass
    print(f"dpokit: loading {args.model}...", file=sys.stderr, flush=True)
    model, tokenizer, info = load_for_inference(args.model, dtype=args.dtype)
    print(f"dpokit: chatting with {info.describe()}", file=sys.stderr, flush=True)
    session = ChatSession(model, Renderer.for_run(tokenizer, info), settings, system=args.system, seed=args.seed)
    return run_chat(session)
