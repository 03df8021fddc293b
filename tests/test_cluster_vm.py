"""Agent VMs across PostgreSQL nodes: a VM's /home/user is snapshotted into the
database when the VM sleeps (here: its node shuts down) and at intervals, and restored on the node
that takes the VM over. Each node has its own files directory, as on separate machines."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from actorq.client import create_client
from tests.conftest import ServerProcess
from tests.storage.conftest import PG_DSN, fresh_schema, pg_up

TARGET = "tests.apps.cluster_vm_app:registry"
pytestmark = pytest.mark.skipif(not pg_up(), reason="PostgreSQL is not running on " + PG_DSN)


@pytest.fixture
def schema() -> Iterator[str]:
    yield from fresh_schema("vmcl_")


def node(tmp: Path, schema: str, name: str, started: list[ServerProcess]) -> ServerProcess:
    env = {
        "ACTORQ_PG_SCHEMA": schema,
        "ACTORQ_LEASE_TTL": "2.0",
        "ACTORQ_FILES": str(tmp / f"files-{name}"),
    }
    (tmp / f"data-{name}").mkdir(exist_ok=True)
    s = ServerProcess(TARGET, tmp / f"data-{name}", env=env, storage=PG_DSN)
    started.append(s)
    return s.start()


def vm_homes(tmp: Path, name: str) -> list[Path]:
    return list((tmp / f"files-{name}").glob("*/actors/*/vm/home/user"))


def test_vm_files_follow_the_vm_to_another_node(tmp_path: Path, schema: str) -> None:
    started: list[ServerProcess] = []
    try:
        a = node(tmp_path, schema, "a", started)

        async def on_a() -> None:
            async with create_client(a.url) as client:
                vm = client.vm.get_or_create(["moving"])
                await vm.write_file("/home/user/notes/plan.md", "written on node a\n")
                r = await vm.exec("mkdir -p src && echo 'print(1)' > src/main.py && ln -s src/main.py entry")
                assert r["exit_code"] == 0, r

        asyncio.run(on_a())
        assert a.terminate() == 0  # graceful: the VM sleeps (snapshot) and the lease is released
        b = node(tmp_path, schema, "b", started)

        async def on_b() -> None:
            async with create_client(b.url) as client:
                vm = client.vm.get_or_create(["moving"])
                assert await vm.read_file("/home/user/notes/plan.md") == b"written on node a\n"
                assert await vm.read_file("/home/user/entry") == b"print(1)\n"  # the link came along
                r = await vm.exec("cat src/main.py && echo more >> notes/plan.md")
                assert r["stdout"] == "print(1)\n"

        asyncio.run(on_b())
        assert vm_homes(tmp_path, "b"), "node b restored the VM into its own files directory"
        # node b dies without a goodbye: the periodic snapshot (every 1 s here) still carries the edit
        time.sleep(2.5)
        assert b.proc is not None
        b.proc.send_signal(signal.SIGKILL)
        b.proc.wait(10)
        c = node(tmp_path, schema, "c", started)

        async def on_c() -> None:
            async with create_client(c.url, retry_for=30) as client:
                vm = client.vm.get_or_create(["moving"])
                deadline = time.monotonic() + 15
                while True:  # b's lease must expire first (TTL 2 s); the client retries 503 itself
                    try:
                        text = await vm.read_file("/home/user/notes/plan.md")
                        break
                    except Exception:
                        assert time.monotonic() < deadline
                        await asyncio.sleep(0.2)
                assert text == b"written on node a\nmore\n"

        asyncio.run(on_c())
    finally:
        for s in started:
            s.stop()
