"""`dpokit iterate`: rounds of generate -> judge -> pairs -> DPO on the tiny model.

One uninterrupted two-round loop (module fixture ``baseline``) with a rule judge is the
yardstick: its held-out score rises; a loop killed in every stage (real SIGKILLs in
subprocesses, injected interrupts in-process) and rerun ends with the same files and
weights; round 2's reference is exactly round 1's policy. The ``human`` judge reads the
decisions the label store's writer (the serve page's) appended. Bad input names the round
and step and keeps finished rounds.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch
import yaml

from dpokit.config import build_config
from dpokit.errors import DpokitError

pytestmark = pytest.mark.usefixtures("one_torch_thread")

REPO = Path(__file__).resolve().parents[1]
TRAIN_TOPICS = ["cats", "rivers", "bread", "music", "stars", "trains", "gardens", "chess", "rain", "bridges"]
EVAL_TOPICS = ["owls", "salt", "kites", "glass", "snow", "wool"]
ROUNDS = 2

# The rule the loop optimises: ASCII letters count for an answer, every other visible character
# (digits, punctuation, bytes of other scripts) against it. The tiny random model's greedy answers
# start empty (it repeats the prompt's last token, a newline); two rounds make them letters.
RULE = '''
import math
import os
import signal

_calls = 0


def plain(prompt, answer):
    global _calls
    _calls += 1
    if os.environ.get("DPOKIT_TEST_KILL_AT_JUDGE_CALL") == str(_calls):
        os.kill(os.getpid(), signal.SIGKILL)  # a real kill in the middle of judging
    letters = sum(c.isascii() and c.isalpha() for c in answer)
    return letters - (sum(not c.isspace() for c in answer) - letters)


def constant(prompt, answer):
    return 1.0


def broken(prompt, answer):
    return len(answer) / 0


def wordy(prompt, answer):
    return "many" if len(answer) > 3 else 1.0


def undefined(prompt, answer):
    return math.nan


def two_args_missing(prompt):
    return 0.0
'''

# Runs the CLI with a real SIGKILL at a chosen point: the Nth model.generate call, or right
# after a given checkpoint is saved.
DRIVER = '''
import os
import signal
import sys

import torch

torch.set_num_threads(1)


def die():
    os.kill(os.getpid(), signal.SIGKILL)


at_generate = int(os.environ.get("KILL_AT_GENERATE_CALL", "0"))
after_checkpoint = os.environ.get("KILL_AFTER_CHECKPOINT", "")
if at_generate:
    from transformers.generation.utils import GenerationMixin

    original_generate, calls = GenerationMixin.generate, [0]

    def generate(self, *args, **kwargs):
        calls[0] += 1
        if calls[0] == at_generate:
            die()
        return original_generate(self, *args, **kwargs)

    GenerationMixin.generate = generate
if after_checkpoint:
    from dpokit import checkpoint

    original_save = checkpoint.save_checkpoint

    def save_checkpoint(*args, **kwargs):
        path = original_save(*args, **kwargs)
        if str(path).endswith(after_checkpoint):
            die()
        return path

    checkpoint.save_checkpoint = save_checkpoint

from dpokit.cli import main

sys.exit(main(sys.argv[1:]))
'''


def plain(answer: str) -> float:
    letters = sum(c.isascii() and c.isalpha() for c in answer)
    return letters - (sum(not c.isspace() for c in answer) - letters)


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """A private DPOKIT_HOME (reference cache, merged models) that still sees the converted SmolLM2."""
    from dpokit.models import dpokit_home

    real_models = dpokit_home() / "models"
    path = tmp_path_factory.mktemp("dpokit-home")
    if real_models.is_dir():
        (path / "models").symlink_to(real_models, target_is_directory=True)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DPOKIT_HOME", str(path))
        patch.setenv("TQDM_DISABLE", "1")
        yield path


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("iterate-files")
    (folder / "train.txt").write_text("".join(f"Tell me something about {t}.\n" for t in TRAIN_TOPICS))
    (folder / "eval.txt").write_text("".join(f"What do you know about {t}?\n" for t in EVAL_TOPICS))
    (folder / "rule.py").write_text(RULE)
    return folder


def loop_raw(files: Path, model_dir: str, out: Path, **iterate: object) -> dict:
    """A two-round loop on the tiny model: 4 candidates of 6 tokens, 6 LoRA steps a round (8 of 8 seeds tried rise)."""
    settings = {"rounds": ROUNDS, "prompts": str(files / "train.txt"), "eval_prompts": str(files / "eval.txt"),
                "candidates": 4, "temperature": 1.0, "top_p": 1.0, "max_new_tokens": 6, "sampling_seed": 1,
                "judge": f"python:{files / 'rule.py'}:plain"}
    settings.update(iterate)
    return {
        "model": {"name_or_path": model_dir},
        "lora": {"r": 8, "alpha": 16, "dropout": 0.0},
        "data": {"max_length": 64, "max_prompt_length": 40},
        "training": {"learning_rate": 1e-2, "max_steps": 6, "per_device_train_batch_size": 4, "report_to": "none",
                     "seed": 3, "save_steps": 2},
        "output": {"output_dir": str(out)},
        "iterate": settings,
    }


def loop_config(files: Path, model_dir: str, out: Path, overrides: list[str] = (), **iterate: object):
    return build_config(loop_raw(files, model_dir, out, **iterate), list(overrides))


def write_config(path: Path, raw: dict) -> Path:
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def adapter(run_dir: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(run_dir / "final" / "adapter_model.safetensors"))


@pytest.fixture(scope="module")
def baseline(home, files, tiny_model_dir, tmp_path_factory, one_torch_thread) -> Path:
    from dpokit.iterate import run_iterate

    out = tmp_path_factory.mktemp("baseline") / "loop"
    result = run_iterate(loop_config(files, tiny_model_dir, out), show_progress=False)
    assert result.waiting is None
    return out


def copy_rounds(source: Path, target: Path, rounds: list[int], extra: dict[int, list[str]] = {}) -> Path:
    """A loop dir holding ``source``'s finished rounds (and named files of the next one)."""
    target.mkdir(parents=True)
    for k in rounds:
        shutil.copytree(source / f"round-{k}", target / f"round-{k}")
    for k, names in extra.items():
        (target / f"round-{k}").mkdir()
        for name in names:
            shutil.copy(source / f"round-{k}" / name, target / f"round-{k}" / name)
    return target


# ---------------------------------------------------------------- the loop works


def test_two_rounds_raise_the_held_out_score(baseline, files):
    from dpokit.data.load import load_preference_data

    summary = json.loads((baseline / "summary.json").read_text())
    table = summary["rounds"]
    assert [r["round"] for r in table] == [0, 1, 2]
    assert list(table[0]) == ["round", "pairs", "mean_score", "win_rate_vs_round0", "win_rate_ci95", "run_dir"]
    scores = [r["mean_score"] for r in table]
    assert scores[2] > scores[0], scores
    assert table[2]["win_rate_vs_round0"] > 0.5 and table[2]["win_rate_ci95"][0] > 0.5, table[2]
    assert table[0]["win_rate_vs_round0"] is None and table[0]["pairs"] == 0
    assert (baseline / "summary.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    for k in (1, 2):
        round_dir = baseline / f"round-{k}"
        candidates = rows(round_dir / "candidates.jsonl")
        assert len(candidates) == len(TRAIN_TOPICS)
        assert all(len(r["candidates"]) == 4 and r["sampling"]["seed"] == 1 + k and r["round"] == k for r in candidates)
        sampled_by = str(baseline.resolve() / "round-1" / "run") if k == 2 else table[0]["run_dir"]
        assert candidates[0]["model"] == sampled_by
        judged = rows(round_dir / "judged.jsonl")
        for row in judged:  # the rule's own scores, candidate by candidate
            assert row["scores"] == [plain(c) if c.strip() else None for c in row["candidates"]]
        pairs = load_preference_data([str(round_dir / "pairs.jsonl")]).pairs  # what dpokit train reads
        assert len(pairs) == table[k]["pairs"] > 0
        for pair in pairs:
            assert pair.meta["chosen_score"] > pair.meta["rejected_score"]
            assert plain(pair.chosen[0]["content"]) == pair.meta["chosen_score"]
        measured = json.loads((round_dir / "eval.json").read_text())
        assert measured["mean_score"] == pytest.approx(table[k]["mean_score"])
        assert [r["score"] for r in measured["rows"]] == [plain(r["answer"]) for r in measured["rows"]]
        assert measured["sampling"]["do_sample"] is False
        assert (round_dir / "run" / "final" / "adapter_model.safetensors").is_file()


def test_cli_prints_the_table(baseline, files, tiny_model_dir, capsys):
    """A rerun of a finished loop redoes nothing: it prints the table from the files."""
    from dpokit.cli import main

    config = write_config(baseline.parent / "again.yaml", loop_raw(files, tiny_model_dir, baseline))
    before = {p: p.stat().st_mtime_ns for p in baseline.rglob("*.jsonl")}
    assert main(["iterate", str(config), "--no-progress"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:3] == ["round", "pairs", "mean"] and len(out) == 1 + ROUNDS + 1
    assert {p: p.stat().st_mtime_ns for p in baseline.rglob("*.jsonl")} == before


# ---------------------------------------------------------------- reference chaining


def _step_one(run_dir: Path) -> dict:
    return next(r for r in rows(run_dir / "metrics.jsonl") if r.get("step") == 1 and "loss" in r)


def _round_examples(run_dir: Path, tokenizer_dir: str):
    """The round's run config and its training pairs, tokenised as the run did."""
    from dpokit.config import load_config
    from dpokit.data.prepare import prepare_data
    from dpokit.models import load_tokenizer

    config = load_config(run_dir / "config.yaml")
    return config, prepare_data(config, load_tokenizer(tokenizer_dir)).train


def _scores(ref: str, examples):
    from dpokit.runs import load_for_inference
    from dpokit.scoring import score_examples

    model, tokenizer, _ = load_for_inference(ref)
    return score_examples(model, examples, tokenizer.pad_token_id)


def test_round_two_reference_is_round_one_policy_and_adapters_do_not_stack(baseline, home, tiny_model_dir):
    from safetensors.torch import load_file

    from dpokit.fingerprint import data_fingerprint
    from dpokit.runs import load_for_inference
    from dpokit.start_model import materialise

    round1, round2 = baseline.resolve() / "round-1" / "run", baseline.resolve() / "round-2" / "run"
    config, examples = _round_examples(round2, tiny_model_dir)
    assert config.model.name_or_path == str(round1) and config.dpo.reference == "precompute"
    first = _step_one(round2)
    assert first["loss"] == pytest.approx(math.log(2), abs=1e-6)
    assert first["rewards/chosen"] == 0 and first["rewards/rejected"] == 0

    # The cached reference log-probs round 2 trained against, found by its data, against round 1's
    # policy scored here (base + adapter, not merged).
    fingerprint, start = data_fingerprint(examples), str(Path(materialise(str(round1))).resolve())
    keys = [p for p in (home / "refcache").glob("*.json")
            if json.loads(p.read_text())["data"] == fingerprint and json.loads(p.read_text())["model"] == start]
    assert len(keys) == 1  # computed with round 1's policy (its adapter merged), on round 2's pairs
    cached = load_file(str(keys[0].with_suffix(".safetensors")))
    policy1 = _scores(str(round1), examples)
    torch.testing.assert_close(cached["chosen"], policy1.chosen, rtol=0, atol=1e-4)
    torch.testing.assert_close(cached["rejected"], policy1.rejected, rtol=0, atol=1e-4)
    initial = _scores(tiny_model_dir, examples)
    assert (initial.chosen - policy1.chosen).abs().max() > 1e-2  # round 1 did change the model

    # One adapter on one merged model: round 2 carries round 1's adapter in base/, naming the start model.
    run_json = json.loads((round2 / "run.json").read_text())
    assert run_json["base_model"] == "base" and run_json["adapter"] is True
    carried = json.loads((round2 / "base" / "adapter_config.json").read_text())
    assert carried["base_model_name_or_path"] == tiny_model_dir
    model, _, info = load_for_inference(str(round2))
    assert list(model.peft_config) == ["default"] and info.base_model == str(round2 / "base")


def test_reference_initial_keeps_the_starting_model(baseline, files, tiny_model_dir, tmp_path):
    """reference_round: initial: round 2 starts from round 1's policy but is compared with round 0's model.

    Round 2 is retrained in a copy with one step over all its pairs, so step 1's batch means
    give the reference's mean log-prob: logps/chosen - rewards/chosen / beta.
    """
    from dpokit.iterate import run_iterate

    out = copy_rounds(baseline, tmp_path / "loop", [0, 1], {2: ["candidates.jsonl", "judged.jsonl", "pairs.jsonl"]})
    one_step = ["training.max_steps=1", "training.per_device_train_batch_size=16"]
    config = loop_config(files, tiny_model_dir, out, one_step, reference_round="initial")
    run_iterate(config, show_progress=False)
    round2 = out / "round-2" / "run"
    run_config, examples = _round_examples(round2, tiny_model_dir)
    assert run_config.dpo.reference.model == tiny_model_dir and len(examples) <= 16
    first = _step_one(round2)
    policy1 = _scores(str(out / "round-1" / "run"), examples)
    initial = _scores(tiny_model_dir, examples)
    assert first["logps/chosen"] == pytest.approx(policy1.chosen.mean().item(), abs=1e-3)
    implied_reference = first["logps/chosen"] - first["rewards/chosen"] / run_config.dpo.beta
    assert implied_reference == pytest.approx(initial.chosen.mean().item(), abs=1e-3)
    assert abs(first["rewards/chosen"]) > 1e-3


def test_mix_keeps_a_seeded_share_of_the_offline_pairs(baseline, files, tiny_model_dir, tmp_path):
    from dpokit.iterate import Loop, run_iterate

    offline = tmp_path / "offline.jsonl"
    offline.write_text("".join(json.dumps({"prompt": f"Question {i}?", "chosen": f"Answer {i}.", "rejected": "No."})
                               + "\n" for i in range(8)))
    out = copy_rounds(baseline, tmp_path / "loop", [0], {1: ["candidates.jsonl", "judged.jsonl"]})
    config = loop_config(files, tiny_model_dir, out, [f"data.train_files=[{offline}]"], mix=0.5, rounds=1)
    run_iterate(config, show_progress=False)
    mixed = rows(out / "round-1" / "offline_pairs.jsonl")
    assert len(mixed) == 4 and len({m["prompt"][0]["content"] for m in mixed}) == 4
    assert all(m["prompt"][0]["content"].startswith("Question ") for m in mixed)
    run_config = yaml.safe_load((out / "round-1" / "run" / "config.yaml").read_text())
    assert run_config["data"]["train_files"] == [str(out.resolve() / "round-1" / name)
                                                 for name in ("pairs.jsonl", "offline_pairs.jsonl")]
    report = json.loads((out / "round-1" / "run" / "data_report.json").read_text())
    assert report["pairs"] == len(rows(out / "round-1" / "pairs.jsonl")) + 4  # both files were trained on
    assert (out / "round-1" / "pairs.jsonl").read_bytes() == (baseline / "round-1" / "pairs.jsonl").read_bytes()
    (out / "round-1" / "offline_pairs.jsonl").unlink()
    Loop(config, show_progress=False).write_offline_pairs(1)  # seeded by sampling_seed and the round
    assert rows(out / "round-1" / "offline_pairs.jsonl") == mixed


# ---------------------------------------------------------------- resuming


def _drive(config: Path, env_extra: dict[str, str]) -> subprocess.CompletedProcess:
    driver = config.parent / "driver.py"
    driver.write_text(DRIVER)
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1",
               PYTHONPATH=os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]), **env_extra)
    return subprocess.run([sys.executable, str(driver), "iterate", str(config), "--no-progress"], env=env,
                          capture_output=True, text=True, timeout=600)


def _without(row: dict, *keys: str) -> dict:
    return {k: v for k, v in row.items() if k not in keys}


def test_killed_in_every_stage_resumes_to_the_same_result(baseline, files, tiny_model_dir, tmp_path, monkeypatch,
                                                          capsys):
    from dpokit import objective
    from dpokit.iterate import run_iterate

    out = tmp_path / "loop"
    config_file = write_config(tmp_path / "loop.yaml", loop_raw(files, tiny_model_dir, out))

    # generation: 10 prompts in batches of 8; generate call 1 is round 0's measure, 3 is round 1's second batch
    killed = _drive(config_file, {"KILL_AT_GENERATE_CALL": "3"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert (out / "round-0" / "eval.json").is_file() and not (out / "round-1" / "candidates.jsonl").exists()

    # judging: killed at the 20th of the rule's 40 calls
    killed = _drive(config_file, {"DPOKIT_TEST_KILL_AT_JUDGE_CALL": "20"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert (out / "round-1" / "candidates.jsonl").is_file() and not (out / "round-1" / "judged.jsonl").exists()

    # training: killed right after its checkpoint at step 2 of 6
    killed = _drive(config_file, {"KILL_AFTER_CHECKPOINT": str(Path("round-1", "run", "checkpoints", "checkpoint-2"))})
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert (out / "round-1" / "run" / "checkpoints" / "checkpoint-2").is_dir()
    assert not (out / "round-1" / "run" / "final").exists()

    # in-process: round 1 resumes from its checkpoint; round 2's training is interrupted before any checkpoint
    original_loss = objective.batch_loss

    def interrupted_loss(config, *args, **kwargs):
        if config.output.output_dir.endswith(str(Path("round-2", "run"))):
            raise KeyboardInterrupt
        return original_loss(config, *args, **kwargs)

    monkeypatch.setattr(objective, "batch_loss", interrupted_loss)  # recipe.train imports it when it starts
    with pytest.raises(KeyboardInterrupt):
        run_iterate(build_config(loop_raw(files, tiny_model_dir, out)), show_progress=False)
    assert "round 1: training" in (err := capsys.readouterr().err) and "resuming from its latest checkpoint" in err
    assert (out / "round-2" / "pairs.jsonl").is_file() and (out / "round-2" / "run" / "run.json").is_file()
    assert not list((out / "round-2" / "run").glob("checkpoints/checkpoint-*"))
    monkeypatch.undo()

    # in-process: round 2 trains again from the start, then its measuring is interrupted
    from dpokit import generate as generate_module

    original_generate = generate_module.generate_candidates

    def interrupted_generate(model, renderer, prompts, settings, **kwargs):
        if settings.greedy:
            raise KeyboardInterrupt
        return original_generate(model, renderer, prompts, settings, **kwargs)

    monkeypatch.setattr(generate_module, "generate_candidates", interrupted_generate)
    with pytest.raises(KeyboardInterrupt):
        run_iterate(build_config(loop_raw(files, tiny_model_dir, out)), show_progress=False)
    assert "again from the start" in capsys.readouterr().err
    assert (out / "round-2" / "run" / "final").is_dir() and not (out / "round-2" / "eval.json").exists()
    monkeypatch.undo()

    result = run_iterate(build_config(loop_raw(files, tiny_model_dir, out)), show_progress=False)

    # the same result as the loop that was never interrupted
    for k in (1, 2):
        mine, theirs = out / f"round-{k}", baseline / f"round-{k}"
        assert [_without(r, "model") for r in rows(mine / "candidates.jsonl")] == \
            [_without(r, "model") for r in rows(theirs / "candidates.jsonl")]
        for name in ("judged.jsonl", "pairs.jsonl"):
            assert (mine / name).read_bytes() == (theirs / name).read_bytes(), name
        for name, tensor in adapter(theirs / "run").items():
            torch.testing.assert_close(adapter(mine / "run")[name], tensor, rtol=0, atol=1e-6, msg=name)
        assert _without(json.loads((mine / "eval.json").read_text()), "model") == \
            _without(json.loads((theirs / "eval.json").read_text()), "model")
    expected = json.loads((baseline / "summary.json").read_text())["rounds"]
    assert [_without(r, "run_dir") for r in result.rows] == [_without(r, "run_dir") for r in expected]


# ---------------------------------------------------------------- people as the judge


def test_human_judge_reads_the_label_stores_decisions(home, files, tiny_model_dir, tmp_path, capsys):
    from dpokit.cli import main
    from dpokit.serve.labels import Decision, LabelStore

    out = tmp_path / "loop"
    raw = loop_raw(files, tiny_model_dir, out, judge="human", candidates=2, rounds=1,
                   eval_judge=f"python:{files / 'rule.py'}:plain")
    config = write_config(tmp_path / "human.yaml", raw)
    labels = out / "round-1" / "labels"

    assert main(["iterate", str(config), "--no-progress"]) == 3
    err = capsys.readouterr().err
    assert f"0 of {len(TRAIN_TOPICS)} prompts decided" in err and f"--labels-dir {labels}" in err
    assert not (out / "round-1" / "judged.jsonl").exists()

    def label(decisions: dict[int, tuple[str, str | None]]) -> None:
        """Decide queue items by position, as the label page does (LabelStore.append)."""
        with LabelStore(labels) as store:
            items = store.items()
            for position, (decision, edit) in decisions.items():
                left, right = items[position].candidates
                store.append(Decision(items[position].id, decision, left, right, labeler="ana", chosen_content=edit))

    label({0: ("left", None), 1: ("right", None), 2: ("tie", None), 3: ("skip", None)})
    assert main(["iterate", str(config), "--no-progress"]) == 3
    assert "4 of 10 prompts decided (2 pairs, 2 ties or skips), 6 to go" in capsys.readouterr().err

    label({i: ("left", "An edited, better answer." if i == 9 else None) for i in range(4, 10)})
    assert main(["iterate", str(config), "--no-progress"]) == 0
    candidates = rows(out / "round-1" / "candidates.jsonl")
    judged = rows(out / "round-1" / "judged.jsonl")
    assert [r["decision"] for r in judged] == ["left", "right", "tie", "skip"] + ["left"] * 6
    pairs = rows(out / "round-1" / "pairs.jsonl")
    decided = [(c["candidates"], j["decision"]) for c, j in zip(candidates, judged)
               if j["decision"] in ("left", "right")]
    assert len(pairs) == len(decided) == 8
    for pair, (answers, decision) in zip(pairs, decided):
        chosen, rejected = (answers[0], answers[1]) if decision == "left" else (answers[1], answers[0])
        assert pair["rejected"][0]["content"] == rejected
        assert pair["chosen"][0]["content"] == (chosen if pair is not pairs[-1] else "An edited, better answer.")
        assert pair["labeler"] == "ana"
    assert pairs[-1]["edited"] is True
    assert (out / "round-1" / "run" / "final").is_dir()
    summary = json.loads((out / "summary.json").read_text())["rounds"]
    assert summary[1]["pairs"] == 8 and summary[1]["mean_score"] is not None


def test_a_human_round_goes_on_once_min_decided_of_its_prompts_are_decided(home, files, tiny_model_dir, tmp_path,
                                                                            capsys):
    from dpokit.cli import main
    from dpokit.serve.labels import Decision, LabelStore

    out = tmp_path / "loop"
    raw = loop_raw(files, tiny_model_dir, out, judge="human", candidates=2, rounds=1, min_decided=0.5,
                   eval_judge=f"python:{files / 'rule.py'}:plain")
    config = write_config(tmp_path / "human.yaml", raw)
    labels = out / "round-1" / "labels"
    assert main(["iterate", str(config), "--no-progress"]) == 3
    capsys.readouterr()

    def label(decisions: dict[int, str]) -> None:
        with LabelStore(labels) as store:
            items = store.items()
            for position, decision in decisions.items():
                left, right = items[position].candidates
                store.append(Decision(items[position].id, decision, left, right, labeler="ana"))

    label({2: "tie", 3: "skip"})
    judged_file = out / "round-1" / "judged.jsonl"
    assert main(["iterate", str(config), "iterate.min_decided=0.2", "--no-progress"]) == 2  # an error
    err = capsys.readouterr().err
    assert "people decided no prompt left or right (2 tie or skip by people, 8 not decided by people)" in err
    assert f"delete {judged_file}" in err and "Traceback" not in err
    judged_file.unlink()

    label({0: "left", 1: "right"})
    assert main(["iterate", str(config), "--no-progress"]) == 3
    assert "4 of 10 prompts decided (2 pairs, 2 ties or skips), 1 more to go (iterate.min_decided=0.5 of them)" \
        in capsys.readouterr().err
    assert not (out / "round-1" / "judged.jsonl").exists()

    label({7: "left"})  # five of ten: the round trains on the three pairs
    assert main(["iterate", str(config), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "going on with 5 of 10 prompts decided by people (iterate.min_decided=0.5); the 5 undecided are left out" \
        in err
    assert "3 pairs (left out: 2 tie or skip by people, 5 not decided by people)" in err
    judged = rows(out / "round-1" / "judged.jsonl")
    assert [r["decision"] for r in judged] == ["left", "right", "tie", "skip", None, None, None, "left", None, None]
    candidates = rows(out / "round-1" / "candidates.jsonl")
    pairs = rows(out / "round-1" / "pairs.jsonl")
    assert [p["chosen"][0]["content"] for p in pairs] == \
        [candidates[0]["candidates"][0], candidates[1]["candidates"][1], candidates[7]["candidates"][0]]
    assert (out / "round-1" / "run" / "final").is_dir()

    # a decision made after the round went on changes nothing: the round keeps what it trained on
    label({4: "left"})
    assert main(["iterate", str(config), "--no-progress"]) == 0
    assert rows(out / "round-1" / "pairs.jsonl") == pairs


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("iterate, overrides, expected", [
    ({"judge": None}, [], "iterate.judge is required"),
    ({"judge": "human", "candidates": 3}, [], "shows people two answers"),
    ({"eval_judge": "human"}, [], "needs a judge that can run unattended"),
    ({}, ["dpo.reference=some/model"], "sets each round's reference"),
    ({}, ["stage=sft"], "trains DPO rounds"),
    ({}, ["output.overwrite_output_dir=true"], "continues what is in output.output_dir"),
    ({"judge": "python:nope.py:score"}, [], "nope.py: file not found"),
    ({"judge": "gpt4"}, [], "unknown judge"),
])
def test_config_errors_come_before_any_model(iterate, overrides, expected, files, tmp_path, monkeypatch):
    from dpokit import runs
    from dpokit.iterate import run_iterate

    monkeypatch.setattr(runs, "load_for_inference", lambda *a, **k: pytest.fail("a model was loaded"))
    with pytest.raises(DpokitError, match=expected):
        run_iterate(loop_config(files, "unused-model", tmp_path / "loop", overrides, **iterate))
    assert not (tmp_path / "loop" / "round-0").exists()


def test_schema_checks_and_flat_keys_of_other_sections_stay_unambiguous():
    with pytest.raises(DpokitError, match="iterate.candidates"):
        build_config({"iterate": {"candidates": 1}})
    with pytest.raises(DpokitError, match="iterate.temperature"):
        build_config({}, ["iterate.temperature=0"])
    config = build_config({}, ["seed=5", "pair_strategy=all_pairs", "reference=adapter", "rounds=3", "judge=human"])
    assert (config.training.seed, config.data.pair_strategy, config.dpo.reference) == (5, "all_pairs", "adapter")
    assert (config.iterate.rounds, config.iterate.judge) == (3, "human")
    from dpokit.config import dump_config

    assert "iterate" not in yaml.safe_load(dump_config(build_config({})))


def test_python_judge_errors_name_the_prompt_and_what_came_back(files):
    from dpokit.judges import make_judge

    rule = files / "rule.py"
    prompt = [[{"role": "user", "content": "How tall is a giraffe?"}]]
    assert make_judge(f"python:{rule}:plain").score(prompt, ["Tall."]) == [3.0]
    with pytest.raises(DpokitError, match="has no function 'nothing'") as err:
        make_judge(f"python:{rule}:nothing")
    assert "plain" in err.value.hint
    with pytest.raises(DpokitError, match="cannot be called as two_args_missing"):
        make_judge(f"python:{rule}:two_args_missing")
    with pytest.raises(DpokitError, match="expected python:FILE.py:FUNCTION"):
        make_judge(f"python:{rule}")
    with pytest.raises(DpokitError, match=r"raised ZeroDivisionError: division by zero \(.*rule.py line \d+\) "
                                          r"for the prompt 'How tall is a giraffe\?' and the answer 'Tall.'"):
        make_judge(f"python:{rule}:broken").score(prompt, ["Tall."])
    with pytest.raises(DpokitError, match=r"returned 'many' \(str: not a number\) for the prompt 'How tall"):
        make_judge(f"python:{rule}:wordy").score(prompt, ["Very tall."])
    with pytest.raises(DpokitError, match=r"returned nan \(float: not finite\)"):
        make_judge(f"python:{rule}:undefined").score(prompt, ["Tall."])
    syntax = files.parent / "bad_syntax.py"
    syntax.write_text("def score(prompt, answer)\n    return 1\n")
    with pytest.raises(DpokitError, match="loading .*bad_syntax.py failed: SyntaxError"):
        make_judge(f"python:{syntax}:score")
    with pytest.raises(DpokitError, match="works in dpokit iterate"):
        make_judge("human").judge(prompt, ["a"], ["b"])


def test_a_failing_judge_names_round_and_step_and_keeps_finished_rounds(baseline, files, tiny_model_dir, tmp_path):
    from dpokit.iterate import run_iterate

    out = copy_rounds(baseline, tmp_path / "loop", [0, 1])
    before = {p: p.read_bytes() for p in (out / "round-1").glob("*.json*")}
    with pytest.raises(DpokitError) as err:
        run_iterate(loop_config(files, tiny_model_dir, out, judge=f"python:{files / 'rule.py'}:broken"),
                    show_progress=False)
    assert str(err.value).startswith("round 2, judging: judge python:")
    assert "ZeroDivisionError" in str(err.value) and "for the prompt 'Tell me something about" in str(err.value)
    assert "finished rounds are kept" in err.value.hint
    assert {p: p.read_bytes() for p in (out / "round-1").glob("*.json*")} == before
    assert [r["round"] for r in json.loads((out / "summary.json").read_text())["rounds"]] == [0, 1]
    assert (out / "round-2" / "candidates.jsonl").is_file() and not (out / "round-2" / "judged.jsonl").exists()

    with pytest.raises(DpokitError, match=r"round 2, pairing: no preference pair: every pair of candidates tied "
                                          r"\(10 tied; pairing best_vs_worst"):
        run_iterate(loop_config(files, tiny_model_dir, out, judge=f"python:{files / 'rule.py'}:constant"),
                    show_progress=False)
    assert not (out / "round-2" / "pairs.jsonl").exists()


class _ModelsOnly(BaseHTTPRequestHandler):
    """An OpenAI-compatible server that lists one model (enough to build the judge)."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        body = json.dumps({"object": "list", "data": [{"id": "judge-1", "object": "model"}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_an_unreachable_judge_endpoint_is_named(baseline, files, tiny_model_dir, tmp_path):
    from dpokit.iterate import Loop

    server = ThreadingHTTPServer(("127.0.0.1", 0), _ModelsOnly)
    url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    out = copy_rounds(baseline, tmp_path / "loop", [0, 1])
    loop = Loop(loop_config(files, tiny_model_dir, out, judge=f"openai:{url}#judge-1",
                            eval_judge=f"python:{files / 'rule.py'}:plain"), show_progress=False)
    server.shutdown()
    server.server_close()
    with pytest.raises(DpokitError, match=r"round 2, judging: iterate.judge: cannot reach the judge endpoint "
                                          + url + "/chat/completions"):
        loop.run()
    with pytest.raises(DpokitError, match="iterate.judge: cannot reach the judge endpoint"):
        Loop(loop_config(files, tiny_model_dir, out, judge=f"openai:{url}#judge-1"), show_progress=False)


# ---------------------------------------------------------------- pieces


def test_pair_up_min_margin():
    from dpokit.data.ranking import RatedAnswer, pair_up

    answers = [RatedAnswer("a", 1.0), RatedAnswer("b", 3.0), RatedAnswer("c", 2.5), RatedAnswer("d", 1.0)]
    assert pair_up(answers, "best_vs_worst", 2.0) == ([("b", "a")], 0)
    assert pair_up(answers, "best_vs_worst", 2.5) == ([], 1)
    assert pair_up(answers, "best_vs_each", 1.0) == ([("b", "a"), ("b", "d")], 1)
    assert pair_up(answers, "all_pairs", 1.5) == ([("b", "a"), ("c", "a"), ("b", "d"), ("c", "d")], 2)
    assert pair_up(answers, "all_pairs") == pair_up(answers, "all_pairs", 0.0)
    assert pair_up(answers, "all_pairs")[1] == 1  # a and d tie


def test_pairwise_judges_score_candidates_by_a_round_robin():
    from dpokit.iterate_judging import make_pairs, score_candidates
    from dpokit.judges import A, B, TIE, Judgement

    class LongerWins:
        name = "longer"

        def judge(self, prompts, answers_a, answers_b):
            return [Judgement(A if len(a) > len(b) else B if len(b) > len(a) else TIE)
                    for a, b in zip(answers_a, answers_b)]

    prompt = [{"role": "user", "content": "Hi"}]
    candidates = [["a", "abc", "ab", ""], ["xy", "xy", "zw"]]
    scores, invalid = score_candidates(LongerWins(), [prompt, prompt], candidates)
    assert scores == [[0.0, 2.0, 1.0, None], [1.0, 1.0, 1.0]] and invalid == 0
    judged = [{"prompt": prompt, "source": f"p:{i}", "candidates": c, "scores": s} for i, (c, s) in
              enumerate(zip(candidates, scores))]
    pairs, left_out = make_pairs(judged, "best_vs_worst", 0.0, 1)
    assert [(p.chosen[0]["content"], p.rejected[0]["content"]) for p in pairs] == [("abc", "a")]
    assert left_out["tie"] == 1
    pairs, left_out = make_pairs(judged, "all_pairs", 1.5, 1)
    assert [(p.chosen[0]["content"], p.rejected[0]["content"]) for p in pairs] == [("abc", "a")]
    assert left_out["below_min_margin"] == 2
    assert pairs[0].meta == {"round": 1, "chosen_score": 2.0, "rejected_score": 0.0}


def test_summary_table():
    from dpokit.iterate_report import format_table

    table = format_table([
        {"round": 0, "pairs": 0, "mean_score": 0.5, "win_rate_vs_round0": None, "win_rate_ci95": None, "run_dir": "m"},
        {"round": 1, "pairs": 12, "mean_score": 1.25, "win_rate_vs_round0": 0.75, "win_rate_ci95": [0.5, 0.9],
         "run_dir": "out/round-1/run"},
    ]).splitlines()
    assert table[1].split() == ["0", "0", "0.500", "-", "m"]
    assert table[2].split() == ["1", "12", "1.250", "0.75", "[0.50,", "0.90]", "out/round-1/run"]
