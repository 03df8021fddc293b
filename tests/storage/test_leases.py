"""PostgreSQL leases between two nodes in one process: release notices and the cheap lookup."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest

from actorq.storage.postgres import PostgresStorage
from tests.storage.conftest import PG_DSN, fresh_schema, pg_up

pytestmark = pytest.mark.skipif(not pg_up(), reason="PostgreSQL is not running")
NOW = 1_700_000_000.0


@pytest.fixture
def schema() -> Iterator[str]:
    yield from fresh_schema("leases_")


class Node:
    def __init__(self, schema: str) -> None:
        self.storage = PostgresStorage(PG_DSN, schema=schema)
        self.released: asyncio.Queue[tuple[str | None, str | None]] = asyncio.Queue()

    async def start(self) -> Node:
        await self.storage.open()
        await self.storage.join(
            "127.0.0.1:1",
            lambda actor_id: None,
            lambda actor_id, msg_id: None,
            lambda: None,
            lambda actor_id, node: self.released.put_nowait((actor_id, node)),
        )
        return self


@pytest.fixture
async def nodes(schema: str) -> AsyncIterator[tuple[Node, Node]]:
    a = await Node(schema).start()
    b = await Node(schema).start()
    try:
        yield a, b
    finally:
        for n in (a, b):
            await n.storage.close()


async def test_release_and_leave_are_announced_to_the_other_nodes(nodes: tuple[Node, Node]) -> None:
    a, b = nodes
    rec, _ = await a.storage.resolve_actor("w", ("k",), create=True, must_create=False, new_id="x1", now=NOW)
    assert rec is not None
    lease = await a.storage.acquire("x1", 10.0)
    assert lease.acquired
    other = await b.storage.acquire("x1", 10.0)  # answered by the plain read: a holds it
    assert (other.acquired, other.owner) == (False, a.storage.node_id) and other.ttl_left > 9
    await a.storage.release_lease("x1", lease.epoch)
    assert await asyncio.wait_for(b.released.get(), 5) == ("x1", None)
    taken = await b.storage.acquire("x1", 10.0)
    assert taken.acquired and taken.epoch == lease.epoch + 1
    await a.storage.release_lease("x1", lease.epoch)  # stale epoch: changes nothing, tells nobody
    node_a = a.storage.node_id
    await a.storage.leave()
    assert await asyncio.wait_for(b.released.get(), 5) == (None, node_a)
    assert b.released.empty()
    assert (await b.storage.owner("x1")).owner == b.storage.node_id
