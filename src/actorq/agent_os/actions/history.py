"""The VM's event history actions over the machine's ``History`` (``history.py``): what a client
that connected late, or reconnects, reads to catch up on the events it missed."""

from __future__ import annotations

from actorq.agent_os.machine import running
from actorq.core import ActorContext
from actorq.errors import NotFound
from actorq.vm_types import EventPage


async def get_events(c: ActorContext, *, since: int = 0, limit: int = 1000) -> EventPage:
    """The VM's events with ``seq > since``, oldest first (at most ``limit``)."""
    return await running(c).history.page(since, limit)


async def get_session_events(
    c: ActorContext, session_id: str, *, since: int = 0, limit: int = 1000
) -> EventPage:
    """One session's events with ``seq > since``, oldest first (at most ``limit``)."""
    m = running(c)
    await m.history.ready()
    known = isinstance(session_id, str) and (
        session_id in m.sessions.meta or session_id in m.history.sessions()
    )
    if not known:
        raise NotFound(f"no session {session_id!r} in this VM", details={"sessions": sorted(m.sessions.meta)})
    return await m.history.page(since, limit, session_id)
