"""OpenTelemetry spans for the runtime's entry points (send, wait, action).

Only the OpenTelemetry *API* is used: with no SDK configured every span is a no-op. Configure an
SDK and exporter in the serving process (e.g. ``opentelemetry-instrument``) to export them.
"""

from __future__ import annotations

from opentelemetry import trace

tracer = trace.get_tracer("actorq")
