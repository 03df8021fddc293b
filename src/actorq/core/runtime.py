"""The runtime: wakes, supervises and puts actors to sleep, routes sends, actions and waits.

It is the only owner of :class:`ActorInstance` objects (at most one per actor id), of the
in-memory wait registry for ``wait=True`` senders, of event subscriptions and of the durable
scheduler. It talks to storage through the protocol only and knows nothing about HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import time
import uuid
from collections import OrderedDict
from collections.abc import Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from actorq.core.cluster import ClusterMember, Forwarder, NotOwner, release_quietly
from actorq.core.definitions import QueueDefinition
from actorq.core.instance import ActorInstance
from actorq.core.tracing import tracer
from actorq.errors import ActorExists, ActorqError, BadRequest, NotFound, QueueFull, Unavailable
from actorq.results import ActorInfo, DeadLetter, QueueInfo, SendReceipt, SendResult
from actorq.storage.protocol import LeasedStorage, MessageRecord, MessageStatus, SendRequest, Storage

if TYPE_CHECKING:
    from actorq.core.registry import Registry

log = logging.getLogger("actorq.runtime")

_RECENT_RESULTS = 4096
_ACTOR_CACHE = 10_000
_POLL = 2.0  # how often a waiting sender re-reads storage in case a notification was missed
_POLL_REMOTE = 1.0  # the same, when the actor runs on another node


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


class Subscriber:
    """One connected client's event buffer."""

    def __init__(self, size: int) -> None:
        self.queue: asyncio.Queue[tuple[str, Any] | None] = asyncio.Queue(size)
        self.overflowed = False

    def push(self, item: tuple[str, Any] | None) -> None:
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.overflowed = True


def _status(rec: MessageRecord) -> SendResult:
    status: Literal["pending", "in_flight", "completed", "failed"]
    status = ("pending", "in_flight", "completed", "failed")[rec.status]
    return SendResult(
        id=rec.id,
        status=status,
        response=json.loads(rec.response) if rec.response is not None else None,
        error=rec.error if rec.status == MessageStatus.DEAD else None,
        attempt=rec.attempt,
        actor_id=rec.actor_id,
        queue=rec.queue,
    )


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One item of a batch send."""

    queue: str
    body: Any = None
    delay: float | None = None
    idempotency_key: str | None = None


def _request(
    actor_id: str,
    queue: str,
    qdef: QueueDefinition,
    body: Any,
    delay: float | None,
    idempotency_key: str | None,
) -> SendRequest:
    """Validate one send (body type and size, delay, key) into a storage request."""
    body_json = qdef.encode_body(body)
    if delay is not None and (not math.isfinite(delay) or delay < 0):
        raise BadRequest("delay must be a non-negative number of seconds")
    if idempotency_key is not None and not (0 < len(idempotency_key) <= 200):
        raise BadRequest("idempotency_key must be 1 to 200 characters")
    available_at = time.time() + (delay or 0.0)
    return SendRequest(actor_id, queue, body_json, qdef.max_size, available_at, idempotency_key)


class Runtime:
    def __init__(self, registry: Registry, storage: Storage, config: RuntimeConfig | None = None) -> None:
        self.registry = registry
        self.storage = storage
        self.config = config or RuntimeConfig()
        self._instances: dict[str, ActorInstance] = {}
        self._waking: dict[str, asyncio.Future[ActorInstance]] = {}
        self._infos: OrderedDict[str, ActorInfo] = OrderedDict()
        self._waiters: dict[tuple[str, int], list[asyncio.Future[SendResult]]] = {}
        self._recent: OrderedDict[tuple[str, int], SendResult] = OrderedDict()
        self._space: dict[tuple[str, str], asyncio.Event] = {}
        self._subscribers: dict[str, set[Subscriber]] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._schedule_changed = asyncio.Event()
        self._running_schedules: set[int] = set()
        self._deferred: dict[int, float] = {}  # schedule id -> not before (monotonic)
        self.started = False
        self.accepting = False
        self._start_lock = asyncio.Lock()
        self.cluster: ClusterMember | None = None  # set when the storage is shared by several nodes
        self.forwarder: Forwarder | None = None  # plugged in by the server

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        async with self._start_lock:
            if self.started:
                return
            await self.storage.open()
            self.started = True
            self.accepting = True
            if isinstance(self.storage, LeasedStorage):
                # a node among several: no blanket recovery; the claim scan takes over actors whose
                # lease is free or expired (a previous life's leases expire like anyone's)
                self.cluster = ClusterMember(
                    self,
                    self.storage,
                    ttl=self.config.lease_ttl,
                    claim_interval=self.config.claim_interval,
                    address=self.config.advertise,
                )
                await self.cluster.start()
                self._spawn(self._claim_now())
            else:
                for actor_id in await self.storage.recover(time.time()):
                    self._spawn(self._wake_quietly(actor_id))
            self._spawn(self._sweeper())
            self._spawn(self._scheduler())
            self._spawn(self._janitor())
            log.info("actorq runtime started on %r", self.storage)

    def begin_shutdown(self) -> None:
        """Stop accepting work and release every waiting sender with ``Unavailable`` (they retry)."""
        if not self.accepting:
            return
        self.accepting = False
        err = Unavailable("server is shutting down; retry", retry_after=1.0)
        for futs in self._waiters.values():
            for f in futs:
                if not f.done():
                    f.set_exception(err)
        for subs in self._subscribers.values():
            for s in subs:
                s.push(None)

    async def stop(self, grace: float | None = None) -> None:
        if not self.started:
            return
        self.begin_shutdown()
        grace = self.config.grace if grace is None else grace
        instances = list(self._instances.values())
        await asyncio.gather(*(inst.close(grace) for inst in instances), return_exceptions=True)
        self._instances.clear()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        if self.cluster is not None:
            await self.cluster.stop()  # release every lease at once: others take over now
            self.cluster = None
        if self.forwarder is not None:
            await self.forwarder.close()
        await self.storage.close()
        self.started = False

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _check_accepting(self) -> None:
        if not self.accepting:
            raise Unavailable("server is not accepting requests (starting or shutting down)", retry_after=1.0)

    # -- actors --------------------------------------------------------------------------------
    async def resolve(
        self, name: str, key: Sequence[str], mode: Literal["get", "create", "get_or_create", "id"]
    ) -> ActorInfo:
        self._check_accepting()
        self.registry.definition(name)
        key_t = tuple(key)
        if not all(isinstance(k, str) for k in key_t):
            raise BadRequest("an actor key is a list of strings")
        rec, created = await self.storage.resolve_actor(
            name,
            key_t,
            create=mode in ("create", "get_or_create"),
            must_create=mode == "create",
            new_id=uuid.uuid4().hex[:20],
            now=time.time(),
        )
        if rec is None:
            if mode == "create":
                raise ActorExists(f"a {name!r} actor with key {list(key_t)} already exists")
            raise NotFound(f"no {name!r} actor with key {list(key_t)}")
        info = ActorInfo(actor_id=rec.actor_id, name=rec.name, key=list(rec.key), created=created)
        self._remember(info)
        return info

    def _remember(self, info: ActorInfo) -> None:
        self._infos[info.actor_id] = info
        self._infos.move_to_end(info.actor_id)
        if len(self._infos) > _ACTOR_CACHE:
            self._infos.popitem(last=False)

    async def actor_info(self, actor_id: str) -> ActorInfo:
        inst = self._instances.get(actor_id)
        if inst is not None:
            return ActorInfo(actor_id, inst.name, list(inst.key))
        info = self._infos.get(actor_id)
        if info is not None:
            return info
        rec = await self.storage.load_actor(actor_id)
        if rec is None:
            raise NotFound(f"no actor with id {actor_id!r}")
        info = ActorInfo(actor_id=rec.actor_id, name=rec.name, key=list(rec.key))
        self._remember(info)
        return info

    async def list_actors(
        self, name: str | None = None, limit: int = 100, after: str | None = None
    ) -> list[ActorInfo]:
        if name is not None:
            self.registry.definition(name)
        recs = await self.storage.list_actors(name, max(1, min(limit, 1000)), after)
        return [ActorInfo(r.actor_id, r.name, list(r.key)) for r in recs]

    def is_awake(self, actor_id: str) -> bool:
        inst = self._instances.get(actor_id)
        return inst is not None and not inst.closing

    def awake_ids(self) -> list[str]:
        return list(self._instances)

    @property
    def awake_count(self) -> int:
        return len(self._instances)

    async def ensure_awake(self, actor_id: str) -> ActorInstance:
        while True:
            inst = self._instances.get(actor_id)
            if inst is not None:
                if not inst.closing:
                    return inst
                await inst.closed.wait()
                if self._instances.get(actor_id) is inst:
                    self._instances.pop(actor_id, None)
                continue
            pending = self._waking.get(actor_id)
            if pending is not None:
                return await asyncio.shield(pending)
            return await self._wake(actor_id)

    async def _wake(self, actor_id: str) -> ActorInstance:
        self._check_accepting()
        fut: asyncio.Future[ActorInstance] = asyncio.get_running_loop().create_future()
        self._waking[actor_id] = fut
        epoch: int | None = None
        try:
            if self.cluster is not None:
                epoch = await self.cluster.acquire(actor_id)  # NotOwner if another node has it
            rec = await self.storage.load_actor(actor_id)
            if rec is None:
                raise NotFound(f"no actor with id {actor_id!r}")
            inst = ActorInstance(self, rec, self.registry.definition(rec.name))
            inst.lease_epoch = epoch
            timer = self._timers.pop(actor_id, None)
            if timer is not None:
                timer.cancel()
            if inst.definition.on_wake is not None:
                await inst.definition.on_wake(inst.ctx)
                await inst.persist_state()
            self._instances[actor_id] = inst
            inst.start()
            fut.set_result(inst)
            return inst
        except BaseException as exc:
            await release_quietly(self.cluster, actor_id, epoch)
            fut.set_exception(exc)
            fut.exception()  # mark retrieved: concurrent wakers got it, or nobody needs it
            raise
        finally:
            self._waking.pop(actor_id, None)

    async def _wake_quietly(self, actor_id: str) -> None:
        try:
            await self.ensure_awake(actor_id)
        except NotOwner:
            pass  # another node runs it; the send's NOTIFY told that node
        except Exception as exc:
            if self.accepting:
                log.error("could not wake actor %s: %s", actor_id, exc)

    def poke(self, actor_id: str, available_at: float = 0.0) -> None:
        """A message for ``actor_id`` was committed: tell its instance, or wake it."""
        inst = self._instances.get(actor_id)
        if inst is not None:
            if inst.closing:
                inst.repoke = True
            else:
                inst.poke()
            return
        if self.cluster is not None and self.cluster.owner_elsewhere(actor_id) is not None:
            return  # owned by a live node elsewhere: the send's NOTIFY wakes it there
        delay = available_at - time.time()
        if delay > 0.001:
            self._wake_at(actor_id, delay)
            return
        if actor_id not in self._waking and self.accepting:
            self._spawn(self._wake_quietly(actor_id))

    def _prepoke(self, actor_id: str) -> None:
        inst = self._instances.get(actor_id)
        if inst is not None and not inst.closing:
            inst.poke()

    def _wake_at(self, actor_id: str, delay: float) -> None:
        loop = asyncio.get_running_loop()
        old = self._timers.get(actor_id)
        when = loop.time() + delay
        if old is not None and old.when() <= when:
            return
        if old is not None:
            old.cancel()
        self._timers[actor_id] = loop.call_at(when, self._timer_fired, actor_id)

    def _timer_fired(self, actor_id: str) -> None:
        self._timers.pop(actor_id, None)
        self.poke(actor_id)

    # -- several nodes ---------------------------------------------------------------------------
    async def _claim_now(self) -> None:
        """At start: take over actors with work and no live owner (the claim loop repeats this)."""
        assert self.cluster is not None and isinstance(self.storage, LeasedStorage)
        try:
            for actor_id, _mine in await self.storage.claimable(time.time(), 1000):
                self.poke(actor_id)
        except Exception as exc:
            log.warning("initial claim scan failed: %r", exc)

    def lease_lost(self, actor_id: str) -> None:
        """This node lost (or can no longer renew) ``actor_id``'s lease: stop its run loop without
        writing anything more for it; the node that takes it over redelivers what it held."""
        if self.cluster is not None:
            self.cluster.lost(actor_id)
        inst = self._instances.get(actor_id)
        if inst is None or inst.lost:
            return
        log.warning("this node lost the lease of actor %s; its run loop stops here", actor_id)
        inst.lost = True
        inst.closing = True
        self._spawn(self._drop(inst))

    async def _drop(self, inst: ActorInstance) -> None:
        await inst.abort()
        if self._instances.get(inst.actor_id) is inst:
            del self._instances[inst.actor_id]

    def on_remote_done(self, actor_id: str, msg_id: int) -> None:
        """Another node finished a message a sender here waits for (NOTIFY): look it up."""
        if (actor_id, msg_id) in self._waiters:
            self._spawn(self._resolve_from_storage(actor_id, msg_id))

    async def _resolve_from_storage(self, actor_id: str, msg_id: int) -> None:
        rec = await self.storage.get_message(actor_id, msg_id)
        if rec is None or rec.status not in (MessageStatus.COMPLETED, MessageStatus.DEAD):
            return
        for f in self._waiters.pop((actor_id, msg_id), []):
            if not f.done():
                f.set_result(_status(rec))

    async def _sweeper(self) -> None:
        while True:
            await asyncio.sleep(self.config.sweep_interval)
            now = time.monotonic()
            for inst in list(self._instances.values()):
                if inst.closing or self._subscribers.get(inst.actor_id):
                    continue
                if inst.idle and inst.idle_for(now) >= inst.options.sleep_timeout:
                    self._spawn(self.sleep(inst.actor_id))

    async def sleep(self, actor_id: str) -> None:
        """Put an actor to sleep now: stop its run loop and drop it from memory."""
        inst = self._instances.get(actor_id)
        if inst is None or inst.closing:
            return
        await inst.close(grace=None)
        if self._instances.get(actor_id) is inst:
            del self._instances[actor_id]
        await release_quietly(self.cluster, actor_id, inst.lease_epoch)  # others may take it at once
        if not self.accepting:
            return
        ready, nxt = await self.storage.next_available_at(actor_id, time.time())
        if inst.repoke or ready:
            self._spawn(self._wake_quietly(actor_id))
        elif nxt is not None:
            self._wake_at(actor_id, nxt - time.time())

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
        self._check_accepting()
        info = await self.actor_info(actor_id)
        qdef = self.registry.definition(info.name).get_queue(queue)
        with tracer.start_as_current_span(
            "actorq.send",
            attributes={"actorq.actor": info.name, "actorq.actor_id": actor_id, "actorq.queue": queue},
        ) as span:
            receipt = await self._send(actor_id, queue, qdef, body, block, timeout, delay, idempotency_key)
            span.set_attribute("actorq.message_id", receipt.id)
            return receipt

    async def _send(
        self,
        actor_id: str,
        queue: str,
        qdef: QueueDefinition,
        body: Any,
        block: bool,
        timeout: float | None,
        delay: float | None,
        idempotency_key: str | None,
    ) -> SendReceipt:
        req = _request(actor_id, queue, qdef, body, delay, idempotency_key)
        available_at = req.available_at
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (
            self.config.max_wait if timeout is None else min(timeout, self.config.max_wait)
        )
        while True:
            try:
                pending = asyncio.ensure_future(self.storage.send(req, time.time()))
                if delay is None:
                    # Let an awake receiver ask right behind this send: both usually land in the
                    # same group commit, so the message is handed out with the commit that stores it.
                    self._prepoke(actor_id)
                out = await pending
                break
            except QueueFull:
                remaining = deadline - loop.time()
                if not block or remaining <= 0:
                    raise
                ev = self._space.setdefault((actor_id, queue), asyncio.Event())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(ev.wait(), min(remaining, 0.25))
        if not out.duplicate:
            self.poke(actor_id, available_at)
        return SendReceipt(id=out.id, actor_id=actor_id, queue=queue, duplicate=out.duplicate)

    async def send_batch(self, actor_id: str, items: list[Outgoing]) -> list[SendReceipt | ActorqError]:
        """Several plain sends to one actor in one transaction (see :meth:`send_items`)."""
        self._check_accepting()
        await self.actor_info(actor_id)  # an unknown actor is the request's error, not each item's
        return await self.send_items([(actor_id, item) for item in items])

    async def send_items(self, items: list[tuple[str, Outgoing]]) -> list[SendReceipt | ActorqError]:
        """Plain sends to any actors in one transaction; each item succeeds or fails alone (unknown
        actor, validation, size, full queue), in order; one actor's items keep their order. The
        clients coalesce concurrent sends into these."""
        self._check_accepting()
        infos: dict[str, ActorInfo | ActorqError] = {}
        for actor_id, _ in items:
            if actor_id not in infos:
                try:
                    infos[actor_id] = await self.actor_info(actor_id)
                except ActorqError as exc:
                    infos[actor_id] = exc
        results: list[SendReceipt | ActorqError | None] = [None] * len(items)
        reqs: list[tuple[int, SendRequest]] = []
        for i, (actor_id, item) in enumerate(items):
            info = infos[actor_id]
            if isinstance(info, ActorqError):
                results[i] = info
                continue
            try:
                qdef = self.registry.definition(info.name).get_queue(item.queue)
                reqs.append(
                    (i, _request(actor_id, item.queue, qdef, item.body, item.delay, item.idempotency_key))
                )
            except ActorqError as exc:
                results[i] = exc
        if reqs:
            actors = {r.actor_id for _, r in reqs}
            names = sorted({info.name for info in infos.values() if isinstance(info, ActorInfo)})
            with tracer.start_as_current_span(
                "actorq.send_batch",
                attributes={"actorq.actor": ",".join(names), "actorq.actors": len(actors)},
            ) as span:
                if len(actors) == 1:
                    span.set_attribute("actorq.actor_id", next(iter(actors)))
                span.set_attribute("actorq.batch_size", len(reqs))
                sent = asyncio.ensure_future(self.storage.send_many([r for _, r in reqs], time.time()))  # noqa: RUF006 - awaited below
                for actor_id in actors:
                    self._prepoke(actor_id)
                outs = await sent
            for (i, req), out in zip(reqs, outs, strict=True):
                if isinstance(out, ActorqError):
                    results[i] = out
                    continue
                results[i] = SendReceipt(
                    id=out.id, actor_id=req.actor_id, queue=req.queue, duplicate=out.duplicate
                )
                if not out.duplicate:
                    self.poke(req.actor_id, req.available_at)
        return [r for r in results if r is not None]

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

    def on_finished(
        self,
        actor_id: str,
        msg_id: int,
        status: Literal["completed", "failed"],
        response: str | None,
        error: str | None,
    ) -> None:
        result = SendResult(
            id=msg_id,
            status=status,
            response=json.loads(response) if response is not None else None,
            error=error,
            actor_id=actor_id,
        )
        key = (actor_id, msg_id)
        futs = self._waiters.pop(key, None)
        if futs:
            for f in futs:
                if not f.done():
                    f.set_result(result)
            return
        self._recent[key] = result
        if len(self._recent) > _RECENT_RESULTS:
            self._recent.popitem(last=False)

    def on_acked(self, actor_id: str, ids: Iterable[int]) -> None:
        for i in ids:
            self.on_finished(actor_id, i, "completed", None, None)

    def on_dead(self, records: Iterable[MessageRecord]) -> None:
        for r in records:
            log.error("message %s of actor %s moved to the dead letters: %s", r.id, r.actor_id, r.error)
            self.on_finished(r.actor_id, r.id, "failed", None, r.error or "exceeded max_attempts")

    def on_received(self, actor_id: str, queues: Iterable[str]) -> None:
        for q in queues:
            ev = self._space.pop((actor_id, q), None)
            if ev is not None:
                ev.set()

    async def wait_result(
        self, actor_id: str, msg_id: int, timeout: float | None, *, fresh: bool = False
    ) -> SendResult:
        """Wait until the message is completed or dead, or ``timeout`` passes (then ``timed_out``)."""
        with tracer.start_as_current_span(
            "actorq.wait", attributes={"actorq.actor_id": actor_id, "actorq.message_id": msg_id}
        ) as span:
            result = await self._wait_result(actor_id, msg_id, timeout, fresh)
            span.set_attribute("actorq.status", result.status)
            return result

    async def _wait_result(
        self, actor_id: str, msg_id: int, timeout: float | None, fresh: bool
    ) -> SendResult:
        loop = asyncio.get_running_loop()
        limit = self.config.max_wait if timeout is None else min(max(0.0, timeout), self.config.max_wait)
        deadline = loop.time() + limit
        key = (actor_id, msg_id)
        fut: asyncio.Future[SendResult] = loop.create_future()
        self._waiters.setdefault(key, []).append(fut)
        try:
            recent = self._recent.get(key)
            if recent is not None:
                return recent
            rec: MessageRecord | None = None
            poll = _POLL
            remote = self.cluster is not None and not self.is_awake(actor_id)
            if remote and isinstance(self.storage, LeasedStorage):
                # the actor runs on another node: ask its completion to NOTIFY us
                poll = _POLL_REMOTE
                rec = await self.storage.watch(actor_id, msg_id)
            elif not fresh:
                rec = await self.storage.get_message(actor_id, msg_id)
            if rec is None and (remote or not fresh):
                raise NotFound(f"no message {msg_id} on actor {actor_id}")
            if rec is not None and rec.status in (MessageStatus.COMPLETED, MessageStatus.DEAD):
                return _status(rec)
            while True:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    attempt = rec.attempt if rec is not None else 0
                    return SendResult(id=msg_id, status="timed_out", attempt=attempt, actor_id=actor_id)
                done, _ = await asyncio.wait((fut,), timeout=min(remaining, poll))
                if done:
                    return fut.result()
                rec = await self.storage.get_message(actor_id, msg_id)  # a notification may be lost
                if rec is None:
                    raise NotFound(f"no message {msg_id} on actor {actor_id}")
                if rec.status in (MessageStatus.COMPLETED, MessageStatus.DEAD):
                    return _status(rec)
        finally:
            futs = self._waiters.get(key)
            if futs is not None:
                with contextlib.suppress(ValueError):
                    futs.remove(fut)
                if not futs:
                    del self._waiters[key]

    async def lookup_result(self, actor_id: str, msg_id: int) -> SendResult:
        await self.actor_info(actor_id)
        rec = await self.storage.get_message(actor_id, msg_id)
        if rec is None:
            raise NotFound(f"no message {msg_id} on actor {actor_id} (unknown, or purged after result_ttl)")
        return _status(rec)

    async def queue_info(self, actor_id: str) -> list[QueueInfo]:
        info = await self.actor_info(actor_id)
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

    async def list_messages(
        self, actor_id: str, status: MessageStatus, limit: int = 100, queue: str | None = None
    ) -> list[MessageRecord]:
        info = await self.actor_info(actor_id)
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
        await self.actor_info(actor_id)
        if not await self.storage.retry_dead(actor_id, msg_id, time.time()):
            raise NotFound(f"message {msg_id} is not in the dead letters of {actor_id}")
        self.poke(actor_id)

    async def delete_dead(self, actor_id: str, msg_id: int) -> None:
        await self.actor_info(actor_id)
        if not await self.storage.delete_dead(actor_id, msg_id):
            raise NotFound(f"message {msg_id} is not in the dead letters of {actor_id}")

    async def _janitor(self) -> None:
        while True:
            try:
                n = await self.storage.purge_completed(time.time() - self.config.result_ttl)
                if n:
                    log.info("purged %d completed messages older than %.0fs", n, self.config.result_ttl)
            except Exception as exc:
                log.warning("purge failed: %s", exc)
            await asyncio.sleep(min(3600.0, max(10.0, self.config.result_ttl / 10)))

    # -- actions -------------------------------------------------------------------------------
    async def call_action(
        self,
        actor_id: str,
        name: str,
        args: list[Any],
        kwargs: dict[str, Any] | None = None,
        *,
        forward: bool = True,
    ) -> Any:
        """Run an action on the actor; on a node that does not own it, forward it to the owner
        (``forward=False``: a request already forwarded once, or the scheduler: refuse instead)."""
        self._check_accepting()
        info = await self.actor_info(actor_id)
        self.registry.definition(info.name).get_action(name)
        with tracer.start_as_current_span(
            "actorq.action",
            attributes={"actorq.actor": info.name, "actorq.actor_id": actor_id, "actorq.action": name},
        ):
            for attempt in (1, 2):
                try:
                    inst = self._instances.get(actor_id)
                    elsewhere = self.cluster.owner_elsewhere(actor_id) if self.cluster is not None else None
                    if elsewhere is not None and inst is None:
                        raise elsewhere
                    inst = await self.ensure_awake(actor_id)
                except NotOwner as exc:
                    if not forward or self.forwarder is None or exc.address is None:
                        raise Unavailable(str(exc), retry_after=exc.retry_after) from None
                    try:
                        return await self._forward_action(exc, exc.address, actor_id, name, args, kwargs)
                    except Unavailable:
                        if self.cluster is not None:
                            self.cluster.forget_owner(actor_id)  # ask the database again next time
                        if attempt == 1 and await self.owner_changed(actor_id, exc.owner):
                            continue  # it let the actor go meanwhile (shut down): take it here
                        raise
                return await inst.call_action(name, args, kwargs)
            raise AssertionError("unreachable")

    async def owner_changed(self, actor_id: str, owner: str | None) -> bool:
        """Whether ``actor_id``'s lease is no longer held by node ``owner`` (False if unsure)."""
        if not isinstance(self.storage, LeasedStorage):
            return False
        try:
            return (await self.storage.owner(actor_id)).owner != owner
        except ActorqError:
            return False

    async def _forward_action(
        self,
        owner: NotOwner,
        address: str,
        actor_id: str,
        name: str,
        args: list[Any],
        kwargs: dict[str, Any] | None,
    ) -> Any:
        """Forward to the owner; give up (503, the client retries) if the owner stops answering and
        loses its lease meanwhile (paused, partitioned): another node may then take the actor."""
        assert self.forwarder is not None and isinstance(self.storage, LeasedStorage)
        if self.cluster is not None:
            self.cluster.actions_forwarded += 1
        task = asyncio.ensure_future(self.forwarder.call_action(address, actor_id, name, args, kwargs))
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=max(0.2, self.config.lease_ttl / 2))
                if done:
                    return task.result()
                lease = await self.storage.owner(actor_id)
                if lease.owner != owner.owner:
                    raise Unavailable(
                        f"the node owning actor {actor_id} ({address}) did not answer and lost its lease",
                        retry_after=0.5,
                    )
        finally:
            if not task.done():
                task.cancel()

    # -- events --------------------------------------------------------------------------------
    def subscribe(self, actor_id: str) -> Subscriber:
        sub = Subscriber(self.config.event_buffer)
        self._subscribers.setdefault(actor_id, set()).add(sub)
        return sub

    def unsubscribe(self, actor_id: str, sub: Subscriber) -> None:
        subs = self._subscribers.get(actor_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subscribers[actor_id]
        inst = self._instances.get(actor_id)
        if inst is not None:
            inst.last_active = time.monotonic()

    def broadcast(self, actor_id: str, name: str, data: Any) -> None:
        for sub in self._subscribers.get(actor_id, ()):
            sub.push((name, data))

    # -- schedules -----------------------------------------------------------------------------
    async def schedule(self, actor_id: str, run_at: float, action: str, args_json: str) -> int:
        sid = await self.storage.add_schedule(actor_id, run_at, action, args_json)
        self._schedule_changed.set()
        return sid

    async def _scheduler(self) -> None:
        while True:
            self._schedule_changed.clear()
            nxt = await self.storage.next_schedule_at()
            now = time.time()
            if nxt is None or nxt > now:
                wait = None if nxt is None else nxt - now
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._schedule_changed.wait(), wait)
                continue
            mono = time.monotonic()
            due = [
                s
                for s in await self.storage.due_schedules(now, 100)
                if s.id not in self._running_schedules and self._deferred.get(s.id, 0.0) <= mono
            ]
            for s in due:
                self._running_schedules.add(s.id)
                self._spawn(self._fire(s.id, s.actor_id, s.action, s.args, s.attempt))
            if not due:  # everything due is already running; wait for one to finish
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._schedule_changed.wait(), 1.0)

    async def _fire(self, sid: int, actor_id: str, action: str, args: str, attempt: int) -> None:
        retry_at: float | None = None
        try:
            # never forwarded: the owner's own scheduler fires it (one node per firing)
            await self.call_action(actor_id, action, json.loads(args), forward=False)
        except Unavailable:
            # shutting down, or another node owns the actor: it stays due and fires there (or later)
            self._deferred[sid] = time.monotonic() + 1.0
            if len(self._deferred) > 10_000:
                self._deferred.clear()
            self._running_schedules.discard(sid)
            self._schedule_changed.set()
            return
        except Exception as exc:
            info = self._infos.get(actor_id)
            max_attempts = self.registry.definition(info.name).options.max_attempts if info else 5
            if attempt + 1 < max_attempts:
                retry_at = time.time() + min(60.0, 0.5 * 2**attempt)
                log.warning(
                    "scheduled %s on %s failed (attempt %d), retrying: %s", action, actor_id, attempt + 1, exc
                )
            else:
                log.error(
                    "scheduled %s on %s failed %d times; dropped: %s", action, actor_id, attempt + 1, exc
                )
        try:
            await self.storage.finish_schedule(sid, retry_at=retry_at)
        finally:
            self._running_schedules.discard(sid)
            self._schedule_changed.set()
