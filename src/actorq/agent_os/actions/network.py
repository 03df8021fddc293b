"""The VM's network action: ``vm_fetch``, an HTTP request to a server inside the VM (``fetch.py``)."""

from __future__ import annotations

from actorq.agent_os import fetch
from actorq.agent_os.machine import running
from actorq.core import ActorContext
from actorq.vm_types import FetchResult


async def vm_fetch(
    c: ActorContext,
    port: int,
    url: str = "/",
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: str | bytes | None = None,
) -> FetchResult:
    return await fetch.vm_fetch(running(c).host, port, url, method=method, headers=headers, body=body)
