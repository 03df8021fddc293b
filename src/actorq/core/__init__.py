"""The actor runtime: definitions, registry, instances, run-loop supervision and queues.

Owns: what an actor is and how its messages flow (one at a time, acknowledged, redelivered,
dead-lettered), sleep/wake, actions, scheduling and the wait registry. Talks to storage only
through ``actorq.storage.protocol``. Must not import ``actorq.server`` or ``actorq.client``
(``Registry.start/serve/test`` import the server lazily as entry points).
"""

from actorq.core.context import ActorContext
from actorq.core.definitions import ActorDefinition, QueueDefinition, actor, queue
from actorq.core.message import Message
from actorq.core.registry import Registry, setup
from actorq.core.runtime import Runtime, RuntimeConfig

__all__ = [
    "ActorContext",
    "ActorDefinition",
    "Message",
    "QueueDefinition",
    "Registry",
    "Runtime",
    "RuntimeConfig",
    "actor",
    "queue",
    "setup",
]
