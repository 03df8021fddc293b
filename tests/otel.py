"""The OpenTelemetry SDK for tests: one global TracerProvider per test process, exporting to memory.

actorq looks its tracer up on the global provider (as in production, where
``opentelemetry-instrument`` or the application sets it), so the tests set that provider, once:
OpenTelemetry refuses to replace it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

_exporter: InMemorySpanExporter | None = None


def exporter() -> InMemorySpanExporter:
    global _exporter
    if _exporter is None:
        _exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(_exporter))
        trace.set_tracer_provider(provider)
        assert trace.get_tracer_provider() is provider, "another global TracerProvider was set first"
    return _exporter


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exp = exporter()
    exp.clear()
    yield exp
    exp.clear()


def named(exp: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [s for s in exp.get_finished_spans() if s.name == name]


def one(exp: InMemorySpanExporter, name: str) -> ReadableSpan:
    found = named(exp, name)
    assert len(found) == 1, (name, [s.name for s in exp.get_finished_spans()])
    return found[0]
