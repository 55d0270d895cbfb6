"""``rm:PATH``: a sequence-classification reward model scores each answer; the higher score wins."""

from __future__ import annotations

from pathlib import Path

from dpokit.data.types import Message
from dpokit.errors import DpokitError
from dpokit.judges import ScoreJudge


class RewardModelJudge(ScoreJudge):
    """Scores ``prompt + answer`` with a sequence-classification reward model.

    The conversation is rendered with the reward model's own chat template when it has
    one, else as plain text turns. The score is the single logit (``num_labels == 1``) or,
    for a classifier, the log-probability of its last label.
    """

    def __init__(self, path: str, batch_size: int = 8, max_length: int = 4096):
        self.path = Path(path).expanduser()
        self.name = f"rm:{path}"
        self.batch_size = batch_size
        self.max_length = max_length
        self._model = self._tokenizer = None
        if not (self.path / "config.json").is_file():
            raise DpokitError(
                f"--judge {self.name}: {self.path} is not a model dir (no config.json)",
                "pass a reward model saved with save_pretrained (AutoModelForSequenceClassification)",
            )

    def _load(self):
        if self._model is not None:
            return
        from transformers import AutoModelForSequenceClassification

        from dpokit.models import cuda_available, load_tokenizer

        self._tokenizer = load_tokenizer(str(self.path))
        try:
            model, info = AutoModelForSequenceClassification.from_pretrained(str(self.path), output_loading_info=True)
        except (ValueError, OSError) as err:
            raise DpokitError(f"--judge {self.name}: cannot load as a reward model ({str(err).splitlines()[0]})") from None
        # A causal LM loads too, with a freshly initialised (random) head: refuse that.
        head_missing = sorted(k for k in info.get("missing_keys") or ()
                              if {"score", "classifier"} & set(k.split(".")))
        if head_missing:
            missing = ", ".join(head_missing[:3])
            raise DpokitError(
                f"--judge {self.name}: not a reward model: its weights lack the scoring head ({missing})",
                "pass a model trained for sequence classification (a reward model), not a causal LM",
            )
        if model.config.pad_token_id is None:
            model.config.pad_token_id = self._tokenizer.pad_token_id
        self._model = model.to("cuda" if cuda_available() else "cpu").eval()

    def _text(self, prompt: list[Message], answer: str) -> str:
        messages = list(prompt) + [{"role": "assistant", "content": answer}]
        if getattr(self._tokenizer, "chat_template", None):
            return self._tokenizer.apply_chat_template(messages, tokenize=False)
        return "\n\n".join(m["content"] for m in messages)

    def score(self, prompts, answers) -> list[float]:
        import torch

        self._load()
        templated = bool(getattr(self._tokenizer, "chat_template", None))
        texts = [self._text(p, a) for p, a in zip(prompts, answers)]
        scores: list[float] = []
        for start in range(0, len(texts), self.batch_size):
            enc = self._tokenizer(
                texts[start:start + self.batch_size], padding=True, truncation=True, max_length=self.max_length,
                add_special_tokens=not templated, return_tensors="pt",
            ).to(self._model.device)
            with torch.inference_mode():
                logits = self._model(**enc).logits.float()  # [batch, num_labels]
            if logits.shape[-1] == 1:
                scores += logits[:, 0].tolist()
            else:
                scores += torch.log_softmax(logits, dim=-1)[:, -1].tolist()
        return scores
