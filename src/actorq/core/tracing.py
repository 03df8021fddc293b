"""OpenTelemetry spans of the runtime, and the trace context that travels with a message.

Only the OpenTelemetry *API* is used: with no SDK configured every span is a no-op. actorq never
installs an SDK; configure one in the serving process (``opentelemetry-instrument``, or a
``TracerProvider`` set by the application) to export them. The tracer is a proxy looked up on
the global provider, so a provider configured after import is used.

Messaging spans follow OpenTelemetry's messaging conventions: a send is a PRODUCER span whose
context is stored with the message (a W3C ``traceparent``); the handler's work on that message is
a CONSUMER span whose parent is that stored context, whichever node handles it and however long
after (it survives restarts: it is in the database).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from actorq._version import __version__

tracer = trace.get_tracer("actorq", __version__)

SYSTEM = "actorq"
_W3C = TraceContextTextMapPropagator()
# a W3C traceparent as the propagator writes it (version 00); anything else read back is ignored
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")


def remote_context(traceparent: str | None, tracestate: str | None = None) -> otel_context.Context | None:
    """The context named by a W3C ``traceparent`` (and ``tracestate``) a caller sent, or ``None``
    when there is none or it is not valid (an invalid one is ignored, as the W3C spec says)."""
    if not traceparent:
        return None
    carrier = {"traceparent": traceparent}
    if tracestate:
        carrier["tracestate"] = tracestate
    ctx = _W3C.extract(carrier, context=otel_context.Context())
    return ctx if trace.get_current_span(ctx).get_span_context().is_valid else None


def traceparent_of(span: Span) -> str | None:
    """The W3C ``traceparent`` naming ``span`` (``None`` when it is not recording a real trace,
    e.g. with no SDK): what is stored with a message."""
    if not span.get_span_context().is_valid:
        return None
    carrier: dict[str, str] = {}
    _W3C.inject(carrier, context=trace.set_span_in_context(span, otel_context.Context()))
    return carrier.get("traceparent")


def stored_parent(traceparent: str | None) -> otel_context.Context:
    """The parent context for the CONSUMER span of a stored message: its send's span, or an empty
    context (a new trace) when the send was not traced or what is stored is not a traceparent."""
    if traceparent and _TRACEPARENT.match(traceparent):
        ctx = remote_context(traceparent)
        if ctx is not None:
            return ctx
    return otel_context.Context()


def entry_kind() -> SpanKind:
    """SERVER when the runtime is entered from outside (a request, no local span around it),
    INTERNAL when called from inside a span of this process (a handler calling another actor)."""
    sc = trace.get_current_span().get_span_context()
    return SpanKind.SERVER if not sc.is_valid or sc.is_remote else SpanKind.INTERNAL


def messaging(operation: str, queue: str, actor: str, actor_id: str, **extra: Any) -> dict[str, Any]:
    """Messaging attributes of one span. The actor's key is left out on purpose: keys may be a
    user's data (an email address, a tenant), the actor id names the same actor."""
    attrs: dict[str, Any] = {
        "messaging.system": SYSTEM,
        "messaging.operation.type": operation,
        "messaging.operation.name": operation,
        "messaging.destination.name": queue,
        "actorq.actor": actor,
        "actorq.actor_id": actor_id,
    }
    attrs.update({k: v for k, v in extra.items() if v is not None})
    return attrs


def start_consumer(
    actor: str, actor_id: str, queue: str, msg_id: int, attempt: int, traceparent: str | None
) -> Span:
    """The span of one message's handling, from hand-out to completion, acknowledgement or
    failure; a child of the span that sent it (see :func:`stored_parent`)."""
    return tracer.start_span(
        f"process {queue}",
        context=stored_parent(traceparent),
        kind=SpanKind.CONSUMER,
        attributes=messaging(
            "process",
            queue,
            actor,
            actor_id,
            **{"messaging.message.id": str(msg_id), "actorq.attempt": attempt},
        ),
    )


def end_span(span: Span, error: str | BaseException | None = None) -> None:
    if error is not None:
        if isinstance(error, BaseException):
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        else:
            span.set_status(Status(StatusCode.ERROR, error))
    span.end()


def make_current(span: Span | None) -> None:
    """Make ``span`` (``None``: no span) the current one in the calling task from now on, over
    whatever was current: a run loop's messages are handled one after the other in one task, and
    each must be the parent of what its handling does, never of the next message's."""
    ctx = otel_context.Context()
    if span is not None:
        ctx = trace.set_span_in_context(span, ctx)
    otel_context.attach(ctx)


def inject(carrier: dict[str, str]) -> dict[str, str]:
    """Write the current trace context into ``carrier`` (headers of a forwarded request)."""
    propagate.inject(carrier)
    return carrier


def extract(headers: Mapping[str, str]) -> otel_context.Context | None:
    """The context an incoming request's headers carry (the configured propagators, W3C trace
    context by default), or ``None`` when they name no valid trace."""
    ctx = propagate.extract(headers, context=otel_context.Context())
    return ctx if trace.get_current_span(ctx).get_span_context().is_valid else None


__all__ = [
    "end_span",
    "entry_kind",
    "extract",
    "inject",
    "make_current",
    "messaging",
    "remote_context",
    "start_consumer",
    "stored_parent",
    "traceparent_of",
    "tracer",
]
