"""Preference data formats: detection, normalisation, containers, strategies, writing.

Fixtures are small hand-written files in tests/data/ (one per format); the real hh-rlhf and
LLaMA-Factory files in the shared data dir are loaded too. No model is loaded here.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import shutil
from pathlib import Path

import pytest

from conftest import HH_RLHF, LLAMAFACTORY
from dpokit.config import DataConfig
from dpokit.data.formats import FORMAT_NAMES, detect_format
from dpokit.data.load import load_from_config, load_preference_data
from dpokit.data.write import source_path, write_pairs_jsonl
from dpokit.data.ranking import RatedAnswer, pair_up
from dpokit.data.types import prompt_key
from dpokit.errors import DpokitError

DATA = Path(__file__).parent / "data"
REGISTRY = DATA / "registry" / "dataset_info.json"
LF_REGISTRY = LLAMAFACTORY / "dataset_info.json"


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def user(text: str) -> dict:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict:
    return {"role": "assistant", "content": text}


def system(text: str) -> dict:
    return {"role": "system", "content": text}


def as_tuples(result) -> list[tuple]:
    """Pairs as comparable values (source left out: it names the file)."""
    return [(p.prompt, p.chosen, p.rejected, p.meta) for p in result.pairs]


# --- every format, detected automatically ------------------------------------------------


@pytest.mark.parametrize(
    "name, expected_format, n_records, n_pairs, dropped",
    [
        ("standard.jsonl", "standard", 4, 4, {}),
        ("standard.csv", "standard", 3, 3, {}),
        ("conversational.jsonl", "conversational", 4, 4, {}),
        ("implicit_prompt.jsonl", "implicit_prompt", 3, 2, {"no_shared_prompt": 1}),
        ("hh_rlhf.jsonl", "hh_rlhf", 3, 3, {}),
        ("sharegpt_ranking.json", "sharegpt", 3, 3, {}),
        ("alpaca_ranking.json", "alpaca", 2, 2, {}),
        ("orca_dpo_pairs.jsonl", "orca_dpo_pairs", 2, 2, {}),
        ("stack_exchange_paired.jsonl", "stack_exchange_paired", 2, 2, {}),
        ("pku_saferlhf.jsonl", "pku_saferlhf", 2, 2, {}),
        ("ranked_completions.jsonl", "ranked", 2, 1, {"tie": 1}),
        ("ranked_lists.jsonl", "ranked", 2, 2, {}),
        (
            "drops.jsonl",
            "standard",
            7,
            2,
            {"duplicate_pair": 1, "identical_answers": 1, "empty_answer": 2, "empty_prompt": 1},
        ),
    ],
)
def test_each_format_is_detected_and_counted(name, expected_format, n_records, n_pairs, dropped):
    result = load_preference_data([str(DATA / name)])
    assert result.format == expected_format
    assert result.records == n_records
    assert len(result.pairs) == n_pairs
    assert dict(result.dropped) == dropped
    for pair in result.pairs:
        assert pair.prompt and pair.chosen and pair.rejected
        assert all(m["role"] == "assistant" for m in pair.chosen + pair.rejected)
        assert source_path(pair.source) == DATA / name


def test_standard_text_is_kept_exactly_with_system_and_meta():
    result = load_preference_data([str(DATA / "standard.jsonl")])
    raw = read_jsonl(DATA / "standard.jsonl")
    first, third, fourth = result.pairs[0], result.pairs[2], result.pairs[3]
    assert first.prompt == [user(raw[0]["prompt"])]
    assert first.chosen == [assistant(raw[0]["chosen"])]
    assert first.rejected == [assistant(raw[0]["rejected"])]
    assert first.meta == {"category": "cooking"}
    assert first.source == f"{DATA / 'standard.jsonl'}:1"
    assert third.prompt == [system("You are a careful translator."), user("Translate 'thank you' into French.")]
    assert "system" not in third.meta
    # inner and outer whitespace of answers survive
    assert fourth.chosen[0]["content"] == "  Blue, because air scatters\n short wavelengths more.  "


def test_csv_multiline_cell_and_row_lines():
    result = load_preference_data([str(DATA / "standard.csv")])
    poem = result.pairs[1]
    assert poem.chosen == [assistant("Roses bloom,\nthe room smells sweet.")]
    assert poem.meta == {"category": "writing"}
    # the header is line 1; the poem row starts on line 3 and spans two lines
    assert [p.source.rsplit(":", 1)[1] for p in result.pairs] == ["2", "3", "5"]


def test_conversational_system_roles_and_repeated_prompt():
    pairs = load_preference_data([str(DATA / "conversational.jsonl")]).pairs
    assert pairs[0].prompt == [user("What is 2 + 2?")]
    assert pairs[1].prompt == [
        system("You answer in one word."),
        user("Capital of Italy?"),
        assistant("Rome"),
        user("And of Spain?"),
    ]
    assert pairs[1].num_user_turns == 2
    # human/bot/gpt spellings become user/assistant
    assert pairs[2].prompt == [system("Be brief."), user("Is ice cold?")]
    assert pairs[2].chosen == [assistant("Yes.")] and pairs[2].rejected == [assistant("It is hot.")]
    # ultrafeedback_binarized style: answers repeat the prompt, which is cut off
    assert pairs[3].prompt == [user("Largest planet?")]
    assert pairs[3].chosen == [assistant("Jupiter.")] and pairs[3].rejected == [assistant("Mars.")]
    assert pairs[3].meta == {"score_chosen": 9.0, "score_rejected": 2.0}


def test_implicit_prompt_is_the_shared_prefix():
    result = load_preference_data([str(DATA / "implicit_prompt.jsonl")])
    first, second = result.pairs
    assert first.prompt == [user("What is the boiling point of water at sea level?")]
    assert first.chosen == [assistant("100 degrees Celsius.")]
    assert first.rejected == [assistant("50 degrees Celsius.")]
    assert [m["role"] for m in second.prompt] == ["system", "user", "assistant", "user"]
    assert second.chosen == [assistant("Eight.")] and second.rejected == [assistant("Six.")]
    # the third record differs in its first answer, before a later user turn: no shared prompt
    assert result.dropped["no_shared_prompt"] == 1


def test_hh_rlhf_fixture_turns():
    pairs = load_preference_data([str(DATA / "hh_rlhf.jsonl")]).pairs
    assert pairs[0].prompt == [user("Can you recommend a book about the sea?")]
    assert pairs[0].chosen == [assistant("Moby-Dick is a classic novel about a whaling voyage.")]
    assert pairs[1].prompt == [
        user("I want to learn to juggle."),
        assistant("Start with two soft balls."),
        user("And then?"),
    ]
    assert pairs[1].chosen == [assistant("Add a third ball once two feel easy.")]  # stripped
    # two Assistant turns in a row are one message, so roles alternate
    assert pairs[2].prompt == [
        user("Tell me a fact."),
        assistant("Octopuses have three hearts.\n\nThey also have blue blood."),
        user("Another one?"),
    ]
    assert pairs[2].rejected == [assistant("I am tired of facts.")]


def test_real_hh_rlhf_file_loads_directly():
    result = load_preference_data([str(HH_RLHF)])
    with gzip.open(HH_RLHF, "rt", encoding="utf-8") as handle:
        raw = [json.loads(line) for line in handle]
    assert result.format == "hh_rlhf"
    assert result.records == len(raw)
    # every record either gives a pair or is counted as dropped, with a reason
    assert len(result.pairs) + sum(result.dropped.values()) == len(raw)
    # the records whose last Assistant turn is empty are exactly the drops
    empty = [r for r in raw if not r["chosen"].rsplit("Assistant:", 1)[1].strip() or not r["rejected"].rsplit("Assistant:", 1)[1].strip()]
    assert dict(result.dropped) == {"empty_answer": len(empty)}
    for pair, record in zip(result.pairs[:20], raw[:20]):
        human_turns = record["chosen"].count("\n\nHuman: ")
        assert pair.num_user_turns == human_turns
        assert len(pair.prompt) == 2 * human_turns - 1
        assert [m["role"] for m in pair.prompt] == ["user", "assistant"] * (human_turns - 1) + ["user"]
        last_answer = record["chosen"].rsplit("\n\nAssistant:", 1)[1].strip()
        assert pair.chosen == [assistant(last_answer)]
        assert pair.prompt[0]["content"] == record["chosen"].split("\n\nHuman: ")[1].split("\n\nAssistant:")[0].strip()


def test_sharegpt_file_with_system_and_chinese():
    pairs = load_preference_data([str(DATA / "sharegpt_ranking.json")]).pairs
    assert pairs[0].prompt == [user("Suggest a name for a grey cat.")]
    assert pairs[1].prompt == [system("你是一个乐于助人的助手。"), user("用一句话介绍长城。")]
    assert pairs[1].chosen == [assistant("长城是中国古代修建的防御工程，绵延数千公里。")]
    assert pairs[2].prompt == [user("What is 3 times 3?"), assistant("9"), user("And 3 times 4?")]
    assert pairs[1].source.endswith("sharegpt_ranking.json:9 (record 2)")


def _expected_llamafactory(path: Path) -> list[tuple]:
    """What dpo_*_demo.json should give, computed straight from the raw JSON."""
    role = {"human": "user", "gpt": "assistant", "system": "system"}
    seen, expected = set(), []
    for record in json.loads(path.read_text(encoding="utf-8")):
        prompt = [{"role": role[m["from"]], "content": m["value"]} for m in record["conversations"]]
        pair = (prompt, [assistant(record["chosen"]["value"])], [assistant(record["rejected"]["value"])])
        key = json.dumps(pair, ensure_ascii=False)
        if key not in seen:
            seen.add(key)
            expected.append(pair)
    return expected


def test_llamafactory_registry_demo_sets_load_with_chinese_intact():
    result = load_preference_data(["dpo_en_demo", "dpo_zh_demo"], registry=str(LF_REGISTRY))
    expected = _expected_llamafactory(LLAMAFACTORY / "dpo_en_demo.json")
    expected += _expected_llamafactory(LLAMAFACTORY / "dpo_zh_demo.json")
    assert result.format == "sharegpt"
    assert result.records == 600
    assert [(p.prompt, p.chosen, p.rejected) for p in result.pairs] == expected
    assert dict(result.dropped) == {"duplicate_pair": 600 - len(expected)}
    zh = [p for p in result.pairs if source_path(p.source).name == "dpo_zh_demo.json"]
    assert zh and any(p.system for p in zh)
    raw_bytes = (LLAMAFACTORY / "dpo_zh_demo.json").read_bytes()
    for pair in zh[:50]:
        for message in pair.prompt + pair.chosen:
            encoded = json.dumps(message["content"], ensure_ascii=False).encode("utf-8")
            assert encoded in raw_bytes, "Chinese text must survive byte for byte"


def test_llamafactory_demo_file_also_loads_without_registry():
    direct = load_preference_data([str(LLAMAFACTORY / "dpo_zh_demo.json")])
    via_registry = load_preference_data(["dpo_zh_demo"], registry=str(LF_REGISTRY))
    assert direct.format == "sharegpt"
    assert as_tuples(direct) == as_tuples(via_registry)


def test_registry_fixture_columns_tags_and_alpaca():
    tagged = load_preference_data(["my_openai_tags"], registry=str(REGISTRY))
    assert tagged.pairs[0].prompt == [system("Answer accurately."), user("Is the sun a star?")]
    assert tagged.pairs[0].chosen == [assistant("Yes, a G-type main-sequence star.")]
    assert tagged.pairs[1].prompt == [user("Hello"), assistant("Hi!"), user("Is water wet?")]
    alpaca = load_preference_data(["my_alpaca", "my_sharegpt"], registry=str(REGISTRY))
    assert alpaca.format == "alpaca, sharegpt"
    assert alpaca.pairs[0].prompt == [
        system("You are a proofreader."),
        user("Correct: teh"),
        assistant("the"),
        user("Correct the spelling.\nI recieved the pakage."),
    ]
    assert alpaca.pairs[0].chosen == [assistant("I received the package.")]
    assert alpaca.pairs[1].prompt == [user("Name a month with 28 days.")]
    assert alpaca.pairs[2].prompt == [user("Two plus two?")]
    # plain files still load when a registry is set
    mixed = load_preference_data(["my_sharegpt", str(DATA / "standard.jsonl")], registry=str(REGISTRY))
    assert len(mixed.pairs) == 5


def test_alpaca_file_input_history_system():
    first, second = load_preference_data([str(DATA / "alpaca_ranking.json")]).pairs
    assert first.prompt == [user("Summarise the text.\nThe meeting moved from Monday to Tuesday.")]
    assert second.prompt == [
        system("Answer with one word."),
        user("Give a synonym of 'big'."),
        assistant("Large."),
        user("Give an antonym of 'hot'."),
    ]


def test_orca_detected_and_column_map_agree(tmp_path):
    detected = load_preference_data([str(DATA / "orca_dpo_pairs.jsonl")])
    mapped = load_preference_data(
        [str(DATA / "orca_dpo_pairs.jsonl")],
        columns={"prompt": "question", "chosen": "chatgpt", "rejected": "llama2-13b-chat", "system": "system"},
    )
    assert mapped.format == "standard"
    assert as_tuples(detected) == as_tuples(mapped)
    first, second = detected.pairs
    assert first.prompt == [user("Is a tomato a fruit?")]  # empty system: no system message
    assert first.chosen == [assistant("Botanically, yes: it develops from a flower and holds seeds.")]
    assert first.rejected == [assistant("No, it is a vegetable, obviously.")]
    assert second.system == "You are an AI assistant. Think step by step."


def test_column_map_on_own_names_including_swap(tmp_path):
    path = tmp_path / "mine.jsonl"
    path.write_text(json.dumps({"q": "Pick a number.", "good": "Seven.", "bad": "Banana.", "tag": "x"}) + "\n", encoding="utf-8")
    pair = load_preference_data([str(path)], columns={"prompt": "q", "chosen": "good", "rejected": "bad"}).pairs[0]
    assert (pair.prompt, pair.chosen, pair.rejected, pair.meta) == (
        [user("Pick a number.")], [assistant("Seven.")], [assistant("Banana.")], {"tag": "x"}
    )
    swapped = load_preference_data([str(DATA / "standard.jsonl")], columns={"chosen": "rejected", "rejected": "chosen"})
    assert swapped.pairs[0].chosen == [assistant("Eggs are laid by hens.")]


def test_stack_exchange_paired():
    first = load_preference_data([str(DATA / "stack_exchange_paired.jsonl")]).pairs[0]
    assert first.prompt == [user("How do I reverse a list in Python?")]
    assert first.chosen == [assistant("Use `items[::-1]` for a copy or `items.reverse()` in place.")]
    assert first.rejected == [assistant("Write a loop.")]
    assert first.meta == {"qid": 101, "date": "2020/01/02"}  # the metadata list is left out


def test_pku_saferlhf_better_by_default_safer_by_column_map():
    better = load_preference_data([str(DATA / "pku_saferlhf.jsonl")]).pairs
    safer = load_preference_data([str(DATA / "pku_saferlhf.jsonl")], columns={"chosen_id": "safer_response_id"}).pairs
    raw = read_jsonl(DATA / "pku_saferlhf.jsonl")
    for pairs, id_key in ((better, "better_response_id"), (safer, "safer_response_id")):
        for pair, record in zip(pairs, raw):
            chosen = record[f"response_{record[id_key]}"]
            rejected = record[f"response_{1 - record[id_key]}"]
            assert pair.chosen == [assistant(chosen)] and pair.rejected == [assistant(rejected)]
    assert better[1].chosen != safer[1].chosen  # the two ids disagree on record 2
    assert better[1].meta["is_response_1_safe"] is True


# --- ranked answers and pair strategies ---------------------------------------------------


@pytest.mark.parametrize(
    "strategy, expected, ties",
    [
        ("best_vs_worst", [("Rain is water falling from clouds.", "Rain is a kind of sunshine.")], 1),
        (
            "best_vs_each",
            [
                ("Rain is water falling from clouds.", "Rain is wet."),
                ("Rain is water falling from clouds.", "Rain is a kind of sunshine."),
                ("Rain is water falling from clouds.", "Drops of water fall from the sky."),
            ],
            1,
        ),
        (
            "all_pairs",
            [
                ("Rain is water falling from clouds.", "Rain is wet."),
                ("Rain is water falling from clouds.", "Rain is a kind of sunshine."),
                ("Rain is water falling from clouds.", "Drops of water fall from the sky."),
                ("Rain is wet.", "Rain is a kind of sunshine."),
                ("Drops of water fall from the sky.", "Rain is a kind of sunshine."),
            ],
            2,  # "Rain is wet." ties "Drops of water...", and the second record's two answers tie
        ),
    ],
)
def test_ranked_strategies_and_ties(strategy, expected, ties):
    result = load_preference_data([str(DATA / "ranked_completions.jsonl")], pair_strategy=strategy)
    assert [(p.chosen[0]["content"], p.rejected[0]["content"]) for p in result.pairs] == expected
    assert result.dropped["tie"] == ties
    assert all(p.prompt == [user("Describe rain in one sentence.")] for p in result.pairs)
    assert result.pairs[0].meta == {"source": "handwritten"}


def test_ranked_parallel_lists_scores_and_ranks():
    result = load_preference_data([str(DATA / "ranked_lists.jsonl")])
    bat, chess = result.pairs
    assert (bat.chosen, bat.rejected) == ([assistant("A bat.")], [assistant("A penguin.")])
    # ranks: lower is better
    assert (chess.chosen, chess.rejected) == ([assistant("e4 is a popular opening move.")], [assistant("Move the king first.")])
    each = load_preference_data([str(DATA / "ranked_lists.jsonl")], pair_strategy="best_vs_each")
    assert len(each.pairs) == 4


def test_pair_up_ties_with_the_best_resolve_to_record_order():
    answers = [RatedAnswer("a", 1.0), RatedAnswer("b", 3.0), RatedAnswer("c", 3.0), RatedAnswer("d", 1.0)]
    assert pair_up(answers, "best_vs_worst") == ([("b", "a")], 0)
    assert pair_up(answers, "best_vs_each") == ([("b", "a"), ("b", "d")], 1)
    pairs, ties = pair_up(answers, "all_pairs")
    assert sorted(pairs) == sorted([("b", "a"), ("c", "a"), ("b", "d"), ("c", "d")]) and ties == 2
    assert pair_up([RatedAnswer("x", 2.0), RatedAnswer("y", 2.0)], "best_vs_worst") == ([], 1)
    assert pair_up([RatedAnswer("x", 2.0)], "all_pairs") == ([], 0)


def test_ranked_identical_texts_with_different_scores_are_dropped(tmp_path):
    path = tmp_path / "dup_answers.jsonl"
    record = {"prompt": "Hi?", "responses": ["Hello.", "Hello.", "Go."], "scores": [3, 2, 1]}
    path.write_text(json.dumps(record) + "\n", encoding="utf-8")
    result = load_preference_data([str(path)], pair_strategy="all_pairs")
    assert [(p.chosen[0]["content"], p.rejected[0]["content"]) for p in result.pairs] == [("Hello.", "Go.")]
    assert result.dropped == {"identical_answers": 1, "duplicate_pair": 1}


# --- containers -----------------------------------------------------------------------------


@pytest.fixture()
def standard_records() -> list[dict]:
    """standard.jsonl's records, each with every column (tables take their columns from row 1)."""
    return [{"system": None, **record} for record in read_jsonl(DATA / "standard.jsonl")]


def _write_containers(records: list[dict], out: Path) -> dict[str, Path]:
    """The same records in every supported container."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    paths = {}
    paths["array"] = out / "pairs.json"
    paths["array"].write_text(json.dumps(records, indent=2, ensure_ascii=False), encoding="utf-8")
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    paths["jsonl_gz"] = out / "pairs.jsonl.gz"
    paths["jsonl_gz"].write_bytes(gzip.compress(lines.encode("utf-8")))
    paths["json_gz"] = out / "pairs_array.json.gz"
    paths["json_gz"].write_bytes(gzip.compress(paths["array"].read_bytes()))
    paths["jsonl_named_json"] = out / "lines.json"  # JSON Lines under a .json name
    paths["jsonl_named_json"].write_text(lines, encoding="utf-8")
    paths["csv"] = out / "pairs.csv"
    columns = ["prompt", "chosen", "rejected", "category", "system"]
    with paths["csv"].open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows({c: r.get(c, "") for c in columns} for r in records)
    paths["parquet"] = out / "pairs.parquet"
    pq.write_table(pa.Table.from_pylist(records), paths["parquet"])
    return paths


def test_every_container_gives_the_same_pairs(tmp_path, standard_records):
    expected = as_tuples(load_preference_data([str(DATA / "standard.jsonl")]))
    for kind, path in _write_containers(standard_records, tmp_path).items():
        result = load_preference_data([str(path)])
        assert result.format == "standard", kind
        assert as_tuples(result) == expected, kind


def test_saved_datasets_dirs_and_directories(tmp_path, standard_records):
    import datasets

    expected = as_tuples(load_preference_data([str(DATA / "standard.jsonl")]))
    single = tmp_path / "saved"
    datasets.Dataset.from_list(standard_records).save_to_disk(str(single))
    result = load_preference_data([str(single)])
    assert as_tuples(result) == expected
    assert result.pairs[1].source == f"{single}: record 2"
    split = tmp_path / "saved_dict"
    datasets.DatasetDict(
        {"train": datasets.Dataset.from_list(standard_records), "test": datasets.Dataset.from_list(standard_records[:1])}
    ).save_to_disk(str(split))
    assert as_tuples(load_preference_data([str(split)])) == expected
    # a plain directory: every data file in it, by name
    folder = tmp_path / "folder"
    folder.mkdir()
    shutil.copy(DATA / "standard.jsonl", folder / "a.jsonl")
    shutil.copy(DATA / "hh_rlhf.jsonl", folder / "b.jsonl")
    (folder / "README.txt").write_text("not data", encoding="utf-8")
    result = load_preference_data([str(folder)])
    assert result.format == "standard, hh_rlhf"
    assert len(result.pairs) == 4 + 3


# --- detection, forcing, dedupe, limits -------------------------------------------------------


def test_detect_format_shapes():
    assert detect_format({"prompt": "p", "chosen": "c", "rejected": "r"}) == "standard"
    assert detect_format({"prompt": [], "chosen": [], "rejected": []}) == "conversational"
    assert detect_format({"chosen": [], "rejected": []}) == "implicit_prompt"
    assert detect_format({"chosen": "\n\nHuman: a\n\nAssistant: b", "rejected": "x"}) == "hh_rlhf"
    assert detect_format({"conversations": [], "chosen": {}, "rejected": {}}) == "sharegpt"
    assert detect_format({"instruction": "i", "input": "", "chosen": "c", "rejected": "r"}) == "alpaca"
    assert detect_format({"prompt": "p", "response_0": "a", "response_1": "b", "safer_response_id": 1}) == "pku_saferlhf"
    assert detect_format({"instruction": "i", "completions": []}) == "ranked"
    assert detect_format({"chosen": "plain", "rejected": "text"}) is None
    assert detect_format({"text": "x"}) is None


def test_format_forcing(tmp_path):
    path = tmp_path / "both.jsonl"
    record = {"prompt": "Q?", "chosen": "Forced.", "rejected": "Not.", "responses": ["R1", "R2"], "scores": [1, 2]}
    path.write_text(json.dumps(record) + "\n", encoding="utf-8")
    auto = load_preference_data([str(path)])
    assert auto.format == "ranked" and auto.pairs[0].chosen == [assistant("R2")]
    forced = load_preference_data([str(path)], format="standard")
    assert forced.format == "standard" and forced.pairs[0].chosen == [assistant("Forced.")]
    assert load_preference_data([str(DATA / "hh_rlhf.jsonl")], format="hh-rlhf").format == "hh_rlhf"
    with pytest.raises(DpokitError) as err:
        load_preference_data([str(DATA / "standard.jsonl")], format="hh_rlhf")
    assert "standard.jsonl:1" in str(err.value) and "'chosen'" in str(err.value)


def test_every_format_name_is_accepted():
    assert FORMAT_NAMES[0] == "auto"
    for name in FORMAT_NAMES:
        try:
            load_preference_data([str(DATA / "standard.jsonl")], format=name)
        except DpokitError as err:  # the wrong shape for this file, but a known format
            assert "unknown data format" not in str(err)
            assert "standard.jsonl:1" in str(err)


def test_duplicates_are_dropped_across_sources():
    result = load_preference_data([str(DATA / "standard.jsonl"), str(DATA / "standard.csv")])
    # the CSV repeats the egg and prime pairs (same category), and adds the poem
    assert len(result.pairs) == 5
    assert result.dropped == {"duplicate_pair": 2}
    assert result.records == 7


def test_max_samples_stops_early():
    result = load_preference_data([str(DATA / "standard.jsonl"), str(DATA / "hh_rlhf.jsonl")], max_samples=5)
    assert len(result.pairs) == 5
    assert result.records == 5
    assert result.pairs[-1].source.endswith("hh_rlhf.jsonl:1")


def test_demo_sources():
    with pytest.raises(DpokitError, match="demo:train"):
        load_preference_data(["demo:nope"])
    from importlib import resources

    if not (resources.files("dpokit.data") / "demo" / "train.jsonl").is_file():
        pytest.skip("the demo set is not written yet")
    result = load_preference_data(["demo:train"])
    assert result.pairs and result.format == "standard"
    assert all("category" in p.meta for p in result.pairs)


# --- config ------------------------------------------------------------------------------------


def test_load_from_config_eval_files_split_and_registry():
    cfg = DataConfig(train_files=[str(DATA / "standard.jsonl")], eval_files=[str(DATA / "hh_rlhf.jsonl")])
    train, held = load_from_config(cfg)
    assert len(train.pairs) == 4 and held is not None and held.format == "hh_rlhf" and len(held.pairs) == 3

    assert load_from_config(DataConfig(train_files=[str(DATA / "standard.jsonl")]))[1] is None

    cfg = DataConfig(train_files=[str(HH_RLHF)], eval_fraction=0.1)
    all_pairs = as_tuples(load_preference_data([str(HH_RLHF)]))
    train, held = load_from_config(cfg, seed=1)
    again_train, again_held = load_from_config(cfg, seed=1)
    other_train, other_held = load_from_config(cfg, seed=2)
    prompts = {prompt_key(p) for p in train.pairs + held.pairs}
    assert len(held.pairs) >= round(0.1 * len(prompts))  # whole prompts: about a tenth of the pairs
    assert not {prompt_key(p) for p in train.pairs} & {prompt_key(p) for p in held.pairs}
    assert as_tuples(held) == as_tuples(again_held) and as_tuples(train) == as_tuples(again_train)
    assert as_tuples(held) != as_tuples(other_held)
    sources = [p.source for p in train.pairs] + [p.source for p in held.pairs]
    assert len(set(sources)) == len(all_pairs)
    assert [p.source for p in held.pairs] == sorted((p.source for p in held.pairs), key=lambda s: int(s.rsplit(":", 1)[1]))

    # demo:train asks each edgy benign prompt in two pairs: both go to the same side
    train, held = load_from_config(DataConfig(train_files=["demo:train"], eval_fraction=0.2), seed=3)
    held_prompts = {prompt_key(p) for p in held.pairs}
    assert held_prompts and not {prompt_key(p) for p in train.pairs} & held_prompts
    assert len(held.pairs) > len(held_prompts)  # some held-out prompts came with both their pairs

    cfg = DataConfig(train_files=["my_alpaca"], registry=str(REGISTRY), max_samples=1)
    train, held = load_from_config(cfg)
    assert len(train.pairs) == 1 and train.format == "alpaca" and held is None


# --- writing ------------------------------------------------------------------------------------


def _load_mixed():
    return load_preference_data(
        [str(DATA / n) for n in ("standard.jsonl", "conversational.jsonl", "sharegpt_ranking.json", "stack_exchange_paired.jsonl")]
    )


def test_write_pairs_jsonl_round_trip(tmp_path):
    loaded = _load_mixed()
    out = tmp_path / "out" / "pairs.jsonl"
    assert write_pairs_jsonl(loaded.pairs, out) == len(loaded.pairs)
    text = out.read_text(encoding="utf-8")
    assert "长城" in text  # not \u-escaped
    assert [p.name for p in out.parent.iterdir()] == ["pairs.jsonl"]  # no temp file left
    again = load_preference_data([str(out)])
    assert again.format == "conversational"
    assert [(p.prompt, p.chosen, p.rejected) for p in again.pairs] == [(p.prompt, p.chosen, p.rejected) for p in loaded.pairs]
    assert [p.meta for p in again.pairs] == [p.meta for p in loaded.pairs]


def test_written_file_is_read_by_datasets_as_trl_expects(tmp_path):
    import datasets

    loaded = _load_mixed()
    out = tmp_path / "pairs.jsonl"
    write_pairs_jsonl(loaded.pairs, out)
    ds = datasets.load_dataset("json", data_files=str(out), split="train", cache_dir=str(tmp_path / "hf_cache"))
    assert {"prompt", "chosen", "rejected"} <= set(ds.column_names)
    assert len(ds) == len(loaded.pairs)
    for row, pair in zip(ds, loaded.pairs):
        # what TRL's is_conversational checks: each column a list of role/content messages
        for column in ("prompt", "chosen", "rejected"):
            assert isinstance(row[column], list) and all({"role", "content"} <= set(m) for m in row[column])
        assert [{"role": m["role"], "content": m["content"]} for m in row["prompt"]] == pair.prompt
        assert [{"role": m["role"], "content": m["content"]} for m in row["chosen"]] == pair.chosen


def test_write_refuses_to_overwrite_an_input_and_mixed_meta_is_text(tmp_path):
    copy = tmp_path / "in.jsonl"
    shutil.copy(DATA / "standard.jsonl", copy)
    before = copy.read_bytes()
    loaded = load_preference_data([str(copy)])
    with pytest.raises(DpokitError, match="refusing to overwrite an input file"):
        write_pairs_jsonl(loaded.pairs, copy)
    assert copy.read_bytes() == before
    loaded.pairs[0].meta["category"] = 3  # category becomes a mixed int/text column
    out = tmp_path / "mixed.jsonl"
    write_pairs_jsonl(loaded.pairs, out)
    assert [json.loads(line)["category"] for line in out.read_text().splitlines()][:2] == ["3", "math"]


def test_loading_never_modifies_inputs(tmp_path, standard_records):
    paths = list(_write_containers(standard_records, tmp_path).values())
    paths += [DATA / n for n in ("standard.jsonl", "hh_rlhf.jsonl", "sharegpt_ranking.json")]
    paths += [HH_RLHF, LLAMAFACTORY / "dpo_zh_demo.json"]

    def fingerprint() -> dict:
        return {p: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns) for p in paths}

    before = fingerprint()
    for path in paths:
        load_preference_data([str(path)])
    paths += [LF_REGISTRY, LLAMAFACTORY / "dpo_en_demo.json"]
    before.update(fingerprint())
    load_preference_data(["dpo_en_demo"], registry=str(LF_REGISTRY))
    assert fingerprint() == before
