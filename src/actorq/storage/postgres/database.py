"""The PostgreSQL connection pool and migrations: where a lost database becomes ``Unavailable``.

The schema lives in its own PostgreSQL schema (``actorq`` unless told otherwise), set as the pool
connections' ``search_path`` server setting, and is migrated under an advisory lock so that
concurrent nodes migrate once. ``schema.sql`` beside this module is what the migrations produce.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from actorq.errors import Unavailable
from actorq.storage._sql import load_migrations

_SCHEMA = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_MIGRATION_LOCK = 0x6163746F7271  # "actorq"

# the database went away (restart, network): the caller may retry the whole operation
DOWN: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,  # e.g. a ROLLBACK on a connection that broke mid-query
    asyncpg.OperatorInterventionError,
    asyncpg.InsufficientResourcesError,
)


class _PooledConnection(asyncpg.Connection):  # type: ignore[misc]  # asyncpg ships no types
    """A pool connection released without asyncpg's reset query (``RESET ALL; UNLISTEN *; ...``,
    one more round trip per use: ~15% of a node's time under load). Nothing here needs it: the
    driver never SETs (search_path is a server setting), LISTENs (own connection), holds session
    advisory locks or cursors; an open transaction is still rolled back on release."""

    def get_reset_query(self) -> str:
        return ""


def unavailable(exc: BaseException) -> Unavailable:
    return Unavailable(f"PostgreSQL is unavailable: {exc!r}", retry_after=1.0)


def check_schema_name(schema: str) -> str:
    if not _SCHEMA.match(schema):
        raise ValueError("schema must be a lower-case SQL identifier")
    return schema


class Database:
    """The pool of one storage: ``conn()`` (autocommit) and ``tx()`` (one transaction)."""

    def __init__(self, dsn: str, schema: str, min_size: int, max_size: int) -> None:
        self.dsn = dsn
        self.schema = check_schema_name(schema)
        self._sizes = (min_size, max_size)
        self._pool: asyncpg.Pool | None = None

    async def open(self) -> None:
        try:
            conn = await asyncpg.connect(self.dsn)
        except (OSError, asyncpg.PostgresError) as exc:
            raise Unavailable(f"cannot connect to PostgreSQL: {exc}") from exc
        try:
            await migrate(conn, self.schema)
        finally:
            await conn.close()
        # a server setting, not a SET: the pool's RESET ALL on release would undo a SET
        self._pool = await asyncpg.create_pool(
            self.dsn,
            min_size=self._sizes[0],
            max_size=self._sizes[1],
            server_settings={"search_path": self.schema},
            connection_class=_PooledConnection,
        )

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    def _p(self) -> asyncpg.Pool:
        if self._pool is None:
            raise Unavailable("storage is closed")
        return self._pool

    @asynccontextmanager
    async def conn(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection (autocommit); a lost database becomes ``Unavailable``."""
        try:
            async with self._p().acquire() as c:
                yield c
        except DOWN as exc:
            raise unavailable(exc) from exc

    @asynccontextmanager
    async def tx(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection in one transaction; a lost database becomes ``Unavailable``."""
        try:
            async with self._p().acquire() as c, c.transaction():
                yield c
        except DOWN as exc:
            raise unavailable(exc) from exc


async def migrate(conn: asyncpg.Connection, schema: str) -> None:
    """Apply numbered migrations once, whichever node gets there first (advisory lock)."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        await conn.execute(f"SET LOCAL search_path TO {schema}")
        await conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        current = await conn.fetchval("SELECT max(version) FROM schema_version") or 0
        for version, _name, sql in load_migrations("actorq.storage.postgres"):
            if version > current:
                await conn.execute(sql)
                await conn.execute("INSERT INTO schema_version (version) VALUES ($1)", version)
