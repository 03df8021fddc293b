"""``/metrics``: every series moves by the right amount with the right labels (docs/observability.md).

The recorded series are per process and other tests' servers run in this process too, so each
test reads differences between two scrapes; the actor types here are this module's own, so no
other test moves their label sets. Queue depths are read from this test's own storage, so they are
absolute.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from actorq import ActorContext, actor, queue, setup
from actorq.client import AsyncClient
from actorq.core import METRICS_REGISTRY
from actorq.storage.protocol import QueueDepth, QueueStats
from actorq.storage.sqlite import SQLiteStorage

Labels = tuple[tuple[str, str], ...]
Scrape = dict[tuple[str, Labels], float]

HOLD = asyncio.Event()


async def relay_run(c: ActorContext) -> None:
    async for m in c.queue.iter():
        if m.name == "in":  # sends from inside an actor: to its own queue, and through a handle
            await c.queue.send("out", m.body)
            await c.actors.m_sink.get_or_create(["s"]).send("q", m.body)


async def sink_run(c: ActorContext) -> None:
    async for m in c.queue.iter():
        c.state["n"] = c.state.get("n", 0) + 1
        if m.name == "slow":
            await asyncio.sleep(0.3)


async def sink_count(c: ActorContext) -> int:
    return int(c.state.get("n", 0))


async def echo_run(c: ActorContext) -> None:
    async for m in c.queue.iter(completable=True):
        await m.complete(m.body)


async def poison_run(c: ActorContext) -> None:
    async for _ in c.queue.iter(completable=True):
        raise RuntimeError("poison")


async def holder_run(c: ActorContext) -> None:
    async for m in c.queue.iter(completable=True):
        await HOLD.wait()
        await m.complete(None)


async def add(c: ActorContext, a: int, b: int) -> int:
    await asyncio.sleep(0.05)
    return a + b


async def boom(c: ActorContext) -> None:
    raise ValueError("boom")


registry = setup(
    use={
        "m_relay": actor(queues={"in": queue(Any), "out": queue(Any)}, run=relay_run),
        "m_sink": actor(
            queues={"q": queue(Any), "slow": queue(Any)},
            run=sink_run,
            actions={"count": sink_count},
            state=dict,
        ),
        "m_echo": actor(queues={"ask": queue(Any, Any)}, run=echo_run),
        "m_poison": actor(queues={"work": queue(Any)}, run=poison_run, max_attempts=2, retry_backoff=0.01),
        "m_holder": actor(queues={"hold": queue(Any)}, run=holder_run),
        "m_parked": actor(queues={"p": queue(Any)}),  # no run loop: what is sent stays pending
        "m_calc": actor(actions={"add": add, "boom": boom}),
    }
)


@pytest.fixture
async def client() -> AsyncIterator[AsyncClient]:
    async with registry.test() as c:
        yield c


@pytest.fixture
async def http(client: AsyncClient) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=client.url, timeout=30) as h:
        yield h


async def scrape(http: httpx.AsyncClient) -> tuple[Scrape, str]:
    r = await http.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    out: Scrape = {}
    for family in text_string_to_metric_families(r.text):  # a real parser: the format is valid
        for s in family.samples:
            out[s.name, tuple(sorted(s.labels.items()))] = s.value
    return out, r.text


def value(m: Scrape, name: str, **labels: str) -> float:
    return m.get((name, tuple(sorted(labels.items()))), 0.0)


def delta(after: Scrape, before: Scrape, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


async def wait_for(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


def q(actor_type: str, name: str) -> dict[str, str]:
    return {"actor": actor_type, "queue": name}


async def test_messages_sent_anywhere_handled_and_timed(client: AsyncClient, http: httpx.AsyncClient) -> None:
    before, _ = await scrape(http)
    relay = client.m_relay.get_or_create(["r"])
    for i in range(2):  # coalesced by the client into batches
        await relay.send("in", i)
    r = await http.post(
        f"/v1/actors/{await relay.resolve()}/queues/in/messages", json={"body": 9}
    )  # one plain HTTP send
    assert r.status_code == 201, r.text
    sink = client.m_sink.get_or_create(["s"])
    conn = await sink.connect()
    try:
        await conn.send("slow", "over the WebSocket")
    finally:
        await conn.close()
    echo = client.m_echo.get_or_create(["e"])
    assert (await echo.send("ask", {"x": 1}, wait=True, timeout=10)).status == "completed"
    assert (await echo.send("ask", 2, wait=True, timeout=10, idempotency_key="once")).status == "completed"
    assert (await echo.send("ask", 2, wait=True, timeout=10, idempotency_key="once")).status == "completed"

    async def relayed() -> bool:
        return bool(await sink.count() == 4)

    await wait_for(relayed, "3 relayed messages and the WebSocket one handled")
    after, text = await scrape(http)

    sent = "actorq_messages_sent_total"
    assert delta(after, before, sent, **q("m_relay", "in")) == 3
    assert delta(after, before, sent, **q("m_relay", "out")) == 3, "c.queue.send inside the actor"
    assert delta(after, before, sent, **q("m_sink", "q")) == 3, "through c.actors handles"
    assert delta(after, before, sent, **q("m_sink", "slow")) == 1, "over the WebSocket"
    assert delta(after, before, sent, **q("m_echo", "ask")) == 2, "an idempotent retry is not a new message"

    async def settled() -> bool:
        m, _ = await scrape(http)
        return delta(m, before, "actorq_messages_completed_total", **q("m_relay", "out")) == 3

    await wait_for(settled, "relay's own out messages acknowledged")
    after, text = await scrape(http)
    done = "actorq_messages_completed_total"
    for labels, n in (
        (q("m_relay", "in"), 3),
        (q("m_relay", "out"), 3),
        (q("m_sink", "q"), 3),
        (q("m_sink", "slow"), 1),
        (q("m_echo", "ask"), 2),
    ):
        assert delta(after, before, done, **labels) == n, labels
        assert delta(after, before, "actorq_message_latency_seconds_count", **labels) == n, labels
        assert delta(after, before, "actorq_message_handling_seconds_count", **labels) == n, labels
        assert delta(after, before, "actorq_messages_failed_total", **labels) == 0
    # the slow one took its 0.3 s between receive and acknowledgement (the next receive)
    slow = q("m_sink", "slow")
    assert delta(after, before, "actorq_message_handling_seconds_sum", **slow) >= 0.3
    assert delta(after, before, "actorq_message_handling_seconds_bucket", le="0.25", **slow) == 0
    assert delta(after, before, "actorq_message_handling_seconds_bucket", le="0.5", **slow) == 1
    assert delta(after, before, "actorq_message_handling_seconds_bucket", le="+Inf", **slow) == 1
    assert_bounded_labels(text)


async def test_failures_redeliveries_and_dead_letters(client: AsyncClient, http: httpx.AsyncClient) -> None:
    before, _ = await scrape(http)
    poison = client.m_poison.get_or_create(["p"])
    result = await poison.send("work", "x", wait=True, timeout=10)
    assert result.status == "failed"
    after, text = await scrape(http)
    work = q("m_poison", "work")
    assert delta(after, before, "actorq_messages_sent_total", **work) == 1
    assert delta(after, before, "actorq_messages_failed_total", **work) == 2, "both attempts raised"
    assert delta(after, before, "actorq_messages_redelivered_total", **work) == 1, "attempt 2"
    assert delta(after, before, "actorq_messages_dead_lettered_total", **work) == 1
    assert delta(after, before, "actorq_messages_completed_total", **work) == 0
    assert delta(after, before, "actorq_message_latency_seconds_count", **work) == 2, "each delivery"
    assert delta(after, before, "actorq_message_handling_seconds_count", **work) == 2
    assert value(after, "actorq_queue_messages", state="dead", **work) == 1
    assert_bounded_labels(text)


async def test_actions_counted_and_timed_by_outcome(client: AsyncClient, http: httpx.AsyncClient) -> None:
    before, _ = await scrape(http)
    calc = client.m_calc.get_or_create(["c"])
    assert await calc.add(1, 2) == 3
    conn = await calc.connect()
    try:
        assert await conn.action("add", 2, 3) == 5  # over the WebSocket
    finally:
        await conn.close()
    r = await http.post(f"/v1/actors/{await calc.resolve()}/actions/boom", json={"args": []})
    assert r.status_code == 500
    after, text = await scrape(http)
    calls = "actorq_actions_total"
    assert delta(after, before, calls, actor="m_calc", action="add", outcome="ok") == 2
    assert delta(after, before, calls, actor="m_calc", action="add", outcome="error") == 0
    assert delta(after, before, calls, actor="m_calc", action="boom", outcome="error") == 1
    assert delta(after, before, "actorq_action_seconds_count", actor="m_calc", action="add") == 2
    assert delta(after, before, "actorq_action_seconds_sum", actor="m_calc", action="add") >= 0.1
    assert delta(after, before, "actorq_action_seconds_count", actor="m_calc", action="boom") == 1
    assert_bounded_labels(text)


async def test_queue_depths_read_from_storage_when_scraped(
    client: AsyncClient, http: httpx.AsyncClient
) -> None:
    HOLD.clear()
    parked = [client.m_parked.get_or_create([k]) for k in ("a", "b")]
    await parked[0].send("p", 1)
    await parked[1].send("p", 2)
    await parked[1].send("p", 3, delay=3600)
    holder = client.m_holder.get_or_create(["h"])
    await holder.send("hold", 1)

    async def held() -> bool:
        m, _ = await scrape(http)
        return value(m, "actorq_queue_messages", state="in_flight", **q("m_holder", "hold")) == 1

    await wait_for(held, "the holder to hold its message")
    m, text = await scrape(http)
    p = q("m_parked", "p")
    assert value(m, "actorq_queue_messages", state="pending", **p) == 2, "both keys of the type, summed"
    assert value(m, "actorq_queue_messages", state="delayed", **p) == 1
    assert value(m, "actorq_queue_messages", state="in_flight", **p) == 0
    assert value(m, "actorq_queue_messages", state="dead", **p) == 0
    assert ("actorq_queue_messages", (("actor", "m_echo"), ("queue", "ask"), ("state", "pending"))) in m, (
        "every declared queue is listed, empty ones with zeros"
    )
    assert value(m, "actorq_awake_actors") >= 1
    HOLD.set()

    async def drained() -> bool:
        m, _ = await scrape(http)
        return value(m, "actorq_queue_messages", state="in_flight", **q("m_holder", "hold")) == 0

    await wait_for(drained, "the holder to complete")
    assert_bounded_labels(text)


def assert_bounded_labels(text: str) -> None:
    """No label whose values have no bound (an actor's key or id), and no ``*_created`` series."""
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            assert not {"key", "actor_id", "id"} & set(s.labels), s
            assert not s.name.endswith("_created"), s.name
    assert "_created" not in text


class CountingStorage(SQLiteStorage):
    """Counts the queue figures asked of storage."""

    depth_queries = 0
    stats_queries = 0

    async def queue_depths(self, now: float) -> list[QueueDepth]:
        self.depth_queries += 1
        return await super().queue_depths(now)

    async def queue_stats(self, actor_id: str, now: float) -> list[QueueStats]:
        self.stats_queries += 1
        return await super().queue_stats(actor_id, now)


async def test_one_storage_query_per_scrape_however_many_actors(tmp_path: Path) -> None:
    storage = CountingStorage(tmp_path / "data")
    async with registry.test(storage=storage) as c, httpx.AsyncClient(base_url=c.url, timeout=30) as h:
        for n in range(20):
            await c.m_parked.get_or_create([f"k{n}"]).send("p", n)
        for _ in range(3):
            m, _ = await scrape(h)
        assert value(m, "actorq_queue_messages", state="pending", **q("m_parked", "p")) == 20
        assert (storage.depth_queries, storage.stats_queries) == (3, 0)


def test_other_registries_keep_their_created_series() -> None:
    """Only actorq's registry leaves ``*_created`` out; an application's own is as it made it."""
    mine = CollectorRegistry()
    Counter("app_things", "An application's own counter", registry=mine).inc()
    assert "app_things_created" in generate_latest(mine).decode()
    assert "_created" not in generate_latest(METRICS_REGISTRY).decode()
