"""The OpenTelemetry SDK for tests: one global TracerProvider per test process, exporting to memory.

actorq looks its tracer up on the global provider (as in production, where
``opentelemetry-instrument`` or the application sets it), so the tests set that provider, once:
OpenTelemetry refuses to replace it. Spans are recorded only while a test that asks for them
(the ``spans`` fixture) runs: the rest of the suite gets the cheap non-recording spans, and the
in-memory exporter does not grow with every message the suite sends.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult

_exporter: InMemorySpanExporter | None = None


class _Switch(Sampler):
    """Records every span while ``on``, none otherwise."""

    on = False

    def should_sample(
        self,
        parent_context: otel_context.Context | None,
        trace_id: int,
        name: str,
        kind: trace.SpanKind | None = None,
        attributes: Any = None,
        links: Sequence[trace.Link] | None = None,
        trace_state: trace.TraceState | None = None,
    ) -> SamplingResult:
        parent = trace.get_current_span(parent_context).get_span_context()
        state = parent.trace_state if parent.is_valid else None
        if not _Switch.on:
            return SamplingResult(Decision.DROP, None, state)
        return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes, state)

    def get_description(self) -> str:
        return "tests: on while a test records spans"


def exporter() -> InMemorySpanExporter:
    global _exporter
    if _exporter is None:
        _exporter = InMemorySpanExporter()
        provider = TracerProvider(sampler=_Switch())
        provider.add_span_processor(SimpleSpanProcessor(_exporter))
        trace.set_tracer_provider(provider)
        assert trace.get_tracer_provider() is provider, "another global TracerProvider was set first"
    return _exporter


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exp = exporter()
    exp.clear()
    _Switch.on = True
    try:
        yield exp
    finally:
        _Switch.on = False
        exp.clear()


def named(exp: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [s for s in exp.get_finished_spans() if s.name == name]


def one(exp: InMemorySpanExporter, name: str) -> ReadableSpan:
    found = named(exp, name)
    assert len(found) == 1, (name, [s.name for s in exp.get_finished_spans()])
    return found[0]
