"""Logging: where lines go (:func:`configure_logging`, text or JSON) and the hygiene that keeps
the bearer token out of every line.

The clients send the token in the ``Authorization`` header, which nothing logs; a WebSocket may
still carry the older ``?token=`` form, and uvicorn writes request paths with their query strings
(its access log, and the WebSocket lines it logs on ``uvicorn.error``), so those are redacted.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from datetime import UTC, datetime
from typing import Any

from opentelemetry import trace

from actorq.core import log_scope

_SECRETS = re.compile(
    r"(?P<lead>[?&]token=|actorq\.token\.|\bbearer\s+)[^&#\s\"',]*",
    re.IGNORECASE,
)
REDACTED = "[redacted]"


_known: set[str] = set()  # the serving token itself: blanked wherever it shows up


def redact_value(secret: str) -> None:
    """Blank ``secret`` (the server's token) in every line from now on, wherever it appears."""
    if len(secret) >= 8:  # a shorter one would blank ordinary words; tokens are long
        _known.add(secret)


def redact(text: str) -> str:
    """``text`` with the token blanked wherever it can travel: ``?token=`` / ``&token=`` in a
    query string, an ``actorq.token.`` WebSocket subprotocol, a ``Bearer`` credential, and the
    serving token itself anywhere."""
    for secret in _known:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return _SECRETS.sub(lambda m: m.group("lead") + REDACTED, text)


def _redact_arg(arg: object) -> object:
    return redact(arg) if isinstance(arg, str) else arg


class RedactTokens(logging.Filter):
    """Blanks the token in uvicorn's log lines: its access log, and on ``uvicorn.error`` the
    WebSocket lines with their paths and, at debug level, the handshake headers the websockets
    library logs there (``Authorization``, ``Sec-WebSocket-Protocol``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_redact_arg(a) for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: _redact_arg(v) for k, v in record.args.items()}
        return True


def install_log_redaction() -> None:
    """Put :class:`RedactTokens` on the loggers uvicorn writes requests to (idempotent)."""
    for name in ("uvicorn.access", "uvicorn.error"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactTokens) for f in logger.filters):
            logger.addFilter(RedactTokens())


# -- where log lines go: one configuration for ``actorq serve`` and ``registry.start()`` -------------
LOG_FORMAT_ENV = "ACTORQ_LOG_FORMAT"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message; inside a handler or an action also
    the actor (name, id, key), the message or action, and the current trace and span ids."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        scope = log_scope()
        if scope is not None:
            out.update(actor=scope.actor, actor_id=scope.actor_id, key=list(scope.key))
            if scope.message_id is not None:
                out.update(message_id=scope.message_id, queue=scope.queue)
            if scope.action is not None:
                out["action"] = scope.action
        else:  # c.log outside a message or action (on_wake, a background task): its own fields
            for name in ("actor", "actor_id", "key"):
                if hasattr(record, name):
                    out[name] = getattr(record, name)
        sc = trace.get_current_span().get_span_context()
        if sc.is_valid:
            out["trace_id"] = format(sc.trace_id, "032x")
            out["span_id"] = format(sc.span_id, "016x")
        if record.exc_info:
            out["exception"] = redact(self.formatException(record.exc_info))
        elif record.exc_text:
            out["exception"] = redact(record.exc_text)
        return json.dumps(out, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """``TEXT_FORMAT`` lines; a traceback is redacted like the message (a header's repr in it)."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class _ActorqHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The stderr handler :func:`configure_logging` installs (found again by its type)."""


def log_format() -> str:
    fmt = (os.environ.get(LOG_FORMAT_ENV) or "text").strip().lower()
    if fmt not in ("text", "json"):
        raise ValueError(f"{LOG_FORMAT_ENV} must be 'text' or 'json', not {fmt!r}")
    return fmt


def configure_logging(level: str = "info") -> None:
    """Log to stderr at ``level``, as text lines or, with ``ACTORQ_LOG_FORMAT=json``, one JSON
    object per line (:class:`JsonFormatter`); the token is redacted from every line. What the
    application set up itself (a handler of its own on the root logger) is left alone; calling
    this again only changes the level and format."""
    root = logging.getLogger()
    fmt = log_format()
    ours = next((h for h in root.handlers if isinstance(h, _ActorqHandler)), None)
    if ours is None:
        if any(isinstance(h, logging.StreamHandler) for h in root.handlers):
            return
        ours = _ActorqHandler(sys.stderr)
        ours.addFilter(RedactTokens())
        root.addHandler(ours)
    ours.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root.setLevel(level.upper())


def uvicorn_log_config() -> dict[str, Any] | None:
    """What uvicorn should do with its own loggers: with JSON lines configured here, nothing
    (``None``: its lines reach the root handler and are JSON too); else its usual set-up."""
    ours = next((h for h in logging.getLogger().handlers if isinstance(h, _ActorqHandler)), None)
    if ours is not None and isinstance(ours.formatter, JsonFormatter):
        return None
    from uvicorn.config import LOGGING_CONFIG

    return LOGGING_CONFIG
