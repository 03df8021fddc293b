"""Per-VM control groups: memory, CPU and process-count limits, created under the server's own groups.

Like a well-behaved service under systemd, the server never moves itself: in each controller it
finds its own group (``/proc/self/cgroup``), makes one directory for this process beneath it
(``actorq-<pid>-<start time>``) and one per awake VM beneath that, puts only the VM's sandbox
processes there, and removes the directories when the VM stops. Directories left by a server that
died (``kill -9``) are found by their dead owner's pid and start time, emptied and removed the next
time a server on this machine starts a VM.

cgroup v1 (the memory, cpu, cpuacct and pids hierarchies, writable by root) and v2 (only where the
controllers are already delegated to the server's group, i.e. listed in its
``cgroup.subtree_control``) are both driven from one table of file names. What cannot be enforced
is reported once, so the caller can warn and fall back to rlimits.

Must not import the core or storage.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
CONTROLLERS = ("memory", "cpu", "pids")
_PERIOD_US = 100_000


@dataclass(frozen=True)
class Hierarchy:
    """Where one controller lives for this process: its directory, and the cgroup version."""

    controller: str
    own: Path  # the server's own group in this controller
    v2: bool


@dataclass
class Support:
    hierarchies: dict[str, Hierarchy] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)  # controller -> why it is unusable

    @property
    def usable(self) -> bool:
        return bool(self.hierarchies)


def _mounts(mountinfo: str) -> list[tuple[str, str, str, set[str]]]:
    """(mount root, mount point, fstype, super options) of every cgroup mount."""
    out = []
    for line in mountinfo.splitlines():
        left, _, right = line.partition(" - ")
        fields, rfields = left.split(), right.split()
        if len(fields) < 5 or len(rfields) < 3 or rfields[0] not in ("cgroup", "cgroup2"):
            continue
        out.append((fields[3], fields[4], rfields[0], set(rfields[2].split(","))))
    return out


def discover(proc_cgroup: str | None = None, mountinfo: str | None = None) -> Support:
    """Find, for each controller we use, the server's own group and whether we may make children."""
    proc_cgroup = Path("/proc/self/cgroup").read_text() if proc_cgroup is None else proc_cgroup
    mountinfo = Path("/proc/self/mountinfo").read_text() if mountinfo is None else mountinfo
    mounts = _mounts(mountinfo)
    support = Support()
    v2_path: str | None = None
    for line in proc_cgroup.splitlines():
        hid, _, rest = line.partition(":")
        names, _, path = rest.partition(":")
        if hid == "0" and names == "":
            v2_path = path
            continue
        for name in names.split(","):
            if name not in CONTROLLERS:
                continue
            for root, point, fstype, opts in mounts:
                if fstype == "cgroup" and name in opts and path.startswith(root):
                    own = Path(point) / os.path.relpath(path, root)
                    support.hierarchies[name] = Hierarchy(name, own, v2=False)
                    break
    if v2_path is not None:
        for root, point, fstype, _ in mounts:
            if fstype != "cgroup2" or not v2_path.startswith(root):
                continue
            own = Path(point) / os.path.relpath(v2_path, root)
            try:
                delegated = set((own / "cgroup.subtree_control").read_text().split())
            except OSError:
                delegated = set()
            for name in CONTROLLERS:
                if name not in support.hierarchies and name in delegated:
                    support.hierarchies[name] = Hierarchy(name, own, v2=True)
            break
    for name in CONTROLLERS:
        h = support.hierarchies.get(name)
        if h is None:
            support.missing[name] = "no v1 hierarchy and not delegated on cgroup v2"
        elif not os.access(h.own, os.W_OK):
            del support.hierarchies[name]
            support.missing[name] = f"the server's own {name} group is not writable"
    return support


def _start_time(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _kill_and_remove(group: Path) -> None:
    """SIGKILL everything in ``group`` (and beneath), then remove the directories, deepest first."""
    for child in sorted((p for p in group.iterdir() if p.is_dir()), reverse=True) if group.is_dir() else []:
        _kill_and_remove(child)
    for _ in range(100):
        try:
            pids = [int(p) for p in (group / "cgroup.procs").read_text().split()]
        except OSError:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        try:
            group.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno != errno.EBUSY:
                return
        time.sleep(0.01)  # killed tasks take a moment to leave the group


class Manager:
    """This server process's parent group in each usable controller, made on first use."""

    def __init__(self, support: Support) -> None:
        self.support = support
        me = os.getpid()
        self.name = f"actorq-{me}-{_start_time(me)}"
        self._made = False

    def _sweep(self, own: Path) -> None:
        """Remove groups left by dead servers (their pid is gone or now names another process)."""
        for d in own.glob("actorq-*-*"):
            _, pid, start = d.name.split("-", 2)
            if pid.isdigit() and _start_time(int(pid)) != start:
                _kill_and_remove(d)

    def parent(self, h: Hierarchy) -> Path:
        path = h.own / self.name
        if not self._made:
            for hh in self.support.hierarchies.values():
                self._sweep(hh.own)
            self._made = True
        if not path.is_dir():
            path.mkdir(mode=0o755, exist_ok=True)
            if h.v2:
                mine = [c for c, o in self.support.hierarchies.items() if o.v2 and o.own == h.own]
                _write(path / "cgroup.subtree_control", " ".join(f"+{c}" for c in mine))
        return path

    def close(self) -> None:
        for h in self.support.hierarchies.values():
            _kill_and_remove(h.own / self.name)


def _write(path: Path, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


@dataclass
class Usage:
    memory_bytes: int | None = None
    memory_peak_bytes: int | None = None
    oom_kills: int | None = None
    pids: int | None = None
    forks_refused: int | None = None  # forks that failed at pids.max
    cpu_seconds: float | None = None


class VMGroup:
    """The groups of one VM, one per usable controller; limits written once at creation."""

    def __init__(self, manager: Manager, name: str) -> None:
        self.manager = manager
        self.name = name
        self.dirs: dict[str, Path] = {}

    def create(self, *, memory_mb: int | None, cpus: float | None, pids: int | None) -> None:
        seen: set[Path] = set()
        for c, h in self.manager.support.hierarchies.items():
            d = self.manager.parent(h) / self.name
            if d not in seen:
                if d.exists():
                    _kill_and_remove(d)  # a previous wake of this VM that did not clean up
                d.mkdir(mode=0o755)
                seen.add(d)
            self.dirs[c] = d
            if c == "memory" and memory_mb is not None:
                limit = str(memory_mb * 1024 * 1024)
                if h.v2:
                    _write(d / "memory.max", limit)
                    with contextlib.suppress(OSError):  # no swap accounting: nothing to cap
                        _write(d / "memory.swap.max", "0")
                else:
                    _write(d / "memory.limit_in_bytes", limit)
                    with contextlib.suppress(OSError):
                        _write(d / "memory.memsw.limit_in_bytes", limit)
            elif c == "cpu" and cpus is not None:
                quota = max(1000, round(cpus * _PERIOD_US))
                if h.v2:
                    _write(d / "cpu.max", f"{quota} {_PERIOD_US}")
                else:
                    _write(d / "cpu.cfs_period_us", str(_PERIOD_US))
                    _write(d / "cpu.cfs_quota_us", str(quota))
                # quota left unused while idle may be spent in a burst (an agent starting up uses
                # several cores for a moment); on average the VM still gets ``cpus``
                with contextlib.suppress(OSError):  # kernels before 5.14 have no burst
                    _write(d / ("cpu.max.burst" if h.v2 else "cpu.cfs_burst_us"), str(quota))
            elif c == "pids" and pids is not None:
                _write(d / "pids.max", str(pids))

    def add(self, pid: int) -> None:
        """Move one process (not yet running VM code) into every group of the VM."""
        for d in dict.fromkeys(self.dirs.values()):
            _write(d / "cgroup.procs", str(pid))

    def usage(self) -> Usage:
        u = Usage()
        h = self.manager.support.hierarchies
        if "memory" in self.dirs:
            d, v2 = self.dirs["memory"], h["memory"].v2
            u.memory_bytes = _read_int(d / ("memory.current" if v2 else "memory.usage_in_bytes"))
            u.memory_peak_bytes = _read_int(d / ("memory.peak" if v2 else "memory.max_usage_in_bytes"))
            u.oom_kills = _read_key(d / ("memory.events" if v2 else "memory.oom_control"), "oom_kill")
        if "pids" in self.dirs:
            u.pids = _read_int(self.dirs["pids"] / "pids.current")
            u.forks_refused = _read_key(self.dirs["pids"] / "pids.events", "max")
        if "cpu" in self.dirs and h["cpu"].v2:
            usec = _read_key(self.dirs["cpu"] / "cpu.stat", "usage_usec")
            u.cpu_seconds = None if usec is None else usec / 1e6
        return u

    def remove(self) -> None:
        for d in dict.fromkeys(self.dirs.values()):
            _kill_and_remove(d)
        self.dirs.clear()


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _read_key(path: Path, key: str) -> int | None:
    try:
        for line in path.read_text().splitlines():
            k, _, v = line.partition(" ")
            if k == key:
                return int(v)
    except (OSError, ValueError):
        return None
    return None
