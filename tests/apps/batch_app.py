"""The registry behind the batch tests (the batch routes in tests/test_http_routes.py, the async
client's coalescing in tests/test_clients.py): one actor type whose queues fail items in each
way (wrong type, too large, full), and whose run loop records what it handled in ``seen``; a
message of ``held`` holds the loop until ``gate`` is set."""

from __future__ import annotations

import asyncio
from typing import Any

from actorq import ActorContext, actor, queue, setup

seen: list[tuple[int, Any]] = []
gate = asyncio.Event()


async def run(c: ActorContext) -> None:
    async for m in c.queue.iter():
        if m.name == "held":
            await gate.wait()
        seen.append((m.id, m.body))


registry = setup(
    use={
        "b": actor(
            queues={
                "q": queue(dict),
                "held": queue(Any),
                "small": queue(int, max_size=2),
                "tiny": queue(Any, max_message_bytes=16),
            },
            run=run,
        )
    }
)
