"""What a VM actor holds: its declaration (``VMConfig``) and, while awake, its ``Machine``.

``c.vars`` of a VM actor is a :class:`VMVars`: the :class:`VMConfig` that ``agent_os()`` declared
for the type, and the :class:`Machine` of this wake (``None`` before the wake finished and from the
moment the VM starts going to sleep). The machine is the per-wake state every action works on: the
workspace (host thread, sandbox, files, disk cap), the process table, the shells, the session
manager, the event history and the VM's background tasks. Actions reach it with :func:`running`
(``Unavailable`` once the VM is going to sleep: the caller retries and wakes it again) or
:func:`under_cap` (the same, after the disk-cap check that anything starting work passes).

Uses the core's ``ActorContext`` only; must not import the server, the clients or storage.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from actorq.agent_os import metrics
from actorq.agent_os.disk import DiskGuard
from actorq.agent_os.files import VMFiles
from actorq.agent_os.history import DEFAULT_LIMIT, DEFAULT_MAX_BYTES, History
from actorq.agent_os.host import VMHost
from actorq.agent_os.limits import Limits, Network
from actorq.agent_os.permissions import Permissions
from actorq.agent_os.processes import ProcessTable
from actorq.agent_os.sandbox import ExecLimits
from actorq.agent_os.sessions import AgentFactory, SessionManager
from actorq.agent_os.shells import ShellTable
from actorq.agent_os.software import Software
from actorq.agent_os.workspace import Workspace
from actorq.core import ActorContext
from actorq.errors import Unavailable


@dataclass(frozen=True)
class VMConfig:
    """One VM type as ``agent_os(...)`` declared it; the same for every key and every wake."""

    software: tuple[Software, ...]
    network: Network
    limits: Limits
    agent_types: Mapping[str, AgentFactory]
    exec_limits: ExecLimits
    snapshot_interval: float | None
    permissions: Permissions | None = None  # the policy of sessions that bring none of their own
    history: int = DEFAULT_LIMIT  # events kept per VM (the newest), at most history_bytes of them
    history_bytes: int = DEFAULT_MAX_BYTES
    warm_pool: Mapping[str, int] = field(default_factory=dict)  # agent type -> pooled agents (warm.py)


class Machine:
    """One awake VM: its workspace and what runs in it (see the module docstring)."""

    def __init__(
        self,
        workspace: Workspace,
        processes: ProcessTable,
        sessions: SessionManager,
        shells: ShellTable,
        history: History,
        emit: Callable[[str, Any], None],
    ) -> None:
        self.workspace = workspace
        self.processes = processes
        self.sessions = sessions
        self.shells = shells
        self.history = history  # numbers and keeps what emit() broadcasts
        self.emit = emit  # numbers, keeps, moves the state's high-water mark, broadcasts (vm.py)
        self.tasks: list[asyncio.Task[None]] = []  # the disk-cap watch, periodic snapshots
        metrics.awake(self)

    @property
    def host(self) -> VMHost:
        return self.workspace.host

    @property
    def files(self) -> VMFiles:
        return self.workspace.files

    @property
    def disk(self) -> DiskGuard:
        return self.workspace.disk

    async def stop_work(self) -> None:
        """Stop every agent process and VM process (over the disk cap, or going to sleep)."""
        await self.sessions.stop_all()
        await self.processes.close()
        await self.shells.close_all()

    async def stop(self) -> None:
        """Stop its background tasks, then everything running in the VM (before it sleeps, or
        when its wake failed part way); its host thread stays for the caller to close."""
        await self.disk.close()
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(BaseException):
                await task
        self.tasks.clear()
        try:
            await self.stop_work()
        finally:
            metrics.asleep(self)
            await self.history.close()


@dataclass
class VMVars:
    """``c.vars`` of a VM actor."""

    config: VMConfig
    machine: Machine | None = field(default=None)


def running(c: ActorContext) -> Machine:
    """The VM's machine; ``Unavailable`` (retryable) once it is going to sleep."""
    v: VMVars = c.vars
    if v.machine is None:
        raise Unavailable("the VM is not running (it is going to sleep); retry")
    return v.machine


async def under_cap(c: ActorContext) -> Machine:
    """The VM's machine, once the VM is known to be under its disk cap (for what starts work)."""
    m = running(c)
    await m.disk.check()
    return m


def emit(c: ActorContext, name: str, data: Any) -> None:
    """Broadcast a VM event numbered and kept in its history (plain, if the VM is going to sleep)."""
    v: VMVars = c.vars
    if v.machine is not None:
        v.machine.emit(name, data)
    else:
        c.broadcast(name, data)
