"""The registry the core benchmarks run against."""

from __future__ import annotations

import os
import time
from typing import Any

from actorq import ActorContext, actor, queue, setup


async def sink(c: ActorContext) -> None:
    async for _ in c.queue.iter():
        pass


async def echo(c: ActorContext) -> None:
    async for m in c.queue.iter(completable=True):
        await m.complete(m.body)


async def wake(c: ActorContext) -> None:
    async for m in c.queue.iter(completable=True):
        # server-side: from the send's commit to the handler holding the message, actor asleep before
        await m.complete({"lag_ms": (time.time() - m.created_at.timestamp()) * 1000})


async def tasks_and_echo(c: ActorContext) -> None:
    # the side-by-side peer's actor: "tasks" counted into the state, "echo" answered with its n
    async for m in c.queue.iter(completable=True):
        if m.name == "echo":
            await m.complete({"n": m.body["n"]})
        else:
            c.state = {"processed": c.state["processed"] + 1}
            await m.complete()


async def count(c: ActorContext) -> int:
    processed: int = c.state["processed"]
    return processed


async def ping(c: ActorContext, x: Any) -> Any:
    return x


async def where(c: ActorContext) -> int:
    return os.getpid()  # which node runs the actor (bench_cluster.py)


registry = setup(
    use={
        "sink": actor(queues={"q": queue(Any, max_size=10_000_000)}, run=sink),
        "echo": actor(queues={"q": queue(Any)}, run=echo, actions={"ping": ping, "where": where}),
        "sleepy": actor(queues={"q": queue(Any)}, run=wake, sleep_timeout=0.3),
        "bench": actor(
            queues={"tasks": queue(Any, max_size=100_000), "echo": queue(Any)},
            run=tasks_and_echo,
            actions={"count": count, "ping": ping},
            state={"processed": 0},
        ),
        "idle": actor(queues={"q": queue(Any)}, run=sink, sleep_timeout=1.0),
    }
)
