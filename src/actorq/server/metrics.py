"""``/metrics``: renders the core's Prometheus registry, plus figures read when scraped.

The series themselves are recorded where things happen (the core's ``METRICS_REGISTRY``, which
the agent VM adds to); this module only renders them, with what is read at scrape time: awake
actors, queue depths (one aggregate storage query per scrape, over the whole storage: on
PostgreSQL every node reports the same database-wide figures) and, on shared storage, the node's
leases, forwarded actions and how well the driver's group commit batches (calls / statements).
See docs/observability.md for every series.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector

from actorq.core import METRICS_REGISTRY, Runtime
from actorq.storage import QueueDepth

log = logging.getLogger("actorq.server")


class _Scrape(Collector):
    """One scrape: the recorded series, then the runtime's figures of this moment."""

    def __init__(self, runtime: Runtime, depths: list[QueueDepth] | None) -> None:
        self.runtime = runtime
        self.depths = depths

    def collect(self) -> Iterator[Metric]:
        yield from METRICS_REGISTRY.collect()
        rt = self.runtime
        awake = GaugeMetricFamily("actorq_awake_actors", "Actors awake in this process")
        awake.add_metric([], rt.awake_count)
        yield awake
        if self.depths is not None:
            yield _depths(self.depths)
        yield from _cluster(rt)


def _depths(depths: list[QueueDepth]) -> Metric:
    family = GaugeMetricFamily(
        "actorq_queue_messages",
        "Messages not yet done, per actor type, queue and state (pending: ready now; delayed: not "
        "due yet; in_flight: held by a receiver; dead: in the dead letters), over the whole "
        "storage: on PostgreSQL every node reports the same database-wide figures (do not sum "
        "them across nodes)",
        labels=["actor", "queue", "state"],
    )
    for d in depths:
        for state, value in (
            ("pending", d.pending),
            ("delayed", d.delayed),
            ("in_flight", d.inflight),
            ("dead", d.dead),
        ):
            family.add_metric([d.name, d.queue, state], value)
    return family


def _cluster(rt: Runtime) -> Iterator[Metric]:
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


async def render(runtime: Runtime) -> tuple[bytes, str]:
    try:
        depths: list[QueueDepth] | None = await runtime.queue_depths()
    except Exception as exc:  # storage down: the recorded series are still worth answering with
        log.warning("/metrics: could not read queue depths: %r", exc)
        depths = None
    scrape = CollectorRegistry(auto_describe=False)
    scrape.register(_Scrape(runtime, depths))
    return generate_latest(scrape), CONTENT_TYPE_LATEST
