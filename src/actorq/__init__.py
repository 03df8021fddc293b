"""actorq: durable actors with queues that feed AI coding agents in sandboxed VMs.

The public surface: ``actor``, ``queue``, ``setup`` (which returns an :class:`App`),
``ActorContext`` and the errors. This package's modules are layered, each importing only those
below it (enforced by import-linter, see ``[tool.importlinter]`` in pyproject.toml): ``app``
(``setup``'s application object) above ``server`` and ``client``, above ``core``, above ``storage``;
``errors``, ``results``, ``_typing`` and ``vm_types`` are shared leaves that import none of them.
"""

from actorq import errors
from actorq._typing import QueueRef
from actorq._version import __version__
from actorq.app import App, setup
from actorq.core import ActorContext, Message, QueueDefinition, actor, queue
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

# what ``setup()`` returns, under the name it had before the application object had its own:
# ``registry: actorq.Registry = setup(...)`` keeps type-checking with ``registry.start()``
Registry = App

__all__ = [
    "ActorContext",
    "ActorError",
    "ActorExists",
    "ActorqError",
    "App",
    "BadRequest",
    "CompletionError",
    "Forbidden",
    "Message",
    "MessageTooLarge",
    "NotFound",
    "QueueDefinition",
    "QueueFull",
    "QueueRef",
    "Registry",
    "SendReceipt",
    "SendResult",
    "Unauthorized",
    "Unavailable",
    "UnsupportedMediaType",
    "ValidationError",
    "__version__",
    "actor",
    "errors",
    "queue",
    "setup",
]
