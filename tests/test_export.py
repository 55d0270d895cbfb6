"""`dpokit merge`: LoRA merged into its base -> a plain Hugging Face model dir."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from dpokit.cli import main
from dpokit.errors import DpokitError
from dpokit.export import merge_lora
from dpokit.rundir import write_run_json
from dpokit.runs import load_for_inference

PROBE = "Hello! Which is the largest ocean on Earth?"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _logits(model, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=ids).logits


@pytest.fixture(scope="module")
def merged_dir(tiny_lora_run, tmp_path_factory) -> Path:
    return merge_lora(tiny_lora_run, tmp_path_factory.mktemp("export") / "merged")


def test_merged_logits_equal_base_plus_adapter(merged_dir, tiny_lora_run, tiny_model_dir):
    from transformers import AutoModelForCausalLM

    adapted, tokenizer, _ = load_for_inference(tiny_lora_run)
    ids = torch.tensor([tokenizer(PROBE)["input_ids"]])
    merged = AutoModelForCausalLM.from_pretrained(merged_dir).eval()
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    expected = _logits(adapted, ids)
    assert (expected - _logits(base, ids)).abs().max() > 1e-2  # the adapter is not a no-op
    assert torch.allclose(_logits(merged, ids), expected, atol=1e-4)
    assert not any("lora" in name for name, _ in merged.named_parameters())


def test_merged_dir_is_a_plain_hf_dir(merged_dir):
    names = {p.name for p in merged_dir.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer_config.json"} <= names
    assert "adapter_config.json" not in names
    assert not [p for p in merged_dir.parent.iterdir() if p.name.startswith(".merged.tmp")]  # temp dir renamed


def test_merged_dir_loads_with_transformers_alone(merged_dir, tiny_lora_run, tmp_path):
    """A fresh interpreter without dpokit: the dir is self-contained (weights, tokenizer, template)."""
    adapted, tokenizer, _ = load_for_inference(tiny_lora_run)
    ids = tokenizer(PROBE)["input_ids"]
    out = tmp_path / "logits.pt"
    script = textwrap.dedent(f"""
        import sys, torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        tok = AutoTokenizer.from_pretrained({str(merged_dir)!r})
        assert tok.chat_template, "chat template missing"
        text = tok.apply_chat_template([{{"role": "user", "content": "hi"}}], tokenize=False, add_generation_prompt=True)
        assert text.endswith("<|im_start|>assistant\\n"), text
        model = AutoModelForCausalLM.from_pretrained({str(merged_dir)!r}).eval()
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([{ids!r}])).logits
        torch.save(logits, {str(out)!r})
        assert not [m for m in sys.modules if m.split(".")[0] == "dpokit"], "dpokit was imported"
    """)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert torch.allclose(torch.load(out), _logits(adapted, torch.tensor([ids])), atol=1e-4)


def test_refuses_non_empty_output_dir(tiny_lora_run, tmp_path):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(DpokitError, match="not empty"):
        merge_lora(tiny_lora_run, out)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_empty_output_dir_is_accepted(tiny_lora_run, tmp_path):
    (tmp_path / "empty").mkdir()
    assert (merge_lora(tiny_lora_run, tmp_path / "empty") / "model.safetensors").is_file()


def test_full_finetune_run_is_copied(tmp_path, tiny_model_dir, tokenizer):
    from transformers import AutoModelForCausalLM

    run = tmp_path / "full"
    shutil.copytree(tiny_model_dir, run / "final")
    write_run_json(run, stage="sft", base_model="smollm2-135m-instruct", adapter=False)
    out = merge_lora(run, tmp_path / "out")
    a = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    b = AutoModelForCausalLM.from_pretrained(out)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_plain_model_has_nothing_to_merge(tiny_model_dir, tmp_path):
    with pytest.raises(DpokitError, match="nothing to merge"):
        merge_lora(tiny_model_dir, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_cli_merge(tiny_lora_run, tmp_path, capsys):
    assert main(["merge", str(tiny_lora_run), "--out", str(tmp_path / "m")]) == 0
    assert "merged model written to" in capsys.readouterr().out
    assert json.loads((tmp_path / "m" / "config.json").read_text())["model_type"] == "llama"


def test_cli_merge_errors_exit_2_without_traceback(tiny_lora_run, tmp_path):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "x").write_text("x")
    for argv, message in [
        (["merge", str(tiny_lora_run), "--out", str(out)], "not empty"),
        (["merge", str(tmp_path / "no-such-run"), "--out", str(tmp_path / "new")], "does not exist"),
    ]:
        result = subprocess.run([sys.executable, "-m", "dpokit.cli", *argv], capture_output=True, text=True, timeout=300)
        assert result.returncode == 2, result.stderr
        assert message in result.stderr and "Traceback" not in result.stderr


def test_a_base_named_by_an_embedded_name_is_resolved(tiny_lora_run, tiny_model_dir, tmp_path, monkeypatch):
    """A LoRA run on an embedded model (run.json names it, e.g. smollm2-135m-instruct) merges offline."""
    from dpokit import models

    home = tmp_path / "home"
    (home / "models").mkdir(parents=True)
    (home / "models" / "tiny-embedded").symlink_to(tiny_model_dir, target_is_directory=True)
    monkeypatch.setenv("DPOKIT_HOME", str(home))
    monkeypatch.setitem(models.EMBEDDED_MODELS, "tiny-embedded", models.EMBEDDED_MODELS["smollm2-135m-instruct"])
    run = tmp_path / "run"
    shutil.copytree(tiny_lora_run, run)
    run_json = json.loads((run / "run.json").read_text())
    write_run_json(run, **{**run_json, "base_model": "tiny-embedded"})
    merged = merge_lora(run, tmp_path / "merged")
    assert (merged / "model.safetensors").is_file()
