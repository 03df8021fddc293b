"""What a VM may use: ``Limits`` (memory, CPU, processes, disk) and ``Network`` (what it may reach).

Both are plain declarations checked when ``agent_os(...)`` is called, so a wrong value fails at
import time, not when the first VM wakes. How they are enforced lives in ``host.py`` (cgroups,
rlimits, the VM's own network namespace) and ``disk.py`` (``/home/user`` accounting).

Must not import the core or storage.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Limits:
    """Per-VM resource caps; ``None`` means unlimited.

    * ``memory_mb``: RAM of all the VM's processes together (its ``/tmp`` counts too: tmpfs pages
      are charged to whoever writes them); over it, the kernel kills a process of that VM.
    * ``cpus``: CPU time as a number of cores (``0.5`` = half of one core), a hard quota.
    * ``pids``: processes and threads of the VM at once; forks beyond it fail inside the VM.
    * ``disk_mb``: ``/home/user``; no single file may grow past it, and once the home holds more,
      the VM's processes are stopped and writes raise ``ResourceLimit`` until files are deleted.
    * ``tmp_mb``: size of the VM's ``/tmp`` (a tmpfs); writes beyond it fail with ``ENOSPC``.
    """

    memory_mb: int | None = 2048
    cpus: float | None = 1.0
    pids: int | None = 512
    disk_mb: int | None = 4096
    tmp_mb: int | None = 512

    def __post_init__(self) -> None:
        for name in ("memory_mb", "pids", "disk_mb", "tmp_mb"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"Limits.{name} is a positive integer or None, not {value!r}")
        if self.memory_mb is not None and self.memory_mb < 16:
            raise ValueError("Limits.memory_mb below 16 cannot start a sandbox")
        if self.pids is not None and self.pids < 8:
            raise ValueError("Limits.pids below 8 cannot start a sandbox (it needs helper processes)")
        c = self.cpus
        if c is not None and (
            isinstance(c, bool) or not isinstance(c, int | float) or not math.isfinite(c) or c < 0.01
        ):
            raise ValueError(f"Limits.cpus is a number of cores >= 0.01 or None, not {c!r}")


UNLIMITED = Limits(memory_mb=None, cpus=None, pids=None, disk_mb=None, tmp_mb=None)

# Never reachable from a VM unless a Network(allow=[...]) range covers them: the host's loopback is
# out of reach anyway (the VM has its own), and the host's own addresses are added at each wake.
BLOCKED = (
    "0.0.0.0/8",  # "this network"
    "10.0.0.0/8",  # private
    "100.64.0.0/10",  # carrier-grade NAT (cloud providers' internal services live here too)
    "127.0.0.0/8",  # loopback of the host, were it ever routed
    "169.254.0.0/16",  # link-local: cloud metadata endpoints (169.254.169.254)
    "172.16.0.0/12",  # private
    "192.0.0.0/24",  # IETF protocol assignments
    "192.168.0.0/16",  # private
    "198.18.0.0/15",  # benchmarking networks
    "224.0.0.0/4",  # multicast
    "240.0.0.0/4",  # reserved, and the broadcast address
)


def _networks(values: Iterable[str], what: str) -> tuple[str, ...]:
    out = []
    for v in values:
        if not isinstance(v, str):
            raise ValueError(f"Network.{what} holds CIDR strings such as '10.1.2.3/32', not {v!r}")
        try:
            net = ipaddress.ip_network(v, strict=False)
        except ValueError:
            raise ValueError(f"Network.{what}: {v!r} is not an IPv4 network such as '10.1.2.3/32'") from None
        if net.version != 4:
            raise ValueError(f"Network.{what}: {v!r}: VMs reach the outside over IPv4 only")
        out.append(str(net))
    return tuple(out)


@dataclass(frozen=True)
class Network:
    """What a VM's processes can reach. Each VM has its own network namespace either way.

    * ``outbound``: connections to the internet through user-mode networking (slirp4netns); the
      host's loopback and own addresses, private, link-local and CGNAT ranges stay unreachable.
    * ``host_ports``: host loopback ports forwarded into the VM's ``127.0.0.1`` (a local LLM, a
      package cache); nothing else of the host's loopback is reachable.
    * ``allow``: IPv4 ranges opted back in (``["10.1.2.3/32"]``), e.g. a private package registry.

    ``agent_os(network=True)`` is ``Network()``; ``network=False`` is ``Network(outbound=False)``:
    only the VM's own loopback.
    """

    outbound: bool = True
    host_ports: tuple[int, ...] = field(default=())
    allow: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        ports = tuple(self.host_ports)
        for p in ports:
            if isinstance(p, bool) or not isinstance(p, int) or not 0 < p < 65536:
                raise ValueError(f"Network.host_ports holds port numbers 1..65535, not {p!r}")
        if len(set(ports)) != len(ports):
            raise ValueError("Network.host_ports lists a port twice")
        object.__setattr__(self, "host_ports", ports)
        object.__setattr__(self, "allow", _networks(self.allow, "allow"))
        if self.allow and not self.outbound:
            raise ValueError("Network.allow opens ranges for outbound connections; outbound=False has none")

    @classmethod
    def of(cls, value: bool | Network) -> Network:
        if isinstance(value, Network):
            return value
        if isinstance(value, bool):
            return cls() if value else cls(outbound=False)
        raise ValueError(f"network is True, False or a Network(...), not {value!r}")


__all__ = ["BLOCKED", "UNLIMITED", "Limits", "Network"]
