"""An actor that journals the trace its handler and its action run in (tests/cluster): with no
SDK in the nodes, the caller's trace id still runs through (non-recording spans carry it)."""

from __future__ import annotations

import os
from typing import Any

from opentelemetry import trace

from actorq import ActorContext, actor, queue, setup
from tests.apps.journal import journal


def _trace_id() -> str:
    return format(trace.get_current_span().get_span_context().trace_id, "032x")


async def run(c: ActorContext) -> None:
    async for m in c.queue.iter():
        journal({"ev": "message", "id": m.id, "trace": _trace_id()})


async def where(c: ActorContext) -> int:
    journal({"ev": "action", "trace": _trace_id()})
    return os.getpid()


registry = setup(use={"traced": actor(queues={"q": queue(Any)}, run=run, actions={"where": where})})
