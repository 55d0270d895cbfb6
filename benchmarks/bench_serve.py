"""`dpokit serve`: batched serving against one request at a time, on the embedded SmolLM2 (run by hand).

One process loads the model once and serves it twice over loopback HTTP, one mode after the
other, with the same requests: ``batched`` (the default scheduler: up to ``--max-batch-size``
waiting requests share one left-padded ``generate`` call) and ``one-at-a-time`` (max batch 1,
no wait: what a server without batching does). ``--requests`` chat completions are sent at
once (``--concurrency`` in flight), greedy, ``--max-tokens`` each, prompts from the bundled
demo prompts. Printed per mode: requests/s, generated tokens/s, p50 and p95 latency (request
sent -> full answer), and the ratios batched / one-at-a-time from the same run.

    python benchmarks/bench_serve.py
    python benchmarks/bench_serve.py --threads 1          # on a shared machine
    python benchmarks/bench_serve.py --requests 48 --max-tokens 48 --max-batch-size 16
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def percentile(values, q):
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


class Server:
    def __init__(self, app):
        import uvicorn

        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                                    access_log=False))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        while not self.server.started:
            time.sleep(0.02)
        return f"http://127.0.0.1:{self.server.servers[0].sockets[0].getsockname()[1]}"

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(60)


async def load(url, model, prompts, requests, concurrency, max_tokens):
    import httpx

    gate = asyncio.Semaphore(concurrency)
    latencies, tokens = [], []

    async def one(client, i):
        body = {"model": model, "messages": prompts[i % len(prompts)], "max_tokens": max_tokens, "temperature": 0}
        async with gate:
            start = time.perf_counter()
            response = await client.post("/v1/chat/completions", json=body)
            latencies.append(time.perf_counter() - start)
        response.raise_for_status()
        tokens.append(response.json()["usage"]["completion_tokens"])

    limits = httpx.Limits(max_connections=concurrency + 4, max_keepalive_connections=concurrency + 4)
    async with httpx.AsyncClient(base_url=url, timeout=3600, limits=limits) as client:
        await one(client, 0)  # warm-up
        latencies.clear()
        tokens.clear()
        start = time.perf_counter()
        await asyncio.gather(*(one(client, i) for i in range(requests)))
        wall = time.perf_counter() - start
    return {"wall": wall, "rps": requests / wall, "tokens_per_s": sum(tokens) / wall, "tokens": sum(tokens),
            "p50": statistics.median(latencies), "p95": percentile(latencies, 0.95)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--requests", type=int, default=24)
    parser.add_argument("--concurrency", type=int, default=24)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--max-batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    args = parser.parse_args()

    import torch

    from dpokit.prompts import read_prompt_records
    from dpokit.serve.app import ServeState, create_app
    from dpokit.serve.registry import ModelSpec, load_registry
    from dpokit.serve.scheduler import Scheduler

    if args.threads:
        torch.set_num_threads(args.threads)
    prompts = [r.messages for r in read_prompt_records(ROOT / "src/dpokit/data/demo/prompts.jsonl")]
    registry = load_registry([ModelSpec(args.model, "bench")], say=lambda _: None)
    print(f"model {args.model}; {args.requests} chat requests at once (concurrency {args.concurrency}), greedy, "
          f"max_tokens {args.max_tokens}; torch threads {torch.get_num_threads()}", flush=True)
    results = {}
    for mode, rows, wait in (("batched", args.max_batch_size, 0.01), ("one-at-a-time", 1, 0.0)):
        scheduler = Scheduler(registry, max_batch_rows=rows, batch_wait_s=wait, torch_threads=args.threads)
        state = ServeState(registry=registry, scheduler=scheduler)
        with Server(create_app(state)) as url:
            results[mode] = asyncio.run(load(url, "bench", prompts, args.requests, args.concurrency, args.max_tokens))
        stats = scheduler.stats()
        scheduler.close()
        r = results[mode]
        print(f"{mode:>14}: {r['rps']:6.2f} req/s  {r['tokens_per_s']:7.1f} tok/s  p50 {r['p50']:6.2f} s  "
              f"p95 {r['p95']:6.2f} s  ({r['tokens']} tokens in {r['wall']:.1f} s; {stats['batches']} generate "
              f"calls, largest {stats['largest_batch']} rows)", flush=True)
    b, s = results["batched"], results["one-at-a-time"]
    print(f"batched / one-at-a-time: requests/s x{b['rps'] / s['rps']:.2f}, tokens/s x{b['tokens_per_s'] / s['tokens_per_s']:.2f}, "
          f"p50 latency x{b['p50'] / s['p50']:.2f}, p95 latency x{b['p95'] / s['p95']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
