"""`dpokit train`: run dir layout, DPO/SFT stages, full fine-tuning, user errors, NaN stop, CLI end to end.

Unit runs use the tiny random Llama (real SmolLM2 tokenizer) on a dozen short pairs with
``max_length`` 64, so each run takes seconds; one end-to-end CLI run uses the real SmolLM2.
The helpers here (``write_pairs``, ``tiny_config``, ``read_lines``) are shared with
test_reference.py and test_resume.py.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dpokit.config import build_config, load_config
from dpokit.errors import DpokitError

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))
LN2 = math.log(2)

QA = [
    ("What is the capital of France?", "Paris.", "I am not sure, maybe Lyon."),
    ("How many legs does a spider have?", "Eight.", "Six, like every insect."),
    ("Name a primary colour.", "Red is one.", "Green, obviously, and purple."),
    ("What is 7 times 6?", "42.", "It is 36."),
    ("Translate 'gato' to English.", "Cat.", "Dog, I believe."),
    ("Who wrote Hamlet?", "William Shakespeare.", "Charles Dickens in 1850."),
    ("Give me a synonym for happy.", "Joyful.", "Sad."),
    ("What gas do plants absorb?", "Carbon dioxide.", "Oxygen, mostly."),
    ("What is the largest planet?", "Jupiter.", "The Sun is a planet."),
    ("What is 2 + 2?", "4.", "22."),
    ("Recommend a book.", "Try 'The Hobbit'.", "No."),
    ("Which is heavier, a kilo of feathers or of iron?", "They weigh the same.", "Iron."),
]


def write_pairs(path: Path, n: int = len(QA)) -> Path:
    """A preference JSONL file of ``n`` short conversational pairs (with a short system prompt)."""
    with open(path, "w", encoding="utf-8") as handle:
        for question, chosen, rejected in (QA * (1 + n // len(QA)))[:n]:
            handle.write(json.dumps({
                "prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": question}],
                "chosen": [{"role": "assistant", "content": chosen}],
                "rejected": [{"role": "assistant", "content": rejected}],
            }) + "\n")
    return path


def tiny_config(model_dir, data_file, out_dir, overrides: list[str] = ()):
    """A config for a few fast steps on the tiny model (LoRA, precompute, no TensorBoard by default)."""
    raw = {
        "model": {"name_or_path": str(model_dir)},
        "lora": {"r": 8, "alpha": 16, "dropout": 0.0},
        "data": {"train_files": [str(data_file)], "max_length": 64, "max_prompt_length": 32},
        "training": {"learning_rate": 5e-3, "max_steps": 4, "per_device_train_batch_size": 2,
                     "per_device_eval_batch_size": 4, "report_to": "none", "seed": 3},
        "output": {"output_dir": str(out_dir)},
    }
    return build_config(raw, list(overrides))


def read_lines(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]


def train_lines(run_dir: Path) -> list[dict]:
    return [r for r in read_lines(run_dir) if "loss" in r]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models gain nothing from threads; on a shared 2-core machine contention made runs ~3x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A private DPOKIT_HOME (reference cache, merged models) that still sees the converted SmolLM2."""
    from dpokit.models import dpokit_home

    real_models = dpokit_home() / "models"
    home = tmp_path / "dpokit-home"
    home.mkdir()
    if real_models.is_dir():
        (home / "models").symlink_to(real_models, target_is_directory=True)
    monkeypatch.setenv("DPOKIT_HOME", str(home))
    monkeypatch.setenv("TQDM_DISABLE", "1")
    return home


@pytest.fixture
def pairs_file(tmp_path):
    return write_pairs(tmp_path / "pairs.jsonl")


# ---------------------------------------------------------------- configs and user errors


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_configs_validate(path):
    config = load_config(path)
    assert config.output.output_dir
    if config.model.load_in_4bit:
        assert config.lora.enabled


def test_examples_cover_the_documented_setups():
    names = {p.name for p in EXAMPLES}
    assert {"quickstart.yaml", "qwen2.5-7b-lora-dpo.yaml", "llama3-qlora-dpo.yaml", "sft-then-dpo.yaml"} <= names
    qwen = load_config(REPO / "examples" / "qwen2.5-7b-lora-dpo.yaml")
    assert (qwen.model.name_or_path, qwen.lora.r, qwen.lora.target_modules, qwen.dpo.beta) == (
        "Qwen/Qwen2.5-7B-Instruct", 16, "all-linear", 0.1)
    assert qwen.training.mixed_precision == "bf16"
    llama = load_config(REPO / "examples" / "llama3-qlora-dpo.yaml")
    assert llama.model.load_in_4bit and llama.model.name_or_path == "meta-llama/Meta-Llama-3-8B-Instruct"
    stages = {load_config(p).stage for p in EXAMPLES if p.name.startswith("sft-then-dpo")}
    assert stages == {"sft", "dpo"}


@pytest.mark.parametrize("overrides, expected", [
    (["training.report_to=[nonsense]"], "unknown reporter 'nonsense'"),
    (["model.load_in_4bit=true"], "load_in_4bit"),
    (["dpo.reference=adapter", "lora.enabled=false"], "dpo.reference: adapter needs a LoRA policy"),
    (["dpo.reference=none"], "needs a reference model"),
    (["training.resume_from_checkpoint=latest"], "no checkpoint in"),
])
def test_user_errors_come_before_any_loading(overrides, expected, tmp_path, pairs_file, monkeypatch):
    from dpokit import models
    from dpokit.recipe import train

    if "load_in_4bit" in expected and torch.cuda.is_available():
        pytest.skip("4-bit loading is possible on this machine")
    monkeypatch.setattr(models, "build_policy", lambda *a, **k: pytest.fail("loaded a model"))
    monkeypatch.setattr(models, "load_tokenizer", lambda *a, **k: pytest.fail("loaded a tokenizer"))
    out = tmp_path / "run"
    with pytest.raises(DpokitError, match=expected.replace("(", r"\(")):
        train(tiny_config("/nonexistent-model", pairs_file, out, overrides))
    assert not (out / "run.json").exists()


def test_wandb_without_the_package_is_a_clear_error(tmp_path, pairs_file):
    import importlib.util

    from dpokit.recipe import train

    if importlib.util.find_spec("wandb") is not None:
        pytest.skip("wandb is installed here")
    with pytest.raises(DpokitError, match="wandb is not installed") as err:
        train(tiny_config("/nonexistent-model", pairs_file, tmp_path / "run", ["training.report_to=wandb"]))
    assert "pip install wandb" in str(err.value)


def test_nonempty_output_dir_is_refused_and_left_alone(tmp_path, pairs_file, home):
    from dpokit.recipe import train

    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.jsonl").write_text("precious\n")
    with pytest.raises(DpokitError, match="exists and is not empty") as err:
        train(tiny_config("/nonexistent-model", pairs_file, out))
    assert "overwrite_output_dir" in str(err.value) and "resume_from_checkpoint" in str(err.value)
    assert (out / "metrics.jsonl").read_text() == "precious\n"


# ---------------------------------------------------------------- DPO + LoRA: the run dir contract


@pytest.fixture(scope="module")
def dpo_run(tmp_path_factory, tiny_model_dir):
    """One DPO+LoRA run with eval, TensorBoard and checkpoints, shared by the layout tests."""
    tmp = tmp_path_factory.mktemp("dpo-run")
    data = write_pairs(tmp / "pairs.jsonl")
    env = {"DPOKIT_HOME": str(tmp / "home"), "TQDM_DISABLE": "1"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        from dpokit.recipe import train

        config = tiny_config(tiny_model_dir, data, tmp / "run", [
            "training.max_steps=8", "data.eval_fraction=0.25", "training.eval_steps=4", "training.save_steps=4",
            "training.report_to=tensorboard", "training.gradient_accumulation_steps=1", "lora.dropout=0.05",
        ])
        run_dir = train(config, show_progress=False)
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return run_dir, config


def test_run_dir_holds_config_run_json_report_and_events(dpo_run, tiny_model_dir):
    run_dir, config = dpo_run
    assert load_config(run_dir / "config.yaml") == config
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["stage"] == "dpo" and meta["adapter"] is True and meta["reference"] == "precompute"
    assert meta["base_model"] == tiny_model_dir and meta["dpokit_version"]
    report = json.loads((run_dir / "data_report.json").read_text())
    assert report["pairs_used"] == 9 and report["eval"]["pairs_used"] == 3  # 12 pairs, 25% held out
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert [p.name for p in sorted((run_dir / "checkpoints").iterdir())] == ["checkpoint-4", "checkpoint-8"]


def test_training_ends_with_charts_and_a_model_card(dpo_run):
    run_dir, _ = dpo_run
    series = json.loads((run_dir / "plots" / "series.json").read_text())
    assert series["loss"]["train loss"]["step"] == [r["step"] for r in train_lines(run_dir)]
    assert (run_dir / "plots" / "rewards.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    card = (run_dir / "README.md").read_text()
    assert "plots/loss.png" in card and "rewards/accuracies" in card


def test_metrics_have_trl_names_and_dpo_starts_at_ln2(dpo_run):
    run_dir, _ = dpo_run
    lines = train_lines(run_dir)
    assert [r["step"] for r in lines] == list(range(1, 9))
    keys = {"step", "epoch", "loss", "rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies",
            "logps/chosen", "logps/rejected", "grad_norm", "learning_rate", "tokens_per_second"}
    for record in lines:
        assert keys <= set(record), keys - set(record)
        assert record["tokens_per_second"] > 0 and record["grad_norm"] > 0
    # Step 1: the policy is its reference (fresh LoRA), so the loss is ln 2 and rewards are 0.
    assert lines[0]["loss"] == pytest.approx(LN2, abs=1e-5)
    assert lines[0]["rewards/margins"] == pytest.approx(0.0, abs=1e-6)
    assert lines[0]["learning_rate"] == pytest.approx(5e-3)
    assert lines[-1]["learning_rate"] < lines[0]["learning_rate"]  # cosine decay
    # 9 train pairs, 2 per batch: 5 batches per epoch, so step 5 ends epoch 1.
    assert lines[4]["epoch"] == pytest.approx(1.0) and lines[-1]["epoch"] > 1
    assert lines[-1]["loss"] < lines[0]["loss"] - 0.05
    assert lines[-1]["rewards/margins"] > 0


def test_eval_lines_are_prefixed_and_come_every_eval_steps(dpo_run):
    run_dir, _ = dpo_run
    evals = [r for r in read_lines(run_dir) if "eval_loss" in r]
    assert [r["step"] for r in evals] == [4, 8]
    for record in evals:
        assert {"eval_rewards/chosen", "eval_rewards/margins", "eval_rewards/accuracies", "eval_logps/chosen"} <= set(record)
        assert not any(k in record for k in ("loss", "rewards/chosen"))
    assert evals[-1]["eval_rewards/margins"] > evals[0]["eval_rewards/margins"] - 1.0  # finite, comparable numbers


def test_final_adapter_loads_with_peft_and_keeps_the_chat_template(dpo_run, tiny_model_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run_dir, _ = dpo_run
    final = run_dir / "final"
    assert (final / "adapter_config.json").is_file() and (final / "adapter_model.safetensors").is_file()
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), str(final))
    trained = [p for n, p in model.named_parameters() if "lora_B" in n]
    assert trained and any(p.abs().sum() > 0 for p in trained)  # B starts at zero: training moved it
    tokenizer = AutoTokenizer.from_pretrained(final)
    text = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert text.endswith("<|im_start|>assistant\n")


# ---------------------------------------------------------------- other stages and modes


def test_full_finetune_with_accumulation_writes_a_model_dir(tmp_path, tiny_model_dir, pairs_file, home):
    from transformers import AutoModelForCausalLM

    from dpokit.recipe import train

    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.jsonl").write_text('{"step": 99, "loss": 1.0}\n')  # an old run's file ...
    (out / "notes.txt").write_text("mine")  # ... and a file dpokit never writes
    config = tiny_config(tiny_model_dir, pairs_file, out, [
        "lora.enabled=false", "training.learning_rate=1e-3", "training.max_steps=3",
        "training.gradient_accumulation_steps=2", "output.overwrite_output_dir=true",
        f"data.eval_files=[{pairs_file}]"])
    train(config, show_progress=False)
    assert (out / "notes.txt").read_text() == "mine"
    assert load_config(out / "config.yaml").output.overwrite_output_dir is False  # the run, not the invocation
    evals = [r for r in read_lines(out) if "eval_loss" in r]
    assert [r["step"] for r in evals] == [3]  # eval data without eval_steps: one eval at the end
    lines = train_lines(out)
    assert [r["step"] for r in lines] == [1, 2, 3]
    assert lines[0]["loss"] == pytest.approx(LN2, abs=1e-5)
    assert lines[1]["epoch"] == pytest.approx(4 / 6, abs=1e-3)  # 2 micro-batches of 6 per step
    assert json.loads((out / "run.json").read_text())["adapter"] is False
    trained = AutoModelForCausalLM.from_pretrained(out / "final")
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    moved = [not torch.equal(a, b) for a, b in zip(trained.state_dict().values(), base.state_dict().values())]
    assert any(moved)
    assert (out / "final" / "tokenizer_config.json").is_file()


@pytest.mark.parametrize("stage", ["dpo", "sft"])
def test_accumulation_splits_give_the_same_steps_and_weights(tmp_path, tiny_model_dir, home, stage):
    """10 pairs, one epoch: batch 4 x 1, 2 x 2 and 1 x 4 make the same 3 steps (4, 4 and a short 2 pairs)."""
    from safetensors.torch import load_file

    from dpokit.recipe import train

    data = write_pairs(tmp_path / "ten.jsonl", n=10)
    runs = {}
    for batch, accumulation in ((4, 1), (2, 2), (1, 4)):
        out = tmp_path / f"b{batch}x{accumulation}"
        train(tiny_config(tiny_model_dir, data, out, [
            f"stage={stage}", "lora.enabled=false", "training.learning_rate=1e-3", "training.max_steps=-1",
            "training.num_train_epochs=1", "training.lr_scheduler_type=constant", "training.max_grad_norm=0",
            f"training.per_device_train_batch_size={batch}", f"training.gradient_accumulation_steps={accumulation}"]),
            show_progress=False)
        runs[(batch, accumulation)] = ([r["loss"] for r in train_lines(out)], load_file(str(out / "final" / "model.safetensors")))
    losses, weights = runs[(4, 1)]
    assert len(losses) == 3
    base = load_file(str(Path(tiny_model_dir) / "model.safetensors"))
    assert any(not torch.allclose(weights[k], base[k]) for k in weights)  # training moved the weights
    for (batch, accumulation), (other_losses, other_weights) in runs.items():
        assert other_losses == pytest.approx(losses, abs=1e-5), (batch, accumulation)
        for name, tensor in weights.items():
            # 2e-5, not 1e-5: AdamW divides by sqrt(v), so fp32 rounding in a near-zero gradient's sum
            # moves single elements by ~1e-5 (seen: 1 of 8192 at 1.19e-5 on an AMX CPU; the losses still
            # agree to 1e-5). A short last step weighted wrong moves most elements by several times that.
            torch.testing.assert_close(other_weights[name], tensor, rtol=0, atol=2e-5,
                                       msg=lambda m, b=batch, a=accumulation, n=name: f"{b}x{a}: {n}: {m}")


def test_overwrite_checks_everything_before_touching_the_old_run(tmp_path, tiny_model_dir, pairs_file, home):
    from dpokit.recipe import train

    out = tmp_path / "run"
    train(tiny_config(tiny_model_dir, pairs_file, out, ["training.max_steps=1"]), show_progress=False)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    # A typo in a data path: an error, and the old run is still all there.
    with pytest.raises(DpokitError, match="file not found"):
        train(tiny_config(tiny_model_dir, tmp_path / "typo.jsonl", out, ["output.overwrite_output_dir=true"]),
              show_progress=False)
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    # A failure after the model is loaded (here: the reference precompute) puts the old run back too.
    import dpokit.reference as reference_mod

    def broken(*args, **kwargs):
        raise DpokitError("simulated failure while computing the reference")

    real = reference_mod.precompute_reference
    reference_mod.precompute_reference = broken
    try:
        with pytest.raises(DpokitError, match="simulated failure"):
            train(tiny_config(tiny_model_dir, pairs_file, out, ["output.overwrite_output_dir=true", "dpo.beta=0.3"]),
                  show_progress=False)
    finally:
        reference_mod.precompute_reference = real
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert not (out / ".previous-run").exists()
    # And a good replacement replaces it, leaving nothing aside.
    train(tiny_config(tiny_model_dir, pairs_file, out, ["output.overwrite_output_dir=true", "dpo.beta=0.3"]),
          show_progress=False)
    assert load_config(out / "config.yaml").dpo.beta == 0.3
    assert not (out / ".previous-run").exists()


def test_gradient_checkpointing_changes_memory_not_numbers(tmp_path, tiny_model_dir, pairs_file, home):
    from safetensors.torch import load_file

    from dpokit.recipe import train

    # No max_steps: one epoch of 12 pairs in batches of 4 is 3 steps.
    common = ["training.max_steps=-1", "training.num_train_epochs=1", "training.per_device_train_batch_size=4"]
    runs = [train(tiny_config(tiny_model_dir, pairs_file, tmp_path / name, common + extra), show_progress=False)
            for name, extra in (("plain", []), ("checkpointed", ["model.gradient_checkpointing=true"]))]
    plain, checkpointed = (train_lines(r) for r in runs)
    assert [r["step"] for r in plain] == [1, 2, 3] and plain[-1]["epoch"] == pytest.approx(1.0)
    for a, b in zip(plain, checkpointed):
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-6)
    weights = [load_file(str(r / "final" / "adapter_model.safetensors")) for r in runs]
    for name in weights[0]:
        torch.testing.assert_close(weights[1][name], weights[0][name], rtol=0, atol=1e-6)


def test_bf16_mixed_precision_in_the_same_process_as_fp32_runs(tmp_path, tiny_model_dir, pairs_file, home):
    """accelerate's settings are process-wide: a bf16 run after an fp32 one (and back) must still work,
    and under autocast the policy's first forward equals the precomputed reference exactly."""
    from dpokit.recipe import train

    for name, precision in (("fp32", "no"), ("bf16", "bf16"), ("fp32-again", "no")):
        run = train(tiny_config(tiny_model_dir, pairs_file, tmp_path / name,
                                ["training.max_steps=2", f"training.mixed_precision={precision}"]), show_progress=False)
        lines = train_lines(run)
        assert len(lines) == 2 and lines[0]["loss"] == pytest.approx(LN2, abs=1e-5), name
        assert load_config(run / "config.yaml").training.mixed_precision == precision
        assert json.loads((run / "run.json").read_text())["mixed_precision"] == precision


def test_auto_precision_is_bf16_on_a_cpu_only_where_it_has_bf16_instructions(monkeypatch):
    from dpokit.devices import CPU_BF16_ENV, resolve_mixed_precision

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delenv(CPU_BF16_ENV, raising=False)
    for avx512_bf16, amx, expected in ((False, False, "no"), (True, False, "bf16"), (False, True, "bf16")):
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda v=avx512_bf16: v, raising=False)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda v=amx: v, raising=False)
        assert resolve_mixed_precision("auto") == expected, (avx512_bf16, amx)
        assert resolve_mixed_precision("no") == "no"
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported")
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported")
    assert resolve_mixed_precision("auto") == "no"  # a torch without the probes: fp32, no error
    for forced, expected in (("1", "bf16"), ("0", "no")):
        monkeypatch.setenv(CPU_BF16_ENV, forced)
        assert resolve_mixed_precision("auto") == expected


def test_sft_stage_lowers_the_loss_on_answer_tokens(tmp_path, tiny_model_dir, pairs_file, home):
    from dpokit.recipe import train

    # Full fine-tuning: a LoRA on a random 64-wide model barely moves (SFT + LoRA: test_reference.py).
    config = tiny_config(tiny_model_dir, pairs_file, tmp_path / "sft", [
        "stage=sft", "lora.enabled=false", "training.max_steps=12", "training.learning_rate=3e-3",
        "training.lr_scheduler_type=constant", "training.per_device_train_batch_size=4"])
    run_dir = train(config, show_progress=False)
    lines = train_lines(run_dir)
    assert len(lines) == 12
    assert json.loads((run_dir / "run.json").read_text())["stage"] == "sft"
    assert "rewards/chosen" not in lines[0]
    # A random model starts near ln(vocab) per token; 4 epochs over 12 pairs must cut it well down.
    assert lines[0]["loss"] == pytest.approx(math.log(49152), rel=0.05)
    first_epoch = sum(r["loss"] for r in lines[:3]) / 3
    last_epoch = sum(r["loss"] for r in lines[-3:]) / 3
    assert last_epoch < first_epoch - 1.0
    assert not (Path(home) / "refcache").exists()  # SFT needs no reference


def test_nan_loss_stops_with_step_and_intact_checkpoint(tmp_path, tiny_model_dir, pairs_file, home, monkeypatch, capsys):
    """A loss that turns NaN at step 3 (test hook on the loss function) stops the CLI with exit 2."""
    import hashlib

    from dpokit import objective
    from dpokit.cli import main

    out = tmp_path / "run"
    checkpoint = out / "checkpoints" / "checkpoint-2"
    calls = {"n": 0, "snapshot": None}
    real_loss = objective.dpo_batch_loss

    def digest(path: Path) -> dict:
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(path.iterdir())}

    def poisoned(*args, **kwargs):
        loss, metrics = real_loss(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 3:  # the third batch = step 3
            calls["snapshot"] = digest(checkpoint)
            loss = loss * float("nan")
        return loss, metrics

    monkeypatch.setattr(objective, "dpo_batch_loss", poisoned)
    config_file = tmp_path / "config.yaml"
    from dpokit.config import dump_config

    config_file.write_text(dump_config(tiny_config(tiny_model_dir, pairs_file, out, [
        "training.save_steps=2", "training.max_steps=6"])))
    code = main(["train", str(config_file), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    assert "step 3" in err and "nan" in err and str(checkpoint) in err and "Traceback" not in err
    assert calls["snapshot"] is not None and digest(checkpoint) == calls["snapshot"]
    assert not (out / "final").exists()
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["checkpoint-2"]
    assert [r["step"] for r in train_lines(out)] == [1, 2]


# ---------------------------------------------------------------- end to end


@pytest.mark.slow
def test_cli_quickstart_example_on_smollm2_lowers_the_loss(tmp_path, smol_path, home):
    data = write_pairs(tmp_path / "pairs.jsonl", 2)
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "dpokit.cli", "train", str(REPO / "examples" / "quickstart.yaml"),
           f"data.train_files=[{data}]", "data.eval_files=[]", "data.max_length=48", "data.max_prompt_length=24",
           "training.max_steps=3", "training.per_device_train_batch_size=2", "training.learning_rate=2e-3",
           "training.lr_scheduler_type=constant", "training.warmup_ratio=0", "training.eval_steps=null",
           "training.save_steps=null", "training.logging_steps=1", "lora.dropout=0", f"output.output_dir={out}",
           "--no-progress"]
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith(str(out))
    lines = train_lines(out)
    assert [r["step"] for r in lines] == [1, 2, 3]
    # The quickstart adds rpo_alpha x NLL of the chosen answers; the preference part starts at ln 2.
    alpha = load_config(REPO / "examples" / "quickstart.yaml").dpo.rpo_alpha or 0.0
    preference = [r["loss"] - alpha * r.get("nll_loss", 0.0) for r in lines]
    assert preference[0] == pytest.approx(LN2, abs=1e-5)
    # One batch of two pairs: every step revisits the pairs it has just trained on.
    assert lines[1]["loss"] < lines[0]["loss"] and preference[2] < LN2 - 0.05
    assert (out / "final" / "adapter_model.safetensors").is_file()
