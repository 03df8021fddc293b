"""The agent VM actor type: ``agent_os(software=[...])`` returns an ordinary actor definition.

Each VM key is one sandbox with its own root under the data directory
(``<data>/actors/<actor id>/vm``). Its actions (agentOS's names in snake_case) are files,
processes, network, cron and agent sessions. Per-wake resources (sandbox, process table, live agent
drivers) live in ``c.vars``; what must survive (session metadata, cron jobs) in ``c.state``.
When the VM sleeps its processes and agents are stopped; files, sessions and cron jobs remain.

This module uses the core like any user actor would; the core knows nothing of VMs.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from actorq.agent_os import cron, snapshot
from actorq.agent_os.agents.acp import AcpAgent
from actorq.agent_os.agents.base import AgentDriver, DriverOptions, PromptResult, Session
from actorq.agent_os.fs import DirEntry, FileStat, VMFileSystem
from actorq.agent_os.processes import ExecResult, ProcessInfo, ProcessTable
from actorq.agent_os.sandbox import HOME, Limits, Sandbox, bwrap_path
from actorq.agent_os.sessions import AgentFactory, SessionManager
from actorq.agent_os.software import Software
from actorq.core.context import ActorContext
from actorq.core.definitions import ActorDefinition, actor
from actorq.errors import ActorqError, BadRequest, NotFound, Unavailable


@dataclass(frozen=True)
class SpawnedProcess:
    pid: int
    command: str
    args: list[str]


@dataclass(frozen=True)
class FetchResult:
    status: int
    headers: dict[str, str]
    body: bytes


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

    sandbox: Sandbox | None = None
    fs: VMFileSystem | None = None
    processes: ProcessTable | None = None
    sessions: SessionManager | None = None
    snapshotter: asyncio.Task[None] | None = None


def _pi_factory(opts: DriverOptions, fs: VMFileSystem) -> AgentDriver:
    from actorq.agent_os.agents.pi import PiDriver

    return PiDriver(opts)


def _acp_factory(agent: AcpAgent) -> AgentFactory:
    def factory(opts: DriverOptions, fs: VMFileSystem) -> AgentDriver:
        return agent.driver(opts, fs=fs)  # the agent's fs/* requests go through the VM's resolver

    return factory


def _vm(c: ActorContext) -> _VM:
    v: _VM = c.vars
    if v.sandbox is None:
        raise Unavailable("the VM is not running (it is going to sleep); retry")
    return v


def _fs(c: ActorContext) -> VMFileSystem:
    fs = _vm(c).fs
    assert fs is not None
    return fs


def _procs(c: ActorContext) -> ProcessTable:
    p = _vm(c).processes
    assert p is not None
    return p


def _sessions(c: ActorContext) -> SessionManager:
    s = _vm(c).sessions
    assert s is not None
    return s


def agent_os(
    software: Sequence[Software] = (),
    *,
    network: bool = True,
    agents: Mapping[str, AgentFactory | AcpAgent] | None = None,
    exec_timeout: float = 300.0,
    max_output: int = 1024 * 1024,
    sleep_timeout: float = 300.0,
    snapshot_interval: float | None = 300.0,
    **options: Any,
) -> ActorDefinition:
    """Declare the agent VM actor type.

    ``software``: what is mounted (``software.common``, ``software.pi``, ``npm_package(...)``);
    ``network=False`` gives the VM only its own loopback; ``agents`` adds agent types beside
    ``"pi"`` (e.g. ``{"claude": acp_agent([...])}``); ``exec_timeout`` / ``max_output`` bound each
    ``exec``; ``snapshot_interval`` (seconds, ``None`` for never) is how often an awake VM's
    ``/home/user`` is saved to shared storage (PostgreSQL) besides when it sleeps. Other options go
    to :func:`actorq.actor` (``sleep_timeout`` defaults to 5 minutes).
    """
    sw = tuple(software)
    names = {s.name for s in sw}
    agent_types: dict[str, AgentFactory] = {}
    if "pi" in names:
        agent_types["pi"] = _pi_factory
    for name, agent in (agents or {}).items():
        agent_types[name] = _acp_factory(agent) if isinstance(agent, AcpAgent) else agent
    limits = Limits(timeout=exec_timeout, max_output=max_output)

    async def on_wake(c: ActorContext) -> None:
        bwrap_path()  # a clear SandboxUnavailable when bubblewrap is missing
        root = c.files_dir / "vm"
        sandbox = Sandbox(root, sw, network=network)
        sandbox.prepare()  # a few small file operations: cheaper inline than a thread hop
        await _restore(c, sandbox)
        fs = VMFileSystem(root, owner=sandbox.uid)
        v: _VM = c.vars
        v.sandbox, v.fs = sandbox, fs
        v.processes = ProcessTable(sandbox, c.broadcast, limits)

        async def save() -> None:
            await c.save_state()

        v.sessions = SessionManager(c.actor_id, c.state, agent_types, fs, sandbox.launch, c.broadcast, save)
        if c.snapshots is not None and snapshot_interval:
            v.snapshotter = asyncio.create_task(_snapshot_every(c, snapshot_interval))
        c.state.setdefault("cron", {})
        now = time.time()
        for job_id, job in c.state["cron"].items():
            if job["next_run"] < now - 2.0:  # missed while down (or its chain was cut by a crash)
                await c.schedule.at(job["next_run"], "cron_tick", job_id, job["next_run"])

    async def on_sleep(c: ActorContext) -> None:
        v: _VM = c.vars
        sandbox, v.sandbox = v.sandbox, None
        if v.sessions is not None:
            await v.sessions.stop_all()
        if v.processes is not None:
            await v.processes.close()
        if v.snapshotter is not None:
            v.snapshotter.cancel()
        if sandbox is not None:
            await sandbox.close()
            await _snapshot(c, sandbox)  # after every process stopped: a quiet, whole home

    # -- sessions ------------------------------------------------------------------------------
    async def create_session(
        c: ActorContext,
        agent_type: str,
        *,
        env: dict[str, str] | None = None,
        cwd: str = HOME,
        additional_instructions: str | None = None,
    ) -> Session:
        return await _sessions(c).create(
            agent_type, env=env, cwd=cwd, additional_instructions=additional_instructions
        )

    async def send_prompt(
        c: ActorContext, session_id: str, prompt: str, *, timeout: float | None = None
    ) -> PromptResult:
        return await _sessions(c).prompt(session_id, prompt, timeout)

    async def cancel_prompt(c: ActorContext, session_id: str) -> bool:
        return await _sessions(c).cancel(session_id)

    async def close_session(c: ActorContext, session_id: str) -> Session:
        return await _sessions(c).close(session_id)

    async def list_sessions(c: ActorContext) -> list[Session]:
        return _sessions(c).list()

    async def resume_session(
        c: ActorContext, session_id: str, *, env: dict[str, str] | None = None
    ) -> Session:
        return await _sessions(c).resume(session_id, env)

    # -- files ---------------------------------------------------------------------------------
    async def read_file(c: ActorContext, path: str) -> bytes:
        return await asyncio.to_thread(_fs(c).read_file, path)

    async def write_file(c: ActorContext, path: str, data: str | bytes) -> int:
        return await asyncio.to_thread(_fs(c).write_file, path, data)

    async def read_files(c: ActorContext, paths: list[str]) -> list[FileResult]:
        fs = _fs(c)
        out: list[FileResult] = []
        for p in paths:
            try:
                out.append(FileResult(p, await asyncio.to_thread(fs.read_file, p)))
            except ActorqError as exc:
                out.append(FileResult(p, None, ok=False, error=exc.to_dict()))
        return out

    async def write_files(c: ActorContext, files: list[dict[str, Any]]) -> list[FileResult]:
        fs = _fs(c)
        out: list[FileResult] = []
        for item in files:
            path = item.get("path") if isinstance(item, dict) else None
            content = item.get("content") if isinstance(item, dict) else None
            try:
                if not isinstance(path, str) or not isinstance(content, (str, bytes)):
                    raise BadRequest("each file is {'path': str, 'content': str | bytes}")
                await asyncio.to_thread(fs.write_file, path, content)
                out.append(FileResult(path))
            except ActorqError as exc:
                out.append(FileResult(str(path), None, ok=False, error=exc.to_dict()))
        return out

    async def mkdir(c: ActorContext, path: str) -> None:
        _fs(c).mkdir(path)

    async def readdir(c: ActorContext, path: str = HOME) -> list[str]:
        return _fs(c).readdir(path)

    async def readdir_recursive(c: ActorContext, path: str = HOME) -> list[DirEntry]:
        return await asyncio.to_thread(_fs(c).readdir_recursive, path)

    async def stat(c: ActorContext, path: str) -> FileStat:
        return _fs(c).stat(path)

    async def exists(c: ActorContext, path: str) -> bool:
        return _fs(c).exists(path)

    async def move(c: ActorContext, src: str, dst: str) -> None:
        await asyncio.to_thread(_fs(c).move, src, dst)

    async def delete_file(c: ActorContext, path: str, *, recursive: bool = False) -> None:
        await asyncio.to_thread(_fs(c).delete_file, path, recursive=recursive)

    # -- processes -----------------------------------------------------------------------------
    async def exec_(
        c: ActorContext,
        command: str,
        *,
        cwd: str = HOME,
        env: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> ExecResult:
        return await _procs(c).exec(command, cwd=_fs(c).cwd(cwd), env=env, timeout=timeout)

    async def spawn(
        c: ActorContext,
        command: str,
        args: list[str] | None = None,
        *,
        cwd: str = HOME,
        env: dict[str, str] | None = None,
    ) -> SpawnedProcess:
        table = _procs(c)
        entry = await table.spawn(command, args or [], cwd=_fs(c).cwd(cwd), env=env)
        c.keep_awake(table.pump(entry))  # a running process keeps its VM awake
        return SpawnedProcess(entry.pid, entry.command, entry.args)

    async def wait_process(c: ActorContext, pid: int, *, timeout: float | None = None) -> int | None:
        """The process's exit code; ``None`` if it is still running after ``timeout`` seconds."""
        try:
            return await _procs(c).wait(pid, timeout)
        except TimeoutError:
            return None

    async def list_processes(c: ActorContext) -> list[ProcessInfo]:
        return _procs(c).list()

    async def kill_process(c: ActorContext, pid: int, *, signal: int = 9) -> None:
        _procs(c).kill(pid, signal)

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
        if not (0 < port < 65536):
            raise BadRequest("port must be 1..65535")
        if not url.startswith("/"):
            raise BadRequest("url is a path on the VM's server, starting with '/'")
        raw = body.encode() if isinstance(body, str) else body
        if network:
            return await _fetch_direct(port, url, method, headers or {}, raw)
        return await _fetch_inside(_vm(c), port, url, method, headers or {}, raw)

    # -- cron ----------------------------------------------------------------------------------
    async def schedule_cron(c: ActorContext, schedule: str, action: dict[str, Any]) -> CronJob:
        job_id, job = cron.new_job(schedule, action)
        c.state.setdefault("cron", {})[job_id] = job
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
                r = await _procs(c).exec(action["command"], cwd=action.get("cwd", HOME))
                result = {"exit_code": r.exit_code, "stdout": r.stdout[-4096:], "stderr": r.stderr[-4096:]}
            else:
                p = await _sessions(c).prompt(action["session_id"], action["prompt"], None)
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


async def _restore(c: ActorContext, sandbox: Sandbox) -> None:
    """On wake: if shared storage holds a newer snapshot than this node's disk, unpack it."""
    store = c.snapshots
    wanted = int(c.state.get("snapshot_generation", 0)) if isinstance(c.state, dict) else 0
    if store is None or wanted <= _local_generation(sandbox.root):
        return
    found = await store.load_snapshot(c.actor_id)
    if found is None:
        c.log.warning("VM snapshot %d is missing from storage; keeping the local files", wanted)
        return
    generation, chunks = found
    await asyncio.to_thread(snapshot.unpack, chunks, sandbox.home, owner=sandbox.uid)
    (sandbox.root / _GEN_FILE).write_text(str(generation))
    c.log.info("restored VM files from snapshot %d (%d bytes)", generation, sum(map(len, chunks)))


async def _snapshot(c: ActorContext, sandbox: Sandbox) -> None:
    store = c.snapshots
    if store is None:
        return
    try:
        chunks = await asyncio.to_thread(snapshot.pack, sandbox.home)
    except ActorqError as exc:
        c.log.error("VM snapshot skipped: %s", exc.message)
        return
    generation = int(c.state.get("snapshot_generation", 0)) + 1
    await store.save_snapshot(c.actor_id, generation, chunks)
    c.state["snapshot_generation"] = generation
    await c.save_state()
    (sandbox.root / _GEN_FILE).write_text(str(generation))


async def _snapshot_every(c: ActorContext, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        sandbox = c.vars.sandbox
        if sandbox is None:
            return
        try:
            await _snapshot(c, sandbox)
        except Exception as exc:  # a failed periodic snapshot must not end the VM
            c.log.warning("periodic VM snapshot failed: %s", exc)


async def _fetch_direct(
    port: int, url: str, method: str, headers: dict[str, str], body: bytes | None
) -> FetchResult:
    timeout = aiohttp.ClientTimeout(total=60)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.request(method, f"http://127.0.0.1:{port}{url}", headers=headers, data=body) as resp,
        ):
            return FetchResult(resp.status, dict(resp.headers), await resp.read())
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise NotFound(f"nothing answered on port {port} in the VM: {exc}") from None


# runs inside the VM's sandbox (network=False): the VM's own loopback is only reachable from there
_FETCH_SCRIPT = """
import base64, json, sys, urllib.request, urllib.error
req = json.load(sys.stdin)
r = urllib.request.Request(req["url"], data=base64.b64decode(req["body"]) if req["body"] else None,
                           headers=req["headers"], method=req["method"])
try:
    resp = urllib.request.urlopen(r, timeout=60)
except urllib.error.HTTPError as e:
    resp = e
except Exception as e:
    print(json.dumps({"error": str(e)})); sys.exit(0)
print(json.dumps({"status": resp.status, "headers": dict(resp.headers.items()),
                  "body": base64.b64encode(resp.read()).decode()}))
"""


async def _fetch_inside(
    vm: _VM, port: int, url: str, method: str, headers: dict[str, str], body: bytes | None
) -> FetchResult:
    assert vm.sandbox is not None
    proc = await vm.sandbox.launch(["python3", "-c", _FETCH_SCRIPT], cwd=HOME, env={})
    req = {
        "url": f"http://127.0.0.1:{port}{url}",
        "method": method,
        "headers": headers,
        "body": base64.b64encode(body).decode() if body else None,
    }
    out, err = await asyncio.wait_for(proc.communicate(json.dumps(req).encode()), 90)
    try:
        data = json.loads(out)
    except ValueError:
        raise Unavailable(f"vm_fetch failed inside the VM: {err.decode(errors='replace')[-300:]}") from None
    if "error" in data:
        raise NotFound(f"nothing answered on port {port} in the VM: {data['error']}")
    return FetchResult(data["status"], data["headers"], base64.b64decode(data["body"]))
