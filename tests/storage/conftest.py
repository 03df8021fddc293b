"""The storage conformance suite runs against every driver listed in DRIVERS.

To add a driver: write an async factory ``(tmp_path) -> Storage`` (not yet opened) and add it here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from actorq.storage.protocol import Storage
from actorq.storage.sqlite import SQLiteStorage


async def sqlite_factory(tmp_path: Path) -> Storage:
    return SQLiteStorage(tmp_path / "sqlite")


DRIVERS: dict[str, Callable[[Path], Awaitable[Storage]]] = {"sqlite": sqlite_factory}


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
