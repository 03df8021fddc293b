"""Agent VM files: every file action over the real HTTP client, and every escape refused."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from actorq import BadRequest, NotFound
from actorq.agent_os import BatchReadResult, BatchWriteResult, PathOutsideVM
from actorq.client import AsyncClient
from tests.apps.vm_app import registry


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[AsyncClient]:
    async with registry.test(storage=tmp_path / "data") as c:
        yield c


def _vm_root(tmp_path: Path) -> Path:
    roots = list((tmp_path / "data" / "actors").glob("*/vm"))
    assert len(roots) == 1
    return roots[0]


async def test_file_actions_round_trip(client: AsyncClient, tmp_path: Path) -> None:
    vm = client.vm.get_or_create(["files"])
    assert await vm.write_file("/home/user/a/b/c.txt", "hello") == 5  # parents created
    assert await vm.read_file("/home/user/a/b/c.txt") == b"hello"
    assert await vm.read_file("a/b/c.txt") == b"hello"  # relative to /home/user
    blob = bytes(range(256)) * 10
    await vm.write_file("/home/user/blob.bin", blob)
    assert await vm.read_file("/home/user/blob.bin") == blob  # binary survives the JSON wire
    assert (_vm_root(tmp_path) / "home/user/blob.bin").read_bytes() == blob
    assert await vm.exists("/home/user/a/b") is True
    assert await vm.exists("/home/user/nope") is False
    st = await vm.stat("/home/user/blob.bin")
    assert st["size"] == 2560 and st["is_directory"] is False and st["mtime"] > 0
    assert (await vm.stat("/home/user/a"))["is_directory"] is True
    await vm.mkdir("/home/user/empty/deeper")
    assert await vm.readdir("/home/user") == ["a", "blob.bin", "empty"]
    paths = [e["path"] for e in await vm.readdir_recursive("/home/user")]
    assert paths == [
        "/home/user/a",
        "/home/user/empty",
        "/home/user/blob.bin",
        "/home/user/a/b",
        "/home/user/a/b/c.txt",
        "/home/user/empty/deeper",
    ]
    await vm.move("/home/user/a/b/c.txt", "/home/user/moved/c.txt")
    assert await vm.read_file("/home/user/moved/c.txt") == b"hello"
    assert await vm.exists("/home/user/a/b/c.txt") is False
    await vm.delete_file("/home/user/moved/c.txt")
    assert await vm.exists("/home/user/moved/c.txt") is False
    with pytest.raises(BadRequest):
        await vm.delete_file("/home/user/empty")  # not empty without recursive=True
    await vm.delete_file("/home/user/empty", recursive=True)
    with pytest.raises(NotFound):
        await vm.read_file("/home/user/empty/deeper")


async def test_batch_file_actions_report_per_item(client: AsyncClient) -> None:
    """Per-item results with agentOS's fields, as typed objects through the client:
    ``{path, success, error}`` written, ``{path, content, error}`` read."""
    vm = client.agent_os("vm").get_or_create(["batch"])
    res = await vm.write_files(
        [
            {"path": "/home/user/x.txt", "content": "x"},
            {"path": "/etc/evil", "content": "no"},
            {"path": "/home/user/y.bin", "content": b"\x00\x01"},
        ]
    )
    assert all(isinstance(r, BatchWriteResult) for r in res)
    assert [(r.path, r.success) for r in res] == [
        ("/home/user/x.txt", True),
        ("/etc/evil", False),
        ("/home/user/y.bin", True),
    ]
    assert res[0].error is None and res[1].error is not None
    assert res[1].error["code"] == "path_outside_vm"
    got = await vm.read_files(["/home/user/x.txt", "/home/user/missing", "/home/user/y.bin"])
    assert all(isinstance(r, BatchReadResult) for r in got)
    assert got[0].content == b"x" and got[2].content == b"\x00\x01" and got[0].error is None
    assert got[1].content is None and got[1].error is not None and got[1].error["code"] == "not_found"
    assert got[1]["error"]["code"] == "not_found"  # read by field name too, as the old dicts were


@pytest.mark.parametrize(
    "path",
    [
        "../../etc/passwd",
        "/home/user/../../../etc/passwd",
        "/../../..",
        "/etc/passwd",
        "/proc/self/environ",
        "/usr/bin/env",
        "/",
    ],
)
async def test_paths_outside_the_vm_are_refused(client: AsyncClient, tmp_path: Path, path: str) -> None:
    vm = client.vm.get_or_create(["escape"])
    await vm.write_file("/home/user/keep.txt", "k")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    with pytest.raises(PathOutsideVM):
        await vm.read_file(path)
    with pytest.raises(PathOutsideVM):
        await vm.write_file(path, "pwned")
    with pytest.raises(PathOutsideVM):
        await vm.delete_file(path)
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


async def test_symlinks_cannot_lead_outside(client: AsyncClient, tmp_path: Path) -> None:
    vm = client.vm.get_or_create(["links"])
    secret = tmp_path / "host-secret.txt"
    secret.write_text("host only")
    # links made by a process inside the VM, to host paths and relative climbs
    r = await vm.exec(
        f"ln -s {secret} abs && ln -s ../../../../../../{secret} rel && ln -s /etc etc "
        "&& mkdir -p d && ln -s /home/user/d inside && echo ok"
    )
    assert r["exit_code"] == 0, r
    for link in ("rel", "etc/passwd", "etc"):
        with pytest.raises(PathOutsideVM):
            await vm.read_file(f"/home/user/{link}")
        with pytest.raises(PathOutsideVM):
            await vm.write_file(f"/home/user/{link}", "overwrite")
    # an absolute link is read as the VM sees it: this host path under /tmp is the VM's own /tmp
    with pytest.raises(NotFound):
        await vm.read_file("/home/user/abs")
    await vm.write_file("/home/user/abs", "overwrite")
    assert secret.read_text() == "host only"
    assert await vm.read_file(str(secret)) == b"overwrite"  # it landed in the VM's private /tmp
    # a link that stays inside the VM is followed as the VM sees it
    await vm.write_file("/home/user/inside/f.txt", "via link")
    assert await vm.read_file("/home/user/d/f.txt") == b"via link"


async def test_other_vms_and_data_dir_are_invisible(client: AsyncClient, tmp_path: Path) -> None:
    a = client.vm.get_or_create(["a"])
    b = client.vm.get_or_create(["b"])
    await a.write_file("/home/user/mine.txt", "a's")
    r: Any = await b.exec("ls /home/user; cat /home/user/mine.txt; ls /; find / -name actorq.db 2>/dev/null")
    assert "a's" not in r["stdout"] and "actorq.db" not in r["stdout"]
    assert sorted(r["stdout"].split()) == sorted(
        ["bin", "dev", "etc", "home", "lib", "lib64", "proc", "sbin", "tmp", "usr", "opt"]
    )
    data = tmp_path / "data"
    r = await b.exec(f"cat {data}/actorq.db; ls {data}")
    assert r["exit_code"] != 0 and "No such file" in r["stderr"]
    r = await b.exec("cat /etc/shadow")
    assert r["exit_code"] != 0 and "Permission denied" in r["stderr"]  # host root's files are "other"
    r = await b.exec("echo x > /usr/bin/pwned; echo y > /etc/pwned; touch /opt/pi/x")
    assert "Read-only file system" in r["stderr"] or "Permission denied" in r["stderr"]
    assert not Path("/usr/bin/pwned").exists() and not Path("/etc/pwned").exists()


async def test_two_vms_working_at_once_do_not_see_each_other(client: AsyncClient) -> None:
    import asyncio

    a, b = client.vm.get_or_create(["twin-a"]), client.vm.get_or_create(["twin-b"])
    cmd = (
        "for i in $(seq 20); do echo {name} >> same.txt; ps -e | wc -l >> procs; sleep 0.01; done; "
        "sort -u same.txt"
    )
    ra, rb = await asyncio.gather(a.exec(cmd.format(name="a")), b.exec(cmd.format(name="b")))
    assert ra["stdout"] == "a\n" and rb["stdout"] == "b\n"  # same path, separate files
    for vm in (a, b):  # each sees only its own few processes (its own PID namespace)
        counts = [int(x) for x in (await vm.read_file("/home/user/procs")).split()]
        assert max(counts) <= 6, counts
