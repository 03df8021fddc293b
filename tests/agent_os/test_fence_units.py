"""The pure parts of a VM's fence: Limits and Network declarations, the policy rules, the host's
addresses and gateways, and finding the server's own cgroups (v1, and v2 where delegated)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from actorq.agent_os import Limits, Network, cgroups, network
from actorq.agent_os.limits import BLOCKED

FIB_TRIE = """Main:
  +-- 0.0.0.0/0 3 0 5
     |-- 0.0.0.0
        /0 universe UNICAST
     +-- 127.0.0.0/8 2 0 2
        |-- 127.0.0.1
           /32 host LOCAL
     |-- 192.0.2.2
        /32 host LOCAL
     |-- 192.0.2.255
        /32 link BROADCAST
Local:
  +-- 0.0.0.0/0 3 0 5
     |-- 10.1.0.7
        /32 host LOCAL
     |-- 192.0.2.2
        /32 host LOCAL
"""

ROUTE = """Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0
eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
"""


def test_limits_and_network_are_checked_when_declared() -> None:
    assert Limits() == Limits(memory_mb=2048, cpus=1.0, pids=512, disk_mb=4096, tmp_mb=512)
    for bad in ({"memory_mb": 0}, {"pids": 3}, {"cpus": float("nan")}, {"disk_mb": True}, {"tmp_mb": 1.5}):
        with pytest.raises(ValueError):
            Limits(**bad)  # type: ignore[arg-type]
    assert Network.of(True) == Network() and Network.of(False) == Network(outbound=False)
    assert Network(host_ports=[8765]).host_ports == (8765,)  # type: ignore[arg-type]
    assert Network(allow=["10.1.2.3"]).allow == ("10.1.2.3/32",)  # type: ignore[arg-type]
    for bad_net in (
        {"host_ports": [0]},
        {"host_ports": [80, 80]},
        {"host_ports": ["80"]},
        {"allow": ["not-a-cidr"]},
        {"allow": ["fd00::/8"]},
        {"allow": ["10.0.0.0/8"], "outbound": False},
    ):
        with pytest.raises(ValueError):
            Network(**bad_net)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Network.of("yes")  # type: ignore[arg-type]


def test_host_addresses_and_gateways_are_read_from_the_kernels_tables() -> None:
    assert network.host_addresses(FIB_TRIE) == ["192.0.2.2", "10.1.0.7"]  # loopback left out
    assert network.host_gateways(ROUTE) == ["192.0.2.1"]


def test_rules_refuse_the_host_first_then_allow_then_refuse_private_ranges() -> None:
    text = network.rules(Network(allow=["10.9.9.9/32"]), ["192.0.2.2", "192.0.2.1"])  # type: ignore[arg-type]
    lines = text.splitlines()
    prio = {line.split("to ")[1].split()[0]: int(line.split()[3]) for line in lines}
    assert prio["192.0.2.2/32"] < prio["10.9.9.9/32"] < prio["10.0.0.0/8"]  # own address never allowed
    assert all(f"to {cidr} prohibit" in text for cidr in BLOCKED)
    assert "to 10.0.2.3/32 ipproto udp dport 53 lookup main" in text  # slirp's DNS, port 53 only
    assert all(line.startswith("rule add prio ") for line in lines)


V1_CGROUP = "12:pids:/svc\n4:memory:/svc\n2:cpu,cpuacct:/svc\n0::/svc\n"
V1_MOUNTS = """31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids
"""


def test_discover_finds_the_servers_own_v1_groups(tmp_path: Path) -> None:
    mounts = V1_MOUNTS.replace("/sys/fs/cgroup", str(tmp_path))
    for d in ("cpu,cpuacct/svc", "memory/svc", "pids/svc"):
        (tmp_path / d).mkdir(parents=True)
    found = cgroups.discover(V1_CGROUP, mounts)
    assert {c: h.own for c, h in found.hierarchies.items()} == {
        "pids": tmp_path / "pids/svc",
        "memory": tmp_path / "memory/svc",
        "cpu": tmp_path / "cpu,cpuacct/svc",
    }
    assert not found.missing and not any(h.v2 for h in found.hierarchies.values())


def test_discover_uses_v2_only_where_the_controllers_are_delegated(tmp_path: Path) -> None:
    mounts = f"41 31 0:38 / {tmp_path} rw - cgroup2 cgroup2 rw\n"
    own = tmp_path / "svc"
    own.mkdir()
    (own / "cgroup.subtree_control").write_text("memory pids\n")
    found = cgroups.discover("0::/svc\n", mounts)
    assert sorted(found.hierarchies) == ["memory", "pids"] and all(h.v2 for h in found.hierarchies.values())
    assert "cpu" in found.missing  # not delegated: said, and left to rlimits


def test_a_vm_group_gets_its_limits_written_in_each_version(tmp_path: Path) -> None:
    own = tmp_path / "svc"
    own.mkdir()
    (own / "cgroup.subtree_control").write_text("memory cpu pids\n")
    support = cgroups.discover("0::/svc\n", f"41 31 0:38 / {tmp_path} rw - cgroup2 cgroup2 rw\n")
    manager = cgroups.Manager(support)
    group = cgroups.VMGroup(manager, "vm-test")
    group.create(memory_mb=64, cpus=0.5, pids=40)
    d = own / manager.name / "vm-test"
    assert (d / "memory.max").read_text() == str(64 << 20)
    assert (d / "cpu.max").read_text() == "50000 100000"
    assert (d / "pids.max").read_text() == "40"
    assert (own / manager.name / "cgroup.subtree_control").read_text() == "+memory +cpu +pids"
    assert os.path.isdir(d)
