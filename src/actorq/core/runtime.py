"""The runtime: the core's facade, composed of parts that each do one job.

* :class:`~actorq.core.directory.ActorDirectory`: which actors exist and which are awake here
  (lookup, LRU, wake, sleep, delayed-message timers), and where an actor runs;
* :class:`~actorq.core.placement.Placement`: runs a request where its actor runs (here, or
  forwarded to the owning node through the server's :class:`~actorq.core.placement.Forwarder`);
* :class:`~actorq.core.sending.Sender`: validates and stores sends, pokes their actors;
* :class:`~actorq.core.waiters.Waiters`: senders waiting for an outcome or for room in a queue;
* :class:`~actorq.core.events.Events`: what actors broadcast to connected clients;
* :class:`~actorq.core.scheduler.Scheduler` and :func:`~actorq.core.janitor.purge_loop`;
* :class:`~actorq.core.cluster.ClusterMember` when several nodes share the storage.

:class:`Runtime` wires them together, starts and stops them, and is what the server and an
actor's ``c`` call. It talks to storage through the protocol only and knows nothing about HTTP.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from opentelemetry.trace import SpanKind

from actorq.core import http, metrics, tracing
from actorq.core.cluster import ClusterMember
from actorq.core.directory import ActorDirectory
from actorq.core.events import Events, Subscriber
from actorq.core.janitor import purge_loop
from actorq.core.lifecycle import Lifecycle
from actorq.core.placement import Forwarder, Owner, Placement
from actorq.core.scheduler import Scheduler
from actorq.core.sending import Outgoing, Sender
from actorq.core.waiters import Waiters, result_of
from actorq.errors import ActorqError, NotFound, Unavailable
from actorq.results import ActorInfo, DeadLetter, QueueInfo, SendReceipt, SendResult
from actorq.storage.protocol import (
    LeasedStorage,
    MessageRecord,
    MessageStatus,
    NodeRecord,
    QueueDepth,
    Storage,
)

if TYPE_CHECKING:
    from actorq.core.registry import Registry

log = logging.getLogger("actorq.runtime")


def _lease_ttl() -> float:
    return float(os.environ.get("ACTORQ_LEASE_TTL") or 10.0)


@dataclass(frozen=True)
class RuntimeConfig:
    max_wait: float = 900.0  # longest a wait=True / block=True send may wait (timeout=None)
    result_ttl: float = 86_400.0  # completed messages (and their responses) are kept this long
    grace: float = 10.0  # graceful shutdown: how long the current handler may take
    sweep_interval: float = 0.5  # how often idle actors are checked for sleep
    event_buffer: int = 1000  # events buffered per connected client before it is dropped
    # several nodes on one PostgreSQL database (ignored on SQLite)
    lease_ttl: float = field(default_factory=_lease_ttl)  # $ACTORQ_LEASE_TTL, default 10 s
    claim_interval: float = 1.0  # how often a node looks for actors with work and no live owner
    advertise: str | None = None  # host:port other nodes forward requests to ($ACTORQ_ADVERTISE)


@dataclass(frozen=True, slots=True)
class NodeStats:
    """This node's figures when several nodes share the storage (for ``/metrics``)."""

    node_id: str | None
    address: str | None
    leases_held: int
    leases_acquired: int
    leases_lost: int
    actions_forwarded: int


class Runtime:
    def __init__(self, registry: Registry, storage: Storage, config: RuntimeConfig | None = None) -> None:
        self.registry = registry
        self.storage = storage
        self.config = config = config or RuntimeConfig()
        self._life = Lifecycle()
        self._start_lock = asyncio.Lock()
        self._waiters = Waiters(storage, self._life.spawn, config.max_wait)
        self._events = Events(config.event_buffer, on_detach=self._touch)
        self._actors = ActorDirectory(
            registry, storage, self._life, self._waiters, self._events, config.sweep_interval
        )
        self._actors.services = self
        self._placement = Placement(self._actors, self._events, storage, config.lease_ttl)
        self._sender = Sender(storage, self._actors, self._waiters, config.max_wait)
        self._scheduler = Scheduler(storage, self._life.spawn, self._fire, self._max_attempts)

    # -- lifecycle -----------------------------------------------------------------------------
    @property
    def started(self) -> bool:
        return self._life.started

    @property
    def accepting(self) -> bool:
        return self._life.accepting

    @property
    def forwarder(self) -> Forwarder | None:
        return self._placement.forwarder

    @forwarder.setter
    def forwarder(self, forwarder: Forwarder | None) -> None:
        """How requests reach the node that owns an actor (plugged in by the server)."""
        self._placement.forwarder = forwarder

    @property
    def clustered(self) -> bool:
        """Several nodes share the storage (known once started)."""
        return self._actors.cluster is not None

    async def start(self) -> None:
        async with self._start_lock:
            if self._life.started:
                return
            await self.storage.open()
            self._life.started = True
            self._life.accepting = True
            if isinstance(self.storage, LeasedStorage):
                # a node among several: no blanket recovery; the claim scan takes over actors whose
                # lease is free or expired (a previous life's leases expire like anyone's)
                cluster = ClusterMember(
                    self.storage,
                    actors=self._actors,
                    on_done=self._waiters.on_remote_done,
                    spawn=self._life.spawn,
                    ttl=self.config.lease_ttl,
                    claim_interval=self.config.claim_interval,
                    address=self.config.advertise,
                )
                self._actors.cluster = cluster
                await cluster.start()
                self._life.spawn(self._claim_now(self.storage))
            else:
                for actor_id in await self.storage.recover(time.time()):
                    self._life.spawn(self._actors.wake_quietly(actor_id))
            self._life.spawn(self._actors.sweeper())
            self._life.spawn(self._scheduler.loop())
            self._life.spawn(purge_loop(self.storage, self.config.result_ttl))
            log.info("actorq runtime started on %r", self.storage)

    def begin_shutdown(self) -> None:
        """Stop accepting work and release every waiting sender with ``Unavailable`` (they retry)."""
        if not self._life.accepting:
            return
        self._life.accepting = False
        self._waiters.release_all(Unavailable("server is shutting down; retry", retry_after=1.0))
        self._events.close_all()

    async def stop(self, grace: float | None = None) -> None:
        if not self._life.started:
            return
        self.begin_shutdown()
        await self._actors.close_all(self.config.grace if grace is None else grace)
        await self._life.cancel_tasks()
        self._actors.cancel_timers()
        if self._actors.cluster is not None:
            await self._actors.cluster.stop()  # release every lease at once: others take over now
            self._actors.cluster = None
        if self._placement.forwarder is not None:
            await self._placement.forwarder.close()
        await self.storage.close()
        self._life.started = False

    async def _claim_now(self, storage: LeasedStorage) -> None:
        """At start: take over actors with work and no live owner (the claim loop repeats this)."""
        try:
            for actor_id, _mine in await storage.claimable(time.time(), 1000):
                self._actors.poke(actor_id)
        except Exception as exc:
            log.warning("initial claim scan failed: %r", exc)

    def _touch(self, actor_id: str) -> None:
        self._actors.touch(actor_id)

    # -- actors --------------------------------------------------------------------------------
    async def resolve(
        self, name: str, key: Sequence[str], mode: Literal["get", "create", "get_or_create", "id"]
    ) -> ActorInfo:
        self._life.check_accepting()
        return await self._actors.resolve(name, key, mode)

    async def actor_info(self, actor_id: str) -> ActorInfo:
        return await self._actors.actor_info(actor_id)

    async def list_actors(
        self, name: str | None = None, limit: int = 100, after: str | None = None
    ) -> list[ActorInfo]:
        return await self._actors.list_actors(name, limit, after)

    def is_awake(self, actor_id: str) -> bool:
        return self._actors.is_awake(actor_id)

    @property
    def awake_count(self) -> int:
        return self._actors.awake_count

    def awake_ids(self) -> list[str]:
        """The actors awake in this process."""
        return self._actors.awake_ids()

    async def cluster_nodes(self, actors_per_node: int) -> list[NodeRecord] | None:
        """The nodes sharing this storage, each with some of the actors it runs now; ``None``
        without a cluster."""
        if not isinstance(self.storage, LeasedStorage):
            return None
        return await self.storage.nodes(max(1, min(actors_per_node, 1000)))

    async def sleep(self, actor_id: str) -> None:
        """Put an actor to sleep now: stop its run loop and drop it from memory."""
        await self._actors.sleep(actor_id)

    async def owner(self, actor_id: str) -> Owner | None:
        """Several nodes: the node running the actor now (``None``: asleep and unowned)."""
        return await self._placement.owner(actor_id)

    def node_stats(self) -> NodeStats | None:
        cluster = self._actors.cluster
        if cluster is None:
            return None
        return NodeStats(
            node_id=cluster.node_id,
            address=cluster.address,
            leases_held=cluster.leases_held,
            leases_acquired=cluster.leases_acquired,
            leases_lost=cluster.leases_lost,
            actions_forwarded=self._placement.actions_forwarded,
        )

    # -- messages ------------------------------------------------------------------------------
    async def send(
        self,
        actor_id: str,
        queue: str,
        body: Any,
        *,
        block: bool = False,
        timeout: float | None = None,
        delay: float | None = None,
        idempotency_key: str | None = None,
    ) -> SendReceipt:
        self._life.check_accepting()
        info = await self._actors.actor_info(actor_id)
        qdef = self.registry.definition(info.name).get_queue(queue)
        with tracing.tracer.start_as_current_span(
            f"send {queue}",
            kind=SpanKind.PRODUCER,
            attributes=tracing.messaging("send", queue, info.name, actor_id),
        ) as span:
            receipt = await self._sender.send(
                actor_id,
                queue,
                qdef,
                body,
                block,
                timeout,
                delay,
                idempotency_key,
                tracing.traceparent_of(span),
            )
            span.set_attribute("messaging.message.id", str(receipt.id))
            if not receipt.duplicate:
                metrics.sent(info.name, queue)
            return receipt

    async def send_batch(self, actor_id: str, items: list[Outgoing]) -> list[SendReceipt | ActorqError]:
        """Several plain sends to one actor in one transaction (see :meth:`send_items`)."""
        self._life.check_accepting()
        await self._actors.actor_info(actor_id)  # an unknown actor is the request's error, not each item's
        return await self._sender.send_items([(actor_id, item) for item in items])

    async def send_items(self, items: list[tuple[str, Outgoing]]) -> list[SendReceipt | ActorqError]:
        """Plain sends to any actors in one transaction; each item succeeds or fails alone (unknown
        actor, validation, size, full queue), in order; one actor's items keep their order. The
        clients coalesce concurrent sends into these."""
        self._life.check_accepting()
        return await self._sender.send_items(items)

    async def send_and_wait(
        self,
        actor_id: str,
        queue: str,
        body: Any,
        *,
        timeout: float | None = None,
        block: bool = False,
        delay: float | None = None,
        idempotency_key: str | None = None,
    ) -> SendResult:
        """Send, then wait for completion: the request/response path of ``wait=True``."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        receipt = await self.send(
            actor_id, queue, body, block=block, timeout=timeout, delay=delay, idempotency_key=idempotency_key
        )
        left = None if timeout is None else max(0.0, timeout - (loop.time() - start))
        return await self.wait_result(actor_id, receipt.id, left, fresh=not receipt.duplicate)

    async def wait_result(
        self, actor_id: str, msg_id: int, timeout: float | None, *, fresh: bool = False
    ) -> SendResult:
        """Wait until the message is completed or dead, or ``timeout`` passes (then ``timed_out``)."""
        with tracing.tracer.start_as_current_span(
            "wait", attributes={"actorq.actor_id": actor_id, "messaging.message.id": str(msg_id)}
        ) as span:
            remote = self.clustered and not self._actors.is_awake(actor_id)
            result = await self._waiters.wait(actor_id, msg_id, timeout, fresh=fresh, remote=remote)
            span.set_attribute("actorq.status", result.status)
            return result

    async def lookup_result(self, actor_id: str, msg_id: int) -> SendResult:
        await self._actors.actor_info(actor_id)
        rec = await self.storage.get_message(actor_id, msg_id)
        if rec is None:
            raise NotFound(f"no message {msg_id} on actor {actor_id} (unknown, or purged after result_ttl)")
        return result_of(rec)

    async def queue_info(self, actor_id: str) -> list[QueueInfo]:
        info = await self._actors.actor_info(actor_id)
        definition = self.registry.definition(info.name)
        stats = {s.queue: s for s in await self.storage.queue_stats(actor_id, time.time())}
        out = []
        for name, qdef in definition.queues.items():
            s = stats.get(name)
            out.append(
                QueueInfo(
                    queue=name,
                    pending=s.pending if s else 0,
                    delayed=s.delayed if s else 0,
                    in_flight=s.inflight if s else 0,
                    completed=s.completed if s else 0,
                    dead=s.dead if s else 0,
                    max_size=qdef.max_size,
                )
            )
        return out

    async def queue_depths(self) -> list[QueueDepth]:
        """Messages not yet done per (actor type, queue) over the whole storage (several nodes: the
        whole database, the same figures on every node), one aggregate query; every declared queue
        is listed, with zeros when it holds nothing."""
        found = {(d.name, d.queue): d for d in await self.storage.queue_depths(time.time())}
        for name, definition in self.registry.definitions.items():
            for queue in definition.queues:
                found.setdefault((name, queue), QueueDepth(name, queue, 0, 0, 0, 0))
        return [found[k] for k in sorted(found)]

    async def list_messages(
        self, actor_id: str, status: MessageStatus, limit: int = 100, queue: str | None = None
    ) -> list[MessageRecord]:
        info = await self._actors.actor_info(actor_id)
        if queue is not None:
            self.registry.definition(info.name).get_queue(queue)
        return await self.storage.list_messages(actor_id, status, max(1, min(limit, 1000)), queue)

    async def dead_letters(self, actor_id: str, limit: int = 100) -> list[DeadLetter]:
        recs = await self.list_messages(actor_id, MessageStatus.DEAD, limit)
        return [
            DeadLetter(r.id, r.queue, json.loads(r.body), r.attempt, r.error, r.created_at, r.completed_at)
            for r in recs
        ]

    async def retry_dead(self, actor_id: str, msg_id: int) -> None:
        await self._actors.actor_info(actor_id)
        if not await self.storage.retry_dead(actor_id, msg_id, time.time()):
            raise NotFound(f"message {msg_id} is not in the dead letters of {actor_id}")
        self._actors.poke(actor_id)

    async def delete_dead(self, actor_id: str, msg_id: int) -> None:
        await self._actors.actor_info(actor_id)
        if not await self.storage.delete_dead(actor_id, msg_id):
            raise NotFound(f"message {msg_id} is not in the dead letters of {actor_id}")

    # -- actions and connections -----------------------------------------------------------------
    async def call_action(
        self,
        actor_id: str,
        name: str,
        args: list[Any],
        kwargs: dict[str, Any] | None = None,
        *,
        forward: bool = True,
        kind: SpanKind | None = None,
    ) -> Any:
        """Run an action on the actor; on a node that does not own it, forward it to the owner
        (``forward=False``: a request already forwarded once, or the scheduler: refuse instead).
        Its span is a SERVER span when a request enters here, INTERNAL when a handler calls it
        (``kind`` says which when the caller knows better)."""
        self._life.check_accepting()
        info = await self._actors.actor_info(actor_id)
        self.registry.definition(info.name).get_action(name)
        with tracing.tracer.start_as_current_span(
            f"action {name}",
            kind=kind or tracing.entry_kind(),
            attributes={"actorq.actor": info.name, "actorq.actor_id": actor_id, "actorq.action": name},
        ):
            return await self._placement.call_action(actor_id, name, args, kwargs, forward=forward)

    async def call_http(self, token: str, request: Any, *, forward: bool = True) -> Any:
        """An HTTP request that came in by a signed URL (the server's open preview route): run the
        ``http_action`` of the actor the token names (``core/http.py``) with ``(token, request)``.
        The request carries no API token, so only that one action can be reached this way, and it
        decides whether ``token`` admits it; a malformed token, an unknown actor or an actor type
        without an ``http_action`` are all the same NotFound."""
        self._life.check_accepting()
        actor_id = http.token_actor(token)
        if actor_id is None or not 1 <= len(actor_id) <= 1024:
            raise NotFound("no such preview")
        try:
            info = await self._actors.actor_info(actor_id)
        except NotFound:
            raise NotFound("no such preview") from None
        action = self.registry.definition(info.name).options.http_action
        if action is None:
            raise NotFound("no such preview")
        return await self.call_action(actor_id, action, [token, request], forward=forward)

    async def open_http_tunnel(self, token: str, request: Any) -> Any:
        """A WebSocket by a signed URL: :meth:`call_http` with ``request["websocket"]`` set to
        :data:`~actorq.core.http.UPGRADE` (a value no JSON request can carry, so only this path
        asks for a live connection), run on this node only (the connection is a Python object:
        ``Unavailable`` where another node owns the actor). The action answers an open
        :class:`~actorq.core.http.Tunnel`."""
        return await self.call_http(token, {**request, "websocket": http.UPGRADE}, forward=False)

    async def connect(self, actor_id: str, client: Any, *, forward: bool = True) -> Subscriber | None:
        """A client connects to the actor's events: its buffer (attached; ``detach()`` it when the
        client leaves) when the actor is served on this node; ``None`` once the connection was
        relayed to the node that owns it and is over (``client``: the server's connection object,
        handed to the forwarder untouched). ``forward=False``: a connection already forwarded once
        is refused with ``Unavailable`` instead."""
        return await self._placement.connect(actor_id, client, forward=forward)

    def broadcast(self, actor_id: str, name: str, data: Any) -> None:
        self._events.broadcast(actor_id, name, data)

    # -- schedules -----------------------------------------------------------------------------
    async def schedule(self, actor_id: str, run_at: float, action: str, args_json: str) -> int:
        return await self._scheduler.add(actor_id, run_at, action, args_json)

    async def _fire(self, actor_id: str, action: str, args: list[Any]) -> Any:
        # never forwarded: the owner's own scheduler fires it (one node per firing)
        return await self.call_action(actor_id, action, args, forward=False, kind=SpanKind.INTERNAL)

    def _max_attempts(self, actor_id: str) -> int:
        info = self._actors.cached_info(actor_id)
        return self.registry.definition(info.name).options.max_attempts if info else 5
