"""The HTTP/WebSocket server: a thin Starlette app whose routes map 1:1 onto runtime calls.

Owns: serving the wire protocol (docs/protocol.md; its shapes are ``actorq.protocol``'s), JSON
parsing and error mapping, auth, the OpenAPI document, metrics, forwarding to other nodes (the
core's ``Forwarder``) and the uvicorn process wrapper. Holds no actor logic and never decides where
an actor runs (the core's placement does). Imports ``actorq.core`` and ``actorq.storage`` only
through their facades (their ``__init__``), and never ``actorq.client``, ``actorq.app`` or
``actorq.agent_os``.
"""

from actorq.server.app import create_app

__all__ = ["create_app"]
