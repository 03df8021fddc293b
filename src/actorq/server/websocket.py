"""WebSocket connections to one actor: low-latency actions and sends, and its event stream.

Frames are JSON objects, the WebSocket frames of :mod:`actorq.protocol`. Client → server:
``action`` and ``send`` (each with an ``id``); server → client: ``init``, then ``result`` and
``error`` (echoing a request's ``id``) and ``event``.

Several nodes on one database: events happen only on the node that owns the actor, so a
connection reaching another node is relayed to the owner (``server/forward.py``), as a gateway
would; a connection served here claims the actor (it then stays here while someone listens) and is
closed with 1012 if the actor leaves this node (lease lost). An owner that cannot be reached at
connect time gets the handshake denied with 503 (``Retry-After``); a connect already forwarded once
is never relayed again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any

from pydantic_core import to_jsonable_python
from starlette.websockets import WebSocket, WebSocketDisconnect

from actorq import protocol
from actorq._typing import decode_bytes, encode_bytes
from actorq.core.cluster import NotOwner
from actorq.core.instance import ActorInstance
from actorq.core.runtime import Runtime, Subscriber
from actorq.errors import ActorqError, BadRequest, NotFound, Unavailable
from actorq.server import metrics, wire
from actorq.server.forward import (
    FORWARDED_HEADER,
    WS_SERVICE_RESTART,
    WS_TRY_AGAIN_LATER,
    HttpForwarder,
    relay_websocket,
)
from actorq.server.responses import error_response

log = logging.getLogger("actorq.server")

_LOCATE_FOR = 1.5  # seconds a connect waits for an actor that is being claimed right now

SUBPROTOCOL = "actorq"
TOKEN_SUBPROTOCOL = "actorq.token."  # + the token: how a browser authenticates a WebSocket


def chosen_subprotocol(ws: WebSocket) -> str | None:
    """The subprotocol to accept with: ``actorq`` when offered, else the token subprotocol a
    client offered alone (a browser drops a connection whose answer names none of its offers)."""
    offered: list[str] = list(ws.scope.get("subprotocols", ()))
    if SUBPROTOCOL in offered:
        return SUBPROTOCOL
    return next((p for p in offered if p.startswith(TOKEN_SUBPROTOCOL)), None)


def _dumps(obj: Any) -> str:
    try:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError):
        return json.dumps(to_jsonable_python(obj), separators=(",", ":"), ensure_ascii=False)


async def _handle(rt: Runtime, actor_id: str, data: Any) -> Any:
    frame = wire.parse_frame(data, max_wait=rt.config.max_wait)
    if isinstance(frame, protocol.ActionFrame):
        metrics.ACTIONS.inc()
        result = await rt.call_action(
            actor_id, frame.name, decode_bytes(frame.args), decode_bytes(frame.kwargs or {}) or None
        )
        return encode_bytes(result)
    if frame.wait:
        r = await rt.send_and_wait(
            actor_id, frame.queue, frame.body, timeout=frame.timeout, idempotency_key=frame.idempotency_key
        )
        answer = protocol.message_result(r)
        answer["error"] = r.error  # a frame always carries it
        return answer
    receipt = await rt.send(
        actor_id, frame.queue, frame.body, timeout=frame.timeout, idempotency_key=frame.idempotency_key
    )
    return protocol.accepted(receipt)


async def _deny(ws: WebSocket, exc: ActorqError) -> None:
    """Refuse the handshake: a real HTTP answer (404, 503 with Retry-After) where the server
    supports it, else a close before accepting (4404 unknown actor, 1013 try again later)."""
    if "websocket.http.response" in ws.scope.get("extensions", {}):
        await ws.send_denial_response(error_response(exc))
    else:
        code = 4404 if isinstance(exc, NotFound) else WS_TRY_AGAIN_LATER
        await ws.close(code=code, reason=exc.message[:120])


async def connect_endpoint(ws: WebSocket) -> None:
    rt: Runtime = ws.app.state.runtime
    try:
        actor_id = wire.actor_id(ws.path_params["actor_id"])
        await rt.actor_info(actor_id)
    except ActorqError as exc:
        await _deny(ws, exc)  # a real 404 at the handshake
        return
    if rt.cluster is None:
        await _serve(ws, rt, actor_id, rt.subscribe(actor_id), None)
        return
    await _connect_in_cluster(ws, rt, actor_id, forwarded=FORWARDED_HEADER in ws.headers)


async def _connect_in_cluster(ws: WebSocket, rt: Runtime, actor_id: str, *, forwarded: bool) -> None:
    """Serve the connection where the actor runs: claim the actor here (as an action would) or,
    if another live node owns it, relay to that node. A forwarded connect is never relayed."""
    cluster = rt.cluster
    assert cluster is not None
    forwarder = rt.forwarder if isinstance(rt.forwarder, HttpForwarder) else None
    deadline = time.monotonic() + _LOCATE_FOR
    retried = False
    while True:
        # subscribed before waking: an actor with a listener does not go to sleep
        sub = rt.subscribe(actor_id)
        try:
            elsewhere = None if rt.is_awake(actor_id) else cluster.owner_elsewhere(actor_id)
            if elsewhere is not None:
                raise elsewhere
            inst = await rt.ensure_awake(actor_id)
        except NotOwner as exc:
            rt.unsubscribe(actor_id, sub)
            if forwarded or forwarder is None:
                await _deny(
                    ws, Unavailable(f"this node does not own actor {actor_id}: {exc}", retry_after=0.5)
                )
                return
            if exc.address is None:  # being claimed right now (or an owner without an address)
                if time.monotonic() < deadline:
                    await asyncio.sleep(0.1)
                    continue
                await _deny(ws, Unavailable(str(exc), retry_after=0.5))
                return
            heartbeat = min(15.0, max(0.5, cluster.ttl / 4))
            try:
                upstream, init = await forwarder.open_websocket(
                    exc.address, actor_id, heartbeat=heartbeat, open_timeout=max(2.0, cluster.ttl / 2)
                )
            except Unavailable as err:
                cluster.forget_owner(actor_id)  # ask the database again next time
                if not retried and await rt.owner_changed(actor_id, exc.owner):
                    retried = True  # it let the actor go meanwhile (shut down): take it here
                    continue
                await _deny(ws, err)
                return
            try:
                await relay_websocket(
                    ws, upstream, init, address=exc.address, subprotocol=chosen_subprotocol(ws)
                )
            finally:
                cluster.forget_owner(actor_id)  # a dropped owner: look it up afresh on reconnect
            return
        except ActorqError as exc:
            rt.unsubscribe(actor_id, sub)
            await _deny(ws, exc)
            return
        except BaseException:
            rt.unsubscribe(actor_id, sub)
            raise
        await _serve(ws, rt, actor_id, sub, inst)
        return


async def _serve(
    ws: WebSocket, rt: Runtime, actor_id: str, sub: Subscriber, inst: ActorInstance | None
) -> None:
    """Serve the connection on this node. ``inst``: the actor's instance here when this node is one
    of several; if it stops (the lease moved to another node) the client is closed with 1012."""
    try:
        await ws.accept(subprotocol=chosen_subprotocol(ws))
    except BaseException:
        rt.unsubscribe(actor_id, sub)
        raise
    send_lock = asyncio.Lock()

    async def send_text(text: str) -> None:
        async with send_lock:
            await ws.send_text(text)

    async def pump_events() -> None:
        while True:
            item = await sub.queue.get()
            if item is None or sub.overflowed:
                reason = "server shutting down" if item is None else "event buffer overflow"
                await ws.close(code=1012 if item is None else 1008, reason=reason)
                return
            await send_text(_dumps(protocol.EventFrame(type="event", name=item[0], data=item[1])))

    async def watch_owner(inst: ActorInstance) -> None:
        # not for idle sleep (a listener keeps the actor awake): its lease was lost or taken over
        # (it runs on another node now), or this node is shutting down
        await inst.closed.wait()
        pump.cancel()
        log.info("actor %s stopped on this node; closing its connection with 1012", actor_id)
        async with send_lock:
            with contextlib.suppress(Exception):
                await ws.close(
                    code=WS_SERVICE_RESTART, reason="the actor moved off this node (lease lost); reconnect"
                )

    async def answer(frame: Any) -> None:
        fid = frame.get("id") if isinstance(frame, dict) else None
        try:
            result = await _handle(rt, actor_id, frame)
            text = _dumps(protocol.ResultFrame(type="result", id=fid, result=result))
        except ActorqError as exc:
            text = _dumps(protocol.ErrorFrame(type="error", id=fid, error=protocol.error_body(exc)))
        with contextlib.suppress(Exception):
            await send_text(text)

    tasks: set[asyncio.Task[None]] = set()
    pump = asyncio.create_task(pump_events())
    watcher = asyncio.create_task(watch_owner(inst)) if inst is not None else None
    try:
        await send_text(_dumps(protocol.InitFrame(type="init", actor_id=actor_id)))
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                break
            # a binary frame is read as JSON bytes too: bad bytes get an error frame, not a dropped socket
            raw: str | bytes = (
                message["text"] if message.get("text") is not None else message.get("bytes", b"")
            )
            try:
                frame = wire.parse_json(raw, "frame")
            except BadRequest as exc:
                await send_text(
                    _dumps(protocol.ErrorFrame(type="error", id=None, error=protocol.error_body(exc)))
                )
                continue
            task = asyncio.create_task(answer(frame))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        pump.cancel()
        if watcher is not None:
            watcher.cancel()
        for t in tasks:
            t.cancel()
        rt.unsubscribe(actor_id, sub)
