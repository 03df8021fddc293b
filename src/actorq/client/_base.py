"""What both clients share and that does no I/O: URLs, headers, request bodies, response and
error parsing, retry policy, and the lazy actor-handle bookkeeping (httpx's BaseClient shape).

Every body and frame is one of :mod:`actorq.protocol`'s shapes: requests are built (and so
checked) with its request models, answers are read with its answer types.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar, cast
from urllib.parse import quote

from opentelemetry import propagate
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError
from pydantic_core import to_jsonable_python

from actorq import protocol, vm_types
from actorq._typing import QueueRef, adapter, encode_bytes, queue_name
from actorq.errors import ActorqError, BadRequest, error_from_dict
from actorq.results import ActorInfo, DeadLetter, QueueInfo, SendReceipt, SendResult

Mode = Literal["get", "create", "get_or_create", "id"]
# Which failures a request may be retried after: "safe" (sends with an idempotency key, reads):
# any transport error or 503; "unsent": only when the request surely did not run (connect error, 503).
Retry = Literal["safe", "unsent"]

RETRY_FOR = 30.0  # seconds a client keeps retrying a request the server could not take
MAX_BATCH = 256  # plain sends coalesced into one batch request at most

M = TypeVar("M", bound=BaseModel)
_W3C = TraceContextTextMapPropagator()


def trace_headers() -> dict[str, str] | None:
    """The current trace context as headers (the configured propagators: W3C ``traceparent`` and
    ``tracestate`` by default), so the caller's own span is the parent of what the server does.
    ``None`` outside any span (nothing to send)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier or None


def trace_fields() -> dict[str, str]:
    """The current span as W3C ``traceparent`` / ``tracestate`` fields, for what has no headers
    of its own (a coalesced send, a WebSocket frame); empty outside any span."""
    carrier: dict[str, str] = {}
    _W3C.inject(carrier)
    return carrier


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    payload: BaseModel | None = None  # the body: one of the protocol's request models
    params: dict[str, str] | None = None
    timeout: float | None = None
    retry: Retry = "safe"
    answer: Any = None  # the protocol's answer type the reply is read as (None: any JSON)
    # the trace context of the code that built the request (a user's span): its parent
    headers: dict[str, str] | None = field(default_factory=trace_headers)

    def body(self) -> bytes | None:
        return None if self.payload is None else protocol.encode(self.payload)


def _new_key() -> str:
    """A fresh idempotency key: 128 random bits as 32 hex digits (what ``uuid4().hex`` gives,
    at a fifth of its cost: every send makes one)."""
    return os.urandom(16).hex()


def to_json(value: Any) -> Any:
    """Bodies may be TypedDicts, dataclasses or pydantic models: their JSON form."""
    return to_jsonable_python(value)


def checked(what: str, build: Callable[[], M]) -> M:
    """A request model built from the caller's values: a field the server's model would refuse
    is refused here, with the :class:`BadRequest` the server would answer (nothing is sent)."""
    try:
        return build()
    except PydanticValidationError as exc:
        raise protocol.invalid(what, exc) from None


def parse_response(status: int, text: bytes, answer: Any = None) -> Any:
    """Decode a response body (as ``answer``, when given); raise the server's typed error for
    status >= 400."""
    if status < 400 and answer is not None:
        return protocol.read(answer, text)
    try:
        data = json.loads(text) if text else None
    except ValueError:
        data = text.decode("utf-8", "replace")
    if status >= 400:
        raise error_from_dict(status, data)
    return data


def retry_delay(err: BaseException, attempt: int) -> float:
    delay: float = min(0.05 * 2**attempt, 2.0)
    if isinstance(err, ActorqError) and err.retry_after is not None:
        delay = min(err.retry_after, 5.0)
    return delay


def should_retry(req: Request, err: BaseException, *, connect_failed: bool) -> bool:
    if isinstance(err, ActorqError):
        return err.retryable
    return connect_failed or req.retry == "safe"


def _key(key: str | Sequence[str]) -> list[str]:
    if isinstance(key, str):
        return [key]
    out = list(key)
    if not all(isinstance(k, str) for k in out):
        raise BadRequest("an actor key is a list of strings")
    return out


H = TypeVar("H")


class Accessor(Generic[H]):
    """``client.<actor type>``: makes lazy handles (async or sync, per ``make``)."""

    def __init__(self, name: str, make: Callable[[HandleCore], H]) -> None:
        self._name = name
        self._make = make

    def get_or_create(self, key: str | Sequence[str]) -> H:
        return self._make(HandleCore(self._name, key, "get_or_create"))

    def get(self, key: str | Sequence[str]) -> H:
        return self._make(HandleCore(self._name, key, "get"))

    def create(self, key: str | Sequence[str]) -> H:
        return self._make(HandleCore(self._name, key, "create"))

    def get_for_id(self, actor_id: str) -> H:
        return self._make(HandleCore(self._name, None, "id", actor_id))


class HandleCore:
    """State of a lazy handle: which actor it names, and its id once resolved."""

    def __init__(
        self, name: str, key: str | Sequence[str] | None, mode: Mode, actor_id: str | None = None
    ) -> None:
        self.name = name
        self.key = _key(key) if key is not None else None
        self.mode = mode
        self.actor_id = actor_id
        self._prefix: str | None = None
        self._quoted_id = ""

    def resolve_request(self) -> Request:
        mode = self.mode
        if mode == "id":
            return Request("GET", f"/v1/actors/{quote(self.actor_id or '', safe='')}", answer=protocol.Actor)
        name, key = self.name, self.key or []
        payload = checked(
            "ResolveActor request", lambda: protocol.ResolveActor(name=name, key=key, mode=mode)
        )
        retry: Retry = "safe" if mode != "create" else "unsent"
        return Request("POST", "/v1/actors", payload, retry=retry, answer=protocol.Actor)

    def resolved(self, data: protocol.Actor) -> str:
        info = ActorInfo(data["actor_id"], data["name"], list(data["key"]), data.get("created", False))
        if info.name != self.name:
            raise ActorqError(f"actor {info.actor_id} is a {info.name!r}, not a {self.name!r}")
        self.actor_id = info.actor_id
        self.key = info.key
        self.mode = "get"
        return info.actor_id

    def path(self, *parts: str | int) -> str:
        assert self.actor_id is not None
        if self._prefix is None or not self._prefix.endswith(self._quoted_id):
            self._quoted_id = quote(self.actor_id, safe="")
            self._prefix = f"/v1/actors/{self._quoted_id}"
        return "/".join((self._prefix, *(quote(str(p), safe="") for p in parts)))

    def send_request(
        self,
        queue: str,
        body: Any,
        *,
        wait: bool,
        timeout: float | None,
        block: bool,
        delay: float | None,
        idempotency_key: str | None,
        http_timeout: float | None,
    ) -> Request:
        key = idempotency_key or _new_key()
        payload = checked(
            "SendMessage request",
            lambda: protocol.SendMessage(
                body=body,
                wait=bool(wait),
                timeout=timeout,
                block=bool(block),
                delay=delay,
                idempotency_key=key,
            ),
        )
        return Request(
            "POST",
            self.path("queues", queue, "messages"),
            payload,
            timeout=_http_timeout(wait or block, timeout, http_timeout),
            answer=protocol.MessageResult if wait else protocol.SendAccepted,
        )

    def send_item(
        self, queue: str, body: Any, delay: float | None, idempotency_key: str | None
    ) -> protocol.AddressedItem:
        """A plain send to go out with others (``POST /v1/batch``); ``body`` is taken as it is now."""
        assert self.actor_id is not None
        try:
            return protocol.AddressedItem(
                actor_id=self.actor_id,
                queue=queue,
                body=to_json(body),
                delay=delay,
                idempotency_key=idempotency_key or _new_key(),
                **trace_fields(),  # sent in another task, with others: the context rides inside
            )
        except PydanticValidationError as exc:  # as checked(), inline: every coalesced send comes here
            raise protocol.invalid("AddressedItem request", exc) from None

    def single_send_request(self, item: protocol.AddressedItem, http_timeout: float | None) -> Request:
        """A coalesced plain send that found nobody to share a batch with."""
        payload = protocol.SendMessage(body=item.body, delay=item.delay, idempotency_key=item.idempotency_key)
        trace = {"traceparent": item.traceparent} if item.traceparent else None
        if trace is not None and item.tracestate:
            trace["tracestate"] = item.tracestate
        return Request(
            "POST",
            self.path("queues", item.queue, "messages"),
            payload,
            timeout=http_timeout,
            answer=protocol.SendAccepted,
            headers=trace,
        )

    def result_request(
        self, msg_id: int, wait: bool, timeout: float | None, http_timeout: float | None
    ) -> Request:
        params = {"wait": protocol.QUERY_TRUE[0] if wait else protocol.QUERY_FALSE[0]}
        if timeout is not None:
            params["timeout"] = str(timeout)
        return Request(
            "GET",
            self.path("messages", msg_id),
            params=params,
            timeout=_http_timeout(wait, timeout, http_timeout),
            answer=protocol.MessageResult,
        )

    def messages_request(self, status: str, limit: int) -> Request:
        params = {"status": status, "limit": str(limit)}
        return Request("GET", self.path("messages"), params=params, answer=protocol.MessageList)

    def state_request(self) -> Request:
        return Request("GET", self.path("state"), answer=protocol.ActorState)

    def queues_request(self) -> Request:
        return Request("GET", self.path("queues"), answer=protocol.QueueList)

    def dead_letters_request(self, limit: int) -> Request:
        params = {"limit": str(limit)}
        return Request("GET", self.path("dead-letters"), params=params, answer=protocol.DeadLetterList)

    def retry_dead_request(self, msg_id: int) -> Request:
        return Request("POST", self.path("dead-letters", msg_id, "retry"), answer=protocol.Done)

    def delete_dead_request(self, msg_id: int) -> Request:
        return Request("DELETE", self.path("dead-letters", msg_id), answer=protocol.Done)

    def action_request(
        self, name: str, args: Sequence[Any], kwargs: dict[str, Any], http_timeout: float | None
    ) -> Request:
        payload = checked(
            "CallAction request",
            lambda: protocol.CallAction(
                args=[encode_bytes(a) for a in args], kwargs={k: encode_bytes(v) for k, v in kwargs.items()}
            ),
        )
        return Request(
            "POST",
            self.path("actions", name),
            payload,
            timeout=http_timeout,
            retry="unsent",
            answer=protocol.ActionResult,
        )


_LONGEST_WAIT = 366 * 86400.0


def _http_timeout(waits: bool, timeout: float | None, http_timeout: float | None) -> float | None:
    if not (
        isinstance(timeout, (int, float))
        and not isinstance(timeout, bool)
        and math.isfinite(timeout)
        and 0 <= timeout <= _LONGEST_WAIT
    ):
        timeout = None  # not a usable number: the server refuses it at once with a typed error
    if waits:
        # the server answers timed_out itself; leave it room to say so
        return None if timeout is None else timeout + 30.0
    return timeout if timeout is not None else http_timeout


def list_actors_request(
    name: str | None, limit: int, after: str | None, key_prefix: str | None = None
) -> Request:
    params = {"limit": str(limit)}
    if name:
        params["name"] = name
    if after:
        params["after"] = after
    if key_prefix:
        params["key_prefix"] = key_prefix
    return Request("GET", "/v1/actors", params=params, answer=protocol.ActorList)


def nodes_request(limit: int) -> Request:
    return Request("GET", "/v1/cluster/nodes", params={"limit": str(limit)}, answer=protocol.NodeList)


def health_request() -> Request:
    return Request("GET", "/healthz", answer=protocol.Health)


def parse_receipt(data: protocol.SendAccepted, *, actor_id: str, queue: str) -> SendReceipt:
    return SendReceipt(data["id"], actor_id, queue, data["duplicate"])


def queue_body(queue: str | QueueRef[Any, Any], body: Any) -> Any:
    """The body to send: by reference, validated against the queue's body type here (the server's
    answer to a bad one, without sending it) and in its JSON form."""
    return body if isinstance(queue, str) else queue.dump_body(body)


def parse_send(
    data: Any, *, wait: bool, actor_id: str, queue: str | QueueRef[Any, Any], response_type: Any = None
) -> SendReceipt | SendResult[Any]:
    name = queue_name(queue)
    if not wait:
        return parse_receipt(data, actor_id=actor_id, queue=name)
    load = None if isinstance(queue, str) else queue.load_response
    return parse_result(data, actor_id=actor_id, queue=name, response_type=response_type, load=load)


def action_result(data: protocol.ActionResult | protocol.ResultFrame) -> Any:
    """An action's result: bytes decoded, and a VM result rebuilt as the type its answer names."""
    return vm_types.decode_result(data["result"], data.get("result_type"))


def batch_request(
    items: Sequence[tuple[HandleCore, protocol.AddressedItem]], http_timeout: float | None
) -> Request:
    """Plain sends to any actors in one request (``POST /v1/batch``)."""
    payload = protocol.SendAny(messages=[item for _, item in items])
    # each item carries its own sender's trace context; the batch's task has none of its own
    return Request(
        "POST", "/v1/batch", payload, timeout=http_timeout, answer=protocol.BatchResults, headers=None
    )


def parse_batch(
    data: protocol.BatchResults, *, items: Sequence[tuple[HandleCore, protocol.AddressedItem]]
) -> list[SendReceipt | ActorqError]:
    out: list[SendReceipt | ActorqError] = []
    for (_, item), r in zip(items, data["results"], strict=True):
        if "error" in r:
            failed = cast(protocol.ItemFailed, r)
            out.append(error_from_dict(failed["status"], protocol.ErrorAnswer(error=failed["error"])))
        else:
            out.append(SendReceipt(r["id"], item.actor_id, item.queue, r["duplicate"]))
    return out


def parse_result(
    data: protocol.MessageResult,
    *,
    actor_id: str,
    queue: str = "",
    response_type: Any = None,
    load: Callable[[Any], Any] | None = None,
) -> SendResult[Any]:
    """``load``: a queue reference's response decoder (``response_type`` is the older way to say it)."""
    response = data["response"]
    if response is not None and data["status"] == "completed":
        if load is not None:
            response = load(response)
        elif response_type is not None:
            ad = adapter(response_type)
            if ad is not None:
                response = ad.validate_python(response)
    return SendResult(
        id=data["id"],
        status=data["status"],
        response=response,
        error=data["error"],
        attempt=data["attempt"],
        actor_id=actor_id,
        queue=queue,
    )


def parse_queues(data: protocol.QueueList) -> list[QueueInfo]:
    return [QueueInfo(**q) for q in data["queues"]]


def parse_dead_letters(data: protocol.DeadLetterList) -> list[DeadLetter]:
    return [DeadLetter(**d) for d in data["dead_letters"]]


def parse_actors(data: protocol.ActorList) -> list[ActorInfo]:
    return [ActorInfo(a["actor_id"], a["name"], a["key"]) for a in data["actors"]]


def next_page(data: protocol.ActorList, found: int, limit: int, key_prefix: str | None) -> str | None:
    """Where a listing filtered by key prefix goes on (a page may stop short of ``limit`` with
    more to come: the server reads a bounded number of actors per request); ``None``: done."""
    if key_prefix is None or found >= limit:
        return None
    return data.get("next_after")


def parse_messages(data: protocol.MessageList) -> list[dict[str, Any]]:
    return [dict(m) for m in data["messages"]]


def action_frame(
    frame_id: int, name: str, args: Sequence[Any], kwargs: dict[str, Any]
) -> protocol.ActionFrame:
    return checked(
        "action frame",
        lambda: protocol.ActionFrame(
            type="action",
            id=frame_id,
            name=name,
            args=[encode_bytes(a) for a in args],
            kwargs={k: encode_bytes(v) for k, v in kwargs.items()} or None,
            **trace_fields(),
        ),
    )


def send_frame(frame_id: int, queue: str, body: Any, wait: bool, timeout: float | None) -> protocol.SendFrame:
    return checked(
        "send frame",
        lambda: protocol.SendFrame(
            type="send", id=frame_id, queue=queue, body=body, wait=wait, timeout=timeout, **trace_fields()
        ),
    )


def base_url(url: str) -> str:
    url = url.rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"server URL must start with http:// or https://, got {url!r}")
    return url


def auth_headers(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}
