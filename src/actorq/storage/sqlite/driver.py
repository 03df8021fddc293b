"""The SQLite storage driver: each protocol call is one operation (a function of the connection)
run on the writer thread (``writer.py``), which group-commits whatever arrives together.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from actorq.errors import QueueFull, Unavailable
from actorq.storage._files import open_private, private_dir, private_file, tighten_tree_top
from actorq.storage._rows import actor as _actor
from actorq.storage._rows import key_json as _key_json
from actorq.storage._rows import message as _message
from actorq.storage._rows import with_ as _with
from actorq.storage._sql import load_queries
from actorq.storage.protocol import (
    ActorRecord,
    MessageRecord,
    MessageStatus,
    QueueDepth,
    QueueStats,
    ReceiveOutcome,
    ScheduleRecord,
    SendOutcome,
    SendRequest,
)
from actorq.storage.sqlite.writer import Writer

T = TypeVar("T")
Q = load_queries("actorq.storage.sqlite")


class SQLiteStorage:
    """Embedded storage in ``directory/actorq.db``; one process per directory (an flock says so)."""

    def __init__(self, directory: Path | str, *, synchronous: str | None = None) -> None:
        self.directory = Path(directory)
        self.files_dir = self.directory
        self.synchronous = (synchronous or os.environ.get("ACTORQ_SQLITE_SYNC", "FULL")).upper()
        if self.synchronous not in ("FULL", "NORMAL", "EXTRA"):
            raise ValueError("synchronous must be FULL, NORMAL or EXTRA")
        self._writer: Writer | None = None
        self._lock_fd: int | None = None

    def __repr__(self) -> str:
        return f"SQLiteStorage({str(self.directory)!r})"

    # -- lifecycle ---------------------------------------------------------------------------
    async def open(self) -> None:
        # 0700 directory, 0600 files (tightened if an earlier run left them looser); the database
        # exists before SQLite opens it, so its -wal and -shm files take the same 0600 mode
        private_dir(self.directory)
        fd = open_private(self.directory / "LOCK", os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            raise Unavailable(
                f"data directory {self.directory} is in use by another actorq process (pid {holder or '?'})"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._lock_fd = fd
        try:
            tighten_tree_top(self.directory)
            private_file(self.directory / "actorq.db")
        except BaseException:
            self._release_lock()
            raise
        writer = Writer(self.directory / "actorq.db", self.synchronous)
        writer.start()
        await asyncio.get_running_loop().run_in_executor(None, writer.ready.wait)
        if writer.startup_error is not None:
            self._release_lock()
            raise writer.startup_error
        self._writer = writer

    async def close(self) -> None:
        writer = self._writer
        if writer is None:
            return
        self._writer = None
        writer.stop()
        await asyncio.get_running_loop().run_in_executor(None, writer.join)
        self._release_lock()

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def _run(self, op: Callable[[sqlite3.Connection], T], *, durable: bool = True) -> asyncio.Future[T]:
        writer = self._writer
        if writer is None:
            raise Unavailable("storage is closed")
        fut: asyncio.Future[T] = writer.submit(op, durable)
        return fut

    # -- actors ------------------------------------------------------------------------------
    async def resolve_actor(
        self, name: str, key: tuple[str, ...], *, create: bool, must_create: bool, new_id: str, now: float
    ) -> tuple[ActorRecord | None, bool]:
        kj = _key_json(key)

        def op(c: sqlite3.Connection) -> tuple[ActorRecord | None, bool]:
            row = c.execute(Q["find_actor"], {"name": name, "key": kj}).fetchone()
            if row is not None:
                return (None, False) if must_create else (_actor(row), False)
            if not create:
                return None, False
            c.execute(Q["insert_actor"], {"actor_id": new_id, "name": name, "key": kj, "now": now})
            return ActorRecord(new_id, name, key, None, now), True

        return await self._run(op)

    async def load_actor(self, actor_id: str) -> ActorRecord | None:
        def op(c: sqlite3.Connection) -> ActorRecord | None:
            row = c.execute(Q["load_actor"], {"actor_id": actor_id}).fetchone()
            return _actor(row) if row else None

        return await self._run(op)

    async def list_actors(self, name: str | None, limit: int, after: str | None) -> list[ActorRecord]:
        def op(c: sqlite3.Connection) -> list[ActorRecord]:
            rows = c.execute(Q["list_actors"], {"name": name, "after": after, "limit": limit}).fetchall()
            return [_actor(r) for r in rows]

        return await self._run(op)

    async def save_state(self, actor_id: str, state: str, *, version: int | None = None) -> None:
        def op(c: sqlite3.Connection) -> None:
            if version is None:
                c.execute(Q["save_state"], {"actor_id": actor_id, "state": state})
            else:
                c.execute(Q["save_state_version"], {"actor_id": actor_id, "state": state, "version": version})

        await self._run(op)

    # -- messages ----------------------------------------------------------------------------
    async def send(self, req: SendRequest, now: float) -> SendOutcome:
        return await self._run(lambda c: _send_one(c, req, now))

    async def send_many(self, reqs: list[SendRequest], now: float) -> list[SendOutcome | QueueFull]:
        def op(c: sqlite3.Connection) -> list[SendOutcome | QueueFull]:
            out: list[SendOutcome | QueueFull] = []
            for req in reqs:
                try:
                    out.append(_send_one(c, req, now))
                except QueueFull as exc:  # raised before anything was written
                    out.append(exc)
            return out

        return await self._run(op)

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
        def op(c: sqlite3.Connection) -> ReceiveOutcome:
            acked = [
                i
                for i in ack_ids
                if c.execute(Q["ack"], {"actor_id": actor_id, "id": i, "now": now}).rowcount
            ]
            if state is not None:
                c.execute(Q["save_state"], {"actor_id": actor_id, "state": state})
            delivered: list[MessageRecord] = []
            dead: list[MessageRecord] = []
            if count > 0:
                # walk ready messages in id order, skipping other queues, until `count` are handed out
                cursor = c.execute(Q["ready"], {"actor_id": actor_id, "now": now, "limit": -1})
                for row in cursor:
                    msg = _message(row)
                    if queues is not None and msg.queue not in queues:
                        continue
                    if msg.attempt >= max_attempts:
                        dead.append(msg)
                        continue
                    delivered.append(msg)
                    if len(delivered) >= count:
                        break
                cursor.close()
                for msg in dead:
                    c.execute(Q["kill"], {"actor_id": actor_id, "id": msg.id, "now": now})
                    _depth(c, actor_id, msg.queue, -1)
                for msg in delivered:
                    c.execute(Q["deliver"], {"actor_id": actor_id, "id": msg.id})
                    _depth(c, actor_id, msg.queue, -1)
            nxt = None
            if not delivered:
                nxt = c.execute(Q["next_delayed"], {"actor_id": actor_id, "now": now}).fetchone()[0]
            return ReceiveOutcome(
                messages=[_with(m, status=MessageStatus.INFLIGHT, attempt=m.attempt + 1) for m in delivered],
                dead=[_with(m, status=MessageStatus.DEAD, completed_at=now) for m in dead],
                acked=acked,
                next_available_at=nxt,
            )

        return await self._run(op, durable=bool(ack_ids) or state is not None)

    async def complete(
        self, actor_id: str, msg_id: int, response: str | None, *, state: str | None, now: float
    ) -> bool:
        def op(c: sqlite3.Connection) -> bool:
            n = c.execute(
                Q["complete"], {"actor_id": actor_id, "id": msg_id, "now": now, "response": response}
            ).rowcount
            if n and state is not None:
                c.execute(Q["save_state"], {"actor_id": actor_id, "state": state})
            return bool(n)

        return await self._run(op)

    async def release(
        self, actor_id: str, ids: tuple[int, ...], *, error: str | None, max_attempts: int, now: float
    ) -> list[MessageRecord]:
        def op(c: sqlite3.Connection) -> list[MessageRecord]:
            dead: list[MessageRecord] = []
            for i in ids:
                row = c.execute(Q["get_message"], {"actor_id": actor_id, "id": i}).fetchone()
                if row is None or row[4] != MessageStatus.INFLIGHT:
                    continue
                c.execute(Q["release"], {"actor_id": actor_id, "id": i, "error": error})
                if row[5] >= max_attempts:
                    c.execute(Q["kill"], {"actor_id": actor_id, "id": i, "now": now})
                    dead.append(
                        _with(_message(row), status=MessageStatus.DEAD, error=error, completed_at=now)
                    )
                else:
                    _depth(c, actor_id, row[2], 1)
            return dead

        return await self._run(op)

    async def get_message(self, actor_id: str, msg_id: int) -> MessageRecord | None:
        def op(c: sqlite3.Connection) -> MessageRecord | None:
            row = c.execute(Q["get_message"], {"actor_id": actor_id, "id": msg_id}).fetchone()
            return _message(row) if row else None

        return await self._run(op)

    async def list_messages(
        self, actor_id: str, status: MessageStatus, limit: int, queue: str | None = None
    ) -> list[MessageRecord]:
        def op(c: sqlite3.Connection) -> list[MessageRecord]:
            rows = c.execute(
                Q["list_messages"],
                {"actor_id": actor_id, "status": int(status), "limit": limit, "queue": queue},
            ).fetchall()
            return [_message(r) for r in rows]

        return await self._run(op)

    async def next_available_at(self, actor_id: str, now: float) -> tuple[bool, float | None]:
        def op(c: sqlite3.Connection) -> tuple[bool, float | None]:
            ready = bool(c.execute(Q["has_ready"], {"actor_id": actor_id, "now": now}).fetchone()[0])
            nxt = c.execute(Q["next_delayed"], {"actor_id": actor_id, "now": now}).fetchone()[0]
            return ready, nxt

        return await self._run(op)

    async def queue_stats(self, actor_id: str, now: float) -> list[QueueStats]:
        def op(c: sqlite3.Connection) -> list[QueueStats]:
            rows = c.execute(Q["queue_stats"], {"actor_id": actor_id, "now": now}).fetchall()
            return [QueueStats(r[0], r[1] or 0, r[2] or 0, r[3] or 0, r[4] or 0, r[5] or 0) for r in rows]

        return await self._run(op)

    async def queue_depths(self, now: float) -> list[QueueDepth]:
        def op(c: sqlite3.Connection) -> list[QueueDepth]:
            rows = c.execute(Q["queue_depths"], {"now": now}).fetchall()
            return [QueueDepth(r[0], r[1], r[2] or 0, r[3] or 0, r[4] or 0, r[5] or 0) for r in rows]

        return await self._run(op, durable=False)

    async def retry_dead(self, actor_id: str, msg_id: int, now: float) -> bool:
        def op(c: sqlite3.Connection) -> bool:
            row = c.execute(Q["get_message"], {"actor_id": actor_id, "id": msg_id}).fetchone()
            if row is None:
                return False
            if not c.execute(Q["retry_dead"], {"actor_id": actor_id, "id": msg_id, "now": now}).rowcount:
                return False
            _depth(c, actor_id, row[2], 1)
            return True

        return await self._run(op)

    async def delete_dead(self, actor_id: str, msg_id: int) -> bool:
        def op(c: sqlite3.Connection) -> bool:
            return bool(c.execute(Q["delete_dead"], {"actor_id": actor_id, "id": msg_id}).rowcount)

        return await self._run(op)

    async def recover(self, now: float) -> list[str]:
        def op(c: sqlite3.Connection) -> list[str]:
            c.execute(Q["recover"])
            c.execute(Q["clear_depths"])
            c.execute(Q["recount_depths"])
            return [r[0] for r in c.execute(Q["actors_with_work"]).fetchall()]

        return await self._run(op)

    async def purge_completed(self, before: float) -> int:
        def op(c: sqlite3.Connection) -> int:
            return int(c.execute(Q["purge_completed"], {"before": before}).rowcount)

        return await self._run(op)

    # -- schedules ---------------------------------------------------------------------------
    async def add_schedule(self, actor_id: str, run_at: float, action: str, args: str) -> int:
        def op(c: sqlite3.Connection) -> int:
            row = c.execute(
                Q["add_schedule"], {"actor_id": actor_id, "run_at": run_at, "action": action, "args": args}
            ).fetchone()
            return int(row[0])

        return await self._run(op)

    async def due_schedules(self, now: float, limit: int) -> list[ScheduleRecord]:
        def op(c: sqlite3.Connection) -> list[ScheduleRecord]:
            rows = c.execute(Q["due_schedules"], {"now": now, "limit": limit}).fetchall()
            return [ScheduleRecord(*r) for r in rows]

        return await self._run(op)

    async def next_schedule_at(self) -> float | None:
        def op(c: sqlite3.Connection) -> float | None:
            value = c.execute(Q["next_schedule_at"]).fetchone()[0]
            return float(value) if value is not None else None

        return await self._run(op)

    async def finish_schedule(self, schedule_id: int, *, retry_at: float | None) -> None:
        def op(c: sqlite3.Connection) -> None:
            if retry_at is None:
                c.execute(Q["delete_schedule"], {"id": schedule_id})
            else:
                c.execute(Q["retry_schedule"], {"id": schedule_id, "run_at": retry_at})

        await self._run(op)


def _send_one(c: sqlite3.Connection, req: SendRequest, now: float) -> SendOutcome:
    """Append one message: idempotency check, O(1) size check, next per-actor id, insert."""
    if req.idempotency_key is not None:
        row = c.execute(
            Q["find_idempotent"], {"actor_id": req.actor_id, "key": req.idempotency_key}
        ).fetchone()
        if row is not None:
            return SendOutcome(id=row[0], created_at=row[1], duplicate=True)
    depth = c.execute(Q["count_pending"], {"actor_id": req.actor_id, "queue": req.queue}).fetchone()
    pending = depth[0] if depth is not None else 0
    if pending >= req.max_size:
        raise QueueFull(
            f"queue {req.queue!r} is full ({pending} pending, max_size {req.max_size})",
            details={"queue": req.queue, "pending": pending, "max_size": req.max_size},
            retry_after=1.0,
        )
    seq = c.execute(Q["take_seq"], {"actor_id": req.actor_id}).fetchone()
    if seq is None:
        raise LookupError(f"actor {req.actor_id} does not exist")
    c.execute(
        Q["insert_message"],
        {
            "actor_id": req.actor_id,
            "id": seq[0],
            "queue": req.queue,
            "body": req.body,
            "now": now,
            "available_at": req.available_at,
            "key": req.idempotency_key,
            "traceparent": req.traceparent,
        },
    )
    _depth(c, req.actor_id, req.queue, 1)
    return SendOutcome(id=seq[0], created_at=now)


def _depth(c: sqlite3.Connection, actor_id: str, queue: str, n: int) -> None:
    c.execute(Q["add_depth"], {"actor_id": actor_id, "queue": queue, "n": n})
