"""Whether the runtime takes work now, and the background tasks its parts run.

Every part of the runtime (directory, waiters, scheduler, cluster membership) spawns its loops and
one-off tasks here, so that stopping the runtime cancels all of them in one place.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from actorq.errors import Unavailable


class Lifecycle:
    def __init__(self) -> None:
        self.started = False
        self.accepting = False
        self._tasks: set[asyncio.Task[Any]] = set()

    def check_accepting(self) -> None:
        if not self.accepting:
            raise Unavailable("server is not accepting requests (starting or shutting down)", retry_after=1.0)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def cancel_tasks(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
