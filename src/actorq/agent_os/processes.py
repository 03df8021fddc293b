"""A VM's processes: one-shot ``exec`` and long-running ``spawn`` with streamed output.

Each process runs through the VM's :class:`~actorq.agent_os.sandbox.Sandbox`. ``spawn``ed
processes get small VM-local ids (1, 2, ...), stream their output as events and keep a bounded
tail of it; all of them are killed when the VM sleeps or is destroyed.

Must not import the core or storage; events leave through the ``emit`` callback.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from actorq.agent_os.process import VMProcess
from actorq.agent_os.sandbox import HOME, ExecLimits, Sandbox, check_args, check_env, check_timeout, kill_tree
from actorq.errors import BadRequest, MessageTooLarge, NotFound, QueueFull
from actorq.vm_types import ExecResult, ProcessInfo

Emit = Callable[[str, Any], None]
_TAIL = 64 * 1024
MAX_STDIN_WRITE = 1024 * 1024  # bytes one write_process_stdin / write_shell call may carry
MAX_STDIN_BUFFER = 4 * 1024 * 1024  # bytes that may wait unread on a process's stdin
_KEEP_FINISHED = 256  # finished processes listed (with their output tails) before the oldest go


@dataclass
class _Proc:
    pid: int
    command: str
    args: list[str]
    proc: VMProcess
    started_at: float
    done: asyncio.Event = field(default_factory=asyncio.Event)
    exit_code: int | None = None
    out: bytearray = field(default_factory=bytearray)
    err: bytearray = field(default_factory=bytearray)
    stdin_closed: bool = False


def stdin_bytes(data: object, what: str = "data") -> bytes:
    """What may be typed into a process or a terminal in one call: str (UTF-8) or bytes, bounded."""
    if isinstance(data, str):
        try:
            raw = data.encode("utf-8")
        except UnicodeEncodeError:
            raise BadRequest(f"{what} must be valid Unicode (no lone surrogates)") from None
    elif isinstance(data, bytes | bytearray):
        raw = bytes(data)
    else:
        raise BadRequest(f"{what} is a string or bytes")
    if len(raw) > MAX_STDIN_WRITE:
        raise MessageTooLarge(
            f"{what} holds {len(raw)} bytes; at most {MAX_STDIN_WRITE} a call",
            details={"size": len(raw), "max": MAX_STDIN_WRITE},
        )
    return raw


async def _read_capped(stream: asyncio.StreamReader | None, cap: int) -> tuple[bytes, bool]:
    if stream is None:
        return b"", False
    buf = bytearray()
    truncated = False
    while chunk := await stream.read(65536):
        room = cap - len(buf)
        if room > 0:
            buf += chunk[:room]
        if len(chunk) > room:
            truncated = True  # keep draining so the process never blocks on a full pipe
    return bytes(buf), truncated


class ProcessTable:
    def __init__(
        self, sandbox: Sandbox, emit: Emit, limits: ExecLimits, on_exit: Callable[[], None] | None = None
    ) -> None:
        self.sandbox = sandbox
        self.emit = emit
        self.limits = limits
        self._on_exit = on_exit or (lambda: None)  # a process ended (it may have written files)
        self._procs: dict[int, _Proc] = {}
        self._next = 1
        self._running_exec: set[VMProcess] = set()

    async def exec(
        self,
        command: str,
        *,
        cwd: str = HOME,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> ExecResult:
        """Run a shell command line to completion (``/bin/sh -c``); bounded time and output."""
        if not isinstance(command, str) or not command:
            raise BadRequest("command is a non-empty shell command line")
        check_args([command])
        limit = check_timeout(timeout) or self.limits.timeout
        started = time.perf_counter()
        proc = await self.sandbox.launch(["/bin/sh", "-c", command], cwd=cwd, env=check_env(env), stdin=False)
        self._running_exec.add(proc)
        cap = self.limits.max_output
        readers = asyncio.gather(_read_capped(proc.stdout, cap), _read_capped(proc.stderr, cap))
        timed_out = False
        try:
            (out, t1), (err, t2) = await asyncio.wait_for(asyncio.shield(readers), limit)
            code = await proc.wait()
        except TimeoutError:
            timed_out = True
            kill_tree(proc)
            (out, t1), (err, t2) = await readers
            await proc.wait()
            code = 124  # as coreutils' timeout(1)
        finally:
            self._running_exec.discard(proc)
            if proc.returncode is None:
                kill_tree(proc)
            self._on_exit()
        return ExecResult(
            exit_code=code if code >= 0 else 128 - code,
            stdout=out.decode("utf-8", "replace"),
            stderr=err.decode("utf-8", "replace"),
            timed_out=timed_out,
            truncated=t1 or t2,
            duration_ms=(time.perf_counter() - started) * 1000,
        )

    async def spawn(
        self,
        command: str,
        args: Sequence[str] = (),
        *,
        cwd: str = HOME,
        env: Mapping[str, str] | None = None,
    ) -> _Proc:
        """Start ``command args...`` (no shell) in the background; output arrives as events."""
        if not isinstance(command, str) or not command:
            raise BadRequest("command is a non-empty program name or path")
        if not isinstance(args, (list, tuple)):
            raise BadRequest("args is a list of strings")
        check_args([command, *args], "command and args")
        # stdin is a pipe from the server (write_stdin / close_stdin), never anything of the host's
        proc = await self.sandbox.launch([command, *args], cwd=cwd, env=check_env(env), stdin=True)
        entry = _Proc(self._next, command, list(args), proc, time.time())
        self._next += 1
        self._procs[entry.pid] = entry
        done = [pid for pid, p in self._procs.items() if p.done.is_set()]
        for pid in done[: max(0, len(done) - _KEEP_FINISHED)]:  # oldest first: dicts keep order
            del self._procs[pid]
        return entry

    async def pump(self, entry: _Proc) -> None:
        """Stream a spawned process's output as events until it exits (run it with keep_awake)."""

        async def read(stream: asyncio.StreamReader | None, name: str, tail: bytearray) -> None:
            if stream is None:
                return
            while chunk := await stream.read(65536):
                tail += chunk
                del tail[:-_TAIL]
                self.emit(
                    "process_output",
                    {"pid": entry.pid, "stream": name, "data": chunk.decode("utf-8", "replace")},
                )

        try:
            await asyncio.gather(
                read(entry.proc.stdout, "stdout", entry.out), read(entry.proc.stderr, "stderr", entry.err)
            )
            await entry.proc.wait()
        finally:
            if entry.proc.returncode is None:
                kill_tree(entry.proc)
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(asyncio.shield(entry.proc.wait()), 5.0)
            code = entry.proc.returncode if entry.proc.returncode is not None else -9
            entry.exit_code = code if code >= 0 else 128 - code
            entry.done.set()
            self.emit("process_exit", {"pid": entry.pid, "exit_code": entry.exit_code})
            self._on_exit()

    def _get(self, pid: int) -> _Proc:
        entry = self._procs.get(pid) if isinstance(pid, int) and not isinstance(pid, bool) else None
        if entry is None:
            raise NotFound(f"no process {pid} in this VM", details={"pids": sorted(self._procs)})
        return entry

    async def wait(self, pid: int, timeout: float | None = None) -> int:
        entry = self._get(pid)
        limit = check_timeout(timeout)
        await asyncio.wait_for(entry.done.wait(), limit)
        assert entry.exit_code is not None
        return entry.exit_code

    def write_stdin(self, pid: int, data: str | bytes) -> int:
        """Queue ``data`` for the process's stdin; the bytes accepted. Bounded per call and by what
        waits unread (a process that does not read its stdin gets no more than ``MAX_STDIN_BUFFER``)."""
        entry = self._get(pid)
        raw = stdin_bytes(data)
        stdin = entry.proc.stdin
        if entry.stdin_closed or stdin is None:
            raise BadRequest(f"the stdin of process {pid} is closed", details={"pid": pid})
        if entry.done.is_set() or stdin.transport.is_closing():
            raise BadRequest(f"process {pid} has exited", details={"pid": pid})
        waiting = stdin.transport.get_write_buffer_size()
        if waiting + len(raw) > MAX_STDIN_BUFFER:
            raise QueueFull(
                f"process {pid} has {waiting} bytes of stdin unread; at most {MAX_STDIN_BUFFER} may wait",
                details={"pid": pid, "buffered": waiting},
                retry_after=0.1,
            )
        stdin.write(raw)
        return len(raw)

    def close_stdin(self, pid: int) -> None:
        """End the process's stdin (it reads EOF once what waits is read). Closing twice is a no-op."""
        entry = self._get(pid)
        entry.stdin_closed = True
        if entry.proc.stdin is not None:
            entry.proc.stdin.close()  # buffered bytes are written first

    def list(self) -> list[ProcessInfo]:
        return [
            ProcessInfo(
                pid=p.pid,
                command=p.command,
                args=p.args,
                running=not p.done.is_set(),
                exit_code=p.exit_code,
                started_at=p.started_at,
                stdout_tail=bytes(p.out[-4096:]).decode("utf-8", "replace"),
                stderr_tail=bytes(p.err[-4096:]).decode("utf-8", "replace"),
            )
            for p in self._procs.values()
        ]

    def kill(self, pid: int, sig: int = signal.SIGKILL) -> None:
        if isinstance(sig, bool) or not isinstance(sig, int) or sig not in signal.valid_signals():
            raise BadRequest("signal is a signal number such as 15 (TERM) or 9 (KILL)")
        entry = self._get(pid)
        if not entry.done.is_set():
            kill_tree(entry.proc, sig)

    @property
    def running(self) -> int:
        """Processes running now: spawned ones and ``exec`` s in progress."""
        return sum(1 for p in self._procs.values() if not p.done.is_set()) + len(self._running_exec)

    async def close(self) -> None:
        """Kill every process of the VM (sleep, shutdown, destroy)."""
        for p in self._procs.values():
            if not p.done.is_set():
                kill_tree(p.proc)
        for proc in list(self._running_exec):
            kill_tree(proc)
        for p in self._procs.values():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(p.proc.wait(), 5.0)
