"""The ``/home/user`` cap of a VM, enforced by accounting.

The host filesystem gives no per-directory quota here, so a VM's home is measured (allocated blocks,
walked without following links, on the VM's host thread as its uid): when it wakes, after every
``exec``, spawned process or prompt ends, and every few seconds while it is awake; ``RLIMIT_FSIZE``
at the cap bounds any single file. Once the home holds more than its cap, the VM's processes and
agents are stopped and writes, ``exec``, ``spawn`` and prompts raise ``ResourceLimit`` until enough
is deleted (``delete_file`` keeps working). A check waits for a measurement under way, so the
action after an ``exec`` that filled the disk is refused. Between two measurements a long-running
process can overshoot by what it writes in that time. A big home (a walk over ~50 ms) is measured
only every ``20 x`` its walk time, so that at most ~5% of the VM thread's time goes to it.

Must not import the core or storage.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Awaitable, Callable

from actorq.agent_os import trees
from actorq.agent_os.host import VMHost
from actorq.errors import ActorqError, BadRequest, ResourceLimit

MIN_INTERVAL = 5.0
_BIG = 0.05  # seconds: a walk this long is not repeated after every exec


class DiskGuard:
    def __init__(self, host: VMHost, limit_mb: int | None, on_over: Callable[[int], Awaitable[None]]) -> None:
        self.host = host
        self.limit = None if limit_mb is None else limit_mb * 1024 * 1024
        self.used: int | None = None
        self._on_over = on_over
        self._interval = MIN_INTERVAL
        self._cost = 0.0
        self._measured_at = 0.0
        self._reported = False
        self._pending: asyncio.Task[None] | None = None
        self._again = False
        self.too_deep = False

    @property
    def over(self) -> bool:
        return self.limit is not None and self.used is not None and self.used > self.limit

    def _walk(self) -> int:
        fd = os.open(self.host.stage.home, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            return trees.usage(fd)
        except BadRequest:  # nested too deep to measure: what cannot be counted is not allowed
            self.too_deep = True
            return 1 << 62
        finally:
            os.close(fd)

    async def measure(self) -> int:
        started = time.perf_counter()
        self.too_deep = False
        self.used = await self.host.as_vm_user(self._walk)
        self._cost = time.perf_counter() - started
        self._measured_at = time.monotonic()
        self._interval = max(MIN_INTERVAL, 20 * self._cost)
        if self.over and not self._reported:
            self._reported = True
            await self._on_over(self.used)
        elif not self.over:
            self._reported = False
        return self.used

    async def current(self) -> int:
        """The home's size now, for a client to see (``get_usage``): a new walk, unless walks are
        slow here (a big home), then the walk under way or the last one's result."""
        if self._pending is not None and not self._pending.done():
            await asyncio.shield(self._pending)
        if self.used is None or self._cost <= _BIG:
            return await self.measure()
        return self.used

    def touched(self) -> None:
        """Something may have written to the home (an exec ended): measure again, soon."""
        if self.limit is None:
            return
        if self._pending is not None and not self._pending.done():
            self._again = True
            return
        if self._cost > _BIG and time.monotonic() - self._measured_at < self._interval:
            return  # a big home: the periodic walk will see it
        self._pending = asyncio.create_task(self._settle())

    async def _settle(self) -> None:
        while True:
            self._again = False
            with contextlib.suppress(OSError, ActorqError):  # the VM going to sleep meanwhile
                await self.measure()
            if not self._again:
                return

    async def check(self, adding: int = 0) -> None:
        """Raise ResourceLimit if the home is over its cap (or would be, after ``adding`` bytes)."""
        if self.limit is None:
            return
        if self._pending is not None and not self._pending.done():
            await asyncio.shield(self._pending)
        if self.too_deep:
            raise ResourceLimit(
                f"the VM's /home/user is nested more than {trees.MAX_DEPTH} directories deep, so its size "
                "cannot be measured against Limits.disk_mb; delete the deep tree to go on",
                details={"resource": "disk", "max_depth": trees.MAX_DEPTH},
            )
        if self.used is not None and self.used + adding > self.limit:
            mb = self.limit // (1024 * 1024)
            raise ResourceLimit(
                f"the VM's /home/user holds {self.used // (1024 * 1024)} MB, over its {mb} MB cap "
                "(Limits.disk_mb); delete files to go on",
                details={"resource": "disk", "used_bytes": self.used, "limit_bytes": self.limit},
            )

    def wrote(self, n: int) -> None:
        if self.used is not None:
            self.used += n

    async def run(self) -> None:
        """Measure every few seconds while the VM is awake."""
        if self.limit is None:
            return
        while True:
            await asyncio.sleep(self._interval)
            with contextlib.suppress(OSError, ActorqError):
                await self.measure()

    async def close(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            with contextlib.suppress(BaseException):
                await self._pending
