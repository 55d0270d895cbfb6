"""One renderer: the prompt ids generate, chat and compare feed a model are the ids training saw."""

from __future__ import annotations

import json

import pytest
import torch

from dpokit.cli import main
from dpokit.config import load_config
from dpokit.data.load import load_preference_data
from dpokit.data.tokenize import tokenize_pairs
from dpokit.render import Renderer, with_system_prompt
from test_train import home, tiny_config, write_pairs  # noqa: F401  (fixtures)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SYSTEM = "You are a terse assistant."


@pytest.fixture
def recorded_generate(monkeypatch):
    """Records the ``input_ids`` every ``generate`` call receives (and answers with one EOS)."""
    from transformers.generation.utils import GenerationMixin

    calls: list[list[list[int]]] = []

    def fake_generate(self, input_ids=None, attention_mask=None, **kwargs):
        rows = [ids[mask.bool()].tolist() for ids, mask in zip(input_ids, attention_mask)]  # left padding removed
        calls.append(rows)
        eos = torch.full((input_ids.shape[0], 1), self.config.eos_token_id, dtype=input_ids.dtype)
        return torch.cat([input_ids, eos.to(input_ids.device)], dim=1)

    monkeypatch.setattr(GenerationMixin, "generate", fake_generate)
    return calls


@pytest.mark.parametrize("chat_template", [True, False])
def test_generate_feeds_the_ids_training_saw(tmp_path, tiny_model_dir, home, recorded_generate, chat_template):
    from dpokit.recipe import train

    # The data has no system message: training inserts data.system_prompt.
    pairs_file = tmp_path / "pairs.jsonl"
    with open(pairs_file, "w") as handle:
        for question, answer, bad in (("What is 2 + 2?", "4.", "5."), ("Name a colour.", "Red.", "Loud.")):
            handle.write(json.dumps({"prompt": question, "chosen": answer, "rejected": bad}) + "\n")
    run = train(tiny_config(tiny_model_dir, pairs_file, tmp_path / "run", [
        "training.max_steps=1", f"data.system_prompt={SYSTEM}", f"data.apply_chat_template={str(chat_template).lower()}"]),
        show_progress=False)
    config = load_config(run / "config.yaml")
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(run / "final")
    trained, _ = tokenize_pairs(load_preference_data([str(pairs_file)]).pairs, tokenizer, config.data)

    assert main(["generate", str(run), "--prompts", str(pairs_file), "--out", str(tmp_path / "out.jsonl"),
                 "--temperature", "0", "--max-new-tokens", "2"]) == 0
    fed = sorted(row for call in recorded_generate for row in call)
    assert fed == sorted(p.prompt_ids for p in trained)
    text = tokenizer.decode(trained[0].prompt_ids)
    assert SYSTEM in text and ("<|im_start|>" in text) == chat_template


def test_chat_and_compare_render_with_the_runs_system_prompt(tmp_path, tiny_model_dir, home, recorded_generate):
    from dpokit.chat import ChatSession
    from dpokit.comparison import generate_with
    from dpokit.generate import SamplingSettings
    from dpokit.recipe import train
    from dpokit.runs import load_for_inference

    run = train(tiny_config(tiny_model_dir, write_pairs(tmp_path / "p.jsonl"), tmp_path / "run", [
        "training.max_steps=1", f"data.system_prompt={SYSTEM}"]), show_progress=False)
    model, tokenizer, info = load_for_inference(run, device="cpu")
    renderer = Renderer.for_run(tokenizer, info)
    question = [{"role": "user", "content": "Hello there"}]
    expected = renderer.prompt_ids(question)
    assert SYSTEM in tokenizer.decode(expected)

    generate_with(str(run), [question], {"max_new_tokens": 2})
    assert recorded_generate[-1] == [expected]
    session = ChatSession(model, renderer, SamplingSettings(max_new_tokens=2, do_sample=False))
    assert session.system == SYSTEM
    assert session.renderer.prompt_ids(session.messages() + question) == expected
    # A conversation with its own system message keeps it.
    own = [{"role": "system", "content": "Be loud."}] + question
    assert with_system_prompt(own, SYSTEM) == (own, False)
    assert "Be loud." in tokenizer.decode(renderer.prompt_ids(own)) and SYSTEM not in tokenizer.decode(renderer.prompt_ids(own))


def test_plain_text_prompts_add_bos_only_where_the_tokenizer_would(tokenizer):
    from dpokit.config import DataConfig

    plain = Renderer(tokenizer, DataConfig(apply_chat_template=False))
    ids = plain.prompt_ids([{"role": "user", "content": "Hi"}])
    assert tokenizer.decode(ids) == "Hi\n\n"  # SmolLM2 adds no BOS by itself, and no EOS is added
    assert ids == tokenizer("Hi\n\n", add_special_tokens=False)["input_ids"]
