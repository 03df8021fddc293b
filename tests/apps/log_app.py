"""A registry whose handler and action log through ``c.log`` (and run a VM command with a secret
in its env), for the logging tests: served by ``actorq serve`` or ``registry.start()``."""

from __future__ import annotations

import os
import sys
from typing import Any

from actorq import ActorContext, actor, queue, setup
from actorq.agent_os import agent_os, software

VM_SECRET = "vm-env-secret-0f1e2d3c"


async def run(c: ActorContext) -> None:
    async for m in c.queue.iter(completable=True):
        c.log.info("handling body %s", m.body)
        if m.body == "vm":
            r = await c.actors.offline.get_or_create(["logs"]).exec(
                'test -n "$API_KEY" && echo set', env={"API_KEY": VM_SECRET}
            )
            c.log.info("vm said %s", r.stdout.strip())
        await m.complete("ok")


async def ping(c: ActorContext) -> str:
    c.log.warning("ping action")
    return "pong"


registry = setup(
    use={
        "logger": actor(queues={"q": queue(Any)}, run=run, actions={"ping": ping}),
        "offline": agent_os(software=[software.common], network=False, sleep_timeout=2.0),
    }
)

if __name__ == "__main__":  # registry.start() in a process of its own: port and data dir as arguments
    registry.start(port=int(sys.argv[1]), storage=sys.argv[2], token=os.environ.get("ACTORQ_TOKEN"))
