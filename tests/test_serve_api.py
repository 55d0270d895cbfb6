"""`dpokit serve`'s OpenAI-compatible API on the tiny model: endpoints, fields, streaming, errors,
API key, CORS, prompt rendering equal to training's, LoRA adapters sharing one base, a bounded load test.

One live server (uvicorn on 127.0.0.1 in a thread) serves four names from ONE set of weights:
``base`` (the tiny Llama, adapters disabled), ``tuned`` and ``other`` (two LoRA runs with
different weights) and ``sys`` (a LoRA run trained with ``data.system_prompt``).
"""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
import torch

from serve_support import LiveServer, build_state, copy_run, sse_events

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SYSTEM_PROMPT = "You are a terse assistant. Answer in one line."
HELLO = [{"role": "user", "content": "Say hello to the test suite."}]
MAX_BODY = 64 * 1024


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_lora_run):
    root = tmp_path_factory.mktemp("serve-runs")
    return {
        "tuned": tiny_lora_run,
        "other": copy_run(tiny_lora_run, root / "other-run", perturb_seed=7),
        "sys": copy_run(tiny_lora_run, root / "sys-run", system_prompt=SYSTEM_PROMPT),
    }


@pytest.fixture(scope="module")
def live(runs, tiny_model_dir, one_torch_thread):
    named = [f"base={tiny_model_dir}"] + [f"{name}={path}" for name, path in runs.items()]
    state = build_state(named=named, labels_dir=None, max_body_bytes=MAX_BODY, max_tokens=16, batch_wait_ms=20)
    with LiveServer(state) as server:
        yield server


@pytest.fixture()
def client(live):
    with httpx.Client(base_url=live.url, timeout=60) as c:
        yield c


def chat(client, model="tuned", messages=HELLO, **fields):
    return client.post("/v1/chat/completions", json={"model": model, "messages": messages, **fields})


def standalone_greedy(ref, messages, max_new_tokens):
    """What a separately loaded copy of ``ref`` generates greedily: (prompt ids, new ids, tokenizer)."""
    from dpokit.generate import SamplingSettings, generation_config
    from dpokit.render import Renderer
    from dpokit.runs import load_for_inference

    model, tokenizer, info = load_for_inference(str(ref))
    ids = Renderer.for_run(tokenizer, info).prompt_ids(messages)
    cfg = generation_config(model, tokenizer, SamplingSettings(max_new_tokens=max_new_tokens, do_sample=False))
    with torch.inference_mode():
        out = model.generate(input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                             generation_config=cfg)
    new = out[0, len(ids):].tolist()
    eos = set(cfg.eos_token_id)
    for i, token in enumerate(new):
        if token in eos:
            new = new[:i + 1]
            break
    return ids, new, tokenizer


# ---------------------------------------------------------------- endpoints and fields


def test_health_and_models(client):
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["models"] == ["base", "tuned", "other", "sys"]
    models = client.get("/v1/models").json()
    assert models["object"] == "list"
    cards = {m["id"]: m for m in models["data"]}
    assert list(cards) == ["base", "tuned", "other", "sys"]
    assert all(m["object"] == "model" and m["owned_by"] == "dpokit" for m in cards.values())
    assert cards["tuned"]["parent"] == "base" and "parent" not in cards["base"]
    assert cards["base"]["max_model_len"] == 2048
    assert client.get("/v1/models/other").json()["id"] == "other"
    missing = client.get("/v1/models/nope")
    assert missing.status_code == 404 and "base, tuned, other, sys" in missing.json()["error"]["message"]


def test_chat_completion_fields_and_usage_equal_the_tokenizers_counts(client, runs):
    ids, new, tokenizer = standalone_greedy(runs["tuned"], HELLO, 6)
    body = chat(client, temperature=0, max_tokens=6).json()
    assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-") and body["model"] == "tuned"
    assert isinstance(body["created"], int)
    (choice,) = body["choices"]
    assert choice["index"] == 0 and choice["message"]["role"] == "assistant"
    assert choice["finish_reason"] == ("stop" if len(new) < 6 else "length")
    assert choice["message"]["content"] == tokenizer.decode(new, skip_special_tokens=True)
    assert body["usage"] == {"prompt_tokens": len(ids), "completion_tokens": len(new),
                             "total_tokens": len(ids) + len(new)}


def test_max_completion_tokens_wins_over_max_tokens(client):
    body = chat(client, temperature=0, max_tokens=9, max_completion_tokens=3).json()
    assert body["usage"]["completion_tokens"] == 3 and body["choices"][0]["finish_reason"] == "length"


def test_stop_string_cuts_the_answer(client):
    full = chat(client, temperature=0, max_tokens=12).json()["choices"][0]["message"]["content"]
    words = full.split()
    assert len(words) >= 3, full
    stop = words[2]
    cut = chat(client, temperature=0, max_tokens=12, stop=[stop]).json()["choices"][0]
    assert cut["finish_reason"] == "stop"
    assert cut["message"]["content"] == full[:full.index(stop)]


def test_n_choices_and_seed(client):
    first = chat(client, temperature=1.0, max_tokens=5, n=3, seed=123).json()
    assert [c["index"] for c in first["choices"]] == [0, 1, 2]
    assert first["usage"]["completion_tokens"] == 15
    again = chat(client, temperature=1.0, max_tokens=5, n=3, seed=123).json()
    assert [c["message"]["content"] for c in again["choices"]] == [c["message"]["content"] for c in first["choices"]]


def test_penalties_are_applied(client, live, monkeypatch):
    from dpokit.serve.rows import PresencePenalty

    model = live.state.registry.get("tuned").model
    processors = []
    original = model.generate

    def spy(*args, **kwargs):
        processors.extend(kwargs["logits_processor"])
        return original(*args, **kwargs)

    monkeypatch.setattr(model, "generate", spy)
    response = chat(client, temperature=0, max_tokens=4, presence_penalty=1.5, frequency_penalty=0.5)
    assert response.status_code == 200
    (penalty,) = processors
    assert isinstance(penalty, PresencePenalty) and (penalty.presence, penalty.frequency) == (1.5, 0.5)
    processors.clear()
    chat(client, temperature=0, max_tokens=4)
    assert processors == []  # no penalty asked, none applied


def test_text_completions_with_a_list_of_prompts(client, tokenizer):
    body = client.post("/v1/completions", json={"model": "base", "prompt": ["Hello world", "The sky is"],
                                                "max_tokens": 3, "n": 2, "temperature": 0}).json()
    assert body["object"] == "text_completion" and body["id"].startswith("cmpl-")
    assert [c["index"] for c in body["choices"]] == [0, 1, 2, 3]
    assert body["choices"][0]["text"] == body["choices"][1]["text"]  # greedy: the same answer twice
    prompt_tokens = len(tokenizer("Hello world")["input_ids"]) + len(tokenizer("The sky is")["input_ids"])
    assert body["usage"]["prompt_tokens"] == prompt_tokens and body["usage"]["completion_tokens"] == 12


# ---------------------------------------------------------------- streaming


def test_stream_chunks_are_well_formed_and_match_the_full_answer(client):
    full = chat(client, temperature=0, max_tokens=8).json()
    raw = ""
    with client.stream("POST", "/v1/chat/completions", json={
            "model": "tuned", "messages": HELLO, "temperature": 0, "max_tokens": 8, "stream": True,
            "stream_options": {"include_usage": True}}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for text in response.iter_text():
            raw += text
    events = sse_events(raw)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == chunks[0]["id"] for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    content = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert content == full["choices"][0]["message"]["content"]
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert finishes == [full["choices"][0]["finish_reason"]]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == full["usage"]


def test_text_completion_stream(client):
    raw = client.post("/v1/completions", json={"model": "base", "prompt": "Once", "max_tokens": 4,
                                               "temperature": 0, "stream": True}).text
    events = sse_events(raw)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "text_completion" for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"


def test_a_client_that_goes_away_stops_its_generation(live, monkeypatch):
    model = live.state.registry.get("base").model
    generated = []
    original = model.generate

    def spy(*args, **kwargs):
        out = original(*args, **kwargs)
        generated.append(out.shape[1] - kwargs["input_ids"].shape[1])
        return out

    monkeypatch.setattr(model, "generate", spy)
    body = {"model": "base", "messages": HELLO, "max_tokens": 2000, "temperature": 0, "stream": True}
    with httpx.Client(base_url=live.url, timeout=60) as client:
        with client.stream("POST", "/v1/chat/completions", json=body) as response:
            lines = response.iter_lines()
            assert next(lines).startswith("data: ")
            next(lines)
            next(lines)  # some text has arrived; now hang up
    deadline = time.monotonic() + 60
    while not generated and time.monotonic() < deadline:
        time.sleep(0.05)
    assert generated and generated[0] < 2000


# ---------------------------------------------------------------- the official client


def test_openai_client_works_unchanged(live):
    import openai
    client = openai.OpenAI(base_url=live.url + "/v1", api_key="unused", max_retries=0)
    assert [m.id for m in client.models.list()] == ["base", "tuned", "other", "sys"]
    reply = client.chat.completions.create(model="tuned", messages=HELLO, max_tokens=5, temperature=0)
    assert reply.choices[0].finish_reason in ("stop", "length") and reply.usage.completion_tokens <= 5
    stream = client.chat.completions.create(model="tuned", messages=HELLO, max_tokens=5, temperature=0, stream=True)
    pieces = [c.choices[0].delta.content or "" for c in stream if c.choices]
    assert "".join(pieces) == reply.choices[0].message.content
    text = client.completions.create(model="base", prompt="Hello", max_tokens=3, temperature=0)
    assert text.choices[0].finish_reason == "length" and text.usage.completion_tokens == 3
    with pytest.raises(openai.NotFoundError, match="Served models"):
        client.chat.completions.create(model="nope", messages=HELLO)


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize("body, status, param, code", [
    ({"model": "tuned"}, 400, "messages", "missing_required_parameter"),
    ({"model": "tuned", "messages": []}, 400, "messages", "invalid_value"),
    ({"messages": HELLO}, 400, "model", "missing_required_parameter"),
    ({"model": "nope", "messages": HELLO}, 404, "model", "model_not_found"),
    ({"model": "tuned", "messages": HELLO, "temperature": 2.5}, 400, "temperature", "invalid_value"),
    ({"model": "tuned", "messages": HELLO, "top_p": 0}, 400, "top_p", "invalid_value"),
    ({"model": "tuned", "messages": HELLO, "max_tokens": 0}, 400, "max_tokens", "invalid_value"),
    ({"model": "tuned", "messages": HELLO, "n": 0}, 400, "n", "invalid_value"),
    ({"model": "tuned", "messages": HELLO, "presence_penalty": 3}, 400, "presence_penalty", "invalid_value"),
    ({"model": "tuned", "messages": HELLO, "stop": ["a", "b", "c", "d", "e"]}, 400, "stop", "invalid_value"),
    ({"model": "tuned", "messages": [{"role": "tool", "content": "x"}]}, 400, "messages.0.role", "invalid_value"),
    ({"model": "tuned", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, 400,
     "messages.0.content.0", "unsupported_content"),
    ({"model": "tuned", "messages": HELLO, "logprobs": True}, 400, "logprobs", "unsupported_parameter"),
    ({"model": "tuned", "messages": HELLO, "tools": [{"type": "function"}]}, 400, "tools", "unsupported_parameter"),
    ({"model": "tuned", "messages": HELLO, "max_tokens": 2040}, 400, "max_tokens", "context_length_exceeded"),
])
def test_errors_have_openais_shape_and_status(client, body, status, param, code):
    response = client.post("/v1/chat/completions", json=body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error" and error["param"] == param and error["code"] == code
    assert error["message"]


def test_malformed_json_and_non_object_bodies(client):
    for raw in (b'{"model": "tuned", "messages": [', b"[1, 2]", b"\xff\xfe"):
        response = client.post("/v1/chat/completions", content=raw, headers={"content-type": "application/json"})
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "invalid_json"


def test_prompt_longer_than_the_context(client):
    long = [{"role": "user", "content": "word " * 2100}]  # about 2,100 tokens: over the tiny model's 2,048
    error = chat(client, messages=long).json()["error"]
    assert error["code"] == "context_length_exceeded" and "2048" in error["message"]


def test_body_over_the_size_limit(client):
    big = {"model": "tuned", "messages": [{"role": "user", "content": "x" * (MAX_BODY + 10)}]}
    response = client.post("/v1/chat/completions", json=big)
    assert response.status_code == 413 and response.json()["error"]["code"] == "request_too_large"

    def chunks():  # no Content-Length: the limit is enforced while reading
        yield json.dumps(big).encode()

    response = client.post("/v1/chat/completions", content=chunks())
    assert response.status_code == 413 and response.json()["error"]["code"] == "request_too_large"
    for path in ("/api/label/prompts", "/api/label/decisions"):  # the page's API: the same limit, the same error
        response = client.post(path, content=chunks())
        assert response.status_code == 413 and response.json()["error"]["code"] == "request_too_large", path


def test_unknown_url_and_page_api_validation_use_the_same_shape(client):
    missing = client.get("/v1/nothing")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "unknown_url"
    labels_off = client.get("/api/label/queue")  # this server has no label store
    assert labels_off.status_code == 404 and labels_off.json()["error"]["code"] == "labels_off"
    invalid = client.post("/api/label/prompts", json={})  # FastAPI's own validation: 422 -> OpenAI's 400
    assert invalid.status_code == 400 and invalid.json()["error"]["param"] == "prompt"


def test_a_failure_inside_generation_is_a_500_and_the_server_goes_on(client, live, monkeypatch):
    model = live.state.registry.get("tuned").model
    calls = {"n": 0}
    original = model.generate

    def failing(*args, **kwargs):
        calls["n"] += 1
        raise RuntimeError("simulated failure in generate")

    monkeypatch.setattr(model, "generate", failing)
    response = chat(client, max_tokens=3)
    assert response.status_code == 500
    error = response.json()["error"]
    assert error["type"] == "server_error" and "simulated failure" in error["message"]
    raw = client.post("/v1/chat/completions", json={"model": "tuned", "messages": HELLO, "max_tokens": 3,
                                                    "stream": True}).text
    events = sse_events(raw)
    assert events[-1] == "[DONE]" and "simulated failure" in json.loads(events[-2])["error"]["message"]
    monkeypatch.setattr(model, "generate", original)
    assert chat(client, max_tokens=3).status_code == 200 and calls["n"] == 2


# ---------------------------------------------------------------- rendering = training


def test_served_prompt_ids_equal_trainings(client, live, runs, monkeypatch):
    """A run trained with a system prompt: the ids the server feeds the model are tokenize_pairs' prompt_ids."""
    from dpokit.data.tokenize import tokenize_pairs
    from dpokit.data.types import PreferencePair
    from dpokit.runs import load_run_tokenizer, open_model_or_run

    info = open_model_or_run(str(runs["sys"]))
    assert info.config.data.system_prompt == SYSTEM_PROMPT
    tokenizer = load_run_tokenizer(info)
    model = live.state.registry.get("sys").model
    seen = []
    original = model.generate

    def spy(*args, **kwargs):
        ids, mask = kwargs["input_ids"], kwargs["attention_mask"]
        seen.extend(row[m.bool()].tolist() for row, m in zip(ids, mask))
        return original(*args, **kwargs)

    monkeypatch.setattr(model, "generate", spy)
    conversations = [
        HELLO,
        [{"role": "system", "content": "Own system message."}, {"role": "user", "content": "Hi"}],
        [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
         {"role": "user", "content": "And again?"}],
    ]
    for messages in conversations:
        seen.clear()
        usage = chat(client, model="sys", messages=messages, max_tokens=2).json()["usage"]
        pair = PreferencePair(prompt=messages, chosen=[{"role": "assistant", "content": "Yes."}],
                              rejected=[{"role": "assistant", "content": "No."}])
        trained = tokenize_pairs([pair], tokenizer, info.config.data)[0][0].prompt_ids
        assert seen == [trained]
        assert usage["prompt_tokens"] == len(trained)
        has_own_system = messages[0]["role"] == "system"
        assert (SYSTEM_PROMPT in tokenizer.decode(trained)) is not has_own_system


# ---------------------------------------------------------------- adapters share one base


def test_lora_runs_share_one_copy_of_the_base(client, live, runs, tiny_model_dir):
    from transformers import AutoModelForCausalLM

    registry = live.state.registry
    assert len(registry.groups) == 1
    group = registry.groups[0]
    assert all(m.group is group and m.model is group.model for m in registry.models.values())
    assert {m.name: m.adapter for m in registry.models.values()} == {
        "base": None, "tuned": "default", "other": "adapter_1", "sys": "adapter_2"}

    plain = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    plain_bytes = sum(p.numel() * p.element_size() for p in {p.data_ptr(): p for p in plain.parameters()}.values())
    served = {p.data_ptr(): (n, p) for n, p in group.model.named_parameters()}
    base_bytes = sum(p.numel() * p.element_size() for n, p in served.values() if "lora_" not in n)
    lora_bytes = sum(p.numel() * p.element_size() for n, p in served.values() if "lora_" in n)
    assert base_bytes == plain_bytes  # the base weights exist once, not once per run
    assert base_bytes + lora_bytes < 1.2 * plain_bytes

    # Each name answers as a separately loaded copy of its own model would.
    answers = {}
    for name in ("base", "tuned", "other"):
        ref = tiny_model_dir if name == "base" else runs[name]
        _, new, tokenizer = standalone_greedy(ref, HELLO, 6)
        answers[name] = chat(client, model=name, temperature=0, max_tokens=6).json()["choices"][0]["message"]["content"]
        assert answers[name] == tokenizer.decode(new, skip_special_tokens=True), name
    assert len(set(answers.values())) == 3  # the adapters really are switched


# ---------------------------------------------------------------- load


def test_bounded_load_50_concurrent_requests_while_health_answers(live):
    """50 concurrent chat requests (a third streaming, max_tokens 4) on loopback: no errors, /health < 1 s."""
    models = ["tuned", "base", "other"]

    async def one(client, i):
        body = {"model": models[i % 3], "messages": [{"role": "user", "content": f"Request {i}"}],
                "max_tokens": 4, "temperature": 0.7}
        if i % 3 == 0:
            body["stream"] = True
            async with client.stream("POST", "/v1/chat/completions", json=body) as response:
                raw = "".join([t async for t in response.aiter_text()])
            events = sse_events(raw)
            return response.status_code == 200 and events[-1] == "[DONE]" and all(
                "error" not in json.loads(e) for e in events[:-1])
        response = await client.post("/v1/chat/completions", json=body)
        return response.status_code == 200 and len(response.json()["choices"]) == 1

    async def health(client, stop, latencies):
        while not stop.is_set():
            start = time.monotonic()
            response = await client.get("/health")
            latencies.append(time.monotonic() - start)
            assert response.status_code == 200
            await asyncio.sleep(0.05)

    async def main():
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
        async with httpx.AsyncClient(base_url=live.url, timeout=120, limits=limits) as client:
            stop, latencies = asyncio.Event(), []
            pinger = asyncio.create_task(health(client, stop, latencies))
            await asyncio.sleep(0.1)
            results = await asyncio.wait_for(asyncio.gather(*(one(client, i) for i in range(50))), timeout=300)
            stop.set()
            await pinger
            return results, latencies

    before = live.state.scheduler.stats()
    results, latencies = asyncio.run(main())
    after = live.state.scheduler.stats()
    assert results.count(True) == 50
    assert len(latencies) >= 3 and max(latencies) < 1.0, f"slowest /health: {max(latencies):.3f}s"
    assert after["failures"] == before["failures"]
    assert after["rows"] - before["rows"] == 50
    assert after["batches"] - before["batches"] < 50 and after["largest_batch"] > 1  # requests were batched


def test_an_abandoned_non_streaming_request_stops_generating(live, monkeypatch):
    """A client that gives up on a non-streaming request (a timeout) has its rows cancelled at the next
    step, not generated on to max_tokens while the next requests wait."""
    from dpokit.serve.jobs import FINISH_CANCELLED, ChoiceDone

    scheduler, ends = live.state.scheduler, []
    submit = scheduler.submit

    def recording_submit(*args, **kwargs):
        job = submit(*args, **kwargs)
        emit = job.emit

        def recording_emit(event):  # the worker thread's events, as they are sent
            if isinstance(event, ChoiceDone):
                ends.append(event)
            emit(event)
        job.emit = recording_emit
        return job

    monkeypatch.setattr(scheduler, "submit", recording_submit)
    started = time.monotonic()
    with httpx.Client(base_url=live.url, timeout=0.3) as impatient:
        with pytest.raises(httpx.ReadTimeout):
            impatient.post("/v1/chat/completions", json={"model": "base", "messages": HELLO, "max_tokens": 1900,
                                                         "temperature": 0})
    while not ends and time.monotonic() - started < 60:
        time.sleep(0.05)
    assert [e.finish_reason for e in ends] == [FINISH_CANCELLED]
    assert ends[0].completion_tokens < 1900
