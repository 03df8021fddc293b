"""The actor runtime: definitions, registry, instances, run-loop supervision and queues.

Owns: what an actor is and how its messages flow (one at a time, acknowledged, redelivered,
dead-lettered), sleep/wake, actions, scheduling, events, the wait registry, and where an actor runs
when several nodes share storage (its placement: this node, or the node that owns it).

Also records the runtime's Prometheus series (``metrics``) in one registry per process,
``METRICS_REGISTRY``, which the agent VM adds its own series to and the server renders.

This ``__init__`` is the core's facade: the server and the application object use the names
exported here and nothing under ``actorq.core.*``. Talks to storage only through
``actorq.storage``'s protocol types. Must not import ``actorq.server``, ``actorq.client``,
``actorq.agent_os``, ``actorq.cli`` or ``actorq.app``.
"""

from actorq.core.context import ActorContext
from actorq.core.definitions import ActorDefinition, QueueDefinition, actor, queue
from actorq.core.events import Subscriber
from actorq.core.http import UPGRADE as HTTP_UPGRADE
from actorq.core.http import Tunnel as HttpTunnel
from actorq.core.http import token_actor as http_token_actor
from actorq.core.http import token_head as http_token_head
from actorq.core.logcontext import LogScope
from actorq.core.logcontext import current as log_scope
from actorq.core.message import Message
from actorq.core.metrics import REGISTRY as METRICS_REGISTRY
from actorq.core.metrics import SECONDS_BUCKETS, MetricsRegistry
from actorq.core.placement import Forwarder, Owner
from actorq.core.registry import Registry
from actorq.core.runtime import NodeStats, Runtime, RuntimeConfig
from actorq.core.sending import Outgoing
from actorq.core.tracing import extract as extract_trace
from actorq.core.tracing import inject as inject_trace
from actorq.core.tracing import remote_context, tracer

__all__ = [
    "HTTP_UPGRADE",
    "METRICS_REGISTRY",
    "SECONDS_BUCKETS",
    "ActorContext",
    "ActorDefinition",
    "Forwarder",
    "HttpTunnel",
    "LogScope",
    "Message",
    "MetricsRegistry",
    "NodeStats",
    "Outgoing",
    "Owner",
    "QueueDefinition",
    "Registry",
    "Runtime",
    "RuntimeConfig",
    "Subscriber",
    "actor",
    "extract_trace",
    "http_token_actor",
    "http_token_head",
    "inject_trace",
    "log_scope",
    "queue",
    "remote_context",
    "tracer",
]
