"""The FastAPI app: OpenAI-compatible routes, the page's routes, middleware and error handling.

Routes:

==============================  ===========================================================
``GET  /health``                ``{"status": "ok", "models": [...], "queued": N}`` (no key needed)
``GET  /v1/models``             the served names (OpenAI's model list)
``GET  /v1/models/{name}``      one of them
``POST /v1/chat/completions``   chat, streaming (SSE) or not
``POST /v1/completions``        plain text completion (no chat template), streaming or not
``GET  /api/info``              what the page needs: models, defaults, the label counts
``GET  /api/label/queue``       the prompts still to label
``POST /api/label/prompts``     queue a typed-in prompt
``POST /api/label/decisions``   record a decision (idempotent per queue item)
``GET  /``, ``/compare``,       the page (chat, blind compare, label) and its files
``/label``, ``/static/...``
==============================  ===========================================================

Every error is answered in OpenAI's shape ``{"error": {"message", "type", "param",
"code"}}``: malformed JSON and invalid fields 400 (FastAPI's own 422s are converted), an
unknown model 404 (listing the served names), a body over the limit 413, a missing or
wrong API key 401, a failure inside generation 500 (the server goes on), shutting down 503.
With an API key set, ``/v1/*`` and ``/api/*`` need ``Authorization: Bearer KEY`` (compared
with :func:`hmac.compare_digest`); ``/health`` and the page's static files do not (the page
asks for the key). Streams are ``text/event-stream``: ``data: {json}\\n\\n`` per chunk, then
``data: [DONE]\\n\\n``; an error after the stream started is sent as a ``data: {"error": ...}``
event before ``[DONE]``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, AsyncIterator, Callable, Optional, Sequence

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from dpokit.errors import DpokitError
from dpokit.generate import DEFAULT_MAX_NEW_TOKENS, DEFAULT_TEMPERATURE, DEFAULT_TOP_K, DEFAULT_TOP_P, SamplingSettings
from dpokit.serve import schemas
from dpokit.serve.guard import GuardMiddleware, install_error_handlers, parse_body
from dpokit.serve.schemas import APIError, ChatCompletionRequest, CompletionRequest, error_body
from dpokit.serve.jobs import FINISH_CANCELLED, ChoiceDone, GenerationFailed, GenerationParams, ServerClosing, TextDelta

log = logging.getLogger("dpokit.serve")

DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024
PAGES = {"/": "index.html", "/compare": "compare.html", "/label": "label.html"}


@dataclass
class ServeState:
    """What the routes work with."""

    registry: Any
    scheduler: Any
    labels: Any = None
    """A :class:`~dpokit.serve.labels.LabelStore`, or None (labelling off)."""
    api_key: Optional[str] = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    cors_origins: Sequence[str] = field(default_factory=tuple)
    default_max_tokens: int = DEFAULT_MAX_NEW_TOKENS
    on_close: Optional[Callable[[], None]] = None
    closed: bool = False

    def close(self) -> None:
        """Stop the workers (queued requests answered 503) and release the label store; idempotent."""
        if self.closed:
            return
        self.closed = True
        self.scheduler.close()
        if self.labels is not None:
            self.labels.close()
        if self.on_close is not None:
            self.on_close()


# ---------------------------------------------------------------- requests -> jobs


def served_model(state: ServeState, name: str):
    served = state.registry.get(name)
    if served is None:
        names = ", ".join(state.registry.names)
        raise APIError(404, f"The model '{name}' does not exist. Served models: {names}.", param="model",
                       code="model_not_found")
    return served


def generation_params(state: ServeState, req, served, prompt_lengths: Sequence[int], what: str) -> GenerationParams:
    """Sampling settings of a request, with its max_tokens checked against the model's context."""
    requested = req.requested_max_tokens()
    context = served.context_length
    longest = max(prompt_lengths)
    max_tokens = requested if requested is not None else state.default_max_tokens
    if context is not None:
        room = context - longest
        if room < 1:
            raise APIError(400, f"This model's maximum context length is {context} tokens. However, your {what} "
                                f"resulted in {longest} tokens. Please shorten your {what}.",
                           param=what, code="context_length_exceeded")
        if requested is not None and longest + requested > context:
            raise APIError(400, f"This model's maximum context length is {context} tokens. However, you requested "
                                f"{longest + requested} tokens ({longest} in the {what}, {requested} in the "
                                f"completion). Please reduce the length of the {what} or the completion.",
                           param="max_tokens", code="context_length_exceeded")
        max_tokens = min(max_tokens, room)
    temperature = DEFAULT_TEMPERATURE if req.temperature is None else req.temperature
    try:
        settings = SamplingSettings(
            max_new_tokens=max_tokens, do_sample=temperature > 0, temperature=temperature,
            top_p=DEFAULT_TOP_P if req.top_p is None else req.top_p,
            top_k=DEFAULT_TOP_K if req.top_k is None else req.top_k,
            repetition_penalty=1.0 if req.repetition_penalty is None else req.repetition_penalty,
        )
    except DpokitError as err:
        raise APIError(400, err.message, code="invalid_value") from None
    return GenerationParams(settings=settings, n=req.n, stop=req.stop_list(), seed=req.seed,
                            presence_penalty=req.presence_penalty, frequency_penalty=req.frequency_penalty)


def _chat_prompt_ids(served, messages) -> list[int]:
    return served.renderer.prompt_ids(messages)


def _text_prompt_ids(served, texts: Sequence[str]) -> list[list[int]]:
    """Raw text as the model reads it without a chat template: BOS where the tokenizer adds one."""
    from dpokit.render import token_ids

    return [served.renderer.bos + ids for ids in token_ids(served.tokenizer, list(texts))]


def _reason(finish: str) -> str:
    """OpenAI's finish reasons are ``stop`` and ``length``; a row cancelled at shutdown ended early: ``stop``."""
    return "stop" if finish == FINISH_CANCELLED else finish


def sse(obj: Any) -> str:
    return f"data: {json.dumps(obj, ensure_ascii=False, separators=(',', ':'))}\n\n"


SSE_DONE = "data: [DONE]\n\n"
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


DISCONNECT_POLL_S = 0.25
"""How often a non-streaming request checks that its client is still there while it waits."""


CLIENT_CLOSED_REQUEST = 499  # nginx's status for a request its client abandoned; nobody reads it


class ClientGone(Exception):
    """The client of a non-streaming request disconnected before its answer was ready."""


async def _collect(job, request: Request) -> list:
    """Every choice of ``job``; when ``request``'s client disconnects first, its rows are cancelled.

    uvicorn does not cancel a handler whose client went away, so without the watch an abandoned
    request (a client timeout) would keep its rows generating up to ``max_tokens``.
    """
    result = asyncio.ensure_future(job.result())
    try:
        while True:
            done, _ = await asyncio.wait({result}, timeout=DISCONNECT_POLL_S)
            if done:
                return result.result()
            if await request.is_disconnected():
                raise ClientGone()
    except GenerationFailed as err:
        raise APIError(500, f"Generation failed: {err}", type="server_error", code="generation_failed") from None
    except ServerClosing:
        raise APIError(503, "The server is shutting down.", type="server_error", code="shutting_down") from None
    finally:
        result.cancel()
        job.cancel()  # a no-op once finished; stops the rows if this request was abandoned


async def _stream(job, chunk, first_chunks: Sequence[dict], done_chunk, usage_object: Optional[str],
                  id: str, model: str, created: int) -> AsyncIterator[str]:
    """SSE lines for a job: first chunks, a chunk per text delta and per finished choice, [DONE]."""
    completion_tokens = 0
    try:
        for c in first_chunks:
            yield sse(c)
        async for event in job.stream():
            if isinstance(event, TextDelta):
                yield sse(chunk(event.index, event.text))
            elif isinstance(event, ChoiceDone):
                completion_tokens += event.completion_tokens
                yield sse(done_chunk(event.index, _reason(event.finish_reason)))
        if usage_object is not None:
            yield sse(schemas.usage_chunk(id, model, created, usage_object, job.prompt_tokens, completion_tokens))
    except GenerationFailed as err:
        yield sse(error_body(f"Generation failed: {err}", type="server_error", code="generation_failed"))
    except ServerClosing:
        yield sse(error_body("The server is shutting down.", type="server_error", code="shutting_down"))
    finally:
        job.cancel()  # the client went away (or the stream ended): stop its rows
    yield SSE_DONE


# ---------------------------------------------------------------- the page's API


class CandidateIn(BaseModel):
    model: str = Field(max_length=200)
    content: str
    sampling: dict[str, Any] = Field(default_factory=dict)
    edited_content: Optional[str] = None


class DecisionIn(BaseModel):
    item_id: str = Field(max_length=64)
    decision: str
    labeler: str = Field(max_length=200)
    left: CandidateIn
    right: CandidateIn


class PromptIn(BaseModel):
    prompt: str = Field(min_length=1)
    added_by: Optional[str] = Field(None, max_length=200)


def static_dir():
    return resources.files("dpokit.serve") / "static"


# ---------------------------------------------------------------- the app


def create_app(state: ServeState) -> FastAPI:
    """The ASGI app over ``state``; closing the app (lifespan shutdown) closes the state."""
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(app):
        yield
        await run_in_threadpool(state.close)

    app = FastAPI(title="dpokit serve", version=_version(), lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.dpokit = state
    install_error_handlers(app)

    @app.get("/health")
    async def health():
        return {"status": "ok", "models": state.registry.names, "queued": state.scheduler.queued}

    @app.get("/v1/models")
    async def list_models():
        return {"object": "list", "data": [_model_card(m) for m in state.registry.models.values()]}

    @app.get("/v1/models/{name:path}")
    async def get_model(name: str):
        return _model_card(served_model(state, name))

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        req = await parse_body(request, ChatCompletionRequest)
        req.refuse_unsupported()
        served = served_model(state, req.model)
        messages = req.conversation()
        try:
            prompt_ids = await run_in_threadpool(_chat_prompt_ids, served, messages)
        except DpokitError as err:
            raise APIError(400, err.message, param="messages", code="invalid_messages") from None
        params = generation_params(state, req, served, [len(prompt_ids)], "messages")
        job = _submit(state, served, [prompt_ids], params)
        id, created, name = schemas.new_id("chatcmpl"), schemas.now(), served.name
        first = [schemas.chat_chunk(id, name, created, i, {"role": "assistant", "content": ""}) for i in range(job.rows)]
        return await _answer(request, req, job, id, name, created, "chat.completion.chunk", schemas.chat_completion,
                             lambda i, text: schemas.chat_chunk(id, name, created, i, {"content": text}),
                             lambda i, reason: schemas.chat_chunk(id, name, created, i, {}, reason), first)

    @app.post("/v1/completions")
    async def completions(request: Request):
        req = await parse_body(request, CompletionRequest)
        req.refuse_unsupported()
        served = served_model(state, req.model)
        prompts = await run_in_threadpool(_text_prompt_ids, served, req.prompts())
        if any(not p for p in prompts):
            raise APIError(400, "The prompt is empty.", param="prompt", code="invalid_value")
        params = generation_params(state, req, served, [len(p) for p in prompts], "prompt")
        job = _submit(state, served, prompts, params)
        id, created, name = schemas.new_id("cmpl"), schemas.now(), served.name
        return await _answer(request, req, job, id, name, created, "text_completion", schemas.text_completion,
                             lambda i, text: schemas.text_chunk(id, name, created, i, text),
                             lambda i, reason: schemas.text_chunk(id, name, created, i, "", reason))

    # -- the page's API

    @app.get("/api/info")
    async def info():
        models = [{"id": m.name, "parent": m.parent, "kind": m.info.kind, "context_length": m.context_length,
                   "system_prompt": m.renderer.system_prompt} for m in state.registry.models.values()]
        return {"models": models,
                "defaults": {"temperature": DEFAULT_TEMPERATURE, "top_p": DEFAULT_TOP_P,
                             "max_tokens": state.default_max_tokens},
                "labels": _label_summary(state)}

    @app.get("/api/label/queue")
    async def label_queue():
        store = _labels(state)
        return {"pending": [item.to_json() for item in store.pending()], "counts": store.counts()}

    # The page's API reads its body through parse_body, as /v1 does, not as a FastAPI body parameter:
    # FastAPI turns any error while reading (the guard's size limit on a chunked body) into a 400.
    @app.post("/api/label/prompts")
    async def label_prompt(request: Request):
        body = await parse_body(request, PromptIn)
        store = _labels(state)
        item, created = await run_in_threadpool(store.add_prompt, body.prompt, added_by=body.added_by)
        return {"item": item.to_json(), "created": created, "counts": store.counts()}

    @app.post("/api/label/decisions")
    async def label_decision(request: Request):
        from dpokit.serve.labels import Candidate, Decision

        body = await parse_body(request, DecisionIn)
        store = _labels(state)
        if store.get(body.item_id) is None:
            raise APIError(404, f"No queued prompt has the id '{body.item_id}'. Reload the queue.", param="item_id",
                           code="unknown_item")
        sides = {"left": body.left, "right": body.right}
        chosen = sides.get(body.decision)
        decision = Decision(
            item_id=body.item_id, decision=body.decision, labeler=body.labeler,
            left=Candidate(body.left.model, body.left.content, body.left.sampling),
            right=Candidate(body.right.model, body.right.content, body.right.sampling),
            chosen_content=chosen.edited_content if chosen is not None else None,
        )
        appended = await run_in_threadpool(store.append, decision)
        return {"saved": appended.created, "file": appended.file, "record": appended.record, "counts": store.counts()}

    # -- the page

    static = static_dir()

    def page(name: str):
        async def handler():
            return FileResponse(str(static / name), media_type="text/html; charset=utf-8",
                                headers={"Cache-Control": "no-cache"})
        return handler

    for route, name in PAGES.items():
        app.add_api_route(route, page(name), methods=["GET"], include_in_schema=False)
    app.mount("/static", StaticFiles(directory=str(static)), name="static")

    if state.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(state.cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"])
    app.add_middleware(GuardMiddleware, api_key=state.api_key, max_body_bytes=state.max_body_bytes)
    return app


async def _answer(request: Request, req, job, id: str, name: str, created: int, chunk_object: str,
                  completion: Callable, delta: Callable, end: Callable, first: Sequence[dict] = ()):
    """The response to a completion request: an SSE stream of ``delta`` / ``end`` chunks (after
    ``first``), or, not streaming, the whole ``completion`` once every choice is done (499, sent to
    nobody, when the client left first)."""
    if req.stream:
        include_usage = bool(req.stream_options and req.stream_options.include_usage)
        return StreamingResponse(_stream(job, delta, list(first), end, chunk_object if include_usage else None,
                                         id, name, created), media_type="text/event-stream", headers=SSE_HEADERS)
    try:
        choices = await _collect(job, request)
    except ClientGone:
        return Response(status_code=CLIENT_CLOSED_REQUEST)
    return completion(id, name, created, [(c.text, _reason(c.finish_reason)) for c in choices],
                      job.prompt_tokens, sum(c.completion_tokens for c in choices))


def _submit(state: ServeState, served, prompts, params):
    try:
        return state.scheduler.submit(served, prompts, params)
    except ServerClosing:
        raise APIError(503, "The server is shutting down.", type="server_error", code="shutting_down") from None


def _model_card(served) -> dict[str, Any]:
    card = {"id": served.name, "object": "model", "created": 0, "owned_by": "dpokit", "root": served.ref}
    if served.parent is not None:
        card["parent"] = served.parent
    if served.context_length is not None:
        card["max_model_len"] = served.context_length
    return card


def _labels(state: ServeState):
    if state.labels is None:
        raise APIError(404, "Labelling is off on this server.", code="labels_off")
    return state.labels


def _label_summary(state: ServeState) -> Optional[dict[str, Any]]:
    if state.labels is None:
        return None
    return {"dir": str(state.labels.dir), "counts": state.labels.counts()}


def _version() -> str:
    from dpokit import __version__

    return __version__
