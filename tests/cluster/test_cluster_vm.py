"""Agent VMs across PostgreSQL nodes: a VM's /home/user is snapshotted into the
database when the VM sleeps (here: its node shuts down) and at intervals, and restored on the node
that takes the VM over. Each node has its own files directory, as on separate machines."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

from actorq.client import create_client
from tests.cluster.conftest import Cluster
from tests.conftest import ServerProcess

TARGET = "tests.apps.cluster_vm_app:registry"


def node(cluster: Cluster, name: str) -> ServerProcess:
    """A node with its own data and files directories, as on a separate machine."""
    return cluster.node(TARGET, name).start()


def vm_homes(cluster: Cluster, name: str) -> list[Path]:
    return list(cluster.files(name).glob("*/actors/*/vm/home/user"))


def test_vm_files_follow_the_vm_to_another_node(cluster: Cluster) -> None:
    a = node(cluster, "a")

    async def on_a() -> None:
        async with create_client(a.url) as client:
            vm = client.vm.get_or_create(["moving"])
            await vm.write_file("/home/user/notes/plan.md", "written on node a\n")
            r = await vm.exec("mkdir -p src && echo 'print(1)' > src/main.py && ln -s src/main.py entry")
            assert r["exit_code"] == 0, r

    asyncio.run(on_a())
    assert a.terminate() == 0  # graceful: the VM sleeps (snapshot) and the lease is released
    b = node(cluster, "b")

    async def on_b() -> None:
        async with create_client(b.url) as client:
            vm = client.vm.get_or_create(["moving"])
            assert await vm.read_file("/home/user/notes/plan.md") == b"written on node a\n"
            assert await vm.read_file("/home/user/entry") == b"print(1)\n"  # the link came along
            r = await vm.exec("cat src/main.py && echo more >> notes/plan.md")
            assert r["stdout"] == "print(1)\n"

    asyncio.run(on_b())
    assert vm_homes(cluster, "b"), "node b restored the VM into its own files directory"
    # node b dies without a goodbye: the periodic snapshot (every 1 s here) still carries the edit
    time.sleep(2.5)
    assert b.proc is not None
    b.proc.send_signal(signal.SIGKILL)
    b.proc.wait(10)
    c = node(cluster, "c")

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


def test_a_preview_opened_on_another_node_is_served_by_the_owner(cluster: Cluster) -> None:
    import httpx

    a, b = node(cluster, "pa"), node(cluster, "pb")
    port = 18961

    async def run() -> None:
        async with create_client(a.url) as client:
            vm = client.vm.get_or_create(["previewed"])
            await vm.write_file("/home/user/site/index.html", "served by the owner")
            await vm.spawn(
                "python3", ["-m", "http.server", str(port), "--bind", "127.0.0.1"], cwd="/home/user/site"
            )
            p = await vm.create_signed_preview_url(port, 60)
        async with httpx.AsyncClient(base_url=b.url, timeout=30) as browser:  # the other node
            deadline = time.monotonic() + 15
            while True:
                r = await browser.get(p.url)
                if r.status_code != 502 or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.2)
            assert r.status_code == 200 and r.text == "served by the owner", r.text
            forged = p.url[:-3] + "AA/"
            assert (await browser.get(forged)).status_code == 403

    asyncio.run(run())
