"""Opening run dirs, checkpoints, adapter and model dirs; loading them for inference."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from dpokit.errors import DpokitError
from dpokit.rundir import TRAINER_STATE, list_checkpoints, write_run_json
from dpokit.runs import load_for_inference, open_model_or_run


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _copy_run(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _logits(model, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=ids).logits


def test_run_dir_is_read_from_run_json_and_config(tiny_lora_run, tiny_model_dir):
    info = open_model_or_run(tiny_lora_run)
    assert info.kind == "run"
    assert info.path == tiny_lora_run.resolve()
    assert info.stage == "dpo"
    assert info.base_model == tiny_model_dir
    assert info.adapter_dir == (tiny_lora_run / "final").resolve()
    assert info.model_dir == tiny_model_dir
    assert info.config is not None and info.config.lora.r == 4
    assert info.reference == "precompute"
    assert info.tokenizer_dir == str((tiny_lora_run / "final").resolve())


def test_final_dir_ref_belongs_to_its_run(tiny_lora_run):
    info = open_model_or_run(str(tiny_lora_run / "final"))
    assert info.path == tiny_lora_run.resolve()
    assert info.kind == "run" and info.stage == "dpo"


def test_run_without_final_names_checkpoints_and_resume(tiny_lora_run, tmp_path):
    run = _copy_run(tiny_lora_run, tmp_path / "run")
    for step in (20, 5, 30):
        shutil.copytree(run / "final", run / "checkpoints" / f"checkpoint-{step}")
        if step != 30:  # checkpoint-30 lacks the file a save writes last: not complete
            (run / "checkpoints" / f"checkpoint-{step}" / TRAINER_STATE).write_text("{}")
    (run / "checkpoints" / ".checkpoint-25.tmp").mkdir()  # a killed save: not a checkpoint
    shutil.rmtree(run / "final")
    # One rule for what a checkpoint is, here and for resuming (dpokit.checkpoint uses the same function).
    assert [p.name for p in list_checkpoints(run)] == ["checkpoint-5", "checkpoint-20"]
    with pytest.raises(DpokitError) as err:
        open_model_or_run(run)
    text = str(err.value)
    assert str(run.resolve()) in text and "final" in text
    assert "checkpoint-5" in text and "checkpoint-20" in text
    assert "resume_from_checkpoint=latest" in text and "checkpoint-25" not in text and "checkpoint-30" not in text
    # ... and the checkpoint it points at is accepted as a reference.
    info = open_model_or_run(run / "checkpoints" / "checkpoint-20")
    assert info.kind == "checkpoint" and info.path == run.resolve()
    assert info.adapter_dir == (run / "checkpoints" / "checkpoint-20").resolve()


def test_run_without_anything_saved(tmp_path, tiny_model_dir):
    write_run_json(tmp_path / "run", stage="dpo", base_model=tiny_model_dir, adapter=True)
    with pytest.raises(DpokitError, match="no final model .* and no checkpoints"):
        open_model_or_run(tmp_path / "run")


def test_missing_path_and_non_model_dir(tmp_path):
    with pytest.raises(DpokitError, match="does not exist"):
        open_model_or_run(str(tmp_path / "nope"))
    with pytest.raises(DpokitError, match="does not exist"):
        open_model_or_run("./runs/missing")
    (tmp_path / "notes").mkdir()
    with pytest.raises(DpokitError, match="not a model dir, adapter dir or dpokit run dir"):
        open_model_or_run(tmp_path / "notes")


@pytest.mark.parametrize("model_type, arch", [("bert", "BertForMaskedLM"), ("llama", "LlamaForSequenceClassification")])
def test_model_dir_that_is_not_a_causal_lm(tmp_path, model_type, arch):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": model_type, "architectures": [arch]}))
    with pytest.raises(DpokitError, match=f"not a causal language model .*model_type '{model_type}'.*{arch}"):
        open_model_or_run(tmp_path)


def test_plain_names(tiny_model_dir):
    assert open_model_or_run(tiny_model_dir).kind == "model"
    assert open_model_or_run("smollm2-135m-instruct").kind == "embedded"
    hub = open_model_or_run("Qwen/Qwen2.5-7B-Instruct")
    assert hub.kind == "hub" and hub.adapter_dir is None and hub.path is None


def test_relative_base_model_is_resolved_against_the_run_dir(tiny_lora_run, tiny_model_dir, tmp_path):
    run = _copy_run(tiny_lora_run, tmp_path / "run")
    shutil.copytree(tiny_model_dir, run / "base")
    write_run_json(run, stage="dpo", base_model="base", adapter=True)
    assert open_model_or_run(run).base_model == str((run / "base").resolve())


def test_lora_run_loads_base_plus_adapter_unmerged(tiny_lora_run, tiny_model_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model, tokenizer, info = load_for_inference(tiny_lora_run)
    assert isinstance(model, PeftModel) and not model.training
    assert any("lora_A" in n for n, _ in model.named_parameters())  # not merged
    assert tokenizer.chat_template
    ids = torch.tensor([tokenizer("Hello there, how are you?")["input_ids"]])
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    with_adapter, without = _logits(model, ids), _logits(base, ids)
    assert (with_adapter - without).abs().max() > 1e-2  # the adapter is active
    with model.disable_adapter():
        assert torch.allclose(_logits(model, ids), without, atol=1e-5)


def test_full_finetune_run_loads_final_model(tmp_path, tiny_model_dir, tokenizer):
    from transformers import AutoModelForCausalLM

    tuned = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    with torch.no_grad():
        tuned.model.norm.weight.mul_(1.5)
    run = tmp_path / "full-run"
    tuned.save_pretrained(run / "final")
    tokenizer.save_pretrained(run / "final")
    write_run_json(run, stage="sft", base_model=tiny_model_dir, adapter=False)
    info = open_model_or_run(run)
    assert info.adapter_dir is None and info.model_dir == str((run / "final").resolve())
    assert info.stage == "sft" and info.config is None
    model, _, _ = load_for_inference(run, dtype="float32")
    assert torch.equal(model.model.norm.weight, tuned.model.norm.weight)
    assert json.loads((run / "run.json").read_text())["adapter"] is False


def test_adapter_on_the_wrong_base_is_a_clear_error(tiny_lora_run, tiny_model_dir, tmp_path):
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(tiny_model_dir)
    config.hidden_size, config.intermediate_size = 32, 64
    other = tmp_path / "other-base"
    AutoModelForCausalLM.from_config(config).save_pretrained(other)
    run = _copy_run(tiny_lora_run, tmp_path / "run")
    write_run_json(run, stage="dpo", base_model=str(other), adapter=True)
    with pytest.raises(DpokitError, match="cannot load the LoRA adapter onto .*other-base"):
        load_for_inference(run)


def test_dtype_choice(tiny_lora_run):
    model, _, _ = load_for_inference(tiny_lora_run, dtype=torch.bfloat16)
    assert next(model.parameters()).dtype == torch.bfloat16
    with pytest.raises(DpokitError, match="dtype 'int8' is not supported"):
        load_for_inference(tiny_lora_run, dtype="int8")
