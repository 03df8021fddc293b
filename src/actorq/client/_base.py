"""What both clients share and that does no I/O: URLs, headers, request bodies, response and
error parsing, retry policy, and the lazy actor-handle bookkeeping (httpx's BaseClient shape)."""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar
from urllib.parse import quote

from pydantic_core import to_jsonable_python

from actorq._typing import adapter, encode_bytes
from actorq.errors import ActorqError, BadRequest, error_from_dict
from actorq.results import ActorInfo, DeadLetter, QueueInfo, SendReceipt, SendResult

Mode = Literal["get", "create", "get_or_create", "id"]
# Which failures a request may be retried after: "safe" (sends with an idempotency key, reads):
# any transport error or 503; "unsent": only when the request surely did not run (connect error, 503).
Retry = Literal["safe", "unsent"]

RETRY_FOR = 30.0  # seconds a client keeps retrying a request the server could not take
MAX_BATCH = 256  # plain sends coalesced into one batch request at most


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    json: Any = None
    params: dict[str, str] | None = None
    timeout: float | None = None
    retry: Retry = "safe"

    def body(self) -> bytes | None:
        if self.json is None:
            return None
        text = json.dumps(self.json, separators=(",", ":"), ensure_ascii=False)
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError:
            # a lone surrogate (not Unicode): sent as the escape it is, for the server to refuse
            # with a typed error naming the field, the same answer as for any other bad value
            return json.dumps(self.json, separators=(",", ":")).encode("ascii")


def to_json(value: Any) -> Any:
    """Bodies may be TypedDicts, dataclasses or pydantic models: send their JSON form."""
    return to_jsonable_python(value)


def parse_response(status: int, text: bytes) -> Any:
    """Decode a response body; raise the server's typed error for status >= 400."""
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
        if self.mode == "id":
            return Request("GET", f"/v1/actors/{quote(self.actor_id or '', safe='')}")
        return Request(
            "POST",
            "/v1/actors",
            {"name": self.name, "key": self.key, "mode": self.mode},
            retry="safe" if self.mode != "create" else "unsent",
        )

    def resolved(self, data: Any) -> str:
        info = ActorInfo(data["actor_id"], data["name"], list(data["key"]), bool(data.get("created", False)))
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
        payload: dict[str, Any] = {
            "body": to_json(body),
            "idempotency_key": idempotency_key or uuid.uuid4().hex,
        }
        if wait:
            payload["wait"] = True
        if block:
            payload["block"] = True
        if timeout is not None:
            payload["timeout"] = timeout
        if delay is not None:
            payload["delay"] = delay
        return Request(
            "POST",
            self.path("queues", queue, "messages"),
            payload,
            timeout=_http_timeout(wait or block, timeout, http_timeout),
        )

    def send_item(
        self, queue: str, body: Any, delay: float | None, idempotency_key: str | None
    ) -> dict[str, Any]:
        item: dict[str, Any] = {
            "queue": queue,
            "body": to_json(body),
            "idempotency_key": idempotency_key or uuid.uuid4().hex,
        }
        if delay is not None:
            item["delay"] = delay
        return item

    def single_send_request(self, item: dict[str, Any], http_timeout: float | None) -> Request:
        """A coalesced plain send that found nobody to share a batch with."""
        payload = {k: v for k, v in item.items() if k != "queue"}
        return Request("POST", self.path("queues", item["queue"], "messages"), payload, timeout=http_timeout)

    def result_request(
        self, msg_id: int, wait: bool, timeout: float | None, http_timeout: float | None
    ) -> Request:
        params = {"wait": "true" if wait else "false"}
        if timeout is not None:
            params["timeout"] = str(timeout)
        return Request(
            "GET",
            self.path("messages", msg_id),
            params=params,
            timeout=_http_timeout(wait, timeout, http_timeout),
        )

    def messages_request(self, status: str, limit: int) -> Request:
        return Request("GET", self.path("messages"), params={"status": status, "limit": str(limit)})

    def action_request(
        self, name: str, args: Sequence[Any], kwargs: dict[str, Any], http_timeout: float | None
    ) -> Request:
        body: dict[str, Any] = {"args": [encode_bytes(a) for a in args]}
        if kwargs:
            body["kwargs"] = {k: encode_bytes(v) for k, v in kwargs.items()}
        return Request(
            "POST",
            self.path("actions", name),
            body,
            timeout=http_timeout,
            retry="unsent",
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


def parse_send(
    data: Any, *, wait: bool, actor_id: str, queue: str, response_type: Any = None
) -> SendReceipt | SendResult:
    if not wait:
        return SendReceipt(
            id=int(data["id"]), actor_id=actor_id, queue=queue, duplicate=bool(data.get("duplicate"))
        )
    return parse_result(data, actor_id=actor_id, queue=queue, response_type=response_type)


def batch_request(items: Sequence[tuple[HandleCore, dict[str, Any]]], http_timeout: float | None) -> Request:
    """Plain sends to any actors in one request (``POST /v1/batch``); handles are resolved."""
    messages = [{"actor_id": core.actor_id, **item} for core, item in items]
    return Request("POST", "/v1/batch", {"messages": messages}, timeout=http_timeout)


def parse_batch(
    data: Any, *, items: Sequence[tuple[HandleCore, dict[str, Any]]]
) -> list[SendReceipt | ActorqError]:
    out: list[SendReceipt | ActorqError] = []
    for (core, item), r in zip(items, data["results"], strict=True):
        if "error" in r:
            out.append(error_from_dict(int(r.get("status", 500)), {"error": r["error"]}))
        else:
            out.append(
                SendReceipt(int(r["id"]), core.actor_id or "", item["queue"], bool(r.get("duplicate")))
            )
    return out


def parse_result(data: Any, *, actor_id: str, queue: str = "", response_type: Any = None) -> SendResult:
    response = data.get("response")
    if response_type is not None and response is not None and data.get("status") == "completed":
        ad = adapter(response_type)
        if ad is not None:
            response = ad.validate_python(response)
    return SendResult(
        id=int(data["id"]),
        status=data["status"],
        response=response,
        error=data.get("error"),
        attempt=int(data.get("attempt", 0)),
        actor_id=actor_id,
        queue=queue,
    )


def parse_queues(data: Any) -> list[QueueInfo]:
    return [QueueInfo(**q) for q in data["queues"]]


def parse_dead_letters(data: Any) -> list[DeadLetter]:
    return [DeadLetter(**d) for d in data["dead_letters"]]


def parse_actors(data: Any) -> list[ActorInfo]:
    return [ActorInfo(a["actor_id"], a["name"], list(a["key"])) for a in data["actors"]]


def base_url(url: str) -> str:
    url = url.rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"server URL must start with http:// or https://, got {url!r}")
    return url


def auth_headers(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}
