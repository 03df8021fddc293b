"""The PostgreSQL storage driver (asyncpg), shared by several server nodes.

Every protocol call is one transaction on a pooled connection, except that concurrent sends,
receives and completions share one (group commit, ``batching.py``: one statement for many calls,
whichever actors they are for; each call still succeeds or fails alone). Sends to one actor are
serialised by a row lock on the actor (``SELECT ... FOR UPDATE``), so ids stay per-actor, gap-free and FIFO
however many connections or nodes send at once. The schema lives in its own PostgreSQL schema
(``actorq`` unless told otherwise), migrated under an advisory lock.

Several nodes: once a runtime :meth:`~PostgresStorage.join` s, this driver is a node. It owns
actors through lease rows (``leases.py``) and fences every owner write (receive, complete, release,
save_state) on the lease's epoch, inside the write's own transaction (``FOR KEY SHARE`` on the
lease row, so a concurrent claim waits for the write to commit, then bumps the epoch). Sends by a
node that does not own the actor NOTIFY the owner; completions of watched messages NOTIFY the
waiting node. Connection failures surface as :class:`~actorq.errors.Unavailable` (clients retry).
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import asyncpg

from actorq.errors import LeaseLost, QueueFull, Unavailable
from actorq.storage._files import private_dir, tighten_tree_top
from actorq.storage._rows import actor as _actor
from actorq.storage._rows import key_json as _key_json
from actorq.storage._rows import message as _message
from actorq.storage._rows import with_ as _with
from actorq.storage._sql import load_migrations, load_queries
from actorq.storage.postgres import snapshots as _snapshots
from actorq.storage.postgres.batching import GroupCommit
from actorq.storage.postgres.leases import Leases
from actorq.storage.protocol import (
    ActorRecord,
    Lease,
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
log = logging.getLogger("actorq.storage.postgres")

# the database went away (restart, network): the caller may retry the whole operation
DOWN: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,  # e.g. a ROLLBACK on a connection that broke mid-query
    asyncpg.OperatorInterventionError,
    asyncpg.InsufficientResourcesError,
)


class _PooledConnection(asyncpg.Connection):  # type: ignore[misc]  # asyncpg ships no types
    """A pool connection released without asyncpg's reset query (``RESET ALL; UNLISTEN *; ...``,
    one more round trip per use: ~15% of a node's time under load). Nothing here needs it: the
    driver never SETs (search_path is a server setting), LISTENs (own connection), holds session
    advisory locks or cursors; an open transaction is still rolled back on release."""

    def get_reset_query(self) -> str:
        return ""


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
    if status == 3:
        return LookupError(f"actor {req.actor_id} does not exist")
    if status == 2:
        return QueueFull(
            f"queue {req.queue!r} is full ({pending} pending, max_size {req.max_size})",
            details={"queue": req.queue, "pending": pending, "max_size": req.max_size},
            retry_after=1.0,
        )
    return SendOutcome(id=msg_id, created_at=created, duplicate=status == 1)


def unavailable(exc: BaseException) -> Unavailable:
    return Unavailable(f"PostgreSQL is unavailable: {exc!r}", retry_after=1.0)


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
        self._leases = Leases(self, ("aq_" + schema)[:63])
        self._sends: GroupCommit[list[tuple[SendRequest, float]], list[SendOutcome | QueueFull | LookupError]]
        # a batch the database refuses (a bad value in one call) runs again one call at a time
        refused = (asyncpg.PostgresError,)
        self._sends = GroupCommit(self._run_sends, size=len, max_inflight=2, split_on=refused)
        self._receives: GroupCommit[_Receive, list[tuple[Any, ...]]]
        self._receives = GroupCommit(self._run_receives, max_inflight=2, split_on=refused)
        self._completes: GroupCommit[_Complete, int]
        self._completes = GroupCommit(self._run_completes, max_inflight=2, split_on=refused)

    def __repr__(self) -> str:
        return f"PostgresStorage(schema={self.schema!r})"

    def batch_stats(self) -> dict[str, tuple[int, int]]:
        """Group commit so far, per operation: (statements, calls they carried)."""
        return {
            op: (gc.batches, gc.calls)
            for op, gc in (("send", self._sends), ("receive", self._receives), ("complete", self._completes))
        }

    async def open(self) -> None:
        # this node's local files (agent VM roots): private like an embedded data directory
        private_dir(self.files_dir.parent)
        private_dir(self.files_dir)
        tighten_tree_top(self.files_dir)
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
            connection_class=_PooledConnection,
        )

    async def close(self) -> None:
        await self._leases.stop_listening()
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    def _p(self) -> asyncpg.Pool:
        if self._pool is None:
            raise Unavailable("storage is closed")
        return self._pool

    @asynccontextmanager
    async def conn(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection (autocommit); a lost database becomes ``Unavailable``."""
        try:
            async with self._p().acquire() as c:
                yield c
        except DOWN as exc:
            raise unavailable(exc) from exc

    @asynccontextmanager
    async def tx(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection in one transaction; a lost database becomes ``Unavailable``."""
        try:
            async with self._p().acquire() as c, c.transaction():
                yield c
        except DOWN as exc:
            raise unavailable(exc) from exc

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
        self._leases.held.pop(actor_id, None)

    def holds(self, actor_id: str) -> bool:
        return actor_id in self._leases.held

    async def claimable(self, now: float, limit: int) -> list[tuple[str, bool]]:
        return await self._leases.claimable(now, limit)

    async def watch(self, actor_id: str, msg_id: int) -> MessageRecord | None:
        async with self.conn() as c:
            row = await c.fetchrow(Q["watch"], actor_id, msg_id)
        return _message(row) if row else None

    def _owner_epoch(self, actor_id: str) -> tuple[str | None, int | None]:
        """(node id, epoch) an owner write is fenced on; (None, None) outside a cluster."""
        node = self._leases.node_id
        if node is None:
            return None, None
        epoch = self._leases.held.get(actor_id)
        if epoch is None:
            raise LeaseLost(f"this node does not own actor {actor_id}", retry_after=0.5)
        return node, epoch

    def _lost(self, actor_id: str, epoch: int | None) -> NoReturn:
        if self._leases.held.get(actor_id) == epoch:
            del self._leases.held[actor_id]
        raise LeaseLost(
            f"actor {actor_id} was taken over (lease epoch {epoch} is stale); write refused", retry_after=0.5
        )

    async def _fence(self, c: asyncpg.Connection, actor_id: str) -> None:
        """Inside a write's transaction: refuse it unless this node holds the lease at its epoch."""
        node = self._leases.node_id
        if node is None:
            return  # not part of a cluster (conformance tests, tools): single-writer semantics
        epoch = self._leases.held.get(actor_id)
        if epoch is None:
            raise LeaseLost(f"this node does not own actor {actor_id}", retry_after=0.5)
        current = await c.fetchval(Q["fence"], actor_id, node)
        if current != epoch:
            self._leases.held.pop(actor_id, None)
            raise LeaseLost(
                f"actor {actor_id} was taken over (lease epoch {epoch} is stale); write refused",
                retry_after=0.5,
            )

    async def _notify_done(self, c: asyncpg.Connection, actor_id: str, msg_id: int) -> None:
        await c.execute(Q["notify"], self._leases.channel, f"d:{actor_id}:{msg_id}")

    async def _notify_new(self, c: asyncpg.Connection, actor_id: str) -> None:
        """Tell the owner about a new message, unless this node is the owner (it pokes itself)."""
        if self._leases.node_id is not None and actor_id not in self._leases.held:
            await c.execute(Q["notify"], self._leases.channel, f"m:{actor_id}")

    # -- actors ------------------------------------------------------------------------------
    async def resolve_actor(
        self, name: str, key: tuple[str, ...], *, create: bool, must_create: bool, new_id: str, now: float
    ) -> tuple[ActorRecord | None, bool]:
        kj = _key_json(key)
        async with self.conn() as c:
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
        async with self.conn() as c:
            row = await c.fetchrow(Q["load_actor"], actor_id)
        return _actor(row) if row else None

    async def list_actors(self, name: str | None, limit: int, after: str | None) -> list[ActorRecord]:
        async with self.conn() as c:
            return [_actor(r) for r in await c.fetch(Q["list_actors"], name, after, limit)]

    async def save_state(self, actor_id: str, state: str) -> None:
        async with self.tx() as c:
            await self._fence(c, actor_id)
            await c.execute(Q["save_state"], actor_id, state)

    # -- messages ----------------------------------------------------------------------------
    def _new_channel(self, actor_id: str) -> str | None:
        """Where a new message is announced: the owner is told, unless it is this node."""
        if self._leases.node_id is None or actor_id in self._leases.held:
            return None
        return self._leases.channel

    # Sends, receives and completions go through group commit (batching.py): whatever arrives while
    # earlier calls are on the wire is one ``send_many`` / ``receive_many`` / ``complete_many``
    # statement, one commit.
    async def send(self, req: SendRequest, now: float) -> SendOutcome:
        out = (await self._sends([(req, now)]))[0]
        if isinstance(out, Exception):
            raise out
        return out

    async def send_many(self, reqs: list[SendRequest], now: float) -> list[SendOutcome | QueueFull]:
        """In order, one commit; each item stored or refused (QueueFull) alone. An actor that does
        not exist raises LookupError (the runtime checks actors first: a broken invariant)."""
        if not reqs:
            return []
        out: list[SendOutcome | QueueFull] = []
        for res in await self._sends([(r, now) for r in reqs]):
            if isinstance(res, LookupError):
                raise res
            out.append(res)
        return out

    async def _run_sends(
        self, calls: list[list[tuple[SendRequest, float]]]
    ) -> list[list[SendOutcome | QueueFull | LookupError] | BaseException]:
        flat = [(ci, pos, req, now) for ci, call in enumerate(calls) for pos, (req, now) in enumerate(call)]
        flat.sort(key=lambda item: item[2].actor_id)  # stable: one actor's items keep their order
        async with self.conn() as c:
            rows = await c.fetch(
                Q["send_many"],
                [f[2].actor_id for f in flat],
                [f[2].queue for f in flat],
                [f[2].body for f in flat],
                [f[3] for f in flat],
                [f[2].available_at for f in flat],
                [f[2].idempotency_key for f in flat],
                [f[2].max_size for f in flat],
                [self._new_channel(f[2].actor_id) for f in flat],
            )
        outcomes = {
            (ci, pos): _send_outcome(req, *row) for (ci, pos, req, _now), row in zip(flat, rows, strict=True)
        }
        return [[outcomes[ci, pos] for pos in range(len(call))] for ci, call in enumerate(calls)]

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
        _node, epoch = self._owner_epoch(actor_id)
        call = _Receive(actor_id, epoch, ack_ids, state, count, queues, now, max_attempts)
        rows = await self._receives(call)
        acked: list[int] = []
        delivered: list[MessageRecord] = []
        dead: list[MessageRecord] = []
        nxt: float | None = None
        for kind, msg_id, queue, body, attempt, created, available, error in rows:
            if kind == 9:
                self._lost(actor_id, epoch)
            elif kind == 0:
                acked.append(msg_id)
            elif kind == 3:
                nxt = available
            else:
                status = MessageStatus.INFLIGHT if kind == 1 else MessageStatus.DEAD
                rec = MessageRecord(
                    actor_id, msg_id, queue, body, status, attempt, created, available, None, None, error
                )
                if kind == 1:
                    delivered.append(rec)
                else:
                    dead.append(_with(rec, completed_at=now))
        return ReceiveOutcome(messages=delivered, dead=dead, acked=acked, next_available_at=nxt)

    async def _run_receives(self, calls: list[_Receive]) -> list[list[tuple[Any, ...]] | BaseException]:
        order = sorted(range(len(calls)), key=lambda i: calls[i].actor_id)  # one lock order
        batch = [calls[i] for i in order]
        node = self._leases.node_id
        async with self.conn() as c:
            rows = await c.fetch(
                Q["receive_many"],
                [r.actor_id for r in batch],
                node,
                [r.epoch for r in batch],
                [a for r in batch for a in r.ack_ids],
                [len(r.ack_ids) for r in batch],
                [r.state for r in batch],
                [r.count for r in batch],
                [json.dumps(r.queues) if r.queues is not None else None for r in batch],
                [r.now for r in batch],
                [r.max_attempts for r in batch],
                self._leases.channel if node is not None else None,
            )
        out: list[list[tuple[Any, ...]]] = [[] for _ in calls]
        for row in rows:
            out[order[row[0] - 1]].append(tuple(row[1:]))
        return list(out)

    async def complete(
        self, actor_id: str, msg_id: int, response: str | None, *, state: str | None, now: float
    ) -> bool:
        _node, epoch = self._owner_epoch(actor_id)
        done = await self._completes(_Complete(actor_id, epoch, msg_id, now, response, state))
        if done == 9:
            self._lost(actor_id, epoch)
        return done == 1

    async def _run_completes(self, calls: list[_Complete]) -> list[int | BaseException]:
        order = sorted(range(len(calls)), key=lambda i: calls[i].actor_id)  # one lock order
        batch = [calls[i] for i in order]
        node = self._leases.node_id
        async with self.conn() as c:
            rows = await c.fetch(
                Q["complete_many"],
                [r.actor_id for r in batch],
                node,
                [r.epoch for r in batch],
                [r.msg_id for r in batch],
                [r.now for r in batch],
                [r.response for r in batch],
                [r.state for r in batch],
                self._leases.channel if node is not None else None,
            )
        out: list[int | BaseException] = [0] * len(calls)
        for ord_, outcome in rows:
            out[order[ord_ - 1]] = int(outcome)
        return out

    async def release(
        self, actor_id: str, ids: tuple[int, ...], *, error: str | None, max_attempts: int, now: float
    ) -> list[MessageRecord]:
        dead: list[MessageRecord] = []
        async with self.tx() as c:
            await self._fence(c, actor_id)
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
        async with self.conn() as c:
            row = await c.fetchrow(Q["get_message"], actor_id, msg_id)
        return _message(row) if row else None

    async def list_messages(
        self, actor_id: str, status: MessageStatus, limit: int, queue: str | None = None
    ) -> list[MessageRecord]:
        async with self.conn() as c:
            rows = await c.fetch(Q["list_messages"], actor_id, int(status), limit, queue)
        return [_message(r) for r in rows]

    async def next_available_at(self, actor_id: str, now: float) -> tuple[bool, float | None]:
        async with self.conn() as c:
            ready = bool(await c.fetchval(Q["has_ready"], actor_id, now))
            nxt = await c.fetchval(Q["next_delayed"], actor_id, now)
        return ready, nxt

    async def queue_stats(self, actor_id: str, now: float) -> list[QueueStats]:
        async with self.conn() as c:
            rows = await c.fetch(Q["queue_stats"], actor_id, now)
        return [QueueStats(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows]

    async def retry_dead(self, actor_id: str, msg_id: int, now: float) -> bool:
        async with self.tx() as c:
            queue = await c.fetchval(Q["retry_dead"], actor_id, msg_id, now)
            if queue is None:
                return False
            await c.execute(Q["add_depth"], actor_id, queue, 1)
            await self._notify_new(c, actor_id)
            return True

    async def delete_dead(self, actor_id: str, msg_id: int) -> bool:
        async with self.conn() as c:
            deleted: bool = await c.execute(Q["delete_dead"], actor_id, msg_id) != "DELETE 0"
        return deleted

    async def recover(self, now: float) -> list[str]:
        """Single-node recovery (every in-flight message is this node's). A runtime that joined
        as a node does not call this: taking a lease over requeues that actor's in-flight messages."""
        async with self.tx() as c:
            await c.execute(Q["recover"])
            await c.execute(Q["clear_depths"])
            await c.execute(Q["recount_depths"])
            return [r[0] for r in await c.fetch(Q["actors_with_work"])]

    async def purge_completed(self, before: float) -> int:
        async with self.conn() as c:
            status = await c.execute(Q["purge_completed"], before)
        return int(status.split()[-1])

    # -- agent VM snapshots (storage/snapshots.py) ----------------------------------------------
    async def save_snapshot(self, actor_id: str, generation: int, chunks: Sequence[bytes]) -> None:
        """Fenced like every owner write: a node that lost the actor cannot overwrite the snapshot."""
        async with self.tx() as c:
            await self._fence(c, actor_id)
            await _snapshots.save(c, actor_id, generation, chunks)

    async def load_snapshot(self, actor_id: str) -> tuple[int, list[bytes]] | None:
        async with self.conn() as c:
            return await _snapshots.load(c, actor_id)

    # -- schedules ---------------------------------------------------------------------------
    async def add_schedule(self, actor_id: str, run_at: float, action: str, args: str) -> int:
        async with self.conn() as c:
            return int(await c.fetchval(Q["add_schedule"], actor_id, run_at, action, args))

    async def due_schedules(self, now: float, limit: int) -> list[ScheduleRecord]:
        async with self.conn() as c:
            rows = await c.fetch(Q["due_schedules"], now, limit)
        return [ScheduleRecord(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows]

    async def next_schedule_at(self) -> float | None:
        async with self.conn() as c:
            value = await c.fetchval(Q["next_schedule_at"])
        return float(value) if value is not None else None

    async def finish_schedule(self, schedule_id: int, *, retry_at: float | None) -> None:
        async with self.conn() as c:
            if retry_at is None:
                await c.execute(Q["delete_schedule"], schedule_id)
            else:
                await c.execute(Q["retry_schedule"], schedule_id, retry_at)


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
