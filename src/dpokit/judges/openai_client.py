"""A small client for OpenAI-compatible HTTP APIs (``/models``, ``/chat/completions``), for the LLM judge.

The standard library's ``urllib`` is used rather than the ``openai`` package: two JSON
endpoints do not justify a runtime dependency, and every failure must become a
one-line :class:`~dpokit.errors.DpokitError` naming the URL (retries on 429/5xx/timeouts
with backoff).
"""

from __future__ import annotations

import json
import os
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Optional

from dpokit.errors import DpokitError

DEFAULT_OPENAI_URL = "https://api.openai.com/v1"
RETRY_STATUS = (429, 500, 502, 503, 504)


class OpenAIClient:
    """One OpenAI-compatible API.

    ``url`` is the API base (``http://host:8000/v1``; a bare host gets ``/v1``) or the full
    ``.../chat/completions`` URL. The key comes from ``api_key`` or ``$OPENAI_API_KEY``
    (sent only when set). Building one opens (and closes) a TCP connection, so a dead
    endpoint fails at once.
    """

    def __init__(self, url: str = DEFAULT_OPENAI_URL, *, api_key: Optional[str] = None, timeout: float = 120.0,
                 retries: int = 2):
        self.base, self.endpoint = self._endpoints(url)
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY") or None
        self.timeout, self.retries = timeout, retries
        self._check_reachable()

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

    def first_model(self) -> str:
        body = self._request(self.base + "/models", None)
        models = [m.get("id") for m in body.get("data") or [] if isinstance(m, dict) and m.get("id")]
        if not models:
            raise DpokitError(f"--judge: {self.base}/models lists no model",
                              "name the judge model after '#', e.g. openai:URL#gpt-4o-mini")
        return models[0]

    def chat(self, model: str, messages: list[dict[str, str]], **params: Any) -> str:
        """The first choice's message text for one chat completion."""
        body = self._request(self.endpoint, {"model": model, "messages": messages, **params})
        try:
            content = body["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise DpokitError(f"--judge: {self.endpoint} answered without choices[0].message.content: "
                              f"{json.dumps(body)[:200]}", "is this an OpenAI-compatible chat completions API?") from None
        return content if isinstance(content, str) else ""
