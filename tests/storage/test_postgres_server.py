"""A server on the PostgreSQL driver end to end: the same runtime, only the storage differs."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import asyncpg
import pytest

from actorq.storage.postgres import PostgresStorage
from tests.apps.semantics import probe, registry
from tests.storage.conftest import PG_DSN


@pytest.fixture
def schema() -> Iterator[str]:
    name = "e2e_" + uuid.uuid4().hex[:12]
    yield name

    async def drop() -> None:
        conn = await asyncpg.connect(PG_DSN)
        try:
            await conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
        finally:
            await conn.close()

    asyncio.run(drop())


async def test_round_trips_dead_letters_and_state_across_restart(schema: str) -> None:
    probe.reset()
    async with registry.test(storage=PostgresStorage(PG_DSN, schema=schema)) as client:
        r = await client.req.get_or_create(["pg"]).send("ask", {"q": 1}, wait=True, timeout=10)
        assert (r.status, r.response) == ("completed", {"echo": {"q": 1}})
        bad = await client.plain.get_or_create(["pg"]).send(
            "tasks", {"fail_until": 99}, wait=True, timeout=10
        )
        assert bad.status == "failed" and [s[3] for s in probe.seen if s[1] == "tasks"] == [1, 2, 3]
        assert await client.counter.get_or_create(["pg"]).add(40) == 40
    async with registry.test(storage=PostgresStorage(PG_DSN, schema=schema)) as client:
        assert await client.counter.get(["pg"]).add(2) == 42
        assert [d.id for d in await client.plain.get(["pg"]).dead_letters()] == [bad.id]
