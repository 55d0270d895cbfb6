"""OpenAI's request shapes (pydantic), response and chunk builders, and errors in OpenAI's shape.

Ranges follow OpenAI's API reference (``temperature`` 0..2, penalties -2..2, up to 4
``stop`` strings); a value outside them is a 400 naming the parameter. Fields OpenAI has
and dpokit does not implement are either refused with a 400 when set (``logprobs``,
``tools``, ``logit_bias``, ``echo``, ``suffix``, ``best_of``), or accepted and ignored
(``user``, ``metadata``, ``store``, ``service_tier``, ``parallel_tool_calls`` ...: they do
not change what the model writes). ``top_k`` and ``repetition_penalty`` are accepted as
vLLM does.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator

# ---------------------------------------------------------------- errors


class APIError(Exception):
    """An error answered in OpenAI's shape with an HTTP status."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error",
                 param: Optional[str] = None, code: Optional[str] = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code

    def body(self) -> dict[str, Any]:
        return error_body(self.message, type=self.type, param=self.param, code=self.code)


def error_body(message: str, *, type: str = "invalid_request_error", param: Optional[str] = None,
               code: Optional[str] = None) -> dict[str, Any]:
    """``{"error": {"message", "type", "param", "code"}}`` as OpenAI answers errors."""
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


# ---------------------------------------------------------------- requests

UNSUPPORTED_WHEN_SET = {
    "logprobs": "log-probabilities of tokens are not returned by dpokit serve",
    "top_logprobs": "log-probabilities of tokens are not returned by dpokit serve",
    "logit_bias": "logit_bias is not supported by dpokit serve",
    "tools": "tool calling is not supported by dpokit serve",
    "functions": "function calling is not supported by dpokit serve",
    "tool_choice": "tool calling is not supported by dpokit serve",
    "function_call": "function calling is not supported by dpokit serve",
    "echo": "echo is not supported by dpokit serve",
    "suffix": "suffix (insertion) is not supported by dpokit serve",
    "audio": "audio output is not supported by dpokit serve",
}


class _Sampling(BaseModel):
    """The sampling fields chat and text completions share."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    temperature: Optional[float] = Field(None, ge=0, le=2)
    top_p: Optional[float] = Field(None, gt=0, le=1)
    top_k: Optional[int] = Field(None, ge=0)
    """vLLM's extension; 0 turns top-k off."""
    max_tokens: Optional[int] = Field(None, ge=1)
    stop: Optional[Union[str, list[str]]] = None
    seed: Optional[int] = None
    n: int = Field(1, ge=1, le=16)
    presence_penalty: float = Field(0.0, ge=-2, le=2)
    frequency_penalty: float = Field(0.0, ge=-2, le=2)
    repetition_penalty: Optional[float] = Field(None, gt=0, le=10)
    """vLLM's extension; 1.0 means none."""
    stream: bool = False
    stream_options: Optional["StreamOptions"] = None

    @field_validator("stop")
    @classmethod
    def _stop_list(cls, value: Any) -> Any:
        if isinstance(value, list):
            if len(value) > 4:
                raise ValueError("at most 4 stop sequences")
            if any(not s for s in value):
                raise ValueError("stop sequences must not be empty")
        elif isinstance(value, str) and not value:
            return None
        return value

    def stop_list(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)

    def requested_max_tokens(self) -> Optional[int]:
        return self.max_tokens

    def refuse_unsupported(self) -> None:
        """A 400 for an OpenAI feature dpokit does not implement, when the request turns it on."""
        extra = self.model_extra or {}
        for key, why in UNSUPPORTED_WHEN_SET.items():
            value = extra.get(key, getattr(self, key, None))
            if value not in (None, False, [], {}, "", 0, "none"):
                raise APIError(400, f"'{key}': {why}", param=key, code="unsupported_parameter")


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_usage: bool = False


class TextPart(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: str
    text: Optional[str] = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant"]
    content: Optional[Union[str, list[TextPart]]] = None
    name: Optional[str] = None

    def as_message(self, index: int) -> dict[str, str]:
        """``{"role", "content"}`` as dpokit's renderer takes it (``developer`` is a system message)."""
        role = "system" if self.role == "developer" else self.role
        content = self.content
        if content is None:
            if self.role != "assistant":
                raise APIError(400, f"messages[{index}].content is required", param=f"messages.{index}.content",
                               code="missing_required_parameter")
            content = ""
        if isinstance(content, list):
            texts = []
            for k, part in enumerate(content):
                if part.type != "text" or part.text is None:
                    raise APIError(400, f"messages[{index}].content[{k}]: only text parts are supported "
                                        f"(got type '{part.type}')", param=f"messages.{index}.content.{k}",
                                   code="unsupported_content")
                texts.append(part.text)
            content = "".join(texts)
        return {"role": role, "content": content}


class ChatCompletionRequest(_Sampling):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: Optional[int] = Field(None, ge=1)

    def requested_max_tokens(self) -> Optional[int]:
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens

    def conversation(self) -> list[dict[str, str]]:
        return [m.as_message(i) for i, m in enumerate(self.messages)]


class CompletionRequest(_Sampling):
    prompt: Union[str, list[str]]
    best_of: Optional[int] = None

    @field_validator("prompt")
    @classmethod
    def _prompts(cls, value: Any) -> Any:
        if isinstance(value, list) and not value:
            raise ValueError("at least one prompt is required")
        return value

    def prompts(self) -> list[str]:
        return [self.prompt] if isinstance(self.prompt, str) else list(self.prompt)

    def refuse_unsupported(self) -> None:
        super().refuse_unsupported()
        if self.best_of not in (None, 1):
            raise APIError(400, "'best_of' > 1 is not supported by dpokit serve; use n", param="best_of",
                           code="unsupported_parameter")


_Sampling.model_rebuild()
ChatCompletionRequest.model_rebuild()
CompletionRequest.model_rebuild()


# ---------------------------------------------------------------- responses


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def now() -> int:
    return int(time.time())


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def chat_completion(id: str, model: str, created: int, choices: list[tuple[str, str]], prompt_tokens: int,
                    completion_tokens: int) -> dict[str, Any]:
    """``chat.completion``: ``choices`` is ``[(text, finish_reason), ...]`` in index order."""
    return {
        "id": id, "object": "chat.completion", "created": created, "model": model,
        "choices": [{"index": i, "message": {"role": "assistant", "content": text}, "logprobs": None,
                     "finish_reason": reason} for i, (text, reason) in enumerate(choices)],
        "usage": usage(prompt_tokens, completion_tokens),
    }


def chat_chunk(id: str, model: str, created: int, index: int, delta: dict[str, Any],
               finish_reason: Optional[str] = None) -> dict[str, Any]:
    return {"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]}


def text_completion(id: str, model: str, created: int, choices: list[tuple[str, str]], prompt_tokens: int,
                    completion_tokens: int) -> dict[str, Any]:
    return {
        "id": id, "object": "text_completion", "created": created, "model": model,
        "choices": [{"index": i, "text": text, "logprobs": None, "finish_reason": reason}
                    for i, (text, reason) in enumerate(choices)],
        "usage": usage(prompt_tokens, completion_tokens),
    }


def text_chunk(id: str, model: str, created: int, index: int, text: str,
               finish_reason: Optional[str] = None) -> dict[str, Any]:
    return {"id": id, "object": "text_completion", "created": created, "model": model,
            "choices": [{"index": index, "text": text, "logprobs": None, "finish_reason": finish_reason}]}


def usage_chunk(id: str, model: str, created: int, object: str, prompt_tokens: int,
                completion_tokens: int) -> dict[str, Any]:
    """The last chunk when ``stream_options.include_usage``: no choices, the usage."""
    return {"id": id, "object": object, "created": created, "model": model, "choices": [],
            "usage": usage(prompt_tokens, completion_tokens)}
