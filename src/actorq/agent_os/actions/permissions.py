"""The VM's permission actions: held tool calls listed and answered (``approvals.py`` holds them),
and the internal ``permission_resume`` that re-runs a prompt whose held call was answered after its
agent was gone (scheduled by the VM itself, as a durable row)."""

from __future__ import annotations

import contextlib

from actorq.agent_os.approvals import Approvals
from actorq.agent_os.machine import emit, running, under_cap
from actorq.core import ActorContext
from actorq.errors import ActorqError, NotFound, Unavailable
from actorq.vm_types import PermissionRequest


def _approvals(c: ActorContext) -> Approvals:
    approvals = running(c).sessions.approvals
    if approvals is None:  # every VM has them; a machine built without is a wiring bug
        raise NotFound("this VM holds no permission requests")
    return approvals


async def list_permission_requests(c: ActorContext, session_id: str | None = None) -> list[PermissionRequest]:
    """Pending requests, of one session or of all."""
    return _approvals(c).list(session_id)


async def respond_permission(
    c: ActorContext, session_id: str, request_id: str, decision: str
) -> PermissionRequest:
    """Answer a pending request ``"allow"`` or ``"deny"``; the agent gets it and goes on."""
    return await _approvals(c).respond(session_id, request_id, decision)


async def permission_resume(c: ActorContext, session_id: str, request_id: str) -> None:
    """Internal: re-run the prompt a held call interrupted, now that its answer is stored."""
    sessions = (await under_cap(c)).sessions
    try:
        result = await sessions.rerun(session_id, request_id)
    except Unavailable:
        raise  # the VM is going to sleep: the scheduled row stays due and fires again
    except ActorqError as exc:
        emit(
            c,
            "permission_resumed",
            {"session_id": session_id, "request_id": request_id, "error": exc.to_dict()},
        )
        return
    finally:
        with contextlib.suppress(Unavailable):
            running(c).disk.touched()  # the agent may have written files
    if result is not None:
        emit(
            c,
            "permission_resumed",
            {
                "session_id": session_id,
                "request_id": request_id,
                "stop_reason": result.stop_reason,
                "text": result.text[-4096:],
            },
        )
