"""`dpokit merge RUN_DIR --out DIR`: a LoRA run merged into its base -> plain Hugging Face model dir."""

from __future__ import annotations


def add_parser(sub, name: str, help_text: str) -> None:
    p = sub.add_parser(
        name, help=help_text, description=help_text + ". A full fine-tune run is copied as it is. "
        "The result loads with transformers alone (AutoModelForCausalLM.from_pretrained).",
    )
    p.add_argument("run", metavar="RUN_DIR", help="a run dir, one of its checkpoints, or a PEFT adapter dir")
    p.add_argument("--out", required=True, metavar="DIR", help="new (or empty) directory for the merged model")
    p.set_defaults(func=run)


def run(args) -> int:
    from dpokit.export import check_output_dir, merge_lora
    from pathlib import Path

    check_output_dir(Path(args.out))  # before loading anything
    out = merge_lora(args.run, args.out)
    print(f"merged model written to {out}")
    print(f"load it with: AutoModelForCausalLM.from_pretrained({str(out)!r})")
    return 0
