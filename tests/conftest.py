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
