"""Task runner: a durable "tasks" queue worked through one task at a time by the pi agent in a VM.

Every accepted task survives a crash of the server (a task interrupted mid-way is redelivered with
``attempt`` + 1); the actor keeps a persistent log in ``c.state``, saved atomically with each task's
acknowledgement, and broadcasts progress to connected clients. Each task is a prompt; pi writes its
result to ``/home/user/tasks/<id>.md`` in the runner's VM.

    python examples/task_runner.py                      # a real server in-process, then main()
    python -m actorq serve examples.task_runner:registry
    actorq send runner main tasks '{"title": "plan", "instructions": "Outline a release plan."}'
    actorq call runner main history
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypedDict

from actorq import ActorContext, actor, queue, setup
from actorq.agent_os import agent_os, software
from actorq.client import AsyncClient

if __name__ == "__main__":  # run as a file: make the `examples` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from examples.llm import configure_pi, network, pi_env


class Task(TypedDict):
    title: str
    instructions: str


async def run(c: ActorContext) -> None:
    vm = c.actors.vm.get_or_create(["runner"])
    await configure_pi(vm)
    session = await vm.create_session("pi", env=pi_env())
    async for message in c.queue.iter("tasks"):
        task: Task = message.body
        out = f"/home/user/tasks/{message.id}.md"
        c.broadcast("progress", {"task": task["title"], "state": "started", "attempt": message.attempt})
        result = await vm.send_prompt(
            session.session_id, f"Task: {task['title']}. {task['instructions']} Write your result to {out}."
        )
        c.state["log"].append(
            {"id": message.id, "title": task["title"], "attempt": message.attempt, "output": out}
        )
        c.broadcast("progress", {"task": task["title"], "state": "done", "stop_reason": result.stop_reason})
        c.log.info("finished task %s (%s)", message.id, task["title"])


async def history(c: ActorContext) -> dict[str, Any]:
    return {"count": len(c.state["log"]), "log": list(c.state["log"])}


runner = actor(
    queues={"tasks": queue(Task)}, run=run, actions={"history": history}, state=lambda: {"log": []}
)
vm = agent_os(software=[software.common, software.pi], network=network())
registry = setup(use={"runner": runner, "vm": vm})

TASKS: list[Task] = [
    {"title": "lint", "instructions": "List the lint rules a small Python service should enable."},
    {"title": "test", "instructions": "Write a test plan for a queue that must never lose a message."},
    {"title": "package", "instructions": "Describe how to package the service as a wheel."},
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
            event = await conn.next_event(timeout=120)
            say(f"  progress: {event.data['task']} {event.data['state']}")
            finished += event.data["state"] == "done"
    finally:
        await conn.close()
    history: dict[str, Any] = {}
    for _ in range(500):  # the last task is logged with its acknowledgement, just after its last event
        history = await handle.history()
        if history["count"] >= before + len(TASKS):
            break
        await asyncio.sleep(0.02)
    log: list[dict[str, Any]] = history["log"]
    vm_handle = client.vm.get_or_create(["runner"])
    for entry in log[before:]:
        text = (await vm_handle.read_file(entry["output"])).decode()
        say(f"  {entry['title']}: {text.splitlines()[0] if text else '(empty)'}")
    return log


async def standalone() -> None:
    async with registry.test() as client:
        await main(client)


if __name__ == "__main__":
    asyncio.run(standalone())
