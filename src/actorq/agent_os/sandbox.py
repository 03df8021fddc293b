"""Run a VM's processes under bubblewrap: the one place that builds a sandbox's view of the world.

Every process of a VM (``exec``, ``spawn``, agents) starts through :meth:`Sandbox.launch`, forked
by the VM's host thread (``host.py``) as the VM's own unprivileged uid, in new user, PID and cgroup
namespaces and the VM's network, IPC and UTS namespaces, as uid 1000 with no capabilities, no new user
namespaces (``--disable-userns``) and a seccomp filter (``seccomp.py``), seeing only:

* the declared software read-only (the host's ``/usr`` and ``/etc``, npm packages under ``/opt``);
* the VM's ``/home/user`` (its directory on disk) and ``/tmp`` (a size-capped tmpfs) read-write;
* its own ``passwd``, ``group``, ``hostname`` and ``resolv.conf``, a fresh ``/proc`` and ``/dev``.

The data directory, other VMs and the rest of the host are not mounted. The process environment is
built here from a fixed base plus the caller's ``env`` and handed to bubblewrap in a memory file
descriptor (``--args``), never on a command line (``/proc/*/cmdline`` is world-readable) and never
in bubblewrap's own environment: bubblewrap sets it only for the command it finally executes.

Must not import the core or storage: it knows paths and processes, not actors.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import posixpath
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from actorq.agent_os.host import HOME, VMHost, bwrap_path
from actorq.agent_os.process import VMProcess
from actorq.agent_os.software import Software
from actorq.errors import BadRequest

__all__ = [
    "HOME",
    "ExecLimits",
    "Sandbox",
    "bwrap_path",
    "check_args",
    "check_env",
    "check_timeout",
    "kill_tree",
]

_USR_LINKS = (("/bin", "usr/bin"), ("/lib", "usr/lib"), ("/lib64", "usr/lib64"), ("/sbin", "usr/sbin"))
_MAX_ENV_BYTES = 256 * 1024


def _final_path(path: str, hops: int = 8) -> str:
    """Where ``path`` ends up after the host's symlinks (the sandbox sees the host's ``/etc``, so a
    file bound over a link must go where the link leads)."""
    for _ in range(hops):
        try:
            target = os.readlink(path)
        except OSError:
            return path
        path = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
    return path


def check_args(argv: Sequence[object], what: str = "command") -> list[str]:
    """Strings a process can be given: no NUL, valid Unicode (typed errors, not failures at exec)."""
    out: list[str] = []
    for a in argv:
        if not isinstance(a, str) or "\0" in a:
            raise BadRequest(f"{what} holds strings without NUL")
        try:
            a.encode("utf-8")
        except UnicodeEncodeError:
            raise BadRequest(f"{what} must be valid Unicode (no lone surrogates)") from None
        out.append(a)
    return out


def check_timeout(value: object, what: str = "timeout") -> float | None:
    """A timeout in seconds: None, or a finite number > 0."""
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise BadRequest(f"{what} is a finite number of seconds > 0", details={"field": what})
    return float(value)


def check_env(env: Mapping[str, str] | None) -> dict[str, str]:
    """An ``env`` argument as given over the wire: an object of strings, or a BadRequest."""
    if env is None:
        return {}
    if not isinstance(env, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in env.items()
    ):
        raise BadRequest("env is an object of string values")
    size = 0
    for k, v in env.items():
        if not k or "=" in k or "\0" in k or "\0" in v:
            raise BadRequest(
                "env names are non-empty without '=' or NUL, and values have no NUL",
                details={"name": k[:100]},
            )
        try:
            size += len(k.encode()) + len(v.encode()) + 2
        except UnicodeEncodeError:
            raise BadRequest(
                "env names and values must be valid Unicode (no lone surrogates)",
                details={"name": k[:100].encode("utf-8", "replace").decode()},
            ) from None
    if size > _MAX_ENV_BYTES:
        raise BadRequest(f"env holds {size} bytes; at most {_MAX_ENV_BYTES}")
    return dict(env)


@dataclass(frozen=True)
class ExecLimits:
    """Per-call bounds of ``exec``: wall-clock timeout (seconds) and bytes kept of each stream."""

    timeout: float = 300.0
    max_output: int = 1024 * 1024


class Sandbox:
    """How one VM's processes are started: its host thread, its software and their mounts."""

    def __init__(self, host: VMHost, software: Sequence[Software]) -> None:
        self.host = host
        self.software = tuple(software)
        self._base = self._bwrap_base()

    @staticmethod
    def mounts(software: Sequence[Software]) -> list[tuple[str, str]]:
        """(host path, VM path) of every software mount; raises SandboxUnavailable if one is missing."""
        out: list[tuple[str, str]] = []
        for sw in software:
            out.extend(sw.resolved_mounts())
        return out

    def path_env(self) -> str:
        entries: list[str] = []
        for sw in reversed(self.software):
            entries.extend(sw.path)
        return ":".join(dict.fromkeys(entries)) or "/usr/bin:/bin"

    def environment(self, env: Mapping[str, str]) -> dict[str, str]:
        """The whole environment of a VM process: a fixed base plus ``env`` (nothing from the host)."""
        return {
            "HOME": HOME,
            "USER": "user",
            "LOGNAME": "user",
            "PATH": self.path_env(),
            "LANG": "C.UTF-8",
            "TMPDIR": "/tmp",
            "TERM": "dumb",
            **env,
        }

    def _bwrap_base(self) -> list[str]:
        st = self.host.stage
        args = [
            "--unshare-user",
            "--disable-userns",
            "--uid",
            "1000",
            "--gid",
            "1000",
            "--unshare-pid",
            "--unshare-cgroup-try",
            "--die-with-parent",
            "--new-session",
        ]
        # directories bwrap creates for mount points are 0700: the VM user must pass them
        for d in ("/home", "/opt"):
            args += ["--perms", "0755", "--dir", d]
        for i, (_, vm_path) in enumerate(self.host.mounts):
            args += ["--ro-bind", st.software(i), vm_path]
        for link, target in _USR_LINKS:
            if os.path.lexists(link):
                args += ["--symlink", target, link]
        for name in ("passwd", "group", "hostname", "resolv.conf"):
            dest = _final_path(f"/etc/{name}")
            if not dest.startswith("/etc/"):  # e.g. systemd's resolv.conf -> /run/systemd/resolve/...
                args += ["--dir", posixpath.dirname(dest)]
            args += ["--ro-bind", st.etc(name), dest]
        args += [
            "--bind",
            st.home,
            HOME,
            "--bind",
            st.tmp,
            "/tmp",
            "--proc",
            "/proc",
            "--dev-bind",
            st.dev,
            "/dev",
        ]
        return args

    def bwrap_args(self, cwd: str = HOME) -> list[str]:
        """bubblewrap's arguments for a process of this VM (the host thread adds seccomp, env, pause)."""
        return [*self._base, "--chdir", cwd]

    async def launch(
        self,
        argv: Sequence[str],
        *,
        cwd: str = HOME,
        env: Mapping[str, str] | None = None,
        stdin: bool = True,
    ) -> VMProcess:
        """Start ``argv`` in the sandbox with pipes (stdin optional); its own process group."""
        popen = await self.host.call(
            self.host.spawn, self.bwrap_args(cwd), list(argv), self.environment(env or {}), stdin=stdin
        )
        return await VMProcess.attach(popen)

    async def launch_tty(
        self, argv: Sequence[str], *, cwd: str = HOME, env: Mapping[str, str] | None = None
    ) -> tuple[VMProcess, int]:
        """Start ``argv`` in the sandbox on a new terminal of the VM's own (``VMHost.open_pty``):
        its stdin, stdout and stderr are the terminal; the caller gets the process and the
        terminal's master descriptor (non-blocking, to read its output and type into it)."""

        # the program is the sandbox's first process (no reaper in front of it), so it is the one
        # --new-session made a session leader, and may take the terminal as its controlling one
        args = [*self.bwrap_args(cwd), "--as-pid-1"]

        def start() -> tuple[Any, int]:
            master, slave = self.host.open_pty()
            try:
                popen = self.host.spawn(args, list(argv), self.environment(env or {}), stdin=False, tty=slave)
            except BaseException:
                os.close(master)
                raise
            finally:
                os.close(slave)  # the sandbox holds it now; the server keeps only the master
            return popen, master

        popen, master = await self.host.call(start)
        os.set_blocking(master, False)
        try:
            return await VMProcess.attach(popen), master
        except BaseException:
            os.close(master)
            raise


def kill_tree(proc: VMProcess | asyncio.subprocess.Process, sig: int = signal.SIGKILL) -> None:
    """Kill a sandboxed process and everything it started (its process group / PID namespace).

    Killing bubblewrap's launcher ends the sandbox's PID namespace (``--die-with-parent``), and with
    it every process inside.
    """
    if proc.returncode is not None:
        return
    if sig == signal.SIGKILL:
        # the sandbox's init first: bubblewrap's --die-with-parent does not always take it along
        # when the launcher is killed right after start-up (seen: an orphaned sandbox, ppid 1)
        _kill_children(proc.pid, sig)
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(proc.pid, sig)


def _kill_children(pid: int, sig: int) -> None:
    """Signal the direct children of ``pid`` (not yet reaped, so its pid is still its own) through
    pidfds: a child is signalled only if it is still ``pid``'s after its pidfd was opened, so a
    reused pid is never hit."""

    def children() -> list[str]:
        try:
            return Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            return []

    for kid in children():
        try:
            fd = os.pidfd_open(int(kid))
        except OSError:
            continue
        try:
            if kid in children():
                signal.pidfd_send_signal(fd, sig)
        except OSError:
            pass
        finally:
            os.close(fd)
