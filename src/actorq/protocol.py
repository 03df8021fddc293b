"""The wire protocol's shapes, each defined once, for the server and both clients alike
(docs/protocol.md describes them; the server's OpenAPI document is generated from them).

Requests (HTTP bodies, and WebSocket frames from a client) are pydantic models: the server
validates hostile input with them (strict types, no unknown fields, limits checked), the clients
build their requests with the same models, so a value the server would refuse is refused before
it is sent. Answers (HTTP bodies, and WebSocket frames from the server) are TypedDicts: the server
builds them as plain dicts at no cost, the clients read them with one adapter each, straight from
the bytes, filling in the optional fields and ignoring those they do not know (a newer server may
send more).

Imports only pydantic and the other shared leaves (:mod:`actorq.errors`, :mod:`actorq.results`,
:mod:`actorq._typing`, :mod:`actorq.vm_types`): never the server, core, storage or client packages.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Annotated, Any, Literal, NotRequired, TypeVar, cast

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, ValidationInfo, with_config
from pydantic import ValidationError as PydanticValidationError
from pydantic_core import PydanticCustomError, PydanticSerializationError
from typing_extensions import TypedDict

from actorq import results, vm_types
from actorq._typing import encode_bytes, pydantic_errors
from actorq.errors import ActorqError, BadRequest

# -- limits ------------------------------------------------------------------------------------
MAX_DELAY = 366 * 24 * 3600.0  # seconds: a message may be delayed by at most 366 days
MAX_KEY_BYTES = 1024  # an actor key's parts together, in UTF-8
MAX_LIMIT = 1000  # page size of the list routes
MAX_BATCH_ITEMS = 1000  # items of one batch request
MAX_ID = 2**63 - 1  # message ids are positive 64-bit integers
MAX_TEXT = 200  # actor ids and idempotency keys, in characters

QUERY_TRUE = ("true", "1", "yes")  # how a query parameter says true (``wait``) ...
QUERY_FALSE = ("false", "0", "no")  # ... and false
HEADER_KEY_PATTERN = r"^[\x21-\x7e]+$"  # an ``Idempotency-Key`` header: visible ASCII


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise PydanticCustomError("string_nul", "String should not contain NUL (\\u0000)")
    return value


_CONTROL = re.compile("[\x00-\x1f\x7f]")


def _no_control(value: str) -> str:
    if _CONTROL.search(value):
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
    # only the server knows its max_wait (validation context); a client leaves the check to it
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
# W3C trace context of the caller's span, for what has no HTTP headers of its own (an item of a
# batch, a WebSocket frame); one that is not valid is ignored, as W3C says
TraceParent = Annotated[str, Field(max_length=512, description="W3C traceparent of the caller's span")]
TraceState = Annotated[str, Field(max_length=512, description="W3C tracestate, with traceparent")]


# -- requests ----------------------------------------------------------------------------------
class _Envelope(BaseModel):
    # strict: no "5" for 5, no true for 1, no 1 for true. NaN and infinities are written as the
    # non-JSON constants they are (as json.dumps does), for the server to refuse by name.
    model_config = ConfigDict(extra="forbid", strict=True, ser_json_inf_nan="constants")


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
    traceparent: TraceParent | None = None
    tracestate: TraceState | None = None


class SendBatch(_Envelope):
    messages: list[BatchItem] = Field(
        min_length=1, max_length=MAX_BATCH_ITEMS, description="plain sends, in order"
    )


class AddressedItem(BatchItem):
    actor_id: ActorId = Field(description="the actor this message is for")


class SendAny(_Envelope):
    messages: list[AddressedItem] = Field(
        min_length=1, max_length=MAX_BATCH_ITEMS, description="plain sends to any actors, in order"
    )


class CallAction(_Envelope):
    args: list[Any] = Field(default_factory=list, description="positional arguments after the context")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="keyword arguments")


# WebSocket frames, client -> server
class ActionFrame(_Envelope):
    type: Literal["action"]
    id: Any = Field(default=None, description="echoed in the answer")
    name: str
    args: list[Any] = Field(default_factory=list)
    kwargs: dict[str, Any] | None = None
    traceparent: TraceParent | None = None
    tracestate: TraceState | None = None


class SendFrame(_Envelope):
    type: Literal["send"]
    id: Any = Field(default=None, description="echoed in the answer")
    queue: str
    body: Any = None
    wait: bool = False
    timeout: Timeout | None = None
    idempotency_key: IdempotencyKey | None = None
    traceparent: TraceParent | None = None
    tracestate: TraceState | None = None


FRAMES: dict[str, type[ActionFrame | SendFrame]] = {"action": ActionFrame, "send": SendFrame}

M = TypeVar("M", bound=BaseModel)


def invalid(what: str, exc: PydanticValidationError) -> BadRequest:
    """The 400 for input that fails a request model, ``details`` naming each bad field."""
    return BadRequest(f"invalid {what}", details=pydantic_errors(exc))


def validate(model: type[M], data: Any, what: str, max_wait: float | None = None) -> M:
    """``data`` (decoded JSON) as ``model``, or :func:`invalid`. ``max_wait``: the largest
    ``timeout`` the server takes."""
    try:
        return model.model_validate(data, context={"max_wait": max_wait})
    except PydanticValidationError as exc:
        raise invalid(what, exc) from None


def encode(request: BaseModel) -> bytes:
    """A request's JSON, without the fields left at their defaults."""
    try:
        return request.__pydantic_serializer__.to_json(request, exclude_defaults=True)
    except PydanticSerializationError:
        # a lone surrogate (not Unicode): sent as the escape it is, for the server to refuse with
        # a typed error naming the field, the same answer as for any other bad value
        data = request.model_dump(mode="json", exclude_defaults=True)
        return json.dumps(data, separators=(",", ":")).encode("ascii")


# -- answers -----------------------------------------------------------------------------------
# The server's answers are exactly these (the OpenAPI document says so: no other properties, which
# the schemathesis run of the test suite holds it to); readers ignore what they do not know.
_answer = with_config(ConfigDict(json_schema_extra={"additionalProperties": False}))


@_answer
class Health(TypedDict):
    status: Literal["ok", "stopping"]
    awake_actors: Annotated[int, Field(ge=0)]


@_answer
class Actor(TypedDict):
    actor_id: str
    name: str
    key: list[str]
    created: Annotated[bool, Field(description="true only on the answer that created it (201)")]


@_answer
class Owner(TypedDict):
    node: str
    address: str | None


@_answer
class ActorDetail(Actor):
    awake: Annotated[bool, Field(description="awake in this server process")]
    owner: NotRequired[
        Annotated[
            Owner | None,
            Field(default=None, description="several nodes (PostgreSQL) only: the node that runs it now"),
        ]
    ]


@_answer
class ListedActor(Actor):
    awake: NotRequired[Annotated[bool, Field(default=False, description="awake in this server process")]]


@_answer
class ActorList(TypedDict):
    actors: list[ListedActor]
    next_after: NotRequired[
        Annotated[
            str | None,
            Field(
                default=None,
                description="pass as `after` for the next page; null when there is no more",
            ),
        ]
    ]


@_answer
class ActorState(TypedDict):
    state: Annotated[Any, Field(description="the actor's persisted state as JSON; null until first saved")]


@_answer
class ClusterNode(TypedDict):
    node: Annotated[str, Field(description="the node's id; 'local' for a server without a cluster")]
    address: str | None
    this_node: Annotated[bool, Field(description="the node that answered this request")]
    started_at: float | None
    heartbeat_at: float | None
    actor_count: Annotated[int, Field(ge=0, description="actors it runs now (holds a live lease on)")]
    actors: Annotated[list[str], Field(description="the first of them by actor id (at most `limit`)")]


@_answer
class NodeList(TypedDict):
    clustered: Annotated[bool, Field(description="several nodes share a PostgreSQL database")]
    nodes: list[ClusterNode]


@_answer
class QueueStats(TypedDict):
    queue: str
    pending: Annotated[int, Field(ge=0)]
    delayed: Annotated[int, Field(ge=0)]
    in_flight: Annotated[int, Field(ge=0)]
    completed: Annotated[int, Field(ge=0)]
    dead: Annotated[int, Field(ge=0)]
    max_size: Annotated[int, Field(ge=1)]


@_answer
class QueueList(TypedDict):
    queues: list[QueueStats]


@_answer
class SendAccepted(TypedDict):
    id: Annotated[int, Field(ge=1)]
    status: Literal["accepted"]
    duplicate: Annotated[bool, Field(description="the idempotency key was used before: that message's id")]


@_answer
class MessageResult(TypedDict):
    id: Annotated[int, Field(ge=1)]
    status: Literal["pending", "in_flight", "completed", "failed", "timed_out"]
    response: NotRequired[Annotated[Any, Field(default=None)]]
    attempt: Annotated[int, Field(ge=0)]
    error: NotRequired[
        Annotated[str | None, Field(default=None, description="why it failed (dead-lettered)")]
    ]


@_answer
class ErrorBody(TypedDict):
    code: str
    message: str
    details: NotRequired[Annotated[Any, Field(default=None)]]
    retry_after: NotRequired[Annotated[float | None, Field(default=None)]]


@_answer
class ItemFailed(TypedDict):
    error: ErrorBody
    status: Annotated[int, Field(ge=400, le=599)]


@_answer
class BatchResults(TypedDict):
    results: Annotated[list[SendAccepted | ItemFailed], Field(description="one per item, in order")]


@_answer
class PendingMessage(TypedDict):
    id: Annotated[int, Field(ge=1)]
    queue: str
    attempt: Annotated[int, Field(ge=0)]
    created_at: float
    available_at: float
    body: NotRequired[Annotated[Any, Field(default=None, description="the message's body")]]


@_answer
class MessageList(TypedDict):
    messages: list[PendingMessage]


RESULT_TYPE_DOC = (
    "the result's type when it is one of the agent VM's result types (e.g. 'ExecResult', "
    "'list[Session]'), so clients rebuild that object; absent for plain JSON results"
)


@_answer
class ActionResult(TypedDict):
    result: Annotated[Any, Field(description='the action\'s return value (bytes as {"$bytes": base64})')]
    result_type: NotRequired[Annotated[str, Field(max_length=MAX_TEXT, description=RESULT_TYPE_DOC)]]


@_answer
class DeadLetter(TypedDict):
    id: Annotated[int, Field(ge=1)]
    queue: str
    body: Any
    attempt: Annotated[int, Field(ge=0)]
    error: str | None
    created_at: float
    failed_at: float | None


@_answer
class DeadLetterList(TypedDict):
    dead_letters: list[DeadLetter]


@_answer
class Done(TypedDict):
    ok: Literal[True]


@_answer
class ErrorAnswer(TypedDict):
    error: ErrorBody


# WebSocket frames, server -> client
@_answer
class InitFrame(TypedDict):
    type: Literal["init"]
    actor_id: str


@_answer
class ResultFrame(TypedDict):
    type: Literal["result"]
    id: Any
    result: Any
    result_type: NotRequired[Annotated[str, Field(max_length=MAX_TEXT, description=RESULT_TYPE_DOC)]]


@_answer
class ErrorFrame(TypedDict):
    type: Literal["error"]
    id: Any
    error: ErrorBody


@_answer
class EventFrame(TypedDict):
    type: Literal["event"]
    name: str
    data: Any


ServerFrame = InitFrame | ResultFrame | ErrorFrame | EventFrame


# -- building answers from the runtime's results -------------------------------------------------
def error_body(err: ActorqError) -> ErrorBody:
    return cast(ErrorBody, err.to_dict())  # the error's own wire form (errors.py)


def action_result(value: Any) -> ActionResult:
    """An action's return value as its answer: bytes tagged, and the type of a VM result named."""
    out = ActionResult(result=encode_bytes(value))
    type_name = vm_types.result_type(value)
    if type_name is not None:
        out["result_type"] = type_name
    return out


def accepted(receipt: results.SendReceipt) -> SendAccepted:
    return SendAccepted(id=receipt.id, status="accepted", duplicate=receipt.duplicate)


def message_result(r: results.SendResult) -> MessageResult:
    out = MessageResult(id=r.id, status=r.status, response=r.response, attempt=r.attempt)
    if r.error is not None:
        out["error"] = r.error
    return out


def actor(info: results.ActorInfo) -> Actor:
    return Actor(actor_id=info.actor_id, name=info.name, key=info.key, created=info.created)


def queue_stats(q: results.QueueInfo) -> QueueStats:
    return QueueStats(
        queue=q.queue,
        pending=q.pending,
        delayed=q.delayed,
        in_flight=q.in_flight,
        completed=q.completed,
        dead=q.dead,
        max_size=q.max_size,
    )


def dead_letter(d: results.DeadLetter) -> DeadLetter:
    return DeadLetter(
        id=d.id,
        queue=d.queue,
        body=d.body,
        attempt=d.attempt,
        error=d.error,
        created_at=d.created_at,
        failed_at=d.failed_at,
    )


# -- reading answers -----------------------------------------------------------------------------
@functools.cache
def adapter(answer: Any) -> TypeAdapter[Any]:
    """The one adapter that reads ``answer`` (an answer type above), built on first use."""
    return TypeAdapter(answer)


def read(answer: Any, raw: bytes | str) -> Any:
    """An answer's JSON as ``answer``; :class:`ActorqError` if it is not one."""
    try:
        return adapter(answer).validate_json(raw)
    except PydanticValidationError as exc:
        what = getattr(answer, "__name__", "frame")
        problems = pydantic_errors(exc)[:3]
        raise ActorqError(f"unexpected answer from the server (expected {what}): {problems}") from None


@functools.cache
def _frames() -> TypeAdapter[ServerFrame]:
    return TypeAdapter(Annotated[ServerFrame, Field(discriminator="type")])


def read_frame(raw: bytes | str) -> ServerFrame:
    """A WebSocket frame from the server; :class:`ActorqError` if it is not one."""
    try:
        return _frames().validate_json(raw)
    except PydanticValidationError as exc:
        raise ActorqError(f"not a frame of this protocol: {pydantic_errors(exc)[:3]}") from None
