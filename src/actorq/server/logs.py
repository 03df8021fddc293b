"""Logging hygiene: the bearer token never reaches a log line.

The clients send the token in the ``Authorization`` header, which nothing logs; a WebSocket may
still carry the older ``?token=`` form, and uvicorn writes request paths with their query strings
(its access log, and the WebSocket lines it logs on ``uvicorn.error``), so those are redacted.
"""

from __future__ import annotations

import logging
import re

_SECRETS = re.compile(
    r"(?P<lead>[?&]token=|actorq\.token\.|\bbearer\s+)[^&#\s\"',]*",
    re.IGNORECASE,
)
REDACTED = "[redacted]"


def redact(text: str) -> str:
    """``text`` with the token blanked wherever it can travel: ``?token=`` / ``&token=`` in a
    query string, an ``actorq.token.`` WebSocket subprotocol, a ``Bearer`` credential."""
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
