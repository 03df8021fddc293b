"""Actors for the in-process semantics tests. Their behaviour is steered by message bodies and
observed through module-level probes, so each test can see exactly what the handlers saw."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, TypedDict

from pydantic import BaseModel

from actorq import ActorContext, CompletionError, ValidationError, actor, queue, setup


@dataclass
class Probe:
    seen: list[tuple[int, str, Any, int]] = field(default_factory=list)  # (id, queue, body, attempt)
    running: int = 0
    max_running: int = 0
    errors: list[str] = field(default_factory=list)
    gate: asyncio.Event | None = None

    def reset(self) -> None:
        self.__init__()  # type: ignore[misc]


probe = Probe()


async def plain_loop(c: ActorContext) -> None:
    async for m in c.queue.iter():
        probe.seen.append((m.id, m.name, m.body, m.attempt))
        probe.running += 1
        probe.max_running = max(probe.max_running, probe.running)
        try:
            body = m.body if isinstance(m.body, dict) else {}
            if body.get("sleep"):
                await asyncio.sleep(body["sleep"])
            if body.get("gate") and probe.gate is not None:
                await probe.gate.wait()
            if body.get("fail_until", 0) >= m.attempt:
                raise RuntimeError(f"boom on attempt {m.attempt}")
            c.state["count"] = c.state.get("count", 0) + 1
            if body.get("crash_after_state"):
                raise RuntimeError("crash after changing state")
        finally:
            probe.running -= 1


async def count(c: ActorContext) -> int:
    return int(c.state.get("count", 0))


async def completable_loop(c: ActorContext) -> None:
    while True:
        m = await c.queue.next(completable=True)
        assert m is not None
        probe.seen.append((m.id, m.name, m.body, m.attempt))
        body = m.body if isinstance(m.body, dict) else {}
        if body.get("sleep"):
            await asyncio.sleep(body["sleep"])
        if body.get("forget"):  # ask for the next one without completing: a CompletionError
            try:
                await c.queue.next(completable=True)
            except CompletionError as exc:
                probe.errors.append(str(exc))
        if body.get("twice"):
            await m.complete({"echo": body})
            try:
                await m.complete({"echo": body})
            except CompletionError as exc:
                probe.errors.append(str(exc))
            continue
        if body.get("return_open"):
            return  # returns with the message open: it goes back to the head
        if body.get("fail"):
            raise RuntimeError("completable handler failed")
        await m.complete({"echo": body})


async def batch_loop(c: ActorContext) -> None:
    while True:
        batch = await c.queue.next_batch(3, names=["b"], timeout=None)
        probe.seen.extend((m.id, m.name, m.body, len(batch)) for m in batch)


class ReviewIn(TypedDict):
    file: str


class Nested(TypedDict):
    review: ReviewIn
    tags: list[str]


class ReviewOut(TypedDict):
    summary: str


class Point(BaseModel):
    x: int
    y: int


@dataclass
class Job:
    name: str
    weight: float = 1.0


typed_seen: list[Any] = []


async def typed_loop(c: ActorContext) -> None:
    async for m in c.queue.iter(completable=True):
        typed_seen.append(m.body)
        if m.name == "review":
            await m.complete({"summary": f"reviewed {m.body['file']}"})
        elif m.name == "nested":
            await m.complete({"summary": f"{m.body['review']['file']}:{','.join(m.body['tags'])}"})
        elif m.name == "point":
            await m.complete({"summary": f"{m.body.x + m.body.y}"})
        elif m.name == "job":
            await m.complete({"summary": f"{m.body.name}x{m.body.weight}"})
        elif m.name == "fix":
            try:
                await m.complete({"wrong": True})
            except ValidationError as exc:  # the message stays open: complete it properly
                typed_seen.append(exc)
            await m.complete({"summary": "fixed"})
        else:
            await m.complete({"wrong": True})  # fails the response type: stays open → error


async def add(c: ActorContext, n: int) -> int:
    c.state["total"] = c.state.get("total", 0) + n
    return int(c.state["total"])


async def total(c: ActorContext) -> int:
    return int(c.state.get("total", 0))


async def slow_add(c: ActorContext, n: int, delay: float) -> int:
    await asyncio.sleep(delay)
    return await add(c, n)


async def explode(c: ActorContext) -> None:
    raise ValueError("kaboom")


async def forward(c: ActorContext, key: str, body: Any) -> Any:
    other = c.actors.echo.get_or_create([key])
    result = await other.send("q", body, wait=True, timeout=10)
    plain = await c.actors.plain.get_or_create([key]).send("tasks", {"from": c.key[0]})
    total_there = await c.actors.counter.get_or_create([key]).add(5)
    return {"status": result.status, "response": result.response, "plain_id": plain.id, "total": total_there}


async def echo_loop(c: ActorContext) -> None:
    async for m in c.queue.iter(completable=True):
        await m.complete({"echo": m.body, "key": c.key})


async def manual_loop(c: ActorContext) -> None:
    async for m in c.queue.iter(names=["a"]):
        probe.seen.append((m.id, m.name, m.body, m.attempt))


def _seen(m: Any) -> dict[str, Any]:
    return {"body": m.body, "attempt": m.attempt}


async def receive_open(c: ActorContext) -> dict[str, Any] | None:
    """Receive a completable message and return without completing it: it goes back."""
    m = await c.queue.next(names=["tasks"], completable=True, timeout=5)
    return _seen(m) if m is not None else None


async def receive_and_raise(c: ActorContext) -> None:
    m = await c.queue.next(names=["tasks"], completable=True, timeout=5)
    assert m is not None
    raise RuntimeError(f"action failed on attempt {m.attempt}")


async def receive_and_complete(c: ActorContext) -> dict[str, Any] | None:
    m = await c.queue.next(names=["tasks"], completable=True, timeout=5)
    if m is None:
        return None
    await m.complete({"ok": m.attempt})
    return _seen(m)


async def receive_plain(c: ActorContext) -> dict[str, Any] | None:
    """A plain message received in an action is acknowledged when the action returns."""
    m = await c.queue.next(names=["tasks"], timeout=5)
    return _seen(m) if m is not None else None


async def try_receive(c: ActorContext) -> dict[str, Any] | None:
    m = await c.queue.try_next(names=["tasks"])
    return _seen(m) if m is not None else None


async def receive_plain_and_raise(c: ActorContext) -> None:
    m = await c.queue.next(names=["tasks"], timeout=5)
    assert m is not None
    raise RuntimeError(f"action failed on attempt {m.attempt}")


async def take_in_background(c: ActorContext) -> None:
    """Start a background task that receives a completable and ends without completing it."""

    async def take() -> None:
        m = await c.queue.next(names=["tasks"], completable=True, timeout=5)
        probe.errors.append(f"background took {m.id if m else None} on attempt {m.attempt if m else 0}")

    c.keep_awake(take())


async def hold(c: ActorContext) -> dict[str, Any]:
    """Hold a completable message open until the probe's gate opens, then complete it."""
    m = await c.queue.next(names=["tasks"], completable=True, timeout=5)
    assert m is not None and probe.gate is not None
    probe.errors.append(f"holding {m.id}")
    await probe.gate.wait()
    await m.complete({"held": m.id})
    return _seen(m)


registry = setup(
    use={
        "plain": actor(
            queues={"tasks": queue(Any), "other": queue(Any), "small": queue(Any, max_size=3)},
            run=plain_loop,
            actions={"count": count},
            state=dict,
            max_attempts=3,
            retry_backoff=0.01,
            retry_backoff_max=0.05,
        ),
        "req": actor(
            queues={"ask": queue(Any, dict), "tiny": queue(Any, max_message_bytes=64)},
            run=completable_loop,
            max_attempts=3,
            retry_backoff=0.01,
            retry_backoff_max=0.05,
        ),
        "batcher": actor(queues={"a": queue(Any), "b": queue(Any)}, run=batch_loop),
        "typed": actor(
            queues={
                "review": queue(ReviewIn, ReviewOut),
                "nested": queue(Nested, ReviewOut),
                "point": queue(Point, ReviewOut),
                "job": queue(Job, ReviewOut),
                "bad": queue(Any, ReviewOut),
                "fix": queue(Any, ReviewOut),
            },
            run=typed_loop,
        ),
        "counter": actor(
            actions={"add": add, "total": total, "slow_add": slow_add, "explode": explode},
            state={"total": 0},
        ),
        "echo": actor(queues={"q": queue(Any)}, run=echo_loop),
        "fwd": actor(actions={"forward": forward}),
        "manual": actor(
            queues={"tasks": queue(Any, dict), "a": queue(Any)},
            run=manual_loop,
            actions={
                "receive_open": receive_open,
                "receive_and_raise": receive_and_raise,
                "receive_and_complete": receive_and_complete,
                "receive_plain": receive_plain,
                "try_receive": try_receive,
                "receive_plain_and_raise": receive_plain_and_raise,
                "hold": hold,
                "take_in_background": take_in_background,
            },
            max_attempts=6,
        ),
    }
)
