"""The clients: the async and the sync client give the same answers for the same calls, retry
through a server restart without duplicating a send, reuse one connection, and refuse a URL they
cannot use. (Their typed errors, twin by twin, are checked with every bad input in
tests/test_bad_input.py; their WebSocket side in tests/test_websocket.py.)"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from actorq.client import create_client, create_sync_client
from actorq.results import SendResult
from tests.apps.api_app import registry
from tests.conftest import ServerProcess


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
    server = server_factory("tests.apps.api_app:registry", data_dir).start()
    port = server.port
    with create_sync_client(server.url) as client:
        h = client.store.get_or_create(["retry"])
        h.resolve()
        server.terminate()
        out: list[Any] = []

        def later() -> None:
            out.append(h.send("q", "through the outage", idempotency_key="once"))

        t = threading.Thread(target=later)
        t.start()
        server = server_factory("tests.apps.api_app:registry", data_dir, port=port).start()
        t.join(40)
        assert out and out[0].id == 1
        again = h.send("q", "through the outage", idempotency_key="once")
        assert again.id == 1 and again.duplicate
        [q] = h.queues()
        assert q.pending == 1, "exactly one message stored"
    server.terminate()


async def test_async_client_reuses_its_connection() -> None:
    async with registry.test() as client:
        h = client.store.get_or_create(["conn"])
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
