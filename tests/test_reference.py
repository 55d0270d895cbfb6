"""Reference modes (precompute + cache, adapter, separate model, none) and SFT -> DPO, on the tiny model."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import torch

from dpokit import fingerprint, reference
from dpokit.config import build_config
from dpokit.data.tokenize import TokenizedPair
from test_train import LN2, home, one_thread, pairs_file, tiny_config, train_lines  # noqa: F401  (fixtures)


def _train(config):
    from dpokit.recipe import train

    return train(config, show_progress=False)


# ---------------------------------------------------------------- cache keys and files


def _pairs(*ids):
    return [TokenizedPair([1, 2], [i], [i + 1]) for i in ids]


def test_data_fingerprint_follows_every_token_id_and_the_order():
    base = fingerprint.data_fingerprint(_pairs(5, 7))
    assert fingerprint.data_fingerprint(_pairs(5, 7)) == base
    assert fingerprint.data_fingerprint(_pairs(7, 5)) != base
    assert fingerprint.data_fingerprint(_pairs(5, 8)) != base
    # Moving a token from the prompt to the answer changes the key too.
    moved = [TokenizedPair([1], [2, 5], [6]), TokenizedPair([1, 2], [7], [8])]
    assert fingerprint.data_fingerprint(moved) != base


def test_model_identity_follows_file_contents_not_names_sizes_or_times(tmp_path, tiny_model_dir, home):
    import shutil

    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    first = fingerprint.model_identity(str(model))
    assert first == fingerprint.model_identity(str(model))
    assert first["model"] == str(model.resolve())
    weights = model / "model.safetensors"
    stat = weights.stat()
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert fingerprint.model_identity(str(model)) == first  # touched, same contents: same model
    # Same name, same size, same mtime, other contents (the last byte of the tensor data): another model.
    stat = weights.stat()
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01
    weights.write_bytes(bytes(data))
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert weights.stat().st_size == stat.st_size
    assert fingerprint.model_identity(str(model)) != first


def test_a_hub_id_is_keyed_by_its_resolved_revision(monkeypatch, home):
    revisions = {"org/model": ("0123abc", None)}
    monkeypatch.setattr(fingerprint, "hub_revision", lambda repo: revisions.get(repo))
    identity = fingerprint.model_identity("org/model")
    assert identity == {"model": "org/model", "revision": "0123abc", "files": None}
    assert fingerprint.identity_known(identity)
    revisions["org/model"] = ("4567def", None)  # the repository moved on
    assert fingerprint.model_identity("org/model") != identity
    revisions.clear()  # neither cached nor reachable: no identity, so nothing may be cached against it
    assert not fingerprint.identity_known(fingerprint.model_identity("org/model"))


def _key(config, model_dir, examples, precision="no", **batches):
    options = {"batch_size": 4, "shuffled": True, **batches}
    return reference.cache_key(reference.cache_key_parts(config, model_dir, examples, precision, **options))


def test_cache_key_covers_tokenisation_dtype_and_the_batches(tiny_model_dir, home):
    examples = _pairs(5, 7)
    config = build_config({"model": {"name_or_path": tiny_model_dir}})
    key = _key(config, tiny_model_dir, examples)
    for override in ("data.max_length=512", "data.max_prompt_length=100", "data.system_prompt=Hi", "model.dtype=bfloat16",
                     "training.seed=7", "training.group_by_length=true"):
        other = build_config({"model": {"name_or_path": tiny_model_dir}}, [override])
        assert _key(other, tiny_model_dir, examples) != key, override
    assert _key(config, tiny_model_dir, examples, "bf16") != key
    assert _key(config, tiny_model_dir, examples, batch_size=2) != key
    assert _key(config, tiny_model_dir, examples, num_processes=2) != key
    beta = build_config({"model": {"name_or_path": tiny_model_dir}}, ["dpo.beta=0.5", "training.learning_rate=1"])
    assert _key(beta, tiny_model_dir, examples) == key
    # Eval batches are in dataset order: the seed does not matter there.
    seeded = build_config({"model": {"name_or_path": tiny_model_dir}}, ["training.seed=7"])
    assert _key(seeded, tiny_model_dir, examples, shuffled=False) == _key(config, tiny_model_dir, examples, shuffled=False)
    # ... but length grouping sorts them.
    grouped = build_config({"model": {"name_or_path": tiny_model_dir}}, ["training.group_by_length=true"])
    assert _key(grouped, tiny_model_dir, examples, shuffled=False) != _key(config, tiny_model_dir, examples, shuffled=False)
    from dpokit.data import collate

    parts = reference.cache_key_parts(config, tiny_model_dir, examples, "no", batch_size=4, shuffled=True)
    assert parts["batches"]["layout"] == collate.LAYOUT


def test_cache_round_trip_and_damaged_files_are_recomputed(home):
    values = reference.ReferenceLogps(torch.tensor([-1.5, -2.0]), torch.tensor([-3.0, -4.25]))
    path = reference.save_cached("k1", values, {"what": "test"})
    assert path.parent == Path(home) / "refcache"
    loaded = reference.load_cached("k1", 2)
    assert torch.equal(loaded.chosen, values.chosen) and torch.equal(loaded.rejected, values.rejected)
    assert reference.load_cached("k1", 3) is None  # the wrong number of pairs is never trusted
    assert reference.load_cached("missing", 2) is None
    path.write_bytes(b"not safetensors")
    assert reference.load_cached("k1", 2) is None
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temp files left


# ---------------------------------------------------------------- precompute: cached, reused, invalidated


def test_precompute_is_reused_by_a_beta_sweep_and_missed_when_max_length_changes(
        tmp_path, tiny_model_dir, pairs_file, home, monkeypatch):
    from dpokit import scoring

    computed = []
    real = scoring.score_pairs

    def counting(*args, **kwargs):
        computed.append(args[2])  # the number of pairs scored
        return real(*args, **kwargs)

    monkeypatch.setattr(scoring, "score_pairs", counting)
    short = ["training.max_steps=1"]
    first = _train(tiny_config(tiny_model_dir, pairs_file, tmp_path / "beta0.1", short))
    assert computed == [12]
    assert len(list((Path(home) / "refcache").glob("*.safetensors"))) == 1
    second = _train(tiny_config(tiny_model_dir, pairs_file, tmp_path / "beta0.5", short + ["dpo.beta=0.5"]))
    assert computed == [12]  # cache hit: nothing recomputed
    assert train_lines(first)[0]["logps/chosen"] == train_lines(second)[0]["logps/chosen"]
    assert train_lines(second)[0]["loss"] == pytest.approx(LN2, abs=1e-5)
    _train(tiny_config(tiny_model_dir, pairs_file, tmp_path / "len48", short + ["data.max_length=48"]))
    assert computed == [12, 12]  # new tokenisation settings: a miss
    assert len(list((Path(home) / "refcache").glob("*.safetensors"))) == 2
    described = [json.loads(p.read_text()) for p in (Path(home) / "refcache").glob("*.json")]
    assert sorted(d["tokenization"]["max_length"] for d in described) == [48, 64]
    assert all(d["model"] == str(Path(tiny_model_dir).resolve()) for d in described)


# ---------------------------------------------------------------- the other modes


def test_adapter_mode_matches_precompute(tmp_path, tiny_model_dir, pairs_file, home):
    steps = ["training.max_steps=3"]
    pre = train_lines(_train(tiny_config(tiny_model_dir, pairs_file, tmp_path / "pre", steps)))
    ada = train_lines(_train(tiny_config(tiny_model_dir, pairs_file, tmp_path / "ada", steps + ["dpo.reference=adapter"])))
    assert json.loads((tmp_path / "ada" / "run.json").read_text())["reference"] == "adapter"
    assert ada[0]["loss"] == pytest.approx(LN2, abs=1e-5)
    for a, b in zip(pre, ada):
        for key in ("loss", "rewards/chosen", "rewards/rejected", "rewards/margins", "logps/chosen"):
            assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-5), (a["step"], key)
    assert ada[-1]["rewards/margins"] != 0.0


def test_separate_reference_model_is_used_frozen(tmp_path, tiny_model_dir, pairs_file, home, tiny_lora_run):
    # Same weights as the policy's start: the loss starts at ln 2.
    same = train_lines(_train(tiny_config(tiny_model_dir, pairs_file, tmp_path / "same", [
        "training.max_steps=2", f"dpo.reference={tiny_model_dir}"])))
    assert same[0]["loss"] == pytest.approx(LN2, abs=1e-5)
    meta = json.loads((tmp_path / "same" / "run.json").read_text())
    assert meta["reference"] == {"model": tiny_model_dir}
    # A different reference (a run whose adapter really changes the outputs): rewards start non-zero,
    # and with no learning at all they stay exactly where they started (the reference is frozen).
    other = train_lines(_train(tiny_config(tiny_model_dir, pairs_file, tmp_path / "other", [
        "training.max_steps=2", f"dpo.reference={tiny_lora_run}", "training.learning_rate=1e-30",
        "training.per_device_train_batch_size=12"])))
    assert abs(other[0]["rewards/margins"]) > 1e-3
    assert other[1]["rewards/margins"] == pytest.approx(other[0]["rewards/margins"], abs=1e-6)
    assert not (Path(home) / "refcache").exists()


def test_reference_free_simpo_needs_no_reference(tmp_path, tiny_model_dir, pairs_file, home):
    lines = train_lines(_train(tiny_config(tiny_model_dir, pairs_file, tmp_path / "simpo", [
        "training.max_steps=2", "dpo.loss_type=simpo", "dpo.reference=none", "dpo.beta=2.0"])))
    assert len(lines) == 2 and all("rewards/margins" in r for r in lines)
    assert lines[0]["loss"] != pytest.approx(LN2, abs=1e-3)  # SimPO's margin term: not DPO's ln 2 start
    assert not (Path(home) / "refcache").exists()


# ---------------------------------------------------------------- SFT, then DPO on top


def _logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits


def test_dpo_on_an_sft_lora_run_merges_it_first(tmp_path, tiny_model_dir, pairs_file, home):
    from transformers import AutoModelForCausalLM

    from dpokit.runs import load_for_inference, open_model_or_run

    sft_dir = _train(tiny_config(tiny_model_dir, pairs_file, tmp_path / "sft", [
        "stage=sft", "training.max_steps=3", "training.learning_rate=5e-2"]))
    dpo_dir = _train(tiny_config(sft_dir, pairs_file, tmp_path / "dpo", ["training.max_steps=2"]))

    # The run carries the SFT adapter in RUN_DIR/base, naming the original base: it is self-contained.
    assert json.loads((dpo_dir / "run.json").read_text())["base_model"] == "base"
    carried = json.loads((dpo_dir / "base" / "adapter_config.json").read_text())
    assert carried["base_model_name_or_path"] == tiny_model_dir
    merged = Path(json.loads((dpo_dir / "final" / "adapter_config.json").read_text())["base_model_name_or_path"])
    assert merged.parent == Path(home) / "merged" and (merged / "config.json").is_file()
    ids = torch.tensor([[1, 520, 33, 7, 900, 12]])
    merged_model = AutoModelForCausalLM.from_pretrained(merged)
    sft_model, _, _ = load_for_inference(sft_dir, device="cpu")
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    torch.testing.assert_close(_logits(merged_model, ids), _logits(sft_model, ids), rtol=1e-4, atol=1e-4)
    assert not torch.allclose(_logits(merged_model, ids), _logits(base, ids), atol=1e-3)
    assert open_model_or_run(dpo_dir).base_model == str((dpo_dir / "base").resolve())
    # The carried copy is the same adapter as the SFT run's: loading the DPO run merges nothing again.
    from dpokit.start_model import materialise

    assert materialise(str(dpo_dir / "base")) == str(merged)
    load_for_inference(dpo_dir, device="cpu")
    assert [p.name for p in (Path(home) / "merged").iterdir() if not p.name.startswith(".")] == [merged.name]

    # The reference is the SFT model (policy == reference at step 1) and the cache is keyed by the merged dir.
    lines = train_lines(dpo_dir)
    assert lines[0]["loss"] == pytest.approx(LN2, abs=1e-5)
    described = [json.loads(p.read_text()) for p in (Path(home) / "refcache").glob("*.json")]
    assert [d["model"] for d in described] == [str(merged.resolve())]
    # A second DPO run reuses the merge.
    stamp = (merged / "model.safetensors").stat().st_mtime_ns
    time.sleep(0.01)
    again = _train(tiny_config(sft_dir, pairs_file, tmp_path / "dpo2", ["training.max_steps=1", "dpo.beta=0.3"]))
    assert json.loads((again / "run.json").read_text())["base_model"] == "base"
    assert (merged / "model.safetensors").stat().st_mtime_ns == stamp


def test_an_sft_then_dpo_run_dir_moved_elsewhere_still_evaluates(tmp_path, tiny_model_dir, pairs_file, home):
    """A chain (SFT, DPO on it, DPO again, as dpokit iterate makes) moved to another place evaluates the same."""
    import shutil

    from dpokit.evaluate import evaluate_ref

    sft_dir = _train(tiny_config(tiny_model_dir, pairs_file, tmp_path / "sft", [
        "stage=sft", "training.max_steps=3", "training.learning_rate=5e-2"]))
    dpo_dir = _train(tiny_config(sft_dir, pairs_file, tmp_path / "dpo", ["training.max_steps=2",
                                                                        "training.learning_rate=5e-2"]))
    again = _train(tiny_config(dpo_dir, pairs_file, tmp_path / "dpo2", ["training.max_steps=2",
                                                                       "training.learning_rate=5e-2"]))
    assert json.loads((again / "base" / "adapter_config.json").read_text())["base_model_name_or_path"] == "base"
    assert (again / "base" / "base" / "adapter_config.json").is_file()  # the whole chain travels with the run
    here = evaluate_ref(again, [str(pairs_file)], max_pairs=6)
    # Another machine: the run dir copied to a new place, no earlier runs, an empty merge cache.
    moved = tmp_path / "elsewhere" / "my-run"
    shutil.copytree(again, moved)
    for gone in (sft_dir, dpo_dir, again, Path(home) / "merged"):
        shutil.rmtree(gone)
    there = evaluate_ref(moved, [str(pairs_file)], max_pairs=6)
    for key in ("reward_accuracy", "margin_mean", "logprob_accuracy", "logps_chosen_mean", "logps_rejected_mean"):
        assert there[key] == pytest.approx(here[key], rel=1e-5, abs=1e-6), key
    assert here["margin_mean"] != 0  # the last adapter changed something, so equality means something
