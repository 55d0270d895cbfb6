"""`dpokit quickstart`: DPO + LoRA on the embedded model and demo data, before -> after."""

from __future__ import annotations

from pathlib import Path


def add_parser(sub, name: str, help_text: str) -> None:
    p = sub.add_parser(name, help=help_text, description=help_text)
    p.add_argument("--out", default=None,
                   help="run directory (default: runs/quickstart, or runs/quickstart-N if that exists)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("overrides", nargs="*", help="key=value config overrides, e.g. training.max_steps=20")
    p.set_defaults(func=run)


def free_run_dir(base: str = "runs/quickstart") -> str:
    """``base``, or ``base-2``, ``base-3``... : the first that does not exist or is empty."""
    candidate, n = Path(base), 1
    while candidate.exists() and any(candidate.iterdir()):
        n += 1
        candidate = Path(f"{base}-{n}")
    return str(candidate)


def run(args) -> int:
    from dpokit.before_after import run_quickstart

    run_quickstart(args.out or free_run_dir(), args.overrides, show_progress=not args.no_progress)
    return 0
