"""What a log line written inside user code is about: the actor and message being handled.

The core sets it when it hands a message (``c.queue.next()`` / ``iter()``) or an action to user
code; log formatters read it (:func:`current`) to add the actor and message to each line. It is a
context variable, so each task (a run loop, a request running an action) sees its own.
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LogScope:
    actor: str
    actor_id: str
    key: tuple[str, ...]
    message_id: int | None = None
    queue: str | None = None
    action: str | None = None


_scope: ContextVar[LogScope | None] = ContextVar("actorq_log_scope", default=None)


def current() -> LogScope | None:
    return _scope.get()


def enter(scope: LogScope | None) -> Token[LogScope | None]:
    return _scope.set(scope)


def leave(token: Token[LogScope | None]) -> None:
    _scope.reset(token)


__all__ = ["LogScope", "current", "enter", "leave"]
