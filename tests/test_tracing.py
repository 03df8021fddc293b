"""The runtime's OpenTelemetry spans reach a configured SDK."""

from __future__ import annotations

from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from actorq import ActorContext, actor, queue, setup
from actorq.core import tracing

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))


async def run(c: ActorContext) -> None:
    async for m in c.queue.iter(completable=True):
        await m.complete({"echo": m.body})


async def hello(c: ActorContext, name: str) -> str:
    return f"hello {name}"


registry = setup(use={"echo": actor(queues={"q": queue(Any)}, run=run, actions={"hello": hello})})


async def test_send_wait_and_action_spans(monkeypatch: Any) -> None:
    monkeypatch.setattr(tracing, "tracer", provider.get_tracer("actorq"))
    monkeypatch.setattr("actorq.core.runtime.tracer", provider.get_tracer("actorq"))
    exporter.clear()
    async with registry.test() as client:
        h = client.echo.get_or_create(["t"])
        r = await h.send("q", 1, wait=True, timeout=10)
        assert r.status == "completed" and r.response == {"echo": 1}
        assert await h.hello("x") == "hello x"
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert {"actorq.send", "actorq.wait", "actorq.action"} <= set(spans)
    send = spans["actorq.send"]
    assert send.attributes is not None
    assert send.attributes["actorq.queue"] == "q"
    assert send.attributes["actorq.message_id"] == r.id
    wait = spans["actorq.wait"]
    assert wait.attributes is not None and wait.attributes["actorq.status"] == "completed"
    assert spans["actorq.action"].attributes is not None
    assert spans["actorq.action"].attributes["actorq.action"] == "hello"
    assert trace.get_tracer_provider() is not provider  # the global provider was left alone
