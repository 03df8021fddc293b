"""Sleep and wake, durable schedules, and start-up recovery.

Each test runs twice (tests/core/conftest.py): on a bare Runtime, and through a real server with
the async client over HTTP."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from actorq import ActorContext, actor, queue, setup
from tests.core.conftest import OpenActors, awake

runs: list[str] = []
fired: list[Any] = []


async def run(c: ActorContext) -> None:
    runs.append(c.key[0])
    async for m in c.queue.iter():
        c.state.setdefault("got", []).append(m.body)


async def got(c: ActorContext) -> Any:
    return c.state.get("got", [])


async def plan(c: ActorContext, seconds: float, tag: str) -> int:
    return await c.schedule.after(seconds, "tick", tag)


async def tick(c: ActorContext, tag: str) -> None:
    fired.append((c.key[0], tag, time.time()))
    c.state.setdefault("ticks", []).append(tag)


async def ticks(c: ActorContext) -> Any:
    return c.state.get("ticks", [])


async def take(c: ActorContext) -> Any:
    m = await c.queue.next(timeout=5)
    return m.body if m is not None else None


registry = setup(
    use={
        "inbox": actor(queues={"q": queue(Any)}, actions={"take": take}, sleep_timeout=0.2),
        "sleepy": actor(
            queues={"q": queue(Any)},
            run=run,
            actions={"got": got, "plan": plan, "tick": tick, "ticks": ticks},
            state=dict,
            sleep_timeout=0.2,
        ),
    }
)


async def until(cond: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await cond():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("timed out")


async def test_sleep_after_idle_and_wake_on_message_and_action(open_actors: OpenActors) -> None:
    runs.clear()
    async with open_actors(registry, sweep_interval=0.05) as client:
        h = client.sleepy.get_or_create(["s"])
        await h.send("q", 1, wait=True, timeout=5)
        actor_id = h.actor_id or ""
        assert await awake(client, actor_id)
        await until(lambda: _not(awake(client, actor_id)))
        r = await h.send("q", 2, wait=True, timeout=5)  # wakes it
        assert r.status == "completed"
        assert runs == ["s", "s"], "a fresh run loop after waking"
        await until(lambda: _not(awake(client, actor_id)))
        assert await h.got() == [1, 2], "state survived sleep; the action woke it"
        assert await awake(client, actor_id)


async def _not(coro: Any) -> bool:
    return not await coro


async def test_an_actor_sleeps_after_an_action_took_a_message(open_actors: OpenActors) -> None:
    async with open_actors(registry, sweep_interval=0.05) as client:
        h = client.inbox.get_or_create(["i"])
        sent = await h.send("q", "hello")
        assert await h.take() == "hello"
        assert (await h.result(sent.id)).status == "completed", "acknowledged when the action returned"
        await until(lambda: _not(awake(client, h.actor_id or "")))


async def test_delayed_message_wakes_a_sleeping_actor(open_actors: OpenActors) -> None:
    async with open_actors(registry, sweep_interval=0.05) as client:
        h = client.sleepy.get_or_create(["d"])
        await h.send("q", "now", wait=True, timeout=5)
        receipt = await h.send("q", "later", delay=0.8)
        await until(lambda: _not(awake(client, h.actor_id or "")))  # asleep with a delayed message
        r = await h.result(receipt.id, wait=True, timeout=5)
        assert r.status == "completed"
        assert await h.got() == ["now", "later"]


async def test_schedule_fires_and_survives_restart(open_actors: OpenActors, tmp_path: Path) -> None:
    fired.clear()
    async with open_actors(registry, storage=tmp_path) as client:
        h = client.sleepy.get_or_create(["t"])
        await h.plan(0.1, "soon")
        await h.plan(1.5, "after-restart")
        deadline = time.monotonic() + 5
        while not fired and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert [f[1] for f in fired] == ["soon"]
    t_stop = time.time()
    assert [f[1] for f in fired] == ["soon"], "the second one had not fired before the stop"
    async with open_actors(registry, storage=tmp_path) as client:
        h = client.sleepy.get("t")
        deadline = time.monotonic() + 5
        while len(fired) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert [f[1] for f in fired] == ["soon", "after-restart"]
        assert fired[1][2] > t_stop
        assert await h.ticks() == ["soon", "after-restart"]


async def test_pending_messages_wake_their_actors_on_start(open_actors: OpenActors, tmp_path: Path) -> None:
    gate_reg = setup(use={"sleepy": actor(queues={"q": queue(Any)}, state=dict)})  # same type, no run
    async with open_actors(gate_reg, storage=tmp_path) as client:
        for k in ("x", "y"):
            await client.sleepy.get_or_create([k]).send("q", k)
    runs.clear()
    async with open_actors(registry, storage=tmp_path) as client:
        deadline = time.monotonic() + 5
        while sorted(runs) != ["x", "y"] and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert sorted(runs) == ["x", "y"], "woken without any request"
        assert await client.sleepy.get("x").got() == ["x"]
