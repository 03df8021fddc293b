"""actorq: durable actors with queues that feed AI coding agents in sandboxed VMs.

The public surface: ``actor``, ``queue``, ``setup``, ``ActorContext`` and the errors.
"""

from actorq import errors
from actorq.core import ActorContext, Message, Registry, actor, queue, setup
from actorq.errors import (
    ActorError,
    ActorExists,
    ActorqError,
    BadRequest,
    CompletionError,
    Forbidden,
    MessageTooLarge,
    NotFound,
    QueueFull,
    Unauthorized,
    Unavailable,
    UnsupportedMediaType,
    ValidationError,
)
from actorq.results import SendReceipt, SendResult

__version__ = "0.1.0"

__all__ = [
    "ActorContext",
    "ActorError",
    "ActorExists",
    "ActorqError",
    "BadRequest",
    "CompletionError",
    "Forbidden",
    "Message",
    "MessageTooLarge",
    "NotFound",
    "QueueFull",
    "Registry",
    "SendReceipt",
    "SendResult",
    "Unauthorized",
    "Unavailable",
    "UnsupportedMediaType",
    "ValidationError",
    "actor",
    "errors",
    "queue",
    "setup",
]
