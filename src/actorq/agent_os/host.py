"""The host side of one awake VM: a thread whose namespaces, cgroups and credentials are the VM's.

Everything the server does on a VM's behalf happens on that VM's thread: file actions, starting
sandbox processes, opening sockets for ``vm_fetch`` and port relays, snapshots. Linux keeps
namespaces and credentials per thread, so the thread can be inside the VM's world while the rest of
the server is not:

* **its own mount namespace**, private, with a small tmpfs at a fixed *stage* directory holding the
  VM's files as bubblewrap will bind them: ``vm/home/user`` (a bind of the VM's home on disk),
  ``vm/tmp`` (a size-capped tmpfs, the VM's ``/tmp``), the VM's ``passwd``/``group``/``hostname``/
  ``resolv.conf`` and read-only binds of each declared software directory. Host-side file actions
  resolve paths under ``vm/`` with ``openat2(RESOLVE_IN_ROOT)``; sandbox processes start from here;
  nothing of it is visible to the rest of the host, and it all disappears with the thread.
* **its own network, IPC and UTS namespaces**, which the VM's processes inherit (``network.py``).
* **the VM's uid for file access** (``setfsuid``) whenever it touches VM files, with no
  supplementary groups: even a wrong path check cannot read or write what that uid cannot, and
  files it creates belong to the VM.
* **the VM's uid for a moment when it forks** a sandbox: ``bwrap`` then runs unprivileged, in a
  user namespace of its own, and never as root; the fork is a ``vfork`` (no page-table copy).

Each sandbox is started paused (``--block-fd``) until its two processes are in the VM's cgroups
and its first one has the VM's rlimits, so no VM code ever runs outside them. When the thread ends (the VM
sleeps, or the server dies), bubblewrap's ``--die-with-parent`` takes every VM process with it.

Must not import the core or storage.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import fcntl
import logging
import os
import queue
import resource
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from actorq.agent_os import _linux, cgroups, seccomp
from actorq.agent_os import network as vmnet
from actorq.agent_os.limits import Limits, Network
from actorq.errors import ResourceLimit, SandboxUnavailable, Unavailable

log = logging.getLogger("actorq.agent_os")

P = ParamSpec("P")
T = TypeVar("T")

_TIOCSPTLCK = 0x40045431  # the same on x86_64 and aarch64 (asm-generic)
_TIOCGPTPEER = 0x5441

VM_UID_INSIDE = 1000  # what VM processes see as their uid (a user namespace maps it to the VM's uid)
HOME = "/home/user"
# the whole environment bubblewrap itself starts with: nothing of the server's, nothing of a caller's
LAUNCH_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}


def bwrap_path() -> str:
    path = shutil.which("bwrap")
    if path is None:
        raise SandboxUnavailable(
            "bubblewrap (bwrap) is not installed; agent VMs need it: apt-get install bubblewrap",
            details={"missing": "bwrap"},
        )
    return path


def check_host() -> None:
    """Raise SandboxUnavailable unless this server can host agent VMs (root, Linux, bubblewrap)."""
    bwrap_path()
    if os.geteuid() != 0:
        raise SandboxUnavailable(
            "agent VMs need the server to run as root: it gives each VM its own network namespace, "
            "cgroups and an unprivileged uid of its own (VM processes never run as root)",
            details={"missing": "root"},
        )
    if not _linux.supported():
        raise SandboxUnavailable("agent VMs support Linux on x86_64 and aarch64 only")


_stage_lock = threading.Lock()
_stage: str | None = None


def stage_dir() -> str:
    """An empty root-owned directory every VM thread mounts its own tmpfs on (in its own namespace).

    Its path is fixed per host so nothing accumulates; one that is not a plain root-owned 0755
    directory (someone else made it) is not trusted and a fresh one is made instead.
    """
    global _stage
    with _stage_lock:
        if _stage is None:
            path = "/tmp/.actorq-vm-stage"
            try:
                os.mkdir(path, 0o755)
            except FileExistsError:
                pass
            st = os.lstat(path)
            if not (
                os.path.isdir(path)
                and not os.path.islink(path)
                and st.st_uid == 0
                and st.st_mode & 0o7777 == 0o755
            ):
                path = tempfile.mkdtemp(prefix="actorq-vm-stage-")
                os.chmod(path, 0o755)
            _stage = path
        return _stage


def passwd(uid: int) -> str:
    return f"root:x:0:0:root:/root:/bin/sh\nuser:x:{uid}:{uid}:user:{HOME}:/bin/bash\n"


def group(uid: int) -> str:
    return f"root:x:0:\nuser:x:{uid}:\n"


def _memfd(name: str, data: bytes) -> int:
    fd = os.memfd_create(name, os.MFD_CLOEXEC)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.lseek(fd, 0, os.SEEK_SET)
    except BaseException:
        os.close(fd)
        raise
    return fd


@dataclass(frozen=True)
class Stage:
    """Paths inside a VM thread's mount namespace."""

    root: str  # the stage tmpfs

    @property
    def vm(self) -> str:  # the VM root for host-side file actions: home/user and tmp only
        return f"{self.root}/vm"

    @property
    def home(self) -> str:
        return f"{self.root}/vm/home/user"

    @property
    def tmp(self) -> str:
        return f"{self.root}/vm/tmp"

    @property
    def dev(self) -> str:
        return f"{self.root}/dev"

    def etc(self, name: str) -> str:
        return f"{self.root}/etc/{name}"

    def software(self, i: int) -> str:
        return f"{self.root}/sw/{i}"


class VMHost:
    """One VM's host thread and what it holds (see the module docstring)."""

    def __init__(
        self,
        *,
        name: str,
        uid: int,
        home: Path,
        mounts: Sequence[tuple[str, str]],
        network: Network,
        limits: Limits,
        cgroup_manager: cgroups.Manager | None,
    ) -> None:
        self.name = name
        self.uid = uid
        self.home_on_disk = home
        self.mounts = tuple(mounts)
        self.network = network
        self.limits = limits
        self.stage = Stage(stage_dir())
        self.cgroup: cgroups.VMGroup | None = (
            cgroups.VMGroup(cgroup_manager, name) if cgroup_manager is not None else None
        )
        self.root_fd: int | None = None  # the stage's vm/ directory, for openat2
        self.tid: int | None = None
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], concurrent.futures.Future[Any]] | None]
        self._jobs = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._slirp: vmnet.Slirp | None = None
        self._relay: vmnet.PortRelay | None = None
        self._closed = False
        self.timings: dict[str, float] = {}  # how long each part of start() took (benchmarks, logs)

    # -- the thread ---------------------------------------------------------------------------
    def _main(self, ready: concurrent.futures.Future[None]) -> None:
        try:
            self._enter()
        except BaseException as exc:
            ready.set_exception(exc)
            return
        ready.set_result(None)
        while (job := self._jobs.get()) is not None:
            fn, fut = job
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(fn())
            except BaseException as exc:
                fut.set_exception(exc)
        if self.root_fd is not None:
            os.close(self.root_fd)

    def _enter(self) -> None:
        """On the new thread: make its mount and network namespaces and fill the stage."""
        self.tid = threading.get_native_id()
        _linux.drop_groups()
        _linux.unshare(_linux.CLONE_NEWNS)
        _linux.mount(None, "/", None, _linux.MS_REC | _linux.MS_PRIVATE)  # nothing leaks back out
        st = self.stage
        _linux.mount("tmpfs", st.root, "tmpfs", _linux.MS_NOSUID | _linux.MS_NODEV, "size=8m,mode=0755")
        for d in ("vm", "vm/home", "vm/home/user", "vm/tmp", "etc", "sw", "dev"):
            os.mkdir(f"{st.root}/{d}", 0o755)
        size = f"size={self.limits.tmp_mb}m," if self.limits.tmp_mb is not None else ""
        _linux.mount(
            "tmpfs",
            st.tmp,
            "tmpfs",
            _linux.MS_NOSUID | _linux.MS_NODEV,
            f"{size}mode=1777,uid={self.uid},gid={self.uid}",
        )
        files = {
            "passwd": passwd(VM_UID_INSIDE),
            "group": group(VM_UID_INSIDE),
            "hostname": "vm\n",
            "resolv.conf": vmnet.resolv_conf(self.network),
        }
        for fname, text in files.items():
            with open(st.etc(fname), "w") as f:
                f.write(text)
        for i, (host_path, _) in enumerate(self.mounts):
            target = st.software(i)
            if os.path.isdir(host_path):
                os.mkdir(target, 0o755)
            else:
                open(target, "w").close()
            self._bind(host_path, target, readonly=True)
        self._make_dev()
        # one network, IPC and UTS namespace per VM, made here once, not by bwrap for each process
        # (their processes share them as one machine would; each costs ~0.3 ms per launch)
        _linux.unshare(_linux.CLONE_NEWNET | _linux.CLONE_NEWIPC | _linux.CLONE_NEWUTS)
        socket.sethostname("vm")
        vmnet.loopback_up()
        vmnet.no_ipv6_on_new_links()
        self.root_fd = os.open(st.vm, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)

    def _make_dev(self) -> None:
        """The VM's ``/dev``, made once per wake and bound into each sandbox (bubblewrap's own
        ``--dev`` costs ~1.8 ms per process): the host's harmless device nodes, a devpts instance
        of the VM's own (its terminals) and a ``/dev/shm`` tmpfs, shared by its processes."""
        dev = self.stage.dev
        _linux.mount("tmpfs", dev, "tmpfs", _linux.MS_NOSUID | _linux.MS_NOEXEC, "size=64k,mode=0755")
        for node in ("null", "zero", "full", "random", "urandom", "tty"):
            open(f"{dev}/{node}", "w").close()
            self._bind(f"/dev/{node}", f"{dev}/{node}", readonly=False)
        for link, target in (
            ("fd", "/proc/self/fd"),
            ("stdin", "/proc/self/fd/0"),
            ("stdout", "/proc/self/fd/1"),
            ("stderr", "/proc/self/fd/2"),
            ("ptmx", "pts/ptmx"),
        ):
            os.symlink(target, f"{dev}/{link}")
        os.mkdir(f"{dev}/pts", 0o755)
        flags = _linux.MS_NOSUID | _linux.MS_NOEXEC
        _linux.mount("devpts", f"{dev}/pts", "devpts", flags, "newinstance,ptmxmode=0666,mode=620")
        os.mkdir(f"{dev}/shm", 0o1777)
        _linux.mount("tmpfs", f"{dev}/shm", "tmpfs", flags | _linux.MS_NODEV, "size=64m,mode=1777")

    @staticmethod
    def _bind(source: str, target: str, *, readonly: bool) -> None:
        """Bind ``source`` on ``target`` in this thread's namespace, whatever its parents' modes."""
        fd = os.open(source, os.O_PATH | os.O_CLOEXEC)
        try:
            _linux.mount(f"/proc/thread-self/fd/{fd}", target, None, _linux.MS_BIND | _linux.MS_REC)
        finally:
            os.close(fd)
        if readonly:
            flags = _linux.MS_REMOUNT | _linux.MS_BIND | _linux.MS_RDONLY | _linux.MS_NOSUID | _linux.MS_NODEV
            _linux.mount(None, target, None, flags)

    def _bind_home(self) -> None:
        self._bind(str(self.home_on_disk), self.stage.home, readonly=False)

    def _fence_network(self) -> None:
        """Policy rules that refuse the host's addresses and private ranges (see ``network.py``)."""
        # /proc/net is the thread group leader's namespace: the host's, not this thread's
        own = list(dict.fromkeys([*vmnet.host_addresses(), *vmnet.host_gateways()]))
        batch = vmnet.rules(self.network, own)
        r = subprocess.run(
            ["ip", "-batch", "-"], input=batch.encode(), capture_output=True, env=LAUNCH_ENV, check=False
        )
        if r.returncode != 0:
            raise SandboxUnavailable(
                f"could not fence the VM's network (ip rule): {r.stderr.decode(errors='replace')[-300:]}",
                details={"missing": "iproute2"} if r.returncode == 127 else None,
            )

    # -- running work on the thread -------------------------------------------------------------
    async def call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn`` on the VM's thread (as root, inside the VM's namespaces)."""
        if self._thread is None or self._closed:
            raise Unavailable("the VM is not running (it is going to sleep); retry")
        fut: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._jobs.put((lambda: fn(*args, **kwargs), fut))
        return await asyncio.wrap_future(fut)

    async def as_vm_user(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn`` on the VM's thread with file access as the VM's uid (the second wall)."""

        def run() -> T:
            with _linux.fs_ids(self.uid, self.uid):
                return fn(*args, **kwargs)

        return await self.call(run)

    # -- lifecycle --------------------------------------------------------------------------------
    async def start(self, before_home: Callable[[], Any] | None = None) -> None:
        """Start the thread and the VM's world; ``before_home`` runs on it before the home is bound
        (a snapshot restore replaces the home directory, and a bind holds the old one). The parts
        after that are independent and run together; no VM process runs before start() returns."""
        ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._main, args=(ready,), name=f"vm-{self.name}", daemon=True)
        started = time.perf_counter()

        def timed(what: str, work: Awaitable[Any]) -> Awaitable[None]:
            async def run() -> None:
                t = time.perf_counter()
                await work
                self.timings[what] = (time.perf_counter() - t) * 1000

            return run()

        self._thread.start()
        try:
            await timed("namespaces_ms", asyncio.wrap_future(ready))
            if before_home is not None:
                await timed("restore_ms", self.call(before_home))
            parts = [timed("home_ms", self.call(self._bind_home))]
            if self.cgroup is not None:
                cg, lim = self.cgroup, self.limits
                create = asyncio.to_thread(cg.create, memory_mb=lim.memory_mb, cpus=lim.cpus, pids=lim.pids)
                parts.append(timed("cgroups_ms", create))
            if self.network.outbound:
                self._slirp = vmnet.Slirp()
                slirp = self._slirp.start(f"/proc/{os.getpid()}/task/{self.tid}/ns/net")
                parts += [timed("slirp_ms", slirp), timed("rules_ms", self.call(self._fence_network))]
            if self.network.host_ports:
                parts.append(timed("relays_ms", self._start_relays()))
            results = await asyncio.gather(*parts, return_exceptions=True)
            for r in results:
                if isinstance(r, BaseException):
                    raise r
            self.timings["start_ms"] = (time.perf_counter() - started) * 1000
        except BaseException:
            await self.close()
            raise

    async def _start_relays(self) -> None:
        socks = await self.call(vmnet.listeners, self.network.host_ports)
        self._relay = vmnet.PortRelay()
        await self._relay.start(socks)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._relay is not None:
            await self._relay.close()
        if self._slirp is not None:
            await self._slirp.close()
        if self.cgroup is not None:
            await asyncio.to_thread(self.cgroup.remove)  # SIGKILLs whatever is left of the VM
        if self._thread is not None:
            self._jobs.put(None)
            await asyncio.to_thread(self._thread.join, 5.0)

    # -- sandbox processes -------------------------------------------------------------------------
    def spawn(
        self,
        bwrap_args: Sequence[str],
        command: Sequence[str],
        env: dict[str, str],
        *,
        stdin: bool,
        tty: int | None = None,
    ) -> subprocess.Popen[bytes]:
        """On the VM thread: start ``bwrap`` (unprivileged) with ``bwrap_args`` and ``env`` handed over
        through memory file descriptors, place it in the VM's cgroups and limits, then let it run.

        ``tty``: a terminal of the VM's own (``open_pty``) as its stdin, stdout and stderr instead
        of pipes."""
        assert threading.get_native_id() == self.tid, "sandboxes start on their VM's thread only"
        block_r, block_w = os.pipe()
        fds: list[int] = [block_r]
        try:
            sfd = _memfd("actorq-seccomp", seccomp.program())
            fds.append(sfd)
            args = [*bwrap_args, "--seccomp", str(sfd), "--block-fd", str(block_r), "--clearenv"]
            for k, v in env.items():
                args += ["--setenv", k, v]
            afd = _memfd("actorq-bwrap", b"".join(os.fsencode(a) + b"\0" for a in args))
            fds.append(afd)
            binary = bwrap_path()
            child: int | None = None
            try:
                # rlimits of another process may be set by its own uid (root lacks CAP_SYS_RESOURCE
                # on some hosts), so they are set before the thread is root again
                with _linux.thread_ids(self.uid, self.uid):
                    popen = subprocess.Popen(
                        [binary, "--args", str(afd), "--", *command],
                        pass_fds=fds,
                        stdin=tty if tty is not None else subprocess.PIPE if stdin else subprocess.DEVNULL,
                        stdout=tty if tty is not None else subprocess.PIPE,
                        stderr=tty if tty is not None else subprocess.PIPE,
                        env=LAUNCH_ENV,
                        cwd="/",
                        start_new_session=True,
                    )
                    try:
                        child = _first_child(popen.pid)
                        if child is not None:
                            self._set_rlimits(child)
                    except BaseException:
                        popen.kill()
                        raise
            except BlockingIOError:
                raise ResourceLimit("the host cannot start another process now") from None
        finally:
            for fd in fds:
                os.close(fd)
        try:
            if child is not None and self.cgroup is not None:
                self.cgroup.add(popen.pid)
                self.cgroup.add(child)
        except BaseException:
            popen.kill()
            raise
        finally:
            with contextlib.suppress(OSError):
                os.write(block_w, b"1")
            os.close(block_w)
        return popen

    def open_pty(self) -> tuple[int, int]:
        """On the VM thread, as the VM's uid: a new terminal of the VM's own devpts instance
        (``/dev/pts`` inside, never the host's); its (master, slave) descriptors. The server keeps
        the master; the slave becomes a sandbox process's stdio (``spawn(tty=...)``), so the terminal
        a VM process sees is its own, and nothing ties it to a terminal of the host."""
        assert threading.get_native_id() == self.tid, "VM terminals open on their VM's thread only"
        with _linux.fs_ids(self.uid, self.uid):  # the slave belongs to the VM's uid (1000 inside)
            master = os.open(f"{self.stage.dev}/pts/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
        try:
            fcntl.ioctl(master, _TIOCSPTLCK, struct.pack("i", 0))  # unlockpt
            # the slave through its master, not by a path a VM process could have swapped
            slave = fcntl.ioctl(master, _TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
        except BaseException:
            os.close(master)
            raise
        return master, slave

    def _set_rlimits(self, pid: int) -> None:
        """The floor under the cgroups: per-uid processes, file size, no core dumps, and data size
        where no memory cgroup holds the VM."""
        lim = self.limits
        limits: list[tuple[int, int]] = [(resource.RLIMIT_CORE, 0)]
        if lim.pids is not None:
            limits.append((resource.RLIMIT_NPROC, lim.pids))
        if lim.disk_mb is not None:
            limits.append((resource.RLIMIT_FSIZE, lim.disk_mb * 1024 * 1024))
        if lim.memory_mb is not None and (self.cgroup is None or "memory" not in self.cgroup.dirs):
            limits.append((resource.RLIMIT_DATA, lim.memory_mb * 1024 * 1024))
        for which, value in limits:
            resource.prlimit(pid, which, (value, value))


def _first_child(pid: int, timeout: float = 10.0) -> int | None:
    """The sandbox's first process (bwrap clones it at once, and it waits on ``--block-fd``);
    None if bwrap exited first (its stderr says why)."""
    deadline = time.monotonic() + timeout
    delay = 0.00002  # bwrap clones ~1.5 ms after its exec: poll finely, it is on the launch's path
    while True:
        try:
            kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return None
        if kids:
            return int(kids[0])
        if state in ("Z", "X"):
            return None
        if time.monotonic() > deadline:
            raise SandboxUnavailable("bubblewrap did not start the sandbox in time")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.0002)
