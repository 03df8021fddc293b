"""The async client (aiohttp): connection-pooled HTTP plus WebSocket connections to actors."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from types import TracebackType
from typing import Any, Concatenate, Literal, ParamSpec, cast, overload

import aiohttp
from typing_extensions import TypeVar

from actorq import protocol
from actorq._batching import AsyncBatcher
from actorq._typing import QueueRef, action_name, load_action_result, queue_name
from actorq.client import _base as b
from actorq.errors import ActorqError, Unavailable, error_from_dict
from actorq.results import ActorInfo, DeadLetter, Event, QueueInfo, SendReceipt, SendResult
from actorq.vm_types import AgentOSActions

B = TypeVar("B", default=Any)
R = TypeVar("R", default=Any)
T = TypeVar("T")
P = ParamSpec("P")


class AsyncClient:
    """``client = create_client(url)``; ``client.<actor>.get_or_create(key)`` gives a handle."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        timeout: float | None = 30.0,
        action_timeout: float | None = None,
        retry_for: float = b.RETRY_FOR,
        coalesce: bool = True,
    ) -> None:
        self._url = b.base_url(url)
        self._coalesce = coalesce
        self._token = token
        self._timeout = timeout
        # actions are awaited like function calls (an agent prompt may take minutes): no HTTP
        # timeout unless asked for; plain requests keep ``timeout``
        self._action_timeout = action_timeout
        self._retry_for = retry_for
        self._session: aiohttp.ClientSession | None = None
        # plain sends waiting to go out together (any actors; one batch request on the wire at a
        # time); a send whose caller gave up before its batch left still goes (drop_cancelled)
        self._sends: AsyncBatcher[tuple[b.HandleCore, protocol.AddressedItem], SendReceipt] = AsyncBatcher(
            self._send_items, max_batch=b.MAX_BATCH, max_inflight=1, drop_cancelled=False
        )

    @property
    def url(self) -> str:
        return self._url

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                headers={**b.auth_headers(self._token), "Content-Type": "application/json"},
                connector=aiohttp.TCPConnector(limit=256, ttl_dns_cache=300),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def request(self, req: b.Request) -> Any:
        """Send one request, retrying per its policy until ``retry_for`` seconds have passed."""
        session = self._get_session()
        deadline = time.monotonic() + self._retry_for
        attempt = 0
        timeout = aiohttp.ClientTimeout(total=req.timeout)
        body = req.body()
        while True:
            connect_failed = False
            try:
                async with session.request(
                    req.method,
                    self._url + req.path,
                    data=body,
                    params=req.params,
                    timeout=timeout,
                    headers=req.headers,
                ) as resp:
                    return b.parse_response(resp.status, await resp.read(), req.answer)
            except ActorqError as exc:
                err: BaseException = exc
            except aiohttp.ClientConnectorError as exc:
                err, connect_failed = exc, True
            except (TimeoutError, aiohttp.ClientError) as exc:
                err = exc
            if not b.should_retry(req, err, connect_failed=connect_failed) or time.monotonic() >= deadline:
                if isinstance(err, ActorqError):
                    raise err
                raise Unavailable(f"cannot reach actorq at {self._url}: {err!r}") from err
            await asyncio.sleep(b.retry_delay(err, attempt))
            attempt += 1

    def agent_os(self, name: str = "vm") -> b.Accessor[AgentOSHandle]:
        """Handles to the agent VM type registered as ``name``, with every built-in VM action a
        typed method (``client.vm`` works too, untyped)."""
        return b.Accessor(name, lambda core: AgentOSHandle(self, core))

    def actor(self, name: str) -> b.Accessor[ActorHandle]:
        return b.Accessor(name, lambda core: ActorHandle(self, core))

    def __getattr__(self, name: str) -> b.Accessor[ActorHandle]:
        if name.startswith("_"):
            raise AttributeError(name)
        return self.actor(name)

    async def list_actors(
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
            data = await self.request(b.list_actors_request(name, limit - len(found), after, key_prefix))
            found += b.parse_actors(data)
            after = b.next_page(data, len(found), limit, key_prefix)
            if after is None:
                return found

    async def cluster_nodes(self, *, limit: int = 100) -> list[dict[str, Any]]:
        """The nodes serving the database (one, ``"local"``, without a cluster), each with up to
        ``limit`` of the actors it runs now."""
        return [dict(n) for n in (await self.request(b.nodes_request(limit)))["nodes"]]

    async def health(self) -> dict[str, Any]:
        return dict(await self.request(b.health_request()))

    async def _coalesced(self, core: b.HandleCore, item: protocol.AddressedItem) -> SendReceipt:
        """Plain sends issued while an earlier batch is on the wire go out together as one batch
        request, whichever actors they are for (each item still durable before its own receipt,
        one handle's sends in the order issued). A lone send goes alone."""
        return await self._sends((core, item))

    async def _send_items(
        self, items: list[tuple[b.HandleCore, protocol.AddressedItem]]
    ) -> list[SendReceipt | ActorqError]:
        if len(items) == 1:
            core, item = items[0]
            data = await self.request(core.single_send_request(item, self._timeout))
            return [b.parse_receipt(data, actor_id=item.actor_id, queue=item.queue)]
        data = await self.request(b.batch_request(items, self._timeout))
        return b.parse_batch(data, items=items)


class ActorHandle:
    """A lazy handle to one actor: resolved on first use, then every call is one request."""

    def __init__(self, client: AsyncClient, core: b.HandleCore) -> None:
        self._client = client
        self._core = core
        self._lock = asyncio.Lock()

    @property
    def actor_id(self) -> str | None:
        return self._core.actor_id

    async def resolve(self) -> str:
        if self._core.mode != "get" or self._core.actor_id is None:
            async with self._lock:
                if self._core.mode != "get" or self._core.actor_id is None:
                    self._core.resolved(await self._client.request(self._core.resolve_request()))
        assert self._core.actor_id is not None
        return self._core.actor_id

    @overload
    async def send(
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
    async def send(
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
    async def send(
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
    async def send(
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

    async def send(
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
        """Send to ``queue``. With ``wait=True`` wait up to ``timeout`` s for the response."""
        actor_id = await self.resolve()
        name, body = queue_name(queue), b.queue_body(queue, body)
        if self._client._coalesce and not wait and not block:
            return await self._client._coalesced(
                self._core, self._core.send_item(name, body, delay, idempotency_key)
            )
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
        data = await self._client.request(req)
        return b.parse_send(data, wait=wait, actor_id=actor_id, queue=queue, response_type=response_type)

    push = send

    @overload
    async def result(
        self, message_id: int, queue: QueueRef[Any, R], *, wait: bool = False, timeout: float | None = None
    ) -> SendResult[R | None]: ...

    @overload
    async def result(
        self,
        message_id: int,
        queue: None = None,
        *,
        wait: bool = False,
        timeout: float | None = None,
        response_type: Any = None,
    ) -> SendResult: ...

    async def result(
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
        actor_id = await self.resolve()
        data = await self._client.request(
            self._core.result_request(message_id, wait, timeout, self._client._timeout)
        )
        load = None if queue is None else queue.load_response
        return b.parse_result(data, actor_id=actor_id, response_type=response_type, load=load)

    async def action(self, name: str, *args: Any, **kwargs: Any) -> Any:
        await self.resolve()
        data = await self._client.request(
            self._core.action_request(name, args, kwargs, self._client._action_timeout)
        )
        return b.action_result(data)

    async def call(
        self, action: Callable[Concatenate[Any, P], Awaitable[T]], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Call an action by reference: ``await handle.call(approve, "reason")`` runs the action
        declared as ``actor(actions={"approve": approve})``, its arguments and result typed (the
        result rebuilt as the function's declared return type)."""
        result = await self.action(action_name(action), *args, **kwargs)
        return cast(T, load_action_result(action, result))

    async def persisted_state(self) -> Any:
        """The actor's persisted state as JSON (``None`` until first saved)."""
        await self.resolve()
        return (await self._client.request(self._core.state_request()))["state"]

    async def queues(self) -> list[QueueInfo]:
        await self.resolve()
        return b.parse_queues(await self._client.request(self._core.queues_request()))

    async def messages(self, status: str = "pending", limit: int = 100) -> list[dict[str, Any]]:
        """Pending (or ``in_flight``) messages: id, queue, attempt, created_at, available_at, body."""
        await self.resolve()
        return b.parse_messages(await self._client.request(self._core.messages_request(status, limit)))

    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        await self.resolve()
        return b.parse_dead_letters(await self._client.request(self._core.dead_letters_request(limit)))

    async def retry_dead_letter(self, message_id: int) -> None:
        await self.resolve()
        await self._client.request(self._core.retry_dead_request(message_id))

    async def delete_dead_letter(self, message_id: int) -> None:
        await self.resolve()
        await self._client.request(self._core.delete_dead_request(message_id))

    async def connect(self, *, reconnect: bool = True) -> ActorConnection:
        """Open a WebSocket to this actor: low-latency actions and its event stream. If the server
        side ends it (node restarted or gone, actor moved: 1012), it is re-opened by itself (for up
        to the client's ``retry_for``) unless ``reconnect=False``; events broadcast meanwhile are
        missed, and calls in flight at that moment raise ``Unavailable``."""
        await self.resolve()
        conn = ActorConnection(self._client, self._core.path("connect"), reconnect=reconnect)
        await conn._open()
        return conn

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        if name.startswith("_"):
            raise AttributeError(name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            return await self.action(name, *args, **kwargs)

        call.__name__ = name
        return call


class AgentOSHandle(ActorHandle, AgentOSActions):
    """A handle to an agent VM with every built-in action a typed method
    (``client.agent_os("vm").get_or_create(key)``); results come back as their types."""


def _server_frame(raw: str | bytes) -> protocol.ServerFrame | None:
    """A frame from the server; ``None`` for one this client does not know."""
    try:
        return protocol.read_frame(raw)
    except ActorqError:
        return None


# close codes after which a connection is re-opened: going away, abnormal closure (no close frame:
# the server died), internal error, service restart (node gone, actor moved), try again later
_RECONNECT_ON = {1001, 1006, 1011, 1012, 1013}


class ActorConnection:
    """A WebSocket to one actor. ``async for event in conn`` yields broadcasts; actions are
    attributes (``await conn.increment(1)``) or ``await conn.action(name, *args)``."""

    def __init__(self, client: AsyncClient, path: str, *, reconnect: bool = True) -> None:
        self._client = client
        self._path = path
        self._reconnect = reconnect
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._events: asyncio.Queue[Event | None] = asyncio.Queue()
        self._handlers: dict[str, list[Callable[[Any], Any]]] = {}
        self._next_id = 0
        self._user_closed = False
        self.actor_id: str | None = None
        self.closed = False
        self.close_code: int | None = None  # of the last socket that ended (1012: the actor's node went away)
        self.reconnects = 0  # times the socket was re-opened after the server side ended it

    async def _connect(self) -> aiohttp.ClientWebSocketResponse:
        session = self._client._get_session()
        url = self._client.url.replace("http", "ws", 1) + self._path
        try:
            ws = await session.ws_connect(url, heartbeat=30.0, max_msg_size=16 * 1024 * 1024)
        except aiohttp.WSServerHandshakeError as exc:  # refused at the handshake (401, 404, 503)
            raise error_from_dict(exc.status, f"connection refused: {exc.message}") from None
        first = await ws.receive()
        if first.type != aiohttp.WSMsgType.TEXT:
            code = ws.close_code
            await ws.close()
            status = {4401: 401, 1013: 503}.get(code or 0, 404)
            raise error_from_dict(status, f"connection refused (close code {code})")
        init = _server_frame(first.data)
        self.actor_id = init["actor_id"] if init is not None and init["type"] == "init" else None
        return ws

    async def _open(self) -> None:
        self._ws = await self._connect()
        self._reader = asyncio.create_task(self._read())

    async def _reopen(self) -> aiohttp.ClientWebSocketResponse | None:
        """After the server side ended the socket: connect again (any node reaches the actor's
        owner), retrying refusals that may pass (503) for up to the client's ``retry_for``."""
        deadline = time.monotonic() + self._client._retry_for
        delay = 0.1
        while not self._user_closed and time.monotonic() < deadline:
            try:
                return await self._connect()
            except ActorqError as exc:
                if not exc.retryable:
                    return None
            except (aiohttp.ClientError, OSError, TimeoutError):
                pass
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
        return None

    def _fail_pending(self) -> None:
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(Unavailable("connection closed"))
        self._pending.clear()

    async def _read(self) -> None:
        try:
            while self._ws is not None:
                ws = self._ws
                await self._pump(ws)
                self.close_code = ws.close_code
                self._fail_pending()  # calls in flight may or may not have run: never re-sent
                if self._user_closed or not self._reconnect or self.close_code not in _RECONNECT_ON:
                    return
                self._ws = await self._reopen()
                if self._ws is not None:
                    self.reconnects += 1
        finally:
            self.closed = True
            self._fail_pending()
            self._events.put_nowait(None)

    async def _pump(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            frame = _server_frame(msg.data)
            if frame is None or frame["type"] == "init":
                continue
            if frame["type"] == "event":
                ev = Event(frame["name"], frame["data"])
                self._events.put_nowait(ev)
                for cb in self._handlers.get(ev.name, ()):
                    res = cb(ev.data)
                    if asyncio.iscoroutine(res):
                        await res
                continue
            fut = self._pending.pop(frame["id"], None)
            if fut is None or fut.done():
                continue
            if frame["type"] == "result":
                fut.set_result(b.action_result(frame))
            else:
                fut.set_exception(error_from_dict(0, protocol.ErrorAnswer(error=frame["error"])))

    async def _call(self, build: Callable[[int], protocol.ActionFrame | protocol.SendFrame]) -> Any:
        if self._ws is None or self.closed or self._ws.closed:
            raise Unavailable("connection is closed" if self.closed else "connection is reconnecting")
        self._next_id += 1
        frame = build(self._next_id)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[self._next_id] = fut
        await self._ws.send_str(protocol.encode(frame).decode("utf-8"))
        return await fut

    async def action(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return await self._call(lambda frame_id: b.action_frame(frame_id, name, args, kwargs))

    async def call(
        self, action: Callable[Concatenate[Any, P], Awaitable[T]], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """An action by reference over this connection, typed as :meth:`ActorHandle.call`."""
        result = await self.action(action_name(action), *args, **kwargs)
        return cast(T, load_action_result(action, result))

    async def send(
        self, queue: str, body: Any = None, *, wait: bool = False, timeout: float | None = None
    ) -> Any:
        return await self._call(lambda frame_id: b.send_frame(frame_id, queue, body, wait, timeout))

    def on(self, event: str, callback: Callable[[Any], Any]) -> None:
        """Call ``callback(data)`` for every ``event`` broadcast (sync or async callback)."""
        self._handlers.setdefault(event, []).append(callback)

    async def events(self) -> AsyncIterator[Event]:
        while True:
            ev = await self._events.get()
            if ev is None:
                return
            yield ev

    def __aiter__(self) -> AsyncIterator[Event]:
        return self.events()

    async def next_event(self, timeout: float | None = None) -> Event:
        ev = await asyncio.wait_for(self._events.get(), timeout)
        if ev is None:
            raise Unavailable("connection closed")
        return ev

    async def close(self) -> None:
        self._user_closed = True
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        self.closed = True

    async def __aenter__(self) -> ActorConnection:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        if name.startswith("_"):
            raise AttributeError(name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            return await self.action(name, *args, **kwargs)

        return call


def create_client(
    url: str = "http://127.0.0.1:6420", token: str | None = None, **options: Any
) -> AsyncClient:
    """An async client for the server at ``url`` (``token``: the server's ``ACTORQ_TOKEN``)."""
    return AsyncClient(url, token, **options)


__all__ = ["ActorConnection", "ActorHandle", "AgentOSHandle", "AsyncClient", "create_client"]
