"""What user code sees: the actor context ``c`` and in-process handles to other actors."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Concatenate, Generic, Literal, ParamSpec, Protocol, cast, overload

from typing_extensions import TypeVar

from actorq import _typing as t
from actorq._typing import QueueRef
from actorq.core.message import Message
from actorq.errors import BadRequest, NotFound
from actorq.results import ActorInfo, SendReceipt, SendResult
from actorq.storage._files import private_dir
from actorq.storage.snapshots import SnapshotStorage
from actorq.vm_types import AgentOSActions

if TYPE_CHECKING:
    from actorq.core.instance import ActorInstance
    from actorq.core.registry import Registry
    from actorq.storage.protocol import Storage

# queues to receive from: a name, a queue reference, a list of either, or None (all)
Names = str | QueueRef[Any, Any] | Sequence[str | QueueRef[Any, Any]] | None
S = TypeVar("S", default=Any)
B = TypeVar("B", default=Any)
R = TypeVar("R", default=Any)
P = ParamSpec("P")
T = TypeVar("T")


class ActorServices(Protocol):
    """What an actor's ``c`` calls: the runtime's own calls, in-process (the runtime implements it)."""

    @property
    def registry(self) -> Registry: ...

    @property
    def storage(self) -> Storage: ...

    async def resolve(
        self, name: str, key: Sequence[str], mode: Literal["get", "create", "get_or_create", "id"]
    ) -> ActorInfo: ...

    async def actor_info(self, actor_id: str) -> ActorInfo: ...

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
    ) -> SendReceipt: ...

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
    ) -> SendResult: ...

    async def wait_result(
        self, actor_id: str, msg_id: int, timeout: float | None, *, fresh: bool = False
    ) -> SendResult: ...

    async def lookup_result(self, actor_id: str, msg_id: int) -> SendResult: ...

    async def call_action(
        self,
        actor_id: str,
        name: str,
        args: list[Any],
        kwargs: dict[str, Any] | None = None,
        *,
        forward: bool = True,
    ) -> Any: ...

    async def schedule(self, actor_id: str, run_at: float, action: str, args_json: str) -> int: ...

    def broadcast(self, actor_id: str, name: str, data: Any) -> None: ...


def normalize_key(key: str | Sequence[str]) -> tuple[str, ...]:
    if isinstance(key, str):
        return (key,)
    out = tuple(key)
    if not all(isinstance(k, str) for k in out):
        raise BadRequest("an actor key is a list of strings")
    return out


class QueueView:
    """``c.queue``: receive from this actor's own queues (and send to them)."""

    def __init__(self, instance: ActorInstance) -> None:
        self._instance = instance

    @overload
    async def next(
        self, names: QueueRef[B, R], timeout: None = None, completable: bool = False
    ) -> Message[B, R]: ...

    @overload
    async def next(
        self, names: Names = None, timeout: None = None, completable: bool = False
    ) -> Message[Any, Any]: ...

    @overload
    async def next(
        self, names: QueueRef[B, R], timeout: float | None, completable: bool = False
    ) -> Message[B, R] | None: ...

    @overload
    async def next(
        self, names: Names = None, timeout: float | None = None, completable: bool = False
    ) -> Message[Any, Any] | None: ...

    async def next(
        self, names: Names = None, timeout: float | None = None, completable: bool = False
    ) -> Message[Any, Any] | None:
        """The next message (lowest id first), waiting up to ``timeout`` seconds (None: forever,
        so never ``None``)."""
        got = await self._instance.receive(queue_names(names), 1, timeout, completable)
        return got[0] if got else None

    @overload
    async def next_batch(
        self,
        count: int,
        names: QueueRef[B, R],
        timeout: float | None = None,
        completable: bool = False,
    ) -> list[Message[B, R]]: ...

    @overload
    async def next_batch(
        self, count: int, names: Names = None, timeout: float | None = None, completable: bool = False
    ) -> list[Message[Any, Any]]: ...

    async def next_batch(
        self, count: int, names: Names = None, timeout: float | None = None, completable: bool = False
    ) -> list[Message[Any, Any]]:
        """Up to ``count`` messages at once (waits for at least one, up to ``timeout``)."""
        if count < 1:
            raise BadRequest("count must be at least 1")
        return await self._instance.receive(queue_names(names), count, timeout, completable)

    @overload
    async def try_next(self, names: QueueRef[B, R], completable: bool = False) -> Message[B, R] | None: ...

    @overload
    async def try_next(self, names: Names = None, completable: bool = False) -> Message[Any, Any] | None: ...

    async def try_next(self, names: Names = None, completable: bool = False) -> Message[Any, Any] | None:
        """The next ready message, or ``None`` at once."""
        got = await self._instance.receive(queue_names(names), 1, 0.0, completable)
        return got[0] if got else None

    @overload
    def iter(self, names: QueueRef[B, R], completable: bool = False) -> AsyncIterator[Message[B, R]]: ...

    @overload
    def iter(self, names: Names = None, completable: bool = False) -> AsyncIterator[Message[Any, Any]]: ...

    async def iter(self, names: Names = None, completable: bool = False) -> AsyncIterator[Message[Any, Any]]:
        """Messages forever, one at a time; the previous one is acknowledged when the next is asked for."""
        queues = queue_names(names)
        while True:
            got = await self._instance.receive(queues, 1, None, completable)
            if got:
                yield got[0]

    @overload
    async def send(self, name: QueueRef[B, Any], body: B, *, delay: float | None = None) -> SendReceipt: ...

    @overload
    async def send(self, name: str, body: Any, *, delay: float | None = None) -> SendReceipt: ...

    async def send(
        self, name: str | QueueRef[Any, Any], body: Any, *, delay: float | None = None
    ) -> SendReceipt:
        """Send a message to one of this actor's own queues."""
        return await self._instance.services.send(
            self._instance.actor_id, t.queue_name(name), body, delay=delay
        )

    push = send


def queue_names(names: Names) -> str | list[str] | None:
    """Queue references as the names they were declared under (strings stay as they are)."""
    if names is None or isinstance(names, str):
        return names
    if isinstance(names, (list, tuple)):
        return [t.queue_name(n) for n in names]
    return cast(QueueRef[Any, Any], names).name


class Schedule:
    """``c.schedule``: durable delayed action calls on this actor (they survive restarts)."""

    def __init__(self, instance: ActorInstance) -> None:
        self._instance = instance

    async def after(self, seconds: float, action: str | Callable[..., Awaitable[Any]], *args: Any) -> int:
        """Call ``action(*args)`` on this actor in ``seconds``; returns the schedule id. ``action``
        is its name or the action function itself."""
        return await self.at(time.time() + max(0.0, seconds), action, *args)

    async def at(self, timestamp: float, action: str | Callable[..., Awaitable[Any]], *args: Any) -> int:
        """Call ``action(*args)`` on this actor at UNIX time ``timestamp`` (positional arguments)."""
        inst = self._instance
        name = t.action_name(action)
        inst.definition.get_action(name).bind(list(args))
        return await inst.services.schedule(inst.actor_id, timestamp, name, t.dumps(list(args)))


class ActorContext(Generic[S]):
    """The context ``c`` passed to ``run`` and to every action of one actor instance.

    ``S`` is the state's type, for the type checker (``c: ActorContext[Counter]`` makes
    ``c.state`` a ``Counter``); a bare ``ActorContext`` has ``Any`` state.
    """

    def __init__(self, instance: ActorInstance) -> None:
        self._instance = instance
        self.actor_id = instance.actor_id
        self.name = instance.name
        self.key: list[str] = list(instance.key)
        self.queue = QueueView(instance)
        self.schedule = Schedule(instance)
        self.actors = ActorsView(instance.services)
        self.log = logging.LoggerAdapter(
            logging.getLogger(f"actorq.actor.{instance.name}"),
            {"actor_id": instance.actor_id, "actor": instance.name, "key": self.key},
        )

    @property
    def state(self) -> S:
        """Persistent state (JSON-serialisable); saved after each message and each action."""
        return cast(S, self._instance.state)

    @state.setter
    def state(self, value: S) -> None:
        self._instance.state = value

    @property
    def vars(self) -> Any:
        """Per-wake memory built by ``actor(vars=...)``: never persisted, rebuilt on each wake."""
        return self._instance.vars

    @property
    def files_dir(self) -> Path:
        """A local directory for this actor's files on this node (e.g. an agent VM's root),
        there on first use: 0700, like ``actors/`` above it, whatever the umask."""
        path = self._instance.services.storage.files_dir / "actors" / self.actor_id
        private_dir(path.parent)  # a few syscalls; made again if something removed it
        private_dir(path)
        return path

    @property
    def snapshots(self) -> SnapshotStorage | None:
        """Where this actor's node-local files can be saved for another node, if storage is shared.

        ``None`` on embedded SQLite (one node: ``files_dir`` is durable as it is)."""
        storage = self._instance.services.storage
        return storage if isinstance(storage, SnapshotStorage) else None

    def keep_awake(self, work: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run ``work`` in the background; the actor does not go to sleep until it finishes.

        Tasks still running when the actor stops (sleep or shutdown) are cancelled after ``on_sleep``.
        """
        return self._instance.keep_awake(work)

    def broadcast(self, name: str, data: Any = None) -> None:
        """Send an event to every client connected to this actor (``handle.connect()``)."""
        self._instance.services.broadcast(self.actor_id, name, data)

    async def save_state(self) -> None:
        """Persist ``c.state`` now (it is saved after each message/action anyway)."""
        await self._instance.persist_state()


class ActorsView:
    """``c.actors.<name>``: handles to other actors, served in-process (no HTTP)."""

    def __init__(self, runtime: ActorServices) -> None:
        self._runtime = runtime

    def __getattr__(self, name: str) -> ActorTypeRef[ActorRef]:
        if name.startswith("_"):
            raise AttributeError(name)
        return self[name]

    def __getitem__(self, name: str) -> ActorTypeRef[ActorRef]:
        self._runtime.registry.definition(name)
        return ActorTypeRef(self._runtime, name, ActorRef)

    def agent_os(self, name: str = "vm") -> ActorTypeRef[AgentOSRef]:
        """Typed handles to the agent VM type registered as ``name``: every built-in VM action
        is a method with its signature and result type (``c.actors.vm`` works too, untyped)."""
        self._runtime.registry.definition(name)
        return ActorTypeRef(self._runtime, name, AgentOSRef)


H = TypeVar("H", bound="ActorRef")


class ActorTypeRef(Generic[H]):
    def __init__(self, runtime: ActorServices, name: str, make: type[H]) -> None:
        self._runtime = runtime
        self._name = name
        self._make = make

    def get_or_create(self, key: str | Sequence[str]) -> H:
        return self._make(self._runtime, self._name, normalize_key(key), "get_or_create")

    def get(self, key: str | Sequence[str]) -> H:
        return self._make(self._runtime, self._name, normalize_key(key), "get")

    def create(self, key: str | Sequence[str]) -> H:
        return self._make(self._runtime, self._name, normalize_key(key), "create")

    def get_for_id(self, actor_id: str) -> H:
        return self._make(self._runtime, self._name, None, "id", actor_id=actor_id)


class ActorRef:
    """A lazy in-process handle: resolves its actor on first use, then calls the runtime directly."""

    def __init__(
        self,
        runtime: ActorServices,
        name: str,
        key: tuple[str, ...] | None,
        mode: Literal["get", "create", "get_or_create", "id"],
        *,
        actor_id: str | None = None,
    ) -> None:
        self._runtime = runtime
        self._name = name
        self._key = key
        self._mode = mode
        self._actor_id = actor_id

    async def resolve(self) -> str:
        """The actor id (creating the actor when the handle says so)."""
        if self._actor_id is None:
            assert self._key is not None
            info = await self._runtime.resolve(self._name, self._key, self._mode)
            self._actor_id = info.actor_id
        elif self._mode == "id":
            info = await self._runtime.actor_info(self._actor_id)
            if info.name != self._name:
                raise NotFound(f"actor {self._actor_id} is not a {self._name!r}")
            self._mode = "get"
        return self._actor_id

    @overload
    async def send(
        self,
        queue: QueueRef[B, R],
        body: B,
        *,
        wait: Literal[True],
        timeout: float | None = None,
        block: bool = False,
        delay: float | None = None,
        idempotency_key: str | None = None,
    ) -> SendResult[R | None]: ...

    @overload
    async def send(
        self,
        queue: QueueRef[B, R],
        body: B,
        *,
        wait: Literal[False] = False,
        timeout: float | None = None,
        block: bool = False,
        delay: float | None = None,
        idempotency_key: str | None = None,
    ) -> SendReceipt: ...

    @overload
    async def send(
        self,
        queue: str,
        body: Any = None,
        *,
        wait: Literal[False] = False,
        timeout: float | None = None,
        block: bool = False,
        delay: float | None = None,
        idempotency_key: str | None = None,
    ) -> SendReceipt: ...

    @overload
    async def send(
        self,
        queue: str,
        body: Any = None,
        *,
        wait: Literal[True],
        timeout: float | None = None,
        block: bool = False,
        delay: float | None = None,
        idempotency_key: str | None = None,
    ) -> SendResult: ...

    async def send(
        self,
        queue: str | QueueRef[Any, Any],
        body: Any = None,
        *,
        wait: bool = False,
        timeout: float | None = None,
        block: bool = False,
        delay: float | None = None,
        idempotency_key: str | None = None,
    ) -> SendReceipt | SendResult[Any]:
        """Send to ``queue`` (its name, or the queue itself). With ``wait=True`` wait up to
        ``timeout`` s for the response (as the queue's response type, when sent by reference)."""
        actor_id = await self.resolve()
        name = t.queue_name(queue)
        if wait:
            r = await self._runtime.send_and_wait(
                actor_id,
                name,
                body,
                block=block,
                timeout=timeout,
                delay=delay,
                idempotency_key=idempotency_key,
            )
            return _typed(r, None if isinstance(queue, str) else queue)
        return await self._runtime.send(
            actor_id, name, body, block=block, timeout=timeout, delay=delay, idempotency_key=idempotency_key
        )

    push = send

    @overload
    async def result(
        self, message_id: int, queue: QueueRef[Any, R], *, wait: bool = False, timeout: float | None = None
    ) -> SendResult[R | None]: ...

    @overload
    async def result(
        self, message_id: int, queue: None = None, *, wait: bool = False, timeout: float | None = None
    ) -> SendResult: ...

    async def result(
        self,
        message_id: int,
        queue: QueueRef[Any, Any] | None = None,
        *,
        wait: bool = False,
        timeout: float | None = None,
    ) -> SendResult[Any]:
        """A message's result; given its queue (the reference), the response as its type."""
        actor_id = await self.resolve()
        if wait:
            r = await self._runtime.wait_result(actor_id, message_id, timeout)
        else:
            r = await self._runtime.lookup_result(actor_id, message_id)
        return _typed(r, queue)

    async def action(self, name: str, *args: Any, **kwargs: Any) -> Any:
        actor_id = await self.resolve()
        return await self._runtime.call_action(actor_id, name, list(args), kwargs or None)

    async def call(
        self, action: Callable[Concatenate[Any, P], Awaitable[T]], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Call an action by reference: ``await ref.call(approve, "reason")`` runs the action
        declared as ``actor(actions={"approve": approve})`` (its arguments and result typed)."""
        result = await self.action(t.action_name(action), *args, **kwargs)
        return cast(T, t.load_action_result(action, result))

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        if name.startswith("_"):
            raise AttributeError(name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            return await self.action(name, *args, **kwargs)

        call.__name__ = name
        return call


def _typed(r: SendResult[Any], queue: QueueRef[Any, Any] | None) -> SendResult[Any]:
    """``r`` with a completed response rebuilt as ``queue``'s response type (given a reference)."""
    if queue is None or r.status != "completed" or r.response is None:
        return r
    return dataclasses.replace(r, response=queue.load_response(r.response))


class AgentOSRef(ActorRef, AgentOSActions):
    """An in-process handle to an agent VM with every built-in action typed
    (``c.actors.agent_os("vm").get_or_create(key)``)."""
