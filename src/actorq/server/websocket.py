"""WebSocket connections to one actor: low-latency actions and sends, and its event stream.

Frames are JSON objects. Client → server: ``{"type": "action", "id", "name", "args"}`` and
``{"type": "send", "id", "queue", "body", "wait", "timeout"}``. Server → client:
``{"type": "init", "actor_id"}``, ``{"type": "result", "id", "result"}``,
``{"type": "error", "id", "error": {...}}`` and ``{"type": "event", "name", "data"}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from pydantic_core import to_jsonable_python
from starlette.websockets import WebSocket, WebSocketDisconnect

from actorq._typing import decode_bytes, encode_bytes
from actorq.core.runtime import Runtime
from actorq.errors import ActorqError, BadRequest
from actorq.server import metrics
from actorq.server.responses import error_response


def _dumps(obj: Any) -> str:
    try:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError):
        return json.dumps(to_jsonable_python(obj), separators=(",", ":"), ensure_ascii=False)


async def _handle(rt: Runtime, actor_id: str, frame: Any) -> Any:
    if not isinstance(frame, dict):
        raise BadRequest("a frame is a JSON object")
    kind = frame.get("type")
    if kind == "action":
        args = frame.get("args", [])
        kwargs = frame.get("kwargs") or {}
        name = frame.get("name")
        if not isinstance(args, list) or not isinstance(name, str) or not isinstance(kwargs, dict):
            raise BadRequest(
                "an action frame needs 'name' (string), 'args' (list), optional 'kwargs' (object)"
            )
        metrics.ACTIONS.inc()
        result = await rt.call_action(actor_id, name, decode_bytes(args), decode_bytes(kwargs) or None)
        return encode_bytes(result)
    if kind == "send":
        if not isinstance(frame.get("queue"), str):
            raise BadRequest("a send frame needs 'queue' (string)")
        timeout = frame.get("timeout")
        if timeout is not None and not isinstance(timeout, (int, float)):
            raise BadRequest("timeout must be a number")
        key = frame.get("idempotency_key")
        if frame.get("wait"):
            r = await rt.send_and_wait(
                actor_id, frame["queue"], frame.get("body"), timeout=timeout, idempotency_key=key
            )
            return {
                "id": r.id,
                "status": r.status,
                "response": r.response,
                "error": r.error,
                "attempt": r.attempt,
            }
        receipt = await rt.send(actor_id, frame["queue"], frame.get("body"), idempotency_key=key)
        return {"id": receipt.id, "status": "accepted", "duplicate": receipt.duplicate}
    raise BadRequest(f"unknown frame type {kind!r}")


async def connect_endpoint(ws: WebSocket) -> None:
    rt: Runtime = ws.app.state.runtime
    actor_id = ws.path_params["actor_id"]
    try:
        await rt.actor_info(actor_id)
    except ActorqError as exc:
        if "websocket.http.response" in ws.scope.get("extensions", {}):
            await ws.send_denial_response(error_response(exc))  # a real 404 at the handshake
        else:
            await ws.close(code=4404, reason=exc.message[:120])
        return
    await ws.accept()
    sub = rt.subscribe(actor_id)
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
            await send_text(_dumps({"type": "event", "name": item[0], "data": item[1]}))

    async def answer(frame: Any) -> None:
        fid = frame.get("id") if isinstance(frame, dict) else None
        try:
            result = await _handle(rt, actor_id, frame)
            text = _dumps({"type": "result", "id": fid, "result": result})
        except ActorqError as exc:
            text = _dumps({"type": "error", "id": fid, "error": exc.to_dict()})
        with contextlib.suppress(Exception):
            await send_text(text)

    tasks: set[asyncio.Task[None]] = set()
    pump = asyncio.create_task(pump_events())
    try:
        await send_text(_dumps({"type": "init", "actor_id": actor_id}))
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                break
            # a binary frame is read as JSON bytes too: bad bytes get an error frame, not a dropped socket
            raw: str | bytes = (
                message["text"] if message.get("text") is not None else message.get("bytes", b"")
            )
            try:
                frame = json.loads(raw)
            except (ValueError, RecursionError) as exc:
                await send_text(
                    _dumps(
                        {"type": "error", "id": None, "error": BadRequest(f"malformed JSON: {exc}").to_dict()}
                    )
                )
                continue
            task = asyncio.create_task(answer(frame))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        pump.cancel()
        for t in tasks:
            t.cancel()
        rt.unsubscribe(actor_id, sub)
