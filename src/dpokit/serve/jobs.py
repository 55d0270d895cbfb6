"""A request as the scheduler sees it: its generation parameters, the events it receives, its job."""

from __future__ import annotations

import asyncio
import threading
import time
import dataclasses
from dataclasses import dataclass
from typing import AsyncIterator, Optional, Sequence, Union

from dpokit.generate import SamplingSettings

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
