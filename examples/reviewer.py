"""Reviewer: request/response over a durable queue (the shape of SPEC §2's example).

The sender waits like a function call (``wait=True, timeout=120``) and gets the typed review
back. Here a small Python function stands in for the coding agent; the agent VM issue swaps it
for the real pi agent working in a sandboxed workspace.

    python examples/reviewer.py                      # a real server in-process, then main()
    python -m actorq serve examples.reviewer:registry
    actorq send reviewer main review '{"file": "a.py", "content": "x = 1"}' --wait --timeout 120
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypedDict

from actorq import ActorContext, SendResult, actor, queue, setup
from actorq.client import AsyncClient


class ReviewIn(TypedDict):
    file: str
    content: str


class ReviewOut(TypedDict):
    summary: str


def stand_in_review(name: str, text: str) -> str:
    """What the agent will do later: read the file, write a summary."""
    lines = text.splitlines()
    todos = [i + 1 for i, line in enumerate(lines) if "TODO" in line]
    long_lines = [i + 1 for i, line in enumerate(lines) if len(line) > 100]
    parts = [f"{name}: {len(lines)} lines"]
    parts.append(f"TODOs on lines {todos}" if todos else "no TODOs")
    if long_lines:
        parts.append(f"lines over 100 characters: {long_lines}")
    return "; ".join(parts)


async def review_loop(c: ActorContext) -> None:
    async for message in c.queue.iter(completable=True):
        summary = stand_in_review(message.body["file"], message.body["content"])
        c.state["reviewed"] += 1
        await message.complete({"summary": summary})


async def reviewed(c: ActorContext) -> int:
    return int(c.state["reviewed"])


reviewer = actor(
    queues={"review": queue(ReviewIn, ReviewOut)},
    run=review_loop,
    actions={"reviewed": reviewed},
    state=lambda: {"reviewed": 0},
)
registry = setup(use={"reviewer": reviewer})

SAMPLE = """def add(a, b):
    # TODO: check types
    return a + b
"""


async def main(client: AsyncClient, say: Callable[[str], object] = print) -> SendResult:
    handle = client.reviewer.get_or_create(["main"])
    say("asking for a review of add.py and waiting for it (timeout 120 s) ...")
    result = await handle.send("review", {"file": "add.py", "content": SAMPLE}, wait=True, timeout=120)
    outcome = result.response["summary"] if result.ok else result.error
    say(f"review {result.status} (message {result.id}): {outcome}")
    return result


async def standalone() -> None:
    async with registry.test() as client:
        await main(client)


if __name__ == "__main__":
    asyncio.run(standalone())
