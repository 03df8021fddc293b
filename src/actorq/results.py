"""Plain result types shared by the core, the server and both clients (no I/O, no imports of them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, Literal

from typing_extensions import TypeVar

Status = Literal["pending", "in_flight", "completed", "failed", "timed_out"]
R = TypeVar("R", default=Any)


@dataclass(frozen=True, slots=True)
class SendReceipt:
    """A message was accepted and is on disk. ``duplicate`` means the idempotency key matched."""

    id: int
    actor_id: str
    queue: str
    duplicate: bool = False


@dataclass(frozen=True, slots=True)
class SendResult(Generic[R]):
    """The outcome of a waited send or a result look-up.

    ``completed``: ``response`` holds the response (``None`` for a plain acknowledgement).
    ``failed``: dead-lettered; ``error`` says why. ``timed_out``: still queued or running; look it
    up later by ``id``. ``pending`` / ``in_flight``: a look-up that did not wait. ``attempt``: how
    many times the message was delivered so far (the handler's ``message.attempt``; 0 if never).

    ``R`` is what ``response`` may hold: ``Any`` for a send by queue name; for a send by queue
    reference (``queue(Body, Verdict)``) it is ``Verdict | None``, since only a completed message
    carries a response.
    """

    id: int
    status: Status
    response: R = None  # type: ignore[assignment]  # None until completed, whatever R is
    error: str | None = None
    attempt: int = 0
    actor_id: str = ""
    queue: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "completed"


@dataclass(frozen=True, slots=True)
class ActorInfo:
    actor_id: str
    name: str
    key: list[str]
    created: bool = False


@dataclass(frozen=True, slots=True)
class QueueInfo:
    queue: str
    pending: int
    delayed: int
    in_flight: int
    completed: int
    dead: int
    max_size: int


@dataclass(frozen=True, slots=True)
class DeadLetter:
    id: int
    queue: str
    body: Any
    attempt: int
    error: str | None
    created_at: float
    failed_at: float | None


@dataclass(frozen=True, slots=True)
class Event:
    """A broadcast from an actor (``c.broadcast(name, data)``) as seen by a connected client."""

    name: str
    data: Any = None
    extra: dict[str, Any] = field(default_factory=dict)
