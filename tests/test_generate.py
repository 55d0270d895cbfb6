"""Batched generation with the chat template, prompt files, and `dpokit generate`."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
import torch

from dpokit.cli import main
from dpokit.errors import DpokitError
from dpokit.generate import SamplingSettings, generate_answers, generate_candidates, left_pad
from dpokit.prompts import read_prompt_records, read_prompts
from dpokit.render import Renderer

PROMPTS = [
    [{"role": "user", "content": "Name a fruit."}],
    [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "What is the capital of France, and why?"}],
    [{"role": "user", "content": "Hi"}],
]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def lively_model_dir(tiny_model_dir, tmp_path_factory) -> str:
    """The tiny model with larger random weights: its greedy output varies with the prompt
    (the default init repeats one token whatever the input)."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    config = AutoConfig.from_pretrained(tiny_model_dir)
    config.initializer_range = 0.3
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("lively-tiny")
    AutoModelForCausalLM.from_config(config).save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(out)
    return str(out)


@pytest.fixture(scope="module")
def tiny(lively_model_dir):
    from dpokit.runs import load_for_inference

    model, tokenizer, _ = load_for_inference(lively_model_dir)
    return model, tokenizer


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------- rendering and padding


def test_prompt_is_rendered_with_the_chat_template(tokenizer):
    ids = Renderer(tokenizer).prompt_ids(PROMPTS[0])
    text = tokenizer.decode(ids)
    assert text.startswith("<|im_start|>system\n")  # SmolLM2's template adds its default system prompt
    assert "<|im_start|>user\nName a fruit.<|im_end|>\n" in text
    assert text.endswith("<|im_start|>assistant\n")
    assert ids.count(tokenizer.convert_tokens_to_ids("<|im_start|>")) == 3


def test_left_pad():
    ids, mask = left_pad([[5, 6, 7], [8]], pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [0, 0, 8]]
    assert mask.tolist() == [[1, 1, 1], [0, 0, 1]]


# ---------------------------------------------------------------- generation


def _greedy_by_hand(model, tokenizer, messages, steps: int) -> str:
    """Argmax decoding with full forward passes, no padding, no generate()."""
    ids = Renderer(tokenizer).prompt_ids(messages)
    new = []
    with torch.no_grad():
        for _ in range(steps):
            next_id = int(model(input_ids=torch.tensor([ids + new])).logits[0, -1].argmax())
            new.append(next_id)
            if next_id == tokenizer.eos_token_id:
                break
    return tokenizer.decode(new, skip_special_tokens=True).strip()


def test_greedy_batched_equals_hand_decoding(tiny):
    model, tokenizer = tiny
    batched = generate_answers(model, tokenizer, PROMPTS, max_new_tokens=6, do_sample=False, batch_size=3)
    assert batched == [_greedy_by_hand(model, tokenizer, p, 6) for p in PROMPTS]
    assert generate_answers(model, tokenizer, PROMPTS, max_new_tokens=6, batch_size=1) == batched
    assert all(batched) and len(set(batched)) == len(batched)


def test_same_seed_same_samples(tiny):
    model, tokenizer = tiny
    kwargs = dict(max_new_tokens=8, do_sample=True, temperature=1.0, top_p=1.0, top_k=0, batch_size=2)
    first = generate_answers(model, tokenizer, PROMPTS, seed=123, **kwargs)
    assert generate_answers(model, tokenizer, PROMPTS, seed=123, **kwargs) == first
    assert generate_answers(model, tokenizer, PROMPTS, seed=124, **kwargs) != first


def test_n_candidates_per_prompt_in_prompt_order(tiny):
    model, tokenizer = tiny
    settings = SamplingSettings(max_new_tokens=5, temperature=1.0, top_p=1.0, top_k=0)
    out = generate_candidates(model, tokenizer, PROMPTS, settings, n=2, seed=0, batch_size=2)
    assert [len(c) for c in out] == [2, 2, 2]
    assert any(a != b for a, b in out)
    # Prompt order is kept although batches are built longest-first.
    greedy = SamplingSettings(max_new_tokens=5, do_sample=False)
    one_by_one = [generate_candidates(model, tokenizer, [p], greedy)[0] for p in PROMPTS]
    assert generate_candidates(model, tokenizer, PROMPTS, greedy, batch_size=2) == one_by_one


@pytest.mark.parametrize("kwargs, message", [
    ({"max_new_tokens": 0}, "max_new_tokens"),
    ({"top_p": 1.5}, "top_p"),
    ({"temperature": -1}, "temperature"),
    ({"repetition_penalty": 0}, "repetition_penalty"),
])
def test_bad_sampling_settings(kwargs, message):
    with pytest.raises(DpokitError, match=message):
        SamplingSettings(**kwargs)


# ---------------------------------------------------------------- prompt files


def test_jsonl_prompts_text_and_messages(tmp_path):
    path = _write(tmp_path / "p.jsonl", "\n".join([
        json.dumps({"prompt": "Tell me a joke", "system": "Be funny."}),
        "",
        json.dumps({"prompt": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
                               {"role": "user", "content": "Bye"}]}),
        json.dumps({"messages": [{"from": "human", "value": "Q?"}, {"from": "gpt", "value": "A."}]}),
        json.dumps({"instruction": "Translate", "input": "chat"}),
        json.dumps("just a string"),
    ]) + "\n")
    records = read_prompt_records(path)
    assert [r.source for r in records] == [f"{path}:{n}" for n in (1, 3, 4, 5, 6)]
    assert records[0].messages == [{"role": "system", "content": "Be funny."}, {"role": "user", "content": "Tell me a joke"}]
    assert [m["role"] for m in records[1].messages] == ["user", "assistant", "user"]
    assert records[2].messages == [{"role": "user", "content": "Q?"}]  # trailing answer dropped
    assert records[3].messages == [{"role": "user", "content": "Translate\n\nchat"}]
    assert records[4].messages == [{"role": "user", "content": "just a string"}]


def test_plain_text_lines_and_json_array_and_gzip(tmp_path):
    text = _write(tmp_path / "p.txt", "First prompt\n\n  Second {prompt}  \n")
    assert read_prompts(text) == [[{"role": "user", "content": "First prompt"}],
                                  [{"role": "user", "content": "  Second {prompt}  "}]]
    array = _write(tmp_path / "p.json", json.dumps([{"prompt": "a"}, {"prompt": "b"}]))
    assert [p[0]["content"] for p in read_prompts(array)] == ["a", "b"]
    gz = tmp_path / "p.jsonl.gz"
    gz.write_bytes(gzip.compress(json.dumps({"prompt": "zipped ü"}).encode()))
    assert read_prompts(gz) == [[{"role": "user", "content": "zipped ü"}]]


def test_system_prompt_only_where_missing(tmp_path):
    path = _write(tmp_path / "p.jsonl", json.dumps({"prompt": "a"}) + "\n" + json.dumps({"prompt": "b", "system": "own"}) + "\n")
    systems = [p[0]["content"] for p in read_prompts(path, system_prompt="global")]
    assert systems == ["global", "own"]


@pytest.mark.parametrize("content, message", [
    ("", "prompts file is empty"),
    ("  \n\n", "prompts file is empty"),
    ('{"prompt": "ok"}\n{"prompt": broken}\n', r"p.jsonl:2: invalid JSON"),
    ('{"question_text": "x"}\n', r"p.jsonl:1: no prompt field"),
    ('{"prompt": [{"role": "wizard", "content": "x"}]}\n', r"p.jsonl:1: field 'prompt\[0\]': unknown role 'wizard'"),
    ('{"prompt": ""}\n', "empty prompt"),
])
def test_bad_prompt_files(tmp_path, content, message):
    with pytest.raises(DpokitError, match=message):
        read_prompts(_write(tmp_path / "p.jsonl", content))


def test_missing_prompts_file(tmp_path):
    with pytest.raises(DpokitError, match="prompts file not found"):
        read_prompts(tmp_path / "none.jsonl")


def test_preference_file_gives_its_distinct_prompts(tmp_path):
    pytest.importorskip("dpokit.data.load")
    rows = [
        {"prompt": "Is the sky blue?", "chosen": "Yes.", "rejected": "No."},
        {"prompt": "Is the sky blue?", "chosen": "Usually.", "rejected": "Never."},
        {"prompt": "Is grass green?", "chosen": "Yes.", "rejected": "It is purple."},
    ]
    path = _write(tmp_path / "prefs.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    prompts = read_prompts(path)
    assert [p[-1]["content"] for p in prompts] == ["Is the sky blue?", "Is grass green?"]
    assert all(p[-1]["role"] == "user" for p in prompts)


def test_hh_rlhf_file_prompts_are_multi_turn():
    pytest.importorskip("dpokit.data.load")
    from conftest import HH_RLHF

    prompts = read_prompts(HH_RLHF)
    assert len(prompts) > 100
    assert all(p[-1]["role"] == "user" for p in prompts)
    assert any(sum(m["role"] == "user" for m in p) > 1 for p in prompts)


# ---------------------------------------------------------------- CLI


def _run_generate(model: str, prompts: Path, out: Path, *extra: str) -> list[dict]:
    argv = ["generate", model, "--prompts", str(prompts), "--out", str(out), "--max-new-tokens", "6", *extra]
    assert main(argv) == 0
    return [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]


def test_cli_two_candidates_reproducible_with_seed(tiny_lora_run, tmp_path, capsys):
    prompts = _write(tmp_path / "p.txt", "Write a haiku about rain.\nWhat is 2+2?\nSay hi.\n")
    args = ("--n", "2", "--seed", "7", "--temperature", "1.0", "--batch-size", "2", "--system-prompt", "Be kind.")
    rows = _run_generate(str(tiny_lora_run), prompts, tmp_path / "a.jsonl", *args)
    assert "wrote 3 lines (6 answers)" in capsys.readouterr().out
    assert [r["prompt"][-1]["content"] for r in rows] == ["Write a haiku about rain.", "What is 2+2?", "Say hi."]
    assert all(r["prompt"][0] == {"role": "system", "content": "Be kind."} for r in rows)
    assert all(len(r["candidates"]) == 2 and r["scores"] == [None, None] for r in rows)
    assert rows[0]["source"] == f"{prompts}:1"
    assert _run_generate(str(tiny_lora_run), prompts, tmp_path / "b.jsonl", *args) == rows


def test_cli_candidates_become_pairs_once_scored(lively_model_dir, tmp_path):
    """The labelling form: fill in scores, and the data loader turns lines into preference pairs."""
    load = pytest.importorskip("dpokit.data.load")
    prompts = _write(tmp_path / "p.txt", "Say hi.\nName a colour.\n")
    rows = _run_generate(lively_model_dir, prompts, tmp_path / "gen.jsonl", "--n", "2", "--seed", "3", "--temperature", "1")
    labelled = tmp_path / "labelled.jsonl"
    labelled.write_text("".join(json.dumps({**r, "scores": [1, 2]}) + "\n" for r in rows), encoding="utf-8")
    result = load.load_preference_data([str(labelled)], columns={"responses": "candidates"})
    assert [p.prompt for p in result.pairs] == [r["prompt"] for r in rows]
    assert [p.chosen[0]["content"] for p in result.pairs] == [r["candidates"][1] for r in rows]
    assert [p.rejected[0]["content"] for p in result.pairs] == [r["candidates"][0] for r in rows]
    # ... and the output file itself works as a prompts file.
    assert read_prompts(tmp_path / "gen.jsonl") == [r["prompt"] for r in rows]


def test_cli_lora_run_generates_with_its_adapter(tiny_lora_run, tiny_model_dir, tmp_path):
    prompts = _write(tmp_path / "p.txt", "Tell me about the moon.\nHow do plants grow?\n")
    greedy = ("--temperature", "0")
    with_adapter = _run_generate(str(tiny_lora_run), prompts, tmp_path / "run.jsonl", *greedy)
    base = _run_generate(tiny_model_dir, prompts, tmp_path / "base.jsonl", *greedy)
    assert [r["candidates"] for r in with_adapter] != [r["candidates"] for r in base]
    assert all("scores" not in r for r in base)


def test_cli_errors(tiny_model_dir, tmp_path, capsys):
    empty = _write(tmp_path / "empty.jsonl", "")
    assert main(["generate", tiny_model_dir, "--prompts", str(empty), "--out", str(tmp_path / "o.jsonl")]) == 2
    assert "prompts file is empty" in capsys.readouterr().err
    prompts = _write(tmp_path / "p.txt", "hello\n")
    assert main(["generate", tiny_model_dir, "--prompts", str(prompts), "--out", str(prompts)]) == 2
    assert "--out is the prompts file" in capsys.readouterr().err
    assert prompts.read_text() == "hello\n"
    assert main(["generate", tiny_model_dir, "--prompts", str(prompts), "--out", str(tmp_path / "o.jsonl"),
                 "--n", "2", "--temperature", "0"]) == 2
    assert "identical candidates" in capsys.readouterr().err
    assert not (tmp_path / "o.jsonl").exists()


# ---------------------------------------------------------------- repetition guard


def test_a_looping_reply_is_detected_and_its_repeat_trimmed():
    from dpokit.generate import _repeated_tail, trim_repetition

    prefix, loop = list(range(100, 107)), list(range(200, 216))  # a 16-token sentence said twice
    looping = prefix + loop + loop[:12]
    assert bool(_repeated_tail(torch.tensor([looping]), 12)[0])
    assert trim_repetition(looping, 12) == prefix + loop  # one copy kept
    varied = list(range(300, 340))
    assert not bool(_repeated_tail(torch.tensor([varied]), 12)[0])
    assert trim_repetition(varied, 12) == varied
    assert trim_repetition(looping, 0) == looping  # the guard switched off


class _CycleProcessor:
    """Forces generation through the same 5 tokens over and over (a reply that loops)."""

    def __init__(self, prompt_width: int):
        self.prompt_width = prompt_width

    def __call__(self, input_ids, scores):
        step = input_ids.shape[1] - self.prompt_width
        forced = torch.full_like(scores, float("-inf"))
        forced[:, 1000 + step % 5] = 0
        return forced


def test_the_guard_stops_a_real_generate_call_early(tiny):
    from transformers import LogitsProcessorList, StoppingCriteriaList

    from dpokit.generate import RepetitionGuard

    model, tokenizer = tiny
    ids = torch.tensor([Renderer(tokenizer).prompt_ids(PROMPTS[0])])
    guard = RepetitionGuard(ids.shape[1], window=8)
    out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=100, do_sample=False,
                         logits_processor=LogitsProcessorList([_CycleProcessor(ids.shape[1])]),
                         stopping_criteria=StoppingCriteriaList([guard]), pad_token_id=tokenizer.pad_token_id)
    new = out.shape[1] - ids.shape[1]
    assert guard.fired == 1 and new == 5 + 8  # one period, then the 8-token window seen again
    unguarded = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=40, do_sample=False,
                               logits_processor=LogitsProcessorList([_CycleProcessor(ids.shape[1])]),
                               pad_token_id=tokenizer.pad_token_id)
    assert unguarded.shape[1] - ids.shape[1] == 40


def test_generate_and_chat_stop_looping_replies(tiny, monkeypatch):
    from transformers import LogitsProcessorList
    from transformers.generation.utils import GenerationMixin

    from dpokit.chat import ChatSession

    model, tokenizer = tiny
    real = GenerationMixin.generate

    def looping_generate(self, input_ids=None, **kwargs):
        return real(self, input_ids=input_ids, logits_processor=LogitsProcessorList([_CycleProcessor(input_ids.shape[1])]),
                    **kwargs)

    monkeypatch.setattr(GenerationMixin, "generate", looping_generate)
    guarded = generate_answers(model, tokenizer, PROMPTS[:2], max_new_tokens=80)
    off = generate_answers(model, tokenizer, PROMPTS[:2], max_new_tokens=80, repetition_window=0)
    cycle = tokenizer.decode(list(range(1000, 1005)))
    for text, unguarded in zip(guarded, off):
        assert len(tokenizer(text, add_special_tokens=False)["input_ids"]) < 20 < len(tokenizer(unguarded)["input_ids"])
        assert cycle.strip()[:4] in text
    session = ChatSession(model, tokenizer, SamplingSettings(max_new_tokens=80, do_sample=False))
    shown = "".join(session.reply_stream("Say something"))
    assert session.looped and len(session.history[-1]["content"]) < len(shown.strip())
    with pytest.raises(DpokitError, match="repetition_window"):
        SamplingSettings(repetition_window=2)


def test_demo_prompts_by_name():
    prompts = read_prompts("demo:prompts")
    assert len(prompts) >= 3 and all(p[-1]["role"] == "user" for p in prompts)
    heldout = read_prompts("demo:heldout")  # a preference set: its distinct prompts
    assert len(heldout) > len(prompts)
    with pytest.raises(DpokitError, match="demo:prompts"):
        read_prompts("demo:nope")
