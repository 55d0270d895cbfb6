"""Prompt rendering: a conversation -> the tokens a model reads before it answers. The one owner.

Training, eval, generate, chat, compare, the judges and the server all turn a
conversation into token ids here, with the settings of the run that made the model
(``data.apply_chat_template`` and ``data.system_prompt``), so what is served is what
was trained.

Two ways, chosen per tokenizer and data config:

**Chat template** (``apply_chat_template`` and the tokenizer has one): the messages are
rendered with ``add_generation_prompt=True`` and tokenised *without* special tokens (the
template writes them).

**Plain text**: the messages' contents joined with a blank line
(:data:`PLAIN_TURN_SEPARATOR`), with one more at the end; BOS in front when the tokenizer
adds one by itself. Nothing else is added (no EOS).

The run's ``system_prompt`` goes in front of any conversation that has no system message
of its own (:func:`with_system_prompt`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional, Sequence

from dpokit.data.types import Message
from dpokit.errors import DpokitError

if TYPE_CHECKING:
    from dpokit.config import DataConfig

PLAIN_TURN_SEPARATOR = "\n\n"
"""Joins turns (and the prompt to the answer) when no chat template is used."""


def with_system_prompt(messages: Sequence[Message], system_prompt: Optional[str]) -> tuple[list[Message], bool]:
    """``messages`` with ``system_prompt`` in front unless they have a system message; and whether it was added."""
    messages = [dict(m) for m in messages]
    if not system_prompt or (messages and messages[0]["role"] == "system"):
        return messages, False
    return [{"role": "system", "content": system_prompt}] + messages, True


def render_chat(tokenizer, messages: Sequence[Message], source: str = "", **kwargs) -> str:
    """``tokenizer.apply_chat_template`` as text; a template that refuses the conversation is a user error."""
    try:
        return tokenizer.apply_chat_template(list(messages), tokenize=False, **kwargs)
    except Exception as err:  # jinja2 raises TemplateError (raise_exception) or anything a template does
        raise DpokitError(
            f"{source or 'conversation'}: the model's chat template cannot render this conversation ({err})",
            "fix the conversation (e.g. roles must alternate user/assistant), or drop the system prompt if the "
            "template has no system role, or turn the chat template off (data.apply_chat_template: false)",
        ) from None


def token_ids(tokenizer, texts: Sequence[str]) -> list[list[int]]:
    """Token ids of each text, no special tokens added (one batched call)."""
    if not texts:
        return []
    return [list(ids) for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]]


def adds_bos(tokenizer) -> bool:
    """Whether the tokenizer puts BOS in front of text by itself (Llama does, ChatML-only models do not)."""
    bos = tokenizer.bos_token_id
    return bos is not None and tokenizer("a", add_special_tokens=True)["input_ids"][:1] == [bos]


class Renderer:
    """Renders conversations for one tokenizer under one run's data settings.

    Args:
        tokenizer: the model's tokenizer (with its chat template, where it has one).
        data_cfg: the run's ``data`` settings; None means the defaults (chat template on,
            no system prompt), which is how a plain model is trained and queried.
    """

    def __init__(self, tokenizer, data_cfg: Optional["DataConfig"] = None):
        self.tokenizer = tokenizer
        apply_template = True if data_cfg is None else data_cfg.apply_chat_template
        self.chat_template = bool(apply_template and getattr(tokenizer, "chat_template", None))
        self.system_prompt: Optional[str] = None if data_cfg is None else data_cfg.system_prompt
        self._bos: Optional[list[int]] = None

    @classmethod
    def for_run(cls, tokenizer, info) -> "Renderer":
        """The renderer of what :func:`dpokit.runs.open_model_or_run` opened (its run's data settings)."""
        config = getattr(info, "config", None)
        return cls(tokenizer, config.data if config is not None else None)

    def messages(self, messages: Sequence[Message]) -> tuple[list[Message], bool]:
        """The conversation as the model sees it (system prompt applied), and whether one was inserted."""
        return with_system_prompt(messages, self.system_prompt)

    def prompt_texts(self, conversations: Sequence[Sequence[Message]], sources: Optional[Sequence[str]] = None,
                     ) -> list[str]:
        """Each conversation, system prompt applied, rendered ready for the assistant's reply."""
        texts = []
        for i, conversation in enumerate(conversations):
            messages, _ = self.messages(conversation)
            if self.chat_template:
                texts.append(render_chat(self.tokenizer, messages, sources[i] if sources else "",
                                         add_generation_prompt=True))
            else:
                texts.append(PLAIN_TURN_SEPARATOR.join(m["content"] for m in messages) + PLAIN_TURN_SEPARATOR)
        return texts

    def prompt_ids_batch(self, conversations: Sequence[Sequence[Message]],
                         sources: Optional[Sequence[str]] = None) -> list[list[int]]:
        """Token ids of each conversation ready for the assistant's reply (``[P_i]`` each)."""
        ids = token_ids(self.tokenizer, self.prompt_texts(conversations, sources))
        if self.chat_template:
            return ids
        return [self.bos + row for row in ids]

    def prompt_ids(self, messages: Sequence[Message]) -> list[int]:
        """Token ids of one conversation ready for the assistant's reply."""
        return self.prompt_ids_batch([messages])[0]

    @property
    def bos(self) -> list[int]:
        """``[bos_token_id]`` when plain text starts with BOS for this tokenizer, else ``[]``."""
        if self._bos is None:
            self._bos = [self.tokenizer.bos_token_id] if adds_bos(self.tokenizer) else []
        return self._bos


def as_renderer(renderer_or_tokenizer) -> Renderer:
    """A :class:`Renderer` as given, or one with default settings for a bare tokenizer."""
    if isinstance(renderer_or_tokenizer, Renderer):
        return renderer_or_tokenizer
    return Renderer(renderer_or_tokenizer)
