"""The clients: the async and the sync client (twins, driven by the same code through ``Twin``)
give the same answers for the same calls and retry through a server restart without duplicating a
send; the async client reuses one connection; both refuse a URL they cannot use. (Their typed
errors, twin by twin, are checked with every bad input in tests/test_bad_input.py; their
WebSocket side in tests/test_websocket.py.)"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from actorq.client import AsyncClient, create_client, create_sync_client
from actorq.results import SendResult
from tests.apps.api_app import registry
from tests.conftest import ServerProcess


class Twin:
    """The async or the sync client, driven the same way from plain code: ``twin(h.send, ...)``
    calls the method and, for the async client (on its own event loop in a thread), runs the
    coroutine to its result. So one flow, written once, checks both twins."""

    def __init__(self, kind: str, url: str) -> None:
        self.kind = kind
        self._loop: asyncio.AbstractEventLoop | None = None
        if kind == "sync":
            self.client: Any = create_sync_client(url)
            return
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

        async def make() -> AsyncClient:
            return create_client(url)

        self.client = asyncio.run_coroutine_threadsafe(make(), self._loop).result(10)

    def __call__(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        out = method(*args, **kwargs)
        if self._loop is None:
            return out
        return asyncio.run_coroutine_threadsafe(out, self._loop).result(60)

    def close(self) -> None:
        self(self.client.close)
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()


@pytest.fixture(params=["sync", "async"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def parity_flow(twin: Twin, key: str) -> list[Any]:
    """Every kind of call a handle makes, and what each answered."""
    h = twin.client.api.get_or_create([key])
    out: list[Any] = [twin(h.send, "jobs", {"n": 2}, wait=True, timeout=5).response]
    out.append(twin(h.shout, "x"))
    out.append(twin(h.action, "shout", "y"))
    receipt = twin(h.send, "idle", 1)
    out.append(twin(h.result, receipt.id).status)
    out.append(sorted((q.queue, q.pending, q.completed) for q in twin(h.queues)))
    out.append(twin(twin.client.api.get_for_id(h.actor_id or "").resolve) == h.actor_id)
    out.append(twin(h.dead_letters))
    return out


async def test_async_and_sync_clients_agree() -> None:
    async with registry.test() as client:
        # the server runs on this event loop: drive both twins from threads
        sync = await asyncio.to_thread(Twin, "sync", client.url)
        asynchronous = await asyncio.to_thread(Twin, "async", client.url)
        sync_out = await asyncio.to_thread(parity_flow, sync, "parity")
        async_out = await asyncio.to_thread(parity_flow, asynchronous, "parity-async")
        assert sync_out == async_out
        assert sync_out[:3] == [{"doubled": 4}, "X", "Y"]
        await asyncio.to_thread(sync.close)
        await asyncio.to_thread(asynchronous.close)


def test_client_retries_through_a_restart(
    kind: str, server_factory: type[ServerProcess], data_dir: Path
) -> None:
    server = server_factory("tests.apps.api_app:registry", data_dir).start()
    port = server.port
    twin = Twin(kind, server.url)
    try:
        h = twin.client.store.get_or_create(["retry"])
        twin(h.resolve)
        server.terminate()
        out: list[Any] = []

        def later() -> None:
            out.append(twin(h.send, "q", "through the outage", idempotency_key="once"))

        t = threading.Thread(target=later)
        t.start()
        server = server_factory("tests.apps.api_app:registry", data_dir, port=port).start()
        t.join(40)
        assert out and out[0].id == 1
        again = twin(h.send, "q", "through the outage", idempotency_key="once")
        assert again.id == 1 and again.duplicate
        [q] = twin(h.queues)
        assert q.pending == 1, "exactly one message stored"
    finally:
        twin.close()
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
