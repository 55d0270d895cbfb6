"""Tokenisation (chat template and plain text), truncation, TRL parity, and the data report."""

from __future__ import annotations

import copy
import types
from collections import Counter

import pytest

from dpokit.config import PAI_DEFAULT_SYSTEM_PROMPT, DataConfig
from dpokit.data.report import build_report, format_report, length_summary
from dpokit.data.tokenize import (
    DROP_EMPTY_AFTER_TRUNCATION,
    TokenizedPair,
    render_pair_text,
    tokenize_pair,
    tokenize_pairs,
)
from dpokit.data.types import LoadResult, PreferencePair
from dpokit.errors import DpokitError

SMOL_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
IM_START, IM_END, NEWLINE = 1, 2, 198  # SmolLM2's <|im_start|>, <|im_end|> (= eos), "\n"


def user(text):
    return {"role": "user", "content": text}


def assistant(text):
    return {"role": "assistant", "content": text}


def make_pair(prompt="What is 2+2?", chosen="4", rejected="five, I think", source="t.jsonl:1", **kw):
    messages = [user(prompt)] if isinstance(prompt, str) else prompt
    return PreferencePair(messages, [assistant(chosen)], [assistant(rejected)], source, kw)


def ids_of(tokenizer, text):
    return tokenizer(text, add_special_tokens=False)["input_ids"]


@pytest.fixture()
def tok(tokenizer):
    """A private copy: tests below change templates and BOS handling."""
    return copy.deepcopy(tokenizer)


# ---------------------------------------------------------------- chat template path


def test_chat_template_token_by_token(tokenizer):
    pair = make_pair()
    out = tokenize_pair(pair, tokenizer, DataConfig())
    assert isinstance(out, TokenizedPair)
    # SmolLM2's template adds its own system prompt when the record has none: kept.
    expected_prompt = (
        f"<|im_start|>system\n{SMOL_SYSTEM}<|im_end|>\n"
        "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"
    )
    assert out.prompt_ids == ids_of(tokenizer, expected_prompt)
    assert out.prompt_ids[0] == IM_START and out.prompt_ids[-3:] == ids_of(tokenizer, "<|im_start|>assistant\n")[-3:]
    assert out.chosen_ids == ids_of(tokenizer, "4") + [IM_END, NEWLINE]
    assert out.rejected_ids == ids_of(tokenizer, "five, I think") + [IM_END, NEWLINE]
    assert out.source == "t.jsonl:1"


def test_sft_sequence_is_the_rendered_chosen_conversation(tokenizer):
    pair = make_pair(prompt=[user("Hi"), assistant("Hello! How can I help?"), user("Name a colour.")], chosen="Blue.")
    out = tokenize_pair(pair, tokenizer, DataConfig())
    full = tokenizer.apply_chat_template(pair.prompt + pair.chosen, tokenize=False)
    assert out.prompt_ids + out.chosen_ids == ids_of(tokenizer, full)


def test_system_prompt_inserted_only_where_missing(tokenizer):
    cfg = DataConfig(system_prompt=PAI_DEFAULT_SYSTEM_PROMPT)
    plain = tokenize_pair(make_pair(), tokenizer, cfg)
    text = tokenizer.decode(plain.prompt_ids)
    assert text.startswith(f"<|im_start|>system\n{PAI_DEFAULT_SYSTEM_PROMPT}<|im_end|>")
    assert SMOL_SYSTEM not in text

    own = make_pair(prompt=[{"role": "system", "content": "Be terse."}, user("What is 2+2?")])
    own_text = tokenizer.decode(tokenize_pair(own, tokenizer, cfg).prompt_ids)
    assert own_text.startswith("<|im_start|>system\nBe terse.<|im_end|>")
    assert PAI_DEFAULT_SYSTEM_PROMPT not in own_text

    _, stats = tokenize_pairs([make_pair(), own, make_pair(source="t.jsonl:3")], tokenizer, cfg)
    assert stats.system_prompt_inserted == 2


# A template whose generation prompt opens an empty "thinking" block that the rendered
# conversation does not have: the prompt's tokens (and text) are not a prefix of the full.
THINKING_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n<think>\n\n</think>\n{% endif %}"
)
# A template that ends the generation prompt with a space: "Assistant: " + "Hello" merges
# into " Hello" when tokenised together, so only the *text* is a prefix.
SPACE_TEMPLATE = (
    "{% for m in messages %}{% if m['role'] == 'user' %}User: {{ m['content'] }}\n"
    "{% else %}Assistant: {{ m['content'] }}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}Assistant: {% endif %}"
)


def test_template_breaking_prefix_uses_content_plus_end_of_turn(tok):
    tok.chat_template = THINKING_TEMPLATE
    pair = make_pair(chosen="Four.", rejected="Five.")
    prompt_text = tok.apply_chat_template(pair.prompt, tokenize=False, add_generation_prompt=True)
    full_ids = ids_of(tok, tok.apply_chat_template(pair.prompt + pair.chosen, tokenize=False))
    assert full_ids[: len(ids_of(tok, prompt_text))] != ids_of(tok, prompt_text)  # the property is broken

    out, stats = tokenize_pairs([pair], tok, DataConfig())
    assert stats.template_fallback == 1 and stats.pairs_out == 1
    assert out[0].prompt_ids == ids_of(tok, prompt_text)  # the prompt as at generation time
    assert out[0].chosen_ids == ids_of(tok, "Four.") + ids_of(tok, "<|im_end|>\n")
    assert out[0].rejected_ids == ids_of(tok, "Five.") + ids_of(tok, "<|im_end|>\n")


def test_template_merging_tokens_at_boundary_uses_text_suffix(tok):
    tok.chat_template = SPACE_TEMPLATE
    pair = make_pair(chosen="Hello there", rejected="Go away")
    out, stats = tokenize_pairs([pair], tok, DataConfig())
    assert stats.template_fallback == 1
    assert tok.decode(out[0].prompt_ids) == "User: What is 2+2?\nAssistant: "
    assert out[0].chosen_ids == ids_of(tok, "Hello there<|im_end|>\n")
    assert out[0].rejected_ids == ids_of(tok, "Go away<|im_end|>\n")


def test_smollm_template_needs_no_fallback(tokenizer):
    pairs = [make_pair(prompt=f"Question {i}?", chosen=f"Answer {i}.", source=f"f:{i}") for i in range(20)]
    _, stats = tokenize_pairs(pairs, tokenizer, DataConfig())
    assert stats.template_fallback == 0 and stats.chat_template


def test_template_error_is_a_user_error(tok):
    tok.chat_template = (
        "{% for m in messages %}{% if m['role'] == 'system' %}"
        "{{ raise_exception('System role not supported') }}{% endif %}{{ m['content'] }}{% endfor %}"
    )
    with pytest.raises(DpokitError) as err:
        tokenize_pairs([make_pair(source="data.jsonl:7")], tok, DataConfig(system_prompt="Be nice."))
    assert "data.jsonl:7" in str(err.value) and "System role not supported" in str(err.value)


# ---------------------------------------------------------------- plain text path


def test_plain_text_token_by_token(tokenizer):
    pair = make_pair(prompt=[user("Hi"), assistant("Hello"), user("What is 2+2?")])
    out = tokenize_pair(pair, tokenizer, DataConfig(apply_chat_template=False))
    # SmolLM2's tokenizer adds no BOS: the prompt is the turns joined by blank lines.
    assert out.prompt_ids == ids_of(tokenizer, "Hi\n\nHello\n\nWhat is 2+2?\n\n")
    assert out.chosen_ids == ids_of(tokenizer, "4") + [tokenizer.eos_token_id]
    assert out.rejected_ids == ids_of(tokenizer, "five, I think") + [tokenizer.eos_token_id]
    assert IM_START not in out.prompt_ids


def test_plain_text_with_bos_adding_tokenizer_and_no_template(tok):
    tok.add_bos_token = True
    tok.chat_template = None  # no template: plain text even with apply_chat_template true
    assert tok("a")["input_ids"][0] == tok.bos_token_id
    out, stats = tokenize_pairs([make_pair()], tok, DataConfig())
    assert not stats.chat_template
    assert out[0].prompt_ids == [tok.bos_token_id] + ids_of(tok, "What is 2+2?\n\n")
    assert out[0].chosen_ids == ids_of(tok, "4") + [tok.eos_token_id]


def test_plain_text_does_not_double_eos(tokenizer):
    pair = make_pair(chosen="4" + tokenizer.eos_token)
    out = tokenize_pair(pair, tokenizer, DataConfig(apply_chat_template=False))
    assert out.chosen_ids == ids_of(tokenizer, "4") + [tokenizer.eos_token_id]


# ---------------------------------------------------------------- truncation


def test_prompt_cut_from_left_then_answers_to_fit(tokenizer):
    long_prompt = " ".join(f"word{i}" for i in range(60))
    pair = make_pair(prompt=long_prompt, chosen="short", rejected=" ".join(["long"] * 40))
    full = tokenize_pair(pair, tokenizer, DataConfig(max_length=10_000, max_prompt_length=10_000))
    cfg = DataConfig(max_length=60, max_prompt_length=40)
    out, stats = tokenize_pairs([pair], tokenizer, cfg)
    cut = out[0]
    assert cut.prompt_ids == full.prompt_ids[-40:]  # the end of the prompt (generation prompt) is kept
    assert cut.chosen_ids == full.chosen_ids  # fits: untouched
    assert cut.rejected_ids == full.rejected_ids[:20]  # 40 + 20 = max_length
    assert (stats.prompt_truncated, stats.answer_truncated, stats.chosen_truncated, stats.rejected_truncated) == (1, 1, 0, 1)
    assert stats.prompt_lengths == [len(full.prompt_ids)]  # lengths before truncation
    assert stats.rejected_lengths == [len(full.rejected_ids)]


def test_pair_without_room_for_an_answer_is_dropped_and_counted(tokenizer):
    pair = make_pair(prompt=" ".join(["filler"] * 50))
    cfg = DataConfig(max_length=30, max_prompt_length=30)
    assert tokenize_pair(pair, tokenizer, cfg) == DROP_EMPTY_AFTER_TRUNCATION
    out, stats = tokenize_pairs([pair, make_pair(source="ok")], tokenizer, DataConfig(max_length=60, max_prompt_length=60))
    assert [p.source for p in out] == ["ok"]
    assert stats.dropped_empty_after_truncation == 1 and stats.pairs_in == 2 and stats.pairs_out == 1
    assert stats.dropped() == Counter({DROP_EMPTY_AFTER_TRUNCATION: 1})


def test_batched_equals_one_by_one(tokenizer):
    pairs = [make_pair(prompt="x " * i, chosen="y " * (2 * i), rejected="z", source=str(i)) for i in range(1, 30)]
    cfg = DataConfig(max_length=50, max_prompt_length=30)
    batched, _ = tokenize_pairs(pairs, tokenizer, cfg)
    single = [tokenize_pair(p, tokenizer, cfg) for p in pairs]
    assert batched == [s for s in single if isinstance(s, TokenizedPair)]


def test_render_pair_text_is_what_the_tokens_say(tokenizer):
    pair = make_pair()
    text = render_pair_text(pair, tokenizer, DataConfig())
    assert text["prompt"].endswith("<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n")
    assert text["chosen"] == "4<|im_end|>\n" and text["rejected"] == "five, I think<|im_end|>\n"


# ---------------------------------------------------------------- TRL parity (test-time oracle)


def _trl_sequences(pairs, tokenizer, max_length):
    """TRL's DPOTrainer preprocessing + collator truncation: {index: (chosen seq, rejected seq, prompt len)}."""
    datasets = pytest.importorskip("datasets")
    dpo_trainer = pytest.importorskip("trl.trainer.dpo_trainer")
    datasets.disable_progress_bars()
    rows = [dict(p.to_json(), index=i) for i, p in enumerate(pairs)]
    args = types.SimpleNamespace(max_length=max_length, truncation_mode="keep_start", dataset_num_proc=None)
    stub = types.SimpleNamespace(_tokenizer=tokenizer)
    prepared = dpo_trainer.DPOTrainer._prepare_dataset(stub, datasets.Dataset.from_list(rows), tokenizer, args, "t")
    collator = dpo_trainer.DataCollatorForPreference(pad_token_id=tokenizer.pad_token_id, max_length=max_length)
    out = {}
    for row in prepared:
        batch = collator([{k: row[k] for k in ("prompt_ids", "chosen_ids", "rejected_ids")}])
        seqs = []
        for b in range(2):
            n = int(batch["attention_mask"][b].sum())
            seqs.append(batch["input_ids"][b, :n].tolist())
        prompt_len = int(batch["completion_mask"][0].tolist().index(1))
        out[row["index"]] = (seqs[0], seqs[1], prompt_len)
    return out


def test_truncation_matches_trl(tokenizer):
    pairs = [
        make_pair(),
        make_pair(prompt=[user("Hi"), assistant("Hello! What can I do?"), user("Tell me a long story.")],
                  chosen=" ".join(["once upon a time"] * 30), rejected="No."),
        make_pair(prompt=" ".join(["context"] * 80), chosen="fine", rejected="bad"),  # prompt fills max_length
        make_pair(prompt="Short?", chosen="a " * 100, rejected="b " * 10),
    ]
    max_length = 64
    trl = _trl_sequences(pairs, tokenizer, max_length)
    ours = [tokenize_pair(p, tokenizer, DataConfig(max_length=max_length, max_prompt_length=10_000)) for p in pairs]
    assert set(trl) == {i for i, o in enumerate(ours) if isinstance(o, TokenizedPair)} == {0, 1, 3}
    for i, (chosen_seq, rejected_seq, prompt_len) in trl.items():
        assert ours[i].prompt_ids + ours[i].chosen_ids == chosen_seq
        assert ours[i].prompt_ids + ours[i].rejected_ids == rejected_seq
        assert len(ours[i].prompt_ids) == prompt_len


# ---------------------------------------------------------------- report


def test_length_summary():
    assert length_summary([4, 1, 100, 3, 2]) == {"min": 1, "mean": 22.0, "median": 3.0, "p95": 80.8, "max": 100}
    assert length_summary([])["p95"] is None


def test_report_counts_and_examples(tokenizer):
    pairs = [
        make_pair(source="d.jsonl:1"),
        make_pair(prompt=[{"role": "system", "content": "Be terse."}, user("Hi"), assistant("Hello"), user("2+2?")],
                  source="d.jsonl:2"),
        make_pair(prompt=" ".join(["filler"] * 80), source="d.jsonl:3"),  # dropped: no room for an answer
        make_pair(prompt="Colour?", chosen="Blue. " * 30, source="d.jsonl:5"),  # answer cut
    ]
    load = LoadResult(pairs=pairs, dropped=Counter(duplicate_pair=2, empty_answer=1),
                      errors=["d.jsonl:4: field 'chosen': missing"], format="prompt_chosen_rejected", records=7)
    cfg = DataConfig(max_length=64, max_prompt_length=64)
    tokenized, stats = tokenize_pairs(pairs, tokenizer, cfg)
    report = build_report(load, tokenized, stats, tokenizer, cfg)

    assert report["format"] == "prompt_chosen_rejected" and report["records"] == 7
    assert report["pairs"] == 4 and report["pairs_used"] == 3 == len(tokenized)
    assert report["dropped"] == {"duplicate_pair": 2, "empty_after_truncation": 1, "empty_answer": 1}
    assert report["errors"] == ["d.jsonl:4: field 'chosen': missing"]
    assert report["turns"] == {"single_turn": 3, "multi_turn": 1}
    assert report["system_prompt"] == {"in_data": 1, "inserted": 0}
    assert report["truncation"]["prompt_truncated"] == 1  # the filler prompt (> 64 tokens)
    assert report["truncation"]["answer_truncated"] == 1 and report["truncation"]["chosen_truncated"] == 1
    assert report["lengths"]["prompt"]["max"] == max(stats.prompt_lengths) > 64
    assert report["lengths"]["chosen"]["min"] == 3  # "4" + <|im_end|> + "\n"
    assert [ex["source"] for ex in report["examples"]] == ["d.jsonl:1", "d.jsonl:2", "d.jsonl:5"]
    ex = report["examples"][1]
    assert "<|im_start|>system\nBe terse.<|im_end|>" in ex["prompt"] and ex["chosen"] == "4<|im_end|>\n"

    text = format_report(report)
    assert "pairs found:       4" in text and "empty_after_truncation: 1" in text
    assert "1 single-turn" not in text and "3 single-turn, 1 multi-turn" in text
    assert "d.jsonl:4: field 'chosen': missing" in text and "example 3 (d.jsonl:5)" in text


def test_tokenize_hh_rlhf_sized_input_quickly(tokenizer):
    import time

    pairs = [make_pair(prompt=f"Question number {i}: " + "why? " * 40, chosen="Because. " * 30,
                       rejected="No idea. " * 20, source=str(i)) for i in range(2000)]
    start = time.perf_counter()
    out, stats = tokenize_pairs(pairs, tokenizer, DataConfig())
    assert stats.pairs_out == 2000 == len(out)
    assert time.perf_counter() - start < 30  # ~1 s here; one call per pair would be far slower
