"""The data directory is private: 0700, and every file the server writes in it 0600, whatever the
umask; a directory or files left looser by an earlier run (or another tool) are tightened at start.
The same holds for a PostgreSQL node's directory of node-local files."""

from __future__ import annotations

import os
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from actorq import ActorContext, actor, setup
from actorq.storage.postgres import PostgresStorage
from actorq.storage.sqlite import SQLiteStorage
from tests.apps.api_app import registry
from tests.storage.conftest import PG_DSN, drop_schema, pg_up


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def modes(directory: Path) -> dict[str, int]:
    """Mode of the directory itself (``"."``) and of everything under it, by relative path."""
    out = {".": mode(directory)}
    for p in directory.rglob("*"):
        out[str(p.relative_to(directory))] = mode(p)
    return out


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """A umask that would leave every file world-readable and -writable: the modes must not
    depend on it."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def assert_private(directory: Path, expect: set[str]) -> None:
    found = modes(directory)
    assert expect <= set(found), found
    for name, m in found.items():
        p = directory / name
        want = 0o700 if p.is_dir() else 0o600
        assert m == want, f"{name}: {oct(m)}, want {oct(want)} ({found})"


async def test_a_new_data_directory_and_its_files_are_private(tmp_path: Path, loose_umask: None) -> None:
    data = tmp_path / "new" / "data"
    async with registry.test(storage=data) as client:
        h = client.inbox.get_or_create(["main"])
        assert (await h.send("free", "x", wait=True, timeout=10)).ok
        # while the server runs: the database, its WAL and shared-memory files, the lock
        assert_private(data, {"actorq.db", "actorq.db-wal", "actorq.db-shm", "LOCK"})
    assert_private(data, {"actorq.db", "LOCK"})


async def keep(c: ActorContext, name: str) -> str:
    (c.files_dir / name).write_text("kept")
    return str(c.files_dir)


files_registry = setup(use={"keeper": actor(actions={"keep": keep})})


async def test_the_per_actor_files_directories_are_private(tmp_path: Path, loose_umask: None) -> None:
    data = tmp_path / "data"
    async with files_registry.test(storage=data) as client:
        where = Path(await client.keeper.get_or_create(["a"]).keep("notes.txt"))
        await client.keeper.get_or_create(["b"]).keep("other.txt")
    assert where.parent == data / "actors"
    assert mode(data / "actors") == 0o700
    for d in (data / "actors").iterdir():
        assert mode(d) == 0o700, d
    assert mode(data) == 0o700


async def test_looser_modes_left_by_an_earlier_run_are_tightened_at_start(
    tmp_path: Path, loose_umask: None
) -> None:
    data = tmp_path / "data"
    async with registry.test(storage=data) as client:
        assert (await client.inbox.get_or_create(["main"]).send("free", "x", wait=True, timeout=10)).ok
    data.chmod(0o777)
    for p in data.iterdir():
        p.chmod(0o666)
    (data / "actorq.db-wal").touch(0o666)  # as a crashed run would leave it
    (data / "actorq.db-wal").chmod(0o666)
    (data / "actorq.db-shm").touch(0o644)
    storage = SQLiteStorage(data)
    await storage.open()
    try:
        assert_private(data, {"actorq.db", "actorq.db-wal", "actorq.db-shm", "LOCK"})
    finally:
        await storage.close()


async def test_a_shared_sticky_directory_is_refused_not_chmodded(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # like /tmp: every user may create files here
    storage = SQLiteStorage(shared)
    with pytest.raises(PermissionError, match="shared"):
        await storage.open()
    assert mode(shared) == 0o1777, "a shared directory is left as it is"
    assert list(shared.iterdir()) == [], "and nothing was written in it"


@pytest.mark.skipif(not pg_up(), reason="PostgreSQL is not running")
async def test_postgres_node_files_directory_is_private(
    tmp_path: Path, loose_umask: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "files"
    root.mkdir(mode=0o755)
    root.chmod(0o755)
    monkeypatch.setenv("ACTORQ_FILES", str(root))
    schema = "t_files_" + uuid.uuid4().hex[:12]
    storage = PostgresStorage(PG_DSN, schema=schema)
    try:
        await storage.open()
        await storage.close()
        assert storage.files_dir == root / schema
        assert mode(root) == 0o700
        assert mode(storage.files_dir) == 0o700
    finally:
        await drop_schema(schema)
