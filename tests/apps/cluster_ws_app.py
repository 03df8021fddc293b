"""Actors for the WebSocket-across-nodes tests (tests/cluster/test_cluster_ws.py).

``emitter`` broadcasts a ``processed`` event (with the message's ``n`` and its node's pid) for every
message it handles, and a ``shout`` event from an action, so a test sees which node ran what.
"""

from __future__ import annotations

import os

from actorq import ActorContext, actor, queue, setup


async def run_emitter(c: ActorContext) -> None:
    async for m in c.queue.iter():
        c.broadcast("processed", {"n": m.body.get("n"), "pid": os.getpid()})


async def where(c: ActorContext) -> int:
    return os.getpid()


async def shout(c: ActorContext, text: str) -> str:
    c.broadcast("shout", {"text": text, "pid": os.getpid()})
    return text.upper()


emitter = actor(
    queues={"tasks": queue(dict)},
    run=run_emitter,
    actions={"where": where, "shout": shout},
    sleep_timeout=0.5,  # asleep quickly when nobody listens: listeners must keep it where it is
)
registry = setup(use={"emitter": emitter})
