"""The actor directory: which actors exist, which are awake here, and where the others run.

Owns the :class:`ActorInstance` objects (at most one per actor id on this node), the LRU of actor
ids already looked up, waking (taking the actor's lease first when several nodes share storage),
the timers that wake an actor when its next delayed message is due, and putting idle actors to
sleep. :meth:`ActorDirectory.where` is the one answer to "where does this actor run": its
instance here, or the node that owns it; actions, sends, WebSockets and waits all ask it.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

from actorq.core.cluster import ClusterMember, NotOwner, release_quietly
from actorq.core.instance import ActorInstance, Outcomes
from actorq.errors import ActorExists, BadRequest, NotFound
from actorq.results import ActorInfo
from actorq.storage.protocol import Storage

if TYPE_CHECKING:
    from actorq.core.context import ActorServices
    from actorq.core.events import Events
    from actorq.core.lifecycle import Lifecycle
    from actorq.core.registry import Registry

log = logging.getLogger("actorq.runtime")

_ACTOR_CACHE = 10_000


class ActorDirectory:
    def __init__(
        self,
        registry: Registry,
        storage: Storage,
        lifecycle: Lifecycle,
        outcomes: Outcomes,
        events: Events,
        sweep_interval: float,
    ) -> None:
        self.registry = registry
        self.storage = storage
        self.lifecycle = lifecycle
        self.outcomes = outcomes
        self.events = events
        self.sweep_interval = sweep_interval
        self.services: ActorServices | None = None  # what an actor's ``c`` calls (the runtime)
        self.cluster: ClusterMember | None = None  # set when the storage is shared by several nodes
        self._instances: dict[str, ActorInstance] = {}
        self._waking: dict[str, asyncio.Future[ActorInstance]] = {}
        self._infos: OrderedDict[str, ActorInfo] = OrderedDict()
        self._timers: dict[str, asyncio.TimerHandle] = {}

    # -- lookup --------------------------------------------------------------------------------
    async def resolve(
        self, name: str, key: Sequence[str], mode: Literal["get", "create", "get_or_create", "id"]
    ) -> ActorInfo:
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

    def cached_info(self, actor_id: str) -> ActorInfo | None:
        return self._infos.get(actor_id)

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

    async def list_actors(self, name: str | None, limit: int, after: str | None) -> list[ActorInfo]:
        if name is not None:
            self.registry.definition(name)
        recs = await self.storage.list_actors(name, max(1, min(limit, 1000)), after)
        return [ActorInfo(r.actor_id, r.name, list(r.key)) for r in recs]

    # -- where it runs -------------------------------------------------------------------------
    def where(self, actor_id: str) -> ActorInstance | NotOwner | None:
        """Its instance here; else the answer that a live node elsewhere owns it, while that
        answer is trusted; else ``None``: nobody is known to run it (waking it here decides)."""
        inst = self._instances.get(actor_id)
        if inst is not None:
            return inst
        if self.cluster is not None:
            return self.cluster.owner_elsewhere(actor_id)
        return None

    async def locate(self, actor_id: str) -> ActorInstance:
        """The actor's instance here, woken if need be; :class:`NotOwner` if it runs elsewhere."""
        where = self.where(actor_id)
        if isinstance(where, NotOwner):
            raise where
        return await self.ensure_awake(actor_id)

    def forget_owner(self, actor_id: str) -> None:
        """Ask storage again next time: the owner answered nothing, or let the actor go."""
        if self.cluster is not None:
            self.cluster.forget_owner(actor_id)

    def is_awake(self, actor_id: str) -> bool:
        inst = self._instances.get(actor_id)
        return inst is not None and not inst.closing

    def awake_ids(self) -> list[str]:
        return list(self._instances)

    @property
    def awake_count(self) -> int:
        return len(self._instances)

    @property
    def accepting(self) -> bool:
        return self.lifecycle.accepting

    # -- waking --------------------------------------------------------------------------------
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
        self.lifecycle.check_accepting()
        fut: asyncio.Future[ActorInstance] = asyncio.get_running_loop().create_future()
        self._waking[actor_id] = fut
        epoch: int | None = None
        try:
            if self.cluster is not None:
                epoch = await self.cluster.acquire(actor_id)  # NotOwner if another node has it
            rec = await self.storage.load_actor(actor_id)
            if rec is None:
                raise NotFound(f"no actor with id {actor_id!r}")
            assert self.services is not None
            inst = ActorInstance(
                rec,
                self.registry.definition(rec.name),
                storage=self.storage,
                outcomes=self.outcomes,
                services=self.services,
                on_lease_lost=self.lease_lost,
                clustered=self.cluster is not None,
            )
            inst.lease_epoch = epoch
            await inst.evolve_state(rec.state_version)
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

    async def wake_quietly(self, actor_id: str) -> None:
        try:
            await self.ensure_awake(actor_id)
        except NotOwner:
            pass  # another node runs it; the send's NOTIFY told that node
        except Exception as exc:
            if self.lifecycle.accepting:
                log.error("could not wake actor %s: %s", actor_id, exc)

    def poke(self, actor_id: str, available_at: float = 0.0) -> None:
        """A message for ``actor_id`` was committed: tell its instance, or wake it."""
        where = self.where(actor_id)
        if isinstance(where, ActorInstance):
            if where.closing:
                where.repoke = True
            else:
                where.poke()
            return
        if where is not None:
            return  # owned by a live node elsewhere: the send's NOTIFY wakes it there
        delay = available_at - time.time()
        if delay > 0.001:
            self._wake_at(actor_id, delay)
            return
        if actor_id not in self._waking and self.lifecycle.accepting:
            self.lifecycle.spawn(self.wake_quietly(actor_id))

    def prepoke(self, actor_id: str) -> None:
        """A send is on its way to storage: an awake receiver may ask right behind it."""
        inst = self._instances.get(actor_id)
        if inst is not None and not inst.closing:
            inst.poke()

    def touch(self, actor_id: str) -> None:
        """Its idle time counts from now (a client left it)."""
        inst = self._instances.get(actor_id)
        if inst is not None:
            inst.last_active = time.monotonic()

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

    # -- leases (several nodes) ----------------------------------------------------------------
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
        self.lifecycle.spawn(self._drop(inst))

    async def _drop(self, inst: ActorInstance) -> None:
        await inst.abort()
        if self._instances.get(inst.actor_id) is inst:
            del self._instances[inst.actor_id]

    # -- sleeping ------------------------------------------------------------------------------
    async def sweeper(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_interval)
            now = time.monotonic()
            for inst in list(self._instances.values()):
                if inst.closing or self.events.listened(inst.actor_id):
                    continue
                if inst.idle and inst.idle_for(now) >= inst.options.sleep_timeout:
                    self.lifecycle.spawn(self.sleep(inst.actor_id))

    async def sleep(self, actor_id: str) -> None:
        """Put an actor to sleep now: stop its run loop and drop it from memory."""
        inst = self._instances.get(actor_id)
        if inst is None or inst.closing:
            return
        await inst.close(grace=None)
        if self._instances.get(actor_id) is inst:
            del self._instances[actor_id]
        await release_quietly(self.cluster, actor_id, inst.lease_epoch)  # others may take it at once
        if not self.lifecycle.accepting:
            return
        ready, nxt = await self.storage.next_available_at(actor_id, time.time())
        if inst.repoke or ready:
            self.lifecycle.spawn(self.wake_quietly(actor_id))
        elif nxt is not None:
            self._wake_at(actor_id, nxt - time.time())

    async def close_all(self, grace: float) -> None:
        """Shutdown: stop every instance (the current handler may take ``grace``); cancel timers."""
        instances = list(self._instances.values())
        await asyncio.gather(*(inst.close(grace) for inst in instances), return_exceptions=True)
        self._instances.clear()

    def cancel_timers(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
