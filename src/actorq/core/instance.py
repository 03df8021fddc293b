"""One awake actor: its state in memory, its supervised ``run`` loop and message hand-out.

An instance exists only while the actor is awake; a sleeping actor is a row in storage and
nothing else. Exactly one instance (so one run loop) exists per actor id in a runtime; the actor
directory guarantees that, this module guarantees one message at a time within it. An instance
knows only what it is given: its storage, where it reports outcomes (:class:`Outcomes`), what its
context calls (``ActorServices``) and whom to tell when its lease is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import json
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

from opentelemetry.trace import Span
from pydantic import ValidationError as PydanticValidationError

from actorq import _typing as t
from actorq.core import logcontext, metrics, tracing
from actorq.core.context import ActorContext
from actorq.core.definitions import ActorDefinition
from actorq.core.message import Message
from actorq.errors import ActorError, ActorqError, BadRequest, CompletionError, LeaseLost, Unavailable
from actorq.storage.protocol import ActorRecord, MessageRecord, Storage

if TYPE_CHECKING:
    from actorq.core.context import ActorServices

log = logging.getLogger("actorq.runtime")
T = TypeVar("T")


async def _wait(event: asyncio.Event, timeout: float | None) -> None:
    """Wait for ``event`` up to ``timeout`` s (no task per wait, unlike ``wait_for``: hot path)."""
    if timeout is None:
        await event.wait()
        return
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            await event.wait()


def _field_errors(exc: PydanticValidationError) -> str:
    """pydantic's errors on one line: ``priority: Field required; file: Input should be ...``."""
    parts = []
    for e in t.pydantic_errors(exc):
        loc = ".".join(str(p) for p in e["loc"])
        parts.append(f"{loc}: {e['msg']}" if loc else e["msg"])
    return "; ".join(parts)


class Outcomes(Protocol):
    """Where an instance reports what it committed, for the senders waiting on it."""

    def on_acked(self, actor_id: str, messages: Iterable[Message[Any]]) -> None: ...

    def on_dead(self, records: Iterable[MessageRecord]) -> None: ...

    def on_received(self, actor_id: str, queues: Iterable[str]) -> None: ...

    def on_finished(
        self,
        actor_id: str,
        msg_id: int,
        status: Literal["completed", "failed"],
        response: str | None,
        error: str | None,
        *,
        attempt: int,
        queue: str,
    ) -> None: ...


class Receiver:
    """The messages one receiver holds: the run loop, or one action call (and the tasks it starts).

    A receiver that ends (``run`` or the action returns or raises) settles what it still holds:
    plain messages are acknowledged on return, completables go back to the head of their queue
    (attempt + 1), and everything goes back when it raised."""

    __slots__ = ("instance", "open", "scoped", "unacked")

    def __init__(self, instance: ActorInstance) -> None:
        self.instance = instance
        self.scoped = False  # a receive made its message the receiving task's current span and log scope
        self.unacked: dict[int, Message[Any]] = {}  # plain messages handed out, acked on the next receive
        self.open: dict[int, Message[Any]] = {}  # completable messages handed out, not yet completed

    def held_ids(self) -> tuple[int, ...]:
        return (*self.unacked, *self.open)

    def clear(self) -> None:
        self.unacked.clear()
        self.open.clear()


# which receiver the running code is (set by the run loop's task and by each action call; tasks
# started from there inherit it)
_receiver: contextvars.ContextVar[Receiver | None] = contextvars.ContextVar("actorq_receiver", default=None)


class ActorInstance:
    """``outcomes``: told of every acknowledgement, completion, dead letter and receive;
    ``services``: what the actor's ``c`` calls (sends, other actors, schedules, events);
    ``on_lease_lost``: called when this node must stop running the actor (several nodes);
    ``clustered``: several nodes share the storage."""

    def __init__(
        self,
        record: ActorRecord,
        definition: ActorDefinition,
        *,
        storage: Storage,
        outcomes: Outcomes,
        services: ActorServices,
        on_lease_lost: Callable[[str], None],
        clustered: bool,
    ) -> None:
        self.storage = storage
        self.outcomes = outcomes
        self.services = services
        self._on_lease_lost = on_lease_lost
        self.clustered = clustered
        self.actor_id = record.actor_id
        self.name = record.name
        self.key = record.key
        self.definition = definition
        self.options = definition.options
        self._saved_state = record.state
        self.state: Any = json.loads(record.state) if record.state is not None else definition.initial_state()
        self._run_receiver = Receiver(self)
        self._receivers: set[Receiver] = {self._run_receiver}  # the run loop's and running actions'
        self._wakeup = asyncio.Event()  # the run loop waiting for work after ``run`` returned
        self._listeners: set[asyncio.Event] = set()  # receives waiting for a message
        self._handling = metrics.Handling(record.name)
        self._spans: dict[int, Span] = {}  # the CONSUMER span of each message handed out, until settled
        self._task: asyncio.Task[None] | None = None
        self._failures = 0
        self.vars: Any = definition.vars() if definition.vars is not None else None
        self.kept_awake = 0  # c.keep_awake() tasks still running
        self._background: set[asyncio.Task[Any]] = set()
        self.ctx = ActorContext(self)
        self.idle_since: float | None = time.monotonic()
        self.last_active = time.monotonic()
        self.actions_running = 0
        self.closing = False
        self.stopping = False
        self.repoke = False
        self.closed = asyncio.Event()
        self.lease_epoch: int | None = None  # several nodes: the epoch this node owns the actor at
        self.lost = False  # the lease is gone: write nothing more for this actor

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        if self.definition.run is not None:
            self._task = asyncio.create_task(
                self._supervise(), name=f"actorq-run:{self.name}:{self.actor_id}"
            )

    def poke(self) -> None:
        """A message arrived (or a delayed one became due): look again."""
        self._wakeup.set()
        for ev in self._listeners:
            ev.set()

    @property
    def idle(self) -> bool:
        return (
            self.idle_since is not None
            and self.actions_running == 0
            and self.kept_awake == 0
            and not any(r.unacked or r.open for r in self._receivers)
        )

    def idle_for(self, now: float) -> float:
        if not self.idle or self.idle_since is None:
            return 0.0
        return now - max(self.idle_since, self.last_active)

    def keep_awake(self, work: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        rcv = Receiver(self)  # it outlives whoever started it: messages it takes are its own
        self._receivers.add(rcv)
        ctx = contextvars.copy_context()
        ctx.run(_receiver.set, rcv)
        task = asyncio.create_task(self._run_receiving(rcv, work, "a background task"), context=ctx)
        self.kept_awake += 1
        self._background.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            if t.cancelled():
                work.close()  # cancelled before it started: never awaited, and that is fine
            self.kept_awake -= 1
            self.last_active = time.monotonic()
            self._background.discard(t)
            exc = None if t.cancelled() else t.exception()
            if exc is not None:
                log.warning("background task of %s (%s) failed", self.name, self.actor_id, exc_info=exc)

        task.add_done_callback(done)
        return task

    async def _run_receiving(self, rcv: Receiver, work: Awaitable[T], who: str) -> T:
        """Await ``work`` as receiver ``rcv`` and settle what it still holds when it ends."""
        failure: BaseException | None = None
        try:
            return await work
        except BaseException as exc:
            failure = exc
            raise
        finally:
            try:
                if rcv.unacked or rcv.open:
                    await self._settle(rcv, failure, f"{who} ended without completing the message")
            finally:
                self._receivers.discard(rcv)

    async def close(self, grace: float | None) -> None:
        """Stop the run loop: at once if idle, else after the current handler (bounded by ``grace``)."""
        self.closing = True
        task = self._task
        if task is not None and not task.done():
            if grace and not self.idle:
                self.stopping = True
                self.poke()
                await asyncio.wait({task}, timeout=grace)
            if not task.done():
                task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        held = self._held_ids()
        if held:  # grace ran out mid-message: put it back so it is redelivered, never lost
            self._handling.done(held, "released")
            self._clear_receivers()
            try:
                await self._release(held, "actor stopped mid-message")
            except ActorqError:
                log.warning(
                    "could not release in-flight messages of %s; they are recovered on restart", self.actor_id
                )
        else:
            with contextlib.suppress(LeaseLost):
                await self.persist_state()
        await self._finish()

    async def abort(self) -> None:
        """The lease is lost: stop the run loop at once and write nothing more. Whatever this node
        held stays in flight in storage; the node that takes the actor over redelivers it."""
        self.closing = True
        self.lost = True
        self._forget_held()
        task = self._task
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if not self.closed.is_set():
            await self._finish()

    async def _finish(self) -> None:
        """``on_sleep`` (local resources), then background tasks; the instance is gone after this."""
        if self.definition.on_sleep is not None:
            try:
                await self.definition.on_sleep(self.ctx)
            except Exception as exc:
                log.warning("on_sleep of %s (%s) raised", self.name, self.actor_id, exc_info=exc)
            with contextlib.suppress(LeaseLost):
                await self.persist_state()
        self._end_spans(tuple(self._spans), "the actor stopped")
        for task in list(self._background):
            task.cancel()
        if self._background:
            await asyncio.wait(set(self._background), timeout=5.0)
        self.closed.set()

    # -- state ---------------------------------------------------------------------------------
    def _dirty_state(self) -> str | None:
        text = t.dumps(self.state)
        return text if text != self._saved_state else None

    async def persist_state(self) -> None:
        state = self._dirty_state()
        if self.lost and state is not None:
            raise LeaseLost(f"actor {self.actor_id} moved to another node; its state change is not kept")
        if state is not None:
            await self.storage.save_state(self.actor_id, state)
            self._saved_state = state

    async def evolve_state(self, version: int) -> None:
        """On wake, before ``run`` or an action sees it: bring a state saved at an older
        ``state_version`` (``version``) up to this code's through ``migrate_state``, and save it
        with the new version in one write; refuse a state newer than this code knows."""
        want = self.definition.state_version
        if version == want:
            return
        where = f"actor {self.name!r} ({self.actor_id})"
        if version > want:
            raise ActorError(
                f"state of {where} was saved at state_version {version}, but this code knows only up "
                f"to {want}: deploy code that declares state_version={version} (or higher) to wake it",
                details={"state_version": version, "code_state_version": want},
            )
        if self._saved_state is not None:  # never saved: the initial state is already at ``want``
            migrate = self.definition.migrate_state
            assert migrate is not None  # actor() requires it beyond version 1
            try:
                migrated = migrate(self.state, version)
                if inspect.isawaitable(migrated):
                    migrated = await migrated
            except Exception as exc:
                log.error("migrate_state of %s from %d to %d raised", where, version, want, exc_info=exc)
                raise ActorError(
                    f"migrate_state of {where} from state_version {version} to {want} raised "
                    f"{type(exc).__name__}: {exc}",
                    details={"state_version": version, "code_state_version": want},
                ) from exc
            try:
                text = t.dumps(migrated)
            except BadRequest as exc:
                raise ActorError(
                    f"migrate_state of {where} from state_version {version} to {want} returned a state "
                    f"that is not JSON: {exc.message}",
                    details={"state_version": version, "code_state_version": want},
                ) from None
            self.state = migrated
        else:
            text = t.dumps(self.state)
        await self.storage.save_state(self.actor_id, text, version=want)
        self._saved_state = text

    def _reset_state(self) -> None:
        self.state = (
            json.loads(self._saved_state)
            if self._saved_state is not None
            else self.definition.initial_state()
        )

    # -- receiving -----------------------------------------------------------------------------
    def _queue_names(self, names: str | Sequence[str] | None) -> tuple[str, ...] | None:
        if names is None:
            return None
        out = (names,) if isinstance(names, str) else tuple(names)
        for n in out:
            self.definition.get_queue(n)
        return out

    def _held_ids(self) -> tuple[int, ...]:
        return tuple(i for r in self._receivers for i in r.held_ids())

    def _clear_receivers(self) -> None:
        for r in self._receivers:
            r.clear()

    def _current_receiver(self) -> Receiver:
        rcv = _receiver.get()
        # code outside ``run``, the actions and keep_awake tasks (a hook, another actor's context, a
        # task that outlived the action that started it) counts as the run loop
        return rcv if rcv is not None and rcv in self._receivers else self._run_receiver

    async def receive(
        self, names: str | Sequence[str] | None, count: int, timeout: float | None, completable: bool
    ) -> list[Message[Any]]:
        rcv = self._current_receiver()
        if rcv.open:
            open_ids = ", ".join(str(i) for i in rcv.open)
            raise CompletionError(
                f"completable message(s) {open_ids} still open: complete them before asking for the next one"
            )
        queues = self._queue_names(names)
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        wakeup = asyncio.Event()  # this receive's own: another receiver's clear() cannot hide a poke
        self._listeners.add(wakeup)
        try:
            return await self._receive(rcv, queues, count, loop, deadline, completable, wakeup)
        finally:
            self._listeners.discard(wakeup)

    async def _receive(
        self,
        rcv: Receiver,
        queues: tuple[str, ...] | None,
        count: int,
        loop: asyncio.AbstractEventLoop,
        deadline: float | None,
        completable: bool,
        wakeup: asyncio.Event,
    ) -> list[Message[Any]]:
        in_run = rcv is self._run_receiver  # only the run loop's waiting makes the actor idle
        while True:
            wakeup.clear()
            held = dict(rcv.unacked)
            ack = tuple(held)
            state = self._dirty_state()
            out = await self.storage.receive(
                self.actor_id,
                queues,
                0 if self.stopping else count,
                ack_ids=ack,
                state=state,
                now=time.time(),
                max_attempts=self.options.max_attempts,
            )
            self._acked(rcv, held, out.acked, state)
            self._unscope(rcv)
            if out.acked:
                self._failures = 0
            if out.dead:
                metrics.dead_lettered(self.name, (r.queue for r in out.dead))
                self.outcomes.on_dead(out.dead)
            if self.stopping:
                raise asyncio.CancelledError()
            if out.messages:
                if in_run:
                    self.idle_since = None
                self._handling.received(out.messages)
                msgs: list[Message[Any]] = []
                taken: list[MessageRecord] = []
                for rec in out.messages:
                    msg = self._message(rec, completable)
                    if isinstance(msg, str):  # no receiver could ever take it: no retries
                        self._handling.done((rec.id,), "failed")
                        await self._release((rec.id,), msg, attempts_left=False)
                    else:
                        msgs.append(msg)
                        taken.append(rec)
                self.outcomes.on_received(self.actor_id, {m.queue for m in out.messages})
                if not msgs:
                    continue
                if not completable:
                    rcv.unacked.update({m.id: m for m in msgs})
                else:
                    rcv.open.update({m.id: m for m in msgs})
                self._hand_out(rcv, taken)
                return msgs
            now = loop.time()
            if deadline is not None and now >= deadline:
                return []
            wait = None if deadline is None else deadline - now
            if out.next_available_at is not None:
                due = max(0.0, out.next_available_at - time.time()) + 0.001
                wait = due if wait is None else min(wait, due)
            if in_run and self.idle_since is None:
                self.idle_since = time.monotonic()
            await _wait(wakeup, wait)

    def _acked(
        self, rcv: Receiver, held: dict[int, Message[Any]], acked: Sequence[int], state: str | None
    ) -> None:
        """A storage call acknowledged what ``rcv`` held (``held``; ``acked``: those it found in
        flight) and saved ``state`` with it: end their spans, time them, tell the waiters."""
        rcv.unacked.clear()
        self._end_spans(held)
        if state is not None:
            self._saved_state = state
        if acked:
            self._handling.done(acked, "completed")
            self.outcomes.on_acked(self.actor_id, [held[i] for i in acked if i in held])

    def _hand_out(self, rcv: Receiver, records: Sequence[MessageRecord]) -> None:
        """Start each message's CONSUMER span. One message handed out: it becomes the current span
        and log scope of the receiving task, so what the handler does (logs, calls, VM commands)
        is part of its trace; several at once: each has its span, none is current."""
        for rec in records:
            self._spans[rec.id] = tracing.start_consumer(
                self.name, self.actor_id, rec.queue, rec.id, rec.attempt, rec.traceparent
            )
        if len(records) == 1:
            rec = records[0]
            tracing.make_current(self._spans[rec.id])
            logcontext.enter(logcontext.LogScope(self.name, self.actor_id, self.key, rec.id, rec.queue))
            rcv.scoped = True

    def _unscope(self, rcv: Receiver) -> None:
        """The message handed out last is settled: what follows is not about it any more."""
        if rcv.scoped:
            rcv.scoped = False
            tracing.make_current(None)
            logcontext.enter(None)

    def _end_spans(self, ids: Iterable[int], error: str | BaseException | None = None) -> None:
        for i in ids:
            span = self._spans.pop(i, None)
            if span is not None:
                tracing.end_span(span, error)

    def _message(self, rec: MessageRecord, completable: bool) -> Message[Any] | str:
        """The message to hand out, or why it cannot be: its stored body no longer fits the queue's
        type (a deploy changed it), or its queue is gone."""
        qdef = self.definition.queues.get(rec.queue)
        if qdef is None:
            return f"queue {rec.queue!r} no longer exists"
        try:
            body = qdef.decode_body(json.loads(rec.body))
        except PydanticValidationError as exc:
            return f"body no longer matches queue {rec.queue!r} type: {_field_errors(exc)}"
        except Exception as exc:  # a user validator raising something pydantic does not wrap
            return f"body no longer matches queue {rec.queue!r} type: {type(exc).__name__}: {exc}"
        return Message(
            self,
            id=rec.id,
            name=rec.queue,
            body=body,
            created_at=rec.created_at,
            attempt=rec.attempt,
            completable=completable,
        )

    async def complete(self, msg: Message[Any], response: Any) -> None:
        rcv = next((r for r in self._receivers if msg.id in r.open or msg.id in r.unacked), None)
        if rcv is None:
            raise CompletionError(f"message {msg.id} is not held by this receiver any more")
        response_json = self.definition.get_queue(msg.name).encode_response(response)
        state = self._dirty_state()
        ok = await self.storage.complete(self.actor_id, msg.id, response_json, state=state, now=time.time())
        if not ok:
            raise CompletionError(f"message {msg.id} is no longer in flight")
        msg.completed = True
        rcv.open.pop(msg.id, None)
        rcv.unacked.pop(msg.id, None)
        if state is not None:
            self._saved_state = state
        self._failures = 0
        self._handling.done((msg.id,), "completed")
        self._end_spans((msg.id,))
        self.outcomes.on_finished(
            self.actor_id, msg.id, "completed", response_json, None, attempt=msg.attempt, queue=msg.name
        )

    # -- run loop supervision ------------------------------------------------------------------
    async def _supervise(self) -> None:
        _receiver.set(self._run_receiver)  # this task's own context: whoever woke the actor keeps theirs
        tracing.make_current(None)  # the loop is its own root, not part of whatever woke the actor
        logcontext.enter(None)
        try:
            await self._supervise_loop()
        except LeaseLost as exc:
            log.warning("%s (%s): %s; its run loop stops on this node", self.name, self.actor_id, exc)
            self._lose()
        except ActorqError as exc:
            if not self.clustered:
                raise
            # storage failed while settling (database down): let the lease lapse; whichever node
            # takes the actor over (maybe this one) redelivers what it held
            log.warning("%s (%s) stops on this node after a storage error: %s", self.name, self.actor_id, exc)
            self._lose()

    def _forget_held(self) -> None:
        """The lease is lost: what this node held stays in flight in storage, another node's to
        redeliver; only its bookkeeping here (receivers, timings, spans) goes."""
        self._handling.forget()
        self._clear_receivers()
        self._end_spans(tuple(self._spans), "the actor moved to another node")

    def _lose(self) -> None:
        self._forget_held()
        self._on_lease_lost(self.actor_id)

    async def _supervise_loop(self) -> None:
        run = self.definition.run
        assert run is not None
        while True:
            try:
                await run(self.ctx)
            except (asyncio.CancelledError, LeaseLost):
                raise
            except Exception as exc:
                if self.clustered and isinstance(exc, Unavailable):
                    # storage failed mid-call: a receive may have committed without us learning
                    # what it handed out; only taking the lease anew (which requeues everything in
                    # flight) is sure to redeliver it. The claim scan does that within a second.
                    raise
                held = self._run_receiver.held_ids()
                log.error(
                    "run of %s %s (%s) raised on message(s) %s; they will be redelivered",
                    self.name,
                    list(self.key),
                    self.actor_id,
                    list(held) or "-",
                    exc_info=exc,
                )
                await self._settle_crash(exc)
                self._failures += 1
                delay = min(
                    self.options.retry_backoff_max, self.options.retry_backoff * 2 ** (self._failures - 1)
                )
                await asyncio.sleep(delay)
                continue
            await self._settle_return()
            await self._wait_for_work()

    async def _release(
        self,
        ids: tuple[int, ...],
        error: str,
        exc: BaseException | None = None,
        *,
        attempts_left: bool = True,
    ) -> None:
        """Put held messages back at their place; those out of attempts go to the dead letters
        (``attempts_left=False``: all of them, at once)."""
        self._end_spans(ids, exc if exc is not None else error)
        max_attempts = self.options.max_attempts if attempts_left else 0
        dead = await self.storage.release(
            self.actor_id, ids, error=error, max_attempts=max_attempts, now=time.time()
        )
        metrics.dead_lettered(self.name, (r.queue for r in dead))
        self.outcomes.on_dead(dead)

    async def _settle_crash(self, exc: BaseException) -> None:
        self._reset_state()  # the failed message's state changes are not kept
        await self._settle(self._run_receiver, exc, "")

    async def _settle_return(self) -> None:
        await self._settle(self._run_receiver, None, "run returned without completing the message")

    async def _settle(self, rcv: Receiver, exc: BaseException | None, unfinished: str) -> None:
        """A receiver ended: if it raised (``exc``), put back all it held; if it returned,
        acknowledge its plain messages (saving the state with them) and put its open completables
        back at the head of their queues (``unfinished``: why, for the dead letters)."""
        if exc is not None:
            ids = rcv.held_ids()
            self._handling.done(ids, "failed")
            rcv.clear()
            self._unscope(rcv)
            if ids:
                await self._release(ids, f"{type(exc).__name__}: {exc}", exc)
            return
        held = dict(rcv.unacked)
        ack = tuple(held)
        state = self._dirty_state()
        if ack or state is not None:
            out = await self.storage.receive(
                self.actor_id,
                None,
                0,
                ack_ids=ack,
                state=state,
                now=time.time(),
                max_attempts=self.options.max_attempts,
            )
            self._acked(rcv, held, out.acked, state)
        self._unscope(rcv)
        if rcv.open:
            still_open = tuple(rcv.open)
            self._handling.done(still_open, "released")
            rcv.open.clear()
            await self._release(still_open, unfinished)

    async def _wait_for_work(self) -> None:
        """After ``run`` returned: wait for a ready message, then let the supervisor call it again."""
        while True:
            self._wakeup.clear()
            ready, nxt = await self.storage.next_available_at(self.actor_id, time.time())
            if self.stopping:
                raise asyncio.CancelledError()
            if ready:
                return
            if self.idle_since is None:
                self.idle_since = time.monotonic()
            wait = None if nxt is None else max(0.0, nxt - time.time()) + 0.001
            await _wait(self._wakeup, wait)

    # -- actions -------------------------------------------------------------------------------
    async def call_action(self, name: str, args: list[Any], kwargs: dict[str, Any] | None = None) -> Any:
        adef = self.definition.get_action(name)
        bound, bound_kw = adef.bind(args, kwargs)
        self.actions_running += 1
        self.last_active = started = time.monotonic()
        outcome: Literal["ok", "error"] = "error"
        scope = logcontext.enter(logcontext.LogScope(self.name, self.actor_id, self.key, action=name))
        rcv = Receiver(self)  # messages this call receives are settled when it ends
        self._receivers.add(rcv)
        token = _receiver.set(rcv)
        try:
            result = await self._run_receiving(rcv, adef.fn(self.ctx, *bound, **bound_kw), f"action {name!r}")
            outcome = "ok"
            return result
        except LeaseLost:
            self._on_lease_lost(self.actor_id)
            raise
        except ActorqError:
            raise
        except Exception as exc:
            log.warning("action %s of %s (%s) raised", name, self.name, self.actor_id, exc_info=exc)
            raise ActorError(
                f"action {name!r} raised {type(exc).__name__}: {exc}",
                details={"action": name, "type": type(exc).__name__},
            ) from exc
        finally:
            _receiver.reset(token)
            logcontext.leave(scope)
            self.actions_running -= 1
            self.last_active = time.monotonic()
            metrics.action(self.name, name, outcome, self.last_active - started)
            try:
                await self.persist_state()
            except LeaseLost:
                self._on_lease_lost(self.actor_id)
                raise


__all__ = ["ActorInstance", "Outcomes"]
