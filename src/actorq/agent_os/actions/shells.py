"""The VM's shell actions over the machine's ``ShellTable`` (``shells.py``).

Opening a shell passes the disk-cap check first (it starts work); typing, resizing and closing
do not, so a VM over its cap can still be cleaned up from a shell.
"""

from __future__ import annotations

from actorq.agent_os.host import HOME
from actorq.agent_os.machine import running, under_cap
from actorq.core import ActorContext


async def open_shell(
    c: ActorContext,
    *,
    command: str | None = None,
    cols: int = 80,
    rows: int = 24,
    cwd: str = HOME,
    env: dict[str, str] | None = None,
) -> str:
    """Start ``command`` (bash, or sh) on a terminal of the VM's own; its shell id. Its output
    arrives as ``shell_data`` events, its end as ``shell_exit``."""
    m = await under_cap(c)
    shell = await m.shells.open(command, cols=cols, rows=rows, cwd=await m.files.cwd(cwd), env=env)
    c.keep_awake(m.shells.pump(shell))  # an open shell keeps its VM awake
    return shell.shell_id


async def write_shell(c: ActorContext, shell_id: str, data: str | bytes) -> int:
    """Type ``data`` into the shell's terminal; the bytes accepted."""
    return running(c).shells.write(shell_id, data)


async def resize_shell(c: ActorContext, shell_id: str, cols: int, rows: int) -> None:
    running(c).shells.resize(shell_id, cols, rows)


async def close_shell(c: ActorContext, shell_id: str) -> None:
    await running(c).shells.close(shell_id)
