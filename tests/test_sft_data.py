"""SFT data: the formats (prompt/completion, chat messages, alpaca, ShareGPT, preference files'
chosen answers) from every container and a LLaMA-Factory registry, errors with file:line:field,
skip_bad_records, drops, tokenisation through the pairs' rules, `data inspect|convert --stage sft`,
the demo:sft set, and SFT batches on the tiny model.

Loader and report tests are model-free or tokenizer-only; two tests use the tiny random model.
"""

from __future__ import annotations

import contextlib
import gzip
import importlib.util
import io
import json
import shutil
from importlib import resources
from pathlib import Path

import pytest

from conftest import HH_RLHF, LLAMAFACTORY
from dpokit.config import DataConfig, build_config
from dpokit.data.load import load_preference_data, load_sft_data, load_sft_from_config
from dpokit.data.write import write_sft_jsonl
from dpokit.data.tokenize import tokenize_pairs, tokenize_sft
from dpokit.errors import DpokitError

REPO = Path(__file__).resolve().parents[1]
SFT = Path(__file__).parent / "data" / "sft"
# demo:sft has one example per distinct demo:train prompt, in order of first appearance
# (scripts/make_demo_sft.py): edgy benign prompts are paired twice in train.jsonl.
DEMO_SFT_EXAMPLES = len({json.loads(line)["prompt"] for line in resources.files("dpokit.data.demo")
                         .joinpath("train.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()})
BROKEN = SFT / "broken"
REGISTRY = SFT / "dataset_info.json"


from test_data_formats import assistant, system, user  # noqa: E402  (shared message helpers)


def conversations(result) -> list[tuple[list[dict], list[dict]]]:
    return [(e.prompt, e.completion) for e in result.examples]


def first_pair_per_answer(pairs):
    """The pairs demo:sft is made from: the first pair of each distinct (prompt, chosen)."""
    seen, first = set(), []
    for pair in pairs:
        key = json.dumps([pair.prompt, pair.chosen])
        if key not in seen:
            seen.add(key)
            first.append(pair)
    return first


def load_error(sources, **kwargs) -> DpokitError:
    with pytest.raises(DpokitError) as caught:
        load_sft_data([str(s) for s in sources], **kwargs)
    return caught.value


# ---------------------------------------------------------------- formats

EXPECTED = {
    "prompt_completion.jsonl": ("prompt_completion", [
        ([user("What is the capital of France?")], [assistant("Paris.")]),
        ([user("How many legs does a spider have?")], [assistant("Eight.")]),
        ([system("You are a translator."), user("Translate 'gato' to English.")], [assistant("Cat.")]),
        ([user("Name a primary colour.")], [assistant("Red is one.")]),
        ([system("Be brief."), user("Who wrote Hamlet?")], [assistant("William Shakespeare.")]),
    ]),
    "messages.jsonl": ("messages", [
        ([user("Hi!")], [assistant("Hello! How can I help?")]),
        # multi-turn: the final assistant turn is the target, earlier turns are the prompt
        ([system("You are a maths tutor."), user("What is 7 times 6?"), assistant("42."), user("And 7 times 7?")],
         [assistant("49.")]),
        # the final turn may be several assistant messages; a system field becomes the system message
        ([system("Be fun."), user("Tell me a fact, then a joke.")],
         [assistant("Octopuses have three hearts."), assistant("And they are still single.")]),
    ]),
    "sharegpt.json": ("sharegpt", [
        ([user("What gas do plants absorb?")], [assistant("Carbon dioxide.")]),
        ([system("Answer in one word."), user("Largest planet?")], [assistant("Jupiter.")]),
        ([user("Recommend a book.")], [assistant("Try 'The Hobbit'.")]),  # role/content works too
    ]),
    "alpaca.json": ("alpaca", [
        ([user("Correct the spelling.\nI recieved the pakage.")], [assistant("I received the package.")]),
        ([system("You are a thesaurus."), user("Give me a synonym for happy.")], [assistant("Joyful.")]),
        ([user("Give me a synonym for big."), assistant("Large."), user("And one for sad?")], [assistant("Unhappy.")]),
    ]),
    "prompt_completion.csv": ("prompt_completion", [
        ([user("What is 2 + 2?")], [assistant("4.")]),
        ([user("Name two colours, please.")], [assistant("Red, and blue.")]),
    ]),
}


def records_of(name: str) -> list[dict]:
    path = SFT / name
    text = path.read_text(encoding="utf-8")
    return json.loads(text) if text.lstrip().startswith("[") else [json.loads(line) for line in text.splitlines()]


def write_container(records: list[dict], container: str, tmp_path: Path) -> Path:
    """The records as one of the containers readers.py reads."""
    if container == "jsonl":
        path = tmp_path / "data.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    elif container == "json":
        path = tmp_path / "data.json"
        path.write_text(json.dumps(records, indent=2), encoding="utf-8")
    elif container == "jsonl.gz":
        path = tmp_path / "data.jsonl.gz"
        path.write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in records).encode("utf-8")))
    elif container == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = tmp_path / "data.parquet"
        pq.write_table(pa.Table.from_pylist(records), path)
    elif container == "saved_dataset":
        import datasets

        path = tmp_path / "saved"
        datasets.Dataset.from_list(records).save_to_disk(str(path))
    elif container == "dir":
        path = tmp_path / "dir"
        path.mkdir()
        half = len(records) // 2
        (path / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records[:half]), encoding="utf-8")
        (path / "b.json").write_text(json.dumps(records[half:]), encoding="utf-8")
    else:
        raise ValueError(container)
    return path


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_format_is_read_and_normalised(name):
    format_name, expected = EXPECTED[name]
    result = load_sft_data([str(SFT / name)])
    assert result.format == format_name
    assert conversations(result) == expected
    assert result.records == len(expected) and not result.dropped and not result.errors
    first_at = {".jsonl": "1", ".json": "2 (record 1)", ".csv": "2"}[Path(name).suffix]  # a CSV header is line 1
    assert result.examples[0].source == f"{SFT / name}:{first_at}"


def test_extra_scalar_fields_are_kept_as_meta():
    examples = load_sft_data([str(SFT / "prompt_completion.jsonl")]).examples
    assert examples[1].meta == {"level": "easy"}
    assert load_sft_data([str(SFT / "prompt_completion.csv")]).examples[0].meta == {"topic": "maths"}


# Parquet and `datasets` store a column per field: records with different fields would mix.
UNIFORM = ["messages.jsonl", "sharegpt.json", "prompt_completion.csv"]
CONTAINERS = ["jsonl", "json", "jsonl.gz", "parquet", "saved_dataset", "dir"]


@pytest.mark.parametrize("container", CONTAINERS)
@pytest.mark.parametrize("name", UNIFORM)
def test_every_container_gives_the_same_examples(name, container, tmp_path):
    records = records_of(name) if not name.endswith(".csv") else [
        {"prompt": "What is 2 + 2?", "completion": "4.", "topic": "maths"},
        {"prompt": "Name two colours, please.", "completion": "Red, and blue.", "topic": "art"}]
    if container in ("parquet", "saved_dataset") and name == "messages.jsonl":
        records = [{"messages": r["messages"], "system": r.get("system")} for r in records]  # one schema
    path = write_container(records, container, tmp_path)
    result = load_sft_data([str(path)])
    assert result.format == EXPECTED[name][0]
    assert conversations(result) == EXPECTED[name][1]


def test_alpaca_from_every_container(tmp_path):
    records = [{"instruction": "Correct the spelling.", "input": "I recieved the pakage.", "output": "I received the package."},
               {"instruction": "Give me a synonym for happy.", "input": "", "output": "Joyful."}]
    expected = [([user("Correct the spelling.\nI recieved the pakage.")], [assistant("I received the package.")]),
                ([user("Give me a synonym for happy.")], [assistant("Joyful.")])]
    for container in CONTAINERS:
        (tmp_path / container).mkdir()
        path = write_container(records, container, tmp_path / container)
        assert conversations(load_sft_data([str(path)])) == expected, container
    csv = tmp_path / "alpaca.csv"
    csv.write_text('instruction,input,output\nCorrect the spelling.,I recieved the pakage.,I received the package.\n'
                   'Give me a synonym for happy.,,Joyful.\n', encoding="utf-8")
    assert conversations(load_sft_data([str(csv)])) == expected


def test_tsv_and_gzipped_csv(tmp_path):
    tsv = tmp_path / "data.tsv"
    tsv.write_text("question\tanswer\nWhat is 2 + 2?\t4.\n", encoding="utf-8")
    assert conversations(load_sft_data([str(tsv)])) == [([user("What is 2 + 2?")], [assistant("4.")])]
    gz = tmp_path / "data.csv.gz"
    gz.write_bytes(gzip.compress((SFT / "prompt_completion.csv").read_bytes()))
    assert conversations(load_sft_data([str(gz)])) == EXPECTED["prompt_completion.csv"][1]


def test_conversational_completion_that_repeats_the_prompt_is_cut(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps({"prompt": [user("Hi")], "completion": [user("Hi"), assistant("Hello!")]}) + "\n")
    assert conversations(load_sft_data([str(path)])) == [([user("Hi")], [assistant("Hello!")])]


def test_the_format_can_be_forced_and_columns_mapped(tmp_path):
    path = tmp_path / "odd.jsonl"
    path.write_text(json.dumps({"q": "What is 2 + 2?", "a": "4.", "sys": "Be exact."}) + "\n")
    err = load_error([path])
    assert "cannot tell the SFT data format" in err.message and "q, a, sys" in err.message
    assert "prompt_completion" in err.hint and "data.columns" in err.hint
    result = load_sft_data([str(path)], columns={"prompt": "q", "completion": "a", "system": "sys"})
    assert conversations(result) == [([system("Be exact."), user("What is 2 + 2?")], [assistant("4.")])]
    forced = load_sft_data([str(SFT / "messages.jsonl")], format="messages")
    assert forced.format == "messages" and len(forced.examples) == 3
    with pytest.raises(DpokitError, match="unknown SFT data format 'mesages'") as caught:
        load_sft_data([str(path)], format="mesages")
    assert "did you mean 'messages'" in caught.value.hint
    with pytest.raises(DpokitError, match="unknown role 'completon'") as caught:
        load_sft_data([str(path)], columns={"completon": "a"})
    assert "did you mean 'completion'" in caught.value.hint


# ---------------------------------------------------------------- preference files are SFT data too


def test_preference_files_give_their_prompts_and_chosen_answers():
    pairs = load_preference_data(["demo:train"]).pairs
    result = load_sft_data(["demo:train"])
    assert result.format == "standard"
    distinct = first_pair_per_answer(pairs)  # a prompt paired twice with one chosen answer is one example
    assert conversations(result) == [(p.prompt, p.chosen) for p in distinct]
    assert [e.meta for e in result.examples] == [p.meta for p in distinct]
    assert result.dropped == {"duplicate_example": len(pairs) - len(distinct)} and len(distinct) < len(pairs)


def test_sft_keeps_pairs_with_identical_answers_and_ranked_data_gives_the_best(tmp_path):
    path = tmp_path / "p.jsonl"
    rows = [{"prompt": "Capital of France?", "chosen": "Paris.", "rejected": "Paris."},
            {"prompt": "Capital of Italy?", "chosen": "Rome.", "rejected": "Milan."}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert conversations(load_sft_data([str(path)])) == [
        ([user("Capital of France?")], [assistant("Paris.")]), ([user("Capital of Italy?")], [assistant("Rome.")])]
    ranked = load_sft_data([str(SFT.parent / "ranked_completions.jsonl")], pair_strategy="best_vs_each")
    best = load_preference_data([str(SFT.parent / "ranked_completions.jsonl")]).pairs
    assert ranked.format == "ranked"
    assert conversations(ranked) == [(p.prompt, p.chosen) for p in best]  # one example per prompt: its best answer
    assert ranked.dropped["duplicate_example"] > 0  # best_vs_each's extra pairs repeat the best answer


def test_hh_rlhf_text_as_sft():
    result = load_sft_data([str(SFT.parent / "hh_rlhf.jsonl")])
    pairs = load_preference_data([str(SFT.parent / "hh_rlhf.jsonl")]).pairs
    assert result.format == "hh_rlhf" and conversations(result) == [(p.prompt, p.chosen) for p in pairs]


@pytest.mark.skipif(not HH_RLHF.is_file(), reason="shared hh-rlhf data not present")
def test_real_hh_rlhf_part_loads_as_sft():
    result = load_sft_data([str(HH_RLHF)], max_samples=200)
    assert result.format == "hh_rlhf" and len(result.examples) == 200
    assert all(e.completion and e.completion[-1]["role"] == "assistant" for e in result.examples)


def test_one_config_takes_sft_and_preference_files_together(tmp_path):
    cfg = DataConfig(train_files=[str(SFT / "messages.jsonl"), "demo:heldout", str(SFT / "alpaca.json")])
    train, evaluation = load_sft_from_config(cfg)
    assert evaluation is None
    assert train.format == "messages, standard, alpaca"
    assert len(train.examples) == 3 + len(load_preference_data(["demo:heldout"]).pairs) + 3


# ---------------------------------------------------------------- registry


def test_registry_instruction_entries_are_sft_data():
    alpaca = load_sft_data(["my_alpaca_sft"], registry=str(REGISTRY))
    assert alpaca.format == "alpaca"
    assert conversations(alpaca) == [
        ([system("You are a proofreader."), user("Correct: recieve"), assistant("receive"),
          user("Correct the spelling.\nteh cat")], [assistant("the cat")]),
        ([user("Name a month with 28 days.")], [assistant("February (and every other month too).")]),
    ]
    chat = load_sft_data(["my_chat_sft"], registry=str(REGISTRY))
    assert chat.format == "sharegpt"
    assert conversations(chat) == [
        ([system("You work at a shop."), user("Is the shop open?")], [assistant("Yes, until six.")]),
        ([user("Do you deliver?")], [assistant("Within the city, yes.")]),
    ]
    ranking = load_sft_data(["my_ranking"], registry=str(REGISTRY))
    assert conversations(ranking) == [([user("Two plus two?")], [assistant("Four.")])]


def test_registry_kto_entries_keep_only_desirable_answers_and_multimodal_is_refused():
    kto = load_sft_data(["my_kto"], registry=str(REGISTRY))
    assert conversations(kto) == [([user("Capital of Italy?")], [assistant("Rome.")])]
    assert kto.dropped == {"undesirable_completion": 1}
    with pytest.raises(DpokitError, match="multimodal data \\(images\\) is not supported"):
        load_sft_data(["my_images"], registry=str(REGISTRY))
    with pytest.raises(DpokitError, match="no dataset named 'my_chat_sf'") as caught:
        load_sft_data(["my_chat_sf"], registry=str(REGISTRY))
    assert "did you mean 'my_chat_sft'" in caught.value.hint


def test_preference_loading_still_refuses_instruction_entries_and_points_to_sft():
    with pytest.raises(DpokitError, match="not preference data") as caught:
        load_preference_data(["my_alpaca_sft"], registry=str(REGISTRY))
    assert "stage: sft" in caught.value.hint


@pytest.mark.skipif(not (LLAMAFACTORY / "kto_en_demo.json").is_file(), reason="shared LLaMA-Factory data not present")
def test_real_llamafactory_registry_entries_as_sft():
    registry = str(LLAMAFACTORY / "dataset_info.json")
    kto = load_sft_data(["kto_en_demo"], registry=registry)
    labels = json.loads((LLAMAFACTORY / "kto_en_demo.json").read_text(encoding="utf-8"))
    assert kto.records == len(labels)
    assert kto.dropped["undesirable_completion"] == sum(1 for r in labels if r["label"] is False)
    dpo = load_sft_data(["dpo_en_demo"], registry=registry)
    assert dpo.format == "sharegpt" and dpo.examples


# ---------------------------------------------------------------- errors, skip_bad_records, drops

ERRORS = [
    ("ends_with_user.jsonl", [":2:", "field 'messages[2]'", "ends with a 'user' message", "must be the assistant's"],
     ["end each conversation with the assistant's answer", "skip_bad_records"]),
    ("missing_completion.jsonl", [":3:", "field 'completion'", "is missing", "completion, response, output, answer",
                                  "prompt, reply"], ["fix the record", "skip_bad_records"]),
    ("wrong_type.json", [":3 (record 2):", "field 'output'", "got a number (12)"], ["fix the record"]),
    ("bad_role.jsonl", [":2:", "field 'conversations[1].from'", "unknown role 'function_call'"],
     ["use one of the roles", "not supported"]),
    ("mixed.jsonl", [":2:", "invalid JSON"], ["fix the JSON on this line", "skip_bad_records"]),
]


@pytest.mark.parametrize("name, message_parts, hint_parts", ERRORS, ids=[e[0] for e in ERRORS])
def test_bad_records_name_file_line_field_and_what_to_do(name, message_parts, hint_parts):
    err = load_error([BROKEN / name])
    assert err.message.startswith(str(BROKEN / name))
    for part in message_parts:
        assert part in err.message, (part, err.message)
    for part in hint_parts:
        assert part in (err.hint or ""), (part, err.hint)


def test_csv_errors_give_the_line(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text('prompt,completion\nWhat is 2 + 2?,4.\n"Too, many",cells,here\n', encoding="utf-8")
    err = load_error([path])
    assert f"{path}:3:" in err.message and "3 cells but the header has 2" in err.message


def test_skip_bad_records_counts_and_lists_them():
    result = load_sft_data([str(BROKEN / "mixed.jsonl")], skip_bad_records=True)
    assert conversations(result) == [([user("What is 2 + 2?")], [assistant("4.")]),
                                     ([user("What is 5 + 5?")], [assistant("10.")])]
    assert result.records == 4 and result.dropped == {"unparseable_record": 2}
    assert result.errors[0].startswith(f"{BROKEN / 'mixed.jsonl'}:2: invalid JSON")
    assert result.errors[1] == f"{BROKEN / 'mixed.jsonl'}:3: field 'completion': expected text or assistant message(s), got a number (6)"


def test_drops_are_counted_by_reason():
    result = load_sft_data([str(SFT / "drops.jsonl")])
    assert conversations(result) == [([user("What is 2 + 2?")], [assistant("4.")]),
                                     ([user("Is this kind?")], [assistant("Yes, I hope so.")])]
    assert result.dropped == {"duplicate_example": 1, "empty_completion": 1, "empty_prompt": 1,
                              "undesirable_completion": 1}
    assert result.records == 6


def test_duplicates_are_found_across_sources_and_max_samples_caps(tmp_path):
    copy = tmp_path / "copy.jsonl"
    shutil.copy(SFT / "messages.jsonl", copy)
    with open(copy, "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"messages": [user("New?"), assistant("Yes.")]}) + "\n")
    both = load_sft_data([str(SFT / "messages.jsonl"), str(copy)])
    assert len(both.examples) == 4 and both.dropped == {"duplicate_example": 3}
    assert both.examples[-1].source == f"{copy}:4"
    capped = load_sft_data(["demo:sft"], max_samples=7)
    assert len(capped.examples) == 7


def test_a_source_with_no_usable_example_is_an_error(tmp_path):
    path = tmp_path / "empty_answers.jsonl"
    path.write_text('{"prompt": "a", "completion": ""}\n{"prompt": "b", "completion": " "}\n')
    err = load_error([path])
    assert f"{path}: no usable SFT example (2 records read; dropped: empty_completion: 2)" in err.message
    assert "non-empty answers" in err.hint
    messages_only_system = tmp_path / "no_user.jsonl"
    messages_only_system.write_text(json.dumps({"messages": [system("x"), assistant("Hello")]}) + "\n")
    assert "empty_prompt: 1" in load_error([messages_only_system]).message


def test_sft_data_in_preference_loading_gets_a_pointer_to_stage_sft():
    with pytest.raises(DpokitError, match="demo:sft is SFT data") as caught:
        load_preference_data(["demo:sft"])
    assert "stage: sft" in caught.value.hint
    with pytest.raises(DpokitError, match="cannot tell the preference data format") as caught:
        load_preference_data([str(SFT / "messages.jsonl")])
    assert "looks like SFT data (messages" in caught.value.hint and "stage: sft" in caught.value.hint
    with pytest.raises(DpokitError, match="'prompt_completion' is an SFT data format"):
        load_preference_data(["demo:train"], format="prompt_completion")


def test_failed_sft_loads_leave_the_files_untouched():
    files = sorted(p for p in BROKEN.iterdir() if p.is_file())
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files}
    for path in files:
        for skip in (False, True):
            with contextlib.suppress(DpokitError):
                load_sft_data([str(path)], skip_bad_records=skip)
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files} == before
    assert sorted(p for p in BROKEN.iterdir() if p.is_file()) == files


# ---------------------------------------------------------------- config: eval split


def test_load_sft_from_config_splits_eval_like_load_from_config():
    cfg = DataConfig(train_files=["demo:sft"], eval_fraction=0.1)
    train, evaluation = load_sft_from_config(cfg, seed=5)
    again, evaluation_again = load_sft_from_config(cfg, seed=5)
    assert len(evaluation.examples) == round(DEMO_SFT_EXAMPLES * 0.1)
    assert len(train.examples) + len(evaluation.examples) == DEMO_SFT_EXAMPLES
    assert conversations(evaluation) == conversations(evaluation_again)
    assert not {e.source for e in train.examples} & {e.source for e in evaluation.examples}
    other = load_sft_from_config(cfg, seed=6)[1]
    assert conversations(other) != conversations(evaluation)
    with_files = load_sft_from_config(DataConfig(train_files=["demo:sft"], eval_files=["demo:heldout"]))
    assert len(with_files[1].examples) == len(load_preference_data(["demo:heldout"]).pairs)
    with pytest.raises(DpokitError, match="leaves no training data \\(1 examples loaded\\)"):
        load_sft_from_config(DataConfig(train_files=["demo:sft"], max_samples=1, eval_fraction=0.5))


# ---------------------------------------------------------------- tokenisation


@pytest.mark.parametrize("settings", [{}, {"apply_chat_template": False}, {"system_prompt": "Be kind."},
                                      {"max_length": 48, "max_prompt_length": 24}])
def test_sft_tokens_are_the_pairs_prompt_and_chosen_tokens(tokenizer, settings):
    cfg = DataConfig(**settings)
    pairs, pair_stats = tokenize_pairs(first_pair_per_answer(load_preference_data(["demo:train"]).pairs), tokenizer, cfg)
    examples, stats = tokenize_sft(load_sft_data(["demo:sft"]).examples, tokenizer, cfg)
    assert [(e.prompt_ids, e.chosen_ids) for e in examples] == [(p.prompt_ids, p.chosen_ids) for p in pairs]
    assert all(e.rejected_ids == [] for e in examples)
    assert [e.meta for e in examples] == [p.meta for p in pairs]
    assert stats.prompt_lengths == pair_stats.prompt_lengths and stats.chosen_lengths == pair_stats.chosen_lengths
    assert stats.rejected_lengths == [] and stats.rejected_truncated == 0
    assert (stats.prompt_truncated, stats.chosen_truncated) == (pair_stats.prompt_truncated, pair_stats.chosen_truncated)
    assert stats.answer_truncated == stats.chosen_truncated
    assert stats.system_prompt_inserted == pair_stats.system_prompt_inserted


def test_multi_turn_sft_trains_on_the_last_turn_only(tokenizer):
    examples = load_sft_data([str(SFT / "messages.jsonl")]).examples
    tokenized, stats = tokenize_sft(examples, tokenizer, DataConfig())
    second = tokenized[1]
    full = tokenizer.apply_chat_template(examples[1].prompt + examples[1].completion, tokenize=False)
    assert tokenizer.decode(second.prompt_ids + second.chosen_ids) == full  # the conversation as rendered
    assert tokenizer.decode(second.chosen_ids) == "49.<|im_end|>\n"
    assert "42." in tokenizer.decode(second.prompt_ids)
    assert stats.template_fallback == 0 and stats.pairs_out == 3


def test_sft_truncation_and_drops(tokenizer):
    examples = load_sft_data([str(SFT / "messages.jsonl")]).examples
    tokenized, stats = tokenize_sft(examples, tokenizer, DataConfig(max_length=30, max_prompt_length=28))
    assert all(len(e.prompt_ids) <= 28 and len(e.prompt_ids) + len(e.chosen_ids) <= 30 for e in tokenized)
    assert stats.prompt_truncated >= 1 and stats.chosen_truncated >= 1
    none_left, dropped = tokenize_sft(examples, tokenizer, DataConfig(max_length=20, max_prompt_length=20))
    assert none_left == [] and dropped.dropped() == {"empty_after_truncation": 3}


# ---------------------------------------------------------------- CLI


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    from dpokit.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def test_inspect_stage_sft_json(tokenizer):
    files = [str(SFT / "messages.jsonl"), str(SFT / "drops.jsonl")]
    code, out, err = run_cli(["data", "inspect", "--stage", "sft", "--json", "--max-length", "40",
                              "--max-prompt-length", "24", *files])
    assert code == 0, err
    report = json.loads(out)
    loaded = load_sft_data(files)
    tokenized, _ = tokenize_sft(loaded.examples, tokenizer, DataConfig(max_length=40, max_prompt_length=24))
    assert report["stage"] == "sft" and report["format"] == "messages, prompt_completion"
    assert report["records"] == 9 and report["examples_found"] == 5 == len(loaded.examples)
    assert report["examples_used"] == len(tokenized)
    assert report["dropped"] == {"duplicate_example": 1, "empty_completion": 1, "empty_prompt": 1,
                                 "undesirable_completion": 1}
    assert set(report["lengths"]) == {"prompt", "completion"}
    assert report["truncation"]["prompt_truncated"] >= 1
    assert report["turns"] == {"single_turn": 4, "multi_turn": 1}
    first = report["examples"][0]
    assert first["prompt"] == tokenizer.decode(tokenized[0].prompt_ids)
    assert first["completion"] == tokenizer.decode(tokenized[0].chosen_ids) == "Hello! How can I help?<|im_end|>\n"
    assert first["tokens"] == {"prompt": len(tokenized[0].prompt_ids), "completion": len(tokenized[0].chosen_ids)}
    assert report["sources"] == files


def test_inspect_stage_sft_text_and_errors():
    code, out, err = run_cli(["data", "inspect", "--stage", "sft", "--skip-bad-records", str(BROKEN / "mixed.jsonl")])
    assert code == 0, err
    for line in ("format:            prompt_completion", "records read:      4", "examples found:    2",
                 "examples usable:   2", "examples dropped:  2", "  unparseable_record: 2", "bad records skipped: 2",
                 f"  {BROKEN / 'mixed.jsonl'}:3: field 'completion'", "  completion: ", "completions cut (right):  0",
                 "[completion, 4 tokens]", "    | 4.<|im_end|>"):
        assert line in out, (line, out)
    assert "<|im_start|>user\n    | What is 2 + 2?<|im_end|>" in out  # rendered with the chat template
    code, out, err = run_cli(["data", "inspect", "--stage", "sft", str(BROKEN / "ends_with_user.jsonl")])
    assert code == 2 and f"{BROKEN / 'ends_with_user.jsonl'}:2: field 'messages[2]'" in err and "Traceback" not in err


def test_inspect_default_stage_is_dpo_and_a_config_can_set_sft(tmp_path):
    code, _, err = run_cli(["data", "inspect", str(SFT / "messages.jsonl")])
    assert code == 2 and "cannot tell the preference data format" in err
    config = tmp_path / "sft.yaml"
    config.write_text("stage: sft\ndata:\n  train_files: [demo:sft]\n", encoding="utf-8")
    code, out, err = run_cli(["data", "inspect", "--json", "--config", str(config)])
    assert code == 0, err
    assert json.loads(out)["examples_found"] == DEMO_SFT_EXAMPLES
    code, out, err = run_cli(["data", "inspect", "--json", "--config", str(config), "--stage", "dpo", "demo:heldout"])
    assert code == 0 and "pairs" in json.loads(out)


def test_convert_stage_sft_writes_messages_that_load_back(tmp_path):
    out = tmp_path / "sft.jsonl"
    sources = [str(SFT / "alpaca.json"), str(SFT / "prompt_completion.jsonl"), "demo:heldout"]
    code, stdout, err = run_cli(["data", "convert", "--stage", "sft", *sources, "--out", str(out)])
    assert code == 0, err
    original = load_sft_data(sources)
    assert f"wrote {len(original.examples)} examples to {out}" in stdout
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert all("messages" in row and not {"prompt", "completion", "chosen"} & set(row) for row in rows)
    assert rows[0]["messages"] == [user("Correct the spelling.\nI recieved the pakage."), assistant("I received the package.")]
    back = load_sft_data([str(out)])
    assert back.format == "messages" and conversations(back) == conversations(original)
    assert [e.meta for e in back.examples][-1] == original.examples[-1].meta  # category/topic kept
    with pytest.raises(DpokitError, match="refusing to overwrite an input file"):
        write_sft_jsonl(back.examples, out)


# ---------------------------------------------------------------- demo:sft


def test_demo_sft_is_in_sync_with_the_demo_train_set():
    """If this fails after the demo set changed: `python scripts/make_demo_sft.py` (one command)."""
    spec = importlib.util.spec_from_file_location("make_demo_sft", REPO / "scripts" / "make_demo_sft.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    demo = Path(str(resources.files("dpokit.data") / "demo"))
    assert script.main(["--check"]) == 0, "src/dpokit/data/demo/sft.jsonl is stale: run python scripts/make_demo_sft.py"
    assert (demo / "sft.jsonl").read_text(encoding="utf-8") == script.render((demo / "train.jsonl").read_text(encoding="utf-8"))
    sft = load_sft_data(["demo:sft"])
    assert sft.format == "messages" and not sft.dropped
    distinct = first_pair_per_answer(load_preference_data(["demo:train"]).pairs)
    assert len(distinct) == DEMO_SFT_EXAMPLES < len(load_preference_data(["demo:train"]).pairs)
    assert conversations(sft) == [(p.prompt, p.chosen) for p in distinct]
    assert [e.meta for e in sft.examples] == [p.meta for p in distinct]


def test_check_mode_notices_a_stale_file(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("make_demo_sft", REPO / "scripts" / "make_demo_sft.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    demo = Path(str(resources.files("dpokit.data") / "demo"))
    shutil.copy(demo / "train.jsonl", tmp_path / "train.jsonl")
    assert script.main(["--check", "--demo-dir", str(tmp_path)]) == 1  # no sft.jsonl yet
    assert script.main(["--demo-dir", str(tmp_path)]) == 0
    assert script.main(["--check", "--demo-dir", str(tmp_path)]) == 0
    with open(tmp_path / "train.jsonl", "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"prompt": "New?", "chosen": "Yes.", "rejected": "No.", "category": "benign",
                                 "topic": "new"}) + "\n")
    assert script.main(["--check", "--demo-dir", str(tmp_path)]) == 1
    assert "sft.jsonl: differs" in capsys.readouterr().err


def test_the_sft_example_config_uses_the_sft_demo_set():
    from dpokit.config import load_config

    config = load_config(REPO / "examples" / "sft-then-dpo.sft.yaml")
    assert config.stage == "sft" and config.data.train_files == ["demo:sft"]
    train, _ = load_sft_from_config(config.data, config.training.seed)
    assert len(train.examples) == DEMO_SFT_EXAMPLES


# ---------------------------------------------------------------- SFT batches on the tiny model


@pytest.mark.usefixtures("one_torch_thread")
def test_sft_examples_collate_and_score_on_the_tiny_model(tiny_model_dir, tokenizer):
    import torch
    from transformers import AutoModelForCausalLM

    from dpokit.data.collate import collate_sft
    from dpokit.objective import sft_batch_loss

    cfg = DataConfig(train_files=[str(SFT / "messages.jsonl"), str(SFT / "alpaca.json")], eval_fraction=0.34,
                     max_length=64, max_prompt_length=48)
    train, evaluation = load_sft_from_config(cfg, seed=1)
    tokenized, _ = tokenize_sft(train.examples, tokenizer, cfg)
    batch = collate_sft(list(enumerate(tokenized)), tokenizer.pad_token_id)
    assert batch["input_ids"].shape[0] == len(tokenized) == 4 and len(evaluation.examples) == 2
    # the loss covers exactly the completion tokens
    assert batch["loss_mask"].sum(dim=1).tolist() == [len(e.chosen_ids) for e in tokenized]
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    loss, metrics = sft_batch_loss(model, batch, chunk_size=16)
    labels = batch["input_ids"].masked_fill(~batch["loss_mask"], -100)
    with torch.no_grad():
        expected = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=labels).loss
    torch.testing.assert_close(loss.detach(), expected, rtol=1e-4, atol=1e-4)
    assert int(metrics["num_tokens"]) == sum(len(e.chosen_ids) for e in tokenized)


@pytest.mark.usefixtures("one_torch_thread")
def test_recipe_trains_sft_on_an_sft_file(tmp_path, tiny_model_dir):
    from dpokit.recipe import train

    config = build_config({
        "stage": "sft",
        "model": {"name_or_path": tiny_model_dir},
        "lora": {"enabled": False},
        "data": {"train_files": [str(SFT / "messages.jsonl"), str(SFT / "sharegpt.json")],
                 "eval_files": [str(SFT / "alpaca.json")], "max_length": 64, "max_prompt_length": 48},
        "training": {"learning_rate": 3e-3, "max_steps": 3, "per_device_train_batch_size": 2,
                     "per_device_eval_batch_size": 4, "eval_steps": 3, "report_to": "none", "seed": 3},
        "output": {"output_dir": str(tmp_path / "run")},
    })
    run_dir = train(config, show_progress=False)
    report = json.loads((run_dir / "data_report.json").read_text())
    assert report["stage"] == "sft" and report["format"] == "messages, sharegpt"
    assert report["examples_used"] == 6 and report["eval"]["examples_used"] == 3
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in lines if "loss" in r]
    assert len(losses) == 3 and all(loss == loss for loss in losses)  # no NaN
    assert (run_dir / "final").is_dir()
