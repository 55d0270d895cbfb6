"""Shared fixtures.

Unit tests run on a *tiny random* Llama model that uses the real SmolLM2 tokenizer
(vocab 49152, ChatML template), so tokenisation is real and forward passes are cheap.
Integration tests use the real SmolLM2-135M-Instruct (converted once into the dpokit cache).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

# `training.mixed_precision: auto` is bf16 on CPUs with bf16 instructions; the tests pin fp32 (their
# subprocesses inherit this), so their figures are the same on every CI machine.
from dpokit.devices import CPU_BF16_ENV  # noqa: E402  (after the torch check; imports nothing heavy)

os.environ.setdefault(CPU_BF16_ENV, "0")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
if not SHARED_DATA.is_dir():  # CI clones main with shared/ beside it
    SHARED_DATA = Path(os.environ.get("DPOKIT_SHARED_DATA", REPO.parent / "shared" / "data"))
HH_RLHF = SHARED_DATA / "hh-rlhf-harmless-base.part-a.jsonl.gz"
LLAMAFACTORY = SHARED_DATA / "llamafactory"

EMBEDDED = "smollm2-135m-instruct"


@pytest.fixture(scope="session")
def smol_path() -> str:
    """Local dir of the real SmolLM2-135M-Instruct (converted from GGUF once, cached)."""
    from dpokit.models import resolve_model_path

    return resolve_model_path(EMBEDDED)


@pytest.fixture(scope="session")
def tokenizer(smol_path):
    from dpokit.models import load_tokenizer

    return load_tokenizer(smol_path)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tokenizer) -> str:
    """A tiny random Llama (2 layers, hidden 64) saved with the SmolLM2 tokenizer."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    out = tmp_path_factory.mktemp("tiny-llama")
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return str(out)


@pytest.fixture(scope="session")
def tiny_lora_run(tmp_path_factory, tiny_model_dir, tokenizer) -> Path:
    """A hand-made DPO run dir on the tiny model, in the trainer's layout (read-only in tests).

    ``final/`` holds a LoRA adapter whose B matrices are random (not PEFT's zeros), so the
    adapter really changes the model's outputs; ``run.json`` and ``config.yaml`` as the
    trainer writes them.
    """
    import json

    from dpokit import __version__
    from dpokit.config import LoraConfig, build_config, dump_config
    from dpokit.models import apply_lora
    from transformers import AutoModelForCausalLM

    run_dir = tmp_path_factory.mktemp("tiny-lora-run")
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    model = apply_lora(model, LoraConfig(r=4, alpha=8, dropout=0.0, target_modules=["q_proj", "v_proj"]))
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.5)
    model.save_pretrained(run_dir / "final")
    tokenizer.save_pretrained(run_dir / "final")
    config = build_config({"model": {"name_or_path": tiny_model_dir}, "lora": {"r": 4, "alpha": 8},
                           "output": {"output_dir": str(run_dir)}})
    (run_dir / "config.yaml").write_text(dump_config(config), encoding="utf-8")
    run_json = {"stage": "dpo", "base_model": tiny_model_dir, "adapter": True, "reference": "precompute",
                "dpokit_version": __version__}
    (run_dir / "run.json").write_text(json.dumps(run_json), encoding="utf-8")
    return run_dir


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models gain nothing from threads; on a shared 2-core machine contention slows them ~3x.

    Use with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
