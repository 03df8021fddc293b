"""The HTTP/WebSocket server: a thin Starlette app whose routes map 1:1 onto runtime calls.

Owns: serving the wire protocol (docs/protocol.md; its shapes are ``actorq.protocol``'s), JSON
parsing and error mapping, auth, the OpenAPI document, metrics and the uvicorn process wrapper.
Must not hold actor logic or touch storage directly, and must not import ``actorq.client``.
"""

from actorq.server.app import create_app

__all__ = ["create_app"]
