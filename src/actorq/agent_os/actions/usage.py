"""The VM's limits and what it uses now (``get_usage``): the caps its type declares and the
current memory, processes and CPU time from its cgroups, and its ``/home/user`` size from the
disk guard, for a client (the inspector) to show next to each other."""

from __future__ import annotations

from actorq.agent_os.machine import running
from actorq.core import ActorContext
from actorq.vm_types import VMUsage

_MB = 1024 * 1024


async def get_usage(c: ActorContext) -> VMUsage:
    """The VM type's limits (bytes, processes, cores; ``None``: no limit) and the VM's current
    usage (``None``: not measured here, e.g. without cgroups, or the disk not measured yet)."""
    m = running(c)
    lim = m.host.limits
    limits = {
        "memory_bytes": None if lim.memory_mb is None else lim.memory_mb * _MB,
        "cpus": lim.cpus,
        "pids": lim.pids,
        "disk_bytes": None if lim.disk_mb is None else lim.disk_mb * _MB,
        "tmp_bytes": None if lim.tmp_mb is None else lim.tmp_mb * _MB,
    }
    group = m.host.cgroup
    enforced = group is not None and bool(group.dirs)
    u = group.usage() if group is not None and group.dirs else None
    disk = await m.disk.current()
    return VMUsage(
        limits=limits,
        cgroups=enforced,
        memory_bytes=None if u is None else u.memory_bytes,
        memory_peak_bytes=None if u is None else u.memory_peak_bytes,
        pids=None if u is None else u.pids,
        cpu_seconds=None if u is None else u.cpu_seconds,
        oom_kills=None if u is None else u.oom_kills,
        forks_refused=None if u is None else u.forks_refused,
        disk_bytes=disk,
        disk_over=m.disk.over,
    )
