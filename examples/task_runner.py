"""Task runner: a durable "tasks" queue worked through one task at a time.

Every accepted task survives a crash of the server (a task interrupted mid-way is redelivered with
``attempt`` + 1); the actor keeps a persistent count and log in ``c.state``, saved atomically with
each task's acknowledgement, and broadcasts progress to connected clients.

    python examples/task_runner.py                      # a real server in-process, then main()
    python -m actorq serve examples.task_runner:registry
    actorq send runner main tasks '{"title": "build", "steps": 3}'
    actorq call runner main history
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
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
        c.state["count"] += 1
        c.state["log"].append({"id": message.id, "title": task["title"], "attempt": message.attempt})
        c.log.info("finished task %s (%s)", message.id, task["title"])


async def history(c: ActorContext) -> dict[str, Any]:
    return {"count": c.state["count"], "log": list(c.state["log"])}


runner = actor(
    queues={"tasks": queue(Task)},
    run=run,
    actions={"history": history},
    state=lambda: {"count": 0, "log": []},
)
registry = setup(use={"runner": runner})

TASKS: list[Task] = [
    {"title": "lint", "steps": 2},
    {"title": "test", "steps": 3},
    {"title": "package", "steps": 1},
]


async def main(client: AsyncClient, say: Callable[[str], object] = print) -> list[dict[str, Any]]:
    """Send three tasks, follow their progress events, return the runner's log."""
    handle = client.runner.get_or_create(["main"])
    before = (await handle.history())["count"]
    conn = await handle.connect()  # connected before sending, so no progress event is missed
    try:
        for task in TASKS:
            receipt = await handle.send("tasks", task)
            say(f"task {task['title']!r} queued as message {receipt.id}")
        finished = 0
        while finished < len(TASKS):
            event = await conn.next_event(timeout=30)
            say(f"  progress: {event.data['task']} step {event.data['step']}/{event.data['of']}")
            if event.data["step"] == event.data["of"]:
                finished += 1
    finally:
        await conn.close()
    history: dict[str, Any] = {}
    for _ in range(500):  # the last task is logged with its acknowledgement, just after its last event
        history = await handle.history()
        if history["count"] >= before + len(TASKS):
            break
        await asyncio.sleep(0.02)
    log: list[dict[str, Any]] = history["log"]
    say(f"runner history: {[d['title'] for d in log]} ({history['count']} task(s) done in all)")
    return log


async def standalone() -> None:
    async with registry.test() as client:
        await main(client)


if __name__ == "__main__":
    asyncio.run(standalone())
