"""The server's side of the wire protocol: a request's input checked before anything runs.

Hostile input is normal input: every value is checked before anything runs or is stored, and a
bad one is a typed 400 whose ``details`` name the field (``loc``: inside the JSON body, or
``["query" | "path" | "header", name]``). Here: JSON decoding (UTF-8, finite numbers, no lone
surrogates, which JSON escapes can spell and no UTF-8 store takes), request bodies and WebSocket
frames read into the request models of :mod:`actorq.protocol` (which check the fields: strict
types, keys of at most 1 KiB without NUL, ...), path, query and header parameters (ids fit in 64
bits), and the media type of a body.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel
from starlette.datastructures import QueryParams
from starlette.requests import Request

from actorq.errors import BadRequest, UnsupportedMediaType
from actorq.protocol import (
    FRAMES,
    HEADER_KEY_PATTERN,
    MAX_ID,
    MAX_KEY_BYTES,
    MAX_LIMIT,
    MAX_TEXT,
    QUERY_FALSE,
    QUERY_TRUE,
    ActionFrame,
    SendFrame,
    validate,
)

M = TypeVar("M", bound=BaseModel)


# -- WebSocket frames ------------------------------------------------------------------------------
def parse_frame(frame: Any, *, max_wait: float) -> ActionFrame | SendFrame:
    """A decoded WebSocket frame as its model; :class:`BadRequest` (with ``details``) if it is
    not one."""
    if not isinstance(frame, dict):
        raise BadRequest("a frame is a JSON object")
    kind = frame.get("type")
    model = FRAMES.get(kind) if isinstance(kind, str) else None
    if model is None:
        what = repr(kind) if isinstance(kind, (str, int, float, bool)) or kind is None else "of that kind"
        raise BadRequest(
            f"unknown frame type {what}: 'action' or 'send'",
            details=[{"loc": ["type"], "msg": "Input should be 'action' or 'send'", "type": "literal_error"}],
        )
    return validate(model, frame, f"{kind} frame", max_wait)


# -- path, query and header parameters --------------------------------------------------------
def _param_error(where: str, name: str, msg: str, kind: str) -> BadRequest:
    return BadRequest(
        f"invalid {where} parameter {name!r}: {msg}",
        details=[{"loc": [where, name], "msg": msg, "type": kind}],
    )


def check_query(params: QueryParams, allowed: frozenset[str]) -> None:
    """A route takes only its own query parameters, each at most once."""
    seen: set[str] = set()
    for name, _ in params.multi_items():
        if name not in allowed:
            known = ", ".join(sorted(allowed)) or "none"
            raise _param_error(
                "query", name, f"not a parameter of this route (it takes: {known})", "extra_forbidden"
            )
        if name in seen:
            raise _param_error("query", name, "given more than once", "extra_forbidden")
        seen.add(name)


_DIGITS = re.compile(r"[0-9]{1,19}")


def message_id(value: str, name: str = "msg_id") -> int:
    """A message id from the path: a positive integer that fits in 64 bits, digits only."""
    if not _DIGITS.fullmatch(value) or not 1 <= int(value) <= MAX_ID:
        raise _param_error("path", name, f"a message id is an integer from 1 to {MAX_ID}", "int_range")
    return int(value)


def actor_id(value: str, where: str = "path", name: str = "actor_id") -> str:
    """An actor id (from the path or a query): 1 to 200 characters, no control characters.
    Whether such an actor exists is the runtime's answer (404)."""
    if not 1 <= len(value) <= MAX_TEXT or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise _param_error(
            where,
            name,
            f"an actor id is 1 to {MAX_TEXT} characters without control characters",
            "string_type",
        )
    return value


def query_limit(params: Mapping[str, str], default: int = 100) -> int:
    raw = params.get("limit")
    if raw is None:
        return default
    if not _DIGITS.fullmatch(raw) or not 1 <= int(raw) <= MAX_LIMIT:
        raise _param_error("query", "limit", f"an integer from 1 to {MAX_LIMIT}", "int_range")
    return int(raw)


def query_bool(params: Mapping[str, str], name: str) -> bool:
    """``true``/``1``/``yes`` or ``false``/``0``/``no`` (absent: false)."""
    raw = params.get(name)
    if raw is None:
        return False
    if raw not in QUERY_TRUE and raw not in QUERY_FALSE:
        raise _param_error("query", name, "true or false (also 1/0, yes/no)", "bool_parsing")
    return raw in QUERY_TRUE


_NUMBER = re.compile(r"[0-9]+(\.[0-9]*)?([eE][+-]?[0-9]+)?|\.[0-9]+([eE][+-]?[0-9]+)?")


def query_seconds(params: Mapping[str, str], name: str, max_value: float) -> float | None:
    """A number of seconds from 0 to ``max_value``; absent: ``None``."""
    raw = params.get(name)
    if raw is None:
        return None
    value = float(raw) if _NUMBER.fullmatch(raw) else math.nan
    if not (math.isfinite(value) and 0 <= value <= max_value):
        raise _param_error("query", name, f"a number of seconds from 0 to {max_value:g}", "float_range")
    return value


def query_actor_id(params: Mapping[str, str], name: str) -> str | None:
    raw = params.get(name)
    return None if raw is None else actor_id(raw, "query", name)


def query_key_prefix(params: Mapping[str, str]) -> str | None:
    """``key_prefix``: 1 to 1024 characters without NUL (absent: ``None``)."""
    raw = params.get("key_prefix")
    if raw is None:
        return None
    if not 1 <= len(raw) <= MAX_KEY_BYTES or "\x00" in raw:
        raise _param_error(
            "query", "key_prefix", f"1 to {MAX_KEY_BYTES} characters without NUL", "string_pattern_mismatch"
        )
    return raw


_HEADER_KEY = re.compile(HEADER_KEY_PATTERN)


def header_idempotency_key(value: str | None) -> str | None:
    """The ``Idempotency-Key`` header: 1 to 200 visible ASCII characters (absent: ``None``)."""
    if value is None:
        return None
    if len(value) > MAX_TEXT or not _HEADER_KEY.match(value):
        raise _param_error(
            "header",
            "idempotency-key",
            f"1 to {MAX_TEXT} visible ASCII characters",
            "string_pattern_mismatch",
        )
    return value


# -- media types ----------------------------------------------------------------------------------
ACCEPTED_MEDIA_TYPES = ("application/json", "application/*+json")
_NO_BODY_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def is_json_media_type(value: str) -> bool:
    """``application/json`` or ``application/<something>+json``, with at most a UTF-8 charset
    (other parameters are ignored; the body is always read as UTF-8)."""
    media, *params = (part.strip() for part in value.split(";"))
    media = media.lower()
    if not (media == "application/json" or (media.startswith("application/") and media.endswith("+json"))):
        return False
    if media == "application/+json":
        return False
    for param in params:
        name, _, val = param.partition("=")
        if name.strip().lower() == "charset" and val.strip().strip('"').lower() not in ("utf-8", "utf8"):
            return False
    return True


def media_type_error(method: str, headers: Iterable[tuple[bytes, bytes]]) -> UnsupportedMediaType | None:
    """Why a request may not reach a JSON route, if it may not: a ``Content-Type`` that is not
    JSON, or a body without one. Requests without a body need no ``Content-Type``."""
    if method in _NO_BODY_METHODS:
        return None
    content_type: bytes | None = None
    has_body = False
    for name, value in headers:
        if name == b"content-type":
            content_type = value
        elif name == b"content-length":
            has_body = has_body or value.strip() != b"0"
        elif name == b"transfer-encoding":
            has_body = True
    accepted = {"accepted": list(ACCEPTED_MEDIA_TYPES)}
    if content_type is None:
        if not has_body:
            return None
        return UnsupportedMediaType(
            "a request body needs Content-Type: application/json", details={"content_type": None, **accepted}
        )
    text = content_type.decode("latin-1")
    if is_json_media_type(text):
        return None
    return UnsupportedMediaType(
        f"Content-Type {text!r} is not JSON: send application/json (UTF-8)",
        details={"content_type": text, **accepted},
    )


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_MAY_OVERFLOW = re.compile(rb"[eE]\+?[0-9]{3}|[0-9]{309}")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_MAX_PROBLEMS = 20


def _bad_values(data: Any) -> list[dict[str, Any]]:
    """Where a decoded JSON value holds a lone surrogate or a non-finite number (pydantic's
    error shape; no bad string is ever repeated in them)."""
    problems: list[dict[str, Any]] = []
    stack: list[tuple[tuple[Any, ...], Any]] = [((), data)]
    while stack and len(problems) < _MAX_PROBLEMS:
        loc, value = stack.pop()
        if isinstance(value, str):
            if _LONE_SURROGATE.search(value):
                problems.append(
                    {
                        "loc": list(loc),
                        "msg": "String should be Unicode text: it holds a lone surrogate (\\ud800-\\udfff)",
                        "type": "string_unicode",
                    }
                )
        elif isinstance(value, float):
            if not math.isfinite(value):
                problems.append(
                    {"loc": list(loc), "msg": "Input should be a finite number", "type": "finite_number"}
                )
        elif isinstance(value, list):
            stack.extend(((*loc, i), v) for i, v in reversed(list(enumerate(value))))
        elif isinstance(value, dict):
            for k, v in reversed(list(value.items())):
                if _LONE_SURROGATE.search(k):
                    problems.append(
                        {
                            "loc": list(loc),
                            "msg": "Object keys should be Unicode text: one holds a lone surrogate",
                            "type": "string_unicode",
                        }
                    )
                else:
                    stack.append(((*loc, k), v))
    return problems


def parse_json(raw: bytes | str, what: str = "request body") -> Any:
    """Decode JSON that may hold nothing but JSON: UTF-8, no NaN / Infinity (nor numbers that
    overflow to them), no lone surrogates. :class:`BadRequest` otherwise, with ``details``
    naming where."""
    if not raw:
        raise BadRequest(f"{what} is empty; expected JSON")
    suspicious = False

    def constant(name: str) -> float:
        nonlocal suspicious
        suspicious = True
        return float(name)

    def number(text: str) -> float:
        nonlocal suspicious
        value = float(text)
        if not math.isfinite(value):
            suspicious = True
        return value

    # only a literal with a 3-digit exponent or 309+ digits can overflow to infinity: keep the C
    # float parser for everything else
    scan = raw if isinstance(raw, bytes) else raw.encode("utf-8", "surrogatepass")
    big = _MAY_OVERFLOW.search(scan) is not None
    try:
        data = json.loads(raw, parse_constant=constant, parse_float=number if big else float)
    except UnicodeDecodeError as exc:
        raise BadRequest(f"{what} is not valid UTF-8: {exc.reason}") from None
    except ValueError as exc:
        raise BadRequest(f"malformed JSON: {exc}") from None
    except RecursionError:
        raise BadRequest("JSON nested too deeply") from None
    if suspicious or _SURROGATE_ESCAPE.search(scan):
        problems = _bad_values(data)
        if problems:
            raise BadRequest(f"{what} holds values JSON cannot carry faithfully", details=problems)
    return data


async def read_envelope(
    request: Request, model: type[M], *, optional: bool = False, max_wait: float | None = None
) -> M:
    """The request's JSON body as ``model``; an empty body is the model's defaults if
    ``optional``. ``max_wait``: the largest ``timeout`` the server takes."""
    raw = await request.body()
    if not raw and optional:
        return model()
    return validate(model, parse_json(raw), f"{model.__name__} request", max_wait)
