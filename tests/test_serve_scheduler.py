"""The batching scheduler's parts: incremental decoding, stop strings, per-row stopping, penalties, batch keys."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from dpokit.generate import SamplingSettings
from dpokit.serve.jobs import ChoiceDone, GenerationParams, TextDelta
from dpokit.serve.rows import IncrementalDecoder, PresencePenalty, Row, RowTracker, _held_back


class FakeJob:
    """What a Row needs of a Job, recording the events it is sent."""

    def __init__(self, tokenizer, prompts=((1, 2, 3),), n=1, max_tokens=50, stop=(), seed=None):
        self.served = type("Served", (), {"tokenizer": tokenizer, "adapter": None})()
        self.prompts = [list(p) for p in prompts]
        self.params = GenerationParams(SamplingSettings(max_new_tokens=max_tokens), n=n, stop=tuple(stop), seed=seed)
        self.events = []
        self.cancelled = type("Flag", (), {"is_set": lambda self: False})()

    @property
    def rows(self):
        return len(self.prompts) * self.params.n

    def emit(self, event):
        self.events.append(event)

    def text(self, index=0):
        return "".join(e.text for e in self.events if isinstance(e, TextDelta) and e.index == index)

    def done(self, index=0):
        return [e for e in self.events if isinstance(e, ChoiceDone) and e.index == index]


def feed(row, ids):
    for token in ids:
        if row.done:
            break
        row.add(token)


def test_incremental_decoding_never_splits_a_character(tokenizer):
    text = "Café 🙂 naïve — 漢字 done."
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    decoder = IncrementalDecoder(tokenizer)
    pieces = []
    for k in range(1, len(ids) + 1):
        piece = decoder.step(ids[:k])
        assert "\ufffd" not in piece
        pieces.append(piece)
    pieces.append(decoder.rest(ids))
    assert "".join(pieces) == tokenizer.decode(ids) == text
    assert sum(1 for p in pieces if p) > 3  # it really streams


def test_held_back_text_is_a_possible_stop_start():
    assert _held_back("hello wor", ["world"]) == 3
    assert _held_back("hello", ["world"]) == 0
    assert _held_back("abc\n\nUs", ["\n\nUser:", "###"]) == 4
    assert _held_back("x#", ["###"]) == 1


def test_row_stops_at_a_stop_string_and_never_streams_it(tokenizer):
    text = "The answer is 42. END more text after"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    job = FakeJob(tokenizer, stop=["END"])
    row = Row(job, 0, eos_ids={tokenizer.eos_token_id})
    feed(row, ids)
    assert row.done and job.text() == "The answer is 42. "
    (done,) = job.done()
    assert done.finish_reason == "stop" and done.completion_tokens < len(ids)


def test_row_finishes_on_eos_and_on_its_own_max_tokens(tokenizer):
    ids = tokenizer("one two three four five", add_special_tokens=False)["input_ids"]
    job = FakeJob(tokenizer, max_tokens=100)
    row = Row(job, 0, eos_ids={tokenizer.eos_token_id})
    feed(row, ids[:2] + [tokenizer.eos_token_id] + ids[2:])
    assert job.text() == tokenizer.decode(ids[:2])
    assert [(d.finish_reason, d.completion_tokens) for d in job.done()] == [("stop", 3)]

    job = FakeJob(tokenizer, max_tokens=3)
    row = Row(job, 0, eos_ids={tokenizer.eos_token_id})
    feed(row, ids)
    assert job.text() == tokenizer.decode(ids[:3])
    assert [(d.finish_reason, d.completion_tokens) for d in job.done()] == [("length", 3)]


def test_tracker_marks_rows_done_and_ignores_padding_after(tokenizer):
    ids = tokenizer("alpha beta gamma", add_special_tokens=False)["input_ids"]
    short = FakeJob(tokenizer, max_tokens=1)
    long = FakeJob(tokenizer, prompts=[(5,), (6,)], max_tokens=3)
    rows = [Row(short, 0, set()), Row(long, 0, set()), Row(long, 1, set())]
    tracker = RowTracker(rows)
    sequence = torch.zeros(3, 4, dtype=torch.long)
    finished = []
    for token in ids[:3]:
        sequence = torch.cat([sequence, torch.full((3, 1), token)], dim=1)
        finished.append(tracker(sequence, None).tolist())
    assert finished == [[True, False, False], [True, False, False], [True, True, True]]
    assert short.text() == tokenizer.decode(ids[:1])  # tokens after its end were not added
    assert long.text(0) == long.text(1) == tokenizer.decode(ids[:3])


def test_presence_and_frequency_penalty():
    scores = torch.zeros(2, 6)
    input_ids = torch.tensor([[9, 9, 1, 1, 2], [9, 9, 3, 3, 3]])  # prompt width 2
    out = PresencePenalty(2, presence=0.5, frequency=0.25)(input_ids, scores)
    expected = torch.zeros(2, 6)
    expected[0, 1] = -(0.5 + 2 * 0.25)
    expected[0, 2] = -(0.5 + 1 * 0.25)
    expected[1, 3] = -(0.5 + 3 * 0.25)
    assert torch.equal(out, expected)
    assert torch.equal(PresencePenalty(5, 1.0, 1.0)(input_ids, scores), scores)  # nothing generated yet


def test_batch_keys():
    greedy = GenerationParams(SamplingSettings(max_new_tokens=5, do_sample=False))
    longer = dataclasses.replace(greedy, settings=SamplingSettings(max_new_tokens=50, do_sample=False), n=3,
                                 stop=("x",))
    sampled = GenerationParams(SamplingSettings(max_new_tokens=5, temperature=0.9))
    penalised = dataclasses.replace(greedy, presence_penalty=1.0)
    assert greedy.batch_key() == longer.batch_key()  # max_tokens, n and stop are per row
    assert greedy.batch_key() != sampled.batch_key()
    assert greedy.batch_key() != penalised.batch_key()


@pytest.mark.usefixtures("one_torch_thread")
def test_worker_batches_waiting_jobs_and_keeps_seeded_ones_alone(tokenizer):
    import asyncio

    from dpokit.serve.jobs import Job
    from dpokit.serve.scheduler import ModelWorker

    class Group:  # a worker that is never given a model: only its queue is used
        model = None
        is_peft = False

    worker = ModelWorker(Group(), max_batch_rows=4, batch_wait_s=0)
    worker.close()  # stop the thread; _take is called directly below
    loop = asyncio.new_event_loop()
    served = type("Served", (), {"adapter": None, "tokenizer": tokenizer})()
    other_adapter = type("Served", (), {"adapter": "a", "tokenizer": tokenizer})()
    plain = GenerationParams(SamplingSettings(max_new_tokens=4))
    jobs = [Job(served, [[1]], plain, loop), Job(served, [[1]], dataclasses.replace(plain, seed=1), loop),
            Job(other_adapter, [[1]], plain, loop), Job(served, [[1, 2]], dataclasses.replace(plain, n=2), loop),
            Job(served, [[1]], dataclasses.replace(plain, n=2), loop)]
    worker._jobs.extend(jobs)
    first = worker._take()
    assert first == [jobs[0], jobs[3]]  # same key, up to 4 rows (jobs[4] would make 5)
    assert worker._take() == [jobs[1]]  # seeded: alone
    assert worker._take() == [jobs[2]]  # another adapter
    assert worker._take() == [jobs[4]]
    loop.close()
