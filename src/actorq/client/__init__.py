"""Clients for an actorq server: async (aiohttp, with WebSocket) and sync (httpx) twins.

Owns: building requests and parsing responses (``_base``, no I/O, with the shapes of
``actorq.protocol``), and the two transports. Must not import ``actorq.core``,
``actorq.server``, ``actorq.storage`` or ``actorq.agent_os``: it speaks only the wire protocol,
so it works against any server version that speaks it.
"""

from actorq.client.async_client import ActorConnection, ActorHandle, AgentOSHandle, AsyncClient, create_client
from actorq.client.sync_client import SyncActorHandle, SyncAgentOSHandle, SyncClient, create_sync_client

__all__ = [
    "ActorConnection",
    "ActorHandle",
    "AgentOSHandle",
    "AsyncClient",
    "SyncActorHandle",
    "SyncAgentOSHandle",
    "SyncClient",
    "create_client",
    "create_sync_client",
]
