"""Senders waiting on a message: for its outcome (``wait=True``), or for room in a full queue.

The instances report every outcome here as it is committed (acknowledged, completed, dead), and
every receive (room in the queue it took from). A waiter also re-reads storage every few seconds in
case an outcome was missed; when the actor runs on another node, storage tells this node when the
message is done (``watch``), and the node calls :meth:`Waiters.on_remote_done`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Iterable
from typing import TYPE_CHECKING, Any, Literal

from actorq.errors import ActorqError, NotFound
from actorq.results import SendResult
from actorq.storage.protocol import LeasedStorage, MessageRecord, MessageStatus, Storage

if TYPE_CHECKING:
    from actorq.core.message import Message

log = logging.getLogger("actorq.runtime")

_RECENT_RESULTS = 4096
_POLL = 2.0  # how often a waiting sender re-reads storage in case a notification was missed
_POLL_REMOTE = 1.0  # the same, when the actor runs on another node
_ROOM_POLL = 0.25  # how often a blocked sender tries a full queue again


def result_of(rec: MessageRecord) -> SendResult:
    status: Literal["pending", "in_flight", "completed", "failed"]
    status = ("pending", "in_flight", "completed", "failed")[rec.status]
    return SendResult(
        id=rec.id,
        status=status,
        response=json.loads(rec.response) if rec.response is not None else None,
        error=rec.error if rec.status == MessageStatus.DEAD else None,
        attempt=rec.attempt,
        actor_id=rec.actor_id,
        queue=rec.queue,
    )


class Waiters:
    def __init__(
        self,
        storage: Storage,
        spawn: Callable[[Coroutine[Any, Any, Any]], asyncio.Task[Any]],
        max_wait: float,
    ) -> None:
        self.storage = storage
        self.max_wait = max_wait
        self._spawn = spawn
        self._waiters: dict[tuple[str, int], list[asyncio.Future[SendResult]]] = {}
        self._recent: OrderedDict[tuple[str, int], SendResult] = OrderedDict()
        self._room: dict[tuple[str, str], asyncio.Event] = {}

    # -- outcomes, reported by the instances ------------------------------------------------------
    def on_finished(
        self,
        actor_id: str,
        msg_id: int,
        status: Literal["completed", "failed"],
        response: str | None,
        error: str | None,
        *,
        attempt: int,
        queue: str,
    ) -> None:
        result = SendResult(
            id=msg_id,
            status=status,
            response=json.loads(response) if response is not None else None,
            error=error,
            attempt=attempt,
            actor_id=actor_id,
            queue=queue,
        )
        key = (actor_id, msg_id)
        futs = self._waiters.pop(key, None)
        if futs:
            for f in futs:
                if not f.done():
                    f.set_result(result)
            return
        self._recent[key] = result
        if len(self._recent) > _RECENT_RESULTS:
            self._recent.popitem(last=False)

    def on_acked(self, actor_id: str, messages: Iterable[Message[Any]]) -> None:
        for m in messages:
            self.on_finished(actor_id, m.id, "completed", None, None, attempt=m.attempt, queue=m.name)

    def on_dead(self, records: Iterable[MessageRecord]) -> None:
        for r in records:
            log.error("message %s of actor %s moved to the dead letters: %s", r.id, r.actor_id, r.error)
            error = r.error or "exceeded max_attempts"
            self.on_finished(r.actor_id, r.id, "failed", None, error, attempt=r.attempt, queue=r.queue)

    def on_received(self, actor_id: str, queues: Iterable[str]) -> None:
        for q in queues:
            ev = self._room.pop((actor_id, q), None)
            if ev is not None:
                ev.set()

    def on_remote_done(self, actor_id: str, msg_id: int) -> None:
        """Another node finished a message a sender here waits for: look it up."""
        if (actor_id, msg_id) in self._waiters:
            self._spawn(self._resolve_from_storage(actor_id, msg_id))

    async def _resolve_from_storage(self, actor_id: str, msg_id: int) -> None:
        rec = await self.storage.get_message(actor_id, msg_id)
        if rec is None or rec.status not in (MessageStatus.COMPLETED, MessageStatus.DEAD):
            return
        for f in self._waiters.pop((actor_id, msg_id), []):
            if not f.done():
                f.set_result(result_of(rec))

    def release_all(self, err: ActorqError) -> None:
        """Shutting down: every waiting sender gets ``err`` (they retry)."""
        for futs in self._waiters.values():
            for f in futs:
                if not f.done():
                    f.set_exception(err)

    # -- waiting ----------------------------------------------------------------------------------
    async def room(self, actor_id: str, queue: str, timeout: float) -> None:
        """Wait until something is taken from ``queue`` (or a short while passes: try again)."""
        ev = self._room.setdefault((actor_id, queue), asyncio.Event())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ev.wait(), min(timeout, _ROOM_POLL))

    async def wait(
        self, actor_id: str, msg_id: int, timeout: float | None, *, fresh: bool, remote: bool
    ) -> SendResult:
        """Wait until the message is completed or dead, or ``timeout`` passes (then ``timed_out``).
        ``fresh``: just sent here; ``remote``: the actor is not awake on this node."""
        loop = asyncio.get_running_loop()
        limit = self.max_wait if timeout is None else min(max(0.0, timeout), self.max_wait)
        deadline = loop.time() + limit
        key = (actor_id, msg_id)
        fut: asyncio.Future[SendResult] = loop.create_future()
        self._waiters.setdefault(key, []).append(fut)
        try:
            recent = self._recent.get(key)
            if recent is not None:
                return recent
            rec: MessageRecord | None = None
            poll = _POLL
            if remote and isinstance(self.storage, LeasedStorage):
                # the actor runs on another node: ask its completion to NOTIFY us
                poll = _POLL_REMOTE
                rec = await self.storage.watch(actor_id, msg_id)
            elif not fresh:
                rec = await self.storage.get_message(actor_id, msg_id)
            if rec is None and (remote or not fresh):
                raise NotFound(f"no message {msg_id} on actor {actor_id}")
            if rec is not None and rec.status in (MessageStatus.COMPLETED, MessageStatus.DEAD):
                return result_of(rec)
            while True:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    # as it is now, so that ``attempt`` counts the deliveries made meanwhile
                    rec = await self.storage.get_message(actor_id, msg_id)
                    if rec is None:
                        raise NotFound(f"no message {msg_id} on actor {actor_id}")
                    if rec.status in (MessageStatus.COMPLETED, MessageStatus.DEAD):
                        return result_of(rec)
                    return SendResult(
                        id=msg_id, status="timed_out", attempt=rec.attempt, actor_id=actor_id, queue=rec.queue
                    )
                done, _ = await asyncio.wait((fut,), timeout=min(remaining, poll))
                if done:
                    return fut.result()
                rec = await self.storage.get_message(actor_id, msg_id)  # a notification may be lost
                if rec is None:
                    raise NotFound(f"no message {msg_id} on actor {actor_id}")
                if rec.status in (MessageStatus.COMPLETED, MessageStatus.DEAD):
                    return result_of(rec)
        finally:
            futs = self._waiters.get(key)
            if futs is not None:
                with contextlib.suppress(ValueError):
                    futs.remove(fut)
                if not futs:
                    del self._waiters[key]
