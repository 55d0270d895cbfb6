"""Write dpokit's demo SFT set (``demo:sft``) from the demo preference train set.

Each prompt of ``src/dpokit/data/demo/train.jsonl`` becomes one line of ``sft.jsonl`` in chat
``messages`` form: the prompt as the user turn and its *chosen* answer as the assistant turn,
with the pair's ``category`` and ``topic`` kept; in the order prompts first appear (a prompt
paired twice, against two rejected answers, gives one example), nothing else changed. SFT on it is the first stage of examples/sft-then-dpo.sft.yaml: the model learns the
preferred answers, then DPO (on the pairs themselves) pushes them above the rejected ones.

Deterministic: the same train.jsonl always gives a byte-identical sft.jsonl. Re-run it
whenever train.jsonl changes (tests/test_sft_data.py fails until you do):

    python scripts/make_demo_sft.py            # writes src/dpokit/data/demo/sft.jsonl
    python scripts/make_demo_sft.py --check    # exits 1 if sft.jsonl is not what train.jsonl gives
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

DEMO_DIR = Path(__file__).resolve().parents[1] / "src" / "dpokit" / "data" / "demo"
META_FIELDS = ("category", "topic")


def sft_row(pair: dict) -> dict:
    """One preference pair -> ``{"messages": [user prompt, assistant chosen], "category", "topic"}``."""
    row: dict = {"messages": [{"role": "user", "content": pair["prompt"]},
                              {"role": "assistant", "content": pair["chosen"]}]}
    row.update({key: pair[key] for key in META_FIELDS if key in pair})
    return row


def render(train_text: str) -> str:
    """The text of sft.jsonl for the text of train.jsonl (one JSON object per line, UTF-8)."""
    pairs = [json.loads(line) for line in train_text.splitlines() if line.strip()]
    first_pairs = {}
    for pair in pairs:
        first_pairs.setdefault((pair["prompt"], pair["chosen"]), pair)
    return "".join(json.dumps(sft_row(pair), ensure_ascii=False) + "\n" for pair in first_pairs.values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed sft.jsonl instead of writing")
    parser.add_argument("--demo-dir", type=Path, default=DEMO_DIR, help=f"folder of train.jsonl and sft.jsonl (default {DEMO_DIR})")
    args = parser.parse_args(argv)

    train, out = args.demo_dir / "train.jsonl", args.demo_dir / "sft.jsonl"
    text = render(train.read_text(encoding="utf-8"))
    if args.check:
        if not out.is_file() or out.read_text(encoding="utf-8") != text:
            print(f"{out}: differs from what {Path(__file__).name} makes of {train}; run it without --check",
                  file=sys.stderr)
            return 1
        return 0
    from dpokit.outputs import write_file

    write_file(out, text)
    print(f"wrote {out} ({text.count(chr(10))} examples)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
