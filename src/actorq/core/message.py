"""The message a receiver gets from ``c.queue.next()`` / ``iter()``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Generic, overload

from typing_extensions import TypeVar

from actorq.errors import CompletionError

if TYPE_CHECKING:
    from actorq.core.instance import ActorInstance

B = TypeVar("B", default=Any)
R = TypeVar("R", default=Any)


class Message(Generic[B, R]):
    """One delivered message. ``attempt`` is 1 on first delivery and grows with each redelivery.

    ``B`` is the body's type and ``R`` the response's, as the queue declared them
    (``queue(B, R)``); a message received by queue name is a ``Message[Any, Any]``.
    """

    __slots__ = ("_instance", "attempt", "body", "completable", "completed", "created_at", "id", "name")

    def __init__(
        self,
        instance: ActorInstance,
        *,
        id: int,
        name: str,
        body: B,
        created_at: float,
        attempt: int,
        completable: bool,
    ) -> None:
        self._instance = instance
        self.id = id
        self.name = name
        self.body = body
        self.created_at = datetime.fromtimestamp(created_at, UTC)
        self.attempt = attempt
        self.completable = completable
        self.completed = False

    @overload
    async def complete(self: Message[Any, None], response: None = None) -> None: ...

    @overload
    async def complete(self, response: R) -> None: ...

    async def complete(self, response: Any = None) -> None:
        """Finish this message with ``response`` (validated against the queue's response type).

        The sender waiting with ``wait=True`` gets it. Completing twice raises ``CompletionError``.
        """
        if self.completed:
            raise CompletionError(f"message {self.id} was already completed")
        await self._instance.complete(self, response)

    def __repr__(self) -> str:
        return f"Message(id={self.id}, name={self.name!r}, attempt={self.attempt}, body={self.body!r})"


__all__ = ["Message"]
