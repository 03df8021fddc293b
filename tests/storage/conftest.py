"""The storage conformance suite runs against every driver listed in DRIVERS.

To add a driver: write an async factory ``(tmp_path) -> Storage`` (not yet opened) and add it here.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import asyncpg
import pytest

from actorq.storage.postgres import PostgresStorage
from actorq.storage.protocol import Storage
from actorq.storage.sqlite import SQLiteStorage


async def sqlite_factory(tmp_path: Path) -> Storage:
    return SQLiteStorage(tmp_path / "sqlite")


PG_DSN = os.environ.get("ACTORQ_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


async def postgres_factory(tmp_path: Path) -> Storage:
    # one schema per test directory: reopening in the same test sees the same data
    schema = "t_" + hashlib.sha1(str(tmp_path).encode()).hexdigest()[:16]
    _SCHEMAS.add(schema)
    return PostgresStorage(PG_DSN, schema=schema)


_SCHEMAS: set[str] = set()

DRIVERS: dict[str, Callable[[Path], Awaitable[Storage]]] = {
    "sqlite": sqlite_factory,
    "postgres": postgres_factory,
}


@pytest.fixture(scope="session", autouse=True)
def _drop_test_schemas() -> Iterator[None]:
    yield
    if not _SCHEMAS:
        return

    async def drop() -> None:
        conn = await asyncpg.connect(PG_DSN)
        try:
            for schema in _SCHEMAS:
                await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        finally:
            await conn.close()

    asyncio.run(drop())


@pytest.fixture(params=sorted(DRIVERS))
def driver(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def make_storage(driver: str, tmp_path: Path) -> Callable[[], Awaitable[Storage]]:
    async def make() -> Storage:
        return await DRIVERS[driver](tmp_path)

    return make


@pytest.fixture
async def storage(make_storage: Callable[[], Awaitable[Storage]]) -> AsyncIterator[Storage]:
    s = await make_storage()
    await s.open()
    try:
        yield s
    finally:
        await s.close()
