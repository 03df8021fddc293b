"""Forwarding requests to the node that owns an actor (several nodes on one PostgreSQL database).

A forwarded request carries ``X-Actorq-Forwarded: 1`` so the receiving node never forwards it
again (if it no longer owns the actor it answers 503 and the client retries). When the owner
cannot be reached while its lease is live, the caller gets ``Unavailable`` (503 with
``Retry-After``) and nothing was written.

:class:`HttpForwarder` implements the core's ``Forwarder``: the core decides where an actor runs
and calls it for every kind of request that goes to another node. WebSocket connections
(``/v1/actors/{id}/connect``) reaching a node that does not own the actor are relayed, the way a
gateway would (:meth:`HttpForwarder.connect`): :meth:`HttpForwarder.open_websocket` opens the same
route on the owner (forwarded header, the server's token) and :func:`relay_websocket` copies
frames both ways verbatim. When the owner's side drops (owner killed, paused past the heartbeat, shutting
down, or the actor moved away from it) the client's socket is closed with 1012 (service restart)
so the client reconnects and is routed to the new owner; it is never left open but dead.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any
from urllib.parse import quote

import aiohttp
from starlette.websockets import WebSocket, WebSocketDisconnect

from actorq import protocol, vm_types
from actorq._typing import encode_bytes
from actorq.core import inject_trace
from actorq.errors import Unavailable, error_from_dict

FORWARDED_HEADER = "x-actorq-forwarded"

# WebSocket close codes (RFC 6455 / IANA registry) used for connections to an actor
WS_POLICY_VIOLATION = 1008  # the client fell too far behind the actor's events
WS_SERVICE_RESTART = 1012  # the actor's node went away or the actor moved: reconnect
WS_TRY_AGAIN_LATER = 1013  # the owner cannot be reached right now (when a 503 handshake is impossible)

SUBPROTOCOL = "actorq"
TOKEN_SUBPROTOCOL = "actorq.token."  # + the token: how a browser authenticates a WebSocket

log = logging.getLogger("actorq.forward")


def chosen_subprotocol(ws: WebSocket) -> str | None:
    """The subprotocol to accept with: ``actorq`` when offered, else the token subprotocol a
    client offered alone (a browser drops a connection whose answer names none of its offers)."""
    offered: list[str] = list(ws.scope.get("subprotocols", ()))
    if SUBPROTOCOL in offered:
        return SUBPROTOCOL
    return next((p for p in offered if p.startswith(TOKEN_SUBPROTOCOL)), None)


def _close_reason(text: str) -> str:
    """A close frame's reason is at most 123 bytes of UTF-8."""
    data = text.encode("utf-8")
    if len(data) <= 123:
        return text
    return data[:120].decode("utf-8", "ignore") + "..."


class HttpForwarder:
    def __init__(self, token: str | None = None, *, connect_timeout: float = 2.0) -> None:
        self._headers = {FORWARDED_HEADER: "1", "content-type": "application/json"}
        if token:
            self._headers["authorization"] = f"Bearer {token}"
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout)
        self._session: aiohttp.ClientSession | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                headers=self._headers,
                timeout=self._timeout,
                connector=aiohttp.TCPConnector(limit=256),
            )
        return self._session

    async def call_action(
        self, address: str, actor_id: str, name: str, args: list[Any], kwargs: dict[str, Any] | None
    ) -> Any:
        url = f"http://{address}/v1/actors/{quote(actor_id, safe='')}/actions/{quote(name, safe='')}"
        body = protocol.encode(
            protocol.CallAction(args=encode_bytes(args), kwargs=encode_bytes(kwargs or {}))
        )
        try:
            # the action's span on this node is the parent of its run on the owner
            async with self._get_session().post(url, data=body, headers=inject_trace({})) as resp:
                text = await resp.read()
                status = resp.status
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise Unavailable(
                f"the node owning actor {actor_id} ({address}) cannot be reached: {exc!r}", retry_after=1.0
            ) from exc
        if status < 400:
            answer = protocol.read(protocol.ActionResult, text)
            return vm_types.decode_result(answer["result"], answer.get("result_type"))
        try:
            data = json.loads(text) if text else None
        except ValueError:
            data = text.decode("utf-8", "replace")
        raise error_from_dict(status, data)

    async def connect(
        self, address: str, actor_id: str, client: WebSocket, *, heartbeat: float, open_timeout: float
    ) -> None:
        """Relay ``client`` to the actor's connection route on its owner at ``address`` until
        either side ends; :class:`Unavailable` (the client not accepted yet) if it cannot be opened."""
        upstream, init = await self.open_websocket(
            address, actor_id, heartbeat=heartbeat, open_timeout=open_timeout
        )
        await relay_websocket(client, upstream, init, address=address, subprotocol=chosen_subprotocol(client))

    async def open_websocket(
        self, address: str, actor_id: str, *, heartbeat: float, open_timeout: float
    ) -> tuple[aiohttp.ClientWebSocketResponse, str]:
        """Open ``/v1/actors/{actor_id}/connect`` on the owner at ``address``; return the socket and
        the owner's first (``init``) frame. Anything else — refused, a handshake answered with an
        error (a node that no longer owns the actor answers 503), no ``init`` within
        ``open_timeout`` — is :class:`Unavailable`. ``heartbeat``: seconds between pings; an owner
        that stops answering them (paused, partitioned) is taken for gone."""
        url = f"ws://{address}/v1/actors/{quote(actor_id, safe='')}/connect"
        ws: aiohttp.ClientWebSocketResponse | None = None
        try:
            async with asyncio.timeout(open_timeout):
                ws = await self._get_session().ws_connect(
                    url, heartbeat=heartbeat, max_msg_size=0, autoping=True, headers=inject_trace({})
                )
                first = await ws.receive()
        except aiohttp.WSServerHandshakeError as exc:
            raise Unavailable(
                f"the node owning actor {actor_id} ({address}) refused the connection: "
                f"{exc.status} {exc.message}",
                retry_after=1.0,
            ) from exc
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            if ws is not None:
                with contextlib.suppress(Exception):
                    await ws.close()
            raise Unavailable(
                f"the node owning actor {actor_id} ({address}) cannot be reached: {exc!r}", retry_after=1.0
            ) from exc
        except BaseException:  # cancelled: the client went away meanwhile
            if ws is not None:
                with contextlib.suppress(Exception):
                    await ws.close()
            raise
        init = first.data if first.type == aiohttp.WSMsgType.TEXT else None
        if not isinstance(init, str) or '"init"' not in init:
            code = ws.close_code
            with contextlib.suppress(Exception):
                await ws.close()
            raise Unavailable(
                f"the node owning actor {actor_id} ({address}) closed the connection (code {code})",
                retry_after=1.0,
            )
        return ws, init

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class _OwnerGone(Exception):
    """Writing to the owner's socket failed."""


async def relay_websocket(
    client: WebSocket,
    upstream: aiohttp.ClientWebSocketResponse,
    init: str,
    *,
    address: str,
    subprotocol: str | None = None,
) -> None:
    """Accept ``client``, hand it the owner's ``init`` frame, then copy frames both ways verbatim
    until one side ends. The client leaving closes the upstream socket; the upstream socket ending
    for any reason closes the client's with 1012 (1008 is passed on: the owner dropped a client
    that fell behind its events), so the client reconnects and reaches the actor's new owner.
    ``subprotocol``: the one the client offered that the handshake answers with."""
    try:
        await client.accept(subprotocol=subprotocol)
        await client.send_text(init)  # before any event frame: the owner's order is kept
    except BaseException as exc:
        with contextlib.suppress(Exception):
            await upstream.close()
        if isinstance(exc, (WebSocketDisconnect, RuntimeError, OSError)):
            return  # the client left meanwhile
        raise

    async def client_to_owner() -> None:
        while True:
            message = await client.receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            try:
                if text is not None:
                    await upstream.send_str(text)
                else:
                    await upstream.send_bytes(message.get("bytes") or b"")
            except Exception as exc:
                raise _OwnerGone(repr(exc)) from exc

    async def owner_to_client() -> str:
        while True:
            msg = await upstream.receive()
            if msg.type == aiohttp.WSMsgType.TEXT:
                await client.send_text(msg.data)
            elif msg.type == aiohttp.WSMsgType.BINARY:
                await client.send_bytes(msg.data)
            elif msg.type == aiohttp.WSMsgType.CLOSE:
                return str(msg.extra or "")
            elif msg.type == aiohttp.WSMsgType.ERROR:
                return repr(msg.data)
            elif msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
                return ""

    down = asyncio.create_task(owner_to_client())
    up = asyncio.create_task(client_to_owner())
    detail: str | None = None  # set when the owner's side ended first
    try:
        done, _ = await asyncio.wait({down, up}, return_when=asyncio.FIRST_COMPLETED)
        if down in done and down.exception() is None:
            detail = down.result()  # the owner closed, or its connection broke / missed heartbeats
        elif up in done and isinstance(up.exception(), _OwnerGone):
            detail = str(up.exception())
        # otherwise the client left (or its socket broke)
    finally:
        for task in (down, up):
            task.cancel()
        await asyncio.gather(down, up, return_exceptions=True)
        with contextlib.suppress(Exception):
            await upstream.close()
    if detail is None:
        return
    code = upstream.close_code
    if code == WS_POLICY_VIOLATION:
        out, reason = WS_POLICY_VIOLATION, detail or "event buffer overflow"
    else:
        out = WS_SERVICE_RESTART
        reason = f"lost the actor's node {address} (code {code}{': ' + detail if detail else ''}); reconnect"
    log.info("relayed connection to %s ended (code %s): closing the client's with %d", address, code, out)
    with contextlib.suppress(Exception):
        await client.close(code=out, reason=_close_reason(reason))
