"""Each driver's schema.sql is what its migrations produce, and the SQL's codes are the Python enums.

schema.sql is documentation (the drivers apply migrations, never schema.sql): these tests keep it
true. The migrations and schema.sql are applied to two empty databases (SQLite: in memory;
PostgreSQL: two fresh schemas in the test database, dropped afterwards) and their catalogs
compared, comments and layout aside. The codes each schema.sql declares must be exactly the
enums, and every code literal in schema.sql and queries.sql must name the enum member it means.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import uuid
from collections.abc import Iterator
from enum import IntEnum
from importlib import resources
from typing import Any

import asyncpg
import pytest

from actorq.storage.postgres.codes import CompleteCode, ReceiveRow, SendCode
from actorq.storage.postgres.database import migrate as pg_migrate
from actorq.storage.protocol import MessageStatus
from actorq.storage.sqlite.writer import migrate as sqlite_migrate
from tests.storage.conftest import PG_DSN, drop_schema, pg_up

ENUMS: dict[str, type[IntEnum]] = {e.__name__: e for e in (MessageStatus, SendCode, ReceiveRow, CompleteCode)}
SQLITE, POSTGRES = "actorq.storage.sqlite", "actorq.storage.postgres"


def read(package: str, name: str) -> str:
    return resources.files(package).joinpath(name).read_text("utf-8")


def normalized(sql: str | None) -> str:
    """SQL without comments, with whitespace only where it separates words."""
    if sql is None:
        return ""
    sql = re.sub(r"/\*.*?\*/", " ", sql, flags=re.S)
    sql = re.sub(r"--[^\n]*", " ", sql)
    sql = re.sub(r"\s+", " ", sql).strip()
    return re.sub(r"\s*([^\w\s])\s*", r"\1", sql)


# -- SQLite ---------------------------------------------------------------------------------------
def sqlite_catalog(conn: sqlite3.Connection) -> tuple[int, list[tuple[str, str, str, str]]]:
    rows = conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name").fetchall()
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    return version, [(t, n, tbl, normalized(sql)) for t, n, tbl, sql in rows]


def test_sqlite_migrations_produce_schema_sql() -> None:
    migrated = sqlite3.connect(":memory:", isolation_level=None)
    sqlite_migrate(migrated)
    documented = sqlite3.connect(":memory:", isolation_level=None)
    documented.executescript(read(SQLITE, "schema.sql"))
    version, tables = sqlite_catalog(migrated)
    assert tables, "the migrations created nothing"
    assert sqlite_catalog(documented) == (version, tables)


# -- PostgreSQL -----------------------------------------------------------------------------------
CATALOG = {
    "tables": """SELECT table_name, table_type FROM information_schema.tables
                 WHERE table_schema = $1 ORDER BY table_name""",
    "columns": """SELECT table_name, ordinal_position, column_name, data_type, is_nullable, column_default
                  FROM information_schema.columns WHERE table_schema = $1
                  ORDER BY table_name, ordinal_position""",
    "indexes": """SELECT tablename, indexname, indexdef FROM pg_indexes
                  WHERE schemaname = $1 ORDER BY tablename, indexname""",
    "constraints": """SELECT conrelid::regclass::text, conname, contype, pg_get_constraintdef(oid)
                      FROM pg_constraint WHERE connamespace = $1::regnamespace ORDER BY 1, 2""",
    "sequences": """SELECT sequence_name, data_type, start_value, increment FROM information_schema.sequences
                    WHERE sequence_schema = $1 ORDER BY sequence_name""",
    "functions": """SELECT p.proname, pg_get_function_arguments(p.oid), pg_get_function_result(p.oid),
                           l.lanname, p.prokind, p.provolatile, p.proconfig, p.prosrc
                    FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
                    WHERE p.pronamespace = $1::regnamespace ORDER BY p.proname, 2""",
}


def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def pg_catalog(conn: asyncpg.Connection, schema: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for what, query in CATALOG.items():
        rows = []
        for row in await conn.fetch(query, schema):
            values = [None if v is None else text(v).replace(schema, "<schema>") for v in row]
            if what == "functions":
                values[-1] = normalized(values[-1])
            rows.append(tuple(values))
        out[what] = rows
    out["version"] = await conn.fetchval(f"SELECT max(version) FROM {schema}.schema_version")
    return out


@pytest.fixture
def two_schemas() -> Iterator[tuple[str, str]]:
    names = ("schema_m_" + uuid.uuid4().hex[:12], "schema_d_" + uuid.uuid4().hex[:12])
    try:
        yield names
    finally:
        for name in names:
            asyncio.run(drop_schema(name))


@pytest.mark.skipif(not pg_up(), reason="PostgreSQL is not running")
async def test_postgres_migrations_produce_schema_sql(two_schemas: tuple[str, str]) -> None:
    migrated, documented = two_schemas
    conn = await asyncpg.connect(PG_DSN)
    try:
        await pg_migrate(conn, migrated)
        async with conn.transaction():
            await conn.execute(f"CREATE SCHEMA {documented}")
            await conn.execute(f"SET LOCAL search_path TO {documented}")
            await conn.execute(read(POSTGRES, "schema.sql"))
        want = await pg_catalog(conn, migrated)
        got = await pg_catalog(conn, documented)
    finally:
        await conn.close()
    assert want["tables"] and want["functions"], "the migrations created nothing"
    for what in want:
        assert got[what] == want[what], what


# -- codes ----------------------------------------------------------------------------------------
DECLARED = re.compile(r"^-- codes (\w+): (.*)$", re.M)
ANNOTATED = re.compile(r"\b(\d+)\s*/\*\s*(\w+)\.(\w+)\s*\*/")
# where a bare number would be a code: a status compared or assigned, a function's result code
CODE_PLACES = [
    re.compile(r"\bstatus\s*(?:=|:=|<>|!=)\s*\d"),
    re.compile(r"\bstatus\s+(?:NOT\s+)?IN\s*\([^)]*\d", re.I),
    re.compile(r"\b(?:o_status|kind|outcome)\s*:=\s*\d"),
    re.compile(r"\bRETURN\s+\d"),
]


def declared_codes(schema_sql: str) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for family, members in DECLARED.findall(schema_sql):
        out[family] = {name: int(value) for name, value in (m.split("=") for m in members.split())}
    return out


@pytest.mark.parametrize(
    ("package", "families"),
    [(SQLITE, {"MessageStatus"}), (POSTGRES, {"MessageStatus", "SendCode", "ReceiveRow", "CompleteCode"})],
)
def test_schema_sql_declares_exactly_the_python_codes(package: str, families: set[str]) -> None:
    declared = declared_codes(read(package, "schema.sql"))
    assert set(declared) == families
    for family, members in declared.items():
        assert members == {m.name: m.value for m in ENUMS[family]}, family


def code_uses(sql: str) -> tuple[list[tuple[int, str, str]], list[str]]:
    """(annotated literals as (value, enum, member), code places left with a bare number)."""
    code = "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))
    annotated = [(int(v), e, m) for v, e, m in ANNOTATED.findall(code)]
    rest = ANNOTATED.sub("<code>", code)
    bare = [m.group(0) for place in CODE_PLACES for m in place.finditer(rest)]
    return annotated, bare


@pytest.mark.parametrize(
    ("package", "name"),
    [(SQLITE, "schema.sql"), (SQLITE, "queries.sql"), (POSTGRES, "schema.sql"), (POSTGRES, "queries.sql")],
)
def test_every_code_in_the_sql_names_its_enum_member(package: str, name: str) -> None:
    families = set(declared_codes(read(package, "schema.sql")))
    annotated, bare = code_uses(read(package, name))
    assert not bare, f"{name}: codes without their enum member: {bare}"
    for value, enum, member in annotated:
        assert enum in families, f"{name}: {enum} is not declared in schema.sql"
        assert ENUMS[enum][member] == value, f"{name}: {value} /* {enum}.{member} */"
    if name == "queries.sql" or package == POSTGRES:
        assert annotated, f"{name} uses no codes at all? the check would be vacuous"


def test_the_checks_catch_a_bare_or_wrong_code() -> None:
    annotated, bare = code_uses("UPDATE m SET status = 3 WHERE status IN (0, 1) AND kind := 2 /* X.Y */;")
    assert len(bare) == 2 and annotated == [(2, "X", "Y")]
    _, bare = code_uses("-- status = 3 in a comment is fine\nSELECT 1 WHERE status = 1 /* A.B */")
    assert bare == []
