"""Bad preference data: each broken file gives one clear DpokitError (file, line or record,
field, what to do); skip_bad_records turns bad records into counted drops; nothing is modified."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import pytest

from conftest import LLAMAFACTORY
from dpokit.data.load import load_preference_data
from dpokit.errors import DpokitError

DATA = Path(__file__).parent / "data"
BROKEN = DATA / "broken"
REGISTRY = DATA / "registry" / "dataset_info.json"


def load_error(sources, **kwargs) -> DpokitError:
    with pytest.raises(DpokitError) as caught:
        load_preference_data([str(s) for s in sources], **kwargs)
    return caught.value


# (case, sources, keyword args, parts the message must contain, parts the hint must contain)
CASES = [
    (
        "invalid JSON on line 3",
        [BROKEN / "invalid_json.jsonl"],
        {},
        [f"{BROKEN / 'invalid_json.jsonl'}:3:", "invalid JSON", "column 49"],
        ["fix the JSON on this line", "skip_bad_records"],
    ),
    (
        "record missing rejected",
        [BROKEN / "missing_rejected.jsonl"],
        {},
        [f"{BROKEN / 'missing_rejected.jsonl'}:3:", "field 'rejected'", "is missing", "chosen, prompt"],
        ["fix the record", "skip_bad_records"],
    ),
    (
        "number where text belongs",
        [BROKEN / "wrong_type.jsonl"],
        {},
        [f"{BROKEN / 'wrong_type.jsonl'}:2:", "field 'chosen'", "got a number (42)"],
        ["fix the record"],
    ),
    ("empty file", [BROKEN / "empty.jsonl"], {}, [str(BROKEN / "empty.jsonl"), "file is empty"], ["at least one"]),
    (
        "file that does not exist",
        [BROKEN / "no_such_file.jsonl"],
        {},
        [str(BROKEN / "no_such_file.jsonl"), "file not found"],
        ["check the path"],
    ),
    (
        "directory with no data",
        [BROKEN / "no_data_dir"],
        {},
        [str(BROKEN / "no_data_dir"), "no data files"],
        [".jsonl", ".parquet", "save_to_disk"],
    ),
    (
        "non-UTF-8 bytes",
        [BROKEN / "not_utf8.jsonl"],
        {},
        [f"{BROKEN / 'not_utf8.jsonl'}:2:", "not UTF-8", "0xe9"],
        ["save the file as UTF-8"],
    ),
    (
        "column map naming a missing column",
        [DATA / "orca_dpo_pairs.jsonl"],
        {"columns": {"prompt": "question", "chosen": "gpt4", "rejected": "llama2-13b-chat"}},
        [f"{DATA / 'orca_dpo_pairs.jsonl'}:1:", "field 'gpt4'", "'chosen'", "chatgpt"],
        ["fix the column map", "data.columns"],
    ),
    (
        "messages list with an unknown role",
        [BROKEN / "unknown_role.jsonl"],
        {},
        [f"{BROKEN / 'unknown_role.jsonl'}:2:", "field 'prompt[0].role'", "unknown role 'narrator'"],
        ["system, user (or human), assistant"],
    ),
    (
        "invalid JSON inside an array",
        [BROKEN / "invalid_array.json"],
        {},
        [f"{BROKEN / 'invalid_array.json'}:3:", "invalid JSON"],
        ["fix the JSON there", "cannot skip"],
    ),
    (
        "fields of no known format",
        [BROKEN / "unknown_format.jsonl"],
        {},
        [f"{BROKEN / 'unknown_format.jsonl'}:1:", "cannot tell", "query, good_answer, bad_answer"],
        ["data.columns", "data.format", "hh_rlhf"],
    ),
    (
        "no usable pair",
        [BROKEN / "all_identical.jsonl"],
        {},
        [str(BROKEN / "all_identical.jsonl"), "no usable preference pair", "2 records", "identical_answers: 2"],
        ["distinct, non-empty answers"],
    ),
    (
        "a registry file given as data",
        [LLAMAFACTORY / "dataset_info.json"],
        {},
        [str(LLAMAFACTORY / "dataset_info.json"), "one JSON object, not a list of records"],
        ["data.registry"],
    ),
    (
        "unknown format name",
        [DATA / "standard.jsonl"],
        {"format": "hh_rlfh"},
        ["unknown data format 'hh_rlfh'"],
        ["did you mean 'hh_rlhf'", "sharegpt"],
    ),
    (
        "unknown column map role",
        [DATA / "standard.jsonl"],
        {"columns": {"promt": "question"}},
        ["column map", "unknown role 'promt'"],
        ["did you mean 'prompt'"],
    ),
    ("unknown pair strategy", [DATA / "ranked_lists.jsonl"], {"pair_strategy": "best"}, ["'best'"], ["best_vs_worst"]),
    (
        "registry: unknown dataset",
        ["my_sharegtp"],
        {"registry": str(REGISTRY)},
        [str(REGISTRY), "no dataset named 'my_sharegtp'"],
        ["did you mean 'my_sharegpt'"],
    ),
    (
        "registry: not a ranking dataset",
        ["my_sft"],
        {"registry": str(REGISTRY)},
        ["dataset 'my_sft'", "not preference data", '"ranking": true'],
        ["my_sharegpt"],
    ),
    (
        "registry: hub-only dataset",
        ["hub_only"],
        {"registry": str(REGISTRY)},
        ["dataset 'hub_only'", "no local file_name"],
        ["download someone/some-preferences"],
    ),
    (
        "registry file missing",
        ["my_sharegpt"],
        {"registry": str(DATA / "registry" / "nope.json")},
        [str(DATA / "registry" / "nope.json"), "registry file not found"],
        ["dataset_info.json"],
    ),
    (
        "a hub id",
        ["Intel/orca_dpo_pairs"],
        {},
        ["Intel/orca_dpo_pairs", "file not found"],
        ["no dataset hub is reachable"],
    ),
]


@pytest.mark.parametrize("case, sources, kwargs, message_parts, hint_parts", CASES, ids=[c[0] for c in CASES])
def test_broken_input_gives_one_clear_error(case, sources, kwargs, message_parts, hint_parts):
    err = load_error(sources, **kwargs)
    for part in message_parts:
        assert part in err.message, f"{case}: {part!r} not in {err.message!r}"
    assert err.hint, f"{case}: no hint on what to do"
    for part in hint_parts:
        assert part in err.hint, f"{case}: {part!r} not in hint {err.hint!r}"
    assert "Traceback" not in str(err)


def test_corrupt_gzip_and_empty_array(tmp_path):
    bad_gz = tmp_path / "cut.jsonl.gz"
    bad_gz.write_bytes(gzip.compress(b'{"prompt": "a", "chosen": "b", "rejected": "c"}\n' * 50)[:40])
    err = load_error([bad_gz])
    assert str(bad_gz) in err.message and "not a valid gzip file" in err.message
    empty_array = tmp_path / "none.json"
    empty_array.write_text("[ ]\n", encoding="utf-8")
    err = load_error([empty_array])
    assert str(empty_array) in err.message and "no usable preference pair" in err.message


def test_csv_row_with_too_many_cells(tmp_path):
    path = tmp_path / "ragged.csv"
    path.write_text("prompt,chosen,rejected\nQ?,Yes.,No.\nQ2?,Yes, and more.,No.\n", encoding="utf-8")
    err = load_error([path])
    assert f"{path}:3:" in err.message and "4 cells but the header has 3" in err.message
    assert "quote" in err.hint


def test_bad_rank_values_name_the_field(tmp_path):
    path = tmp_path / "ranked.jsonl"
    path.write_text(json.dumps({"prompt": "Q?", "responses": ["a", "b"], "scores": [1, "high"]}) + "\n", encoding="utf-8")
    err = load_error([path])
    assert f"{path}:1:" in err.message and "field 'scores[1]'" in err.message and "expected a number" in err.message


@pytest.mark.parametrize(
    "name, records, pairs, bad_line, problem",
    [
        ("invalid_json.jsonl", 4, 3, 3, "invalid JSON"),
        ("missing_rejected.jsonl", 4, 3, 3, "field 'rejected': is missing"),
        ("wrong_type.jsonl", 3, 2, 2, "field 'chosen'"),
        ("unknown_role.jsonl", 2, 1, 2, "unknown role 'narrator'"),
    ],
)
def test_skip_bad_records_counts_and_lists_them(name, records, pairs, bad_line, problem):
    result = load_preference_data([str(BROKEN / name)], skip_bad_records=True)
    assert result.records == records
    assert len(result.pairs) == pairs
    assert dict(result.dropped) == {"unparseable_record": 1}
    assert len(result.errors) == 1
    assert result.errors[0].startswith(f"{BROKEN / name}:{bad_line}:") and problem in result.errors[0]
    assert all(int(p.source.rsplit(":", 1)[1]) != bad_line for p in result.pairs)


def test_a_source_with_no_usable_pair_is_an_error_even_when_skipping(tmp_path):
    path = tmp_path / "all_bad.jsonl"
    path.write_text('{"prompt": "a", "chosen": 1, "rejected": "b"}\n{not json}\n', encoding="utf-8")
    err = load_error([path], skip_bad_records=True)
    assert str(path) in err.message and "unparseable_record: 2" in err.message
    assert "first bad record" in err.message and f"{path}:1:" in err.message
    # one bad source stops the load even when another source is fine
    err = load_error([DATA / "standard.jsonl", BROKEN / "all_identical.jsonl"])
    assert str(BROKEN / "all_identical.jsonl") in err.message


def test_failed_loads_leave_the_broken_files_untouched():
    files = sorted(p for p in BROKEN.rglob("*") if p.is_file())

    def fingerprint() -> dict:
        return {p: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns) for p in files}

    before = fingerprint()
    for path in files + [BROKEN / "no_data_dir"]:
        for skip in (False, True):
            try:
                load_preference_data([str(path)], skip_bad_records=skip)
            except DpokitError:
                pass
    assert fingerprint() == before
    assert sorted(p for p in BROKEN.rglob("*") if p.is_file()) == files  # nothing written beside them
