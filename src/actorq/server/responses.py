"""JSON responses and the mapping of typed errors onto HTTP."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, is_dataclass
from typing import Any

from pydantic_core import to_jsonable_python
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from actorq import protocol
from actorq.errors import ActorqError, BadRequest, NotFound

log = logging.getLogger("actorq.server")


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    if is_dataclass(data) and not isinstance(data, type):
        data = asdict(data)
    try:
        text = json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError):
        text = json.dumps(to_jsonable_python(data), separators=(",", ":"), ensure_ascii=False)
    return Response(text, status_code=status, headers=headers, media_type="application/json")


def error_response(err: ActorqError) -> Response:
    headers = {}
    if err.retry_after is not None or err.status in (429, 503):
        headers["Retry-After"] = str(max(1, round(err.retry_after or 1)))
    return json_response(protocol.ErrorAnswer(error=protocol.error_body(err)), err.status, headers)


async def on_actorq_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ActorqError)
    return error_response(exc)


async def on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return error_response(NotFound(f"no route {request.method} {request.url.path}"))
    err = BadRequest(str(exc.detail))
    resp = error_response(err)
    resp.status_code = exc.status_code
    for name, value in (exc.headers or {}).items():  # e.g. Allow on a 405
        resp.headers[name] = value
    return resp


async def on_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error serving %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(ActorqError(f"internal error: {type(exc).__name__}"))
