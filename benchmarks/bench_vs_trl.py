"""dpokit vs TRL's DPOTrainer: the same DPO run, side by side (run by hand, not in the test suite).

Same model (the embedded SmolLM2-135M-Instruct, fp32), same data (the first N hh-rlhf
pairs), same settings (LoRA r=16 alpha=32 on all linear layers, no dropout, batch 4,
max_length 512, lr 5e-5 linear, beta 0.1, sigmoid loss, N/batch optimizer steps so every
pair is seen once). Each side runs in its own child process so that peak RSS is its own.

Measured per side, from model load to trained adapter: wall time, CPU time (user + system;
the fairer figure on a shared machine), real tokens per second (the 2N prompt+answer
sequences without padding: identical for all sides), peak RSS, and the step losses (TRL
reads the pairs in dpokit's shuffled order, so the losses should agree).

Sides: ``trl`` (TRL's defaults: gradient checkpointing on, the reference re-scored every
step with the adapter off), ``trl-tuned`` (gradient checkpointing off), ``dpokit``
(``dpokit.recipe.train`` with its defaults: reference log-probs precomputed once on a cold
cache, chunked log-probs, no gradient checkpointing), ``dpokit-gc`` (the same with
gradient checkpointing, TRL's default memory regime), ``dpokit-rows`` (dpokit scoring each
pair as two padded rows, TRL's layout, as it does for a model that cannot take its
shared-prompt mask: the layout's own gain) and ``dpokit-grouped`` (dpokit with
``training.group_by_length``: less padding, a different batch order, so its losses differ).

    python benchmarks/bench_vs_trl.py                 # 32 pairs, 8 steps, all sides
    python benchmarks/bench_vs_trl.py --pairs 16 --sides dpokit trl --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HH_RLHF = REPO.parent / "shared" / "data" / "hh-rlhf-harmless-base.part-a.jsonl.gz"
SIDES = ("trl", "trl-tuned", "dpokit", "dpokit-gc", "dpokit-rows", "dpokit-grouped")

LORA = {"r": 16, "alpha": 32, "dropout": 0.0}
BATCH = 4
MAX_LENGTH = 512
LR = 5e-5
BETA = 0.1
SEED = 42


def peak_rss_mb() -> float:
    """This process's peak resident set size (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def real_tokens(pairs_file: Path, model_path: str) -> int:
    """Tokens of the prompt+chosen and prompt+rejected sequences, after truncation to MAX_LENGTH."""
    from dpokit.config import DataConfig
    from dpokit.data.load import load_preference_data
    from dpokit.data.tokenize import tokenize_pairs
    from dpokit.models import load_tokenizer

    pairs = load_preference_data([str(pairs_file)]).pairs
    examples, _ = tokenize_pairs(pairs, load_tokenizer(model_path), DataConfig(max_length=MAX_LENGTH))
    return sum(2 * len(e.prompt_ids) + len(e.chosen_ids) + len(e.rejected_ids) for e in examples)


def run_trl(pairs_file: Path, model_path: str, steps: int, tuned: bool, work: Path) -> dict:
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    from dpokit.data.batches import epoch_order

    rows = [json.loads(line) for line in pairs_file.read_text().splitlines()]
    rows = [rows[i] for i in epoch_order(len(rows), SEED, 0)]  # dpokit's batches, so the losses can be compared
    dataset = Dataset.from_list([{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in rows])
    start, cpu = time.perf_counter(), cpu_seconds()
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    args = DPOConfig(
        output_dir=str(work / "trl-out"), per_device_train_batch_size=BATCH, max_steps=steps, learning_rate=LR,
        lr_scheduler_type="linear", beta=BETA, max_length=MAX_LENGTH, seed=SEED, bf16=False, use_cpu=True,
        logging_steps=1, report_to="none", save_strategy="no", disable_tqdm=True, train_sampling_strategy="sequential",
        **({"gradient_checkpointing": False} if tuned else {}),
    )
    peft = LoraConfig(r=LORA["r"], lora_alpha=LORA["alpha"], lora_dropout=LORA["dropout"],
                      target_modules="all-linear", task_type="CAUSAL_LM")
    trainer = DPOTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer, peft_config=peft)
    trainer.train()
    trainer.model.save_pretrained(str(work / "trl-adapter"))
    wall, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    losses = [log["loss"] for log in trainer.state.log_history if "loss" in log]
    return {"wall_s": wall, "cpu_s": cpu, "losses": losses, "peak_rss_mb": peak_rss_mb()}


def run_dpokit(pairs_file: Path, model_path: str, steps: int, work: Path, checkpointing: bool, grouped: bool,
               two_rows: bool) -> dict:
    os.environ["DPOKIT_HOME"] = str(work / "dpokit-home")  # a cold reference cache
    from dpokit import logprobs
    from dpokit.config import build_config
    from dpokit.recipe import train

    if two_rows:  # no attention implementation qualifies: the fallback dpokit takes for flash attention
        logprobs.SHARED_LAYOUT_ATTENTION = ()

    config = build_config({
        "stage": "dpo",
        "model": {"name_or_path": model_path, "dtype": "float32", "gradient_checkpointing": checkpointing},
        "lora": {**LORA, "target_modules": "all-linear"},
        "data": {"train_files": [str(pairs_file)], "max_length": MAX_LENGTH},
        "dpo": {"beta": BETA, "loss_type": "sigmoid"},
        "training": {"max_steps": steps, "per_device_train_batch_size": BATCH, "learning_rate": LR,
                     "lr_scheduler_type": "linear", "seed": SEED, "logging_steps": 1, "report_to": [],
                     "group_by_length": grouped,
                     # fp32 like the TRL side (bf16=False): `auto` would pick bf16 on an AVX512-BF16/AMX CPU.
                     "mixed_precision": "no"},
        "output": {"output_dir": str(work / "dpokit-run")},
    })
    start, cpu = time.perf_counter(), cpu_seconds()
    run_dir = train(config, show_progress=False)
    wall, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    losses = [m["loss"] for m in metrics if "loss" in m]
    return {"wall_s": wall, "cpu_s": cpu, "losses": losses, "peak_rss_mb": peak_rss_mb()}


def child(args: argparse.Namespace) -> None:
    work = Path(args.work)
    if args.child.startswith("dpokit"):
        result = run_dpokit(Path(args.pairs_file), args.model, args.steps, work, checkpointing=args.child == "dpokit-gc",
                            grouped=args.child == "dpokit-grouped", two_rows=args.child == "dpokit-rows")
    else:
        result = run_trl(Path(args.pairs_file), args.model, args.steps, args.child == "trl-tuned", work)
    Path(args.result).write_text(json.dumps(result))


def prepare_pairs(n: int, out: Path) -> None:
    from dpokit.data.load import load_preference_data
    from dpokit.data.write import write_pairs_jsonl

    result = load_preference_data([str(HH_RLHF)], max_samples=n)
    if len(result.pairs) < n:
        sys.exit(f"only {len(result.pairs)} pairs in {HH_RLHF}")
    write_pairs_jsonl(result.pairs, out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=32)
    parser.add_argument("--sides", nargs="+", choices=SIDES, default=list(SIDES))
    parser.add_argument("--threads", type=int, help="torch/OpenMP threads per side (default: torch's own)")
    parser.add_argument("--child", choices=SIDES, help=argparse.SUPPRESS)
    parser.add_argument("--pairs-file", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)

    from dpokit.models import resolve_model_path

    model = resolve_model_path("smollm2-135m-instruct")
    steps = args.pairs // BATCH
    with tempfile.TemporaryDirectory(prefix="dpokit-bench-") as tmp:
        work = Path(tmp)
        pairs_file = work / "pairs.jsonl"
        prepare_pairs(args.pairs, pairs_file)
        tokens = real_tokens(pairs_file, model)
        print(f"{args.pairs} hh-rlhf pairs, {steps} steps of {BATCH}, LoRA r={LORA['r']}, max_length {MAX_LENGTH}, "
              f"{tokens} real tokens, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}", flush=True)
        results = {}
        for side in args.sides:
            side_dir = work / side
            side_dir.mkdir()
            out = side_dir / "result.json"
            cmd = [sys.executable, __file__, "--child", side, "--pairs-file", str(pairs_file), "--model", model,
                   "--steps", str(steps), "--work", str(side_dir), "--result", str(out)]
            env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1", "TQDM_DISABLE": "1"}
            if args.threads:
                env.update(OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
            if proc.returncode != 0:
                print(f"{side}: failed\n{proc.stderr[-3000:]}", file=sys.stderr)
                continue
            results[side] = json.loads(out.read_text())
            r = results[side]
            print(f"{side:>14}: wall {r['wall_s']:6.1f} s ({tokens / r['wall_s']:5.1f} tokens/s), CPU {r['cpu_s']:6.1f} s "
                  f"({tokens / r['cpu_s']:5.1f} tokens/CPU-s), peak RSS {r['peak_rss_mb']:6.0f} MB, "
                  f"loss {r['losses'][0]:.4f} -> {r['losses'][-1]:.4f}", flush=True)
    for ours_name in ("dpokit", "dpokit-gc", "dpokit-rows", "dpokit-grouped"):
        for peer_name in ("trl", "trl-tuned"):
            if ours_name in results and peer_name in results:
                ours, peer = results[ours_name], results[peer_name]
                print(f"{ours_name} vs {peer_name}: wall {peer['wall_s'] / ours['wall_s']:.2f}x, "
                      f"CPU {peer['cpu_s'] / ours['cpu_s']:.2f}x, peak RSS {peer['peak_rss_mb'] / ours['peak_rss_mb']:.2f}x "
                      "(peer / dpokit: above 1 means dpokit is better)")
    if "dpokit" in results and "dpokit-rows" in results:
        shared, rows = results["dpokit"], results["dpokit-rows"]
        print(f"dpokit vs dpokit-rows: wall {rows['wall_s'] / shared['wall_s']:.2f}x, "
              f"CPU {rows['cpu_s'] / shared['cpu_s']:.2f}x, peak RSS {rows['peak_rss_mb'] / shared['peak_rss_mb']:.2f}x "
              "(above 1: the shared-prompt layout is better)")
    if "dpokit" in results and "dpokit-grouped" in results:
        plain, grouped = results["dpokit"], results["dpokit-grouped"]
        print(f"dpokit-grouped vs dpokit: wall {plain['wall_s'] / grouped['wall_s']:.2f}x, "
              f"CPU {plain['cpu_s'] / grouped['cpu_s']:.2f}x (above 1: grouping by length is faster)")


if __name__ == "__main__":
    main()
