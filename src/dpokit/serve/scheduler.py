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

Streaming is step-wise: :class:`RowTracker`, the stopping criterion, is called after every
step with the new token of each row; it decodes it incrementally, holds back text that might
be the start of a stop string, and sends each request's text to its asyncio queue with
``loop.call_soon_threadsafe``. A streaming and a non-streaming request batch together: the
non-streaming one just waits for its last event. A client that goes away cancels its rows
(they stop at the next step); the others go on. Requests arriving while a batch runs wait
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
from typing import Any, AsyncIterator, Optional, Sequence, Union

from transformers import LogitsProcessor, StoppingCriteria

from dpokit.generate import SamplingSettings, generation_config, left_pad, model_device

FINISH_STOP = "stop"
FINISH_LENGTH = "length"
FINISH_CANCELLED = "cancelled"


@dataclass(frozen=True)
class GenerationParams:
    """What a request asks of the sampler. ``settings.max_new_tokens`` is the request's ``max_tokens``."""

    settings: SamplingSettings
    n: int = 1
    stop: tuple[str, ...] = ()
    seed: Optional[int] = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0

    def batch_key(self) -> tuple:
        """Requests with equal keys can share a ``generate`` call (max_tokens, n and stop are per row)."""
        return (dataclasses.replace(self.settings, max_new_tokens=1), self.presence_penalty, self.frequency_penalty)


# ---------------------------------------------------------------- events a request receives


@dataclass
class TextDelta:
    index: int
    text: str


@dataclass
class ChoiceDone:
    index: int
    finish_reason: str
    completion_tokens: int


@dataclass
class JobFailed:
    error: BaseException


Event = Union[TextDelta, ChoiceDone, JobFailed]


@dataclass
class Choice:
    text: str
    finish_reason: str
    completion_tokens: int


class GenerationFailed(Exception):
    """Generation raised inside the worker; the server answers 500 and goes on."""


class ServerClosing(Exception):
    """The server is shutting down; queued requests are answered 503."""


class Job:
    """One request in the queue: its prompts' ids (``[P_i]`` each), its params, and a queue of events.

    A request has ``len(prompts) * n`` choices; choice ``i * n + j`` is the ``j``-th answer
    to prompt ``i`` (OpenAI's order for a list of prompts).
    """

    def __init__(self, served, prompts: Sequence[Sequence[int]], params: GenerationParams,
                 loop: asyncio.AbstractEventLoop):
        self.served = served
        self.prompts = [list(p) for p in prompts]
        self.params = params
        self.loop = loop
        self.events: asyncio.Queue[Event] = asyncio.Queue()
        self.cancelled = threading.Event()
        self.enqueued_at = time.monotonic()
        seeded = params.seed is not None
        self.key = (served.adapter, params.batch_key(), id(self) if seeded else None)

    @property
    def rows(self) -> int:
        return len(self.prompts) * self.params.n

    @property
    def prompt_tokens(self) -> int:
        return sum(len(p) for p in self.prompts)

    def emit(self, event: Event) -> None:
        """Called from the worker thread."""
        try:
            self.loop.call_soon_threadsafe(self.events.put_nowait, event)
        except RuntimeError:  # the event loop is closed (server gone): nobody is listening
            pass

    def cancel(self) -> None:
        self.cancelled.set()

    async def stream(self) -> AsyncIterator[Event]:
        """Text deltas and choice ends until every choice has ended; a failure raises."""
        remaining = self.rows
        while remaining:
            event = await self.events.get()
            if isinstance(event, JobFailed):
                raise event.error
            if isinstance(event, ChoiceDone):
                remaining -= 1
            yield event

    async def result(self) -> list[Choice]:
        """Every choice, in index order, once generation has finished."""
        texts = [[] for _ in range(self.rows)]
        choices: list[Optional[Choice]] = [None] * self.rows
        async for event in self.stream():
            if isinstance(event, TextDelta):
                texts[event.index].append(event.text)
            else:
                choices[event.index] = Choice("".join(texts[event.index]), event.finish_reason,
                                              event.completion_tokens)
        return [c for c in choices if c is not None]


# ---------------------------------------------------------------- per-row decoding and stopping


class IncrementalDecoder:
    """Token ids -> text, a piece per step, never cutting a multi-byte character in half.

    Decodes a short window around the new tokens (as text-generation-inference does) instead
    of the whole answer each step; a window ending in U+FFFD waits for the next token.
    """

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.prefix_offset = 0
        self.read_offset = 0

    def step(self, ids: list[int]) -> str:
        decode = self.tokenizer.decode
        prefix_text = decode(ids[self.prefix_offset:self.read_offset], skip_special_tokens=True)
        new_text = decode(ids[self.prefix_offset:], skip_special_tokens=True)
        if len(new_text) > len(prefix_text) and not new_text.endswith("\ufffd"):
            self.prefix_offset, self.read_offset = self.read_offset, len(ids)
            return new_text[len(prefix_text):]
        return ""

    def rest(self, ids: list[int]) -> str:
        """What is still undecoded at the end (an incomplete character is decoded as it is)."""
        prefix_text = self.tokenizer.decode(ids[self.prefix_offset:self.read_offset], skip_special_tokens=True)
        new_text = self.tokenizer.decode(ids[self.prefix_offset:], skip_special_tokens=True)
        return new_text[len(prefix_text):] if len(new_text) > len(prefix_text) else ""


def _held_back(text: str, stops: Sequence[str]) -> int:
    """How many characters at the end of ``text`` could be the start of a stop string."""
    longest = 0
    for stop in stops:
        for k in range(min(len(stop) - 1, len(text)), longest, -1):
            if text.endswith(stop[:k]):
                longest = k
                break
    return longest


class Row:
    """One choice of one request while it is generated."""

    def __init__(self, job: Job, index: int, eos_ids: set[int]):
        self.job = job
        self.index = index
        self.prompt_ids = job.prompts[index // job.params.n]
        self.eos_ids = eos_ids
        self.ids: list[int] = []
        self.generated = 0
        self.text = ""
        self.sent = 0
        self.done = False
        self.decoder = IncrementalDecoder(job.served.tokenizer)
        self.max_tokens = job.params.settings.max_new_tokens
        self.stops = job.params.stop

    def add(self, token: int) -> None:
        self.generated += 1
        if token in self.eos_ids:
            self.finish(FINISH_STOP)
            return
        self.ids.append(token)
        self.text += self.decoder.step(self.ids)
        if self._check_stops():
            return
        if self.generated >= self.max_tokens:
            self.finish(FINISH_LENGTH)
            return
        self._send(len(self.text) - _held_back(self.text, self.stops))

    def _check_stops(self) -> bool:
        if not self.stops:
            return False
        hits = [p for p in (self.text.find(s, max(0, self.sent - len(s))) for s in self.stops) if p >= 0]
        if not hits:
            return False
        self.text = self.text[:min(hits)]
        self.finish(FINISH_STOP, flush_decoder=False)
        return True

    def _send(self, upto: int) -> None:
        if upto > self.sent:
            self.job.emit(TextDelta(self.index, self.text[self.sent:upto]))
            self.sent = upto

    def finish(self, reason: str, flush_decoder: bool = True) -> None:
        if self.done:
            return
        self.done = True
        if flush_decoder:
            self.text += self.decoder.rest(self.ids)
            if self.stops and self._stop_in_rest():
                reason = FINISH_STOP
        if reason != FINISH_CANCELLED:
            self._send(len(self.text))
        self.job.emit(ChoiceDone(self.index, reason, self.generated))

    def _stop_in_rest(self) -> bool:
        hits = [p for p in (self.text.find(s, max(0, self.sent - len(s))) for s in self.stops) if p >= 0]
        if hits:
            self.text = self.text[:min(hits)]
        return bool(hits)


class RowTracker(StoppingCriteria):
    """The per-row stopping criterion (``transformers`` calls it after every step with ``input_ids [B, T]``).

    Returns a bool tensor ``[B]``: True for rows that are finished (end-of-turn token, their
    own ``max_tokens``, a stop string, or a cancelled request).
    """

    def __init__(self, rows: list[Row]):
        self.rows = rows

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        last = input_ids[:, -1].tolist()
        for row, token in zip(self.rows, last):
            if row.done:
                continue
            if row.job.cancelled.is_set():
                row.finish(FINISH_CANCELLED)
                continue
            row.add(token)
        return torch.tensor([row.done for row in self.rows], dtype=torch.bool, device=input_ids.device)


class PresencePenalty(LogitsProcessor):
    """OpenAI's ``presence_penalty`` and ``frequency_penalty`` as a logits processor.

    ``logits[b, v] -= frequency * count[b, v] + presence * (count[b, v] > 0)``, counting token
    ``v`` in row ``b``'s generated part (``input_ids[:, prompt_width:]``); ``scores`` is ``[B, V]``.
    """

    def __init__(self, prompt_width: int, presence: float, frequency: float):
        self.prompt_width = prompt_width
        self.presence = presence
        self.frequency = frequency

    def __call__(self, input_ids, scores):
        import torch

        generated = input_ids[:, self.prompt_width:]
        if generated.shape[1] == 0:
            return scores
        counts = torch.zeros_like(scores).scatter_add_(1, generated, torch.ones_like(generated, dtype=scores.dtype))
        return scores - self.frequency * counts - self.presence * (counts > 0).to(scores.dtype)


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
