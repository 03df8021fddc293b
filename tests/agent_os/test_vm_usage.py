"""``get_usage``: a VM's declared limits beside what it uses now (cgroups, disk guard)."""

from __future__ import annotations

from pathlib import Path

from actorq import setup
from actorq.agent_os import Limits, agent_os, software
from actorq.vm_types import VMUsage

capped = setup(
    use={
        "capped": agent_os(
            software=[software.common],
            network=False,
            limits=Limits(memory_mb=256, cpus=0.5, pids=64, disk_mb=32, tmp_mb=16),
        )
    }
)


async def test_usage_reports_the_declared_limits_and_what_the_vm_uses(tmp_path: Path) -> None:
    async with capped.test(storage=tmp_path / "data") as c:
        vm = c.agent_os("capped").get_or_create(["u"])
        await vm.write_file("/home/user/blob.bin", b"x" * 200_000)
        await vm.exec("sync")
        u = await vm.get_usage()
        assert isinstance(u, VMUsage)
        mb = 1024 * 1024
        assert u.limits == {
            "memory_bytes": 256 * mb,
            "cpus": 0.5,
            "pids": 64,
            "disk_bytes": 32 * mb,
            "tmp_bytes": 16 * mb,
        }
        assert u.disk_bytes is not None and u.disk_bytes >= 200_000 and u.disk_over is False
        # what a process wrote counts too, at once (not only at the disk guard's next walk)
        r = await vm.exec("head -c 3000000 /dev/zero > /home/user/more.bin")
        assert r.exit_code == 0, r.stderr
        assert (await vm.get_usage()).disk_bytes >= 3_200_000  # type: ignore[operator]
        if u.cgroups:  # the machine has usable cgroups: the kernel's own counts
            assert u.memory_bytes is not None and u.memory_bytes > 0
            assert u.pids is not None and 1 <= u.pids <= 64
        else:
            assert u.memory_bytes is None and u.pids is None
