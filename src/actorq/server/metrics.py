"""Prometheus metrics served at ``/metrics`` (one registry per process)."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, generate_latest

REGISTRY = CollectorRegistry(auto_describe=True)
SENDS = Counter("actorq_sends", "Messages accepted over HTTP", registry=REGISTRY)
ACTIONS = Counter("actorq_actions", "Actions called over HTTP and WebSocket", registry=REGISTRY)
AWAKE = Gauge("actorq_awake_actors", "Actors awake in this process", registry=REGISTRY)


def render() -> tuple[bytes, str]:
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
