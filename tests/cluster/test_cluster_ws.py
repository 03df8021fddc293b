"""WebSocket connections on several server nodes sharing one PostgreSQL database.

Real ``actorq serve`` processes on loopback ports, one fresh schema per test, a 2 s lease TTL
(the harness in tests/cluster/conftest.py). The ``emitter`` actor (tests/apps/cluster_ws_app.py) broadcasts a
``processed`` event with its node's pid for every message, and sleeps after 0.5 s without
listeners, so a test sees which node ran what and whether a listener kept it in place.

A connection reaching a node that does not own the actor is relayed to the owner; when the owner's
side drops the client's socket is closed with 1012; an owner that cannot be reached at connect
time is a 503 at the handshake; a connect already forwarded once is never relayed again.
"""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Any

import aiohttp
import httpx
import pytest

from actorq.client import create_client
from actorq.client.async_client import ActorConnection, AsyncClient
from actorq.errors import NotFound, Unavailable
from actorq.results import Event
from actorq.server.forward import FORWARDED_HEADER
from tests.cluster.conftest import TTL, Cluster
from tests.conftest import ServerProcess

TARGET = "tests.apps.cluster_ws_app:registry"


def pid(node: ServerProcess) -> int:
    assert node.proc is not None
    return node.proc.pid


def awake_on(node: ServerProcess, actor_id: str, token: str | None = None) -> bool:
    headers = {"authorization": f"Bearer {token}"} if token else None
    r = httpx.get(f"{node.url}/v1/actors/{actor_id}", headers=headers, timeout=5)
    assert r.status_code == 200, r.text
    return bool(r.json()["awake"])


def ws_url(node: ServerProcess, actor_id: str) -> str:
    return node.url.replace("http", "ws", 1) + f"/v1/actors/{actor_id}/connect"


async def events(conn: ActorConnection, n: int, timeout: float = 10.0) -> list[Event]:
    return [await conn.next_event(timeout) for _ in range(n)]


def processed(evs: list[Event]) -> list[tuple[str, Any, Any]]:
    return [(e.name, e.data.get("n"), e.data.get("pid")) for e in evs]


async def connect_when_possible(client: AsyncClient, key: str, timeout: float) -> ActorConnection:
    """Connect, retrying the 503s a node answers while the actor's owner is unreachable."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await client.emitter.get_or_create([key]).connect()
        except Unavailable:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


async def raw_ws(session: aiohttp.ClientSession, url: str, **kw: Any) -> aiohttp.ClientWebSocketResponse:
    ws = await session.ws_connect(url, **kw)
    first = await ws.receive(timeout=10)
    assert first.type == aiohttp.WSMsgType.TEXT, (first.type, ws.close_code)
    assert first.json()["type"] == "init"
    return ws


# -- (a) a client on a non-owner node sees the owner's events and calls actions through it -----
def test_ws_on_non_owner_node_gets_events_and_actions(cluster: Cluster) -> None:
    owner, relay, third = cluster.start(TARGET, 3)

    async def scenario() -> None:
        c_owner, c_relay, c_third = (create_client(n.url) for n in (owner, relay, third))
        try:
            # a listener on a node claims the actor there (like an action) and keeps it awake
            direct = await c_owner.emitter.get_or_create(["a"]).connect()
            actor_id = direct.actor_id
            assert actor_id is not None
            assert await direct.where() == pid(owner)
            relayed = await c_relay.emitter.get_or_create(["a"]).connect()
            assert relayed.actor_id == actor_id, "the owner's init frame, relayed verbatim"
            assert awake_on(owner, actor_id) and not awake_on(relay, actor_id), "relayed, not claimed"
            await direct.close()
            await asyncio.sleep(1.2)  # > sleep_timeout: the relayed listener alone keeps it on the owner
            assert awake_on(owner, actor_id), "a relayed listener keeps the actor awake on its owner"

            # messages sent through a third node: processed by the owner, events reach the relay's client
            h3 = c_third.emitter.get_or_create(["a"])
            for i in range(10):
                await h3.send("tasks", {"n": i})
            got = await events(relayed, 10)
            assert processed(got) == [("processed", i, pid(owner)) for i in range(10)]

            # actions and sends over the relayed socket run on the owner; their events come back too
            assert await relayed.where() == pid(owner)
            assert await relayed.shout("hi") == "HI"
            ev = await relayed.next_event(10)
            assert (ev.name, ev.data) == ("shout", {"text": "hi", "pid": pid(owner)})
            r = await relayed.send("tasks", {"n": 10}, wait=True, timeout=10)
            assert r["status"] == "completed", r
            assert processed(await events(relayed, 1)) == [("processed", 10, pid(owner))]
            # errors come back as error frames, the socket stays open
            with pytest.raises(NotFound, match="nope"):
                await relayed.action("nope")
            assert await relayed.where() == pid(owner)
            assert not awake_on(relay, actor_id) and not awake_on(third, actor_id)
            await relayed.close()
        finally:
            for c in (c_owner, c_relay, c_third):
                await c.close()

    asyncio.run(scenario())


# -- (b) kill -9 of the owner: the relayed socket closes with 1012; reconnecting works ---------
def test_owner_killed_closes_relayed_socket_1012_and_reconnect_works(cluster: Cluster) -> None:
    owner, relay, third = cluster.start(TARGET, 3)

    async def scenario() -> None:
        c_owner, c_relay, c_third = (create_client(n.url) for n in (owner, relay, third))
        session = aiohttp.ClientSession()
        try:
            pin = await c_owner.emitter.get_or_create(["b"]).connect()  # the actor lives on `owner`
            actor_id = pin.actor_id
            assert actor_id is not None
            assert await pin.where() == pid(owner)
            ws = await raw_ws(session, ws_url(relay, actor_id))
            # the client's view as well (not re-opening by itself: see the next test for that)
            conn = await c_relay.emitter.get_or_create(["b"]).connect(reconnect=False)
            await c_third.emitter.get_or_create(["b"]).send("tasks", {"n": 1})
            msg = await ws.receive(timeout=10)
            assert msg.json()["data"] == {"n": 1, "pid": pid(owner)}
            assert processed(await events(conn, 1)) == [("processed", 1, pid(owner))]

            await asyncio.to_thread(owner.kill9)
            t0 = time.monotonic()
            msg = await ws.receive(timeout=10)
            closed_after = time.monotonic() - t0
            assert msg.type == aiohttp.WSMsgType.CLOSE, msg
            assert ws.close_code == 1012, (ws.close_code, msg.extra)
            assert "reconnect" in (msg.extra or "")
            assert closed_after < 3.0, closed_after
            with pytest.raises(Unavailable):  # not left open but dead: the client sees it closed
                await conn.next_event(5)
            assert conn.closed

            # while the dead owner's lease is live: a 503 at the handshake (the client retries)
            t1 = time.monotonic()
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await session.ws_connect(ws_url(relay, actor_id))
            assert refused.value.status == 503
            assert time.monotonic() - t1 < TTL, "refused at once, not after a hang"

            # another node takes the actor over once the lease lapses (a listener there claims it)
            taken = await connect_when_possible(c_third, "b", timeout=TTL + 10)
            new_owner = await taken.where()
            assert new_owner == pid(third)
            # reconnecting through the same node works and is relayed to the new owner
            again = await connect_when_possible(c_relay, "b", timeout=10)
            assert again.actor_id == actor_id
            assert not awake_on(relay, actor_id)
            await c_relay.emitter.get_or_create(["b"]).send("tasks", {"n": 2})
            assert processed(await events(again, 1)) == [("processed", 2, new_owner)]
            assert await again.where() == new_owner
            for c in (again, taken, conn, pin):
                await c.close()
            await ws.close()
        finally:
            await session.close()
            for c in (c_owner, c_relay, c_third):
                await c.close()

    asyncio.run(scenario())


# -- the Python client re-opens a connection the server side ended --------------------------------
def test_connection_reopens_by_itself_after_the_owner_is_killed(cluster: Cluster) -> None:
    owner, relay, third = cluster.start(TARGET, 3)

    async def scenario() -> None:
        c_owner, c_relay, c_third = (create_client(n.url) for n in (owner, relay, third))
        try:
            pin = await c_owner.emitter.get_or_create(["r"]).connect(reconnect=False)
            assert await pin.where() == pid(owner)
            conn = await c_relay.emitter.get_or_create(["r"]).connect()  # relayed to `owner`
            await c_third.emitter.get_or_create(["r"]).send("tasks", {"n": 1})
            assert processed(await events(conn, 1)) == [("processed", 1, pid(owner))]
            await asyncio.to_thread(owner.kill9)
            # the relay closes it with 1012; the client re-opens through the same node, which is
            # refused (503) until the lease lapses, then claims the actor or relays to its new owner
            deadline = time.monotonic() + TTL + 15
            while conn.reconnects == 0 and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            assert conn.reconnects == 1 and conn.close_code == 1012 and not conn.closed
            await c_third.emitter.get_or_create(["r"]).send("tasks", {"n": 2})
            (event,) = await events(conn, 1)
            assert (event.data["n"], event.data["pid"] in (pid(relay), pid(third))) == (2, True)
            assert await conn.where() == event.data["pid"], "actions on the re-opened socket work"
            await conn.close()
            assert conn.closed
            await pin.close()
        finally:
            for c in (c_owner, c_relay, c_third):
                await c.close()

    asyncio.run(scenario())


# -- graceful shutdown of the owner: 1012 too, and the actor can be claimed at once ------------
def test_owner_shutdown_closes_relayed_socket_1012(cluster: Cluster) -> None:
    owner, relay, _third = cluster.start(TARGET, 3)

    async def scenario() -> None:
        c_owner, c_relay = create_client(owner.url), create_client(relay.url)
        session = aiohttp.ClientSession()
        try:
            pin = await c_owner.emitter.get_or_create(["s"]).connect()
            actor_id = pin.actor_id
            assert actor_id is not None
            ws = await raw_ws(session, ws_url(relay, actor_id))
            stopped = asyncio.ensure_future(asyncio.to_thread(owner.terminate))
            msg = await ws.receive(timeout=15)
            assert msg.type == aiohttp.WSMsgType.CLOSE and ws.close_code == 1012, (msg, ws.close_code)
            assert await stopped == 0
            # the leases were released at once: reconnecting claims the actor on the relay node
            again = await connect_when_possible(c_relay, "s", timeout=5)
            assert await again.where() == pid(relay)
            await c_relay.emitter.get_or_create(["s"]).send("tasks", {"n": 7})
            assert processed(await events(again, 1)) == [("processed", 7, pid(relay))]
            await again.close()
            await ws.close()
        finally:
            await session.close()
            await c_owner.close()
            await c_relay.close()

    asyncio.run(scenario())


# -- (c) a connect already forwarded once is never relayed again -------------------------------
def test_forwarded_connect_is_not_relayed_again(cluster: Cluster) -> None:
    owner, other, _third = cluster.start(TARGET, 3)

    async def scenario() -> None:
        c_owner = create_client(owner.url)
        session = aiohttp.ClientSession(headers={FORWARDED_HEADER: "1"})
        try:
            pin = await c_owner.emitter.get_or_create(["c"]).connect()
            actor_id = pin.actor_id
            assert actor_id is not None
            assert await pin.where() == pid(owner)
            # marked as forwarded, to a node that does not own the actor: refused, not relayed
            t0 = time.monotonic()
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await session.ws_connect(ws_url(other, actor_id))
            assert refused.value.status == 503
            assert time.monotonic() - t0 < 2.0
            assert not awake_on(other, actor_id), "nor claimed: the owner's lease is live"
            # marked as forwarded, to the owner: served there
            ws = await raw_ws(session, ws_url(owner, actor_id))
            await c_owner.emitter.get_or_create(["c"]).send("tasks", {"n": 3})
            msg = await ws.receive(timeout=10)
            assert msg.json() == {"type": "event", "name": "processed", "data": {"n": 3, "pid": pid(owner)}}
            await ws.close()
            await pin.close()
        finally:
            await session.close()
            await c_owner.close()

    asyncio.run(scenario())


# -- a paused owner: the relayed socket closes (missed heartbeats); when it resumes having lost the
# -- lease, the connections it served itself are closed with 1012 too ---------------------------
def test_paused_owner_closes_relayed_and_direct_sockets_1012(cluster: Cluster) -> None:
    owner, relay, third = cluster.start(TARGET, 3)
    assert owner.proc is not None

    async def scenario() -> None:
        c_owner, c_third = create_client(owner.url), create_client(third.url)
        session = aiohttp.ClientSession()
        try:
            pin = await c_owner.emitter.get_or_create(["p"]).connect()
            actor_id = pin.actor_id
            assert actor_id is not None
            assert await pin.where() == pid(owner)
            direct = await raw_ws(session, ws_url(owner, actor_id))
            relayed = await raw_ws(session, ws_url(relay, actor_id))
            owner.proc.send_signal(signal.SIGSTOP)
            try:
                t0 = time.monotonic()
                msg = await relayed.receive(timeout=10)
                assert msg.type == aiohttp.WSMsgType.CLOSE and relayed.close_code == 1012, msg
                assert time.monotonic() - t0 < TTL, "missed heartbeats noticed well within the lease"
                taken = await connect_when_possible(c_third, "p", timeout=TTL + 15)
                assert await taken.where() == pid(third)
            finally:
                owner.proc.send_signal(signal.SIGCONT)
            msg = await direct.receive(timeout=10)
            assert msg.type == aiohttp.WSMsgType.CLOSE and direct.close_code == 1012, msg
            assert "moved" in (msg.extra or "")
            await c_owner.emitter.get_or_create(["p"]).send("tasks", {"n": 5})
            assert processed(await events(taken, 1)) == [("processed", 5, pid(third))]
            for c in (taken, pin):
                await c.close()
        finally:
            await session.close()
            await c_owner.close()
            await c_third.close()

    asyncio.run(scenario())


# -- with a token: the relay authenticates to the owner with the server's token ------------------
def test_relay_with_token(cluster: Cluster) -> None:
    owner, relay = cluster.start(TARGET, 2, ACTORQ_TOKEN="s3cret")

    async def scenario() -> None:
        c_owner, c_relay = create_client(owner.url, "s3cret"), create_client(relay.url, "s3cret")
        try:
            pin = await c_owner.emitter.get_or_create(["t"]).connect()
            assert await pin.where() == pid(owner)
            relayed = await c_relay.emitter.get_or_create(["t"]).connect()
            assert not awake_on(relay, pin.actor_id or "", "s3cret")
            assert await relayed.where() == pid(owner)
            await c_relay.emitter.get_or_create(["t"]).send("tasks", {"n": 4})
            assert processed(await events(relayed, 1)) == [("processed", 4, pid(owner))]
            for c in (relayed, pin):
                await c.close()
        finally:
            await c_owner.close()
            await c_relay.close()

    asyncio.run(scenario())
