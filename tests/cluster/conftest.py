"""The several-nodes harness: real ``actorq serve`` processes sharing one PostgreSQL database.

Each test gets a fresh schema (dropped afterwards) and a :class:`Cluster` that starts nodes on
it, on free loopback ports, with a short lease TTL; whatever a test started is killed at the end
(resumed first if the test left it stopped with SIGSTOP). Every test here needs PostgreSQL and is
skipped when it is not running.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ServerProcess, start_all, stop_all
from tests.storage.conftest import PG_DSN, fresh_schema, pg_up

TTL = 2.0  # the lease TTL of every node a test starts ($ACTORQ_LEASE_TTL)

_PG_UP = pg_up()


@pytest.fixture(autouse=True)
def _needs_postgres() -> None:
    if not _PG_UP:
        pytest.skip("PostgreSQL is not running on " + PG_DSN)


class Cluster:
    """Nodes serving ``target`` on the test's schema.

    Nodes share one data directory unless started with a ``name``: then each has its own data and
    node-local files directories (``data-NAME``, ``files-NAME``), as on separate machines.
    ``journal`` is a file every node may append to ($ACTORQ_TEST_JOURNAL, see tests/apps/journal.py).
    """

    def __init__(self, tmp: Path, schema: str) -> None:
        self.tmp = tmp
        self.schema = schema
        self.journal = tmp / "journal.jsonl"
        self.nodes: list[ServerProcess] = []

    def env(self, **extra: str) -> dict[str, str]:
        return {
            "ACTORQ_PG_SCHEMA": self.schema,
            "ACTORQ_LEASE_TTL": str(TTL),
            "ACTORQ_TEST_JOURNAL": str(self.journal),
            **extra,
        }

    def node(self, target: str, name: str | None = None, **extra_env: str) -> ServerProcess:
        """A node, not started yet (``.start()`` it)."""
        data = self.tmp / (f"data-{name}" if name else "data")
        data.mkdir(exist_ok=True)
        env = self.env(**extra_env)
        if name:
            env.setdefault("ACTORQ_FILES", str(self.files(name)))
        s = ServerProcess(target, data, env=env, storage=PG_DSN)
        self.nodes.append(s)
        return s

    def files(self, name: str) -> Path:
        """The node-local files directory of the node started with ``name``."""
        return self.tmp / f"files-{name}"

    def start(self, target: str, n: int = 3, **extra_env: str) -> list[ServerProcess]:
        """Start ``n`` nodes at once, each waited for until healthy."""
        fresh = [self.node(target, **extra_env) for _ in range(n)]
        start_all(fresh)
        return fresh

    def by_pid(self, pid: int) -> ServerProcess:
        return next(n for n in self.nodes if n.proc is not None and n.proc.pid == pid)

    def others(self, node: ServerProcess) -> list[ServerProcess]:
        return [n for n in self.nodes if n is not node]


@pytest.fixture
def schema() -> Iterator[str]:
    """A fresh PostgreSQL schema for this test, dropped afterwards."""
    yield from fresh_schema("cl_")


@pytest.fixture
def cluster(tmp_path: Path, schema: str) -> Iterator[Cluster]:
    c = Cluster(tmp_path, schema)
    yield c
    stop_all(c.nodes)
