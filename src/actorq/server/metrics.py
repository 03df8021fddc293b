"""Prometheus metrics served at ``/metrics`` (one registry per process).

Request counters are counted where requests are served; the rest is read from the runtime at
scrape time (:class:`RuntimeCollector`): awake actors, and on shared storage the node's leases,
forwarded actions and how well the driver's group commit batches (calls / statements).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric

if TYPE_CHECKING:
    from actorq.core import Runtime

REGISTRY = CollectorRegistry(auto_describe=True)
SENDS = Counter("actorq_sends", "Messages accepted over HTTP", registry=REGISTRY)
ACTIONS = Counter("actorq_actions", "Actions called over HTTP and WebSocket", registry=REGISTRY)
AWAKE = Gauge("actorq_awake_actors", "Actors awake in this process", registry=REGISTRY)


class RuntimeCollector:
    """Cluster and storage figures of the runtime this process serves, read when scraped."""

    def __init__(self) -> None:
        self.runtime: Runtime | None = None

    def collect(self) -> Iterator[Metric]:
        rt = self.runtime
        if rt is None:
            return
        cluster = rt.node_stats()
        if cluster is not None:
            info = InfoMetricFamily("actorq_cluster_node", "This server process as a node")
            info.add_metric([], {"node": cluster.node_id or "", "address": cluster.address or ""})
            yield info
            held = GaugeMetricFamily("actorq_cluster_leases_held", "Actors this node owns now")
            held.add_metric([], cluster.leases_held)
            yield held
            for name, doc, value in (
                ("actorq_cluster_leases_acquired", "Leases taken by this node", cluster.leases_acquired),
                ("actorq_cluster_leases_lost", "Leases lost (taken over, not renewed)", cluster.leases_lost),
                ("actorq_cluster_actions_forwarded", "Actions sent to the owner", cluster.actions_forwarded),
            ):
                counter = CounterMetricFamily(name, doc)
                counter.add_metric([], value)
                yield counter
        stats = getattr(rt.storage, "batch_stats", None)
        if callable(stats):
            batches = CounterMetricFamily(
                "actorq_storage_batches", "Statements sent by the driver's group commit", labels=["op"]
            )
            calls = CounterMetricFamily(
                "actorq_storage_batched_calls", "Calls those statements carried", labels=["op"]
            )
            for op, (n_batches, n_calls) in stats().items():
                batches.add_metric([op], n_batches)
                calls.add_metric([op], n_calls)
            yield batches
            yield calls


RUNTIME = RuntimeCollector()
REGISTRY.register(RUNTIME)


def render(runtime: Runtime) -> tuple[bytes, str]:
    AWAKE.set(runtime.awake_count)
    RUNTIME.runtime = runtime
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
