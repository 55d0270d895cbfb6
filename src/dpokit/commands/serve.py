"""`dpokit serve [MODEL_OR_RUN ...]`: an OpenAI-compatible API and a page to chat, compare and label."""

from __future__ import annotations

import os


def add_parser(sub, name: str, help_text: str) -> None:
    from dpokit.config import DEFAULT_MODEL
    from dpokit.serve.server import DEFAULT_HOST, DEFAULT_PORT

    p = sub.add_parser(
        name, help=help_text,
        description=help_text + ". Endpoints: /v1/models, /v1/chat/completions, /v1/completions, /health; "
                                "the page: / (chat), /compare (blind), /label (preferences -> LABELS_DIR/preferences.jsonl).",
    )
    p.add_argument("models", metavar="MODEL_OR_RUN", nargs="*",
                   help=f"run dirs, checkpoints, adapter or model dirs, .gguf files or model names, each served under "
                        f"its own name (the run dir's name); default {DEFAULT_MODEL}")
    p.add_argument("--model", dest="named_models", action="append", default=[], metavar="NAME=MODEL_OR_RUN",
                   help="serve MODEL_OR_RUN as NAME (repeatable)")
    p.add_argument("--no-base", action="store_true",
                   help="do not also serve the base model of LoRA runs (it costs no memory: the weights are shared)")
    p.add_argument("--host", default=DEFAULT_HOST, help=f"address to bind (default {DEFAULT_HOST}: this machine only)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"default {DEFAULT_PORT}")
    p.add_argument("--api-key", default=os.environ.get("DPOKIT_API_KEY"), metavar="KEY",
                   help="require 'Authorization: Bearer KEY' on /v1 and /api (default: env DPOKIT_API_KEY; "
                        "prefer the variable: a command line is visible to other users)")
    p.add_argument("--labels-dir", default="labels", metavar="DIR",
                   help="where labels are appended: DIR/preferences.jsonl (default ./labels)")
    p.add_argument("--prompts", default=None, metavar="FILE",
                   help="prompts to label (JSONL with 'prompt', plain text one a line, or a preference file)")
    p.add_argument("--cors-origin", dest="cors_origins", action="append", default=[], metavar="ORIGIN",
                   help="allow browser pages from ORIGIN to call the API (repeatable; default: none)")
    p.add_argument("--dtype", choices=["auto", "float32", "bfloat16", "float16"], default=None,
                   help="weights dtype (default: the run's config, else auto)")
    p.add_argument("--max-batch-size", type=int, default=16, metavar="N",
                   help="most sequences in one generate call (default 16)")
    p.add_argument("--batch-wait-ms", type=float, default=10.0, metavar="MS",
                   help="how long the first request waits for others to batch with (default 10)")
    p.add_argument("--max-tokens", type=int, default=256, metavar="N",
                   help="answer length when a request gives no max_tokens (default 256)")
    p.add_argument("--max-body-bytes", type=int, default=4 * 1024 * 1024, metavar="BYTES",
                   help="largest request body accepted (default 4 MiB)")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    p.set_defaults(func=run)


def run(args) -> int:
    from dpokit.serve.server import ServeOptions, serve

    return serve(ServeOptions(
        models=args.models, named_models=args.named_models, host=args.host, port=args.port, api_key=args.api_key,
        labels_dir=args.labels_dir, prompts=args.prompts, cors_origins=args.cors_origins, dtype=args.dtype,
        include_bases=not args.no_base, max_batch_size=args.max_batch_size, batch_wait_ms=args.batch_wait_ms,
        max_body_bytes=args.max_body_bytes, max_tokens=args.max_tokens, log_level=args.log_level,
    ))
