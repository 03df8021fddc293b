"""The agent VM's Prometheus series, recorded into the core's registry (the server renders them).

Figures of the awake VMs (how many, their processes and agent sessions, what their cgroups
counted) are read from the machines themselves when scraped; prompts and the kills a limit caused
outside the kernel (disk cap, exec timeout) are recorded as they happen. Labels are the agent type
(as declared to ``agent_os``) and the limit; never a VM's key or id.

Only ``machine``, ``vm`` and ``actions/`` record here (the rest of ``agent_os`` knows no core).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Literal

from prometheus_client import Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from actorq.core import METRICS_REGISTRY

if TYPE_CHECKING:
    from actorq.agent_os.machine import Machine

# seconds: a prompt answered at once up to an agent working for an hour
PROMPT_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0)

PROMPT_SECONDS = Histogram(
    "actorq_vm_prompt_seconds",
    "How long agent prompts took (send_prompt), by agent type",
    ("agent",),
    buckets=PROMPT_BUCKETS,
    registry=METRICS_REGISTRY,
)

Limit = Literal["memory", "disk", "time"]


class _VMs(Collector):
    """The awake VMs of this process, and the counts of those gone to sleep."""

    def __init__(self) -> None:
        self.machines: set[Machine] = set()
        self._lock = threading.Lock()  # scrapes may come from another thread than the VMs' loop
        self.kills: dict[str, int] = {"memory": 0, "disk": 0, "time": 0}
        self.forks_refused = 0

    def add(self, machine: Machine) -> None:
        with self._lock:
            self.machines.add(machine)

    def remove(self, machine: Machine) -> None:
        """The VM stops: keep what its cgroups counted (they go with it)."""
        oom, refused = _cgroup_counts(machine)
        with self._lock:
            if machine in self.machines:
                self.machines.discard(machine)
                self.kills["memory"] += oom
                self.forks_refused += refused

    def killed(self, limit: Limit, n: int = 1) -> None:
        with self._lock:
            self.kills[limit] += n

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            machines = list(self.machines)
            kills = dict(self.kills)
            refused = self.forks_refused
        processes = sessions = 0
        for m in machines:
            processes += m.processes.running
            sessions += len(m.sessions.live)
            oom, forks_refused = _cgroup_counts(m)
            kills["memory"] += oom
            refused += forks_refused
        for name, doc, value in (
            ("actorq_vm_awake", "Agent VMs awake in this process", len(machines)),
            ("actorq_vm_processes", "Processes running in those VMs (exec and spawn)", processes),
            ("actorq_vm_sessions", "Agent sessions with their agent running in those VMs", sessions),
        ):
            gauge = GaugeMetricFamily(name, doc)
            gauge.add_metric([], value)
            yield gauge
        family = CounterMetricFamily(
            "actorq_vm_limit_kills",
            "VM processes killed by a limit: memory (the kernel's OOM killer in the VM's cgroup), "
            "disk (stopped when the home went over its cap), time (an exec past its timeout)",
            labels=["limit"],
        )
        for limit, n in sorted(kills.items()):
            family.add_metric([limit], n)
        yield family
        pids = CounterMetricFamily(
            "actorq_vm_forks_refused", "New processes refused because a VM was at its pids limit"
        )
        pids.add_metric([], refused)
        yield pids


def _cgroup_counts(machine: Machine) -> tuple[int, int]:
    group = machine.host.cgroup
    if group is None or not group.dirs:
        return 0, 0
    usage = group.usage()
    return usage.oom_kills or 0, usage.forks_refused or 0


VMS = _VMs()
METRICS_REGISTRY.register(VMS)


def awake(machine: Machine) -> None:
    VMS.add(machine)


def asleep(machine: Machine) -> None:
    VMS.remove(machine)


def killed(limit: Limit, n: int = 1) -> None:
    if n:
        VMS.killed(limit, n)


def prompted(agent: str, seconds: float) -> None:
    PROMPT_SECONDS.labels(agent).observe(seconds)


__all__ = ["PROMPT_BUCKETS", "asleep", "awake", "killed", "prompted"]
