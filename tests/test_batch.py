"""Batch sends and the async client's coalescing of concurrent plain sends."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from actorq import ActorContext, MessageTooLarge, NotFound, QueueFull, ValidationError, actor, queue, setup
from actorq.client import create_client

seen: list[tuple[int, Any]] = []
gate = asyncio.Event()


async def run(c: ActorContext) -> None:
    async for m in c.queue.iter():
        if m.name == "held":
            await gate.wait()
        seen.append((m.id, m.body))


registry = setup(
    use={
        "b": actor(
            queues={
                "q": queue(dict),
                "held": queue(Any),
                "small": queue(int, max_size=2),
                "tiny": queue(Any, max_message_bytes=16),
            },
            run=run,
        )
    }
)


async def test_batch_endpoint_per_item_results() -> None:
    seen.clear()
    async with registry.test() as client, httpx.AsyncClient(base_url=client.url) as http:
        h = client.b.get_or_create(["x"])
        await h.resolve()
        messages = [
            {"queue": "q", "body": {"n": 1}, "idempotency_key": "a"},
            {"queue": "q", "body": "not a dict"},
            {"queue": "nosuch", "body": {}},
            {"queue": "tiny", "body": "x" * 40},
            {"queue": "small", "body": 1},
            {"queue": "small", "body": 2},
            {"queue": "q", "body": {"n": 2}, "idempotency_key": "a"},
            {"queue": "q", "body": {"n": 3}},
        ]
        r = await http.post(f"/v1/actors/{h.actor_id}/batch", json={"messages": messages})
        assert r.status_code == 200
        results = r.json()["results"]
        assert [x.get("id") for x in results] == [1, None, None, None, 2, 3, 1, 4]
        assert [x.get("error", {}).get("code") for x in results] == [
            None,
            "validation_error",
            "not_found",
            "message_too_large",
            None,
            None,
            None,
            None,
        ]
        assert results[6]["duplicate"] is True
        r = await http.post(f"/v1/actors/{h.actor_id}/batch", json={"messages": []})
        assert r.status_code == 400
        r = await http.post(f"/v1/actors/{h.actor_id}/batch", json={"messages": [{"body": 1}]})
        assert r.status_code == 400, "an item needs its queue"
        for _ in range(200):
            if len(seen) == 4:
                break
            await asyncio.sleep(0.01)
        assert seen == [(1, {"n": 1}), (2, 1), (3, 2), (4, {"n": 3})]


async def test_concurrent_sends_are_coalesced_and_each_gets_its_own_answer() -> None:
    seen.clear()
    gate.clear()
    async with registry.test() as client:
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
    async with registry.test() as client:
        async with create_client(client.url, coalesce=False) as plain:
            h = plain.b.get_or_create(["off"])
            out = await asyncio.gather(*(h.send("q", {"i": i}) for i in range(10)))
            assert sorted(r.id for r in out) == list(range(1, 11))
            with pytest.raises(MessageTooLarge):
                await h.send("tiny", "y" * 40)
        h2 = client.b.get_or_create(["on"])
        with pytest.raises(MessageTooLarge):
            await h2.send("tiny", "y" * 40)


async def test_batch_to_any_actors_per_item_results_in_order() -> None:
    seen.clear()
    async with registry.test() as client, httpx.AsyncClient(base_url=client.url) as http:
        a, b = client.b.get_or_create(["any-a"]), client.b.get_or_create(["any-b"])
        await a.resolve()
        await b.resolve()
        messages = [
            {"actor_id": a.actor_id, "queue": "q", "body": {"n": 1}},
            {"actor_id": b.actor_id, "queue": "q", "body": {"n": 1}},
            {"actor_id": "0" * 20, "queue": "q", "body": {}},
            {"actor_id": b.actor_id, "queue": "q", "body": "not a dict"},
            {"actor_id": a.actor_id, "queue": "q", "body": {"n": 2}, "idempotency_key": "k"},
            {"actor_id": b.actor_id, "queue": "small", "body": 1},
            {"actor_id": a.actor_id, "queue": "q", "body": {"n": 2}, "idempotency_key": "k"},
        ]
        r = await http.post("/v1/batch", json={"messages": messages})
        assert r.status_code == 200, r.text
        results = r.json()["results"]
        assert [x.get("id") for x in results] == [1, 1, None, None, 2, 2, 2]
        assert [x.get("error", {}).get("code") for x in results] == [
            None,
            None,
            "not_found",
            "validation_error",
            None,
            None,
            None,
        ]
        assert results[2]["status"] == 404 and results[6]["duplicate"] is True
        for _ in range(300):
            if len(seen) == 4:
                break
            await asyncio.sleep(0.01)
        assert sorted(seen, key=str) == sorted([(1, {"n": 1}), (2, {"n": 2}), (1, {"n": 1}), (2, 1)], key=str)


async def test_client_coalesces_sends_to_many_actors_into_one_request_each_keeps_its_order() -> None:
    """Sends to different actors issued together leave in one POST /v1/batch; each handle's
    sends keep their order; an unknown actor fails only its own sends."""
    seen.clear()
    paths: list[str] = []
    async with registry.test() as client:
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
