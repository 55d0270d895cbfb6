"""Preference pairs and SFT examples -> token ids (prompt, answer(s)), with truncation.

The prompt is rendered by :mod:`dpokit.render` (the renderer generation and serving use
too, system prompt included); this module adds the answers and truncates. Two ways:

**Chat template** (``data.apply_chat_template: true`` and the tokenizer has one). The prompt
is rendered with ``add_generation_prompt=True``; ``prompt + answer`` is rendered for each
side. Both are tokenised without extra special tokens (the template writes them),
and the answer's tokens are what the full sequence has after the prompt's tokens. So the
answer includes the template's end-of-turn tokens (ChatML: ``<|im_end|>\\n``), as in TRL.
Where a template breaks the prefix property (the prompt's tokens are not the first tokens
of prompt + answer), two fallbacks apply, in order, and each is counted as
``template_fallback``:

1. the prompt's *text* is a prefix of the full text (tokens merged across the boundary):
   the answer is the rest of the text, tokenised on its own;
2. otherwise (the template renders the prompt differently alone, or strips or reorders):
   the answer is its content tokenised alone, followed by the template's end-of-turn text
   (what the template writes after the answer's content; the EOS token if that is not
   found).

The prompt keeps its own rendering (with the generation prompt) in both cases, so training
sees the same context as generation does.

**Plain text** (``apply_chat_template: false``, or a tokenizer without a template). Turns'
contents are joined with a blank line (:data:`PLAIN_TURN_SEPARATOR`); the prompt ends with
one too, and starts with BOS when the tokenizer adds one. An answer is its content(s) joined
the same way, followed by EOS. Prompt and answers are tokenised separately, so the prompt's
tokens are always a prefix.

**Truncation**, for each pair: the prompt is cut from the left to ``max_prompt_length``,
then each answer is cut from the right so that prompt + answer <= ``max_length``. A pair
whose prompt leaves no room for an answer is dropped (``empty_after_truncation``). With a
prompt shorter than ``max_prompt_length`` this is what TRL's DPOTrainer does with the same
``max_length`` (``truncation_mode="keep_start"``: sequences cut on the right, pairs whose
prompt fills ``max_length`` dropped).

SFT trains on ``prompt_ids + chosen_ids``: the chosen conversation exactly as the chat
template renders it. :func:`tokenize_sft` turns SFT examples into the same
:class:`TokenizedPair` with the completion as ``chosen_ids`` and no rejected answer, by the
same rules (one answer side instead of two), so both stages see one tokenisation.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from dpokit.data.types import Message, PreferencePair, SftExample
from dpokit.render import PLAIN_TURN_SEPARATOR, Renderer, render_chat, token_ids

if TYPE_CHECKING:
    from dpokit.config import DataConfig

DROP_EMPTY_AFTER_TRUNCATION = "empty_after_truncation"
DROP_EMPTY_ANSWER = "empty_answer_tokens"


@dataclass
class TokenizedPair:
    """One pair as token ids; the model sees ``prompt_ids + chosen_ids`` and ``prompt_ids + rejected_ids``.

    Shapes: ``prompt_ids`` (P,), ``chosen_ids`` (C,), ``rejected_ids`` (R,) with
    P + C <= max_length, P + R <= max_length, P <= max_prompt_length, C >= 1, R >= 1.
    From :func:`tokenize_sft`: ``chosen_ids`` is the completion and ``rejected_ids`` is empty (R = 0).
    """

    prompt_ids: list[int]
    chosen_ids: list[int]
    rejected_ids: list[int]
    source: str = ""
    meta: dict = field(default_factory=dict)


@dataclass
class TokenizeStats:
    """What tokenisation did to a set of pairs; every count shows up in the data report.

    The ``*_lengths`` lists hold each encoded pair's lengths in tokens *before* truncation
    (so the report can say how many would be cut at other limits). For SFT examples
    (:func:`tokenize_sft`) "pairs" are examples, "chosen" is the completion and the
    rejected counts stay empty.
    """

    pairs_in: int = 0
    pairs_out: int = 0
    prompt_truncated: int = 0
    answer_truncated: int = 0
    """Pairs with at least one answer cut to fit ``max_length``."""
    chosen_truncated: int = 0
    rejected_truncated: int = 0
    dropped_empty_after_truncation: int = 0
    dropped_empty_answer: int = 0
    """Pairs with an answer that has no tokens at all (before truncation)."""
    template_fallback: int = 0
    """Pairs where the chat template broke the prefix property and a fallback was used."""
    system_prompt_inserted: int = 0
    chat_template: bool = False
    """Whether the chat template was used (False: plain text)."""
    prompt_lengths: list[int] = field(default_factory=list, repr=False)
    chosen_lengths: list[int] = field(default_factory=list, repr=False)
    rejected_lengths: list[int] = field(default_factory=list, repr=False)

    def dropped(self) -> Counter:
        """Drop reason -> count (only reasons that occurred)."""
        counts = Counter({
            DROP_EMPTY_AFTER_TRUNCATION: self.dropped_empty_after_truncation,
            DROP_EMPTY_ANSWER: self.dropped_empty_answer,
        })
        return +counts

    def counts(self) -> dict[str, Any]:
        """The scalar fields as a dict (no length lists)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if not f.name.endswith("_lengths")}


@dataclass
class _Encoded:
    """One prompt's untruncated ids and its answers' (chosen, rejected; or one SFT completion)."""

    prompt_ids: list[int]
    answer_ids: list[list[int]]
    fallback: bool
    system_inserted: bool


def uses_chat_template(tokenizer, data_cfg: "DataConfig") -> bool:
    """True when pairs are rendered with the tokenizer's chat template."""
    return Renderer(tokenizer, data_cfg).chat_template


def _end_of_turn_text(full_text: str, content: str) -> str | None:
    """What the template writes right after an answer's content (``<|im_end|>\\n`` in ChatML)."""
    if not content:
        return None
    at = full_text.rfind(content)
    if at < 0:
        at = full_text.rfind(content.strip())
        content = content.strip()
    if at < 0:
        return None
    return full_text[at + len(content):] or None


def _fallback_answer_ids(tokenizer, prompt_text: str, full_text: str, answer: list[Message]) -> list[int]:
    """Answer ids when the prompt's tokens are not a prefix of the full sequence's (see module doc)."""
    if full_text.startswith(prompt_text):
        return token_ids(tokenizer, [full_text[len(prompt_text):]])[0]
    ids: list[int] = []
    for message in answer:
        end = _end_of_turn_text(full_text, message["content"])
        ids += token_ids(tokenizer, [message["content"]])[0]
        if end is not None:
            ids += token_ids(tokenizer, [end])[0]
        elif tokenizer.eos_token_id is not None:
            ids.append(tokenizer.eos_token_id)
    return ids


Answers = Sequence[Sequence[Message]]
"""One answer side over a batch: ``answers[i]`` is conversation ``i``'s answer message(s)."""


def _encode_chat(prompts: Sequence[Sequence[Message]], sides: Sequence[Answers], sources: Sequence[str],
                 renderer: Renderer) -> list[_Encoded]:
    tokenizer = renderer.tokenizer
    shown, inserted = zip(*(renderer.messages(p) for p in prompts))
    prompt_texts = renderer.prompt_texts(prompts, sources)
    side_texts = [[render_chat(tokenizer, m + list(a), s) for m, a, s in zip(shown, answers, sources)]
                  for answers in sides]
    n = len(prompts)
    ids = token_ids(tokenizer, prompt_texts + [text for texts in side_texts for text in texts])
    prompt_ids, side_full = ids[:n], [ids[(k + 1) * n:(k + 2) * n] for k in range(len(sides))]

    encoded = []
    for i in range(n):
        p = prompt_ids[i]
        answers, fallback = [], False
        for full, texts, side in zip(side_full, side_texts, sides):
            if full[i][:len(p)] == p:
                answers.append(full[i][len(p):])
            else:
                fallback = True
                answers.append(_fallback_answer_ids(tokenizer, prompt_texts[i], texts[i], side[i]))
        encoded.append(_Encoded(p, answers, fallback, inserted[i]))
    return encoded


def _encode_plain(prompts: Sequence[Sequence[Message]], sides: Sequence[Answers], sources: Sequence[str],
                  renderer: Renderer) -> list[_Encoded]:
    sep = PLAIN_TURN_SEPARATOR
    tokenizer = renderer.tokenizer
    inserted = [renderer.messages(p)[1] for p in prompts]
    prompt_ids = renderer.prompt_ids_batch(prompts, sources)
    n = len(prompts)
    answers = token_ids(tokenizer, [sep.join(m["content"] for m in answer) for side in sides for answer in side])
    eos = tokenizer.eos_token_id

    def with_eos(answer: list[int]) -> list[int]:
        if not answer or eos is None or answer[-1] == eos:
            return answer
        return answer + [eos]

    return [_Encoded(prompt_ids[i], [with_eos(answers[k * n + i]) for k in range(len(sides))], False, inserted[i])
            for i in range(n)]


def _encode(prompts: Sequence[Sequence[Message]], sides: Sequence[Answers], sources: Sequence[str], tokenizer,
            data_cfg: "DataConfig") -> list[_Encoded]:
    """Each prompt's ids and, for every answer side, its answer's ids (untruncated)."""
    if not prompts:
        return []
    renderer = Renderer(tokenizer, data_cfg)
    encode = _encode_chat if renderer.chat_template else _encode_plain
    return encode(prompts, sides, sources, renderer)


def _encode_pairs(pairs: Sequence[PreferencePair], tokenizer, data_cfg: "DataConfig") -> list[_Encoded]:
    return _encode([p.prompt for p in pairs], [[p.chosen for p in pairs], [p.rejected for p in pairs]],
                   [p.source for p in pairs], tokenizer, data_cfg)


def _encode_sft(examples: Sequence[SftExample], tokenizer, data_cfg: "DataConfig") -> list[_Encoded]:
    return _encode([e.prompt for e in examples], [[e.completion for e in examples]],
                   [e.source for e in examples], tokenizer, data_cfg)


def _truncate(enc: _Encoded, data_cfg: "DataConfig") -> tuple[tuple[list[int], list[list[int]]] | str, dict]:
    """Apply the truncation rule; returns (prompt ids, each answer's ids) or a drop reason, and flags.

    Flags: ``prompt`` (cut from the left) and ``answers`` (per answer: cut on the right).
    """
    flags = {"prompt": False, "answers": [False] * len(enc.answer_ids)}
    if not all(enc.answer_ids):
        return DROP_EMPTY_ANSWER, flags
    prompt = enc.prompt_ids
    if len(prompt) > data_cfg.max_prompt_length:
        prompt = prompt[-data_cfg.max_prompt_length:]
        flags["prompt"] = True
    room = data_cfg.max_length - len(prompt)
    if room <= 0:
        return DROP_EMPTY_AFTER_TRUNCATION, flags
    flags["answers"] = [len(ids) > room for ids in enc.answer_ids]
    return (prompt, [ids[:room] for ids in enc.answer_ids]), flags


def _tokenize(items: Sequence[PreferencePair | SftExample], encoded: list[_Encoded], tokenizer,
              data_cfg: "DataConfig") -> tuple[list[TokenizedPair], TokenizeStats]:
    """Truncate encoded items into TokenizedPairs (a missing second answer is ``[]``), counting in the stats."""
    stats = TokenizeStats(pairs_in=len(items), chat_template=uses_chat_template(tokenizer, data_cfg))
    out: list[TokenizedPair] = []
    for item, enc in zip(items, encoded):
        stats.prompt_lengths.append(len(enc.prompt_ids))
        stats.chosen_lengths.append(len(enc.answer_ids[0]))
        if len(enc.answer_ids) > 1:
            stats.rejected_lengths.append(len(enc.answer_ids[1]))
        stats.template_fallback += enc.fallback
        stats.system_prompt_inserted += enc.system_inserted
        result, flags = _truncate(enc, data_cfg)
        cut = flags["answers"]
        stats.prompt_truncated += flags["prompt"]
        stats.chosen_truncated += cut[0]
        stats.rejected_truncated += len(cut) > 1 and cut[1]
        stats.answer_truncated += any(cut)
        if result == DROP_EMPTY_ANSWER:
            stats.dropped_empty_answer += 1
        elif result == DROP_EMPTY_AFTER_TRUNCATION:
            stats.dropped_empty_after_truncation += 1
        else:
            prompt, answers = result
            rejected = answers[1] if len(answers) > 1 else []
            out.append(TokenizedPair(prompt, answers[0], rejected, item.source, dict(item.meta)))
    stats.pairs_out = len(out)
    return out, stats


def tokenize_pairs(
    pairs: Iterable[PreferencePair], tokenizer, data_cfg: "DataConfig"
) -> tuple[list[TokenizedPair], TokenizeStats]:
    """Tokenise and truncate pairs (tokenizer calls batched); dropped pairs are counted in the stats."""
    pairs = list(pairs)
    return _tokenize(pairs, _encode_pairs(pairs, tokenizer, data_cfg), tokenizer, data_cfg)


def tokenize_sft(
    examples: Iterable[SftExample], tokenizer, data_cfg: "DataConfig"
) -> tuple[list[TokenizedPair], TokenizeStats]:
    """Tokenise and truncate SFT examples by the pairs' rules, for :func:`dpokit.data.collate.collate_sft`.

    Each result has the prompt's ids as ``prompt_ids``, the completion's as ``chosen_ids``
    (the model sees ``prompt_ids + chosen_ids``; the loss is on ``chosen_ids``) and an empty
    ``rejected_ids``. Stats count examples as pairs and the completion as the chosen answer.
    """
    examples = list(examples)
    return _tokenize(examples, _encode_sft(examples, tokenizer, data_cfg), tokenizer, data_cfg)


def tokenize_pair(pair: PreferencePair, tokenizer, data_cfg: "DataConfig") -> TokenizedPair | str:
    """One pair's ids after truncation, or the reason it is dropped (a ``DROP_*`` string)."""
    result, _ = _truncate(_encode_pairs([pair], tokenizer, data_cfg)[0], data_cfg)
    if isinstance(result, str):
        return result
    prompt, (chosen, rejected) = result
    return TokenizedPair(prompt, chosen, rejected, pair.source, dict(pair.meta))


def render_pair_text(pair: PreferencePair, tokenizer, data_cfg: "DataConfig") -> dict[str, str]:
    """The prompt and both answers as text, exactly as split into tokens (before truncation).

    Special tokens are kept (``<|im_start|>``, BOS, EOS): this is what the model reads.
    """
    enc = _encode_pairs([pair], tokenizer, data_cfg)[0]
    decode = lambda ids: tokenizer.decode(ids, skip_special_tokens=False)  # noqa: E731
    chosen, rejected = enc.answer_ids
    return {"prompt": decode(enc.prompt_ids), "chosen": decode(chosen), "rejected": decode(rejected)}
