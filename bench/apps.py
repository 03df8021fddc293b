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


async def ping(c: ActorContext, x: Any) -> Any:
    return x


async def where(c: ActorContext) -> int:
    return os.getpid()  # which node runs the actor (bench_cluster.py)


registry = setup(
    use={
        "sink": actor(queues={"q": queue(Any, max_size=10_000_000)}, run=sink),
        "echo": actor(queues={"q": queue(Any)}, run=echo, actions={"ping": ping, "where": where}),
        "sleepy": actor(queues={"q": queue(Any)}, run=wake, sleep_timeout=0.3),
        "idle": actor(queues={"q": queue(Any)}, run=sink, sleep_timeout=1.0),
    }
)
