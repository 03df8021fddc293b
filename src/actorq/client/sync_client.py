"""The sync client (httpx): the same handles as the async client, blocking, over one pool.

Every request is built and parsed by ``_base``; this module only moves bytes. WebSocket
connections (``connect()``) are async-only.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, Concatenate, Literal, ParamSpec, cast, overload

import httpx
from typing_extensions import TypeVar

from actorq._typing import QueueRef, action_name, load_action_result, queue_name
from actorq.client import _base as b
from actorq.errors import ActorqError, Unavailable
from actorq.results import ActorInfo, DeadLetter, QueueInfo, SendReceipt, SendResult
from actorq.vm_types import SyncAgentOSActions

B = TypeVar("B", default=Any)
R = TypeVar("R", default=Any)
T = TypeVar("T")
P = ParamSpec("P")


class SyncClient:
    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        timeout: float | None = 30.0,
        action_timeout: float | None = None,
        retry_for: float = b.RETRY_FOR,
    ) -> None:
        self._url = b.base_url(url)
        self._timeout = timeout
        # actions are awaited like function calls (an agent prompt may take minutes): no HTTP
        # timeout unless asked for; plain requests keep ``timeout``
        self._action_timeout = action_timeout
        self._retry_for = retry_for
        self._http = httpx.Client(
            base_url=self._url,
            headers={**b.auth_headers(token), "Content-Type": "application/json"},
            timeout=None,
        )

    @property
    def url(self) -> str:
        return self._url

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, req: b.Request) -> Any:
        deadline = time.monotonic() + self._retry_for
        attempt = 0
        while True:
            connect_failed = False
            try:
                resp = self._http.request(
                    req.method,
                    req.path,
                    content=req.body(),
                    params=req.params,
                    timeout=req.timeout,
                    headers=req.headers,
                )
                return b.parse_response(resp.status_code, resp.content, req.answer)
            except ActorqError as exc:
                err: BaseException = exc
            except httpx.ConnectError as exc:
                err, connect_failed = exc, True
            except httpx.TransportError as exc:
                err = exc
            if not b.should_retry(req, err, connect_failed=connect_failed) or time.monotonic() >= deadline:
                if isinstance(err, ActorqError):
                    raise err
                raise Unavailable(f"cannot reach actorq at {self._url}: {err!r}") from err
            time.sleep(b.retry_delay(err, attempt))
            attempt += 1

    def agent_os(self, name: str = "vm") -> b.Accessor[SyncAgentOSHandle]:
        """Handles to the agent VM type registered as ``name``, with every built-in VM action a
        typed method (``client.vm`` works too, untyped)."""
        return b.Accessor(name, lambda core: SyncAgentOSHandle(self, core))

    def actor(self, name: str) -> b.Accessor[SyncActorHandle]:
        return b.Accessor(name, lambda core: SyncActorHandle(self, core))

    def __getattr__(self, name: str) -> b.Accessor[SyncActorHandle]:
        if name.startswith("_"):
            raise AttributeError(name)
        return self.actor(name)

    def list_actors(
        self,
        name: str | None = None,
        *,
        limit: int = 100,
        after: str | None = None,
        key_prefix: str | None = None,
    ) -> list[ActorInfo]:
        """Actors ordered by id (``after``: the last id of the previous page); ``key_prefix``: only
        those whose key, its parts joined by ``/``, starts with it (up to ``limit`` of them, however
        many requests that takes)."""
        found: list[ActorInfo] = []
        while True:
            data = self.request(b.list_actors_request(name, limit - len(found), after, key_prefix))
            found += b.parse_actors(data)
            after = b.next_page(data, len(found), limit, key_prefix)
            if after is None:
                return found

    def cluster_nodes(self, *, limit: int = 100) -> list[dict[str, Any]]:
        """The nodes serving the database (one, ``"local"``, without a cluster), each with up to
        ``limit`` of the actors it runs now."""
        return [dict(n) for n in (self.request(b.nodes_request(limit)))["nodes"]]

    def health(self) -> dict[str, Any]:
        return dict(self.request(b.health_request()))


class SyncActorHandle:
    def __init__(self, client: SyncClient, core: b.HandleCore) -> None:
        self._client = client
        self._core = core

    @property
    def actor_id(self) -> str | None:
        return self._core.actor_id

    def resolve(self) -> str:
        if self._core.mode != "get" or self._core.actor_id is None:
            self._core.resolved(self._client.request(self._core.resolve_request()))
        assert self._core.actor_id is not None
        return self._core.actor_id

    @overload
    def send(
        self,
        queue: QueueRef[B, R],
        body: B,
        *,
        wait: Literal[True],
        timeout: float | None = None,
        block: bool = False,
        delay: float | None = None,
        idempotency_key: str | None = None,
    ) -> SendResult[R | None]: ...

    @overload
    def send(
        self,
        queue: QueueRef[B, R],
        body: B,
        *,
        wait: Literal[False] = False,
        timeout: float | None = None,
        block: bool = False,
        delay: float | None = None,
        idempotency_key: str | None = None,
    ) -> SendReceipt: ...

    @overload
    def send(
        self,
        queue: str,
        body: Any = None,
        *,
        wait: Literal[False] = False,
        timeout: float | None = None,
        block: bool = False,
        delay: float | None = None,
        idempotency_key: str | None = None,
        response_type: Any = None,
    ) -> SendReceipt: ...

    @overload
    def send(
        self,
        queue: str,
        body: Any = None,
        *,
        wait: Literal[True],
        timeout: float | None = None,
        block: bool = False,
        delay: float | None = None,
        idempotency_key: str | None = None,
        response_type: Any = None,
    ) -> SendResult: ...

    def send(
        self,
        queue: str | QueueRef[Any, Any],
        body: Any = None,
        *,
        wait: bool = False,
        timeout: float | None = None,
        block: bool = False,
        delay: float | None = None,
        idempotency_key: str | None = None,
        response_type: Any = None,
    ) -> SendReceipt | SendResult[Any]:
        actor_id = self.resolve()
        name, body = queue_name(queue), b.queue_body(queue, body)
        req = self._core.send_request(
            name,
            body,
            wait=wait,
            timeout=timeout,
            block=block,
            delay=delay,
            idempotency_key=idempotency_key,
            http_timeout=self._client._timeout,
        )
        return b.parse_send(
            self._client.request(req), wait=wait, actor_id=actor_id, queue=queue, response_type=response_type
        )

    push = send

    @overload
    def result(
        self, message_id: int, queue: QueueRef[Any, R], *, wait: bool = False, timeout: float | None = None
    ) -> SendResult[R | None]: ...

    @overload
    def result(
        self,
        message_id: int,
        queue: None = None,
        *,
        wait: bool = False,
        timeout: float | None = None,
        response_type: Any = None,
    ) -> SendResult: ...

    def result(
        self,
        message_id: int,
        queue: QueueRef[Any, Any] | None = None,
        *,
        wait: bool = False,
        timeout: float | None = None,
        response_type: Any = None,
    ) -> SendResult[Any]:
        """Look up a message's result later (e.g. after a ``timed_out`` wait); given its queue
        (the reference), the response comes back as the queue's response type."""
        actor_id = self.resolve()
        data = self._client.request(
            self._core.result_request(message_id, wait, timeout, self._client._timeout)
        )
        load = None if queue is None else queue.load_response
        return b.parse_result(data, actor_id=actor_id, response_type=response_type, load=load)

    def action(self, name: str, *args: Any, **kwargs: Any) -> Any:
        self.resolve()
        data = self._client.request(
            self._core.action_request(name, args, kwargs, self._client._action_timeout)
        )
        return b.action_result(data)

    def call(
        self, action: Callable[Concatenate[Any, P], Awaitable[T]], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Call an action by reference: ``handle.call(approve, "reason")`` runs the action
        declared as ``actor(actions={"approve": approve})``, its arguments and result typed (the
        result rebuilt as the function's declared return type)."""
        result = self.action(action_name(action), *args, **kwargs)
        return cast(T, load_action_result(action, result))

    def persisted_state(self) -> Any:
        """The actor's persisted state as JSON (``None`` until first saved)."""
        self.resolve()
        return (self._client.request(self._core.state_request()))["state"]

    def queues(self) -> list[QueueInfo]:
        self.resolve()
        return b.parse_queues(self._client.request(self._core.queues_request()))

    def messages(self, status: str = "pending", limit: int = 100) -> list[dict[str, Any]]:
        self.resolve()
        return b.parse_messages(self._client.request(self._core.messages_request(status, limit)))

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        self.resolve()
        return b.parse_dead_letters(self._client.request(self._core.dead_letters_request(limit)))

    def retry_dead_letter(self, message_id: int) -> None:
        self.resolve()
        self._client.request(self._core.retry_dead_request(message_id))

    def delete_dead_letter(self, message_id: int) -> None:
        self.resolve()
        self._client.request(self._core.delete_dead_request(message_id))

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_"):
            raise AttributeError(name)

        def call(*args: Any, **kwargs: Any) -> Any:
            return self.action(name, *args, **kwargs)

        call.__name__ = name
        return call


class SyncAgentOSHandle(SyncActorHandle, SyncAgentOSActions):
    """A blocking handle to an agent VM with every built-in action a typed method
    (``create_sync_client(url).agent_os("vm").get_or_create(key)``)."""


def create_sync_client(
    url: str = "http://127.0.0.1:6420", token: str | None = None, **options: Any
) -> SyncClient:
    """A blocking client for the server at ``url``."""
    return SyncClient(url, token, **options)
