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
