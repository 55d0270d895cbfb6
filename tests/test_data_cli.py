"""`dpokit data inspect|convert`, in-process (fast) plus one real subprocess for exit status."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import subprocess
import sys
import time

import pytest

from conftest import HH_RLHF, LLAMAFACTORY
from dpokit.cli import main
from dpokit.data.load import load_preference_data

REGISTRY = LLAMAFACTORY / "dataset_info.json"


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """Run `dpokit ARGV` in this process; returns (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def inspect_json(argv: list[str]) -> dict:
    code, out, err = run_cli(["data", "inspect", "--json", *argv])
    assert code == 0, err
    return json.loads(out)  # the whole of stdout is one JSON object


def write_jsonl(path, rows) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


SMALL_ROWS = [
    {"prompt": "What is 2+2?", "chosen": "4", "rejected": "5"},
    {"prompt": "Name a colour.", "chosen": "Blue.", "rejected": "Seven."},
    {"prompt": "Name a colour.", "chosen": "Blue.", "rejected": "Seven."},  # duplicate: dropped
    {"prompt": "Capital of France?", "chosen": "Paris.", "rejected": "Paris."},  # identical: dropped
]


@pytest.fixture(scope="module")
def hh_report():
    start = time.perf_counter()
    report = inspect_json([str(HH_RLHF)])
    return report, time.perf_counter() - start


def test_inspect_hh_rlhf_counts_match_loader(hh_report):
    report, seconds = hh_report
    loaded = load_preference_data([str(HH_RLHF)])
    assert report["format"] == loaded.format == "hh_rlhf"
    assert report["records"] == loaded.records
    assert report["pairs"] == len(loaded.pairs)
    assert report["errors"] == loaded.errors == []
    # load drops and tokenisation drops together; the default limits drop nothing here
    assert report["dropped"] == {k: v for k, v in loaded.dropped.items() if v}
    assert report["pairs_used"] == report["pairs"] - report["tokenization"]["dropped_empty_after_truncation"]
    assert report["turns"]["multi_turn"] == sum(p.num_user_turns > 1 for p in loaded.pairs)
    assert report["turns"]["single_turn"] + report["turns"]["multi_turn"] == report["pairs"]
    assert len(report["examples"]) == 3
    assert report["examples"][0]["source"] == loaded.pairs[0].source
    assert seconds < 120  # ~5 s on an idle 2-core machine


def test_inspect_registry_dataset_json(capsys):
    report = inspect_json(["--registry", str(REGISTRY), "dpo_en_demo"])
    loaded = load_preference_data(["dpo_en_demo"], registry=str(REGISTRY))
    assert {"pairs", "dropped", "errors", "format"} <= set(report)
    assert (report["format"], report["pairs"], report["records"]) == ("sharegpt", len(loaded.pairs), loaded.records)
    assert report["dropped"] == dict(loaded.dropped)
    assert report["system_prompt"]["in_data"] == sum(p.system is not None for p in loaded.pairs)
    lengths = report["lengths"]["prompt"]
    assert lengths["min"] <= lengths["median"] <= lengths["p95"] <= lengths["max"]
    trunc = report["truncation"]
    assert trunc["prompt_truncated"] == report["tokenization"]["prompt_truncated"] > 0  # long prompts in this set
    example = report["examples"][0]
    assert example["prompt"].rstrip("\n").endswith("<|im_start|>assistant")
    assert example["chosen"].endswith("<|im_end|>\n")


def test_inspect_chinese_registry_dataset_as_text():
    code, out, _ = run_cli(["data", "inspect", "--registry", str(REGISTRY), "dpo_zh_demo"])
    loaded = load_preference_data(["dpo_zh_demo"], registry=str(REGISTRY))
    assert code == 0
    assert f"pairs found:       {len(loaded.pairs)}" in out
    assert f"duplicate_pair: {loaded.dropped['duplicate_pair']}" in out
    first_answer_line = loaded.pairs[0].chosen[0]["content"].splitlines()[0]
    assert first_answer_line[:12] in out  # non-ASCII text shown as is
    assert "example 3 (" in out


def test_flags_override_config(tmp_path):
    data = write_jsonl(tmp_path / "small.jsonl", SMALL_ROWS)
    config = tmp_path / "c.yaml"
    config.write_text(f"data:\n  train_files: [{data}]\n  max_length: 64\n  max_prompt_length: 40\n"
                      "  system_prompt: From the config.\n", encoding="utf-8")
    report = inspect_json(["--config", str(config), "--max-length", "128"])
    assert report["settings"]["max_length"] == 128  # flag wins
    assert report["settings"]["max_prompt_length"] == 40  # from the config
    assert report["settings"]["system_prompt"] == "From the config."
    assert report["pairs"] == 2 and report["dropped"] == {"duplicate_pair": 1, "identical_answers": 1}
    assert report["system_prompt"]["inserted"] == 2
    assert "<|im_start|>system\nFrom the config.<|im_end|>" in report["examples"][0]["prompt"]
    assert report["sources"] == [data]


def test_plain_text_and_system_prompt_flags(tmp_path):
    data = write_jsonl(tmp_path / "small.jsonl", SMALL_ROWS)
    report = inspect_json([data, "--no-chat-template", "--system-prompt", "Be brief."])
    first = report["examples"][0]
    assert first["prompt"] == "Be brief.\n\nWhat is 2+2?\n\n"
    assert first["chosen"] == "4<|im_end|>"  # EOS appended
    assert report["settings"]["chat_template"] is False


def test_short_max_length_drops_are_reported_with_load_drops(tmp_path):
    rows = SMALL_ROWS + [{"prompt": "word " * 200, "chosen": "ok", "rejected": "no"}]
    data = write_jsonl(tmp_path / "long.jsonl", rows)
    report = inspect_json([data, "--max-length", "60", "--max-prompt-length", "60"])
    assert report["pairs"] == 3 and report["pairs_used"] == 2
    assert report["dropped"] == {"duplicate_pair": 1, "identical_answers": 1, "empty_after_truncation": 1}
    assert report["truncation"]["prompt_truncated"] == 1


def test_columns_flag(tmp_path):
    rows = [{"question": f"Q{i}?", "good": f"Good {i}.", "bad": f"Bad {i}."} for i in range(5)]
    data = write_jsonl(tmp_path / "cols.jsonl", rows)
    report = inspect_json([data, "--columns", "prompt=question,chosen=good,rejected=bad"])
    assert report["pairs"] == 5
    assert "Q0?" in report["examples"][0]["prompt"] and report["examples"][0]["chosen"].startswith("Good 0.")


def test_convert_registry_dataset_round_trips(tmp_path):
    out = tmp_path / "out" / "pairs.jsonl"
    code, stdout, _ = run_cli(["data", "convert", "--registry", str(REGISTRY), "dpo_en_demo", "--out", str(out)])
    loaded = load_preference_data(["dpo_en_demo"], registry=str(REGISTRY))
    assert code == 0
    assert f"wrote {len(loaded.pairs)} pairs" in stdout and f"{sum(loaded.dropped.values())} pairs dropped" in stdout
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == len(loaded.pairs)
    for row, pair in zip(rows, loaded.pairs):
        assert (row["prompt"], row["chosen"], row["rejected"]) == (pair.prompt, pair.chosen, pair.rejected)
    again = load_preference_data([str(out)])  # the written file is itself loadable (conversational)
    assert again.format == "conversational" and len(again.pairs) == len(loaded.pairs)
    assert [p.to_json() for p in again.pairs] == [p.to_json() for p in loaded.pairs]


def test_convert_split_writes_two_sides_that_share_no_prompt(tmp_path):
    """--split train / eval with one seed: together the whole file, apart no prompt on both sides."""
    rows = [{"prompt": f"question {i // 2}", "chosen": f"good {i}", "rejected": f"bad {i}"} for i in range(40)]
    data = write_jsonl(tmp_path / "pairs.jsonl", rows)  # 20 prompts, two pairs each
    sides = {}
    for side in ("train", "eval"):
        out = tmp_path / f"{side}.jsonl"
        code, stdout, err = run_cli(["data", "convert", data, "--split", side, "--eval-fraction", "0.25",
                                     "--seed", "7", "--out", str(out)])
        assert code == 0, err
        assert "30 train / 10 eval pairs" in stdout
        sides[side] = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(sides["train"]) == 30 and len(sides["eval"]) == 10
    prompts = {side: {r["prompt"][0]["content"] for r in got} for side, got in sides.items()}
    assert not prompts["train"] & prompts["eval"] and len(prompts["eval"]) == 5
    assert sorted(r["chosen"][0]["content"] for got in sides.values() for r in got) == sorted(r["chosen"] for r in rows)
    code, _, _ = run_cli(["data", "convert", data, "--split", "eval", "--seed", "8", "--eval-fraction", "0.25",
                          "--out", str(tmp_path / "other.jsonl")])
    other = {json.loads(line)["prompt"][0]["content"] for line in (tmp_path / "other.jsonl").read_text().splitlines()}
    assert code == 0 and other != prompts["eval"]  # the seed chooses the split
    code, _, err = run_cli(["data", "convert", data, "--split", "eval", "--eval-fraction", "1.5",
                            "--out", str(tmp_path / "bad.jsonl")])
    assert code != 0 and "--eval-fraction" in err and not (tmp_path / "bad.jsonl").exists()
    code, _, err = run_cli(["data", "convert", data, "--eval-fraction", "0.25", "--out", str(tmp_path / "bad.jsonl")])
    assert code != 0 and "need --split" in err and not (tmp_path / "bad.jsonl").exists()


def test_convert_refuses_to_overwrite_an_input(tmp_path, capsys):
    data = write_jsonl(tmp_path / "small.jsonl", SMALL_ROWS)
    before = (tmp_path / "small.jsonl").read_bytes()
    code, _, err = run_cli(["data", "convert", data, "--out", data])
    assert code == 2 and "input" in err
    assert (tmp_path / "small.jsonl").read_bytes() == before

    registry_dir = tmp_path / "lf"
    registry_dir.mkdir()
    for name in ("dataset_info.json", "dpo_en_demo.json"):
        shutil.copy(LLAMAFACTORY / name, registry_dir / name)
    original = (registry_dir / "dpo_en_demo.json").read_bytes()
    code, _, err = run_cli(["data", "convert", "--registry", str(registry_dir / "dataset_info.json"), "dpo_en_demo",
                            "--out", str(registry_dir / "dpo_en_demo.json")])
    assert code == 2 and "dpo_en_demo.json" in err
    assert (registry_dir / "dpo_en_demo.json").read_bytes() == original


def test_bad_flag_value_and_missing_file_are_user_errors(tmp_path):
    data = write_jsonl(tmp_path / "small.jsonl", SMALL_ROWS)
    code, _, err = run_cli(["data", "inspect", data, "--max-length", "0"])
    assert code == 2 and "--max-length" in err
    code, _, err = run_cli(["data", "convert", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "o.jsonl")])
    assert code == 2 and "nope.jsonl" in err and not (tmp_path / "o.jsonl").exists()


def test_broken_file_exits_2_without_traceback(tmp_path):
    bad = tmp_path / "broken.jsonl"
    bad.write_text('{"prompt": "a", "chosen": "b", "rejected": "c"}\n{"prompt": "a", "chosen": \n', encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "dpokit.cli", "data", "inspect", str(bad)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "broken.jsonl:2" in proc.stderr
