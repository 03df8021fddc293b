"""Run a VM's processes under bubblewrap: the one place that builds a sandbox command line.

Every process of a VM (``exec``, ``spawn``, agents) starts through :meth:`Sandbox.launch`, in its
own user, PID, IPC and UTS namespaces as uid 1000, seeing only: the declared software read-only
(host system directories, npm packages), the VM's ``/home/user`` and ``/tmp`` read-write, and a
fresh ``/proc`` and ``/dev``. The data directory, other VMs and the rest of the host are not
mounted. With ``network=False`` every process of the VM joins one private network namespace (only
its own loopback), held open by a small keeper process so VM processes can still talk to each other
and :func:`vm_fetch` can reach a server inside.

Must not import the core or storage: it knows paths and processes, not actors.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from actorq.agent_os.software import Software
from actorq.errors import BadRequest, SandboxUnavailable

VM_UID = 1000  # the sandbox's uid when the server is not root (a user namespace maps it to the caller)
HOME = "/home/user"


def _passwd(uid: int) -> str:
    return f"root:x:0:0:root:/root:/bin/sh\nuser:x:{uid}:{uid}:user:{HOME}:/bin/bash\n"


def _group(uid: int) -> str:
    return f"root:x:0:\nuser:x:{uid}:\n"


_USR_LINKS = (("/bin", "usr/bin"), ("/lib", "usr/lib"), ("/lib64", "usr/lib64"), ("/sbin", "usr/sbin"))


def host_uid() -> int | None:
    """The unprivileged host uid VM processes run as when the server runs as root, else None.

    Unprivileged, bwrap maps the sandbox's uid 1000 onto the caller through a user namespace. Run
    by root that mapping would make VM processes the owners of every root-owned host file they can
    see (``/etc/shadow`` included). So a root server runs bwrap without a user namespace (it mounts
    as root, reaching VM roots under any directory) and the sandbox's first process drops to
    ``$ACTORQ_VM_UID`` (default 65534, nobody) with ``setpriv``, clearing every capability; VM
    files are owned by that uid on the host.
    """
    if os.geteuid() != 0:
        return None
    return int(os.environ.get("ACTORQ_VM_UID", "65534"))


def chown_tree(path: Path, uid: int) -> None:
    for dirpath, dirnames, filenames in os.walk(path):
        os.lchown(dirpath, uid, uid)
        for name in dirnames + filenames:
            os.lchown(os.path.join(dirpath, name), uid, uid)


def check_env(env: Mapping[str, str] | None) -> dict[str, str]:
    """An ``env`` argument as given over the wire: an object of strings, or a BadRequest."""
    if env is None:
        return {}
    if not isinstance(env, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in env.items()
    ):
        raise BadRequest("env is an object of string values")
    return dict(env)


def bwrap_path() -> str:
    path = shutil.which("bwrap")
    if path is None:
        raise SandboxUnavailable(
            "bubblewrap (bwrap) is not installed; agent VMs need it: apt-get install bubblewrap",
            details={"missing": "bwrap"},
        )
    return path


@dataclass(frozen=True)
class Limits:
    """Per-call bounds of ``exec``: wall-clock timeout (seconds) and bytes kept of each stream."""

    timeout: float = 300.0
    max_output: int = 1024 * 1024


class Sandbox:
    """The sandbox of one VM: its root directory on the host, software and network setting."""

    def __init__(self, root: Path, software: Sequence[Software], *, network: bool = True) -> None:
        self.root = root
        self.home = root / "home" / "user"
        self.tmp = root / "tmp"
        self.software = tuple(software)
        self.network = network
        self._netns_keeper: asyncio.subprocess.Process | None = None
        self._netns_lock = asyncio.Lock()
        self._mounts: list[tuple[str, str]] | None = None
        self.uid = host_uid()

    def prepare(self) -> None:
        """Create the VM's directories (idempotent); ``/tmp`` starts empty on each wake."""
        self.home.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp.mkdir(parents=True, exist_ok=True)
        os.chmod(self.tmp, 0o1777)
        if self.uid is not None:
            if self.home.stat().st_uid != self.uid:  # made before VMs dropped root, or uid changed
                chown_tree(self.home, self.uid)
            os.chown(self.tmp, self.uid, self.uid)
        etc = self.root / "etc"
        etc.mkdir(exist_ok=True)
        uid = VM_UID if self.uid is None else self.uid
        for name, text in (("passwd", _passwd(uid)), ("group", _group(uid)), ("hostname", "vm\n")):
            path = etc / name
            try:
                if path.read_text() == text:
                    continue
            except OSError:
                pass
            path.write_text(text)

    def _software_mounts(self) -> list[tuple[str, str]]:
        if self._mounts is None:
            mounts: list[tuple[str, str]] = []
            for sw in self.software:
                mounts.extend(sw.resolved_mounts())
            self._mounts = mounts
        return self._mounts

    def path_env(self) -> str:
        entries: list[str] = []
        for sw in reversed(self.software):
            entries.extend(sw.path)
        return ":".join(dict.fromkeys(entries)) or "/usr/bin:/bin"

    def environment(self, env: Mapping[str, str]) -> dict[str, str]:
        """The whole environment of a VM process: a fixed base plus ``env`` (nothing from the host)."""
        full_env = {
            "HOME": HOME,
            "USER": "user",
            "LOGNAME": "user",
            "PATH": self.path_env(),
            "LANG": "C.UTF-8",
            "TMPDIR": "/tmp",
            "TERM": "dumb",
        }
        full_env.update(env)
        return full_env

    def argv(self, command: Sequence[str], *, cwd: str) -> list[str]:
        """The bubblewrap command line that runs ``command`` inside this VM.

        The environment is not on it: command lines are world-readable in ``/proc`` and ``env``
        holds secrets, so it is bwrap's own environment (``/proc/<pid>/environ``, owner-only),
        which bwrap hands to the sandboxed process unchanged.
        """
        if self.uid is None:
            ids = ["--unshare-user", "--uid", str(VM_UID), "--gid", str(VM_UID)]
        else:  # root: no user namespace; the first process drops to self.uid (see host_uid)
            ids = ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
        args = [
            bwrap_path(),
            *ids,
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            "--unshare-cgroup-try",
            "--hostname",
            "vm",
            "--die-with-parent",
            "--new-session",
        ]
        # directories bwrap creates for mount points are 0700 root: a non-root VM user must pass them
        for d in ("/home", "/opt"):
            args += ["--perms", "0755", "--dir", d]
        for host, vm in self._software_mounts():
            args += ["--ro-bind", host, vm]
        for link, target in _USR_LINKS:
            if os.path.lexists(link):
                args += ["--symlink", target, link]
        etc = self.root / "etc"
        for name in ("passwd", "group", "hostname"):
            args += ["--ro-bind", str(etc / name), f"/etc/{name}"]
        args += [
            "--bind",
            str(self.home),
            HOME,
            "--bind",
            str(self.tmp),
            "/tmp",
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--chdir",
            cwd,
        ]
        if not self.network and self._netns_keeper is None:
            args.append("--unshare-net")
        args.append("--")
        args.extend(self._drop())
        args.extend(command)
        return args

    def _drop(self) -> list[str]:
        """Inside the sandbox (root server only): become ``self.uid`` with no capabilities left."""
        if self.uid is None:
            return []
        u = str(self.uid)
        return [
            "/usr/bin/setpriv",
            f"--reuid={u}",
            f"--regid={u}",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--",
        ]

    async def _netns_prefix(self) -> list[str]:
        """For ``network=False``: the ``nsenter`` prefix joining the VM's one private network."""
        if self.network:
            return []
        async with self._netns_lock:
            keeper = self._netns_keeper
            if keeper is None or keeper.returncode is not None:
                self._netns_keeper = None
                argv = self.argv(["sleep", "infinity"], cwd="/")
                keeper = await asyncio.create_subprocess_exec(
                    *argv,
                    env=self.environment({}),
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.DEVNULL,
                )
                self._netns_keeper = keeper
                # bwrap sets up the namespace (and brings lo up) before exec'ing sleep
                for _ in range(200):
                    if _sleeping_child(keeper.pid) is not None:
                        break
                    await asyncio.sleep(0.005)
            child = _sleeping_child(keeper.pid)
            if child is None:
                raise SandboxUnavailable("could not create the VM's private network namespace")
            return ["nsenter", f"--net=/proc/{child}/ns/net", "--"]

    async def launch(
        self,
        argv: Sequence[str],
        *,
        cwd: str = HOME,
        env: Mapping[str, str] | None = None,
        stdin: bool = True,
    ) -> asyncio.subprocess.Process:
        """Start ``argv`` in the sandbox with pipes (stdin optional); its own process group."""
        prefix = await self._netns_prefix()
        full = prefix + self.argv(argv, cwd=cwd)
        return await asyncio.create_subprocess_exec(
            *full,
            env=self.environment(env or {}),
            stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )

    async def close(self) -> None:
        keeper, self._netns_keeper = self._netns_keeper, None
        if keeper is not None and keeper.returncode is None:
            kill_tree(keeper)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(keeper.wait(), 2.0)


def _sleeping_child(pid: int) -> int | None:
    """The pid of the keeper's sandboxed ``sleep`` (bwrap's child), once it runs."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return None
    for c in children:
        try:
            grand = Path(f"/proc/{c}/task/{c}/children").read_text().split()
        except OSError:
            continue
        for g in grand or [c]:
            try:
                if Path(f"/proc/{g}/comm").read_text().strip() == "sleep":
                    return int(g)
            except OSError:
                continue
    return None


def kill_tree(proc: asyncio.subprocess.Process, sig: int = signal.SIGKILL) -> None:
    """Kill a sandboxed process and everything it started (its process group / PID namespace).

    Signals go by pid, never through ``Popen.send_signal``: that polls, reaping the child behind
    asyncio's watcher, which then reports exit code 255 instead of the signal.
    """
    if proc.returncode is not None:
        return
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(proc.pid, sig)
