"""A server on the PostgreSQL driver end to end: the same runtime, only the storage differs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from actorq.storage.postgres import PostgresStorage
from tests.apps.semantics import probe, registry
from tests.storage.conftest import PG_DSN, fresh_schema


@pytest.fixture
def schema() -> Iterator[str]:
    yield from fresh_schema("e2e_")


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
