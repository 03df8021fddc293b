"""Actors for the several-nodes tests (tests/cluster/test_cluster.py).

``worker`` records every message it handles twice: in a journal file shared by all nodes
(``$ACTORQ_TEST_JOURNAL``: start/end with the node's pid and wall-clock time, written even by a
node whose lease was taken over meanwhile) and in its own state (saved with the message's
acknowledgement, so only the owner's fenced commits land there).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from actorq import ActorContext, actor, queue, setup
from tests.apps.journal import journal


async def run_worker(c: ActorContext) -> None:
    async for m in c.queue.iter():
        journal({"ev": "start", "actor": c.key[0], "id": m.id, "attempt": m.attempt})
        delay = float(m.body.get("sleep", 0))
        if delay:
            await asyncio.sleep(delay)
        journal({"ev": "end", "actor": c.key[0], "id": m.id, "attempt": m.attempt})
        c.state["done"].append([m.id, m.attempt, os.getpid()])


async def run_replier(c: ActorContext) -> None:
    async for m in c.queue.iter(completable=True):
        await m.complete({"n": m.body.get("n"), "pid": os.getpid()})


async def where(c: ActorContext) -> int:
    return os.getpid()


async def done(c: ActorContext) -> list[Any]:
    return list(c.state["done"])


async def add(c: ActorContext, n: int) -> int:
    c.state["total"] += n
    return int(c.state["total"])


worker = actor(
    queues={"tasks": queue(dict, max_size=100_000)},
    run=run_worker,
    state=lambda: {"done": []},
    actions={"where": where, "done": done},
    max_attempts=20,
)
replier = actor(queues={"ask": queue(dict)}, run=run_replier, actions={"where": where})
counter = actor(state=lambda: {"total": 0}, actions={"add": add, "where": where})
registry = setup(use={"worker": worker, "replier": replier, "counter": counter})
