"""Chunked label log-probs equal the naive full-logits computation, in value and gradient,
on plain and PEFT models, without ever building [N, T, vocab] logits."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402

from dpokit.errors import DpokitError  # noqa: E402
from dpokit.logprobs import LogitTransform, sequence_logps  # noqa: E402


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)


def _batch(vocab: int, rows: int = 4, width: int = 16, seed: int = 0):
    """Random right-padded rows; answers start at different places, row 2 has a long pad tail."""
    gen = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(3, vocab, (rows, width), generator=gen)
    lengths = [width, width - 3, width - 9, width - 1][:rows]
    starts = [5, 9, 2, 12][:rows]
    attention_mask = torch.zeros(rows, width, dtype=torch.long)
    loss_mask = torch.zeros(rows, width, dtype=torch.bool)
    for i, (n, s) in enumerate(zip(lengths, starts)):
        attention_mask[i, :n] = 1
        loss_mask[i, s:n] = True
        input_ids[i, n:] = 0
    return input_ids, attention_mask, loss_mask


def naive_logps(model, input_ids, attention_mask, loss_mask):
    """Reference: the model's own full logits, log-softmax, gather, masked sum."""
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
    token_logps = logits[:, :-1].log_softmax(-1).gather(-1, input_ids[:, 1:, None]).squeeze(-1)
    mask = (loss_mask & attention_mask.bool())[:, 1:]
    return (token_logps * mask).sum(1), mask.sum(1)


@pytest.mark.parametrize("chunk_size", [1, 3, 7, 1024])
def test_chunked_equals_naive_for_any_chunk_size(tiny, chunk_size):
    input_ids, attention_mask, loss_mask = _batch(tiny.config.vocab_size)
    with torch.no_grad():
        expected, expected_counts = naive_logps(tiny, input_ids, attention_mask, loss_mask)
        logps, counts = sequence_logps(tiny, input_ids, attention_mask, loss_mask, chunk_size=chunk_size)
    torch.testing.assert_close(logps, expected, rtol=1e-5, atol=1e-5)
    assert counts.tolist() == expected_counts.tolist() == [11, 4, 5, 3]  # lengths 16, 13, 7, 15 minus answer starts


def test_padding_is_never_counted(tiny):
    input_ids, attention_mask, loss_mask = _batch(tiny.config.vocab_size)
    with torch.no_grad():
        logps, counts = sequence_logps(tiny, input_ids, attention_mask, loss_mask, chunk_size=5)
        # A loss mask that (wrongly) covers the padding tail changes nothing.
        sloppy = loss_mask.clone()
        for i in range(sloppy.shape[0]):
            sloppy[i, int(loss_mask[i].nonzero()[0]):] = True
        logps_sloppy, counts_sloppy = sequence_logps(tiny, input_ids, attention_mask, sloppy, chunk_size=5)
        # Nor do extra padding columns on the right.
        pad = torch.zeros(input_ids.shape[0], 6, dtype=torch.long)
        logps_wide, counts_wide = sequence_logps(
            tiny, torch.cat([input_ids, pad], 1), torch.cat([attention_mask, pad], 1),
            torch.cat([loss_mask, pad.bool()], 1), chunk_size=5,
        )
    assert counts.tolist() == counts_sloppy.tolist() == counts_wide.tolist()
    torch.testing.assert_close(logps_sloppy, logps, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(logps_wide, logps, rtol=1e-5, atol=1e-5)


def test_gradients_through_chunks_equal_the_naive_path(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    # float64, so that the two paths' different summation orders cannot hide a real difference.
    tiny = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float64)
    input_ids, attention_mask, loss_mask = _batch(tiny.config.vocab_size, seed=1)
    # An arbitrary loss, so each row's gradient matters.
    weights = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64)

    def grads(fn):
        tiny.zero_grad(set_to_none=True)
        (fn()[0] * weights).sum().backward()
        return {name: p.grad.clone() for name, p in tiny.named_parameters() if p.grad is not None}

    naive = grads(lambda: naive_logps(tiny, input_ids, attention_mask, loss_mask))
    chunked = grads(lambda: sequence_logps(tiny, input_ids, attention_mask, loss_mask, chunk_size=3))
    tiny.zero_grad(set_to_none=True)
    assert naive.keys() == chunked.keys() and len(naive) == len(list(tiny.parameters()))
    for name in naive:
        torch.testing.assert_close(chunked[name], naive[name], rtol=1e-10, atol=1e-12)
    assert any(g.abs().sum() > 0 for g in chunked.values())


class _LargestVocabTensor(TorchDispatchMode):
    """Records the most elements any activation with a vocab-wide last dimension had.

    ``[hidden, vocab]`` tensors are the head weight transposed or its gradient, not activations.
    """

    def __init__(self, vocab: int, hidden: int):
        super().__init__()
        self.vocab, self.hidden, self.largest = vocab, hidden, 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(t, torch.Tensor) and t.dim() and t.shape[-1] == self.vocab:
                if tuple(t.shape) != (self.hidden, self.vocab):
                    self.largest = max(self.largest, t.numel())
        return out


def test_no_full_vocabulary_logits_in_forward_or_backward(tiny):
    vocab = tiny.config.vocab_size
    input_ids, attention_mask, loss_mask = _batch(vocab, rows=3)  # 48 tokens, unlike hidden=64
    assert input_ids.numel() != tiny.config.hidden_size
    chunk = 4
    saved_vocab_wide = []

    def pack(t):
        if t.dim() and t.shape[-1] == vocab and tuple(t.shape) != (tiny.config.hidden_size, vocab):
            saved_vocab_wide.append(tuple(t.shape))
        return t

    recorder = _LargestVocabTensor(vocab, tiny.config.hidden_size)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), recorder:
        logps, _ = sequence_logps(tiny, input_ids, attention_mask, loss_mask, chunk_size=chunk)
        logps.sum().backward()
    tiny.zero_grad(set_to_none=True)
    rows = input_ids.shape[0]
    # At most one chunk of logits (or the one position per row the model's own head computes).
    assert recorder.largest <= max(chunk, rows) * vocab < input_ids.numel() * vocab
    assert recorder.largest >= chunk * vocab  # the recorder did see the chunks
    # Backward keeps hidden states only: no vocab-wide activation is saved for it.
    assert saved_vocab_wide == []


def test_peft_wrapped_model_uses_its_adapter(tiny_model_dir):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", lora_dropout=0.0))
    torch.manual_seed(3)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)  # a non-zero adapter, so it changes the answer
    input_ids, attention_mask, loss_mask = _batch(base.config.vocab_size, seed=2)
    with torch.no_grad():
        adapted, _ = sequence_logps(model, input_ids, attention_mask, loss_mask, chunk_size=3)
        expected, _ = naive_logps(model, input_ids, attention_mask, loss_mask)
        with model.disable_adapter():
            plain, _ = sequence_logps(model, input_ids, attention_mask, loss_mask, chunk_size=3)
            expected_plain, _ = naive_logps(model, input_ids, attention_mask, loss_mask)
    torch.testing.assert_close(adapted, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(plain, expected_plain, rtol=1e-5, atol=1e-5)
    assert (adapted - plain).abs().max() > 1e-2


def _small_model(kind: str):
    torch.manual_seed(0)
    common = dict(vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                  num_attention_heads=2, num_key_value_heads=1)
    if kind == "gemma2":
        from transformers import Gemma2Config, Gemma2ForCausalLM

        return Gemma2ForCausalLM(Gemma2Config(**common, head_dim=16, final_logit_softcapping=2.0))
    if kind == "granite":
        from transformers import GraniteConfig, GraniteForCausalLM

        return GraniteForCausalLM(GraniteConfig(**common, logits_scaling=0.25))
    from transformers import LlamaConfig, LlamaForCausalLM

    return LlamaForCausalLM(LlamaConfig(**common))


@pytest.mark.parametrize("kind, transform", [
    ("gemma2", LogitTransform(scale=1.0, softcap=2.0)),
    ("granite", LogitTransform(scale=4.0, softcap=None)),
])
def test_logit_softcapping_and_scaling_are_honoured(kind, transform):
    model = _small_model(kind).float().eval()
    assert LogitTransform.from_config(model.config) == transform
    input_ids, attention_mask, loss_mask = _batch(300, seed=4)
    with torch.no_grad():
        expected, _ = naive_logps(model, input_ids, attention_mask, loss_mask)
        logps, _ = sequence_logps(model, input_ids, attention_mask, loss_mask, chunk_size=5)
    torch.testing.assert_close(logps, expected, rtol=1e-5, atol=1e-5)


def test_a_model_run_under_bf16_autocast_passes_the_head_check():
    # As accelerate's mixed precision does: the forward under autocast, outputs cast to fp32.
    model = _small_model("llama").eval()
    forward = model.forward

    def autocast_forward(*args, **kwargs):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = forward(*args, **kwargs)
        out["logits"] = out.logits.float()
        return out

    model.forward = autocast_forward
    input_ids, attention_mask, loss_mask = _batch(300, seed=5)
    with torch.no_grad():
        expected, _ = naive_logps(model, input_ids, attention_mask, loss_mask)
        logps, _ = sequence_logps(model, input_ids, attention_mask, loss_mask, chunk_size=5)
    torch.testing.assert_close(logps, expected, rtol=2e-2, atol=0.1)


def test_unknown_logit_post_processing_fails_clearly():
    model = _small_model("llama").eval()
    model.register_forward_hook(lambda _m, _a, out: out.__setitem__("logits", out.logits * 3.0) or out)
    input_ids, attention_mask, loss_mask = _batch(300)
    with pytest.raises(DpokitError, match="post-processed"):
        sequence_logps(model, input_ids, attention_mask, loss_mask)


def test_a_model_without_lm_head_is_refused():
    from transformers import LlamaConfig, LlamaModel

    body = LlamaModel(LlamaConfig(vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                  num_attention_heads=2, num_key_value_heads=1))
    input_ids, attention_mask, loss_mask = _batch(300)
    with pytest.raises(DpokitError, match="decoder body and LM head"):
        sequence_logps(body, input_ids, attention_mask, loss_mask)


# ---- the shared-prompt layout: one prompt + chosen + rejected row per pair

def _pairs(seed: int = 6):
    """Pairs of varied lengths, one with an empty prompt and one with a one-token answer."""
    from dpokit.data.tokenize import TokenizedPair

    gen = torch.Generator().manual_seed(seed)

    def ids(n):
        return torch.randint(3, 300, (n,), generator=gen).tolist()

    return [TokenizedPair(ids(p), ids(c), ids(r)) for p, c, r in [(5, 4, 7), (0, 3, 2), (9, 1, 5), (2, 6, 1)]]


def _shared_model(attention: str):
    torch.manual_seed(0)
    from transformers import LlamaConfig, LlamaForCausalLM

    return LlamaForCausalLM(LlamaConfig(vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                        num_attention_heads=2, num_key_value_heads=1, attn_implementation=attention,
                                        initializer_range=0.3)).float().eval()  # peaked: context matters


def _rows_per_forward(model) -> list[int]:
    """Records the row count of every forward ``model`` runs."""
    rows: list[int] = []
    model.register_forward_pre_hook(lambda _m, _a, kw: rows.append(kw["input_ids"].shape[0]), with_kwargs=True)
    return rows


def _values_and_gradients(model, batch, score):
    model.zero_grad()
    logps, counts = score(model, batch)
    (logps * torch.linspace(-1, 1, logps.numel())).sum().backward()
    return logps.detach(), counts, {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_shared_layout_equals_separate_rows_in_value_and_gradient(attention):
    from dpokit.data.collate import collate_preference, split_shared_rows
    from dpokit.logprobs import batch_logps

    model = _shared_model(attention)
    batch = collate_preference(_pairs(), pad_token_id=0)
    rows = split_shared_rows(batch)
    calls = _rows_per_forward(model)
    shared, shared_counts, shared_grads = _values_and_gradients(model, batch, lambda m, b: batch_logps(m, b, 5))
    assert calls[-1] == 4  # one row per pair: the shared layout was used (after its first-sight check)
    split, split_counts, split_grads = _values_and_gradients(
        model, rows, lambda m, r: sequence_logps(m, r["input_ids"], r["attention_mask"], r["loss_mask"], 5))
    naive, naive_counts = naive_logps(model, rows["input_ids"], rows["attention_mask"], rows["loss_mask"])
    torch.testing.assert_close(shared, split, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(shared, naive.detach(), rtol=1e-5, atol=1e-5)
    # Chosen then rejected; the empty prompt's answers lose their first token, as in separate rows.
    assert shared_counts.tolist() == split_counts.tolist() == naive_counts.tolist() == [4, 2, 1, 6, 7, 1, 5, 1]
    for name, grad in split_grads.items():
        torch.testing.assert_close(shared_grads[name], grad, rtol=1e-4, atol=1e-5)


def _ignore_4d_masks(model):
    """A model whose forward drops a 4D mask (as one building its own mask would)."""
    import functools

    forward = model.forward

    @functools.wraps(forward)
    def ignoring(*args, **kwargs):
        if kwargs.get("attention_mask") is not None and kwargs["attention_mask"].dim() == 4:
            kwargs["attention_mask"] = None
        return forward(*args, **kwargs)

    model.forward = ignoring


@pytest.mark.parametrize("why, breakage", [
    ("attention implementation", lambda model, monkeypatch: monkeypatch.setattr(
        "dpokit.logprobs.SHARED_LAYOUT_ATTENTION", ())),
    ("sliding window", lambda model, monkeypatch: setattr(model.config, "sliding_window", 8)),
    ("differ from separate rows", lambda model, monkeypatch: _ignore_4d_masks(model)),
])
def test_a_model_that_cannot_take_the_shared_layout_gets_separate_rows_and_a_warning(why, breakage, monkeypatch, capsys):
    from dpokit.data.collate import collate_preference, split_shared_rows
    from dpokit.logprobs import batch_logps

    model = _shared_model("sdpa")
    breakage(model, monkeypatch)
    batch = collate_preference(_pairs(), pad_token_id=0)
    rows = split_shared_rows(batch)
    with torch.no_grad():
        expected, expected_counts = naive_logps(model, rows["input_ids"], rows["attention_mask"], rows["loss_mask"])
        calls = _rows_per_forward(model)
        logps, counts = batch_logps(model, batch, chunk_size=5)
        batch_logps(model, batch, chunk_size=5)
    torch.testing.assert_close(logps, expected, rtol=1e-5, atol=1e-5)
    assert counts.tolist() == expected_counts.tolist()
    assert calls[-1] == 8  # two rows per pair
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and why in warnings[0] and "two rows" in warnings[0]
