"""Nodes, actor leases and cross-node wake-ups for the PostgreSQL driver.

A node is one server process (a fresh id per process). A lease row says which node owns an
actor, until when (database clock, so nodes' clocks need not agree) and at which fencing epoch.
Taking a lease over (free, expired, or a previous life of this node) bumps the epoch and puts
the previous owner's in-flight messages back to pending under the same row lock, so the old
owner's late writes, fenced on the old epoch, are refused. ``LISTEN``/``NOTIFY`` on one channel
per schema carries ``m:<actor>`` (new message for a non-local owner), ``d:<actor>:<id>`` (a
watched message finished), ``r:<actor>`` (a lease was released) and ``n:<node>`` (a node left,
releasing all its leases); a dropped listener reconnects by itself.

:class:`Leases` alone holds this node's id and the epochs it owns actors at; the driver asks it
(``write_epoch``, ``fence``, ``new_message_channel``) and tells it what happened (``forget``,
``lost``), and never changes its fields.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any, NoReturn

import asyncpg

from actorq.errors import LeaseLost
from actorq.storage._sql import load_queries
from actorq.storage.postgres.database import Database
from actorq.storage.protocol import Lease

Q = load_queries("actorq.storage.postgres")
log = logging.getLogger("actorq.storage.postgres")

_FORGET_NODES_AFTER = 3600.0  # node rows whose heartbeat is older than this are deleted


class Leases:
    """This node's identity and the leases it holds; every lease row it reads or writes."""

    def __init__(self, db: Database, channel: str) -> None:
        self._db = db
        self._channel = channel
        self._node_id: str | None = None
        self._address: str | None = None
        self._held: dict[str, int] = {}  # actor id -> epoch this node owns it at
        self._on_message: Callable[[str], None] = lambda actor_id: None
        self._on_done: Callable[[str, int], None] = lambda actor_id, msg_id: None
        self._on_reconnect: Callable[[], None] = lambda: None
        self._on_released: Callable[[str | None, str | None], None] = lambda actor_id, node: None
        self._listener: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()

    @property
    def node_id(self) -> str | None:
        """This node's id since :meth:`join` (None: not part of a cluster)."""
        return self._node_id

    @property
    def channel(self) -> str:
        """The schema's LISTEN/NOTIFY channel."""
        return self._channel

    # -- what the driver asks before and after an owner write ---------------------------------
    def holds(self, actor_id: str) -> bool:
        return actor_id in self._held

    def forget(self, actor_id: str) -> None:
        """Stop writing for ``actor_id`` at once (its lease is lost or about to expire)."""
        self._held.pop(actor_id, None)

    def write_epoch(self, actor_id: str) -> int | None:
        """The epoch an owner write for ``actor_id`` is fenced on; None outside a cluster.
        Raises LeaseLost if this node does not hold the actor."""
        if self._node_id is None:
            return None
        epoch = self._held.get(actor_id)
        if epoch is None:
            raise LeaseLost(f"this node does not own actor {actor_id}", retry_after=0.5)
        return epoch

    def lost(self, actor_id: str, epoch: int | None) -> NoReturn:
        """The database refused a write fenced on ``epoch``: that lease is gone (unless it was
        taken again meanwhile); raise LeaseLost."""
        if self._held.get(actor_id) == epoch:
            del self._held[actor_id]
        raise LeaseLost(
            f"actor {actor_id} was taken over (lease epoch {epoch} is stale); write refused", retry_after=0.5
        )

    async def fence(self, c: asyncpg.Connection, actor_id: str) -> None:
        """Inside a write's transaction: refuse it unless this node holds the lease at its epoch."""
        node = self._node_id
        if node is None:
            return  # not part of a cluster (conformance tests, tools): single-writer semantics
        epoch = self.write_epoch(actor_id)
        current = await c.fetchval(Q["fence"], actor_id, node)
        if current != epoch:
            self.forget(actor_id)
            raise LeaseLost(
                f"actor {actor_id} was taken over (lease epoch {epoch} is stale); write refused",
                retry_after=0.5,
            )

    def new_message_channel(self, actor_id: str) -> str | None:
        """Where a new message for ``actor_id`` is announced: the owner is told, unless it is
        this node (it pokes itself) or there is no cluster."""
        if self._node_id is None or actor_id in self._held:
            return None
        return self._channel

    def owner_channel(self) -> str | None:
        """Where an owner's writes announce finished watched messages (None: no cluster)."""
        return self._channel if self._node_id is not None else None

    async def join(
        self,
        address: str | None,
        on_message: Callable[[str], None],
        on_done: Callable[[str, int], None],
        on_reconnect: Callable[[], None],
        on_released: Callable[[str | None, str | None], None] | None = None,
    ) -> str:
        self._node_id = node_id = uuid.uuid4().hex[:16]
        self._address = address
        self._held.clear()  # epochs belong to a node id: a new id holds nothing yet
        self._on_message, self._on_done, self._on_reconnect = on_message, on_done, on_reconnect
        if on_released is not None:
            self._on_released = on_released
        async with self._db.tx() as c:
            await c.execute(Q["forget_old_nodes"], _FORGET_NODES_AFTER)
            await c.execute(Q["register_node"], node_id, address)
        self._listener = asyncio.create_task(self._listen(), name=f"actorq-listen:{node_id}")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.listening.wait(), 5.0)
        return node_id

    async def leave(self) -> None:
        node = self._node_id
        if node is None:
            return
        await self.stop_listening()
        self._held.clear()
        try:
            async with self._db.tx() as c:
                await c.execute(Q["release_node_leases"], node)
                await c.execute(Q["deregister_node"], node)
                await c.execute(Q["notify"], self._channel, f"n:{node}")
        finally:
            self._node_id = None

    async def acquire(self, actor_id: str, ttl: float) -> Lease:
        me = self._node_id
        assert me is not None, "join() first"
        # most attempts find another live owner (a send reaching a node that does not run the
        # actor): answer those with one plain read instead of a locking transaction
        async with self._db.conn() as c:
            row = await c.fetchrow(Q["peek_lease"], actor_id)
        if row is not None and row[0] is not None and row[0] != me and row[2] > 0:
            return Lease(False, row[1], row[0], row[3], row[2])
        async with self._db.tx() as c:
            await c.execute(Q["ensure_lease"], actor_id)
            row = await c.fetchrow(Q["lock_lease"], actor_id)
            if row is None:  # locked: being claimed, or the owner is writing under it right now
                row = await c.fetchrow(Q["peek_lease"], actor_id)
                if row is None:
                    return Lease(False, 0, None, None, 0.0)
                live = row[2] > 0
                return Lease(False, row[1], row[0] if live else None, row[3] if live else None, row[2])
            owner, epoch, left, address = row
            if owner is not None and owner != me and left > 0:
                return Lease(False, epoch, owner, address, left)
            epoch = await c.fetchval(Q["take_lease"], actor_id, me, ttl)
            requeued = Counter(r[0] for r in await c.fetch(Q["requeue_inflight"], actor_id))
            for queue, n in requeued.items():
                await c.execute(Q["add_depth"], actor_id, queue, n)
        self._held[actor_id] = epoch
        if requeued:
            log.info(
                "node %s took actor %s over (epoch %d): %d in-flight message(s) redelivered",
                me,
                actor_id,
                epoch,
                sum(requeued.values()),
            )
        return Lease(True, epoch, me, self._address, ttl)

    async def owner(self, actor_id: str) -> Lease:
        async with self._db.conn() as c:
            row = await c.fetchrow(Q["peek_lease"], actor_id)
        if row is None:
            return Lease(False, 0, None, None, 0.0)
        live = row[2] > 0
        return Lease(row[0] == self._node_id and live, row[1], row[0] if live else None, row[3], row[2])

    async def renew(self, ttl: float) -> set[str]:
        me = self._node_id
        assert me is not None, "join() first"
        snapshot = dict(self._held)
        async with self._db.tx() as c:
            await c.execute(Q["heartbeat"], me)
            rows = await c.fetch(Q["renew_leases"], me, ttl) if snapshot else []
        live = {r[0]: r[1] for r in rows}
        lost = {a for a, e in snapshot.items() if live.get(a) != e and self._held.get(a) == e}
        for a in lost:
            self._held.pop(a, None)
        return lost

    async def release(self, actor_id: str, epoch: int) -> None:
        if self._held.get(actor_id) == epoch:
            del self._held[actor_id]
        if self._node_id is None:
            return
        async with self._db.tx() as c:
            if await c.execute(Q["release_lease"], actor_id, self._node_id, epoch) != "UPDATE 0":
                # other nodes cached "owned by this node": tell them it is free now
                await c.execute(Q["notify"], self._channel, f"r:{actor_id}")

    async def claimable(self, now: float, limit: int) -> list[tuple[str, bool]]:
        async with self._db.conn() as c:
            rows = await c.fetch(Q["claimable"], self._node_id, now, limit)
        return [(r[0], bool(r[1])) for r in rows]

    # -- LISTEN / NOTIFY -----------------------------------------------------------------------
    async def stop_listening(self) -> None:
        task, self._listener = self._listener, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def _notified(self, conn: Any, pid: int, channel: str, payload: str) -> None:
        kind, _, rest = payload.partition(":")
        try:
            if kind == "m":
                self._on_message(rest)
            elif kind == "d":
                actor_id, _, msg_id = rest.rpartition(":")
                self._on_done(actor_id, int(msg_id))
            elif kind == "r":
                self._on_released(rest, None)
            elif kind == "n":
                self._on_released(None, rest)
        except Exception:  # a callback bug must not kill the listener
            log.exception("handling notification %r failed", payload)

    async def _listen(self) -> None:
        delay = 0.1
        first = True
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(self._db.dsn, timeout=5.0)
                lost = asyncio.Event()
                conn.add_termination_listener(_setter(lost))
                await conn.add_listener(self._channel, self._notified)
                self.listening.set()
                delay = 0.1
                if not first:  # notifications may have been lost while disconnected
                    log.warning("LISTEN connection re-established")
                    self._on_reconnect()
                first = False
                while not lost.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(lost.wait(), 5.0)
                    if not lost.is_set():
                        await conn.fetchval("SELECT 1", timeout=5.0)  # notice a half-open socket
            except asyncio.CancelledError:
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(conn.close(), 2.0)
                raise
            except Exception as exc:
                log.warning("LISTEN connection lost (%s); reconnecting", exc)
            self.listening.clear()
            if conn is not None:
                conn.terminate()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)


def _setter(event: asyncio.Event) -> Callable[[Any], None]:
    return lambda _conn: event.set()
