"""The registry behind the web inspector's browser tests and screenshots.

* ``mailbox``: a typed queue and no run loop, so what is sent stays pending;
* ``worker``: a completable queue whose handler raises for the tags in :data:`POISON` (with
  ``max_attempts=1`` a poisoned message goes straight to the dead letters), a state it keeps and
  an action that broadcasts an event.
"""

from __future__ import annotations

import asyncio
from typing import Any, NotRequired

from typing_extensions import TypedDict

from actorq import ActorContext, actor, queue, setup


class Letter(TypedDict):
    to: str
    text: str


class Job(TypedDict):
    tag: str
    n: int
    pause: NotRequired[float]  # seconds the job takes


POISON: set[str] = set()


async def worker_run(c: ActorContext) -> None:
    async for m in c.queue.iter(completable=True):
        c.broadcast("job_started", {"tag": m.body["tag"], "attempt": m.attempt})
        if m.body["tag"] in POISON:
            raise RuntimeError(f"cannot do job {m.body['tag']}")
        await asyncio.sleep(m.body.get("pause", 0))
        c.state["done"] = c.state.get("done", 0) + 1
        c.state["last"] = m.body["tag"]
        await m.complete({"tag": m.body["tag"], "doubled": m.body["n"] * 2})


async def announce(c: ActorContext, text: str, times: int = 1) -> str:
    for i in range(times):
        c.broadcast("announcement", {"text": text, "i": i})
    return text.upper()


async def add(c: ActorContext, by: int) -> int:
    c.state["total"] = c.state.get("total", 0) + by
    return int(c.state["total"])


mailbox = actor(queues={"letters": queue(Letter), "anything": queue(Any)})
worker = actor(
    queues={"jobs": queue(Job, dict)},
    actions={"announce": announce, "add": add},
    run=worker_run,
    state=dict,
    max_attempts=1,
)

registry = setup(use={"mailbox": mailbox, "worker": worker})
