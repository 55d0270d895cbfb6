"""Judges: decide, per prompt, whether answer A or answer B is better (or a tie).

A judge is any object with a ``name`` and
``judge(prompts, answers_a, answers_b) -> list[Judgement]``. Three come built in, picked
by a spec string (:func:`make_judge`):

* ``rm:PATH``: a reward model dir (``AutoModelForSequenceClassification``); the answer
  with the higher score wins, equal scores tie.
* ``dpo:RUN_DIR``: a DPO run's implicit reward ``beta * (log pi(y|x) - log pi_ref(y|x))``
  (Rafailov et al. 2023, eq. 5) of each answer; the higher reward wins.
* ``openai:URL[#MODEL]``: an OpenAI-compatible chat-completions endpoint used as an LLM
  judge. The two answers are shown in a random order per prompt (seeded, so a run is
  repeatable) to cancel position bias; the verdict is mapped back to A/B.

Judges validate their spec when built (cheap: paths exist, endpoint accepts a
connection) and load models only when first asked to judge, so a bad judge fails before
minutes of generation, and the models being compared are out of memory by then.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Protocol, Sequence

from dpokit.data.types import Message
from dpokit.errors import DpokitError

A, B, TIE = "A", "B", "tie"
JUDGE_KINDS = ("rm", "dpo", "openai")
DEFAULT_OPENAI_URL = "https://api.openai.com/v1"
RETRY_STATUS = (429, 500, 502, 503, 504)


@dataclass
class Judgement:
    """One verdict. ``winner`` is ``"A"``, ``"B"``, ``"tie"``, or None when the judge gave
    no usable verdict (counted apart, not in the win rate). Score judges fill the scores."""

    winner: Optional[str]
    score_a: Optional[float] = None
    score_b: Optional[float] = None
    note: str = ""


class Judge(Protocol):
    name: str

    def judge(self, prompts: Sequence[list[Message]], answers_a: Sequence[str],
              answers_b: Sequence[str]) -> list[Judgement]: ...


def _by_score(score_a: float, score_b: float) -> Judgement:
    if math.isnan(score_a) or math.isnan(score_b):
        return Judgement(None, score_a, score_b, "score is NaN")
    winner = A if score_a > score_b else B if score_b > score_a else TIE
    return Judgement(winner, score_a, score_b)


class ScoreJudge:
    """Base of judges that give each answer a number; subclasses implement :meth:`score`."""

    name = "score"

    def score(self, prompts: Sequence[list[Message]], answers: Sequence[str]) -> list[float]:
        raise NotImplementedError

    def score_both(self, prompts: Sequence[list[Message]], answers_a: Sequence[str],
                   answers_b: Sequence[str]) -> tuple[list[float], list[float]]:
        return self.score(prompts, answers_a), self.score(prompts, answers_b)

    def judge(self, prompts, answers_a, answers_b) -> list[Judgement]:
        scores_a, scores_b = self.score_both(prompts, answers_a, answers_b)
        return [_by_score(a, b) for a, b in zip(scores_a, scores_b)]


# ----------------------------------------------------------------------------- reward model


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


# ----------------------------------------------------------------------------- DPO implicit reward


class DpoRewardJudge(ScoreJudge):
    """Scores each answer with a DPO run's implicit reward ``beta * (log pi(y|x) - log pi_ref(y|x))``.

    ``pi`` is the run's final policy and ``log pi(y|x)`` the summed log-prob of the answer's
    tokens after the prompt, tokenised as in training (the run's chat template and
    ``data`` settings, truncation included). The reference follows the run: a separate
    model when one was configured, else the base model (the LoRA adapter switched off, or
    the base model loaded for a full fine-tune). For a reference-free run (SimPO, ORPO)
    the reward is ``beta * mean log-prob per token``, as that run logged it. An answer
    with no scoreable token gets NaN (no verdict).
    """

    def __init__(self, run_dir: str, batch_size: int = 4):
        from dpokit.runs import open_model_or_run

        self.run_dir = run_dir
        self.name = f"dpo:{run_dir}"
        self.batch_size = batch_size
        info = open_model_or_run(run_dir)
        if info.path is None or info.config is None:
            raise DpokitError(f"--judge {self.name}: not a dpokit run dir (no run.json/config.yaml)",
                              "pass the output_dir of a `dpokit train` DPO run")
        if info.stage != "dpo":
            raise DpokitError(f"--judge {self.name}: a '{info.stage}' run has no implicit reward",
                              "pass a DPO run (stage: dpo)")
        self.info = info
        self.config = info.config
        self.beta = self.config.dpo.beta

    def _reference_spec(self) -> Optional[str]:
        """What to load as the reference: a model ref, ``"adapter"`` (policy with adapter off) or None."""
        spec = self.info.reference if self.info.reference is not None else self.config.dpo.reference
        if isinstance(spec, dict):
            spec = spec.get("model")
        elif hasattr(spec, "model"):
            spec = spec.model
        if self.config.dpo.reference_free or spec in (None, "none"):
            return None
        if spec in ("precompute", "adapter"):  # both mean: the model training started from
            return "adapter" if self.info.is_lora else self.info.base_model
        return str(spec)

    def _answer_logps(self, model, pairs, tokenizer) -> tuple[list[float], list[float], list[int], list[int]]:
        """Summed log-probs and token counts of each pair's two answers (A as chosen, B as rejected)."""
        import torch

        from dpokit.data.collate import collate_preference
        from dpokit.objective import policy_logps

        out: tuple[list, list, list, list] = ([], [], [], [])
        device = next(model.parameters()).device
        for start in range(0, len(pairs), self.batch_size):
            batch = collate_preference(pairs[start:start + self.batch_size], tokenizer.pad_token_id)
            batch = {k: v.to(device) for k, v in batch.items()}
            with torch.no_grad():
                logps = policy_logps(model, batch, self.config.training.logprob_chunk_size)
            for column, values in zip(out, logps):
                column += values.tolist()
        return out

    def score_both(self, prompts, answers_a, answers_b) -> tuple[list[float], list[float]]:
        import gc

        from dpokit.data.tokenize import tokenize_pairs
        from dpokit.data.types import PreferencePair
        from dpokit.reference import disabled_adapter
        from dpokit.runs import load_for_inference

        model, tokenizer, _ = load_for_inference(self.run_dir)
        raw = [
            PreferencePair(list(p), [{"role": "assistant", "content": a}], [{"role": "assistant", "content": b}],
                           source=str(i))
            for i, (p, a, b) in enumerate(zip(prompts, answers_a, answers_b))
        ]
        pairs, _ = tokenize_pairs(raw, tokenizer, self.config.data)
        scores_a = [math.nan] * len(raw)
        scores_b = [math.nan] * len(raw)
        if not pairs:
            return scores_a, scores_b
        policy_a, policy_b, count_a, count_b = self._answer_logps(model, pairs, tokenizer)
        reference = self._reference_spec()
        if reference is None:
            ref_a, ref_b = [0.0] * len(pairs), [0.0] * len(pairs)
            policy_a = [lp / max(n, 1) for lp, n in zip(policy_a, count_a)]
            policy_b = [lp / max(n, 1) for lp, n in zip(policy_b, count_b)]
        elif reference == "adapter":
            with disabled_adapter(model):
                ref_a, ref_b, _, _ = self._answer_logps(model, pairs, tokenizer)
        else:
            del model
            gc.collect()
            model, _, _ = load_for_inference(reference)
            ref_a, ref_b, _, _ = self._answer_logps(model, pairs, tokenizer)
        del model
        gc.collect()
        for k, pair in enumerate(pairs):
            i = int(pair.source)
            scores_a[i] = self.beta * (policy_a[k] - ref_a[k])
            scores_b[i] = self.beta * (policy_b[k] - ref_b[k])
        return scores_a, scores_b


# ----------------------------------------------------------------------------- LLM judge

JUDGE_SYSTEM_PROMPT = (
    "You are an impartial judge of AI assistant answers. You are shown a conversation and two "
    "candidate answers to its last user message. Decide which answer is better: more helpful, "
    "correct, honest and harmless, and clearer. Do not let the order in which the answers are "
    "shown, their length, or the assistants' names influence you. If they are equally good, say tie. "
    "End your reply with exactly one verdict: [[A]] if answer A is better, [[B]] if answer B is "
    "better, or [[tie]]."
)

_VERDICT_TAG = re.compile(r"\[\[\s*(A|B|tie)\s*\]\]", re.IGNORECASE)


def parse_verdict(text: str) -> Optional[str]:
    """``"A"``, ``"B"``, ``"tie"`` from a judge reply, or None when it has no clear verdict.

    The last ``[[A]]``/``[[B]]``/``[[tie]]`` tag wins; otherwise the whole reply must be
    just the verdict (``A``, ``"B".``, ``Tie``).
    """
    tags = _VERDICT_TAG.findall(text or "")
    word = tags[-1] if tags else (text or "").strip().strip("\"'`*.!()[] \n").strip()
    word = word.lower()
    return {"a": A, "b": B, "tie": TIE}.get(word)


def render_conversation(prompt: Sequence[Message]) -> str:
    return "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in prompt)


def judge_user_message(prompt: Sequence[Message], first: str, second: str) -> str:
    return (
        f"<conversation>\n{render_conversation(prompt)}\n</conversation>\n\n"
        f"<answer_A>\n{first}\n</answer_A>\n\n<answer_B>\n{second}\n</answer_B>\n\n"
        "Which answer is better? End with [[A]], [[B]] or [[tie]]."
    )


def _split_openai_spec(rest: str) -> tuple[str, Optional[str]]:
    url, _, model = rest.partition("#")
    return url.strip() or DEFAULT_OPENAI_URL, model.strip() or None


class OpenAIJudge:
    """An LLM judge behind an OpenAI-compatible ``/chat/completions`` endpoint.

    ``url`` is the API base (``http://host:8000/v1``; a bare host gets ``/v1``) or the full
    ``.../chat/completions`` URL. The key comes from ``api_key`` or ``$OPENAI_API_KEY``
    (sent only when set). With no ``model``, the endpoint's first listed model is used.
    Prompt ``i`` is shown swapped (B first) when a ``random.Random(seed)`` draw says so.
    """

    def __init__(self, url: str = DEFAULT_OPENAI_URL, model: Optional[str] = None, *, api_key: Optional[str] = None,
                 seed: int = 0, timeout: float = 120.0, retries: int = 2, workers: int = 4):
        self.base, self.endpoint = self._endpoints(url)
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY") or None
        self.seed, self.timeout, self.retries, self.workers = seed, timeout, retries, workers
        self._check_reachable()
        self.model = model or self._first_model()
        self.name = f"openai:{self.base}#{self.model}"

    @staticmethod
    def _endpoints(url: str) -> tuple[str, str]:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise DpokitError(f"--judge openai:{url}: not an http(s) URL",
                              "write e.g. openai:http://127.0.0.1:8000/v1#my-model")
        path = parsed.path.rstrip("/")
        if path.endswith("/chat/completions"):
            base = url.rstrip("/")[: -len("/chat/completions")]
            return base, url.rstrip("/")
        if not path:
            url = url.rstrip("/") + "/v1"
        return url.rstrip("/"), url.rstrip("/") + "/chat/completions"

    def _unreachable(self, reason: object) -> DpokitError:
        return DpokitError(
            f"--judge: cannot reach the judge endpoint {self.endpoint} ({reason})",
            "is the server running? check the host, port and path (the API base usually ends in /v1)",
        )

    def _check_reachable(self) -> None:
        """Open (and close) a TCP connection, so a dead endpoint fails before any generation."""
        parsed = urllib.parse.urlsplit(self.endpoint)
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        try:
            with socket.create_connection((parsed.hostname, port), timeout=min(self.timeout, 10)):
                pass
        except OSError as err:
            raise self._unreachable(err.strerror or err) from None

    @staticmethod
    def _http_error(url: str, err: "urllib.error.HTTPError") -> DpokitError:
        detail = err.read()[:300].decode("utf-8", "replace").strip()
        hint = {401: "set OPENAI_API_KEY to a valid key", 403: "set OPENAI_API_KEY to a valid key",
                404: "check the URL path and the model name after '#'"}.get(err.code, "check the judge server's log")
        return DpokitError(f"--judge: {url} answered HTTP {err.code} {err.reason}: {detail}", hint)

    def _request(self, url: str, payload: Optional[dict]) -> dict:
        """One HTTP call returning the JSON body; retries 429/5xx/timeouts with backoff."""
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        data = json.dumps(payload).encode() if payload is not None else None
        for attempt in range(self.retries + 1):
            can_retry = attempt < self.retries
            request = urllib.request.Request(url, data=data, headers=headers, method="POST" if data else "GET")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    body = response.read()
                break
            except urllib.error.HTTPError as err:
                if err.code in RETRY_STATUS and can_retry:
                    time.sleep(2 ** attempt)
                    continue
                raise self._http_error(url, err) from None
            except urllib.error.URLError as err:
                if isinstance(err.reason, TimeoutError) and can_retry:
                    time.sleep(2 ** attempt)
                    continue
                raise self._unreachable(err.reason) from None
            except TimeoutError:
                if can_retry:
                    time.sleep(2 ** attempt)
                    continue
                raise self._unreachable(f"no answer within {self.timeout:g} s") from None
            except ConnectionError as err:
                raise self._unreachable(err) from None
        try:
            parsed = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise DpokitError(f"--judge: {url} did not answer with JSON: {body[:200]!r}",
                              "is this an OpenAI-compatible API? the base URL usually ends in /v1") from None
        if not isinstance(parsed, dict):
            raise DpokitError(f"--judge: {url} answered {type(parsed).__name__}, expected a JSON object")
        return parsed

    def _first_model(self) -> str:
        body = self._request(self.base + "/models", None)
        models = [m.get("id") for m in body.get("data") or [] if isinstance(m, dict) and m.get("id")]
        if not models:
            raise DpokitError(f"--judge: {self.base}/models lists no model",
                              "name the judge model after '#', e.g. openai:URL#gpt-4o-mini")
        return models[0]

    def ask(self, prompt: Sequence[Message], first: str, second: str) -> str:
        """The judge's raw reply for answers shown in this order."""
        payload = {
            "model": self.model,
            "messages": [
                {"role": "system", "content": JUDGE_SYSTEM_PROMPT},
                {"role": "user", "content": judge_user_message(prompt, first, second)},
            ],
            "temperature": 0,
        }
        body = self._request(self.endpoint, payload)
        try:
            content = body["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise DpokitError(f"--judge: {self.endpoint} answered without choices[0].message.content: "
                              f"{json.dumps(body)[:200]}", "is this an OpenAI-compatible chat completions API?") from None
        return content if isinstance(content, str) else ""

    def swap_order(self, n: int) -> list[bool]:
        """For each of ``n`` prompts, whether B is shown first (deterministic in the seed)."""
        rng = random.Random(self.seed)
        return [rng.random() < 0.5 for _ in range(n)]

    def judge(self, prompts, answers_a, answers_b) -> list[Judgement]:
        swaps = self.swap_order(len(prompts))

        def one(i: int) -> Judgement:
            first, second = (answers_b[i], answers_a[i]) if swaps[i] else (answers_a[i], answers_b[i])
            reply = self.ask(prompts[i], first, second)
            shown = parse_verdict(reply)
            winner = {A: B, B: A}.get(shown, shown) if swaps[i] else shown
            order = "shown B first" if swaps[i] else "shown A first"
            note = f"{order}; judge said: {reply.strip()[-300:]}" if winner is None else order
            return Judgement(winner, note=note)

        with ThreadPoolExecutor(max_workers=max(1, self.workers)) as pool:
            return list(pool.map(one, range(len(prompts))))


# ----------------------------------------------------------------------------- factory


def make_judge(spec: str, *, seed: int = 0) -> Judge:
    """Build a judge from ``rm:PATH``, ``dpo:RUN_DIR`` or ``openai:URL[#MODEL]``."""
    kind, sep, rest = spec.partition(":")
    if not sep or kind not in JUDGE_KINDS or (kind != "openai" and not rest):
        raise DpokitError(
            f"--judge {spec}: unknown judge",
            "use rm:PATH (a reward model dir), dpo:RUN_DIR (a DPO run's implicit reward) "
            "or openai:URL[#MODEL] (an OpenAI-compatible chat endpoint)",
        )
    if kind == "rm":
        return RewardModelJudge(rest)
    if kind == "dpo":
        return DpoRewardJudge(rest)
    url, model = _split_openai_spec(rest)
    return OpenAIJudge(url, model, seed=seed)
