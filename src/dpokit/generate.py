"""Batched generation: sampling settings, the repetition guard, left-padded ``generate`` calls.

Prompts are message lists (``[{"role": "user", "content": ...}]``). Each is rendered by
:mod:`dpokit.render` exactly as training rendered it (the run's chat template setting and
system prompt), and the batch is padded on the *left*, so every row's next token is at
the same position and ``generate`` can append to all rows at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional, Sequence

from dpokit.errors import DpokitError
from dpokit.render import as_renderer

if TYPE_CHECKING:
    import torch

Message = dict[str, str]

# Sampling defaults shared by `dpokit generate`, `dpokit chat` and the Python API.
DEFAULT_MAX_NEW_TOKENS = 256
DEFAULT_TEMPERATURE = 0.7
DEFAULT_TOP_P = 0.9
DEFAULT_TOP_K = 50
DEFAULT_REPETITION_WINDOW = 12
"""A reply whose last this-many tokens already stood earlier in it is looping, and is stopped."""


@dataclass(frozen=True)
class SamplingSettings:
    """How to pick tokens. ``temperature == 0`` (or ``do_sample=False``) means greedy."""

    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    do_sample: bool = True
    temperature: float = DEFAULT_TEMPERATURE
    top_p: float = DEFAULT_TOP_P
    top_k: int = DEFAULT_TOP_K
    repetition_penalty: float = 1.0
    repetition_window: int = DEFAULT_REPETITION_WINDOW
    """Stop a reply once its last ``repetition_window`` tokens repeat an earlier span of it (0: never)."""

    def __post_init__(self):
        if self.max_new_tokens <= 0:
            raise DpokitError(f"max_new_tokens must be > 0 (got {self.max_new_tokens})")
        if self.temperature < 0:
            raise DpokitError(f"temperature must be >= 0 (got {self.temperature})", "use 0 for greedy decoding")
        if not 0 < self.top_p <= 1:
            raise DpokitError(f"top_p must be in (0, 1] (got {self.top_p})")
        if self.top_k < 0:
            raise DpokitError(f"top_k must be >= 0 (got {self.top_k})", "use 0 to turn top-k off")
        if self.repetition_penalty <= 0:
            raise DpokitError(f"repetition_penalty must be > 0 (got {self.repetition_penalty})", "1.0 means no penalty")
        if self.repetition_window < 0 or 0 < self.repetition_window < 4:
            raise DpokitError(f"repetition_window must be 0 (off) or at least 4 tokens (got {self.repetition_window})",
                              "shorter windows stop ordinary replies that reuse a short phrase")

    @property
    def greedy(self) -> bool:
        return not self.do_sample or self.temperature == 0


def generation_config(model, tokenizer, settings: SamplingSettings, num_return_sequences: int = 1):
    """A fresh ``GenerationConfig``: the model's stop tokens, our sampling settings only.

    Built from scratch rather than copied from the model so that a model's shipped
    sampling defaults cannot silently change what the user asked for.
    """
    from transformers import GenerationConfig

    model_gen = getattr(model, "generation_config", None)
    eos = getattr(model_gen, "eos_token_id", None)
    eos_ids = set(eos if isinstance(eos, (list, tuple)) else [eos] if eos is not None else [])
    if tokenizer.eos_token_id is not None:
        eos_ids.add(tokenizer.eos_token_id)
    kwargs: dict[str, Any] = {
        "max_new_tokens": settings.max_new_tokens,
        "num_return_sequences": num_return_sequences,
        "eos_token_id": sorted(eos_ids) or None,
        "pad_token_id": tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
        "repetition_penalty": settings.repetition_penalty,
    }
    if settings.greedy:
        kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
    else:
        kwargs.update(do_sample=True, temperature=settings.temperature, top_p=settings.top_p, top_k=settings.top_k)
    return GenerationConfig(**kwargs)


def _repeated_tail(generated: "torch.Tensor", window: int) -> "torch.Tensor":
    """For each row of ``generated`` ``[B, L]``, whether its last ``window`` tokens occur earlier in the row: ``[B]`` bool."""
    import torch

    rows, length = generated.shape
    if window <= 0 or length <= window:
        return torch.zeros(rows, dtype=torch.bool, device=generated.device)
    last = generated[:, -window:]  # [B, w]
    earlier = generated[:, :-1].unfold(1, window, 1)  # [B, L - w, w]: every window that starts before the last
    return (earlier == last[:, None, :]).all(dim=-1).any(dim=-1)


class RepetitionGuard:
    """A ``transformers`` stopping criterion: stop a row once its reply has started to loop.

    A reply loops when its last ``window`` tokens already occurred earlier in the same reply
    (small models under greedy decoding repeat a sentence until the token limit). The
    prompt is left out (``prompt_width``: the left-padded prompt's width). ``fired`` counts
    the rows stopped this way; :func:`trim_repetition` cuts the repeated copy off.
    """

    def __init__(self, prompt_width: int, window: int = DEFAULT_REPETITION_WINDOW):
        self.prompt_width, self.window, self.fired = prompt_width, window, 0
        self._stopped: "torch.Tensor | None" = None

    def __call__(self, input_ids: "torch.Tensor", scores=None, **kwargs) -> "torch.Tensor":
        repeating = _repeated_tail(input_ids[:, self.prompt_width:], self.window)
        new = repeating if self._stopped is None else repeating & ~self._stopped
        self.fired += int(new.sum())
        self._stopped = repeating if self._stopped is None else self._stopped | repeating
        return repeating


def trim_repetition(tokens: Sequence[int], window: int = DEFAULT_REPETITION_WINDOW) -> list[int]:
    """``tokens`` without the repeated copy that made :class:`RepetitionGuard` stop them (unchanged otherwise)."""
    import torch

    tokens = list(tokens)
    if window and len(tokens) > window and bool(_repeated_tail(torch.tensor([tokens]), window)[0]):
        return tokens[:-window]
    return tokens


def stopping_criteria(settings: SamplingSettings, prompt_width: int, *extra) -> tuple[list, "RepetitionGuard | None"]:
    """The criteria a ``generate`` call gets from the settings (the repetition guard), plus ``extra``."""
    guard = RepetitionGuard(prompt_width, settings.repetition_window) if settings.repetition_window else None
    return [*extra, *([guard] if guard else [])], guard


def left_pad(sequences: Sequence[Sequence[int]], pad_id: int) -> tuple["torch.Tensor", "torch.Tensor"]:
    """``(input_ids [B, T], attention_mask [B, T])``, padded on the left to the longest row."""
    import torch

    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        if seq:
            ids[row, width - len(seq):] = torch.tensor(seq, dtype=torch.long)
            mask[row, width - len(seq):] = 1
    return ids, mask


def model_device(model) -> "torch.device":
    return next(model.parameters()).device


def generate_candidates(
    model,
    renderer,
    prompts: Sequence[Sequence[Message]],
    settings: SamplingSettings,
    *,
    n: int = 1,
    seed: Optional[int] = None,
    batch_size: int = 8,
    show_progress: bool = False,
) -> list[list[str]]:
    """``n`` answers for each prompt (``result[i][j]``: prompt i, candidate j).

    ``renderer`` is the model's :class:`~dpokit.render.Renderer` (its run's chat template
    and system prompt), or a bare tokenizer for default settings. Prompts are batched
    longest-first (less padding); the results come back in the prompts' order.
    With a ``seed`` the same inputs give the same outputs.
    """
    import torch
    from transformers import StoppingCriteriaList

    if n < 1:
        raise DpokitError(f"n must be >= 1 (got {n})")
    if batch_size < 1:
        raise DpokitError(f"batch_size must be >= 1 (got {batch_size})")
    if not prompts:
        return []
    renderer = as_renderer(renderer)
    tokenizer = renderer.tokenizer
    token_ids = renderer.prompt_ids_batch(prompts)
    order = sorted(range(len(token_ids)), key=lambda i: -len(token_ids[i]))
    gen_cfg = generation_config(model, tokenizer, settings, num_return_sequences=n)
    device = model_device(model)
    if seed is not None:
        torch.manual_seed(seed)  # seeds CUDA too
    results: list[list[str]] = [[] for _ in prompts]
    from dpokit.progress import progress

    starts = range(0, len(order), batch_size)
    bar = progress(len(starts), "generating", "batch", enabled=show_progress)
    for start in starts:
        rows = order[start:start + batch_size]
        input_ids, attention_mask = left_pad([token_ids[i] for i in rows], gen_cfg.pad_token_id)
        criteria, _ = stopping_criteria(settings, input_ids.shape[1])
        with torch.inference_mode():
            out = model.generate(
                input_ids=input_ids.to(device), attention_mask=attention_mask.to(device), generation_config=gen_cfg,
                stopping_criteria=StoppingCriteriaList(criteria),
            )
        special = set(tokenizer.all_special_ids)
        new_tokens = []  # each row's reply, special tokens and a repeated tail removed
        for row_ids in out[:, input_ids.shape[1]:].cpu().tolist():  # len(rows) * n rows
            reply = [t for t in row_ids if t not in special]
            new_tokens.append(trim_repetition(reply, settings.repetition_window))
        texts = tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        for k, row in enumerate(rows):
            results[row] = [t.strip() for t in texts[k * n:(k + 1) * n]]
        bar.update(1)
    bar.close()
    return results


def generate_answers(
    model,
    renderer,
    prompts: Sequence[Sequence[Message]],
    *,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    do_sample: bool = False,
    temperature: float = DEFAULT_TEMPERATURE,
    top_p: float = DEFAULT_TOP_P,
    top_k: int = DEFAULT_TOP_K,
    repetition_penalty: float = 1.0,
    repetition_window: int = DEFAULT_REPETITION_WINDOW,
    seed: Optional[int] = None,
    batch_size: int = 8,
    show_progress: bool = False,
) -> list[str]:
    """One answer per prompt (greedy unless ``do_sample``), in the prompts' order."""
    settings = SamplingSettings(
        max_new_tokens=max_new_tokens, do_sample=do_sample, temperature=temperature,
        top_p=top_p, top_k=top_k, repetition_penalty=repetition_penalty, repetition_window=repetition_window,
    )
    answers = generate_candidates(model, renderer, prompts, settings, seed=seed, batch_size=batch_size,
                                  show_progress=show_progress)
    return [a[0] for a in answers]
