"""Task runner: a durable "tasks" queue worked through one task at a time.

Each task survives a crash of the server; the actor keeps a persistent log of what it did and
broadcasts progress to connected clients. Run it alone with
``python -m actorq serve examples.task_runner:registry`` and send tasks with
``actorq send runner main tasks '{"title": "build", "steps": 3}'``.
"""

from __future__ import annotations

import asyncio
from typing import Any, TypedDict

from actorq import ActorContext, actor, queue, setup
from actorq.client import AsyncClient


class Task(TypedDict):
    title: str
    steps: int


async def run(c: ActorContext) -> None:
    async for message in c.queue.iter("tasks"):
        task: Task = message.body
        for step in range(1, task["steps"] + 1):
            await asyncio.sleep(0.01)  # stand-in for real work (an agent session, in the agent VM issue)
            c.broadcast("progress", {"task": task["title"], "step": step, "of": task["steps"]})
        c.state["done"].append({"id": message.id, "title": task["title"], "attempt": message.attempt})
        c.log.info("finished task %s (%s)", message.id, task["title"])


async def history(c: ActorContext) -> list[dict[str, Any]]:
    return list(c.state["done"])


runner = actor(
    queues={"tasks": queue(Task)},
    run=run,
    actions={"history": history},
    state=lambda: {"done": []},
)
registry = setup(use={"runner": runner})


async def main(client: AsyncClient, say: Any = print) -> list[dict[str, Any]]:
    """Send three tasks, follow their progress events, print the runner's history."""
    handle = client.runner.get_or_create(["main"])
    conn = await handle.connect()
    try:
        for title, steps in (("lint", 2), ("test", 3), ("package", 1)):
            receipt = await handle.send("tasks", {"title": title, "steps": steps})
            say(f"task {title!r} queued as message {receipt.id}")
        finished = 0
        while finished < 3:
            event = await conn.next_event(timeout=30)
            say(f"  progress: {event.data['task']} step {event.data['step']}/{event.data['of']}")
            if event.data["step"] == event.data["of"]:
                finished += 1
    finally:
        await conn.close()
    done: list[dict[str, Any]] = []
    for _ in range(100):  # the last task is logged just after its last progress event
        done = await handle.history()
        if len(done) >= 3:
            break
        await asyncio.sleep(0.02)
    say(f"runner history: {[d['title'] for d in done]}")
    return done
