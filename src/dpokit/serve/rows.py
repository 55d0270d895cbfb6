"""Per-row decoding and stopping inside one batched ``generate``: incremental detokenising, stop
strings held back until they cannot start, per-row ``max_tokens``, and OpenAI's presence and
frequency penalties (a logits processor)."""

from __future__ import annotations

from typing import Sequence

from transformers import LogitsProcessor, StoppingCriteria

from dpokit.serve.jobs import FINISH_CANCELLED, FINISH_LENGTH, FINISH_STOP, ChoiceDone, Job, TextDelta

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
