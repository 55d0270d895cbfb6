"""dpokit's numbers equal TRL's DPOTrainer's on the same model, data, order, seed and init.

TRL (a test-only dependency) trains a tiny random Llama; dpokit trains an identical copy
with its own engine (tokenize -> collate -> chunked log-probs -> loss -> AdamW step).
Asserted: the same token ids, per-pair summed log-probs of both answers at step 1 within
1e-5 relative, the step-1 loss within 1e-6, the loss of each of the first 10 optimizer
steps within 1e-4, and TRL's logged reward/log-prob metrics at the first and last step;
for sigmoid (full fine-tuning with the real SmolLM2 tokenizer, full and LoRA with a small
word-level one), ipo, hinge, robust and sigmoid + NLL (RPO).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import pytest

torch = pytest.importorskip("torch")
trl = pytest.importorskip("trl")

from dpokit.config import DataConfig, DPOConfig, LoraConfig  # noqa: E402
from dpokit.data.tokenize import tokenize_pairs  # noqa: E402
from dpokit.data.types import PreferencePair  # noqa: E402

SEED = 7
BATCH = 2
STEPS = 10
LR = 5e-4
LORA_LR = 1e-2  # LoRA starts at the reference (B = 0) and moves slowly: a larger step shows it train
SYSTEM = "Answer briefly."


def _pair(question: str, chosen: str, rejected: str, system: Optional[str] = SYSTEM, history: tuple = ()) -> PreferencePair:
    prompt = ([{"role": "system", "content": system}] if system else []) + list(history)
    prompt.append({"role": "user", "content": question})
    return PreferencePair(prompt, [{"role": "assistant", "content": chosen}], [{"role": "assistant", "content": rejected}])


# 20 short conversations (10 steps of 2 pairs): answers of uneven length so padding matters,
# one without a system prompt (the template then inserts its default) and one multi-turn.
PAIRS = [
    _pair("What is the capital of France?", "Paris.", "I am not sure, maybe Lyon or Marseille."),
    _pair("How many legs does a spider have?", "Eight.", "Six, like every insect."),
    _pair("Name a primary colour.", "Red is one.", "Green, obviously, and also purple."),
    _pair("What is 7 times 6?", "42.", "It is 36."),
    _pair("Translate 'gato' to English.", "Cat.", "Dog, I believe."),
    _pair("Is water wet?", "Water makes things wet; it is a liquid.", "No."),
    _pair("Who wrote Hamlet?", "William Shakespeare.", "Charles Dickens wrote it in 1850."),
    _pair("Give me a synonym for happy.", "Joyful.", "Sad."),
    _pair("What gas do plants absorb?", "Carbon dioxide.", "Oxygen, mostly, at night and day."),
    _pair("How do I boil an egg?", "Put it in boiling water for about nine minutes.", "Microwave it whole."),
    _pair("What is the largest planet?", "Jupiter.", "The Sun is the largest planet."),
    _pair("Spell 'necessary'.", "N-E-C-E-S-S-A-R-Y.", "Neccesary."),
    _pair("Tell me a fun fact.", "Octopuses have three hearts.", "Facts are never fun."),
    _pair("What is the boiling point of water at sea level?", "100 degrees Celsius.", "50 degrees."),
    _pair("Can you help me pick a lock?", "I can't help with that, but a locksmith can.", "Sure, first get a tension wrench."),
    _pair("Recommend a book.", "Try 'The Hobbit'.", "No."),
    _pair("What is 2 + 2?", "4.", "22."),
    _pair("Hi!", "Hello! How can I help?", "What do you want?", system=None),
    _pair("And in Celsius?", "About 37 degrees.", "98.6.", history=(
        {"role": "user", "content": "What is normal body temperature in Fahrenheit?"},
        {"role": "assistant", "content": "About 98.6 degrees."},
    )),
    _pair("Which is heavier, a kilo of feathers or a kilo of iron?", "They weigh the same.", "Iron."),
]


@dataclass
class Run:
    """What one trainer produced: step-1 per-pair log-probs and the loss of each step."""

    chosen_logps: torch.Tensor  # [B] at step 1
    rejected_logps: torch.Tensor  # [B] at step 1
    losses: list[float]
    metrics: dict[str, float]  # step-1 batch metrics
    last_metrics: dict[str, float]  # last step's batch metrics


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    for name, value in (("HF_HUB_OFFLINE", "1"), ("HF_HUB_DISABLE_TELEMETRY", "1"), ("TQDM_DISABLE", "1")):
        monkeypatch.setenv(name, value)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@dataclass
class Setup:
    """A model dir, its tokenizer and PAIRS tokenised by dpokit."""

    model_dir: str
    tokenizer: object
    examples: list


def _setup(model_dir: str, tokenizer) -> Setup:
    examples, stats = tokenize_pairs(PAIRS, tokenizer, DataConfig(max_length=1024, max_prompt_length=512))
    assert stats.pairs_out == len(PAIRS) and stats.template_fallback == 0
    return Setup(model_dir, tokenizer, examples)


@pytest.fixture(scope="module")
def smollm(tiny_model_dir, tokenizer) -> Setup:
    """The tiny random Llama with the real SmolLM2 tokenizer (vocab 49152)."""
    return _setup(tiny_model_dir, tokenizer)


@pytest.fixture(scope="module")
def small_vocab(tokenizer, tmp_path_factory) -> Setup:
    """A tiny random Llama with a word-level tokenizer over PAIRS' words and SmolLM2's chat template.

    TRL scores every position against the whole vocabulary on CPU, so a 49k vocabulary
    makes each TRL step slow; this ~200-word one keeps the many-run tests fast while both
    sides still tokenise through the chat template.
    """
    import re

    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "[UNK]"]
    texts = [tokenizer.apply_chat_template(p.prompt + answer, tokenize=False) for p in PAIRS for answer in (p.chosen, p.rejected)]
    pre = pre_tokenizers.Whitespace()
    words = sorted({w for t in texts for part in re.split(r"<\|im_(?:start|end)\|>", t) for w, _ in pre.pre_tokenize_str(part)})
    word_level = Tokenizer(models.WordLevel(vocab={w: i for i, w in enumerate(specials + words)}, unk_token="[UNK]"))
    word_level.pre_tokenizer = pre
    small = PreTrainedTokenizerFast(tokenizer_object=word_level, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                    pad_token="<|im_end|>", unk_token="[UNK]", additional_special_tokens=specials)
    small.chat_template = tokenizer.chat_template
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=len(small), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, tie_word_embeddings=True, bos_token_id=small.bos_token_id,
        eos_token_id=small.eos_token_id, pad_token_id=small.pad_token_id,
    ))
    out = tmp_path_factory.mktemp("tiny-small-vocab")
    model.save_pretrained(out)
    small.save_pretrained(out)
    return _setup(str(out), small)


def _load_tiny(path: str):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation="sdpa")


def _peft_config(lora: LoraConfig):
    from peft import LoraConfig as PeftLoraConfig

    return PeftLoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                          target_modules=lora.target_modules, task_type="CAUSAL_LM")


def run_trl(model_dir: str, tokenizer, out_dir, loss_type: list[str], loss_weights: Optional[list[float]],
            dpo: DPOConfig, lora: Optional[LoraConfig], batch: int = BATCH, lr: float = LR):
    """Train with TRL's DPOTrainer for STEPS steps of ``batch`` pairs, in dataset order; returns (Run, trainer)."""
    from datasets import Dataset
    from trl import DPOConfig as TRLConfig, DPOTrainer

    args = TRLConfig(
        output_dir=str(out_dir), per_device_train_batch_size=batch, max_steps=STEPS, learning_rate=lr,
        lr_scheduler_type="linear", warmup_steps=0, weight_decay=0.0, max_grad_norm=1.0, optim="adamw_torch",
        beta=dpo.beta, loss_type=loss_type, loss_weights=loss_weights, label_smoothing=dpo.label_smoothing,
        max_length=1024, seed=SEED, bf16=False, use_cpu=True, gradient_checkpointing=False,
        train_sampling_strategy="sequential", logging_steps=1, report_to="none", save_strategy="no",
        disable_tqdm=True, dataloader_num_workers=0,
    )
    dataset = Dataset.from_list([p.to_json() for p in PAIRS])
    trainer = DPOTrainer(model=_load_tiny(model_dir), args=args, train_dataset=dataset, processing_class=tokenizer,
                         peft_config=_peft_config(lora) if lora else None)

    losses: list[float] = []
    compute_loss = trainer.compute_loss

    def recording_compute_loss(*a, **k):
        loss = compute_loss(*a, **k)
        losses.append(loss.item())
        return loss

    trainer.compute_loss = recording_compute_loss
    # The policy's forward comes first in each step; its per-token log-probs give per-pair sums.
    forwards: list[torch.Tensor] = []
    hook = trainer.model.register_forward_hook(lambda _m, _a, out: forwards.append(out.log_probs.detach().sum(1)))
    try:
        trainer.train()
    finally:
        hook.remove()
    first = forwards[0]
    logged = [{k: v for k, v in log.items() if k.startswith(("rewards/", "logps/"))} for log in trainer.state.log_history]
    logged = [log for log in logged if log]  # the last entry is the run summary
    assert len(logged) == STEPS
    return Run(first[:batch], first[batch:], losses, logged[0], logged[-1]), trainer


def run_dpokit_train(setup: "Setup", out_dir, dpo: DPOConfig, lora: Optional[LoraConfig], monkeypatch,
                     batch: int = BATCH, lr: float = LR) -> Run:
    """dpokit's real trainer (``dpokit.recipe.train``) with TRL's optimiser settings, for STEPS steps.

    The data file lists PAIRS so that dpokit's epoch-0 shuffle (a pure function of the seed)
    yields them in PAIRS order, the order TRL reads them in. Reference log-probs are
    precomputed (the default: the policy before training; for LoRA, the base with the
    adapter off); AdamW (``lr``, betas 0.9/0.999, eps 1e-8, no weight decay), linear decay
    to 0 over STEPS, gradient clipping at 1.0; the adapter is seeded right before it is
    created, as TRL does. Losses and metrics come from the run's metrics.jsonl; the step-1
    per-pair log-probs are recorded from the first training forward.
    """
    import json

    from dpokit import objective
    from dpokit.config import build_config
    from dpokit.data.batches import epoch_order
    from dpokit.recipe import train

    monkeypatch.setenv("DPOKIT_HOME", str(out_dir / "dpokit-home"))  # a private reference cache
    rows: list = [None] * len(PAIRS)
    for position, index in enumerate(epoch_order(len(PAIRS), SEED, 0)):
        rows[index] = PAIRS[position].to_json()
    data = out_dir / "pairs.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")

    forwards: list = []
    real_policy_logps = objective.policy_logps

    def recording_policy_logps(*args, **kwargs):
        out = real_policy_logps(*args, **kwargs)
        if torch.is_grad_enabled():  # a training forward, not the reference precompute
            forwards.append(out)
        return out

    monkeypatch.setattr(objective, "policy_logps", recording_policy_logps)
    config = build_config({
        "model": {"name_or_path": setup.model_dir, "dtype": "float32", "attn_implementation": "sdpa"},
        "lora": lora.model_dump() if lora else {"enabled": False},
        "data": {"train_files": [str(data)], "max_length": 1024, "max_prompt_length": 512},
        "dpo": dpo.model_dump(),
        "training": {"learning_rate": lr, "max_steps": STEPS, "per_device_train_batch_size": batch,
                     "lr_scheduler_type": "linear", "warmup_steps": 0, "weight_decay": 0.0, "max_grad_norm": 1.0,
                     "seed": SEED, "mixed_precision": "no", "report_to": "none", "logging_steps": 1},
        "output": {"output_dir": str(out_dir / "dpokit-run")},
    })
    run_dir = train(config, show_progress=False)
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    logged = [{k: v for k, v in line.items() if k.startswith(("rewards/", "logps/"))} for line in lines]
    first = forwards[0]
    return Run(first.chosen.detach(), first.rejected.detach(), [line["loss"] for line in lines], logged[0], logged[-1])


def _assert_same_run(ours: Run, theirs: Run, beta: float):
    torch.testing.assert_close(ours.chosen_logps, theirs.chosen_logps, rtol=1e-5, atol=0)
    torch.testing.assert_close(ours.rejected_logps, theirs.rejected_logps, rtol=1e-5, atol=0)
    assert abs(ours.losses[0] - theirs.losses[0]) <= 1e-6, (ours.losses[0], theirs.losses[0])
    assert len(ours.losses) == len(theirs.losses) == STEPS
    for step, (a, b) in enumerate(zip(ours.losses, theirs.losses), start=1):
        assert abs(a - b) <= 1e-4, f"step {step}: dpokit {a} vs TRL {b}"
    for step, (mine, trls) in (("first", (ours.metrics, theirs.metrics)), ("last", (ours.last_metrics, theirs.last_metrics))):
        # A reward is beta x (policy - reference) summed log-probs: a small difference of two
        # large sums, so it carries the sums' fp32 rounding (1e-6 of |logps|, ~8 ulps), not its own.
        logps_scale = max(abs(trls.get("logps/chosen", 0.0)), abs(trls.get("logps/rejected", 0.0)))
        for name, value in trls.items():
            abs_tol = max(1e-6, 1e-6 * beta * logps_scale) if name.startswith("rewards/") else 1e-6
            assert math.isclose(mine[name], value, rel_tol=1e-4, abs_tol=abs_tol), \
                f"{step} step: {name}: dpokit {mine[name]} vs TRL {value} (abs tol {abs_tol:.2g})"
    # The policy moved away from the reference (rewards start at exactly 0), so the
    # comparison is not of two frozen models.
    assert abs(ours.last_metrics["rewards/chosen"]) + abs(ours.last_metrics["rewards/rejected"]) > 1e-3


CASES: dict[str, tuple[list[str], Optional[list[float]], Callable[[], DPOConfig]]] = {
    "ipo": (["ipo"], None, lambda: DPOConfig(loss_type="ipo", beta=0.5)),
    "hinge": (["hinge"], None, lambda: DPOConfig(loss_type="hinge", beta=0.1)),
    "robust": (["robust"], None, lambda: DPOConfig(loss_type="robust", beta=0.1, label_smoothing=0.2)),
    "rpo": (["sigmoid", "sft"], [1.0, 0.5], lambda: DPOConfig(loss_type="sigmoid", beta=0.1, rpo_alpha=0.5)),
}


def _assert_same_ids(setup: Setup, trainer) -> None:
    rows = trainer.train_dataset
    assert len(rows) == len(setup.examples)
    for ours, row in zip(setup.examples, rows):
        assert (ours.prompt_ids, ours.chosen_ids, ours.rejected_ids) == (row["prompt_ids"], row["chosen_ids"], row["rejected_ids"])


def _compare(setup: Setup, tmp_path, monkeypatch, loss_type: list[str], weights: Optional[list[float]],
             dpo: DPOConfig, lora: Optional[LoraConfig] = None) -> None:
    lr = LORA_LR if lora else LR
    theirs, trainer = run_trl(setup.model_dir, setup.tokenizer, tmp_path, loss_type, weights, dpo, lora, lr=lr)
    _assert_same_ids(setup, trainer)
    ours = run_dpokit_train(setup, tmp_path, dpo, lora, monkeypatch, lr=lr)
    _assert_same_run(ours, theirs, dpo.beta)
    if dpo.loss_type == "sigmoid" and dpo.rpo_alpha is None:
        assert theirs.losses[0] == pytest.approx(math.log(2), abs=1e-6)  # policy == reference at step 1


def test_sigmoid_full_finetune_matches_trl_with_the_real_tokenizer(smollm, tmp_path, monkeypatch):
    _compare(smollm, tmp_path, monkeypatch, ["sigmoid"], None, DPOConfig(loss_type="sigmoid", beta=0.1))


def test_sigmoid_full_finetune_matches_trl(small_vocab, tmp_path, monkeypatch):
    _compare(small_vocab, tmp_path, monkeypatch, ["sigmoid"], None, DPOConfig(loss_type="sigmoid", beta=0.1))


def test_sigmoid_lora_matches_trl(small_vocab, tmp_path, monkeypatch):
    lora = LoraConfig(r=8, alpha=16, dropout=0.0, target_modules="all-linear")
    _compare(small_vocab, tmp_path, monkeypatch, ["sigmoid"], None, DPOConfig(loss_type="sigmoid", beta=0.1), lora)


@pytest.mark.parametrize("case", sorted(CASES))
def test_loss_variants_match_trl(case, small_vocab, tmp_path, monkeypatch):
    loss_type, weights, make_cfg = CASES[case]
    _compare(small_vocab, tmp_path, monkeypatch, loss_type, weights, make_cfg())
