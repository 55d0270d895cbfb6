"""Batching: requests queue per loaded model; the waiting ones go through one ``generate`` call.

One worker thread per :class:`~dpokit.serve.registry.ModelGroup` (one set of weights; its
LoRA adapters are switched per batch, so they cannot run at the same time anyway). The
worker takes the oldest waiting request and every other waiting request with the same
*batch key* (adapter, sampling settings, penalties), up to ``max_batch_rows`` rows (a
request with ``n`` choices is ``n`` rows), left-pads their prompts
(:func:`dpokit.generate.left_pad`) and runs one ``model.generate`` with
:func:`dpokit.generate.generation_config`. Rows may ask for different ``max_tokens`` and
``stop`` strings: ``generate`` runs to the largest ``max_tokens`` and a per-row stopping
criterion finishes each row on its own. A request with a ``seed`` runs in a batch of its
own, after ``torch.manual_seed(seed)``, so the same request gives the same answer. (One
caveat: two models sampling at the same moment share torch's global generator.)

Streaming is step-wise: :class:`~dpokit.serve.rows.RowTracker`, the stopping criterion, is called after every
step with the new token of each row; it decodes it incrementally, holds back text that might
be the start of a stop string, and sends each request's text to its asyncio queue with
``loop.call_soon_threadsafe``. A streaming and a non-streaming request batch together: the
non-streaming one just waits for its last event. A client that goes away cancels its rows
(they stop at the next step; a non-streaming request's handler checks every
:data:`~dpokit.serve.app.DISCONNECT_POLL_S`); the others go on. Requests arriving while a batch runs wait
for the next batch (no joining mid-generation).

``completion_tokens`` counts the tokens the model generated for a choice, an end-of-turn
token it stopped on included (as vLLM does).
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Optional, Sequence

from dpokit.generate import generation_config, left_pad, model_device
from dpokit.serve.jobs import (FINISH_CANCELLED, FINISH_LENGTH, ChoiceDone, GenerationFailed,
                               GenerationParams, Job, JobFailed, ServerClosing)
from dpokit.serve.rows import PresencePenalty, Row, RowTracker

# ---------------------------------------------------------------- the worker


@dataclass
class WorkerStats:
    batches: int = 0
    rows: int = 0
    largest_batch: int = 0
    failures: int = 0


class ModelWorker:
    """The queue and the thread of one set of loaded weights."""

    def __init__(self, group, *, max_batch_rows: int = 16, batch_wait_s: float = 0.01,
                 torch_threads: Optional[int] = None):
        self.group = group
        self.max_batch_rows = max(1, max_batch_rows)
        self.batch_wait_s = max(0.0, batch_wait_s)
        self.torch_threads = torch_threads
        self.stats = WorkerStats()
        self._jobs: deque[Job] = deque()
        self._cond = threading.Condition()
        self._closing = False
        self._running: list[Job] = []
        self._thread = threading.Thread(target=self._loop, name=f"dpokit-serve-{id(group):x}", daemon=True)
        self._thread.start()

    @property
    def queued(self) -> int:
        with self._cond:
            return len(self._jobs)

    def submit(self, job: Job) -> None:
        with self._cond:
            if self._closing:
                raise ServerClosing("the server is shutting down")
            self._jobs.append(job)
            self._cond.notify()

    def close(self, timeout: float = 30.0) -> None:
        """Refuse new work, answer the queued requests 503, let the running batch finish (then cancel it)."""
        with self._cond:
            self._closing = True
            waiting = list(self._jobs)
            self._jobs.clear()
            self._cond.notify_all()
        for job in waiting:
            job.emit(JobFailed(ServerClosing("the server is shutting down")))
        self._thread.join(timeout)
        if self._thread.is_alive():
            for job in list(self._running):
                job.cancel()
            self._thread.join(5.0)

    # -- worker thread

    def _loop(self) -> None:
        if self.torch_threads:
            import torch

            torch.set_num_threads(self.torch_threads)
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            self._running = batch
            try:
                self._generate(batch)
            finally:
                self._running = []

    def _take(self) -> list[Job]:
        """The oldest job and the waiting jobs that can share its batch (called with the lock held)."""
        first = self._jobs[0]
        batch, rows = [], 0
        for job in list(self._jobs):
            if job.key == first.key and (not batch or rows + job.rows <= self.max_batch_rows):
                batch.append(job)
                rows += job.rows
                self._jobs.remove(job)
        return batch

    def _next_batch(self) -> Optional[list[Job]]:
        with self._cond:
            while True:
                while not self._jobs and not self._closing:
                    self._cond.wait()
                if self._closing:
                    return None
                for job in [j for j in self._jobs if j.cancelled.is_set()]:
                    self._jobs.remove(job)
                    for i in range(job.rows):
                        job.emit(ChoiceDone(i, FINISH_CANCELLED, 0))
                if not self._jobs:
                    continue
                # A short wait lets requests sent at the same moment share the first batch.
                deadline = self._jobs[0].enqueued_at + self.batch_wait_s
                while (self._jobs and not self._closing and time.monotonic() < deadline
                       and sum(j.rows for j in self._jobs) < self.max_batch_rows):
                    self._cond.wait(max(0.0, deadline - time.monotonic()))
                if self._closing:
                    return None
                if self._jobs:
                    return self._take()

    def _generate(self, batch: list[Job]) -> None:
        import contextlib

        import torch
        from transformers import LogitsProcessorList, StoppingCriteriaList

        first = batch[0]
        served = first.served
        model = self.group.model
        tokenizer = served.tokenizer
        params = first.params
        rows_total = sum(j.rows for j in batch)
        self.stats.batches += 1
        self.stats.rows += rows_total
        self.stats.largest_batch = max(self.stats.largest_batch, rows_total)
        try:
            settings = dataclasses.replace(params.settings,
                                           max_new_tokens=max(j.params.settings.max_new_tokens for j in batch))
            gen_cfg = generation_config(model, tokenizer, settings)
            eos = gen_cfg.eos_token_id
            eos_ids = set(eos if isinstance(eos, (list, tuple)) else [eos] if eos is not None else [])
            rows = [Row(job, i, eos_ids) for job in batch for i in range(job.rows)]
            input_ids, attention_mask = left_pad([r.prompt_ids for r in rows], gen_cfg.pad_token_id)
            processors = LogitsProcessorList()
            if params.presence_penalty or params.frequency_penalty:
                processors.append(PresencePenalty(input_ids.shape[1], params.presence_penalty,
                                                  params.frequency_penalty))
            if self.group.is_peft and served.adapter is None:
                adapter_scope = model.disable_adapter()
            else:
                if self.group.is_peft and model.active_adapter != served.adapter:
                    model.set_adapter(served.adapter)
                adapter_scope = contextlib.nullcontext()
            if params.seed is not None:
                torch.manual_seed(params.seed)
            device = model_device(model)
            tracker = RowTracker(rows)
            with adapter_scope, torch.inference_mode():
                model.generate(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device),
                               generation_config=gen_cfg, stopping_criteria=StoppingCriteriaList([tracker]),
                               logits_processor=processors)
            for row in rows:
                row.finish(FINISH_LENGTH)
        except Exception as err:  # answered 500 to this batch's requests; the worker goes on
            self.stats.failures += 1
            failure = GenerationFailed(f"{type(err).__name__}: {err}".splitlines()[0][:500])
            for job in batch:
                job.emit(JobFailed(failure))


class Scheduler:
    """One :class:`ModelWorker` per loaded model group."""

    def __init__(self, registry, *, max_batch_rows: int = 16, batch_wait_s: float = 0.01,
                 torch_threads: Optional[int] = None):
        self.registry = registry
        self.workers = {id(g): ModelWorker(g, max_batch_rows=max_batch_rows, batch_wait_s=batch_wait_s,
                                           torch_threads=torch_threads) for g in registry.groups}

    def worker_for(self, served) -> ModelWorker:
        return self.workers[id(served.group)]

    def submit(self, served, prompts: Sequence[Sequence[int]], params: GenerationParams) -> Job:
        """Queue a request (one or more prompts' ids); call it on the event loop that reads its events."""
        job = Job(served, prompts, params, asyncio.get_running_loop())
        self.worker_for(served).submit(job)
        return job

    @property
    def queued(self) -> int:
        return sum(w.queued for w in self.workers.values())

    def stats(self) -> dict[str, Any]:
        total = WorkerStats()
        for w in self.workers.values():
            total.batches += w.stats.batches
            total.rows += w.stats.rows
            total.largest_batch = max(total.largest_batch, w.stats.largest_batch)
            total.failures += w.stats.failures
        return dataclasses.asdict(total)

    def close(self, timeout: float = 30.0) -> None:
        for worker in self.workers.values():
            worker.close(timeout)
