"""The WebSocket surface (``/v1/actors/{id}/connect``): actions and sends over a socket, events
broadcast to every connection in order, error frames for bad frames (the socket stays usable),
refused handshakes (unknown actor, missing token). Against a real uvicorn server; the same across
several nodes is in tests/cluster/test_cluster_ws.py."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import httpx
import pytest

from actorq import NotFound, Unauthorized, ValidationError
from actorq.client import AsyncClient, create_client
from tests.apps.api_app import next_named, queues, registry
from tests.test_bad_input import LONE, MAX_WAIT, TOKEN, names_field, snapshot


@pytest.fixture
async def client() -> AsyncIterator[AsyncClient]:
    async with registry.test(sweep_interval=0.05, max_wait=MAX_WAIT) as c:
        yield c


@pytest.fixture
async def http(client: AsyncClient) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=client.url, timeout=30) as h:
        yield h


async def test_actions_over_a_websocket(client: AsyncClient) -> None:
    h = client.api.get_or_create(["ws-actions"])
    async with await h.connect() as conn:
        assert conn.actor_id == h.actor_id
        assert await conn.add(2) == 2
        assert await conn.action("add", 3) == 5
        results = await asyncio.gather(*(conn.add(1) for _ in range(20)))  # concurrent on one socket
        assert sorted(results) == list(range(6, 26))
        with pytest.raises(NotFound):
            await conn.nosuch()
        with pytest.raises(ValidationError):
            await conn.add(1, 2)
        assert await conn.shout("still open") == "STILL OPEN"
    assert conn.closed
    assert await h.add(0) == 25, "state changed over the socket is the actor's state"


async def test_broadcast_events_arrive_in_order_at_two_clients(client: AsyncClient) -> None:
    h = client.api.get_or_create(["ws-events"])
    c1 = await h.connect()
    c2 = await h.connect()
    try:
        n = 300
        # a burst from an action over HTTP, interleaved with another action over a socket
        burst = asyncio.create_task(h.burst(n))
        assert await c2.shout("meanwhile") == "MEANWHILE"
        assert await burst == n
        for conn in (c1, c2):
            got = [(await next_named(conn, "seq"))["i"] for _ in range(n)]
            assert got == list(range(n)), "every event, once, in the order broadcast"
        # events from the run loop too, and callbacks registered with on()
        seen: list[Any] = []
        c1.on("got", seen.append)
        for k in range(3):
            await h.send("jobs", {"n": k}, wait=True, timeout=10)
        assert [await next_named(c2, "got") for _ in range(3)] == [{"n": 0}, {"n": 1}, {"n": 2}]
        assert [await next_named(c1, "got") for _ in range(3)] == [{"n": 0}, {"n": 1}, {"n": 2}]
        assert seen == [{"n": 0}, {"n": 1}, {"n": 2}]
    finally:
        await c1.close()
        await c2.close()


async def test_send_over_a_websocket(client: AsyncClient, http: httpx.AsyncClient) -> None:
    h = client.api.get_or_create(["ws-send"])
    async with await h.connect() as conn:
        r = await conn.send("jobs", {"n": 21}, wait=True, timeout=10)
        assert (r["id"], r["status"], r["response"], r["error"]) == (1, "completed", {"doubled": 42}, None)
        plain = await conn.send("idle", "note")
        assert plain == {"id": 2, "status": "accepted", "duplicate": False}, "ids are per actor"
        with pytest.raises(NotFound):
            await conn.send("nosuch", 1)
        with pytest.raises(ValidationError):
            await conn.send("jobs", {"n": "many"})
    assert (await queues(http, h.actor_id or ""))["idle"]["pending"] == 1
    assert (await h.result(1)).response == {"doubled": 42}


async def test_bad_frames_get_error_frames_and_the_socket_stays_usable(client: AsyncClient) -> None:
    h = client.api.get_or_create(["ws-bad"])
    aid = await h.resolve()
    url = client.url.replace("http", "ws", 1) + f"/v1/actors/{aid}/connect"
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        assert await ws.receive_json(timeout=5) == {"type": "init", "actor_id": aid}

        async def answer(frame: str | bytes) -> dict[str, Any]:
            if isinstance(frame, bytes):
                await ws.send_bytes(frame)
            else:
                await ws.send_str(frame)
            out: dict[str, Any] = await ws.receive_json(timeout=5)
            return out

        cases: list[tuple[str | bytes, Any, str]] = [
            ("{broken", None, "bad_request"),
            ("[1, 2]", None, "bad_request"),
            ('"just a string"', None, "bad_request"),
            (b"\xff\xfe not utf-8", None, "bad_request"),
            (json.dumps({"type": "mystery", "id": 7}), 7, "bad_request"),
            (json.dumps({"id": 8}), 8, "bad_request"),
            (json.dumps({"type": "action", "id": 9}), 9, "bad_request"),
            (json.dumps({"type": "action", "id": 10, "name": "add", "args": "1"}), 10, "bad_request"),
            (json.dumps({"type": "send", "id": 11, "body": 1}), 11, "bad_request"),
            (json.dumps({"type": "send", "id": 12, "queue": "jobs", "timeout": "soon"}), 12, "bad_request"),
            (json.dumps({"type": "action", "id": 13, "name": "nosuch", "args": []}), 13, "not_found"),
            (json.dumps({"type": "action", "id": 14, "name": "add", "args": [1, 2]}), 14, "validation_error"),
            (
                json.dumps({"type": "send", "id": 15, "queue": "jobs", "body": {"n": "x"}}),
                15,
                "validation_error",
            ),
            (json.dumps({"type": "send", "id": 16, "queue": "nosuch", "body": 1}), 16, "not_found"),
        ]
        for frame, fid, code in cases:
            got = await answer(frame)
            assert got["type"] == "error" and got["id"] == fid, (frame, got)
            assert got["error"]["code"] == code and got["error"]["message"], (frame, got)
        ok = await answer(json.dumps({"type": "action", "id": "any-json-id", "name": "add", "args": [4]}))
        assert ok == {"type": "result", "id": "any-json-id", "result": 4}
        ok = await answer(b'{"type": "action", "id": 17, "name": "add", "args": [1]}')
        assert ok == {"type": "result", "id": 17, "result": 5}, "a binary frame holding JSON works too"
        assert not ws.closed
    assert await h.add(0) == 5, "the failed frames changed nothing"


async def test_websocket_to_an_unknown_actor_is_refused(client: AsyncClient) -> None:
    url = client.url.replace("http", "ws", 1) + "/v1/actors/ghost/connect"
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(url)
    assert refused.value.status == 404
    with pytest.raises(NotFound):
        await client.api.get_for_id("ghost").connect()


async def test_bad_values_in_websocket_frames_are_error_frames(client: AsyncClient) -> None:
    h = client.api.get_or_create(["ws-fields"])
    aid = await h.resolve()
    url = client.url.replace("http", "ws", 1) + f"/v1/actors/{aid}/connect"
    cases: list[tuple[str, list[Any]]] = [
        (f'{{"type": "send", "id": 1, "queue": "idle", "body": "{LONE}"}}', ["body"]),
        (
            f'{{"type": "send", "id": 2, "queue": "idle", "body": 1, "idempotency_key": "{LONE}"}}',
            ["idempotency_key"],
        ),
        (f'{{"type": "action", "id": 3, "name": "shout", "args": ["{LONE}"]}}', ["args", 0]),
        (
            '{"type": "send", "id": 4, "queue": "jobs", "body": {"n": 1}, "wait": true, "timeout": NaN}',
            ["timeout"],
        ),
        (
            '{"type": "send", "id": 5, "queue": "jobs", "body": {"n": 1}, "wait": true, "timeout": -1}',
            ["timeout"],
        ),
        (
            '{"type": "send", "id": 6, "queue": "jobs", "body": {"n": 1}, "wait": true, "timeout": true}',
            ["timeout"],
        ),
        (
            json.dumps(
                {
                    "type": "send",
                    "id": 7,
                    "queue": "jobs",
                    "body": {"n": 1},
                    "wait": True,
                    "timeout": MAX_WAIT + 1,
                }
            ),
            ["timeout"],
        ),
        ('{"type": "send", "id": 8, "queue": "jobs", "body": {"n": 1}, "wait": "yes"}', ["wait"]),
        ('{"type": "action", "id": 9, "name": "add", "args": [Infinity]}', ["args", 0]),
    ]
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        assert (await ws.receive_json(timeout=5))["type"] == "init"
        for frame, loc in cases:
            await ws.send_str(frame)
            got = await ws.receive_json(timeout=5)
            assert got["type"] == "error" and got["error"]["code"] == "bad_request", (frame, got)
            names_field(got["error"], *loc)
        assert not ws.closed
    [jobs, idle] = await h.queues()
    assert (jobs.pending, jobs.completed, idle.pending) == (0, 0, 0), "no frame stored anything"
    assert await h.add(0) == 0, "no action ran"


async def test_websocket_needs_the_token() -> None:
    async with registry.test(token=TOKEN) as client:
        h = client.inbox.get_or_create(["main"])
        aid = await h.resolve()
        before = await snapshot(client)
        # WebSocket: refused without the token, accepted with the header or ?token=
        ws_url = client.url.replace("http", "ws", 1) + f"/v1/actors/{aid}/connect"
        async with aiohttp.ClientSession() as session:
            for url, headers in [
                (ws_url, {}),
                (ws_url + "?token=wrong", {}),
                (ws_url, {"Authorization": "Bearer wrong"}),
            ]:
                with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                    await session.ws_connect(url, headers=headers)
                assert refused.value.status == 401
            for url, headers in [
                (ws_url + f"?token={TOKEN}", {}),
                (ws_url, {"Authorization": f"Bearer {TOKEN}"}),
            ]:
                async with session.ws_connect(url, headers=headers) as ws:
                    assert (await ws.receive_json(timeout=5)) == {"type": "init", "actor_id": aid}
        async with create_client(client.url) as anonymous:
            with pytest.raises(Unauthorized):
                await anonymous.inbox.get_for_id(aid).connect()
        async with create_client(client.url, token=TOKEN) as good:
            conn = await good.inbox.get_for_id(aid).connect()
            assert await conn.two(4, "2") == "42"
            await conn.close()
        assert await snapshot(client) == before
