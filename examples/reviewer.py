"""Reviewer: the README's example. A completable queue whose handler has the pi coding agent review a
file inside a sandboxed agent VM; the sender waits like a function call (``wait=True, timeout=120``).

queue → actor → VM → pi → ``write`` tool call → file → ``read_file`` → ``complete``.

    python examples/reviewer.py                      # a real server in-process, then main()
    python -m actorq serve examples.reviewer:registry
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypedDict

from actorq import ActorContext, SendResult, actor, queue, setup
from actorq.agent_os import agent_os, software
from actorq.client import AsyncClient

if __name__ == "__main__":  # run as a file: make the `examples` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from examples.llm import configure_pi, network, pi_env


class ReviewIn(TypedDict):
    file: str  # a path inside the reviewer's VM


class ReviewOut(TypedDict):
    summary: str


async def review_loop(c: ActorContext) -> None:
    vm = c.actors.vm.get_or_create(["reviewer"])
    c.log.info("pi uses the %s", await configure_pi(vm))
    session = await vm.create_session("pi", env=pi_env())
    async for message in c.queue.iter(completable=True):
        text = (await vm.read_file(message.body["file"])).decode()
        await vm.send_prompt(
            session.session_id,
            f"Review {message.body['file']} and write a summary to /home/user/review.txt:\n\n{text}",
        )
        review = (await vm.read_file("/home/user/review.txt")).decode()
        c.state["reviewed"] += 1
        await message.complete({"summary": review})


async def reviewed(c: ActorContext) -> int:
    return int(c.state["reviewed"])


reviewer = actor(
    queues={"review": queue(ReviewIn, ReviewOut)},
    run=review_loop,
    actions={"reviewed": reviewed},
    state=lambda: {"reviewed": 0},
)
vm = agent_os(software=[software.common, software.pi], network=network())
registry = setup(use={"reviewer": reviewer, "vm": vm})

SAMPLE = """def add(a, b):
    # TODO: check types
    return a + b


class Calculator:
    def total(self, items):
        return sum(items)
"""


async def main(client: AsyncClient, say: Callable[[str], object] = print) -> SendResult:
    vm_handle = client.vm.get_or_create(["reviewer"])
    await vm_handle.write_file("/home/user/src/calc.py", SAMPLE)
    say("wrote /home/user/src/calc.py into the reviewer's VM")
    say("asking for a review and waiting for it (wait=True, timeout=120) ...")
    handle = client.reviewer.get_or_create(["main"])
    result = await handle.send("review", {"file": "/home/user/src/calc.py"}, wait=True, timeout=120)
    outcome = result.response["summary"] if result.ok else result.error
    say(f"review {result.status} (message {result.id}):")
    for line in str(outcome).splitlines():
        say(f"  | {line}")
    return result


async def standalone() -> None:
    async with registry.test() as client:
        await main(client)


if __name__ == "__main__":
    asyncio.run(standalone())
