"""The PostgreSQL hot paths: sends, receives and completions, group-committed.

Whatever arrives while earlier calls are on the wire is one ``send_many`` / ``receive_many`` /
``complete_many`` statement and one commit, whichever actors the calls are for (``actorq._batching``
cuts the batches; each call still succeeds or fails alone). Items are sorted by actor id (stable)
before they go, so two batches lock actor rows in one order and cannot deadlock. Owner writes are
fenced on the lease epoch inside the functions (``schema.sql``), whose result codes are ``codes.py``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import asyncpg

from actorq._batching import AsyncBatcher
from actorq.errors import QueueFull
from actorq.storage._rows import with_ as _with
from actorq.storage._sql import load_queries
from actorq.storage.postgres.codes import CompleteCode, ReceiveRow, SendCode
from actorq.storage.postgres.database import Database
from actorq.storage.postgres.leases import Leases
from actorq.storage.protocol import MessageRecord, MessageStatus, ReceiveOutcome, SendOutcome, SendRequest

Q = load_queries("actorq.storage.postgres")

# one send call: its items, each with the time it was sent at
_Sends = list[tuple[SendRequest, float]]
_SendResults = list[SendOutcome | QueueFull | LookupError]


@dataclass(frozen=True, slots=True)
class _Complete:
    """One ``complete`` call waiting for its batch."""

    actor_id: str
    epoch: int | None
    msg_id: int
    now: float
    response: str | None
    state: str | None


@dataclass(frozen=True, slots=True)
class _Receive:
    """One ``receive`` call waiting for its batch."""

    actor_id: str
    epoch: int | None
    ack_ids: tuple[int, ...]
    state: str | None
    count: int
    queues: tuple[str, ...] | None
    now: float
    max_attempts: int


def _send_outcome(
    req: SendRequest, status: int, msg_id: int, created: float, pending: int
) -> SendOutcome | QueueFull | LookupError:
    if status == SendCode.NO_ACTOR:
        return LookupError(f"actor {req.actor_id} does not exist")
    if status == SendCode.FULL:
        return QueueFull(
            f"queue {req.queue!r} is full ({pending} pending, max_size {req.max_size})",
            details={"queue": req.queue, "pending": pending, "max_size": req.max_size},
            retry_after=1.0,
        )
    return SendOutcome(id=msg_id, created_at=created, duplicate=status == SendCode.DUPLICATE)


class Batched:
    """The group-committed calls of one storage."""

    def __init__(self, db: Database, leases: Leases) -> None:
        self._db = db
        self._leases = leases
        # a batch the database refuses (a bad value in one call) runs again one call at a time
        refused = (asyncpg.PostgresError,)
        self._sends: AsyncBatcher[_Sends, _SendResults]
        self._sends = AsyncBatcher(self._run_sends, size=len, max_inflight=2, split_on=refused)
        self._receives: AsyncBatcher[_Receive, list[tuple[Any, ...]]]
        self._receives = AsyncBatcher(self._run_receives, max_inflight=2, split_on=refused)
        self._completes: AsyncBatcher[_Complete, int]
        self._completes = AsyncBatcher(self._run_completes, max_inflight=2, split_on=refused)

    def stats(self) -> dict[str, tuple[int, int]]:
        """Group commit so far, per operation: (statements, calls they carried)."""
        return {
            op: (gc.batches, gc.calls)
            for op, gc in (("send", self._sends), ("receive", self._receives), ("complete", self._completes))
        }

    # -- sends -------------------------------------------------------------------------------
    async def send(self, req: SendRequest, now: float) -> SendOutcome:
        out = (await self._sends([(req, now)]))[0]
        if isinstance(out, Exception):
            raise out
        return out

    async def send_many(self, reqs: list[SendRequest], now: float) -> list[SendOutcome | QueueFull]:
        if not reqs:
            return []
        out: list[SendOutcome | QueueFull] = []
        for res in await self._sends([(r, now) for r in reqs]):
            if isinstance(res, LookupError):
                raise res
            out.append(res)
        return out

    async def _run_sends(self, calls: list[_Sends]) -> list[_SendResults | BaseException]:
        flat = [(ci, pos, req, now) for ci, call in enumerate(calls) for pos, (req, now) in enumerate(call)]
        flat.sort(key=lambda item: item[2].actor_id)  # stable: one actor's items keep their order
        channel = self._leases.new_message_channel
        async with self._db.conn() as c:
            rows = await c.fetch(
                Q["send_many"],
                [f[2].actor_id for f in flat],
                [f[2].queue for f in flat],
                [f[2].body for f in flat],
                [f[3] for f in flat],
                [f[2].available_at for f in flat],
                [f[2].idempotency_key for f in flat],
                [f[2].max_size for f in flat],
                [channel(f[2].actor_id) for f in flat],
                [f[2].traceparent for f in flat],
            )
        outcomes = {
            (ci, pos): _send_outcome(req, *row) for (ci, pos, req, _now), row in zip(flat, rows, strict=True)
        }
        return [[outcomes[ci, pos] for pos in range(len(call))] for ci, call in enumerate(calls)]

    # -- receives ----------------------------------------------------------------------------
    async def receive(
        self,
        actor_id: str,
        queues: tuple[str, ...] | None,
        count: int,
        *,
        ack_ids: tuple[int, ...],
        state: str | None,
        now: float,
        max_attempts: int,
    ) -> ReceiveOutcome:
        epoch = self._leases.write_epoch(actor_id)
        call = _Receive(actor_id, epoch, ack_ids, state, count, queues, now, max_attempts)
        rows = await self._receives(call)
        acked: list[int] = []
        delivered: list[MessageRecord] = []
        dead: list[MessageRecord] = []
        nxt: float | None = None
        for kind, msg_id, queue, body, attempt, created, available, error, trace in rows:
            if kind == ReceiveRow.LEASE_LOST:
                self._leases.lost(actor_id, epoch)
            elif kind == ReceiveRow.ACKED:
                acked.append(msg_id)
            elif kind == ReceiveRow.NOTHING:
                nxt = available
            else:
                delivering = kind == ReceiveRow.DELIVERED
                status = MessageStatus.INFLIGHT if delivering else MessageStatus.DEAD
                rec = MessageRecord(
                    actor_id,
                    msg_id,
                    queue,
                    body,
                    status,
                    attempt,
                    created,
                    available,
                    None,
                    None,
                    error,
                    trace,
                )
                if delivering:
                    delivered.append(rec)
                else:
                    dead.append(_with(rec, completed_at=now))
        return ReceiveOutcome(messages=delivered, dead=dead, acked=acked, next_available_at=nxt)

    async def _run_receives(self, calls: list[_Receive]) -> list[list[tuple[Any, ...]] | BaseException]:
        order = sorted(range(len(calls)), key=lambda i: calls[i].actor_id)  # one lock order
        batch = [calls[i] for i in order]
        async with self._db.conn() as c:
            rows = await c.fetch(
                Q["receive_many"],
                [r.actor_id for r in batch],
                self._leases.node_id,
                [r.epoch for r in batch],
                [a for r in batch for a in r.ack_ids],
                [len(r.ack_ids) for r in batch],
                [r.state for r in batch],
                [r.count for r in batch],
                [json.dumps(r.queues) if r.queues is not None else None for r in batch],
                [r.now for r in batch],
                [r.max_attempts for r in batch],
                self._leases.owner_channel(),
            )
        out: list[list[tuple[Any, ...]]] = [[] for _ in calls]
        for row in rows:
            out[order[row[0] - 1]].append(tuple(row[1:]))
        return list(out)

    # -- completions -------------------------------------------------------------------------
    async def complete(
        self, actor_id: str, msg_id: int, response: str | None, *, state: str | None, now: float
    ) -> bool:
        epoch = self._leases.write_epoch(actor_id)
        done = await self._completes(_Complete(actor_id, epoch, msg_id, now, response, state))
        if done == CompleteCode.LEASE_LOST:
            self._leases.lost(actor_id, epoch)
        return done == CompleteCode.COMPLETED

    async def _run_completes(self, calls: list[_Complete]) -> list[int | BaseException]:
        order = sorted(range(len(calls)), key=lambda i: calls[i].actor_id)  # one lock order
        batch = [calls[i] for i in order]
        async with self._db.conn() as c:
            rows = await c.fetch(
                Q["complete_many"],
                [r.actor_id for r in batch],
                self._leases.node_id,
                [r.epoch for r in batch],
                [r.msg_id for r in batch],
                [r.now for r in batch],
                [r.response for r in batch],
                [r.state for r in batch],
                self._leases.owner_channel(),
            )
        out: list[int | BaseException] = [CompleteCode.NOT_INFLIGHT] * len(calls)
        for ord_, outcome in rows:
            out[order[ord_ - 1]] = CompleteCode(outcome)
        return out
