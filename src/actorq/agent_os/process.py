"""An asyncio view of a sandbox process started on a VM's host thread.

VM processes must be forked by the VM's own host thread (its namespaces and credentials are what
the child inherits, see ``host.py``), so they cannot come from ``asyncio.create_subprocess_exec``,
which forks on the event loop's thread. :class:`VMProcess` gives the same surface the agent drivers
and the process table use (``pid``, ``returncode``, ``stdin``/``stdout``/``stderr`` streams,
``wait()``) over a ``subprocess.Popen`` made elsewhere: pipes through ``connect_read_pipe`` /
``connect_write_pipe``, the exit through a pidfd watched by the loop.

Must not import the core or storage.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
from typing import IO

# StreamReader bound for readline (the ACP library reads JSON-RPC lines): what a VM process writes
# is bounded, and a longer line fails that connection instead of growing the server's memory
_LIMIT = 16 << 20


class VMProcess:
    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        self._popen = popen
        self.pid = popen.pid
        self.returncode: int | None = None
        self.stdin: asyncio.StreamWriter | None = None
        self.stdout: asyncio.StreamReader | None = None
        self.stderr: asyncio.StreamReader | None = None
        self._exited = asyncio.Event()
        self._pidfd: int | None = None

    @classmethod
    async def attach(cls, popen: subprocess.Popen[bytes]) -> VMProcess:
        self = cls(popen)
        loop = asyncio.get_running_loop()
        try:
            if popen.stdout is not None:
                self.stdout = await _reader(loop, popen.stdout)
            if popen.stderr is not None:
                self.stderr = await _reader(loop, popen.stderr)
            if popen.stdin is not None:
                transport, protocol = await loop.connect_write_pipe(
                    lambda: asyncio.StreamReaderProtocol(asyncio.StreamReader()), popen.stdin
                )
                self.stdin = asyncio.StreamWriter(transport, protocol, None, loop)
            self._pidfd = os.pidfd_open(popen.pid)
            loop.add_reader(self._pidfd, self._reap)
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                popen.kill()
            raise
        return self

    def _reap(self) -> None:
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:  # reaped elsewhere: nothing more will tell us its status
            pid, status = self.pid, 255 << 8
        if pid == 0:
            return
        loop = asyncio.get_running_loop()
        if self._pidfd is not None:
            loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None
        self.returncode = os.waitstatus_to_exitcode(status)
        self._popen.returncode = self.returncode  # so Popen never warns that it is still running
        self._exited.set()

    async def wait(self) -> int:
        await self._exited.wait()
        assert self.returncode is not None
        return self.returncode

    async def communicate(self, data: bytes | None = None) -> tuple[bytes, bytes]:
        if self.stdin is not None:
            if data:
                self.stdin.write(data)
                with contextlib.suppress(ConnectionError):
                    await self.stdin.drain()
            self.stdin.close()
        out, err = await asyncio.gather(_read_all(self.stdout), _read_all(self.stderr))
        await self.wait()
        return out, err


async def _reader(loop: asyncio.AbstractEventLoop, pipe: IO[bytes]) -> asyncio.StreamReader:
    reader = asyncio.StreamReader(limit=_LIMIT)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)
    return reader


async def _read_all(stream: asyncio.StreamReader | None) -> bytes:
    return b"" if stream is None else await stream.read()
