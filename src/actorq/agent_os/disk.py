"""The ``/home/user`` cap of a VM, enforced by accounting.

The host filesystem gives no per-directory quota here, so a VM's home is measured (allocated blocks,
walked without following links on the VM's host thread) every few seconds while it is awake, with
``RLIMIT_FSIZE`` at the cap as a hard bound on any single file. Once the home holds more than its
cap, the VM's processes and agents are stopped and writes, ``exec``, ``spawn`` and prompts raise
``ResourceLimit`` until enough is deleted (``delete_file`` keeps working). Between two
measurements a VM can overshoot by what it writes in that time.

Must not import the core or storage.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Awaitable, Callable

from actorq.agent_os import fs
from actorq.agent_os.host import VMHost
from actorq.errors import ResourceLimit

MIN_INTERVAL = 5.0


class DiskGuard:
    def __init__(self, host: VMHost, limit_mb: int | None, on_over: Callable[[int], Awaitable[None]]) -> None:
        self.host = host
        self.limit = None if limit_mb is None else limit_mb * 1024 * 1024
        self.used: int | None = None
        self._on_over = on_over
        self._interval = MIN_INTERVAL

    @property
    def over(self) -> bool:
        return self.limit is not None and self.used is not None and self.used > self.limit

    def _measure(self) -> int:
        fd = os.open(self.host.stage.home, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            return fs.usage(fd)
        finally:
            os.close(fd)

    async def measure(self) -> int:
        started = time.perf_counter()
        self.used = await self.host.as_vm_user(self._measure)
        # a big home is walked less often: at most ~5% of the VM thread's time goes to this
        self._interval = max(MIN_INTERVAL, 20 * (time.perf_counter() - started))
        return self.used

    def check(self, adding: int = 0) -> None:
        """Raise ResourceLimit if the home is over its cap (or would be, after ``adding`` bytes)."""
        if self.limit is None or self.used is None:
            return
        if self.used + adding > self.limit:
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
        """Measure every few seconds; on going over the cap, call ``on_over`` once."""
        if self.limit is None:
            return
        was_over = False
        while True:
            with contextlib.suppress(OSError):
                await self.measure()
            if self.over and not was_over:
                assert self.used is not None
                await self._on_over(self.used)
            was_over = self.over
            await asyncio.sleep(self._interval)
