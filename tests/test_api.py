"""The HTTP and WebSocket surface: discovery, listing, events, mounting, and client parity."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from actorq import ActorContext, NotFound, actor, queue, setup
from actorq.client import create_client, create_sync_client
from actorq.results import SendResult
from actorq.server.app import ROUTES
from tests.conftest import ServerProcess


async def run(c: ActorContext) -> None:
    async for m in c.queue.iter("jobs", completable=True):
        c.broadcast("got", m.body)
        await m.complete({"n": m.body["n"] * 2})


async def shout(c: ActorContext, text: str) -> str:
    for i in range(3):
        c.broadcast("tick", {"i": i, "text": text})
        await asyncio.sleep(0)
    return text.upper()


registry = setup(
    use={
        "api": actor(
            queues={"jobs": queue(dict, dict), "idle": queue(Any)}, run=run, actions={"shout": shout}
        ),
        "other": actor(queues={"q": queue(Any)}),
    }
)


def sends_total(metrics: str) -> float:
    line = next(x for x in metrics.splitlines() if x.startswith("actorq_sends_total "))
    return float(line.split()[1])


async def test_discovery_endpoints() -> None:
    async with registry.test() as client, httpx.AsyncClient(base_url=client.url) as http:
        health = (await http.get("/healthz")).json()
        assert health["status"] == "ok"
        doc = (await http.get("/openapi.json")).json()
        assert doc["openapi"].startswith("3.1")
        for route in ROUTES:
            if route.path.endswith("/connect"):
                continue
            assert route.path in doc["paths"], route.path
        jobs = doc["x-actorq-actors"]["api"]["queues"]["jobs"]
        assert jobs["body"]["type"] == "object" and jobs["max_size"] == 1000
        assert doc["x-actorq-actors"]["api"]["actions"]["shout"]["params"] == ["text"]
        assert set(doc["components"]["schemas"]) >= {"SendMessage", "ResolveActor", "CallAction", "Error"}
        before = sends_total((await http.get("/metrics")).text)
        await client.api.get_or_create(["m"]).send("jobs", {"n": 1}, wait=True, timeout=5)
        metrics = (await http.get("/metrics")).text
        assert sends_total(metrics) == before + 1, "the counter is per process: compare, don't assume"
        assert "actorq_awake_actors" in metrics


async def test_listing_and_inspection() -> None:
    async with registry.test() as client:
        for k in ("a", "b", "c"):
            await client.api.get_or_create([k]).resolve()
        await client.other.get_or_create(["z"]).resolve()
        everyone = await client.list_actors()
        assert sorted(a.key[0] for a in everyone) == ["a", "b", "c", "z"]
        apis = await client.list_actors("api")
        assert sorted(a.key[0] for a in apis) == ["a", "b", "c"]
        first = await client.list_actors(limit=2)
        rest = await client.list_actors(after=first[-1].actor_id)
        assert [a.actor_id for a in first + rest] == [a.actor_id for a in everyone], "pagination with after="
        with pytest.raises(NotFound):
            await client.list_actors("nosuch")
        h = client.other.get_or_create(["z"])
        for i in range(3):
            await h.send("q", i, delay=60 if i == 2 else None)
        async with httpx.AsyncClient(base_url=client.url) as http:
            pending = (await http.get(f"/v1/actors/{h.actor_id}/messages")).json()["messages"]
            assert [m["id"] for m in pending] == [1, 2, 3]
            assert (await http.get(f"/v1/actors/{h.actor_id}/messages?status=bogus")).status_code == 400
            info = (await http.get(f"/v1/actors/{h.actor_id}")).json()
            assert info["name"] == "other" and info["key"] == ["z"]
            r = await http.post(
                f"/v1/actors/{h.actor_id}/queues/q/messages",
                content=b'{"body": 9}',
                headers={"Idempotency-Key": "hdr-1", "Content-Type": "application/json"},
            )
            r2 = await http.post(
                f"/v1/actors/{h.actor_id}/queues/q/messages",
                content=b'{"body": 10}',
                headers={"Idempotency-Key": "hdr-1", "Content-Type": "application/json"},
            )
            assert r.status_code == 201 and r2.status_code == 200 and r.json()["id"] == r2.json()["id"] == 4
        [q] = await h.queues()
        assert (q.pending, q.delayed) == (3, 1)


async def test_websocket_actions_events_and_bad_frames() -> None:
    async with registry.test() as client:
        h = client.api.get_or_create(["ws"])
        c1 = await h.connect()
        c2 = await h.connect()
        try:
            assert await c1.shout("hi") == "HI"
            for conn in (c1, c2):
                got = [await conn.next_event(5) for _ in range(3)]
                assert [(e.name, e.data["i"]) for e in got] == [("tick", 0), ("tick", 1), ("tick", 2)]
            seen: list[Any] = []
            c2.on("got", seen.append)
            r = await c1.send("jobs", {"n": 21}, wait=True, timeout=5)
            assert r["status"] == "completed" and r["response"] == {"n": 42}
            assert (await c2.next_event(5)).data == {"n": 21}
            assert seen == [{"n": 21}]
            with pytest.raises(NotFound):
                await c1.action("nosuch")
            ws = c1._ws
            assert ws is not None
            await ws.send_str("{broken")
            await ws.send_str(json.dumps({"type": "mystery", "id": 99}))
            assert await c1.shout("still") == "STILL", "the connection survives bad frames"
        finally:
            await c1.close()
            await c2.close()


async def test_mountable_in_another_app(tmp_path: Path) -> None:
    inner = registry.app(storage=tmp_path)
    outer = Starlette(routes=[Mount("/queues", app=inner)])
    transport = httpx.ASGITransport(app=outer)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        r = await http.post("/queues/v1/actors", json={"name": "other", "key": ["m"]})
        assert r.status_code == 201
        actor_id = r.json()["actor_id"]
        r = await http.post(f"/queues/v1/actors/{actor_id}/queues/q/messages", json={"body": "hello"})
        assert r.status_code == 201 and r.json()["id"] == 1
        assert (await http.get("/queues/healthz")).json()["status"] == "ok"
    await inner.state.runtime.stop()


async def test_async_and_sync_clients_agree() -> None:
    async with registry.test() as client:
        sync = create_sync_client(client.url)

        def sync_flow() -> list[Any]:
            h = sync.api.get_or_create(["parity"])
            out: list[Any] = [h.send("jobs", {"n": 2}, wait=True, timeout=5).response]
            out.append(h.shout("x"))
            out.append(h.action("shout", "y"))
            receipt = h.send("idle", 1)
            out.append(h.result(receipt.id).status)
            out.append(sorted((q.queue, q.pending, q.completed) for q in h.queues()))
            out.append(sync.api.get_for_id(h.actor_id or "").resolve() == h.actor_id)
            out.append(h.dead_letters())
            return out

        async def async_flow() -> list[Any]:
            h = client.api.get_or_create(["parity-async"])
            out: list[Any] = [(await h.send("jobs", {"n": 2}, wait=True, timeout=5)).response]
            out.append(await h.shout("x"))
            out.append(await h.action("shout", "y"))
            receipt = await h.send("idle", 1)
            out.append((await h.result(receipt.id)).status)
            out.append(sorted((q.queue, q.pending, q.completed) for q in await h.queues()))
            out.append(await client.api.get_for_id(h.actor_id or "").resolve() == h.actor_id)
            out.append(await h.dead_letters())
            return out

        assert await asyncio.to_thread(sync_flow) == await async_flow()
        sync.close()


def test_client_retries_through_a_restart(server_factory: type[ServerProcess], data_dir: Path) -> None:
    server = server_factory("tests.test_api:registry", data_dir).start()
    port = server.port
    with create_sync_client(server.url) as client:
        h = client.other.get_or_create(["retry"])
        h.resolve()
        server.terminate()
        out: list[Any] = []

        def later() -> None:
            out.append(h.send("q", "through the outage", idempotency_key="once"))

        t = threading.Thread(target=later)
        t.start()
        server = server_factory("tests.test_api:registry", data_dir, port=port).start()
        t.join(40)
        assert out and out[0].id == 1
        again = h.send("q", "through the outage", idempotency_key="once")
        assert again.id == 1 and again.duplicate
        [q] = h.queues()
        assert q.pending == 1, "exactly one message stored"
    server.terminate()


async def test_async_client_reuses_its_connection() -> None:
    async with registry.test() as client:
        h = client.other.get_or_create(["conn"])
        for i in range(20):
            await h.send("q", i)
        session = client._session
        assert session is not None
        connector = session.connector
        assert connector is not None
        # one keep-alive connection carried all 21 requests
        assert sum(len(v) for v in connector._conns.values()) == 1  # type: ignore[attr-defined]


def test_result_types_are_plain() -> None:
    r = SendResult(id=1, status="completed", response={"a": 1})
    assert r.ok and r.response == {"a": 1}


async def test_create_client_rejects_bad_urls() -> None:
    with pytest.raises(ValueError):
        create_client("localhost:6420")
