"""The clients: the async and the sync client (twins, driven by the same code through ``Twin``)
give the same answers for the same calls and retry through a server restart without duplicating a
send; the async client reuses one connection and coalesces concurrent plain sends into batches
(each send still gets its own answer); both refuse a URL they cannot use. (Their typed
errors, twin by twin, are checked with every bad input in tests/test_bad_input.py; their
WebSocket side in tests/test_websocket.py.)"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from actorq import MessageTooLarge, NotFound, QueueFull, ValidationError
from actorq.client import AsyncClient, create_client, create_sync_client
from actorq.results import SendResult
from tests.apps.api_app import registry
from tests.apps.batch_app import gate, seen
from tests.apps.batch_app import registry as batch_registry
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
    done = twin(h.send, "jobs", {"n": 2}, wait=True, timeout=5)
    out: list[Any] = [done.response, (done.status, done.attempt, done.queue)]
    looked_up = twin(h.result, done.id)
    out.append((looked_up.status, looked_up.attempt))
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
        assert sync_out[:5] == [{"doubled": 4}, ("completed", 1, "jobs"), ("completed", 1), "X", "Y"]
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


# -- the async client coalesces concurrent plain sends into batches -------------------------------
async def test_concurrent_sends_are_coalesced_and_each_gets_its_own_answer() -> None:
    seen.clear()
    gate.clear()
    async with batch_registry.test() as client:
        h = client.b.get_or_create(["co"])
        await h.send("held", "first")  # holds the run loop so "small" fills up
        results = await asyncio.gather(
            *(h.send("q", {"i": i}) for i in range(50)),
            h.send("small", 1),
            h.send("small", 2),
            h.send("small", 3),  # the third is over max_size=2
            h.send("q", "wrong type"),
            h.send("nosuch", {}),
            return_exceptions=True,
        )
        receipts = results[:50]
        assert all(not isinstance(r, BaseException) for r in receipts)
        ids = [r.id for r in receipts]  # type: ignore[union-attr]
        assert ids == sorted(ids) and len(set(ids)) == 50, "submission order kept inside a batch"
        assert not isinstance(results[50], BaseException) and not isinstance(results[51], BaseException)
        assert isinstance(results[52], QueueFull)
        assert isinstance(results[53], ValidationError)
        assert isinstance(results[54], NotFound)
        gate.set()
        for _ in range(300):
            if len(seen) == 53:
                break
            await asyncio.sleep(0.01)
        assert [b for _, b in seen[1:51]] == [{"i": i} for i in range(50)]
        assert sorted(i for i, _ in seen) == sorted({i for i, _ in seen}), "nothing stored twice"


async def test_coalescing_can_be_turned_off_and_errors_match() -> None:
    async with batch_registry.test() as client:
        async with create_client(client.url, coalesce=False) as plain:
            h = plain.b.get_or_create(["off"])
            out = await asyncio.gather(*(h.send("q", {"i": i}) for i in range(10)))
            assert sorted(r.id for r in out) == list(range(1, 11))
            with pytest.raises(MessageTooLarge):
                await h.send("tiny", "y" * 40)
        h2 = client.b.get_or_create(["on"])
        with pytest.raises(MessageTooLarge):
            await h2.send("tiny", "y" * 40)


async def test_client_coalesces_sends_to_many_actors_into_one_request_each_keeps_its_order() -> None:
    """Sends to different actors issued together leave in one POST /v1/batch; each handle's
    sends keep their order; an unknown actor fails only its own sends."""
    seen.clear()
    paths: list[str] = []
    async with batch_registry.test() as client:
        async with create_client(client.url) as c:
            session = c._get_session()
            original = session._request

            async def spy(method: str, url: Any, **kw: Any) -> Any:
                paths.append(str(url).split("/", 3)[-1])
                return await original(method, url, **kw)

            session._request = spy  # type: ignore[method-assign]
            handles = [c.b.get_or_create([f"many-{i}"]) for i in range(10)]
            for h in handles:
                await h.resolve()
            ghost = c.b.get_for_id("0" * 20)
            ghost._core.resolved({"actor_id": "0" * 20, "name": "b", "key": ["ghost"]})
            paths.clear()
            out = await asyncio.gather(
                *(h.send("q", {"i": i}) for i in range(5) for h in handles),
                ghost.send("q", {"i": 0}),
                return_exceptions=True,
            )
            assert isinstance(out[-1], NotFound)
            receipts = out[:-1]
            assert all(not isinstance(r, BaseException) for r in receipts)
            assert len(paths) <= 3 and "v1/batch" in paths, paths
            for k, h in enumerate(handles):
                ids = [r.id for r in receipts[k::10]]  # type: ignore[union-attr]
                assert ids == [1, 2, 3, 4, 5], "one handle's sends, in the order issued"
                assert all(r.actor_id == h.actor_id for r in receipts[k::10])  # type: ignore[union-attr]
        for _ in range(300):
            if len(seen) == 50:
                break
            await asyncio.sleep(0.01)
        assert len(seen) == 50
