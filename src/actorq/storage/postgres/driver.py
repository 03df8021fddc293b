"""The PostgreSQL storage driver (asyncpg), shared by several server nodes.

Every protocol call is one transaction on a pooled connection (``database.py``), except that
concurrent sends, receives and completions share one (group commit, ``batched.py``: one statement
for many calls, whichever actors they are for; each call still succeeds or fails alone). Sends to
one actor are serialised by a row lock on the actor (``SELECT ... FOR UPDATE``), so ids stay
per-actor, gap-free and FIFO however many connections or nodes send at once. The schema lives in
its own PostgreSQL schema (``actorq`` unless told otherwise); ``schema.sql`` is what it looks like.

Several nodes: once a runtime :meth:`~PostgresStorage.join` s, this driver is a node. It owns
actors through lease rows (``leases.py``) and fences every owner write (receive, complete, release,
save_state) on the lease's epoch, inside the write's own transaction (``FOR KEY SHARE`` on the
lease row, so a concurrent claim waits for the write to commit, then bumps the epoch). Sends by a
node that does not own the actor NOTIFY the owner; completions of watched messages NOTIFY the
waiting node. Connection failures surface as :class:`~actorq.errors.Unavailable` (clients retry).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import asyncpg

from actorq.errors import QueueFull
from actorq.storage._files import private_dir, tighten_tree_top
from actorq.storage._rows import actor as _actor
from actorq.storage._rows import key_json as _key_json
from actorq.storage._rows import message as _message
from actorq.storage._rows import with_ as _with
from actorq.storage._sql import load_queries
from actorq.storage.postgres import snapshots as _snapshots
from actorq.storage.postgres.batched import Batched
from actorq.storage.postgres.database import Database
from actorq.storage.postgres.leases import Leases
from actorq.storage.protocol import (
    ActorRecord,
    Lease,
    MessageRecord,
    MessageStatus,
    NodeRecord,
    QueueDepth,
    QueueStats,
    ReceiveOutcome,
    ScheduleRecord,
    SendOutcome,
    SendRequest,
)

Q = load_queries("actorq.storage.postgres")


class PostgresStorage:
    def __init__(self, dsn: str, *, schema: str = "actorq", min_size: int = 2, max_size: int = 10) -> None:
        self._db = Database(dsn, schema, min_size, max_size)
        self.dsn = dsn
        self.schema = schema
        # node-local files (agent VM roots) live on disk beside, not in, the database
        self.files_dir = Path(os.environ.get("ACTORQ_FILES", ".actorq-files")) / schema
        self._leases = Leases(self._db, ("aq_" + schema)[:63])
        self._batched = Batched(self._db, self._leases)

    def __repr__(self) -> str:
        return f"PostgresStorage(schema={self.schema!r})"

    def batch_stats(self) -> dict[str, tuple[int, int]]:
        """Group commit so far, per operation: (statements, calls they carried)."""
        return self._batched.stats()

    async def open(self) -> None:
        # this node's local files (agent VM roots): private like an embedded data directory
        private_dir(self.files_dir.parent)
        private_dir(self.files_dir)
        tighten_tree_top(self.files_dir)
        await self._db.open()

    async def close(self) -> None:
        await self._leases.stop_listening()
        await self._db.close()

    # -- nodes and leases (see leases.py) ---------------------------------------------------
    @property
    def node_id(self) -> str | None:
        return self._leases.node_id

    async def join(
        self,
        address: str | None,
        on_message: Callable[[str], None],
        on_done: Callable[[str, int], None],
        on_reconnect: Callable[[], None],
        on_released: Callable[[str | None, str | None], None] | None = None,
    ) -> str:
        return await self._leases.join(address, on_message, on_done, on_reconnect, on_released)

    async def leave(self) -> None:
        await self._leases.leave()

    async def acquire(self, actor_id: str, ttl: float) -> Lease:
        return await self._leases.acquire(actor_id, ttl)

    async def renew(self, ttl: float) -> set[str]:
        return await self._leases.renew(ttl)

    async def release_lease(self, actor_id: str, epoch: int) -> None:
        await self._leases.release(actor_id, epoch)

    async def owner(self, actor_id: str) -> Lease:
        return await self._leases.owner(actor_id)

    def forget(self, actor_id: str) -> None:
        self._leases.forget(actor_id)

    def holds(self, actor_id: str) -> bool:
        return self._leases.holds(actor_id)

    async def claimable(self, now: float, limit: int) -> list[tuple[str, bool]]:
        return await self._leases.claimable(now, limit)

    async def watch(self, actor_id: str, msg_id: int) -> MessageRecord | None:
        async with self._db.conn() as c:
            row = await c.fetchrow(Q["watch"], actor_id, msg_id)
        return _message(row) if row else None

    async def nodes(self, actors_per_node: int) -> list[NodeRecord]:
        async with self._db.conn() as c:
            rows = await c.fetch(Q["list_nodes"])
            held = await c.fetch(Q["node_actors"], actors_per_node)
        actors: dict[str, list[str]] = {}
        counts: dict[str, int] = {}
        for node_id, actor_id, count in held:
            actors.setdefault(node_id, []).append(actor_id)
            counts[node_id] = count
        return [NodeRecord(r[0], r[1], r[2], r[3], counts.get(r[0], 0), actors.get(r[0], [])) for r in rows]

    async def _notify_done(self, c: asyncpg.Connection, actor_id: str, msg_id: int) -> None:
        await c.execute(Q["notify"], self._leases.channel, f"d:{actor_id}:{msg_id}")

    async def _notify_new(self, c: asyncpg.Connection, actor_id: str) -> None:
        """Tell the owner about a new message, unless this node is the owner (it pokes itself)."""
        channel = self._leases.new_message_channel(actor_id)
        if channel is not None:
            await c.execute(Q["notify"], channel, f"m:{actor_id}")

    # -- actors ------------------------------------------------------------------------------
    async def resolve_actor(
        self, name: str, key: tuple[str, ...], *, create: bool, must_create: bool, new_id: str, now: float
    ) -> tuple[ActorRecord | None, bool]:
        kj = _key_json(key)
        async with self._db.conn() as c:
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
        async with self._db.conn() as c:
            row = await c.fetchrow(Q["load_actor"], actor_id)
        return _actor(row) if row else None

    async def list_actors(self, name: str | None, limit: int, after: str | None) -> list[ActorRecord]:
        async with self._db.conn() as c:
            return [_actor(r) for r in await c.fetch(Q["list_actors"], name, after, limit)]

    async def save_state(self, actor_id: str, state: str, *, version: int | None = None) -> None:
        async with self._db.tx() as c:
            await self._leases.fence(c, actor_id)
            if version is None:
                await c.execute(Q["save_state"], actor_id, state)
            else:
                await c.execute(Q["save_state_version"], actor_id, state, version)

    # -- messages ----------------------------------------------------------------------------
    # Sends, receives and completions go through group commit (batched.py).
    async def send(self, req: SendRequest, now: float) -> SendOutcome:
        return await self._batched.send(req, now)

    async def send_many(self, reqs: list[SendRequest], now: float) -> list[SendOutcome | QueueFull]:
        """In order, one commit; each item stored or refused (QueueFull) alone. An actor that does
        not exist raises LookupError (the runtime checks actors first: a broken invariant)."""
        return await self._batched.send_many(reqs, now)

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
        return await self._batched.receive(
            actor_id, queues, count, ack_ids=ack_ids, state=state, now=now, max_attempts=max_attempts
        )

    async def complete(
        self, actor_id: str, msg_id: int, response: str | None, *, state: str | None, now: float
    ) -> bool:
        return await self._batched.complete(actor_id, msg_id, response, state=state, now=now)

    async def release(
        self, actor_id: str, ids: tuple[int, ...], *, error: str | None, max_attempts: int, now: float
    ) -> list[MessageRecord]:
        dead: list[MessageRecord] = []
        async with self._db.tx() as c:
            await self._leases.fence(c, actor_id)
            for i in ids:
                row = await c.fetchrow(Q["get_message"], actor_id, i)
                if row is None or row[4] != MessageStatus.INFLIGHT:
                    continue
                await c.execute(Q["release"], actor_id, i, error)
                if row[5] >= max_attempts:
                    if await c.fetchval(Q["kill"], actor_id, i, now):
                        await self._notify_done(c, actor_id, i)
                    dead.append(
                        _with(_message(row), status=MessageStatus.DEAD, error=error, completed_at=now)
                    )
                else:
                    await c.execute(Q["add_depth"], actor_id, row[2], 1)
        return dead

    async def get_message(self, actor_id: str, msg_id: int) -> MessageRecord | None:
        async with self._db.conn() as c:
            row = await c.fetchrow(Q["get_message"], actor_id, msg_id)
        return _message(row) if row else None

    async def list_messages(
        self, actor_id: str, status: MessageStatus, limit: int, queue: str | None = None
    ) -> list[MessageRecord]:
        async with self._db.conn() as c:
            rows = await c.fetch(Q["list_messages"], actor_id, int(status), limit, queue)
        return [_message(r) for r in rows]

    async def next_available_at(self, actor_id: str, now: float) -> tuple[bool, float | None]:
        async with self._db.conn() as c:
            ready = bool(await c.fetchval(Q["has_ready"], actor_id, now))
            nxt = await c.fetchval(Q["next_delayed"], actor_id, now)
        return ready, nxt

    async def queue_stats(self, actor_id: str, now: float) -> list[QueueStats]:
        async with self._db.conn() as c:
            rows = await c.fetch(Q["queue_stats"], actor_id, now)
        return [QueueStats(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows]

    async def queue_depths(self, now: float) -> list[QueueDepth]:
        async with self._db.conn() as c:
            rows = await c.fetch(Q["queue_depths"], now)
        return [QueueDepth(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows]

    async def retry_dead(self, actor_id: str, msg_id: int, now: float) -> bool:
        async with self._db.tx() as c:
            queue = await c.fetchval(Q["retry_dead"], actor_id, msg_id, now)
            if queue is None:
                return False
            await c.execute(Q["add_depth"], actor_id, queue, 1)
            await self._notify_new(c, actor_id)
            return True

    async def delete_dead(self, actor_id: str, msg_id: int) -> bool:
        async with self._db.conn() as c:
            deleted: bool = await c.execute(Q["delete_dead"], actor_id, msg_id) != "DELETE 0"
        return deleted

    async def recover(self, now: float) -> list[str]:
        """Single-node recovery (every in-flight message is this node's). A runtime that joined
        as a node does not call this: taking a lease over requeues that actor's in-flight messages."""
        async with self._db.tx() as c:
            await c.execute(Q["recover"])
            await c.execute(Q["clear_depths"])
            await c.execute(Q["recount_depths"])
            return [r[0] for r in await c.fetch(Q["actors_with_work"])]

    async def purge_completed(self, before: float) -> int:
        async with self._db.conn() as c:
            status = await c.execute(Q["purge_completed"], before)
        return int(status.split()[-1])

    # -- agent VM snapshots (storage/snapshots.py) ----------------------------------------------
    async def save_snapshot(self, actor_id: str, generation: int, chunks: Sequence[bytes]) -> None:
        """Fenced like every owner write: a node that lost the actor cannot overwrite the snapshot."""
        async with self._db.tx() as c:
            await self._leases.fence(c, actor_id)
            await _snapshots.save(c, actor_id, generation, chunks)

    async def load_snapshot(self, actor_id: str) -> tuple[int, list[bytes]] | None:
        async with self._db.conn() as c:
            return await _snapshots.load(c, actor_id)

    # -- schedules ---------------------------------------------------------------------------
    async def add_schedule(self, actor_id: str, run_at: float, action: str, args: str) -> int:
        async with self._db.conn() as c:
            return int(await c.fetchval(Q["add_schedule"], actor_id, run_at, action, args))

    async def due_schedules(self, now: float, limit: int) -> list[ScheduleRecord]:
        async with self._db.conn() as c:
            rows = await c.fetch(Q["due_schedules"], now, limit)
        return [ScheduleRecord(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows]

    async def next_schedule_at(self) -> float | None:
        async with self._db.conn() as c:
            value = await c.fetchval(Q["next_schedule_at"])
        return float(value) if value is not None else None

    async def finish_schedule(self, schedule_id: int, *, retry_at: float | None) -> None:
        async with self._db.conn() as c:
            if retry_at is None:
                await c.execute(Q["delete_schedule"], schedule_id)
            else:
                await c.execute(Q["retry_schedule"], schedule_id, retry_at)
