"""Signed-URL requests' one rule the core owns: which actor a token belongs to.

A token for the server's open ``/v1/preview/{token}/`` route starts with its actor's id in
base64url (no padding) and a dot; what follows is the actor's own business (its ``http_action``
checks it). The server reads only this head, to know which actor to ask.
"""

from __future__ import annotations

import base64
import binascii
from typing import Protocol

_URLSAFE = str.maketrans("-_", "+/")


def token_head(actor_id: str) -> str:
    """The start of every token of ``actor_id`` (its id in base64url), without the dot."""
    return base64.urlsafe_b64encode(actor_id.encode()).rstrip(b"=").decode()


def token_actor(token: str) -> str | None:
    """The actor id a token names (not verified), or None if the token is malformed."""
    head, dot, _ = token.partition(".")
    if not head or not dot:
        return None
    try:
        raw = base64.b64decode(head.translate(_URLSAFE) + "=" * (-len(head) % 4), validate=True)
        actor_id = raw.decode()
    except (binascii.Error, ValueError):
        return None
    # one spelling per actor: anything that is not exactly token_head's (stray bits) is refused
    return actor_id if actor_id and token_head(actor_id) == head else None


class _Upgrade:
    """The marker of a WebSocket request handed to an ``http_action`` (see Runtime.open_http_tunnel)."""

    def __repr__(self) -> str:
        return "UPGRADE"


UPGRADE = _Upgrade()


class Tunnel(Protocol):
    """An open WebSocket to the actor's side, as an ``http_action`` answers an UPGRADE request."""

    @property
    def subprotocol(self) -> str | None: ...

    async def recv(self) -> str | bytes: ...

    async def send(self, message: str | bytes) -> None: ...

    async def close(self) -> None: ...
