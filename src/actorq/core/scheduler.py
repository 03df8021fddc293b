"""The durable scheduler: action calls stored to run later (``c.schedule.after/at``).

Schedules live in storage, so they survive restarts. One loop waits for the next due time (or a
new schedule), then fires what is due, each as its own task: an action call on this node, never
forwarded (the owner's own scheduler fires it, so each firing happens on one node). A firing that
cannot run here now (shutting down, or another node owns the actor) stays due and is tried again
a second later; one that raises is retried with backoff up to the actor type's ``max_attempts``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from actorq.errors import Unavailable
from actorq.storage.protocol import Storage

log = logging.getLogger("actorq.runtime")

_DEFERRED_MAX = 10_000


class Scheduler:
    """``fire(actor_id, action, args)``: run the action here (``Unavailable``: not now, not here);
    ``max_attempts(actor_id)``: how often a failing firing is tried."""

    def __init__(
        self,
        storage: Storage,
        spawn: Callable[[Coroutine[Any, Any, Any]], asyncio.Task[Any]],
        fire: Callable[[str, str, list[Any]], Awaitable[Any]],
        max_attempts: Callable[[str], int],
    ) -> None:
        self.storage = storage
        self._spawn = spawn
        self._fire_action = fire
        self._max_attempts = max_attempts
        self._changed = asyncio.Event()
        self._running: set[int] = set()
        self._deferred: dict[int, float] = {}  # schedule id -> not before (monotonic)

    async def add(self, actor_id: str, run_at: float, action: str, args_json: str) -> int:
        sid = await self.storage.add_schedule(actor_id, run_at, action, args_json)
        self._changed.set()
        return sid

    async def loop(self) -> None:
        while True:
            self._changed.clear()
            nxt = await self.storage.next_schedule_at()
            now = time.time()
            if nxt is None or nxt > now:
                wait = None if nxt is None else nxt - now
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), wait)
                continue
            mono = time.monotonic()
            due = [
                s
                for s in await self.storage.due_schedules(now, 100)
                if s.id not in self._running and self._deferred.get(s.id, 0.0) <= mono
            ]
            for s in due:
                self._running.add(s.id)
                self._spawn(self._fire(s.id, s.actor_id, s.action, s.args, s.attempt))
            if not due:  # everything due is already running; wait for one to finish
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), 1.0)

    async def _fire(self, sid: int, actor_id: str, action: str, args: str, attempt: int) -> None:
        retry_at: float | None = None
        try:
            await self._fire_action(actor_id, action, json.loads(args))
        except Unavailable:
            # shutting down, or another node owns the actor: it stays due and fires there (or later)
            self._deferred[sid] = time.monotonic() + 1.0
            if len(self._deferred) > _DEFERRED_MAX:
                self._deferred.clear()
            self._running.discard(sid)
            self._changed.set()
            return
        except Exception as exc:
            if attempt + 1 < self._max_attempts(actor_id):
                retry_at = time.time() + min(60.0, 0.5 * 2**attempt)
                log.warning(
                    "scheduled %s on %s failed (attempt %d), retrying: %s", action, actor_id, attempt + 1, exc
                )
            else:
                log.error(
                    "scheduled %s on %s failed %d times; dropped: %s", action, actor_id, attempt + 1, exc
                )
        try:
            await self.storage.finish_schedule(sid, retry_at=retry_at)
        finally:
            self._running.discard(sid)
            self._changed.set()
