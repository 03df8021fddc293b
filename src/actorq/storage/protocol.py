"""The storage protocol every driver implements, and the plain records it returns.

Bodies, responses and state cross this seam as JSON text: a driver stores and returns them
verbatim and never interprets them. Times are UNIX seconds (float). Every method that changes
more than one row does so in one transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Protocol, runtime_checkable

from actorq.errors import QueueFull


class MessageStatus(IntEnum):
    PENDING = 0  # not yet received (maybe delayed: available_at in the future)
    INFLIGHT = 1  # handed to the receiver, not yet acknowledged or completed
    COMPLETED = 2  # acknowledged (plain) or completed with a response
    DEAD = 3  # failed max_attempts times; in the dead letters


@dataclass(frozen=True, slots=True)
class ActorRecord:
    actor_id: str
    name: str
    key: tuple[str, ...]
    state: str | None
    created_at: float
    state_version: int = 1  # the ``state_version`` ``state`` was last saved at (see save_state)


@dataclass(frozen=True, slots=True)
class MessageRecord:
    actor_id: str
    id: int
    queue: str
    body: str
    status: MessageStatus
    attempt: int
    created_at: float
    available_at: float
    completed_at: float | None
    response: str | None
    error: str | None
    traceparent: str | None = None  # W3C trace context of the send (its producer span), if traced


@dataclass(frozen=True, slots=True)
class SendRequest:
    actor_id: str
    queue: str
    body: str
    max_size: int
    available_at: float
    idempotency_key: str | None = None
    traceparent: str | None = None  # stored with the message, handed back on receive


@dataclass(frozen=True, slots=True)
class SendOutcome:
    id: int
    created_at: float
    duplicate: bool = False


@dataclass(frozen=True, slots=True)
class ReceiveOutcome:
    messages: list[MessageRecord]
    dead: list[MessageRecord]  # messages moved to the dead letters instead of being delivered
    acked: list[int]  # the ack_ids that were acknowledged by this call
    next_available_at: float | None  # earliest delayed message of the asked queues, if any


@dataclass(frozen=True, slots=True)
class QueueStats:
    queue: str
    pending: int
    delayed: int
    inflight: int
    completed: int
    dead: int


@dataclass(frozen=True, slots=True)
class QueueDepth:
    """Messages not yet done in one queue, summed over every actor of one type (for metrics)."""

    name: str  # the actor type
    queue: str
    pending: int  # ready to be received now
    delayed: int  # pending, but not due yet
    inflight: int
    dead: int


@dataclass(frozen=True, slots=True)
class ScheduleRecord:
    id: int
    actor_id: str
    run_at: float
    action: str
    args: str
    attempt: int


@dataclass(frozen=True, slots=True)
class Lease:
    """The outcome of trying to own an actor (see :class:`LeasedStorage`)."""

    acquired: bool  # this node owns the actor now, at ``epoch``
    epoch: int
    owner: str | None  # the owning node's id (None: free, or being claimed right now)
    address: str | None  # the owning node's advertised host:port
    ttl_left: float  # seconds until the owner's lease expires


@dataclass(frozen=True, slots=True)
class NodeRecord:
    """A registered node and the actors it holds a live lease on (some of them, by id)."""

    node_id: str
    address: str | None
    started_at: float
    heartbeat_at: float
    actor_count: int  # live leases it holds
    actors: list[str]  # the first of them by actor id


@runtime_checkable
class LeasedStorage(Protocol):
    """What a storage shared by several server nodes adds (PostgreSQL): node registration,
    per-actor leases with fencing epochs, claims, and wake-ups across nodes.

    After :meth:`join`, every owner write for an actor (receive, complete, release, save_state)
    is conditional on this node holding the actor's lease at the epoch it acquired; otherwise it
    raises :class:`~actorq.errors.LeaseLost` and changes nothing. Sends stay open to any node.
    """

    node_id: str | None

    async def join(
        self,
        address: str | None,
        on_message: Callable[[str], None],
        on_done: Callable[[str, int], None],
        on_reconnect: Callable[[], None],
        on_released: Callable[[str | None, str | None], None] | None = None,
    ) -> str:
        """Register this process as a node (fresh id) and listen for other nodes' wake-ups:
        ``on_message(actor_id)`` for a new message, ``on_done(actor_id, msg_id)`` for a watched one,
        ``on_released(actor_id, None)`` when another node released an actor's lease and
        ``on_released(None, node_id)`` when a node left, releasing all of its leases."""
        ...

    async def leave(self) -> None:
        """Release every lease of this node and deregister it (graceful shutdown)."""
        ...

    async def acquire(self, actor_id: str, ttl: float) -> Lease:
        """Own the actor if its lease is free, expired or ours: bump the epoch, and put the
        previous owner's in-flight messages back to pending (they keep their ids and attempts)."""
        ...

    async def renew(self, ttl: float) -> set[str]:
        """Extend every lease this node holds; return the actors whose lease it lost."""
        ...

    async def release_lease(self, actor_id: str, epoch: int) -> None: ...

    async def owner(self, actor_id: str) -> Lease:
        """Who owns the actor now (a plain read: ``owner`` is None unless the lease is live)."""
        ...

    def forget(self, actor_id: str) -> None:
        """Stop writing for ``actor_id`` at once (its lease is lost or about to expire)."""
        ...

    def holds(self, actor_id: str) -> bool: ...

    async def claimable(self, now: float, limit: int) -> list[tuple[str, bool]]:
        """Actors with ready or in-flight messages whose lease is free, expired or this node's:
        ``(actor_id, mine)``."""
        ...

    async def watch(self, actor_id: str, msg_id: int) -> MessageRecord | None:
        """Ask to be told (``on_done``) when the message finishes; returns it as it is now."""
        ...

    async def nodes(self, actors_per_node: int) -> list[NodeRecord]:
        """The registered nodes, oldest first, each with up to ``actors_per_node`` of the actors
        it holds a live lease on (a plain read, for operators)."""
        ...


@runtime_checkable
class Storage(Protocol):
    """What the core needs from durable storage. The conformance suite in ``tests/storage/``
    (``test_conformance.py`` and the property tests) is the contract, run against every driver."""

    # a local directory for files that live beside the database on this node (agent VM roots)
    files_dir: Path

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    # actors
    async def resolve_actor(
        self, name: str, key: tuple[str, ...], *, create: bool, must_create: bool, new_id: str, now: float
    ) -> tuple[ActorRecord | None, bool]:
        """Find (name, key); create it when ``create``. ``must_create`` fails (None, False) if it exists."""
        ...

    async def load_actor(self, actor_id: str) -> ActorRecord | None: ...

    async def list_actors(self, name: str | None, limit: int, after: str | None) -> list[ActorRecord]: ...

    async def save_state(self, actor_id: str, state: str, *, version: int | None = None) -> None:
        """Save the state; with ``version``, record that version with it in the same write (it
        stays as it was otherwise, and when state is saved by receive or complete)."""
        ...

    # messages
    async def send(self, req: SendRequest, now: float) -> SendOutcome:
        """Append a message with the next per-actor id; raise QueueFull past ``max_size`` pending."""
        ...

    async def send_many(self, reqs: list[SendRequest], now: float) -> list[SendOutcome | QueueFull]:
        """Several sends in one transaction, in order; a full queue fails only its own item."""
        ...

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
        """Acknowledge ``ack_ids`` and save ``state``, then hand out up to ``count`` ready messages
        (lowest ids first, attempt + 1), dead-lettering any that already used ``max_attempts``."""
        ...

    async def complete(
        self, actor_id: str, msg_id: int, response: str | None, *, state: str | None, now: float
    ) -> bool:
        """Complete an in-flight message with its response; False if it was not in flight."""
        ...

    async def release(
        self, actor_id: str, ids: tuple[int, ...], *, error: str | None, max_attempts: int, now: float
    ) -> list[MessageRecord]:
        """Put in-flight messages back at their place (pending); return those dead-lettered instead
        (their ``attempt`` already reached ``max_attempts``; ``0`` dead-letters all of them), with
        ``error`` as their reason."""
        ...

    async def get_message(self, actor_id: str, msg_id: int) -> MessageRecord | None: ...

    async def list_messages(
        self, actor_id: str, status: MessageStatus, limit: int, queue: str | None = None
    ) -> list[MessageRecord]: ...

    async def next_available_at(self, actor_id: str, now: float) -> tuple[bool, float | None]:
        """(whether a message is ready now, earliest future ``available_at``) over all queues."""
        ...

    async def queue_stats(self, actor_id: str, now: float) -> list[QueueStats]: ...

    async def queue_depths(self, now: float) -> list[QueueDepth]:
        """Pending, delayed, in-flight and dead messages per (actor type, queue) over the whole
        storage, in one aggregate query (ordered by type, then queue; empty queues are left out)."""
        ...

    async def retry_dead(self, actor_id: str, msg_id: int, now: float) -> bool: ...

    async def delete_dead(self, actor_id: str, msg_id: int) -> bool: ...

    async def recover(self, now: float) -> list[str]:
        """After a restart: in-flight messages become pending again (keeping ids and attempts).
        Returns every actor id that has pending messages."""
        ...

    async def purge_completed(self, before: float) -> int: ...

    # schedules
    async def add_schedule(self, actor_id: str, run_at: float, action: str, args: str) -> int: ...

    async def due_schedules(self, now: float, limit: int) -> list[ScheduleRecord]: ...

    async def next_schedule_at(self) -> float | None: ...

    async def finish_schedule(self, schedule_id: int, *, retry_at: float | None) -> None:
        """Delete a fired schedule, or move it to ``retry_at`` with attempt + 1."""
        ...
