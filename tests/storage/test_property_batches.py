"""Property test for batched, concurrent sends to many actors (the clients' cross-actor batches and
the PostgreSQL driver's group commit): whatever the mix of batches and concurrent receivers, every
actor's ids are gap-free, each call's items for one actor keep their order, every message is
delivered exactly once, in id order, and nothing is lost. Runs on both drivers."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import uuid
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actorq.storage.postgres import PostgresStorage
from actorq.storage.protocol import SendRequest, Storage
from actorq.storage.sqlite import SQLiteStorage
from tests.storage.conftest import PG_DSN, drop_schema, pg_up

ACTORS = 4
NOW = 1_000.0

# a call: the actor index of each of its items, in order; a plan: calls that run concurrently
calls = st.lists(st.integers(0, ACTORS - 1), min_size=1, max_size=12)
plans = st.lists(calls, min_size=1, max_size=10)


async def run_plan(storage: Storage, plan: list[list[int]], receive_count: int) -> None:
    actors = []
    for i in range(ACTORS):
        rec, _ = await storage.resolve_actor(
            "w", (f"k{i}",), create=True, must_create=False, new_id=f"A{i}", now=NOW
        )
        assert rec is not None
        actors.append(rec.actor_id)
    sent: dict[str, list[tuple[int, str]]] = {a: [] for a in actors}  # actor -> (id, body)

    async def call(k: int, items: list[int]) -> None:
        bodies = [f'"{k}.{pos}"' for pos in range(len(items))]
        reqs = [SendRequest(actors[a], "q", b, 10_000, NOW) for a, b in zip(items, bodies, strict=True)]
        if len(reqs) == 1 and k % 2:
            outs = [await storage.send(reqs[0], NOW)]
        else:
            outs = list(await storage.send_many(reqs, NOW))
        by_actor: dict[str, list[int]] = {}
        for req, out in zip(reqs, outs, strict=True):
            assert not isinstance(out, Exception)
            sent[req.actor_id].append((out.id, req.body))
            by_actor.setdefault(req.actor_id, []).append(out.id)
        for ids in by_actor.values():
            assert ids == sorted(ids), "one call's items for an actor keep their order"

    received: dict[str, list[tuple[int, str]]] = {a: [] for a in actors}
    done = asyncio.Event()

    async def receiver(actor_id: str) -> None:
        ack: tuple[int, ...] = ()
        while True:
            finished = done.is_set()  # every send committed before this receive started
            out = await storage.receive(
                actor_id, None, receive_count, ack_ids=ack, state=None, now=NOW, max_attempts=5
            )
            ack = tuple(m.id for m in out.messages)
            received[actor_id].extend((m.id, m.body) for m in out.messages)
            if not out.messages:
                if finished:
                    return
                await asyncio.sleep(0.001)

    readers = [asyncio.ensure_future(receiver(a)) for a in actors]
    try:
        await asyncio.gather(*(call(k, items) for k, items in enumerate(plan)))
        done.set()
        await asyncio.wait_for(asyncio.gather(*readers), 30)
    finally:
        for r in readers:
            r.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
    for a in actors:
        ids = sorted(i for i, _ in sent[a])
        assert ids == list(range(1, len(ids) + 1)), f"{a}: ids gap-free"
        assert received[a] == sorted(sent[a]), f"{a}: each delivered once, in id order"


@settings(max_examples=40, deadline=None)
@given(plan=plans, receive_count=st.integers(1, 3))
def test_batches_sqlite(plan: list[list[int]], receive_count: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="actorq-batches-"))
    storage = SQLiteStorage(folder)

    async def go() -> None:
        await storage.open()
        try:
            await run_plan(storage, plan, receive_count)
        finally:
            await storage.close()

    try:
        asyncio.run(go())
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.skipif(not pg_up(), reason="PostgreSQL is not running")
@settings(max_examples=25, deadline=None)
@given(plan=plans, receive_count=st.integers(1, 3))
def test_batches_postgres(plan: list[list[int]], receive_count: int) -> None:
    schema = "pb_" + uuid.uuid4().hex[:12]
    storage = PostgresStorage(PG_DSN, schema=schema)

    async def go() -> None:
        await storage.open()
        try:
            await run_plan(storage, plan, receive_count)
        finally:
            await storage.close()
            await drop_schema(schema)

    asyncio.run(go())
