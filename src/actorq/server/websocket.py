"""WebSocket connections to one actor: low-latency actions and sends, and its event stream.

Frames are JSON objects, the WebSocket frames of :mod:`actorq.protocol`. Client → server:
``action`` and ``send`` (each with an ``id``); server → client: ``init``, then ``result`` and
``error`` (echoing a request's ``id``) and ``event``.

Several nodes on one database: events happen only on the node that owns the actor, so a
connection reaching another node is relayed to the owner, as a gateway would (the core's placement
decides where the actor runs; ``server/forward.py`` relays); a connection served here claims the
actor (it then stays here while someone listens) and is closed with 1012 if the actor leaves this
node (lease lost). An owner that cannot be reached at
connect time gets the handshake denied with 503 (``Retry-After``); a connect already forwarded once
is never relayed again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from opentelemetry import context as otel_context
from pydantic_core import to_jsonable_python
from starlette.websockets import WebSocket, WebSocketDisconnect

from actorq import protocol
from actorq._typing import decode_bytes
from actorq.core import Runtime, Subscriber, remote_context
from actorq.errors import ActorqError, BadRequest, NotFound
from actorq.server import wire
from actorq.server.forward import FORWARDED_HEADER, WS_SERVICE_RESTART, WS_TRY_AGAIN_LATER, chosen_subprotocol
from actorq.server.responses import error_response

log = logging.getLogger("actorq.server")


def _dumps(obj: Any) -> str:
    try:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError):
        return json.dumps(to_jsonable_python(obj), separators=(",", ":"), ensure_ascii=False)


async def _handle(rt: Runtime, actor_id: str, data: Any) -> protocol.ActionResult:
    """A frame's ``result`` (and for an action the name of its result's type, ``result_type``)."""
    frame = wire.parse_frame(data, max_wait=rt.config.max_wait)
    # the frame's own trace context (the client's span) is the parent of what it does
    ctx = remote_context(frame.traceparent, frame.tracestate)
    if ctx is None:
        return await _run_frame(rt, actor_id, frame)
    token = otel_context.attach(ctx)
    try:
        return await _run_frame(rt, actor_id, frame)
    finally:
        otel_context.detach(token)


async def _run_frame(
    rt: Runtime, actor_id: str, frame: protocol.ActionFrame | protocol.SendFrame
) -> protocol.ActionResult:
    if isinstance(frame, protocol.ActionFrame):
        result = await rt.call_action(
            actor_id, frame.name, decode_bytes(frame.args), decode_bytes(frame.kwargs or {}) or None
        )
        return protocol.action_result(result)
    if frame.wait:
        r = await rt.send_and_wait(
            actor_id, frame.queue, frame.body, timeout=frame.timeout, idempotency_key=frame.idempotency_key
        )
        answer = protocol.message_result(r)
        answer["error"] = r.error  # a frame always carries it
        return protocol.ActionResult(result=answer)
    receipt = await rt.send(
        actor_id, frame.queue, frame.body, timeout=frame.timeout, idempotency_key=frame.idempotency_key
    )
    return protocol.ActionResult(result=protocol.accepted(receipt))


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
    try:
        # served here, or relayed to the owning node (a connect forwarded once is never relayed)
        sub = await rt.connect(actor_id, ws, forward=FORWARDED_HEADER not in ws.headers)
    except ActorqError as exc:
        await _deny(ws, exc)
        return
    if sub is not None:
        await _serve(ws, rt, actor_id, sub)


async def _serve(ws: WebSocket, rt: Runtime, actor_id: str, sub: Subscriber) -> None:
    """Serve the connection on this node. When the actor is one of several nodes' and it stops
    here (``sub.actor_gone``: the lease moved to another node) the client is closed with 1012."""
    try:
        await ws.accept(subprotocol=chosen_subprotocol(ws))
    except BaseException:
        sub.detach()
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

    async def watch_owner(gone: asyncio.Event) -> None:
        # not for idle sleep (a listener keeps the actor awake): its lease was lost or taken over
        # (it runs on another node now), or this node is shutting down
        await gone.wait()
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
            text = _dumps(protocol.ResultFrame(type="result", id=fid, **result))
        except ActorqError as exc:
            text = _dumps(protocol.ErrorFrame(type="error", id=fid, error=protocol.error_body(exc)))
        with contextlib.suppress(Exception):
            await send_text(text)

    tasks: set[asyncio.Task[None]] = set()
    pump = asyncio.create_task(pump_events())
    watcher = asyncio.create_task(watch_owner(sub.actor_gone)) if sub.actor_gone is not None else None
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
        sub.detach()
