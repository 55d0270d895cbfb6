"""Config: YAML loading, nested and flat keys, aliases from PAI/TRL/LLaMA-Factory, errors."""

from __future__ import annotations

import pytest

from dpokit.config import (
    PAI_DEFAULT_SYSTEM_PROMPT,
    build_config,
    dump_config,
    load_config,
    parse_column_map,
)
from dpokit.errors import DpokitError


def test_defaults_are_embedded_model_and_dpo():
    cfg = build_config()
    assert cfg.stage == "dpo"
    assert cfg.model.name_or_path == "smollm2-135m-instruct"
    assert cfg.dpo.beta == 0.1 and cfg.dpo.loss_type == "sigmoid"
    assert cfg.dpo.reference == "precompute"
    assert cfg.lora.enabled and cfg.lora.target_modules == "all-linear"


def test_pai_quickstart_flat_names(tmp_path):
    path = tmp_path / "pai.yaml"
    path.write_text(
        "training_strategy: dpo\nlearning_rate: 5e-6\nnum_train_epochs: 2\n"
        "per_device_train_batch_size: 2\nseq_length: 256\nlora_dim: 32\nlora_alpha: 64\n"
        "dpo_beta: 0.2\nload_in_4bit: false\ngradient_accumulation_steps: 8\n"
        "apply_chat_template: true\nsystem_prompt: You are a helpful assistant\n"
    )
    cfg = load_config(path)
    assert cfg.stage == "dpo"
    assert cfg.training.learning_rate == pytest.approx(5e-6)
    assert cfg.training.num_train_epochs == 2
    assert cfg.training.per_device_train_batch_size == 2
    assert cfg.data.max_length == 256
    assert cfg.lora.r == 32 and cfg.lora.alpha == 64
    assert cfg.dpo.beta == pytest.approx(0.2)
    assert cfg.training.gradient_accumulation_steps == 8
    assert cfg.data.system_prompt == PAI_DEFAULT_SYSTEM_PROMPT


def test_pai_lora_dim_zero_means_full_finetune():
    assert build_config({"lora_dim": 0}).lora.enabled is False


def test_trl_names():
    cfg = build_config(
        {"beta": 0.05, "max_length": 512, "max_prompt_length": 128, "loss_type": "ipo",
         "label_smoothing": 0.1, "rpo_alpha": 1.0, "precompute_ref_log_probs": False}
    )
    assert cfg.dpo.beta == pytest.approx(0.05)
    assert (cfg.data.max_length, cfg.data.max_prompt_length) == (512, 128)
    assert cfg.dpo.loss_type == "ipo" and cfg.dpo.label_smoothing == pytest.approx(0.1)
    assert cfg.dpo.rpo_alpha == 1.0
    assert cfg.dpo.reference == "adapter"
    assert build_config({"precompute_ref_log_probs": True}).dpo.reference == "precompute"


def test_llamafactory_names():
    cfg = build_config(
        {"stage": "DPO", "lora_rank": 8, "lora_target": "q_proj,v_proj", "pref_beta": 0.3,
         "pref_loss": "sigmoid", "cutoff_len": 2048, "template": "qwen",
         "model_name_or_path": "Qwen/Qwen2.5-7B-Instruct", "finetuning_type": "lora"}
    )
    assert cfg.stage == "dpo"
    assert cfg.lora.r == 8 and cfg.lora.target_modules == ["q_proj", "v_proj"]
    assert cfg.dpo.beta == pytest.approx(0.3)
    assert cfg.data.max_length == 2048 and cfg.data.template == "qwen"
    assert cfg.model.name_or_path == "Qwen/Qwen2.5-7B-Instruct"
    assert build_config({"lora_target": "all"}).lora.target_modules == "all-linear"
    assert build_config({"pref_loss": "cdpo"}).dpo.loss_type == "robust"


def test_nested_yaml_and_dotted_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("stage: sft\nmodel:\n  name_or_path: /some/model\ndpo:\n  beta: 0.5\n")
    cfg = load_config(path, ["dpo.beta=0.25", "training.max_steps=7", "lora.target_modules=[q_proj, k_proj]"])
    assert cfg.stage == "sft" and cfg.model.name_or_path == "/some/model"
    assert cfg.dpo.beta == pytest.approx(0.25)
    assert cfg.training.max_steps == 7
    assert cfg.lora.target_modules == ["q_proj", "k_proj"]


def test_reference_model_path():
    cfg = build_config({"dpo": {"reference": "runs/sft/final"}})
    assert cfg.dpo.reference.model == "runs/sft/final"


@pytest.mark.parametrize(
    "raw, fragment, suggestion",
    [
        ({"dpo_betta": 0.1}, "dpo_betta", "dpo_beta"),
        ({"dpo": {"betta": 0.1}}, "dpo.betta", "dpo.beta"),
        ({"learnin_rate": 0.1}, "learnin_rate", "learning_rate"),
    ],
)
def test_unknown_key_names_it_and_the_nearest(raw, fragment, suggestion):
    with pytest.raises(DpokitError) as err:
        build_config(raw)
    assert f"'{fragment}'" in str(err.value)
    assert f"'{suggestion}'" in str(err.value)


def test_bad_values_are_clear():
    with pytest.raises(DpokitError, match="dpo.beta"):
        build_config({"beta": -1})
    with pytest.raises(DpokitError, match="loss_type"):
        build_config({"loss_type": "nope"})
    with pytest.raises(DpokitError, match="exclusive"):
        build_config({"load_in_4bit": True, "load_in_8bit": True})


def test_bad_yaml_names_file_and_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("beta: 0.1\nmodel: [unclosed\n")
    with pytest.raises(DpokitError, match=r"bad\.yaml:\d+: invalid YAML"):
        load_config(path)
    with pytest.raises(DpokitError, match="not found"):
        load_config(tmp_path / "missing.yaml")


def test_dump_round_trips(tmp_path):
    cfg = build_config({"beta": 0.3, "lora_target": "q_proj,v_proj", "dpo": {"reference": "/ref"}})
    path = tmp_path / "resolved.yaml"
    path.write_text(dump_config(cfg))
    assert load_config(path) == cfg


def test_column_map_parsing():
    assert parse_column_map("prompt=question,chosen=chatgpt,rejected=llama2-13b-chat") == {
        "prompt": "question", "chosen": "chatgpt", "rejected": "llama2-13b-chat"}
    with pytest.raises(DpokitError, match="role=column"):
        parse_column_map("prompt")


def test_cli_unknown_override_exits_2_without_traceback():
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "dpokit.cli", "config", "show", "dpo_betta=3"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "did you mean 'dpo_beta'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_short_seq_length_clamps_the_default_prompt_length_and_says_so():
    config = build_config({"seq_length": 256})
    assert config.data.max_prompt_length == 128
    assert "data.max_prompt_length set to 128" in config.data.adjustments[0]
    explicit = build_config({"seq_length": 256, "max_prompt_length": 300})  # on purpose: kept (long prompts drop)
    assert explicit.data.max_prompt_length == 300 and explicit.data.adjustments == []
    assert build_config({}).data.adjustments == []


def test_config_keys_lists_full_keys_and_aliases_only(capsys):
    from dpokit.cli import main

    assert main(["config", "keys"]) == 0
    out = capsys.readouterr().out
    keys, _, aliases = out.partition("aliases")
    listed = [line for line in keys.splitlines() if line.strip()]
    assert "dpo.beta" in listed and "lora.r" in listed and "stage" in listed
    assert all("." in key or key == "stage" for key in listed), [k for k in listed if "." not in k]
    assert "seq_length  ->  data.max_length" in aliases and "dpo_beta  ->  dpo.beta" in aliases
