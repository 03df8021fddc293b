"""The PostgreSQL storage driver (asyncpg).

Every protocol call is one transaction on a pooled connection. Sends to one actor are serialised
by a row lock on the actor (``SELECT ... FOR UPDATE``), so ids stay per-actor, gap-free and FIFO
however many connections (or, later, nodes) send at once. The schema lives in its own PostgreSQL
schema (``actorq`` unless told otherwise), migrated under an advisory lock.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import asyncpg

from actorq.errors import QueueFull, Unavailable
from actorq.storage._rows import actor as _actor
from actorq.storage._rows import key_json as _key_json
from actorq.storage._rows import message as _message
from actorq.storage._rows import with_ as _with
from actorq.storage._sql import load_migrations, load_queries
from actorq.storage.protocol import (
    ActorRecord,
    MessageRecord,
    MessageStatus,
    QueueStats,
    ReceiveOutcome,
    ScheduleRecord,
    SendOutcome,
    SendRequest,
)

Q = load_queries("actorq.storage.postgres")
_SCHEMA = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_MIGRATION_LOCK = 0x6163746F7271  # "actorq"


class PostgresStorage:
    def __init__(self, dsn: str, *, schema: str = "actorq", min_size: int = 2, max_size: int = 10) -> None:
        if not _SCHEMA.match(schema):
            raise ValueError("schema must be a lower-case SQL identifier")
        self.dsn = dsn
        self.schema = schema
        # node-local files (agent VM roots) live on disk beside, not in, the database
        self.files_dir = Path(os.environ.get("ACTORQ_FILES", ".actorq-files")) / schema
        self._sizes = (min_size, max_size)
        self._pool: asyncpg.Pool | None = None

    def __repr__(self) -> str:
        return f"PostgresStorage(schema={self.schema!r})"

    async def open(self) -> None:
        try:
            conn = await asyncpg.connect(self.dsn)
        except (OSError, asyncpg.PostgresError) as exc:
            raise Unavailable(f"cannot connect to PostgreSQL: {exc}") from exc
        try:
            await _migrate(conn, self.schema)
        finally:
            await conn.close()
        # a server setting, not a SET: the pool's RESET ALL on release would undo a SET
        self._pool = await asyncpg.create_pool(
            self.dsn,
            min_size=self._sizes[0],
            max_size=self._sizes[1],
            server_settings={"search_path": self.schema},
        )

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    def _p(self) -> asyncpg.Pool:
        if self._pool is None:
            raise Unavailable("storage is closed")
        return self._pool

    # -- actors ------------------------------------------------------------------------------
    async def resolve_actor(
        self, name: str, key: tuple[str, ...], *, create: bool, must_create: bool, new_id: str, now: float
    ) -> tuple[ActorRecord | None, bool]:
        kj = _key_json(key)
        async with self._p().acquire() as c:
            row = await c.fetchrow(Q["find_actor"], name, kj)
            if row is not None:
                return (None, False) if must_create else (_actor(row), False)
            if not create:
                return None, False
            row = await c.fetchrow(Q["insert_actor"], new_id, name, kj, now)
            if row is None:  # another connection created it meanwhile
                if must_create:
                    return None, False
                row = await c.fetchrow(Q["find_actor"], name, kj)
                return _actor(row), False
            return _actor(row), True

    async def load_actor(self, actor_id: str) -> ActorRecord | None:
        row = await self._p().fetchrow(Q["load_actor"], actor_id)
        return _actor(row) if row else None

    async def list_actors(self, name: str | None, limit: int, after: str | None) -> list[ActorRecord]:
        return [_actor(r) for r in await self._p().fetch(Q["list_actors"], name, after, limit)]

    async def save_state(self, actor_id: str, state: str) -> None:
        await self._p().execute(Q["save_state"], actor_id, state)

    # -- messages ----------------------------------------------------------------------------
    async def send(self, req: SendRequest, now: float) -> SendOutcome:
        async with self._p().acquire() as c, c.transaction():
            return await _send_one(c, req, now)

    async def send_many(self, reqs: list[SendRequest], now: float) -> list[SendOutcome | QueueFull]:
        out: list[SendOutcome | QueueFull] = []
        async with self._p().acquire() as c, c.transaction():
            for req in reqs:
                try:
                    out.append(await _send_one(c, req, now))
                except QueueFull as exc:  # raised before anything was written
                    out.append(exc)
        return out

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
        async with self._p().acquire() as c, c.transaction():
            acked = [i for i in ack_ids if (await c.execute(Q["ack"], actor_id, i, now)) != "UPDATE 0"]
            if state is not None:
                await c.execute(Q["save_state"], actor_id, state)
            delivered: list[MessageRecord] = []
            dead: list[MessageRecord] = []
            if count > 0:
                async for row in c.cursor(Q["ready"], actor_id, now, prefetch=max(count * 2, 8)):
                    msg = _message(row)
                    if queues is not None and msg.queue not in queues:
                        continue
                    if msg.attempt >= max_attempts:
                        dead.append(msg)
                        continue
                    delivered.append(msg)
                    if len(delivered) >= count:
                        break
                for msg in dead:
                    await c.execute(Q["kill"], actor_id, msg.id, now)
                    await c.execute(Q["add_depth"], actor_id, msg.queue, -1)
                for msg in delivered:
                    await c.execute(Q["deliver"], actor_id, msg.id)
                    await c.execute(Q["add_depth"], actor_id, msg.queue, -1)
            nxt = None if delivered else await c.fetchval(Q["next_delayed"], actor_id, now)
        return ReceiveOutcome(
            messages=[_with(m, status=MessageStatus.INFLIGHT, attempt=m.attempt + 1) for m in delivered],
            dead=[_with(m, status=MessageStatus.DEAD, completed_at=now) for m in dead],
            acked=acked,
            next_available_at=nxt,
        )

    async def complete(
        self, actor_id: str, msg_id: int, response: str | None, *, state: str | None, now: float
    ) -> bool:
        async with self._p().acquire() as c, c.transaction():
            done: bool = await c.execute(Q["complete"], actor_id, msg_id, now, response) != "UPDATE 0"
            if done and state is not None:
                await c.execute(Q["save_state"], actor_id, state)
            return done

    async def release(
        self, actor_id: str, ids: tuple[int, ...], *, error: str | None, max_attempts: int, now: float
    ) -> list[MessageRecord]:
        dead: list[MessageRecord] = []
        async with self._p().acquire() as c, c.transaction():
            for i in ids:
                row = await c.fetchrow(Q["get_message"], actor_id, i)
                if row is None or row[4] != MessageStatus.INFLIGHT:
                    continue
                await c.execute(Q["release"], actor_id, i, error)
                if row[5] >= max_attempts:
                    await c.execute(Q["kill"], actor_id, i, now)
                    dead.append(
                        _with(_message(row), status=MessageStatus.DEAD, error=error, completed_at=now)
                    )
                else:
                    await c.execute(Q["add_depth"], actor_id, row[2], 1)
        return dead

    async def get_message(self, actor_id: str, msg_id: int) -> MessageRecord | None:
        row = await self._p().fetchrow(Q["get_message"], actor_id, msg_id)
        return _message(row) if row else None

    async def list_messages(
        self, actor_id: str, status: MessageStatus, limit: int, queue: str | None = None
    ) -> list[MessageRecord]:
        rows = await self._p().fetch(Q["list_messages"], actor_id, int(status), limit, queue)
        return [_message(r) for r in rows]

    async def next_available_at(self, actor_id: str, now: float) -> tuple[bool, float | None]:
        async with self._p().acquire() as c:
            ready = bool(await c.fetchval(Q["has_ready"], actor_id, now))
            nxt = await c.fetchval(Q["next_delayed"], actor_id, now)
        return ready, nxt

    async def queue_stats(self, actor_id: str, now: float) -> list[QueueStats]:
        rows = await self._p().fetch(Q["queue_stats"], actor_id, now)
        return [QueueStats(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows]

    async def retry_dead(self, actor_id: str, msg_id: int, now: float) -> bool:
        async with self._p().acquire() as c, c.transaction():
            queue = await c.fetchval(Q["retry_dead"], actor_id, msg_id, now)
            if queue is None:
                return False
            await c.execute(Q["add_depth"], actor_id, queue, 1)
            return True

    async def delete_dead(self, actor_id: str, msg_id: int) -> bool:
        deleted: bool = await self._p().execute(Q["delete_dead"], actor_id, msg_id) != "DELETE 0"
        return deleted

    async def recover(self, now: float) -> list[str]:
        async with self._p().acquire() as c, c.transaction():
            await c.execute(Q["recover"])
            await c.execute(Q["clear_depths"])
            await c.execute(Q["recount_depths"])
            return [r[0] for r in await c.fetch(Q["actors_with_work"])]

    async def purge_completed(self, before: float) -> int:
        status = await self._p().execute(Q["purge_completed"], before)
        return int(status.split()[-1])

    # -- schedules ---------------------------------------------------------------------------
    async def add_schedule(self, actor_id: str, run_at: float, action: str, args: str) -> int:
        return int(await self._p().fetchval(Q["add_schedule"], actor_id, run_at, action, args))

    async def due_schedules(self, now: float, limit: int) -> list[ScheduleRecord]:
        rows = await self._p().fetch(Q["due_schedules"], now, limit)
        return [ScheduleRecord(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows]

    async def next_schedule_at(self) -> float | None:
        value = await self._p().fetchval(Q["next_schedule_at"])
        return float(value) if value is not None else None

    async def finish_schedule(self, schedule_id: int, *, retry_at: float | None) -> None:
        if retry_at is None:
            await self._p().execute(Q["delete_schedule"], schedule_id)
        else:
            await self._p().execute(Q["retry_schedule"], schedule_id, retry_at)


async def _send_one(c: asyncpg.Connection, req: SendRequest, now: float) -> SendOutcome:
    """Append one message under the actor's row lock: idempotency, size check, next id, insert."""
    seq = await c.fetchval(Q["lock_actor"], req.actor_id)
    if seq is None:
        raise LookupError(f"actor {req.actor_id} does not exist")
    if req.idempotency_key is not None:
        row = await c.fetchrow(Q["find_idempotent"], req.actor_id, req.idempotency_key)
        if row is not None:
            return SendOutcome(id=row[0], created_at=row[1], duplicate=True)
    pending = await c.fetchval(Q["count_pending"], req.actor_id, req.queue) or 0
    if pending >= req.max_size:
        raise QueueFull(
            f"queue {req.queue!r} is full ({pending} pending, max_size {req.max_size})",
            details={"queue": req.queue, "pending": pending, "max_size": req.max_size},
            retry_after=1.0,
        )
    await c.execute(Q["bump_seq"], req.actor_id)
    await c.execute(
        Q["insert_message"],
        req.actor_id,
        seq,
        req.queue,
        req.body,
        now,
        req.available_at,
        req.idempotency_key,
    )
    await c.execute(Q["add_depth"], req.actor_id, req.queue, 1)
    return SendOutcome(id=seq, created_at=now)


async def _migrate(conn: asyncpg.Connection, schema: str) -> None:
    """Apply numbered migrations once, whichever node gets there first (advisory lock)."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        await conn.execute(f"SET LOCAL search_path TO {schema}")
        await conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        current = await conn.fetchval("SELECT max(version) FROM schema_version") or 0
        for version, _name, sql in load_migrations("actorq.storage.postgres"):
            if version > current:
                await conn.execute(sql)
                await conn.execute("INSERT INTO schema_version (version) VALUES ($1)", version)
