"""The storage conformance suite runs against every driver listed in DRIVERS.

To add a driver: write an async factory ``(tmp_path) -> Storage`` (not yet opened) and add it here.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
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


def pg_up() -> bool:
    """Whether PostgreSQL answers at PG_DSN (tests that need it skip otherwise)."""

    async def probe() -> None:
        conn = await asyncpg.connect(PG_DSN, timeout=3)
        await conn.close()

    try:
        asyncio.run(probe())
    except Exception:
        return False
    return True


async def drop_schema(name: str) -> None:
    conn = await asyncpg.connect(PG_DSN)
    try:
        await conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
    finally:
        await conn.close()


def fresh_schema(prefix: str) -> Iterator[str]:
    """A new schema name for one test, dropped afterwards (use with ``yield from``)."""
    name = prefix + uuid.uuid4().hex[:12]
    try:
        yield name
    finally:
        asyncio.run(drop_schema(name))


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
        for schema in _SCHEMAS:
            await drop_schema(schema)

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
