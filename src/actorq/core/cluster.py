"""This runtime as one node of several sharing a database (a :class:`LeasedStorage`).

Owns the node's side of leases: acquiring one before an actor wakes here, renewing them every
``ttl / 3``, stopping an actor's run loop once its lease is lost or cannot be renewed for
``0.75 * ttl`` (before it can expire), releasing them on sleep and shutdown, and the claim scan
that, about once a second, wakes actors with work whose lease is free or expired (a dead node's
actors resume within ``ttl`` + ~1 s) and pokes this node's own actors in case a NOTIFY was lost.
Knows nothing about HTTP (requests for actors owned elsewhere are routed by
``core/placement.py``), and of the rest of the runtime only :class:`NodeActors`: the actors
awake on this node.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from actorq.errors import Unavailable
from actorq.storage.protocol import LeasedStorage

log = logging.getLogger("actorq.cluster")

_CLAIM_BATCH = 200
_EXPIRY_MARGIN = 0.25  # an "owned by node X" answer is trusted until this long before that lease could expire


class NotOwner(Unavailable):
    """Another live node owns the actor (``address`` may be None: unknown, or being claimed)."""

    def __init__(self, actor_id: str, owner: str | None, address: str | None, ttl_left: float) -> None:
        where = f"node {owner} at {address}" if owner else "another node (being claimed)"
        super().__init__(f"actor {actor_id} is owned by {where}", retry_after=0.5)
        self.owner = owner
        self.address = address
        self.ttl_left = ttl_left


class NodeActors(Protocol):
    """What lease keeping needs from the actors of this node (the actor directory)."""

    @property
    def accepting(self) -> bool: ...

    def is_awake(self, actor_id: str) -> bool: ...

    def awake_ids(self) -> list[str]: ...

    def poke(self, actor_id: str, available_at: float = 0.0) -> None: ...

    def lease_lost(self, actor_id: str) -> None: ...


class ClusterMember:
    """``actors``: this node's actors; ``on_done``: another node finished a message (waiters here
    may want it); ``spawn``: runs the membership's loops until the runtime stops."""

    def __init__(
        self,
        storage: LeasedStorage,
        *,
        actors: NodeActors,
        on_done: Callable[[str, int], None],
        spawn: Callable[[Coroutine[Any, Any, Any]], asyncio.Task[Any]],
        ttl: float,
        claim_interval: float,
        address: str | None,
    ) -> None:
        self.actors = actors
        self._on_done_cb = on_done
        self._spawn = spawn
        self.storage = storage
        self.ttl = ttl
        self.claim_interval = claim_interval
        self.address = address
        self.node_id: str | None = None
        self._acquired_at: dict[str, float] = {}  # actor id -> monotonic time its lease was taken
        self._remote: dict[str, tuple[float, NotOwner]] = {}  # actor id -> (trusted until, answer)
        self._last_renewed = time.monotonic()
        # counted for /metrics
        self.leases_acquired = 0  # leases this node took (waking an actor here, or taking it over)
        self.leases_lost = 0  # leases this node lost, or stopped using before they could expire

    @property
    def leases_held(self) -> int:
        return len(self._acquired_at)

    async def start(self) -> None:
        self.node_id = await self.storage.join(
            self.address, self._on_message, self._on_done, self._on_reconnect, self._on_released
        )
        self._last_renewed = time.monotonic()
        self._spawn(self._keep_leases())
        self._spawn(self._claim_loop())
        log.info("node %s joined (address %s, lease ttl %.1fs)", self.node_id, self.address, self.ttl)

    async def stop(self) -> None:
        """Graceful shutdown: release every lease at once so other nodes take over without waiting."""
        try:
            await self.storage.leave()
        except Exception as exc:
            log.warning("could not release this node's leases (they expire in %.0fs): %s", self.ttl, exc)
        self._acquired_at.clear()

    # -- leases --------------------------------------------------------------------------------
    def owner_elsewhere(self, actor_id: str) -> NotOwner | None:
        """The cached answer that another node owns ``actor_id``, while it is trusted."""
        hit = self._remote.get(actor_id)
        if hit is None:
            return None
        if hit[0] < time.monotonic():
            del self._remote[actor_id]
            return None
        return hit[1]

    def forget_owner(self, actor_id: str) -> None:
        self._remote.pop(actor_id, None)

    async def acquire(self, actor_id: str) -> int:
        """Own ``actor_id`` (epoch) or raise :class:`NotOwner`."""
        lease = await self.storage.acquire(actor_id, self.ttl)
        if not lease.acquired:
            err = NotOwner(actor_id, lease.owner, lease.address, lease.ttl_left)
            if lease.owner is not None:
                # trusted until the lease could expire; a release elsewhere (sleep, shutdown)
                # is announced (``_on_released``) and drops the answer sooner
                trust = min(self.ttl, max(0.0, lease.ttl_left - _EXPIRY_MARGIN))
                if len(self._remote) >= 50_000:  # bounded: a cache, not a directory
                    self._remote.clear()
                self._remote[actor_id] = (time.monotonic() + trust, err)
            raise err
        self._remote.pop(actor_id, None)
        self._acquired_at[actor_id] = time.monotonic()
        self.leases_acquired += 1
        return lease.epoch

    async def release(self, actor_id: str, epoch: int) -> None:
        self._acquired_at.pop(actor_id, None)
        try:
            await self.storage.release_lease(actor_id, epoch)
        except Exception as exc:
            log.warning("could not release the lease of %s (it expires by itself): %s", actor_id, exc)

    def lost(self, actor_id: str) -> None:
        if self._acquired_at.pop(actor_id, None) is not None:
            self.leases_lost += 1
        self.storage.forget(actor_id)

    async def _keep_leases(self) -> None:
        tick = max(0.02, self.ttl / 12)
        while True:
            await asyncio.sleep(tick)
            started = time.monotonic()
            if started - self._last_renewed >= self.ttl / 3:
                try:
                    lost = await asyncio.wait_for(self.storage.renew(self.ttl), self.ttl / 4)
                except Exception as exc:
                    log.warning("could not renew leases: %r", exc)
                else:
                    self._last_renewed = started
                    for actor_id in lost:
                        log.warning("lease of actor %s was taken over; stopping it here", actor_id)
                        self.actors.lease_lost(actor_id)
            # Cannot renew: stop each actor's run loop well before its lease can expire.
            now = time.monotonic()
            limit = self.ttl * 0.75
            for actor_id, at in list(self._acquired_at.items()):
                if now - max(at, self._last_renewed) > limit:
                    log.warning("could not renew the lease of %s in time; stopping it here", actor_id)
                    self.actors.lease_lost(actor_id)

    async def _claim_loop(self) -> None:
        while True:
            await asyncio.sleep(self.claim_interval * random.uniform(0.75, 1.0))
            if not self.actors.accepting:
                continue
            try:
                rows = await self.storage.claimable(time.time(), _CLAIM_BATCH)
            except Exception as exc:
                log.warning("claim scan failed: %r", exc)
                continue
            for actor_id, _mine in rows:
                self._remote.pop(actor_id, None)
                self.actors.poke(actor_id)

    # -- notifications (called from the LISTEN connection) ---------------------------------------
    def _on_message(self, actor_id: str) -> None:
        if self.actors.is_awake(actor_id):
            self.actors.poke(actor_id)

    def _on_done(self, actor_id: str, msg_id: int) -> None:
        self._on_done_cb(actor_id, msg_id)

    def _on_released(self, actor_id: str | None, node: str | None) -> None:
        if actor_id is not None:
            self._remote.pop(actor_id, None)
        if node is not None:
            for key, (_, answer) in list(self._remote.items()):
                if answer.owner == node:
                    del self._remote[key]

    def _on_reconnect(self) -> None:
        self._remote.clear()  # release notices may have been missed while disconnected
        for actor_id in list(self.actors.awake_ids()):
            self.actors.poke(actor_id)


async def release_quietly(member: ClusterMember | None, actor_id: str, epoch: int | None) -> None:
    if member is not None and epoch is not None:
        with contextlib.suppress(Exception):
            await member.release(actor_id, epoch)
