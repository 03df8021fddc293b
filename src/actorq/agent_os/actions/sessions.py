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
from actorq.vm_types import PromptResult, Session, SessionModes


async def create_session(
    c: ActorContext,
    agent_type: str,
    *,
    env: dict[str, str] | None = None,
    cwd: str = HOME,
    additional_instructions: str | None = None,
    mcp_servers: list[dict[str, Any]] | None = None,
    permissions: Any = None,
) -> Session:
    return await (await under_cap(c)).sessions.create(
        agent_type,
        env=env,
        cwd=cwd,
        additional_instructions=additional_instructions,
        mcp_servers=mcp_servers,
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
            agent = sessions.meta[session_id]["agent_type"]
            metrics.prompted(agent, time.monotonic() - started)
            metrics.tokens(agent, result.usage)
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


async def resume_session(
    c: ActorContext,
    session_id: str,
    *,
    env: dict[str, str] | None = None,
    mcp_servers: list[dict[str, Any]] | None = None,
) -> Session:
    return await (await under_cap(c)).sessions.resume(session_id, env, mcp_servers)


# session controls: what the agent offers (an agent without them answers Unsupported, 501)
async def get_modes(c: ActorContext, session_id: str) -> SessionModes:
    return await (await under_cap(c)).sessions.get_modes(session_id)


async def set_mode(c: ActorContext, session_id: str, mode: str) -> SessionModes:
    return await (await under_cap(c)).sessions.set_mode(session_id, mode)


async def get_config_options(c: ActorContext, session_id: str) -> list[dict[str, Any]]:
    return await (await under_cap(c)).sessions.get_config_options(session_id)


async def set_config_option(
    c: ActorContext, session_id: str, config_id: str, value: str | bool
) -> list[dict[str, Any]]:
    return await (await under_cap(c)).sessions.set_config_option(session_id, config_id, value)


async def set_model(c: ActorContext, session_id: str, model: str) -> list[dict[str, Any]]:
    return await (await under_cap(c)).sessions.set_model(session_id, model)
