"""The wire protocol's input, validated in one place: request envelopes and WebSocket frames
(pydantic models, also the OpenAPI schemas), path and query parameters, media types, JSON.

Hostile input is normal input: every value is checked before anything runs or is stored, and a
bad one is a typed 400 whose ``details`` name the field (``loc``: inside the JSON body, or
``["query" | "path" | "header", name]``). Numbers are finite and in range, strings are Unicode
(JSON escapes can spell lone surrogates, which no UTF-8 store takes), keys are lists of strings
without NUL of at most 1 KiB, ids fit in 64 bits.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo
from pydantic import ValidationError as PydanticValidationError
from pydantic_core import PydanticCustomError
from starlette.datastructures import QueryParams
from starlette.requests import Request

from actorq._typing import pydantic_errors
from actorq.errors import BadRequest, UnsupportedMediaType

# -- limits ------------------------------------------------------------------------------------
MAX_DELAY = 366 * 24 * 3600.0  # seconds: a message may be delayed by at most 366 days
MAX_KEY_BYTES = 1024  # an actor key's parts together, in UTF-8
MAX_LIMIT = 1000  # page size of the list routes
MAX_ID = 2**63 - 1  # message ids are positive 64-bit integers
MAX_TEXT = 200  # actor ids and idempotency keys, in characters


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise PydanticCustomError("string_nul", "String should not contain NUL (\\u0000)")
    return value


def _no_control(value: str) -> str:
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise PydanticCustomError("string_control", "String should not contain control characters")
    return value


def _key_size(value: list[str]) -> list[str]:
    size = sum(len(part.encode("utf-8")) for part in value)
    if size > MAX_KEY_BYTES:
        raise PydanticCustomError(
            "key_too_long",
            "An actor key should be at most {max} bytes of UTF-8 in total, not {size}",
            {"max": MAX_KEY_BYTES, "size": size},
        )
    return value


def _within_max_wait(value: float | None, info: ValidationInfo) -> float | None:
    limit = (info.context or {}).get("max_wait")
    if value is not None and limit is not None and value > limit:
        raise PydanticCustomError(
            "less_than_equal",
            "Input should be less than or equal to {le} (the server's max_wait)",
            {"le": limit},
        )
    return value


KeyPart = Annotated[str, AfterValidator(_no_nul), Field(json_schema_extra={"pattern": r"^[^\x00]*$"})]
Key = Annotated[
    list[KeyPart],
    AfterValidator(_key_size),
    Field(description=f"the actor's key, e.g. ['main']: strings without NUL, at most {MAX_KEY_BYTES} bytes"),
]
Delay = Annotated[
    float,
    Field(
        ge=0,
        le=MAX_DELAY,
        allow_inf_nan=False,
        description="deliver no earlier than this many seconds from now (at most 366 days)",
    ),
]
Timeout = Annotated[
    float,
    Field(ge=0, allow_inf_nan=False, description="seconds, at most the server's max_wait"),
    AfterValidator(_within_max_wait),
]
ActorId = Annotated[
    str,
    Field(min_length=1, max_length=MAX_TEXT, json_schema_extra={"pattern": r"^[^\x00-\x1f\x7f]+$"}),
    AfterValidator(_no_control),
]
IdempotencyKey = Annotated[
    str,
    Field(min_length=1, max_length=MAX_TEXT, json_schema_extra={"pattern": r"^[^\x00]+$"}),
    AfterValidator(_no_nul),
]


# -- request envelopes ------------------------------------------------------------------------
class _Envelope(BaseModel):
    # strict: no "5" for 5, no true for 1, no 1 for true
    model_config = ConfigDict(extra="forbid", strict=True)


class ResolveActor(_Envelope):
    name: str = Field(description="actor type, as registered with setup(use=...)")
    key: Key
    mode: Literal["get", "create", "get_or_create"] = "get_or_create"


class SendMessage(_Envelope):
    body: Any = Field(default=None, description="validated against the queue's body type")
    wait: bool = Field(default=False, description="wait for completion (request/response)")
    timeout: Timeout | None = Field(
        default=None, description="seconds to wait (wait/block; else bounds the request); None: max_wait"
    )
    block: bool = Field(default=False, description="wait for room when the queue is full")
    delay: Delay | None = None
    idempotency_key: IdempotencyKey | None = None


class BatchItem(_Envelope):
    queue: str
    body: Any = None
    delay: Delay | None = None
    idempotency_key: IdempotencyKey | None = None


class SendBatch(_Envelope):
    messages: list[BatchItem] = Field(min_length=1, max_length=1000, description="plain sends, in order")


class AddressedItem(BatchItem):
    actor_id: ActorId = Field(description="the actor this message is for")


class SendAny(_Envelope):
    messages: list[AddressedItem] = Field(
        min_length=1, max_length=1000, description="plain sends to any actors, in order"
    )


class CallAction(_Envelope):
    args: list[Any] = Field(default_factory=list, description="positional arguments after the context")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="keyword arguments")


# -- responses ---------------------------------------------------------------------------------
# The routes build these bodies as plain dicts (no per-request model cost); the models are their
# documentation (the OpenAPI schemas), which the schemathesis run in the test suite holds them to.
class _Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Health(_Answer):
    status: Literal["ok", "stopping"]
    awake_actors: int = Field(ge=0)


class Actor(_Answer):
    actor_id: str
    name: str
    key: list[str]
    created: bool = Field(description="true only on the answer that created it (201)")


class Owner(_Answer):
    node: str
    address: str | None


class ActorDetail(Actor):
    awake: bool = Field(description="awake in this server process")
    owner: Owner | None = Field(
        default=None, description="several nodes (PostgreSQL) only: the node that runs it now"
    )


class ActorList(_Answer):
    actors: list[Actor]


class QueueStats(_Answer):
    queue: str
    pending: int = Field(ge=0)
    delayed: int = Field(ge=0)
    in_flight: int = Field(ge=0)
    completed: int = Field(ge=0)
    dead: int = Field(ge=0)
    max_size: int = Field(ge=1)


class QueueList(_Answer):
    queues: list[QueueStats]


class SendAccepted(_Answer):
    id: int = Field(ge=1)
    status: Literal["accepted"]
    duplicate: bool = Field(description="the idempotency key was used before: that message's id")


class MessageResult(_Answer):
    id: int = Field(ge=1)
    status: Literal["pending", "in_flight", "completed", "failed", "timed_out"]
    response: Any = None
    attempt: int = Field(ge=0)
    error: str | None = Field(default=None, description="why it failed (dead-lettered)")


class ErrorBody(_Answer):
    code: str
    message: str
    details: Any = None
    retry_after: float | None = None


class ItemFailed(_Answer):
    error: ErrorBody
    status: int = Field(ge=400, le=599)


class BatchResults(_Answer):
    results: list[SendAccepted | ItemFailed] = Field(description="one per item, in order")


class PendingMessage(_Answer):
    id: int = Field(ge=1)
    queue: str
    attempt: int = Field(ge=0)
    created_at: float
    available_at: float


class MessageList(_Answer):
    messages: list[PendingMessage]


class ActionResult(_Answer):
    result: Any = Field(description='the action\'s return value (bytes as {"$bytes": base64})')


class DeadLetter(_Answer):
    id: int = Field(ge=1)
    queue: str
    body: Any
    attempt: int = Field(ge=0)
    error: str | None
    created_at: float
    failed_at: float | None


class DeadLetterList(_Answer):
    dead_letters: list[DeadLetter]


class Done(_Answer):
    ok: Literal[True]


class ErrorAnswer(_Answer):
    error: ErrorBody


# -- WebSocket frames (client -> server) ------------------------------------------------------
class ActionFrame(_Envelope):
    type: Literal["action"]
    id: Any = Field(default=None, description="echoed in the answer")
    name: str
    args: list[Any] = Field(default_factory=list)
    kwargs: dict[str, Any] | None = None


class SendFrame(_Envelope):
    type: Literal["send"]
    id: Any = Field(default=None, description="echoed in the answer")
    queue: str
    body: Any = None
    wait: bool = False
    timeout: Timeout | None = None
    idempotency_key: IdempotencyKey | None = None


_FRAMES: dict[Any, type[_Envelope]] = {"action": ActionFrame, "send": SendFrame}


def parse_frame(frame: Any, *, max_wait: float) -> ActionFrame | SendFrame:
    """A decoded WebSocket frame as its model; :class:`BadRequest` (with ``details``) if it is
    not one."""
    if not isinstance(frame, dict):
        raise BadRequest("a frame is a JSON object")
    kind = frame.get("type")
    model = _FRAMES.get(kind) if isinstance(kind, str) else None
    if model is None:
        what = repr(kind) if isinstance(kind, (str, int, float, bool)) or kind is None else "of that kind"
        raise BadRequest(
            f"unknown frame type {what}: 'action' or 'send'",
            details=[{"loc": ["type"], "msg": "Input should be 'action' or 'send'", "type": "literal_error"}],
        )
    out: ActionFrame | SendFrame = _validate(model, frame, f"{kind} frame", max_wait)
    return out


def _validate(model: type[_Envelope], data: Any, what: str, max_wait: float | None) -> Any:
    try:
        return model.model_validate(data, context={"max_wait": max_wait})
    except PydanticValidationError as exc:
        raise BadRequest(f"invalid {what}", details=pydantic_errors(exc)) from None


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


QUERY_TRUE = ("true", "1", "yes")
QUERY_FALSE = ("false", "0", "no")


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


HEADER_KEY_PATTERN = r"^[\x21-\x7e]+$"
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
    request: Request, model: type[_Envelope], *, optional: bool = False, max_wait: float | None = None
) -> Any:
    """The request's JSON body as ``model``; an empty body is the model's defaults if
    ``optional``. ``max_wait``: the largest ``timeout`` the server takes."""
    raw = await request.body()
    if not raw and optional:
        return model()
    return _validate(model, parse_json(raw), f"{model.__name__} request", max_wait)
