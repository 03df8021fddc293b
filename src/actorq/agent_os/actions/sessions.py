"""The VM's agent-session actions over the machine's ``SessionManager`` (``sessions.py``).

What starts an agent or a prompt passes the disk-cap check first; cancelling, closing and listing
do not.
"""

from __future__ import annotations

import time
from typing import Any

from actorq.agent_os import metrics
from actorq.agent_os.host import HOME
from actorq.agent_os.machine import running, under_cap
from actorq.core import ActorContext, tracer
from actorq.vm_types import PromptResult, Session


async def create_session(
    c: ActorContext,
    agent_type: str,
    *,
    env: dict[str, str] | None = None,
    cwd: str = HOME,
    additional_instructions: str | None = None,
    permissions: Any = None,
) -> Session:
    return await (await under_cap(c)).sessions.create(
        agent_type,
        env=env,
        cwd=cwd,
        additional_instructions=additional_instructions,
        permissions=permissions,
    )


async def send_prompt(
    c: ActorContext, session_id: str, prompt: str, *, timeout: float | None = None
) -> PromptResult:
    attrs = {"actorq.actor_id": c.actor_id, "actorq.agent.session_id": session_id}
    # the prompt's text stays out of the span (the caller's data)
    with tracer.start_as_current_span("agent prompt", attributes=attrs) as span:
        sessions = (await under_cap(c)).sessions
        started = time.monotonic()
        try:
            result = await sessions.prompt(session_id, prompt, timeout)
            metrics.prompted(sessions.meta[session_id]["agent_type"], time.monotonic() - started)
        finally:
            # the agent may have written files; a VM gone to sleep meanwhile answers Unavailable (retry)
            running(c).disk.touched()
        span.set_attribute("actorq.agent.stop_reason", result.stop_reason)
        span.set_attribute("actorq.agent.tool_calls", len(result.tool_calls))
        return result


async def cancel_prompt(c: ActorContext, session_id: str) -> bool:
    return await running(c).sessions.cancel(session_id)


async def close_session(c: ActorContext, session_id: str) -> Session:
    return await running(c).sessions.close(session_id)


async def list_sessions(c: ActorContext) -> list[Session]:
    return running(c).sessions.list()


async def resume_session(c: ActorContext, session_id: str, *, env: dict[str, str] | None = None) -> Session:
    return await (await under_cap(c)).sessions.resume(session_id, env)
