"""Routing a request to where its actor runs: its instance here, or the node that owns it.

The answer comes from the directory (:meth:`ActorDirectory.where`, then waking the actor here,
which takes its lease or learns who holds it); :meth:`Placement.run` acts on it the same way for
every kind of request that can be forwarded (actions, WebSocket connections): run it here, or
hand it to the :class:`Forwarder` the server plugs in; if the owner cannot be reached and has
let the actor go meanwhile, take the actor here instead (once).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from actorq.core.cluster import NotOwner
from actorq.core.directory import ActorDirectory
from actorq.core.events import Events, Subscriber
from actorq.core.instance import ActorInstance
from actorq.errors import ActorqError, Unavailable
from actorq.storage.protocol import LeasedStorage, Storage

T = TypeVar("T")

_LOCATE_FOR = 1.5  # seconds a connection waits for an actor that is being claimed right now


class Forwarder(Protocol):
    """Carries a request for an actor to the node that owns it (plugged in by the server): one
    method per kind of request that can reach a node that does not own the actor."""

    async def call_action(
        self, address: str, actor_id: str, name: str, args: list[Any], kwargs: dict[str, Any] | None
    ) -> Any: ...

    async def connect(
        self, address: str, actor_id: str, client: Any, *, heartbeat: float, open_timeout: float
    ) -> None:
        """Relay ``client`` (the server's own connection object, passed through untouched) to
        the owner's connection route until either side ends. :class:`Unavailable`, raised before
        the client is accepted: the owner cannot be reached. ``heartbeat``: seconds between pings
        (an owner that stops answering them is taken for gone)."""
        ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Owner:
    """The node that holds an actor's lease now."""

    node: str
    address: str | None


def _nothing() -> None:
    pass


class Placement:
    def __init__(self, directory: ActorDirectory, events: Events, storage: Storage, lease_ttl: float) -> None:
        self.directory = directory
        self.events = events
        self.storage = storage
        self.lease_ttl = lease_ttl
        self.forwarder: Forwarder | None = None
        self.actions_forwarded = 0  # counted for /metrics

    @property
    def clustered(self) -> bool:
        return self.directory.cluster is not None

    async def run(
        self,
        actor_id: str,
        here: Callable[[ActorInstance], Awaitable[T]],
        there: Callable[[str, str | None], Awaitable[T]] | None,
        *,
        claim_wait: float = 0.0,
        before: Callable[[], None] = _nothing,
        undo: Callable[[], None] = _nothing,
    ) -> T:
        """``here(instance)`` on this node, or ``there(address, owner)`` when another live node
        owns the actor (``there=None``: a request forwarded once already, never again: refuse
        with :class:`Unavailable`). An owner being claimed right now (no address yet) is waited
        for up to ``claim_wait`` seconds. ``before`` runs before each try to find the actor here,
        ``undo`` when that try ends elsewhere or fails."""
        deadline = time.monotonic() + claim_wait
        retried = False
        while True:
            before()
            try:
                inst = await self.directory.locate(actor_id)
            except NotOwner as exc:
                undo()
                if there is None or self.forwarder is None:
                    raise Unavailable(str(exc), retry_after=exc.retry_after) from None
                if exc.address is None:  # being claimed right now (or an owner without an address)
                    if time.monotonic() < deadline:
                        await asyncio.sleep(0.1)
                        continue
                    raise Unavailable(str(exc), retry_after=exc.retry_after) from None
                try:
                    return await there(exc.address, exc.owner)
                except Unavailable:
                    self.directory.forget_owner(actor_id)  # ask the database again next time
                    if not retried and await self.owner_changed(actor_id, exc.owner):
                        retried = True  # it let the actor go meanwhile (shut down): take it here
                        continue
                    raise
            except BaseException:
                undo()
                raise
            return await here(inst)

    # -- the requests that can be forwarded ----------------------------------------------------
    async def call_action(
        self, actor_id: str, name: str, args: list[Any], kwargs: dict[str, Any] | None, *, forward: bool
    ) -> Any:
        async def here(inst: ActorInstance) -> Any:
            return await inst.call_action(name, args, kwargs)

        async def there(address: str, owner: str | None) -> Any:
            return await self._forward_action(owner, address, actor_id, name, args, kwargs)

        return await self.run(actor_id, here, there if forward else None)

    async def _forward_action(
        self,
        owner: str | None,
        address: str,
        actor_id: str,
        name: str,
        args: list[Any],
        kwargs: dict[str, Any] | None,
    ) -> Any:
        """Forward to the owner; give up (503, the client retries) if the owner stops answering and
        loses its lease meanwhile (paused, partitioned): another node may then take the actor."""
        assert self.forwarder is not None and isinstance(self.storage, LeasedStorage)
        self.actions_forwarded += 1
        task = asyncio.ensure_future(self.forwarder.call_action(address, actor_id, name, args, kwargs))
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=max(0.2, self.lease_ttl / 2))
                if done:
                    return task.result()
                lease = await self.storage.owner(actor_id)
                if lease.owner != owner:
                    raise Unavailable(
                        f"the node owning actor {actor_id} ({address}) did not answer and lost its lease",
                        retry_after=0.5,
                    )
        finally:
            if not task.done():
                task.cancel()

    async def connect(self, actor_id: str, client: Any, *, forward: bool) -> Subscriber | None:
        """A client connects to the actor's events: its buffer, attached, when the actor is served
        here (one node: without waking it; several: claimed here, as an action would), or ``None``
        once the connection was relayed to the owner and is over."""
        sub = self.events.subscriber(actor_id)
        if not self.clustered:
            sub.attach()
            return sub

        async def here(inst: ActorInstance) -> Subscriber | None:
            sub.actor_gone = inst.closed
            return sub

        async def there(address: str, owner: str | None) -> Subscriber | None:
            assert self.forwarder is not None
            ttl = self.lease_ttl
            try:
                await self.forwarder.connect(
                    address,
                    actor_id,
                    client,
                    heartbeat=min(15.0, max(0.5, ttl / 4)),
                    open_timeout=max(2.0, ttl / 2),
                )
            finally:
                self.directory.forget_owner(actor_id)  # a dropped owner: look it up afresh on reconnect
            return None

        # attached before waking: an actor with a listener does not go to sleep
        return await self.run(
            actor_id,
            here,
            there if forward else None,
            claim_wait=_LOCATE_FOR,
            before=sub.attach,
            undo=sub.detach,
        )

    # -- owners --------------------------------------------------------------------------------
    async def owner_changed(self, actor_id: str, owner: str | None) -> bool:
        """Whether ``actor_id``'s lease is no longer held by node ``owner`` (False if unsure)."""
        if not isinstance(self.storage, LeasedStorage):
            return False
        try:
            return (await self.storage.owner(actor_id)).owner != owner
        except ActorqError:
            return False

    async def owner(self, actor_id: str) -> Owner | None:
        """The node running the actor now (``None``: asleep and unowned, or a single node)."""
        if not self.clustered or not isinstance(self.storage, LeasedStorage):
            return None
        lease = await self.storage.owner(actor_id)
        return Owner(lease.owner, lease.address) if lease.owner else None
