"""The VM's preview actions over ``preview.py``: signed URLs that serve one of its ports.

``preview_request`` is the VM's ``http_action``: the server's open ``/v1/preview/{token}/`` route
calls it, without the API token, so it admits nothing but what ``preview.admit`` accepts.
"""

from __future__ import annotations

from typing import Any

from actorq.agent_os import preview
from actorq.agent_os.machine import running
from actorq.core import HTTP_UPGRADE, ActorContext, http_token_head
from actorq.vm_types import FetchResult, PreviewUrl


async def create_signed_preview_url(c: ActorContext, port: int, ttl: float = 3600.0) -> PreviewUrl:
    url = preview.create(c.state, c.actor_id, http_token_head(c.actor_id), port, ttl)
    await c.save_state()
    return url


async def expire_signed_preview_url(c: ActorContext, url_or_id: str) -> bool:
    gone = preview.expire(c.state, url_or_id)
    if gone:
        await c.save_state()
    return gone


async def list_preview_urls(c: ActorContext) -> list[PreviewUrl]:
    return preview.listed(c.state)


async def preview_request(c: ActorContext, token: str, request: dict[str, Any]) -> FetchResult:
    port = preview.admit(c.state, c.actor_id, token)  # before anything reaches the VM
    if request.get("websocket") is HTTP_UPGRADE:  # only the core's tunnel path can set this
        tunnel: Any = await preview.tunnel(running(c).host, port, request)
        return tunnel  # type: ignore[no-any-return]
    return await preview.forward(running(c).host, port, request)
