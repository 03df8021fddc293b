"""One trace from a client's span through a handler to a command it runs in an agent VM."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from actorq import ActorContext, actor, queue, setup
from actorq.agent_os import agent_os, software
from tests.otel import one, spans

__all__ = ["spans"]  # the fixture


async def run(c: ActorContext) -> None:
    async for m in c.queue.iter(completable=True):
        vm = c.actors.offline.get_or_create(["traced"])
        r = await vm.exec("echo $SECRET_TOKEN", env={"SECRET_TOKEN": "vm-secret-value"})
        await m.complete(r.stdout.strip())


registry = setup(
    use={
        "boss": actor(queues={"jobs": queue(Any)}, run=run),
        "offline": agent_os(software=[software.common], network=False, sleep_timeout=2.0),
    }
)
user = trace.get_tracer("tests")


async def test_a_vm_exec_inside_a_handler_is_in_the_senders_trace(
    spans: InMemorySpanExporter, tmp_path: Path
) -> None:
    async with registry.test(storage=tmp_path / "data") as client:
        boss = client.boss.get_or_create(["b"])
        await boss.resolve()
        with user.start_as_current_span("user") as root:
            r = await boss.send("jobs", "go", wait=True, timeout=60)
        assert r.status == "completed" and r.response == "vm-secret-value", r
    tid = root.get_span_context().trace_id
    send, process = one(spans, "send jobs"), one(spans, "process jobs")
    action, exec_ = one(spans, "action exec"), one(spans, "vm exec")
    assert {s.context.trace_id for s in (send, process, action, exec_)} == {tid}
    assert process.parent is not None and process.parent.span_id == send.context.span_id
    assert action.kind == SpanKind.INTERNAL
    assert action.parent is not None and action.parent.span_id == process.context.span_id
    assert exec_.parent is not None and exec_.parent.span_id == action.context.span_id
    assert dict(exec_.attributes or {})["process.exit.code"] == 0
    for s in (send, process, action, exec_):  # the env handed to the VM is in no span
        assert "vm-secret-value" not in repr(dict(s.attributes or {}))
