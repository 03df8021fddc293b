"""The agent VM actor type: ``agent_os(software=[...])`` returns an ordinary actor definition.

Each VM key is one sandbox with its home under the data directory
(``<data>/actors/<actor id>/vm/home/user``) and, while awake, a host thread of its own (``host.py``)
through which every host-side action on it runs. This module declares the type (a
:class:`~actorq.agent_os.machine.VMConfig` in ``c.vars``), and wakes and puts to sleep its
:class:`~actorq.agent_os.machine.Machine`; the actions are ``actions/``'s (one table,
``actions.ACTIONS``). What must survive (session metadata, cron jobs, the snapshot generation)
lives in ``c.state``; the VM's numbered events in ``<data>/actors/<id>/events.jsonl``
(``history.py``), beside its root. When the VM sleeps its processes and agents are stopped; files,
sessions, cron jobs and the event history remain.

This module uses the core like any user actor would; the core knows nothing of VMs.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from actorq.agent_os import metrics
from actorq.agent_os.actions import ACTIONS, cron, snapshots
from actorq.agent_os.agents.acp import AcpAgent
from actorq.agent_os.agents.base import AgentDriver, DriverOptions
from actorq.agent_os.approvals import Approvals
from actorq.agent_os.files import VMFiles
from actorq.agent_os.history import DEFAULT_LIMIT, DEFAULT_MAX_BYTES, HISTORY_FILE, History
from actorq.agent_os.limits import Limits, Network
from actorq.agent_os.machine import Machine, VMConfig, VMVars
from actorq.agent_os.permissions import Permissions
from actorq.agent_os.processes import ProcessTable
from actorq.agent_os.sandbox import ExecLimits
from actorq.agent_os.sessions import AgentFactory, SessionManager
from actorq.agent_os.shells import ShellTable
from actorq.agent_os.software import ACP_AUTH, ACP_COMMANDS, Software
from actorq.agent_os.warm import Pool, WarmPool, pool_sizes
from actorq.agent_os.workspace import Workspace
from actorq.core import ActorContext, ActorDefinition, actor


def _pi_factory(opts: DriverOptions, files: VMFiles) -> AgentDriver:
    from actorq.agent_os.agents.pi import PiDriver

    return PiDriver(opts)  # its permission hook is mounted read-only with software.pi


def _acp_factory(agent: AcpAgent) -> AgentFactory:
    def factory(opts: DriverOptions, files: VMFiles) -> AgentDriver:
        return agent.driver(opts, fs=files)  # the agent's fs/* requests are the VM's own file actions

    return factory


def agent_os(
    software: Sequence[Software] = (),
    *,
    network: bool | Network = True,
    limits: Limits | None = None,
    agents: Mapping[str, AgentFactory | AcpAgent] | None = None,
    exec_timeout: float = 300.0,
    max_output: int = 1024 * 1024,
    sleep_timeout: float = 300.0,
    snapshot_interval: float | None = 300.0,
    permissions: Permissions | None = None,
    history: int = DEFAULT_LIMIT,
    history_bytes: int = DEFAULT_MAX_BYTES,
    warm_pool: WarmPool | None = None,
    **options: Any,
) -> ActorDefinition:
    """Declare the agent VM actor type.

    ``software``: what is mounted (``software.common``, ``software.pi``, ``npm_package(...)``);
    ``network``: ``True`` (``Network()``: outbound through user-mode networking, nothing of the host
    or private ranges), ``False`` (only the VM's own loopback) or a ``Network(host_ports=[...],
    allow=[...])``; ``limits``: ``Limits(memory_mb=2048, cpus=1.0, pids=512, disk_mb=4096,
    tmp_mb=512)`` unless given (``limits.UNLIMITED`` for none); ``agents`` adds agent types beside
    ``"pi"`` and the built-in ACP agents whose software is mounted (``software.claude`` gives the
    ``"claude"`` agent type; likewise ``codex``, ``gemini``, ``pi_acp`` as ``"pi-acp"``), e.g.
    ``{"mine": acp_agent([...])}``; ``exec_timeout`` / ``max_output`` bound each
    ``exec``; ``snapshot_interval`` (seconds, ``None`` for never) is how often an awake VM's
    ``/home/user`` is saved to shared storage (PostgreSQL) besides when it sleeps; ``permissions``
    (a :class:`~actorq.agent_os.permissions.Permissions`) is the policy on agents' tool calls in
    every session that brings none of its own (``None``: every call runs). ``history`` /
    ``history_bytes``: how many of its newest events (and at most how many bytes of them) a VM
    keeps on disk for ``get_events`` / ``get_session_events``. ``warm_pool``: how many started
    agents each awake VM keeps ready for ``create_session`` (a count for every agent type, or
    ``{"pi": 2}``); what a pooled agent can serve and how it fits the limits is in ``warm.py``.
    Other options go to :func:`actorq.actor` (``sleep_timeout`` defaults to 5 minutes).
    """
    sw = tuple(software)
    lim = Limits() if limits is None else limits
    if not isinstance(lim, Limits):
        raise ValueError(f"limits is a Limits(...), not {lim!r}")
    for name, value in (("history", history), ("history_bytes", history_bytes)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} is a whole number >= 1, not {value!r}")
    agent_types: dict[str, AgentFactory] = {}
    if "pi" in {s.name for s in sw}:
        agent_types["pi"] = _pi_factory
    for name, command in ACP_COMMANDS.items():  # claude, codex, gemini, pi-acp: mounted, so runnable
        if name in {s.name for s in sw}:
            builtin = AcpAgent(name=name, command=command, auth_method=ACP_AUTH.get(name))
            agent_types[name] = _acp_factory(builtin)
    for name, agent in (agents or {}).items():
        agent_types[name] = _acp_factory(agent) if isinstance(agent, AcpAgent) else agent
    config = VMConfig(
        software=sw,
        network=Network.of(network),
        limits=lim,
        agent_types=agent_types,
        exec_limits=ExecLimits(timeout=exec_timeout, max_output=max_output),
        snapshot_interval=snapshot_interval,
        permissions=Permissions.parse(permissions),
        history=history,
        history_bytes=history_bytes,
        warm_pool=pool_sizes(warm_pool, agent_types),
    )
    return actor(
        actions=ACTIONS,
        state=lambda: {"sessions": {}, "cron": {}, "permissions": {}},
        vars=functools.partial(VMVars, config),
        on_wake=_wake,
        on_sleep=_sleep,
        sleep_timeout=sleep_timeout,
        http_action="preview_request",  # the open /v1/preview/{token}/ route (actions/previews.py)
        **options,
    )


async def _wake(c: ActorContext) -> None:
    """Open the VM's workspace (restoring a newer snapshot first), then its processes and sessions."""
    v: VMVars = c.vars
    cfg = v.config
    machine: Machine | None = None

    # opened while the workspace opens; its events are parsed in the background after that
    loading = asyncio.create_task(History.open(c.files_dir / HISTORY_FILE, cfg.history, cfg.history_bytes))
    history: History | None = None

    def emit(name: str, data: Any) -> None:
        if history is None:
            c.broadcast(name, data)
            return
        body = history.record(name, data)
        c.state["history_seq"] = body["seq"]  # shared storage's high-water mark (see below)
        c.broadcast(name, body)

    async def over_disk(used: int) -> None:
        limit = cfg.limits.disk_mb
        emit("resource_limit", {"resource": "disk", "used_bytes": used, "limit_mb": limit})
        c.log.warning("VM over its disk cap (%d bytes used): stopping its processes", used)
        if machine is not None:
            metrics.killed("disk", machine.processes.running + len(machine.sessions.live))
            await machine.stop_work()

    root = c.files_dir / "vm"

    async def restore(home: Path, uid: int) -> Callable[[], None] | None:
        return await snapshots.restore_job(c, root, home, uid)

    try:
        ws = await Workspace.open(
            root,
            data_dir=c.files_dir.parent.parent,
            name=c.actor_id,
            software=cfg.software,
            network=cfg.network,
            limits=cfg.limits,
            before_home=restore,
            on_over_disk=over_disk,
        )
    except BaseException:
        with contextlib.suppress(BaseException):
            await (await loading).close()
        raise
    try:
        history = await loading
    except BaseException:
        await ws.close()
        raise
    # the file is this node's; on PostgreSQL the VM may have lived on another node since: numbers
    # go on from the highest the state has seen, so a client's seq is never given to another event
    history.skip_to(int(c.state.get("history_seq", 0)))
    try:
        machine = v.machine = _machine(c, cfg, ws, history, emit)
        await cron.rearm(c)
    except BaseException:
        # the core runs on_sleep only after a wake that succeeded: undo this one here
        v.machine = None
        try:
            if machine is not None:
                await machine.stop()
        finally:
            await ws.close()
        raise


def _machine(
    c: ActorContext, cfg: VMConfig, ws: Workspace, history: History, emit: Callable[[str, Any], None]
) -> Machine:
    """What runs in an open workspace: its processes, shells, agent sessions and background tasks;
    their events go out numbered through ``emit`` (``history.py``)."""
    processes = ProcessTable(ws.sandbox, emit, cfg.exec_limits, on_exit=ws.disk.touched)

    async def save() -> None:
        await c.save_state()

    async def resume_later(session_id: str, request_id: str) -> None:
        # a durable row, so the re-run also happens if the server dies before it starts
        await c.schedule.after(0, "permission_resume", session_id, request_id)

    approvals = Approvals(c.state, save, emit, resume_later)
    sessions = SessionManager(
        c.actor_id,
        c.state,
        cfg.agent_types,
        ws.files,
        ws.sandbox.launch,
        emit,
        save,
        approvals=approvals,
        permissions=cfg.permissions,
    )
    if cfg.warm_pool:
        group = ws.host.cgroup
        sessions.pool = Pool(
            cfg.warm_pool,
            sessions.start_pooled,
            usage=(lambda: group.usage()) if group is not None else lambda: None,
            memory_mb=cfg.limits.memory_mb,
            pids=cfg.limits.pids,
        )
        sessions.pool.fill()  # in the background: the wake does not wait for the agents
    machine = Machine(ws, processes, sessions, ShellTable(ws.sandbox, emit), history, emit)
    if cfg.limits.disk_mb is not None:
        machine.tasks.append(asyncio.create_task(ws.disk.run(), name="vm-disk"))
    if c.snapshots is not None and cfg.snapshot_interval:
        machine.tasks.append(
            asyncio.create_task(snapshots.save_every(c, cfg.snapshot_interval), name="vm-snapshot")
        )
    return machine


async def _sleep(c: ActorContext) -> None:
    """Stop everything the VM runs, snapshot its quiet home, end its host thread."""
    v: VMVars = c.vars
    machine, v.machine = v.machine, None  # from now on its actions answer Unavailable (retry)
    if machine is None:
        return
    await machine.stop()
    if machine.sessions.approvals is not None:
        await machine.sessions.approvals.close()  # held requests stay in the state, for the next wake
    try:
        await snapshots.save(c, machine.host)  # after every process stopped: a quiet, whole home
    finally:
        await machine.host.close()
