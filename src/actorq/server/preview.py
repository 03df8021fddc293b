"""The open preview route: ``/v1/preview/{token}/...`` relayed to the actor the token names.

A browser opens a preview without the API token: the token in the path is the credential, and the
actor checks it (its type's ``http_action``, through ``Runtime.call_http``). This route only moves
the request there and the answer back: it reads no token itself, reaches no other action, and
passes the path exactly as it came (percent-encoding kept), so nothing in the path can turn it into
another of the server's routes.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket, WebSocketDisconnect

from actorq.core import HttpTunnel, Runtime
from actorq.errors import ActorError, ActorqError, MessageTooLarge, NotFound
from actorq.server.forward import FORWARDED_HEADER

PREFIX = "/v1/preview/"
MAX_BODY = 8 * 1024 * 1024  # a preview request body; larger is a 413
# the API token is not the VM's, and cookies are not passed either way: every preview shares the
# server's origin, so one VM's cookie would reach another's server
_SKIP_REQUEST = frozenset({b"host", b"authorization", b"cookie"})
# the page runs in an opaque origin: its scripts cannot read what the server's own pages keep
# (the API page's token) nor call the API as that origin
SANDBOX = "sandbox allow-scripts allow-forms allow-popups allow-downloads"


def _target(request: Request | WebSocket, token: str) -> str:
    """The request target after ``/v1/preview/{token}``, as the client sent it."""
    raw: bytes = request.scope.get("raw_path") or request.scope["path"].encode()
    head = f"{PREFIX}{token}".encode()
    at = raw.find(head)
    if at < 0:
        raise NotFound("no such preview")
    rest = raw[at + len(head) :].decode("latin-1") or "/"
    if not rest.startswith("/"):
        raise NotFound("no such preview")
    query = request.scope.get("query_string", b"").decode("latin-1")
    return rest + (f"?{query}" if query else "")


def _headers(request: Request | WebSocket) -> list[list[str]]:
    """The request's headers as the http_action gets them, without those it must not see."""
    return [
        [k.decode("latin-1"), v.decode("latin-1")]
        for k, v in request.scope["headers"]
        if k not in _SKIP_REQUEST
    ]


def _answer(answer: Any) -> tuple[int, dict[str, str], bytes]:
    """The http_action's answer: ``{"status", "headers", "body"}`` (a ``FetchResult`` reads so too)."""
    try:
        status, headers, body = answer["status"], answer["headers"], answer["body"]
    except (TypeError, KeyError):
        raise ActorError("the actor's http_action answered without status, headers and body") from None
    ok = (
        isinstance(status, int)
        and 100 <= status <= 599
        and isinstance(headers, dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items())
        and isinstance(body, bytes)
    )
    if not ok:
        raise ActorError("the actor's http_action answered a malformed status, headers or body")
    return status, headers, body


async def preview(request: Request) -> Response:
    token: str = request.path_params["token"]
    target = _target(request, token)
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise MessageTooLarge(f"a preview request body is at most {MAX_BODY} bytes")
    headers = _headers(request)
    rt: Runtime = request.app.state.runtime
    answer = await rt.call_http(
        token,
        {"method": request.method, "path": target, "headers": headers, "body": body},
        forward=FORWARDED_HEADER not in request.headers,
    )
    status, answer_headers, answer_body = _answer(answer)
    out = Response(answer_body, status_code=status)
    for name, value in answer_headers.items():
        if name.lower() not in ("content-length", "set-cookie", "content-security-policy"):
            out.headers.append(name, value)
    out.headers["content-security-policy"] = SANDBOX
    return out


async def preview_socket(ws: WebSocket) -> None:
    """A WebSocket by a preview URL: the actor opens one to its side, and messages are relayed
    both ways until either end closes. Refused (forged, expired, nothing there): closed before
    the handshake completes, with the typed error's code as the reason."""
    token: str = ws.path_params["token"]
    rt: Runtime = ws.app.state.runtime
    try:
        target = _target(ws, token)
        headers = _headers(ws)
        far: HttpTunnel = await rt.open_http_tunnel(
            token, {"method": "GET", "path": target, "headers": headers, "body": b""}
        )
    except ActorqError as exc:
        await ws.close(code=4000 + exc.status, reason=exc.code)
        return
    try:
        await ws.accept(subprotocol=far.subprotocol)

        async def up() -> None:
            while True:
                message = await ws.receive()
                if message["type"] == "websocket.disconnect":
                    return
                data = message.get("text")
                await far.send(data if data is not None else message.get("bytes") or b"")

        async def down() -> None:
            while True:
                data = await far.recv()
                if isinstance(data, str):
                    await ws.send_text(data)
                else:
                    await ws.send_bytes(data)

        tasks = [asyncio.ensure_future(up()), asyncio.ensure_future(down())]
        _, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
    finally:
        with contextlib.suppress(Exception):
            await far.close()
        with contextlib.suppress(Exception, WebSocketDisconnect):
            await ws.close()
