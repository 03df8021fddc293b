"""What every agent driver does with its process, whatever protocol it speaks.

:class:`AgentProcess` is the base of the pi and ACP drivers:

* **start**: the agent's command runs inside the VM's sandbox through the launcher, with the
  session's env (secrets included) applied inside the sandbox, never on a command line;
* **stderr**: always read (a full pipe would block the agent), keeping a bounded tail for error
  messages;
* **secret masking**: every env value of the session is cut out of events (they go to every
  connected client) and of error messages (they reach logs) — the tail is masked whole before it
  is cut, so a cut never leaves part of a secret behind;
* **shutdown**, one sequence: end the agent's stdin (agents exit at EOF), give it ``stop_grace``
  seconds, then SIGKILL the whole tree (bubblewrap's launcher: with it goes the sandbox's PID
  namespace; a SIGTERM would not reach the agent, which runs in a session of its own, so there is no
  SIGTERM step); then let the pipe readers reach EOF while the event loop is alive and cancel what
  still reads (a grandchild holding a pipe).

Subclasses add only their protocol. Must not import the core or storage.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Mapping, Sequence
from typing import Any

from actorq.agent_os.agents.base import DriverOptions
from actorq.agent_os.process import VMProcess
from actorq.agent_os.sandbox import kill_tree

STDERR_TAIL = 8192  # bytes of the agent's stderr kept for error messages
_READ_CHUNK = 1 << 16


def mask_secrets(value: Any, env: Mapping[str, str]) -> Any:
    """``value`` with every env value of 6+ characters replaced by ``***`` (in nested dicts/lists).

    Agents echo things back (errors quoting ``NODE_OPTIONS``, tool output); events go to every
    connected client and errors to logs, so secrets from the session's env are cut out of both.
    """
    if isinstance(value, str):
        for secret in env.values():
            if len(secret) >= 6 and secret in value:
                value = value.replace(secret, "***")
        return value
    if isinstance(value, dict):
        return {k: mask_secrets(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_secrets(v, env) for v in value]
    return value


async def _exits_within(proc: VMProcess, seconds: float) -> bool:
    try:
        await asyncio.wait_for(proc.wait(), seconds)
    except TimeoutError:
        return False
    return True


class AgentProcess:
    """One agent process of one session (see the module docstring); drivers subclass it."""

    def __init__(self, opts: DriverOptions, *, stop_grace: float = 3.0) -> None:
        self._opts = opts
        self._stop_grace = stop_grace
        self._proc: VMProcess | None = None
        self._closed = False
        self._stderr: collections.deque[bytes] = collections.deque()
        self._stderr_size = 0
        self._stderr_task: asyncio.Task[None] | None = None

    async def _spawn(self, argv: list[str], env: Mapping[str, str]) -> VMProcess:
        """Start the agent in the sandbox (stdin, stdout, stderr as pipes) and read its stderr."""
        proc = await self._opts.launcher(argv, cwd=self._opts.cwd, env=env)
        self._proc = proc
        if proc.stderr is not None:
            self._stderr_task = asyncio.create_task(self._read_stderr(proc.stderr), name="agent-stderr")
        return proc

    async def _read_stderr(self, stream: asyncio.StreamReader) -> None:
        while chunk := await stream.read(_READ_CHUNK):
            self._stderr.append(chunk)
            self._stderr_size += len(chunk)
            while self._stderr_size > STDERR_TAIL and len(self._stderr) > 1:
                self._stderr_size -= len(self._stderr.popleft())

    def _stderr_tail(self) -> str:
        """The agent's last words on stderr, secrets masked; callers cut it to the length they show."""
        return self._mask(b"".join(self._stderr).decode("utf-8", "replace")).strip()

    async def _last_words(self) -> int | None:
        """Give a dying agent a moment for its exit code and its stderr's EOF (its last lines usually
        say why); the exit code, or ``None`` if it is still running."""
        proc = self._proc
        if proc is None:
            return None
        if proc.returncode is None:
            await _exits_within(proc, 2.0)
        if self._stderr_task is not None and proc.returncode is not None:
            await asyncio.wait({self._stderr_task}, timeout=1.0)
        return proc.returncode

    def _mask(self, text: str) -> str:
        masked: str = mask_secrets(text, self._opts.env)
        return masked

    def _masked(self, value: Any) -> Any:
        return mask_secrets(value, self._opts.env)

    def _emit(self, event: dict[str, Any]) -> None:
        """A ``session_event`` for the VM's clients, secrets masked."""
        self._opts.emit("session_event", {"session_id": self._opts.session_id, **self._masked(event)})

    async def _stop(self, readers: Sequence[asyncio.Task[Any]] = (), *, drain_stdout: bool = False) -> None:
        """The shutdown sequence (module docstring); idempotent. ``readers``: the driver's tasks
        reading the agent's pipes; ``drain_stdout``: nobody reads stdout any more (read it to EOF)."""
        self._closed = True
        proc = self._proc
        if proc is not None and proc.returncode is None:
            if proc.stdin is not None:
                with contextlib.suppress(Exception):
                    proc.stdin.close()
            if not await _exits_within(proc, self._stop_grace):
                kill_tree(proc)
                await _exits_within(proc, 3.0)
        tasks = [*readers]
        if self._stderr_task is not None:
            tasks.append(self._stderr_task)
        if proc is not None:
            if proc.stdin is not None:
                with contextlib.suppress(Exception):
                    proc.stdin.close()
            if drain_stdout and proc.stdout is not None and not proc.stdout.at_eof():
                tasks.append(asyncio.ensure_future(proc.stdout.read()))
        # the tree has exited (or was killed): let the readers reach EOF, so the pipes are closed
        # while the loop is alive, then cancel whatever still reads (a grandchild holding them)
        pending = [t for t in tasks if not t.done()]
        if pending and (proc is None or proc.returncode is not None):
            await asyncio.wait(pending, timeout=2.0)
        for task in tasks:
            if not task.done():
                task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
