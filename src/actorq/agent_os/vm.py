"""The agent VM actor type: ``agent_os(software=[...])`` returns an ordinary actor definition.

Each VM key is one sandbox with its home under the data directory
(``<data>/actors/<actor id>/vm/home/user``) and, while awake, a host thread of its own (``host.py``)
through which every host-side action on it runs. Its actions (agentOS's names in snake_case) are files,
processes, network, cron and agent sessions. Per-wake resources (sandbox, process table, live agent
drivers) live in ``c.vars``; what must survive (session metadata, cron jobs) in ``c.state``.
When the VM sleeps its processes and agents are stopped; files, sessions and cron jobs remain.

This module uses the core like any user actor would; the core knows nothing of VMs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from actorq.agent_os import cron, fetch, snapshot
from actorq.agent_os import fs as fs_mod
from actorq.agent_os.agents.acp import AcpAgent
from actorq.agent_os.agents.base import AgentDriver, DriverOptions, PromptResult, Session
from actorq.agent_os.disk import DiskGuard
from actorq.agent_os.fetch import FetchResult
from actorq.agent_os.files import VMFiles
from actorq.agent_os.fs import DirEntry, FileStat
from actorq.agent_os.host import HOME, VMHost
from actorq.agent_os.limits import Limits, Network
from actorq.agent_os.processes import ExecResult, ProcessInfo, ProcessTable
from actorq.agent_os.sandbox import ExecLimits
from actorq.agent_os.sessions import AgentFactory, SessionManager
from actorq.agent_os.software import Software
from actorq.agent_os.workspace import Workspace
from actorq.core.context import ActorContext
from actorq.core.definitions import ActorDefinition, actor
from actorq.errors import ActorqError, BadRequest, MessageTooLarge, Unavailable

log = logging.getLogger("actorq.agent_os")
MAX_BATCH = 1000  # paths in one read_files / write_files


@dataclass(frozen=True)
class SpawnedProcess:
    pid: int
    command: str
    args: list[str]


@dataclass(frozen=True)
class CronJob:
    id: str
    schedule: str
    action: dict[str, Any]
    next_run: float
    created_at: float
    last_run: float | None = None
    last_result: Any = None
    runs: int = 0


@dataclass(frozen=True)
class FileResult:
    path: str
    content: bytes | None = None
    ok: bool = True
    error: dict[str, Any] | None = None


@dataclass
class _VM:
    """Per-wake resources of one VM (``c.vars``)."""

    host: VMHost | None = None
    files: VMFiles | None = None
    disk: DiskGuard | None = None
    processes: ProcessTable | None = None
    sessions: SessionManager | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


def _pi_factory(opts: DriverOptions, files: VMFiles) -> AgentDriver:
    from actorq.agent_os.agents.pi import PiDriver

    return PiDriver(opts)


def _acp_factory(agent: AcpAgent) -> AgentFactory:
    def factory(opts: DriverOptions, files: VMFiles) -> AgentDriver:
        return agent.driver(opts, fs=files)  # the agent's fs/* requests are the VM's own file actions

    return factory


def _vm(c: ActorContext) -> _VM:
    v: _VM = c.vars
    if v.host is None:
        raise Unavailable("the VM is not running (it is going to sleep); retry")
    return v


def _files(c: ActorContext) -> VMFiles:
    f = _vm(c).files
    assert f is not None
    return f


async def _procs(c: ActorContext) -> ProcessTable:
    """The process table, once the VM is known to be under its disk cap."""
    v = _vm(c)
    assert v.processes is not None and v.disk is not None
    await v.disk.check()
    return v.processes


async def _sessions(c: ActorContext, *, starts_work: bool = True) -> SessionManager:
    v = _vm(c)
    assert v.sessions is not None and v.disk is not None
    if starts_work:
        await v.disk.check()
    return v.sessions


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
    **options: Any,
) -> ActorDefinition:
    """Declare the agent VM actor type.

    ``software``: what is mounted (``software.common``, ``software.pi``, ``npm_package(...)``);
    ``network``: ``True`` (``Network()``: outbound through user-mode networking, nothing of the host
    or private ranges), ``False`` (only the VM's own loopback) or a ``Network(host_ports=[...],
    allow=[...])``; ``limits``: ``Limits(memory_mb=2048, cpus=1.0, pids=512, disk_mb=4096,
    tmp_mb=512)`` unless given (``limits.UNLIMITED`` for none); ``agents`` adds agent types beside
    ``"pi"`` (e.g. ``{"claude": acp_agent([...])}``); ``exec_timeout`` / ``max_output`` bound each
    ``exec``; ``snapshot_interval`` (seconds, ``None`` for never) is how often an awake VM's
    ``/home/user`` is saved to shared storage (PostgreSQL) besides when it sleeps. Other options go
    to :func:`actorq.actor` (``sleep_timeout`` defaults to 5 minutes).
    """
    sw = tuple(software)
    net = Network.of(network)
    lim = Limits() if limits is None else limits
    if not isinstance(lim, Limits):
        raise ValueError(f"limits is a Limits(...), not {lim!r}")
    names = {s.name for s in sw}
    agent_types: dict[str, AgentFactory] = {}
    if "pi" in names:
        agent_types["pi"] = _pi_factory
    for name, agent in (agents or {}).items():
        agent_types[name] = _acp_factory(agent) if isinstance(agent, AcpAgent) else agent
    exec_limits = ExecLimits(timeout=exec_timeout, max_output=max_output)

    async def on_wake(c: ActorContext) -> None:
        v: _VM = c.vars

        async def over_disk(used: int) -> None:
            c.broadcast("resource_limit", {"resource": "disk", "used_bytes": used, "limit_mb": lim.disk_mb})
            c.log.warning("VM over its disk cap (%d bytes used): stopping its processes", used)
            if v.sessions is not None:
                await v.sessions.stop_all()
            if v.processes is not None:
                await v.processes.close()

        root = c.files_dir / "vm"

        async def restore(home: Path, uid: int) -> Callable[[], None] | None:
            return await _restore_job(c, root, home, uid)

        ws = await Workspace.open(
            root,
            data_dir=c.files_dir.parent.parent,
            name=c.actor_id,
            software=sw,
            network=net,
            limits=lim,
            before_home=restore,
            on_over_disk=over_disk,
        )
        v.host, v.files, v.disk = ws.host, ws.files, ws.disk
        v.processes = ProcessTable(ws.sandbox, c.broadcast, exec_limits, on_exit=ws.disk.touched)

        async def save() -> None:
            await c.save_state()

        launch = ws.sandbox.launch
        v.sessions = SessionManager(c.actor_id, c.state, agent_types, ws.files, launch, c.broadcast, save)
        if lim.disk_mb is not None:
            v.tasks.append(asyncio.create_task(ws.disk.run(), name="vm-disk"))
        if c.snapshots is not None and snapshot_interval:
            v.tasks.append(asyncio.create_task(_snapshot_every(c, snapshot_interval), name="vm-snapshot"))
        c.state.setdefault("cron", {})
        now = time.time()
        for job_id, job in c.state["cron"].items():
            if job["next_run"] < now - 2.0:  # missed while down (or its chain was cut by a crash)
                await c.schedule.at(job["next_run"], "cron_tick", job_id, job["next_run"])

    async def on_sleep(c: ActorContext) -> None:
        v: _VM = c.vars
        host, v.host = v.host, None
        if v.disk is not None:
            await v.disk.close()
        for task in v.tasks:
            task.cancel()
        for task in v.tasks:
            with contextlib.suppress(BaseException):
                await task
        v.tasks.clear()
        if v.sessions is not None:
            await v.sessions.stop_all()
        if v.processes is not None:
            await v.processes.close()
        if host is not None:
            try:
                await _snapshot(c, host)  # after every process stopped: a quiet, whole home
            finally:
                await host.close()

    # -- sessions ------------------------------------------------------------------------------
    async def create_session(
        c: ActorContext,
        agent_type: str,
        *,
        env: dict[str, str] | None = None,
        cwd: str = HOME,
        additional_instructions: str | None = None,
    ) -> Session:
        return await (await _sessions(c)).create(
            agent_type, env=env, cwd=cwd, additional_instructions=additional_instructions
        )

    async def send_prompt(
        c: ActorContext, session_id: str, prompt: str, *, timeout: float | None = None
    ) -> PromptResult:
        sessions = await _sessions(c)
        try:
            return await sessions.prompt(session_id, prompt, timeout)
        finally:
            _vm(c).disk.touched()  # type: ignore[union-attr]

    async def cancel_prompt(c: ActorContext, session_id: str) -> bool:
        return await (await _sessions(c, starts_work=False)).cancel(session_id)

    async def close_session(c: ActorContext, session_id: str) -> Session:
        return await (await _sessions(c, starts_work=False)).close(session_id)

    async def list_sessions(c: ActorContext) -> list[Session]:
        return (await _sessions(c, starts_work=False)).list()

    async def resume_session(
        c: ActorContext, session_id: str, *, env: dict[str, str] | None = None
    ) -> Session:
        return await (await _sessions(c)).resume(session_id, env)

    # -- files ---------------------------------------------------------------------------------
    async def read_file(c: ActorContext, path: str) -> bytes:
        return await _files(c).read_file(path)

    async def write_file(c: ActorContext, path: str, data: str | bytes) -> int:
        return await _files(c).write_file(path, data)

    async def read_files(c: ActorContext, paths: list[str]) -> list[FileResult]:
        files = _files(c)
        if not isinstance(paths, list) or len(paths) > MAX_BATCH:
            raise BadRequest(f"paths is a list of at most {MAX_BATCH} VM paths")
        out: list[FileResult] = []
        budget = fs_mod.MAX_READ  # for the whole answer, not each file
        for p in paths:
            try:
                data = await files.read_file(p)
                if len(data) > budget:
                    raise MessageTooLarge(f"read_files returns at most {fs_mod.MAX_READ} bytes in all")
                budget -= len(data)
                out.append(FileResult(p, data))
            except ActorqError as exc:
                out.append(FileResult(str(p), None, ok=False, error=exc.to_dict()))
        return out

    async def write_files(c: ActorContext, files_: list[dict[str, Any]]) -> list[FileResult]:
        files = _files(c)
        if not isinstance(files_, list) or len(files_) > MAX_BATCH:
            raise BadRequest(
                f"files is a list of at most {MAX_BATCH} {{'path': str, 'content': str | bytes}}"
            )
        out: list[FileResult] = []
        for item in files_:
            path = item.get("path") if isinstance(item, dict) else None
            content = item.get("content") if isinstance(item, dict) else None
            try:
                if not isinstance(path, str) or not isinstance(content, (str, bytes)):
                    raise BadRequest("each file is {'path': str, 'content': str | bytes}")
                await files.write_file(path, content)
                out.append(FileResult(path))
            except ActorqError as exc:
                out.append(FileResult(str(path), None, ok=False, error=exc.to_dict()))
        return out

    async def mkdir(c: ActorContext, path: str) -> None:
        await _files(c).mkdir(path)

    async def readdir(c: ActorContext, path: str = HOME) -> list[str]:
        return await _files(c).readdir(path)

    async def readdir_recursive(c: ActorContext, path: str = HOME) -> list[DirEntry]:
        return await _files(c).readdir_recursive(path)

    async def stat(c: ActorContext, path: str) -> FileStat:
        return await _files(c).stat(path)

    async def exists(c: ActorContext, path: str) -> bool:
        return await _files(c).exists(path)

    async def move(c: ActorContext, src: str, dst: str) -> None:
        await _files(c).move(src, dst)

    async def delete_file(c: ActorContext, path: str, *, recursive: bool = False) -> None:
        await _files(c).delete_file(path, recursive=recursive)

    # -- processes -----------------------------------------------------------------------------
    async def exec_(
        c: ActorContext,
        command: str,
        *,
        cwd: str = HOME,
        env: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> ExecResult:
        table = await _procs(c)
        return await table.exec(command, cwd=await _files(c).cwd(cwd), env=env, timeout=timeout)

    async def spawn(
        c: ActorContext,
        command: str,
        args: list[str] | None = None,
        *,
        cwd: str = HOME,
        env: dict[str, str] | None = None,
    ) -> SpawnedProcess:
        table = await _procs(c)
        entry = await table.spawn(command, args or [], cwd=await _files(c).cwd(cwd), env=env)
        c.keep_awake(table.pump(entry))  # a running process keeps its VM awake
        return SpawnedProcess(entry.pid, entry.command, entry.args)

    async def wait_process(c: ActorContext, pid: int, *, timeout: float | None = None) -> int | None:
        """The process's exit code; ``None`` if it is still running after ``timeout`` seconds."""
        try:
            return await _vm_procs(c).wait(pid, timeout)
        except TimeoutError:
            return None

    async def list_processes(c: ActorContext) -> list[ProcessInfo]:
        return _vm_procs(c).list()

    async def kill_process(c: ActorContext, pid: int, *, signal: int = 9) -> None:
        _vm_procs(c).kill(pid, signal)

    # -- network -------------------------------------------------------------------------------
    async def vm_fetch(
        c: ActorContext,
        port: int,
        url: str = "/",
        *,
        method: str = "GET",
        headers: dict[str, str] | None = None,
        body: str | bytes | None = None,
    ) -> FetchResult:
        return await fetch.vm_fetch(_vm(c).host, port, url, method=method, headers=headers, body=body)

    # -- cron ----------------------------------------------------------------------------------
    async def schedule_cron(c: ActorContext, schedule: str, action: dict[str, Any]) -> CronJob:
        job_id, job = cron.new_job(schedule, action)
        jobs = c.state.setdefault("cron", {})
        if len(jobs) >= cron.MAX_JOBS:
            raise BadRequest(f"a VM holds at most {cron.MAX_JOBS} cron jobs; cancel one first")
        jobs[job_id] = job
        await c.save_state()
        await c.schedule.at(job["next_run"], "cron_tick", job_id, job["next_run"])
        return CronJob(**cron.public(job_id, job))

    async def list_cron_jobs(c: ActorContext) -> list[CronJob]:
        return [CronJob(**cron.public(i, j)) for i, j in c.state.get("cron", {}).items()]

    async def cancel_cron_job(c: ActorContext, job_id: str) -> bool:
        return c.state.get("cron", {}).pop(job_id, None) is not None

    async def cron_tick(c: ActorContext, job_id: str, due: float) -> None:
        """Internal: one firing of a cron job (scheduled by the VM itself)."""
        job = c.state.get("cron", {}).get(job_id)
        if job is None or job["next_run"] != due or job["last_fired_for"] == due:
            return  # cancelled, or a stale / duplicate tick
        job["last_fired_for"] = due
        nxt = cron.next_after(job["schedule"], max(time.time(), due))
        job["next_run"] = nxt
        await c.save_state()
        await c.schedule.at(nxt, "cron_tick", job_id, nxt)
        action = job["action"]
        result: Any
        try:
            if action["type"] == "exec":
                table = await _procs(c)
                cwd = await _files(c).cwd(action.get("cwd", HOME))
                r = await table.exec(action["command"], cwd=cwd)
                result = {"exit_code": r.exit_code, "stdout": r.stdout[-4096:], "stderr": r.stderr[-4096:]}
            else:
                p = await (await _sessions(c)).prompt(action["session_id"], action["prompt"], None)
                _vm(c).disk.touched()  # type: ignore[union-attr]
                result = {"stop_reason": p.stop_reason, "text": p.text[-4096:]}
        except ActorqError as exc:
            result = {"error": exc.to_dict()}
        job["last_run"] = time.time()
        job["last_result"] = result
        job["runs"] += 1
        c.broadcast("cron_fired", {"id": job_id, "due": due, "result": result})

    return actor(
        actions={
            "create_session": create_session,
            "send_prompt": send_prompt,
            "cancel_prompt": cancel_prompt,
            "close_session": close_session,
            "list_sessions": list_sessions,
            "resume_session": resume_session,
            "read_file": read_file,
            "write_file": write_file,
            "read_files": read_files,
            "write_files": write_files,
            "mkdir": mkdir,
            "readdir": readdir,
            "readdir_recursive": readdir_recursive,
            "stat": stat,
            "exists": exists,
            "move": move,
            "delete_file": delete_file,
            "exec": exec_,
            "spawn": spawn,
            "wait_process": wait_process,
            "list_processes": list_processes,
            "kill_process": kill_process,
            "vm_fetch": vm_fetch,
            "schedule_cron": schedule_cron,
            "list_cron_jobs": list_cron_jobs,
            "cancel_cron_job": cancel_cron_job,
            "cron_tick": cron_tick,
        },
        state=lambda: {"sessions": {}, "cron": {}},
        vars=_VM,
        on_wake=on_wake,
        on_sleep=on_sleep,
        sleep_timeout=sleep_timeout,
        **options,
    )


# -- snapshots: /home/user follows the VM's actor across nodes (shared storage only) ------------
_GEN_FILE = ".snapshot-generation"  # beside home/, in the VM root: which snapshot the disk holds


def _local_generation(root: Path) -> int:
    try:
        return int((root / _GEN_FILE).read_text())
    except (OSError, ValueError):
        return 0


async def _restore_job(c: ActorContext, root: Path, home: Path, uid: int) -> Callable[[], None] | None:
    """On wake: if shared storage holds a newer snapshot than this node's disk, the job unpacking it
    (run by the VM's host thread before it binds the home)."""
    store = c.snapshots
    wanted = int(c.state.get("snapshot_generation", 0)) if isinstance(c.state, dict) else 0
    if store is None or wanted <= _local_generation(root):
        return None
    found = await store.load_snapshot(c.actor_id)
    if found is None:
        c.log.warning("VM snapshot %d is missing from storage; keeping the local files", wanted)
        return None
    generation, chunks = found

    def job() -> None:
        snapshot.unpack(chunks, home, owner=uid)
        (root / _GEN_FILE).write_text(str(generation))
        c.log.info("restored VM files from snapshot %d (%d bytes)", generation, sum(map(len, chunks)))

    return job


def _pack(host: VMHost) -> list[bytes]:
    fd = os.open(host.stage.home, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return snapshot.pack(fd)
    finally:
        os.close(fd)


async def _snapshot(c: ActorContext, host: VMHost) -> None:
    store = c.snapshots
    if store is None:
        return
    try:
        chunks = await host.as_vm_user(_pack, host)
    except ActorqError as exc:
        c.log.error("VM snapshot skipped: %s", exc.message)
        return
    generation = int(c.state.get("snapshot_generation", 0)) + 1
    await store.save_snapshot(c.actor_id, generation, chunks)
    c.state["snapshot_generation"] = generation
    await c.save_state()
    (c.files_dir / "vm" / _GEN_FILE).write_text(str(generation))


async def _snapshot_every(c: ActorContext, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        host = c.vars.host
        if host is None:
            return
        try:
            await _snapshot(c, host)
        except Exception as exc:  # a failed periodic snapshot must not end the VM
            c.log.warning("periodic VM snapshot failed: %s", exc)


def _vm_procs(c: ActorContext) -> ProcessTable:
    """The process table without the disk check: waiting for or killing a process stays possible."""
    p = _vm(c).processes
    assert p is not None
    return p
