"""The VM's process actions over the machine's ``ProcessTable`` (``processes.py``).

Starting a process (``exec``, ``spawn``) passes the disk-cap check first; waiting for, listing and
killing processes do not, so a VM over its cap can still be cleaned up.
"""

from __future__ import annotations

from actorq.agent_os import metrics
from actorq.agent_os.host import HOME
from actorq.agent_os.machine import running, under_cap
from actorq.core import ActorContext, tracer
from actorq.vm_types import ExecResult, ProcessInfo, SpawnedProcess


async def exec_(
    c: ActorContext,
    command: str,
    *,
    cwd: str = HOME,
    env: dict[str, str] | None = None,
    timeout: float | None = None,
) -> ExecResult:
    # the command line and env stay out of the span: they may hold what the caller keeps secret
    with tracer.start_as_current_span("vm exec", attributes={"actorq.actor_id": c.actor_id}) as span:
        table = (await under_cap(c)).processes
        result = await table.exec(command, cwd=await running(c).files.cwd(cwd), env=env, timeout=timeout)
        span.set_attribute("process.exit.code", result.exit_code)
        span.set_attribute("actorq.vm.timed_out", result.timed_out)
    metrics.killed("time", 1 if result.timed_out else 0)
    return result


async def spawn(
    c: ActorContext,
    command: str,
    args: list[str] | None = None,
    *,
    cwd: str = HOME,
    env: dict[str, str] | None = None,
) -> SpawnedProcess:
    table = (await under_cap(c)).processes
    entry = await table.spawn(command, args or [], cwd=await running(c).files.cwd(cwd), env=env)
    c.keep_awake(table.pump(entry))  # a running process keeps its VM awake
    return SpawnedProcess(entry.pid, entry.command, entry.args)


async def wait_process(c: ActorContext, pid: int, *, timeout: float | None = None) -> int | None:
    """The process's exit code; ``None`` if it is still running after ``timeout`` seconds."""
    try:
        return await running(c).processes.wait(pid, timeout)
    except TimeoutError:
        return None


async def list_processes(c: ActorContext) -> list[ProcessInfo]:
    return running(c).processes.list()


async def kill_process(c: ActorContext, pid: int, *, signal: int = 9) -> None:
    running(c).processes.kill(pid, signal)


async def write_process_stdin(c: ActorContext, pid: int, data: str | bytes) -> int:
    """Write to a spawned process's stdin; the bytes accepted."""
    return running(c).processes.write_stdin(pid, data)


async def close_process_stdin(c: ActorContext, pid: int) -> None:
    running(c).processes.close_stdin(pid)
