"""One awake VM's machinery, opened and closed as a whole: host thread, sandbox, files, disk cap.

``Workspace.open`` claims the VM's uid, prepares its directories on disk (root-only, the home owned
by the VM's uid), starts its host thread (namespaces, cgroups, network, see ``host.py``) and builds
the sandbox launcher and the file actions on top. The VM actor opens one on each wake and closes it
on sleep; tests and benchmarks open one directly, without an actor around it.

Must not import the core or storage.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import stat as stat_mod
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from actorq.agent_os import cgroups, trees, uids
from actorq.agent_os.disk import DiskGuard
from actorq.agent_os.files import VMFiles
from actorq.agent_os.fs import VMFileSystem
from actorq.agent_os.host import VMHost, check_host, log
from actorq.agent_os.limits import Limits, Network
from actorq.agent_os.sandbox import Sandbox
from actorq.agent_os.software import Software

_cgroups_lock = threading.Lock()
_cgroups: list[cgroups.Manager | None] = []


def cgroup_manager() -> cgroups.Manager | None:
    """This process's cgroup parent (made once); says once what cannot be enforced, and why."""
    with _cgroups_lock:
        if not _cgroups:
            support = cgroups.discover()
            if support.missing:
                what = ", ".join(f"{name} ({why})" for name, why in support.missing.items())
                log.warning(
                    "agent VM limits not enforced by cgroups: %s; falling back to rlimits "
                    "(processes, file size, and data size where memory is missing)",
                    what,
                )
            manager = cgroups.Manager(support) if support.usable else None
            if manager is not None:
                atexit.register(manager.close)  # its per-VM groups went with their VMs; now the parent
            _cgroups.append(manager)
        return _cgroups[0]


def prepare_disk(root: Path, uid: int) -> Path:
    """The VM's directories on the host disk: root-only, but the home belongs to the VM's uid."""
    home = root / "home" / "user"
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    for d in (root, root / "home"):
        os.chmod(d, 0o700)
    for stale in ("tmp", "etc"):  # kept on disk by earlier versions; /tmp is a tmpfs now
        shutil.rmtree(root / stale, ignore_errors=True)
    st = home.lstat()
    if st.st_uid != uid:
        fd = os.open(home, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            trees.chown_tree(fd, uid)
        finally:
            os.close(fd)
    if stat_mod.S_IMODE(st.st_mode) != 0o755:
        os.chmod(home, 0o755)
    return home


@dataclass
class Workspace:
    host: VMHost
    sandbox: Sandbox
    files: VMFiles
    disk: DiskGuard

    @classmethod
    async def open(
        cls,
        root: Path,
        *,
        data_dir: Path,
        name: str,
        software: Sequence[Software],
        network: Network,
        limits: Limits,
        before_home: Callable[[Path, int], Awaitable[Callable[[], Any] | None]] | None = None,
        on_over_disk: Callable[[int], Awaitable[None]] | None = None,
    ) -> Workspace:
        """``root``: the VM's directory on disk; ``name``: a stable id (uid claim, cgroup name);
        ``before_home(home, uid)`` may return a job the host thread runs before binding the home."""
        check_host()
        uid = uids.claim(data_dir, name)
        home = prepare_disk(root, uid)
        host = VMHost(
            name="vm-" + hashlib.blake2b(name.encode(), digest_size=8).hexdigest(),
            uid=uid,
            home=home,
            mounts=Sandbox.mounts(software),
            network=network,
            limits=limits,
            cgroup_manager=cgroup_manager(),
        )
        job = await before_home(home, uid) if before_home is not None else None
        await host.start(before_home=job)
        assert host.root_fd is not None

        async def nothing(used: int) -> None:
            return None

        disk = DiskGuard(host, limits.disk_mb, on_over_disk or nothing)
        files = VMFiles(host, VMFileSystem(host.root_fd, host.stage.vm), disk)
        try:
            if limits.disk_mb is not None:
                await disk.measure()
        except BaseException:
            await host.close()
            raise
        return cls(host, Sandbox(host, software), files, disk)

    async def close(self) -> None:
        await self.host.close()
