"""The runtime's OpenTelemetry spans: a send's PRODUCER span is stored with its message and is the
parent of the handler's CONSUMER span, across a restart; the clients send the caller's span, the
server honours a ``traceparent`` from anyone."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from actorq import ActorContext, actor, queue, setup
from actorq.client import SyncClient
from actorq.storage.postgres import PostgresStorage
from tests.otel import named, one, spans
from tests.storage.conftest import PG_DSN, fresh_schema, pg_up

__all__ = ["spans"]  # the fixture

user = trace.get_tracer("tests")


async def run(c: ActorContext) -> None:
    async for m in c.queue.iter(completable=True):
        with user.start_as_current_span("inside the handler"):
            c.log.info("handling %s", m.id)
        await m.complete({"echo": m.body})


async def plain(c: ActorContext) -> None:
    async for m in c.queue.iter("p"):
        c.state = {"last": m.body}


async def hello(c: ActorContext, name: str) -> str:
    return f"hello {name}"


registry = setup(
    use={"echo": actor(queues={"q": queue(Any), "p": queue(Any)}, run=run, actions={"hello": hello})}
)


async def test_one_trace_from_a_client_send_through_the_handler(spans: InMemorySpanExporter) -> None:
    async with registry.test() as client:
        h = client.echo.get_or_create(["t"])
        await h.resolve()
        with user.start_as_current_span("user") as parent:
            r = await h.send("q", 1, wait=True, timeout=10)
            assert await h.hello("x") == "hello x"
        assert r.status == "completed" and r.response == {"echo": 1}
    tid = parent.get_span_context().trace_id
    send = one(spans, "send q")
    assert send.kind == SpanKind.PRODUCER and send.parent is not None
    assert send.parent.span_id == parent.get_span_context().span_id  # the user's span, via traceparent
    assert send.context.trace_id == tid
    attrs = dict(send.attributes or {})
    assert attrs["messaging.system"] == "actorq" and attrs["messaging.operation.type"] == "send"
    assert attrs["messaging.destination.name"] == "q" and attrs["messaging.message.id"] == str(r.id)
    assert attrs["actorq.actor"] == "echo" and "actorq.key" not in attrs
    process = one(spans, "process q")
    assert process.kind == SpanKind.CONSUMER and process.context.trace_id == tid
    assert process.parent is not None and process.parent.span_id == send.context.span_id
    pattrs = dict(process.attributes or {})
    assert pattrs["messaging.operation.type"] == "process" and pattrs["actorq.attempt"] == 1
    assert pattrs["messaging.message.id"] == str(r.id)
    inner = one(spans, "inside the handler")
    assert inner.parent is not None and inner.parent.span_id == process.context.span_id
    wait = one(spans, "wait")
    assert wait.context.trace_id == tid and dict(wait.attributes or {})["actorq.status"] == "completed"
    action = one(spans, "action hello")
    assert action.kind == SpanKind.SERVER and action.context.trace_id == tid


async def test_coalesced_sends_keep_each_callers_span(spans: InMemorySpanExporter) -> None:
    async with registry.test() as client:
        h = client.echo.get_or_create(["c"])
        await h.resolve()

        async def traced(i: int) -> int:
            with user.start_as_current_span(f"caller {i}") as span:
                await h.send("p", i)
                return span.get_span_context().span_id

        parents = await asyncio.gather(*(traced(i) for i in range(20)))
        for _ in range(200):
            if len(named(spans, "process p")) == 20:
                break
            await asyncio.sleep(0.02)
    sends = named(spans, "send p")
    assert sorted(s.parent.span_id for s in sends if s.parent) == sorted(parents)
    by_id = {s.context.span_id: s for s in sends}
    processed = named(spans, "process p")
    assert len(processed) == 20
    for p in processed:  # plain messages: the span ends when the next receive acknowledges it
        assert p.parent is not None and by_id[p.parent.span_id].context.trace_id == p.context.trace_id


async def test_a_traceparent_header_from_any_client_is_honoured(spans: InMemorySpanExporter) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    header = f"00-{trace_id}-00f067aa0ba902b7-01"
    async with registry.test() as client:
        h = client.echo.get_or_create(["raw"])
        actor_id = await h.resolve()
        async with httpx.AsyncClient(base_url=client.url) as http:
            r = await http.post(
                f"/v1/actors/{actor_id}/queues/q/messages",
                json={"body": 5, "wait": True, "timeout": 10},
                headers={"traceparent": header, "tracestate": "vendor=x"},
            )
            assert r.status_code == 200, r.text
            bad = await http.post(
                f"/v1/actors/{actor_id}/queues/q/messages",
                json={"body": 6},
                headers={"traceparent": "00-zz-not-a-trace"},
            )
            assert bad.status_code == 201  # an invalid traceparent is ignored, not refused
    sends = named(spans, "send q")
    assert len(sends) == 2
    traced = [s for s in sends if s.context.trace_id == int(trace_id, 16)]
    assert len(traced) == 1 and traced[0].parent is not None and traced[0].parent.is_remote
    assert traced[0].context.trace_state.get("vendor") == "x"


def test_the_sync_client_sends_the_callers_span(spans: InMemorySpanExporter, tmp_path: Path) -> None:
    async def main() -> None:
        async with registry.test(storage=tmp_path) as client:
            url, actor_id = client.url, await client.echo.get_or_create(["s"]).resolve()

            def sync() -> int:
                with SyncClient(url) as sc, user.start_as_current_span("sync user") as span:
                    sc.echo.get_for_id(actor_id).send("q", 1)
                    return span.get_span_context().trace_id

            assert await asyncio.to_thread(sync) == one(spans, "send q").context.trace_id

    asyncio.run(main())


_PG_UP = pg_up()


@pytest.fixture(params=["sqlite", "postgres"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Any]]:
    """What each server of a test opens: the same SQLite directory, or the same PostgreSQL schema."""
    if request.param == "sqlite":
        yield lambda: tmp_path
        return
    if not _PG_UP:
        pytest.skip("PostgreSQL is not running")
    for schema in fresh_schema("trace_"):
        yield lambda name=schema: PostgresStorage(PG_DSN, schema=name)


async def test_the_handler_span_joins_the_send_after_a_restart(
    spans: InMemorySpanExporter, storage: Callable[[], Any]
) -> None:
    gate = asyncio.Event()

    async def stalled(c: ActorContext) -> None:
        await gate.wait()  # never: the message stays pending while this server runs

    before = setup(use={"echo": actor(queues={"q": queue(Any), "p": queue(Any)}, run=stalled)})
    async with before.test(storage=storage()) as client:
        h = client.echo.get_or_create(["r"])
        with user.start_as_current_span("sender"):
            receipt = await h.send("q", "later")
    send = one(spans, "send q")
    assert not named(spans, "process q")
    async with registry.test(storage=storage()) as client:
        r = await client.echo.get_or_create(["r"]).result(receipt.id, wait=True, timeout=20)
        assert r.status == "completed"
    process = one(spans, "process q")
    assert process.parent is not None and process.parent.span_id == send.context.span_id
    assert process.context.trace_id == send.context.trace_id


async def test_websocket_frames_carry_the_callers_span(spans: InMemorySpanExporter) -> None:
    async with registry.test() as client:
        h = client.echo.get_or_create(["ws"])
        async with await h.connect() as conn:
            with user.start_as_current_span("ws user") as parent:
                assert await conn.action("hello", "y") == "hello y"
                r = await conn.send("q", 2, wait=True, timeout=10)
            assert r["status"] == "completed"
            untraced = await conn.action("hello", "z")
            assert untraced == "hello z"
    tid = parent.get_span_context().trace_id
    actions = named(spans, "action hello")
    assert len(actions) == 2
    traced = [a for a in actions if a.context.trace_id == tid]
    assert len(traced) == 1 and traced[0].kind == SpanKind.SERVER
    assert traced[0].parent is not None and traced[0].parent.span_id == parent.get_span_context().span_id
    send = one(spans, "send q")
    assert send.context.trace_id == tid
    assert one(spans, "process q").parent.span_id == send.context.span_id  # type: ignore[union-attr]
