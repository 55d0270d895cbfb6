"""The server's guard: API key, body-size limit and security headers before any route runs, and
every error answered in OpenAI's shape (``{"error": {"message", "type", "param", "code"}}``).

The middleware is plain ASGI rather than a Starlette ``BaseHTTPMiddleware``: it must refuse a
request before its body is read (a body over the limit is never buffered), and add headers to
streamed responses without wrapping them.
"""

from __future__ import annotations

import hmac
import json
import logging
from typing import Optional, Sequence

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from dpokit.errors import DpokitError
from dpokit.serve.schemas import APIError, error_body

log = logging.getLogger("dpokit.serve")

PROTECTED_PREFIXES = ("/v1/", "/api/")
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    # Defence in depth: the page never puts model output in as HTML, and no inline script runs anyway.
    (b"content-security-policy",
     b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
     b"object-src 'none'; base-uri 'none'; frame-ancestors 'none'"),
]


async def _send_error(send, status: int, body: dict, headers: Sequence[tuple[bytes, bytes]] = ()) -> None:
    raw = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": raw})


class BodyTooLarge(APIError):
    def __init__(self, limit: int):
        super().__init__(413, f"The request body is larger than the server's limit of {limit} bytes.",
                         code="request_too_large")


class GuardMiddleware:
    """API key, body-size limit and security headers, before any route runs."""

    def __init__(self, app, *, api_key: Optional[str], max_body_bytes: int):
        self.app = app
        self.api_key = api_key.encode("utf-8") if api_key else None
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        path = scope.get("path", "")
        if self.api_key is not None and path.startswith(PROTECTED_PREFIXES) and scope.get("method") != "OPTIONS":
            given = headers.get(b"authorization", b"")
            scheme, _, token = given.partition(b" ")
            if not given:
                return await _send_error(send, 401, error_body(
                    "You didn't provide an API key. Send it as 'Authorization: Bearer KEY'.",
                    code="invalid_api_key"), [(b"www-authenticate", b"Bearer")])
            if scheme.lower() != b"bearer" or not hmac.compare_digest(token.strip(), self.api_key):
                return await _send_error(send, 401, error_body("Incorrect API key provided.", code="invalid_api_key"),
                                         [(b"www-authenticate", b"Bearer")])
        length = headers.get(b"content-length")
        if length is not None:
            try:
                too_big = int(length) > self.max_body_bytes
            except ValueError:
                return await _send_error(send, 400, error_body("Invalid Content-Length header.", code="invalid_request"))
            if too_big:
                return await _send_error(send, 413, BodyTooLarge(self.max_body_bytes).body())
        received = 0
        limit = self.max_body_bytes

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:  # a chunked body without Content-Length
                    raise BodyTooLarge(limit)
            return message

        async def with_headers(message):
            if message["type"] == "http.response.start":
                message = dict(message)
                message["headers"] = list(message.get("headers", [])) + SECURITY_HEADERS
            await send(message)

        return await self.app(scope, limited_receive, with_headers)


def validation_error(errors: Sequence[dict]) -> APIError:
    """The first pydantic / FastAPI validation error as OpenAI's 400."""
    first = errors[0] if errors else {"loc": (), "msg": "invalid request", "type": "value_error"}
    loc = [str(p) for p in first.get("loc", ()) if p != "body"]
    param = ".".join(loc) or None
    kind = first.get("type", "")
    if kind == "json_invalid":
        return APIError(400, "We could not parse the JSON body of your request: it is not valid JSON.",
                        code="invalid_json")
    if kind == "missing":
        return APIError(400, f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter")
    if not loc and kind in ("model_attributes_type", "dict_type"):
        return APIError(400, "The request body must be a JSON object.", code="invalid_json")
    msg = str(first.get("msg", "invalid value"))
    return APIError(400, f"Invalid value for '{param}': {msg}." if param else f"Invalid request: {msg}.",
                    param=param, code="invalid_value")


async def parse_body(request: Request, model: type[BaseModel]):
    """The JSON body as ``model`` (any content type: curl's default form type works too)."""
    raw = await request.body()
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise APIError(400, "We could not parse the JSON body of your request: it is not valid JSON.",
                       code="invalid_json") from None
    if not isinstance(data, dict):
        raise APIError(400, "The request body must be a JSON object.", code="invalid_json")
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise validation_error(err.errors()) from None


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError):
        return JSONResponse(exc.body(), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        err = validation_error(exc.errors())
        return JSONResponse(err.body(), status_code=err.status)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        code = {404: "unknown_url", 405: "method_not_allowed"}.get(exc.status_code)
        message = (f"Unknown request URL: {request.method} {request.url.path}." if exc.status_code == 404
                   else str(exc.detail))
        return JSONResponse(error_body(message, code=code), status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(DpokitError)
    async def _dpokit(request: Request, exc: DpokitError):
        return JSONResponse(error_body(str(exc)), status_code=400)

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception):
        log.exception("internal error on %s", request.url.path)
        return JSONResponse(error_body(f"Internal server error: {type(exc).__name__}", type="server_error"),
                            status_code=500)
