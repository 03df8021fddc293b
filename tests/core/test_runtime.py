"""The Runtime on its own (no server, no HTTP): its facade runs actors, and stopping it releases
whoever waits and refuses new work with ``Unavailable`` (clients retry that)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from actorq import ActorContext, Unavailable, actor, queue, setup
from actorq.core.runtime import Runtime

MakeRuntime = Callable[..., Awaitable[Runtime]]
held = asyncio.Event()  # never set: a message of ``hold`` stays in its handler


async def echo_run(c: ActorContext) -> None:
    async for m in c.queue.iter(completable=True):
        await m.complete({"echo": m.body})


async def hold_run(c: ActorContext) -> None:
    async for _m in c.queue.iter(completable=True):
        await held.wait()


async def add(c: ActorContext, n: int) -> int:
    c.state["total"] = c.state.get("total", 0) + n
    return int(c.state["total"])


registry = setup(
    use={
        "echo": actor(queues={"ask": queue(Any, Any)}, run=echo_run, actions={"add": add}, state=dict),
        "hold": actor(queues={"ask": queue(Any, Any)}, run=hold_run),
    }
)


async def actor_id(rt: Runtime, name: str, key: str) -> str:
    return (await rt.resolve(name, [key], "get_or_create")).actor_id


async def test_the_facade_runs_actors_without_a_server(runtime: MakeRuntime) -> None:
    rt = await runtime(registry)
    aid = await actor_id(rt, "echo", "a")
    r = await rt.send_and_wait(aid, "ask", {"q": 1}, timeout=10)
    assert (r.id, r.status, r.response) == (1, "completed", {"echo": {"q": 1}})
    receipt = await rt.send(aid, "ask", "plain")
    assert (receipt.id, receipt.duplicate) == (2, False)
    assert (await rt.send_and_wait(aid, "ask", "again", timeout=10)).response == {"echo": "again"}
    assert await rt.call_action(aid, "add", [2]) == 2
    assert await rt.call_action(aid, "add", [], {"n": 3}) == 5
    assert rt.is_awake(aid)


async def test_stop_releases_waiting_senders_and_refuses_new_work(runtime: MakeRuntime) -> None:
    rt = await runtime(registry, grace=0.2)
    held_id = await actor_id(rt, "hold", "h")
    echo_id = await actor_id(rt, "echo", "e")
    waiter = asyncio.create_task(rt.send_and_wait(held_id, "ask", 1, timeout=30))
    await asyncio.sleep(0.2)
    assert not waiter.done(), "the message is held in its handler"
    await rt.stop()
    with pytest.raises(Unavailable):
        await waiter
    with pytest.raises(Unavailable):
        await rt.send(echo_id, "ask", 2)
    with pytest.raises(Unavailable):
        await rt.call_action(echo_id, "add", [1])
