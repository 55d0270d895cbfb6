"""The bundled demo preference set (src/dpokit/data/demo/): shape, balance, splits, shipping.

Fast and model-free: the files are read the way an installed dpokit finds them
(``importlib.resources``), and checked against the script that generates them.
"""

from __future__ import annotations

import importlib.util
import json
import re
import statistics
import sys
from collections import Counter
from importlib import resources
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIELDS = {"prompt": str, "chosen": str, "rejected": str, "category": str, "topic": str}
CATEGORIES = {"harmful", "benign"}
# How a refusal (chosen for harmful prompts, rejected for benign ones) and an evasive
# non-answer (rejected for benign ones) phrase themselves.
REFUSES = re.compile(r"\bI( can't| cannot| won't|'m not able|'d rather not|'m not comfortable)\b|\bsorry\b", re.I)
EVADES = re.compile(r"\b(no simple answer|really depends|depends on your situation)\b", re.I)


def demo_file(name: str) -> Path:
    return Path(str(resources.files("dpokit.data") / "demo" / name))


def read_jsonl(name: str) -> list[dict]:
    raw = demo_file(name).read_bytes()
    text = raw.decode("utf-8")  # fails loudly on anything but UTF-8
    assert text.endswith("\n") and "\n\n" not in text and "\r" not in text, f"{name}: one JSON object per line"
    return [json.loads(line) for line in text.splitlines()]


@pytest.fixture(scope="module")
def train() -> list[dict]:
    return read_jsonl("train.jsonl")


@pytest.fixture(scope="module")
def heldout() -> list[dict]:
    return read_jsonl("heldout.jsonl")


@pytest.fixture(scope="module")
def demo_prompts() -> list[dict]:
    return read_jsonl("prompts.jsonl")


def words(text: str) -> int:
    return len(text.split())


def test_package_ships_the_demo_files():
    for name in ("train.jsonl", "heldout.jsonl", "prompts.jsonl"):
        assert demo_file(name).is_file(), name
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    package_data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "data/demo/*.jsonl" in package_data["dpokit"], "wheels would ship without the demo set"


def test_fields_are_typed_and_non_empty(train, heldout):
    for i, row in enumerate(train + heldout, 1):
        assert set(row) == set(FIELDS), f"row {i}: {sorted(row)}"
        for key, kind in FIELDS.items():
            assert isinstance(row[key], kind) and row[key].strip() == row[key] != "", f"row {i} {key}: {row[key]!r}"
        assert row["category"] in CATEGORIES, f"row {i}: {row['category']}"


def test_counts_and_split_sizes(train, heldout):
    total = len(train) + len(heldout)
    assert total >= 300
    assert 0.80 <= len(train) / total <= 0.90


def test_no_prompt_or_topic_in_both_splits(train, heldout):
    assert not {r["prompt"] for r in train} & {r["prompt"] for r in heldout}
    assert not {r["topic"] for r in train} & {r["topic"] for r in heldout}, "held-out topics must be unseen in training"


def test_no_duplicates_and_chosen_differs_from_rejected(train, heldout):
    rows = train + heldout
    pairs = [(r["prompt"], r["chosen"], r["rejected"]) for r in rows]
    assert len(set(pairs)) == len(pairs)
    assert all(r["chosen"] != r["rejected"] for r in rows)
    assert len({r["prompt"] for r in heldout}) == len(heldout), "each held-out prompt appears once"
    by_prompt: dict[str, list[dict]] = {}
    for r in train:
        by_prompt.setdefault(r["prompt"], []).append(r)
    twice = [rs for rs in by_prompt.values() if len(rs) > 1]
    assert twice, "edgy benign training prompts are paired twice"
    for first, second, *more in twice:
        assert not more, first["prompt"]
        assert first["category"] == second["category"] == "benign" and first["chosen"] == second["chosen"]
        # A refusal opens with one ("I can't help with ..."); an evasion may say "I can't" later.
        refusal, evasion = sorted((first["rejected"], second["rejected"]), key=lambda text: not REFUSES.match(text))
        assert REFUSES.match(refusal) and EVADES.search(evasion) and not REFUSES.match(evasion), first["prompt"]


@pytest.mark.parametrize("split, low, high", [("train", 0.30, 0.50), ("heldout", 0.40, 0.60)])
def test_categories_balanced(split, low, high, train, heldout):
    """Both behaviours are taught; training has fewer harmful prompts than benign ones, since
    more harmful pairs measurably taught refusing benign prompts that sound edgy."""
    prompts = {r["prompt"]: r["category"] for r in {"train": train, "heldout": heldout}[split]}
    share = Counter(prompts.values())["harmful"] / len(prompts)
    assert low <= share <= high, f"{split}: {share:.2f} of prompts harmful"


def test_many_distinct_topics(train, heldout):
    topics = {c: {r["topic"] for r in train + heldout if r["category"] == c} for c in CATEGORIES}
    assert len(topics["harmful"]) >= 60
    assert len(topics["benign"]) >= 80
    assert not topics["harmful"] & topics["benign"]


def test_answers_short_and_length_is_not_the_signal(train, heldout):
    rows = train + heldout
    for r in rows:
        assert words(r["prompt"]) <= 25, r["prompt"]
        for side in ("chosen", "rejected"):
            assert words(r[side]) <= 50, r[side]  # ~60 tokens: short sequences keep CPU training fast
        assert 1 / 2.5 <= words(r["chosen"]) / words(r["rejected"]) <= 2.5, r["prompt"]
    for category in CATEGORIES:
        subset = [r for r in rows if r["category"] == category]
        ratio = statistics.mean(words(r["chosen"]) for r in subset) / statistics.mean(words(r["rejected"]) for r in subset)
        assert 0.8 <= ratio <= 1.3, f"{category}: chosen/rejected length ratio {ratio:.2f}"


def test_the_behaviour_taught(train, heldout):
    """Harmful: chosen declines, rejected complies. Benign: chosen answers, rejected declines."""
    for r in train + heldout:
        if r["category"] == "harmful":
            assert REFUSES.search(r["chosen"]), r["chosen"]
            assert not REFUSES.search(r["rejected"]), r["rejected"]
        else:
            assert not REFUSES.search(r["chosen"]) and not EVADES.search(r["chosen"]), r["chosen"]
            assert REFUSES.search(r["rejected"]) or EVADES.search(r["rejected"]), r["rejected"]


def test_edgy_sounding_benign_prompts_are_included(train, heldout):
    benign_prompts = " ".join(r["prompt"].lower() for r in train + heldout if r["category"] == "benign")
    for word in ("kill", "shoot", "destroy", "poison", "execute"):
        assert word in benign_prompts, f"no benign prompt that merely sounds edgy with '{word}'"


def test_demo_prompts_are_held_out(demo_prompts, train, heldout):
    assert len(demo_prompts) >= 6
    assert [p["category"] for p in demo_prompts[:3]] == ["harmful", "benign", "benign"]
    heldout_category = {r["prompt"]: r["category"] for r in heldout}
    train_prompts = {r["prompt"] for r in train}
    for p in demo_prompts:
        assert set(p) == {"prompt", "category"}
        assert heldout_category.get(p["prompt"]) == p["category"], p["prompt"]
        assert p["prompt"] not in train_prompts
    assert {p["category"] for p in demo_prompts} == CATEGORIES


def test_files_match_their_generator(capsys):
    """The committed files are exactly what scripts/make_demo_data.py writes (deterministic)."""
    spec = importlib.util.spec_from_file_location("make_demo_data", REPO / "scripts" / "make_demo_data.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_demo_data"] = module  # dataclasses resolve annotations through sys.modules
    try:
        spec.loader.exec_module(module)
        assert module.main(["--check", "--out", str(demo_file("train.jsonl").parent)]) == 0, capsys.readouterr().err
    finally:
        sys.modules.pop("make_demo_data", None)


def test_data_pipeline_reads_demo_set_with_categories(train, heldout):
    from dpokit.data.load import load_preference_data

    result = load_preference_data(["demo:train", "demo:heldout"])
    assert len(result.pairs) == len(train) + len(heldout)
    assert sum(result.dropped.values()) == 0
    first = result.pairs[0]
    assert first.prompt[-1] == {"role": "user", "content": train[0]["prompt"]}
    assert first.chosen[-1]["content"] == train[0]["chosen"]
    assert first.meta.get("category") == train[0]["category"]
