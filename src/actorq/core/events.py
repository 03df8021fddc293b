"""Events an actor broadcasts (``c.broadcast``) to the clients connected to it.

Each connected client has a :class:`Subscriber`: a bounded buffer; a client that falls further
behind than ``event_buffer`` events is marked ``overflowed`` (the server then drops it). An actor
with a subscriber on this node does not go to sleep.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any


class Subscriber:
    """One connected client's event buffer. ``None`` in the queue: the server is shutting down.

    ``actor_gone``: set when the actor stops on this node while the client listens (several nodes:
    its lease was lost or taken over); ``None`` on a single node, where a listener keeps it awake.
    """

    def __init__(self, events: Events, actor_id: str, size: int) -> None:
        self.actor_id = actor_id
        self.queue: asyncio.Queue[tuple[str, Any] | None] = asyncio.Queue(size)
        self.overflowed = False
        self.actor_gone: asyncio.Event | None = None
        self._events = events

    def push(self, item: tuple[str, Any] | None) -> None:
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.overflowed = True

    def attach(self) -> None:
        """Start receiving the actor's events (again)."""
        self._events._attach(self)

    def detach(self) -> None:
        """Stop receiving them: the client left (or is served elsewhere)."""
        self._events._detach(self)


class Events:
    def __init__(self, buffer: int, on_detach: Callable[[str], None]) -> None:
        self.buffer = buffer
        self._on_detach = on_detach  # a client left: the actor's idle time counts from now
        self._listeners: dict[str, set[Subscriber]] = {}

    def subscriber(self, actor_id: str) -> Subscriber:
        """A new buffer for ``actor_id``'s events, not attached yet."""
        return Subscriber(self, actor_id, self.buffer)

    def subscribe(self, actor_id: str) -> Subscriber:
        sub = self.subscriber(actor_id)
        sub.attach()
        return sub

    def listened(self, actor_id: str) -> bool:
        return bool(self._listeners.get(actor_id))

    def broadcast(self, actor_id: str, name: str, data: Any) -> None:
        for sub in self._listeners.get(actor_id, ()):
            sub.push((name, data))

    def close_all(self) -> None:
        """Shutting down: tell every connected client."""
        for subs in self._listeners.values():
            for s in subs:
                s.push(None)

    def _attach(self, sub: Subscriber) -> None:
        self._listeners.setdefault(sub.actor_id, set()).add(sub)

    def _detach(self, sub: Subscriber) -> None:
        subs = self._listeners.get(sub.actor_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._listeners[sub.actor_id]
        self._on_detach(sub.actor_id)
