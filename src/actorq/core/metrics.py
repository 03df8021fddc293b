"""Prometheus series the runtime records as things happen; the server only renders them.

Every series lives in :data:`REGISTRY`, actorq's own registry for this process (not
``prometheus_client``'s default one, so an application's own metrics and settings are left
alone). Labels are only what the application declared: the actor type (``actor``), the queue or
action, an outcome; never an actor's key or id, whose number has no bound. Others record into the
same registry through the core's facade (the agent VM's series, the server's scrape-time gauges).

One process serves one runtime in production, so the series are per process: several runtimes in
one process (tests) add up in them; read differences, not absolute values.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterable, Iterator
from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.metrics_core import Metric

from actorq.storage.protocol import MessageRecord

# seconds: a millisecond hand-off up to a handler that runs for ten minutes
SECONDS_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
)  # fmt: skip


class MetricsRegistry(CollectorRegistry):
    """A registry without ``*_created`` samples (creation times of each label set: noise to most
    scrapers). ``prometheus_client.disable_created_metrics()`` would turn them off for every
    registry of the process, the application's too; this leaves the others as they are."""

    def collect(self) -> Iterator[Metric]:
        for metric in super().collect():
            created = metric.name + "_created"
            if any(s.name == created for s in metric.samples):
                metric = copy.copy(metric)
                metric.samples = [s for s in metric.samples if s.name != created]
            yield metric


REGISTRY = MetricsRegistry(auto_describe=True)

_TYPE_QUEUE = ("actor", "queue")

SENT = Counter(
    "actorq_messages_sent",
    "Messages stored by a send (HTTP, WebSocket, batch, or from inside an actor); duplicates of an "
    "idempotency key are not counted",
    _TYPE_QUEUE,
    registry=REGISTRY,
)
COMPLETED = Counter(
    "actorq_messages_completed",
    "Messages acknowledged (plain receive) or completed (completable receive)",
    _TYPE_QUEUE,
    registry=REGISTRY,
)
FAILED = Counter(
    "actorq_messages_failed",
    "Messages whose handler raised while holding them (each attempt counts)",
    _TYPE_QUEUE,
    registry=REGISTRY,
)
REDELIVERED = Counter(
    "actorq_messages_redelivered",
    "Deliveries after the first of a message (attempt 2 and later)",
    _TYPE_QUEUE,
    registry=REGISTRY,
)
DEAD_LETTERED = Counter(
    "actorq_messages_dead_lettered",
    "Messages moved to the dead letters after max_attempts",
    _TYPE_QUEUE,
    registry=REGISTRY,
)
LATENCY = Histogram(
    "actorq_message_latency_seconds",
    "Send to receive: from when a message was stored (or became due, if delayed) to when a "
    "receiver got it; each delivery counts",
    _TYPE_QUEUE,
    buckets=SECONDS_BUCKETS,
    registry=REGISTRY,
)
HANDLING = Histogram(
    "actorq_message_handling_seconds",
    "Receive to outcome: from when a receiver got a message to when it was acknowledged, completed or failed",
    _TYPE_QUEUE,
    buckets=SECONDS_BUCKETS,
    registry=REGISTRY,
)
ACTIONS = Counter(
    "actorq_actions",
    "Action calls where the actor runs (HTTP, WebSocket, other actors, schedules), by outcome "
    "(ok, or error: the action raised)",
    ("actor", "action", "outcome"),
    registry=REGISTRY,
)
ACTION_SECONDS = Histogram(
    "actorq_action_seconds",
    "How long action calls ran, where the actor runs",
    ("actor", "action"),
    buckets=SECONDS_BUCKETS,
    registry=REGISTRY,
)


def sent(actor: str, queue: str) -> None:
    """A message was stored (not a duplicate of an idempotency key)."""
    SENT.labels(actor, queue).inc()


def delivered(actor: str, queue: str, attempt: int, since: float) -> None:
    """A message was handed to a receiver (``since``: when it was stored, or became due)."""
    LATENCY.labels(actor, queue).observe(max(0.0, time.time() - since))
    if attempt > 1:
        REDELIVERED.labels(actor, queue).inc()


def handled(
    actor: str, queue: str, outcome: Literal["completed", "failed", "released"], seconds: float
) -> None:
    """A receiver is done with a message: ``released`` (put back without an outcome: ``run``
    returned without completing it, or the actor stopped mid-message) times nothing."""
    if outcome == "released":
        return
    HANDLING.labels(actor, queue).observe(seconds)
    (COMPLETED if outcome == "completed" else FAILED).labels(actor, queue).inc()


def dead_lettered(actor: str, queues: Iterable[str]) -> None:
    for queue in queues:
        DEAD_LETTERED.labels(actor, queue).inc()


def action(actor: str, name: str, outcome: Literal["ok", "error"], seconds: float) -> None:
    ACTIONS.labels(actor, name, outcome).inc()
    ACTION_SECONDS.labels(actor, name).observe(seconds)


class Handling:
    """The messages one actor instance holds, since when (for :func:`handled`)."""

    def __init__(self, actor: str) -> None:
        self.actor = actor
        self._held: dict[int, tuple[str, float]] = {}

    def received(self, records: Iterable[MessageRecord]) -> None:
        """Messages handed out (their delivery's attempt), from now on held."""
        now = time.monotonic()
        for r in records:
            delivered(self.actor, r.queue, r.attempt, max(r.created_at, r.available_at))
            self._held[r.id] = (r.queue, now)

    def done(self, ids: Iterable[int], outcome: Literal["completed", "failed", "released"]) -> None:
        now = time.monotonic()
        for msg_id in ids:
            held = self._held.pop(msg_id, None)
            if held is not None:
                handled(self.actor, held[0], outcome, now - held[1])

    def forget(self) -> None:
        """The lease is lost: what this node held is another node's to settle."""
        self._held.clear()


__all__ = [
    "REGISTRY",
    "SECONDS_BUCKETS",
    "Handling",
    "MetricsRegistry",
    "action",
    "dead_lettered",
    "delivered",
    "handled",
    "sent",
]
