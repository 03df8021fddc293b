"""A VM's interactive shells: a program on a terminal of the VM's own, its output as events.

``open`` allocates a pseudo-terminal in the VM's devpts instance on the VM's host thread
(``VMHost.open_pty``): the sandboxed program gets the slave as its stdin, stdout and stderr, and
the server keeps only the master, from which it reads what the program writes (``shell_data``
events) and into which ``write`` types. The program reopens its terminal as it starts inside the
sandbox, so the terminal is its controlling terminal (job control, Ctrl-C, ``SIGWINCH`` on ``resize``);
nothing ties it to a terminal of the host, and ``TIOCSTI`` (typing into a terminal) is refused by
the sandbox's seccomp filter anyway. Shells end with the VM's sleep like every other process.

Must not import the core or storage; events leave through the ``emit`` callback.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import errno
import fcntl
import os
import shutil
import struct
import termios
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from actorq.agent_os.process import VMProcess
from actorq.agent_os.processes import MAX_STDIN_BUFFER, stdin_bytes
from actorq.agent_os.sandbox import HOME, Sandbox, check_args, check_env, kill_tree
from actorq.errors import BadRequest, NotFound, QueueFull

Emit = Callable[[str, Any], None]
MAX_SIZE = 1000  # columns or rows of a terminal
MAX_SHELLS = 64  # open at once per VM
# bubblewrap's --new-session leaves the program leading a session of its own with no controlling
# terminal; opening the terminal again (without O_NOCTTY) in that session leader makes it the
# controlling one, then the program replaces the shell doing it. No helper binary (``setsid -c``)
# is involved, so nothing but the program itself runs with the caller's env (LD_PRELOAD, ...).
_CTTY = ["/bin/sh", "-c", 'exec "$0" <>/proc/self/fd/0 >&0 2>&0']


def check_size(cols: object, rows: object) -> tuple[int, int]:
    for name, v in (("cols", cols), ("rows", rows)):
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= MAX_SIZE:
            raise BadRequest(f"{name} is a whole number from 1 to {MAX_SIZE}", details={"field": name})
    assert isinstance(cols, int) and isinstance(rows, int)
    return cols, rows


def default_shell() -> str:
    return "bash" if shutil.which("bash", path="/usr/bin:/bin") else "sh"


@dataclass
class _Shell:
    shell_id: str
    command: str
    proc: VMProcess
    master: int
    cols: int
    rows: int
    pending: bytearray = field(default_factory=bytearray)  # typed, not yet taken by the terminal
    closed: bool = False
    exit_code: int | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)


class ShellTable:
    def __init__(self, sandbox: Sandbox, emit: Emit) -> None:
        self.sandbox = sandbox
        self.emit = emit
        self._shells: dict[str, _Shell] = {}
        self._next = 1

    async def open(
        self,
        command: str | None = None,
        *,
        cols: int = 80,
        rows: int = 24,
        cwd: str = HOME,
        env: Mapping[str, str] | None = None,
    ) -> _Shell:
        program = default_shell() if command is None else command
        if not isinstance(program, str) or not program:
            raise BadRequest("command is a program name or path, e.g. bash")
        check_args([program])
        cols, rows = check_size(cols, rows)
        env = {"TERM": "xterm-256color", **check_env(env)}
        if len(self._shells) >= MAX_SHELLS:
            raise QueueFull(f"this VM has {MAX_SHELLS} shells open; close one first")
        argv = [*_CTTY, program]
        proc, master = await self.sandbox.launch_tty(argv, cwd=cwd, env=env)
        shell = _Shell(f"sh_{self._next}", program, proc, master, cols, rows)
        self._next += 1
        self._shells[shell.shell_id] = shell
        _set_size(master, cols, rows)
        return shell

    async def pump(self, shell: _Shell) -> None:
        """Stream the terminal's output as ``shell_data`` until the program exits (keep_awake)."""
        loop = asyncio.get_running_loop()
        chunks: asyncio.Queue[bytes | None] = asyncio.Queue()

        def readable() -> None:
            try:
                data = os.read(shell.master, 65536)
            except BlockingIOError:
                return
            except OSError:  # EIO: every slave descriptor is gone (the program and its children)
                data = b""
            if not data:
                loop.remove_reader(shell.master)
            chunks.put_nowait(data or None)

        decoder = codecs.getincrementaldecoder("utf-8")("replace")  # a character may span chunks
        loop.add_reader(shell.master, readable)
        try:
            while (data := await chunks.get()) is not None:
                text = decoder.decode(data)
                if text:
                    self.emit("shell_data", {"shell_id": shell.shell_id, "data": text})
            await shell.proc.wait()
        finally:
            if not shell.closed:  # once closed, its descriptor number may be another shell's
                with contextlib.suppress(Exception):
                    loop.remove_reader(shell.master)
            if shell.proc.returncode is None:
                kill_tree(shell.proc)
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(asyncio.shield(shell.proc.wait()), 5.0)
            code = shell.proc.returncode if shell.proc.returncode is not None else -9
            shell.exit_code = code if code >= 0 else 128 - code
            self._release(shell)
            shell.done.set()
            self.emit("shell_exit", {"shell_id": shell.shell_id, "exit_code": shell.exit_code})

    def _release(self, shell: _Shell) -> None:
        if not shell.closed:
            shell.closed = True
            self._shells.pop(shell.shell_id, None)
            loop = asyncio.get_running_loop()
            loop.remove_reader(shell.master)
            loop.remove_writer(shell.master)
            os.close(shell.master)

    def _get(self, shell_id: str) -> _Shell:
        shell = self._shells.get(shell_id) if isinstance(shell_id, str) else None
        if shell is None:
            raise NotFound(f"no open shell {shell_id!r} in this VM", details={"shells": self.ids()})
        return shell

    def ids(self) -> list[str]:
        return list(self._shells)

    def write(self, shell_id: str, data: str | bytes) -> int:
        """Type ``data`` into the terminal; the bytes accepted (bounded like a process's stdin)."""
        shell = self._get(shell_id)
        raw = stdin_bytes(data)
        if len(shell.pending) + len(raw) > MAX_STDIN_BUFFER:
            raise QueueFull(
                f"shell {shell_id} has {len(shell.pending)} bytes typed and unread; "
                f"at most {MAX_STDIN_BUFFER} may wait",
                details={"shell_id": shell_id, "buffered": len(shell.pending)},
                retry_after=0.1,
            )
        shell.pending += raw
        self._flush(shell)
        return len(raw)

    def _flush(self, shell: _Shell) -> None:
        loop = asyncio.get_running_loop()
        while shell.pending and not shell.closed:
            try:
                n = os.write(shell.master, shell.pending[:65536])
            except BlockingIOError:
                loop.add_writer(shell.master, self._flush, shell)
                return
            except OSError as exc:
                if exc.errno != errno.EIO:
                    raise
                shell.pending.clear()  # the program is gone: nothing reads the terminal any more
                break
            del shell.pending[:n]
        if not shell.closed:
            loop.remove_writer(shell.master)

    def resize(self, shell_id: str, cols: int, rows: int) -> None:
        shell = self._get(shell_id)
        cols, rows = check_size(cols, rows)
        _set_size(shell.master, cols, rows)  # the kernel signals SIGWINCH to its foreground group
        shell.cols, shell.rows = cols, rows

    async def close(self, shell_id: str) -> None:
        """End the shell's program (and everything it started) and free its terminal."""
        shell = self._get(shell_id)
        kill_tree(shell.proc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(shell.done.wait(), 5.0)
        self._release(shell)

    async def close_all(self) -> None:
        """The VM sleeps: end every shell."""
        shells = list(self._shells.values())
        for shell in shells:
            kill_tree(shell.proc)
        for shell in shells:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(shell.proc.wait(), 5.0)


def _set_size(fd: int, cols: int, rows: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
