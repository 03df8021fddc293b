"""The Starlette application: one route per runtime call (see docs/protocol.md)."""

from __future__ import annotations

import hmac
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from contextvars import Token
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from actorq import protocol
from actorq._typing import decode_bytes
from actorq.core import Outgoing, Registry, Runtime, RuntimeConfig, extract_trace
from actorq.errors import ActorqError, BadRequest, Forbidden, MessageTooLarge, Unauthorized
from actorq.protocol import CallAction, ResolveActor, SendAny, SendBatch, SendMessage
from actorq.results import ActorInfo, SendReceipt
from actorq.server import inspector, metrics, wire
from actorq.server.docs import docs_page, docs_static
from actorq.server.forward import FORWARDED_HEADER, TOKEN_SUBPROTOCOL, HttpForwarder
from actorq.server.hosts import HostPolicy
from actorq.server.logs import install_log_redaction
from actorq.server.openapi import openapi_document
from actorq.server.preview import PREFIX as PREVIEW_PREFIX
from actorq.server.preview import preview, preview_socket
from actorq.server.responses import (
    error_response,
    json_response,
    on_actorq_error,
    on_http_error,
    on_unexpected,
)
from actorq.server.websocket import connect_endpoint
from actorq.server.wire import media_type_error
from actorq.storage import MessageStatus, Storage, open_storage

Endpoint = Callable[[Request], Awaitable[Response]]


def _runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


def _actor_id(request: Request) -> str:
    return wire.actor_id(request.path_params["actor_id"])


def _msg_id(request: Request) -> int:
    return wire.message_id(request.path_params["msg_id"])


# -- routes --------------------------------------------------------------------------------------
async def healthz(request: Request) -> Response:
    rt = _runtime(request)
    return json_response(
        protocol.Health(status="ok" if rt.accepting else "stopping", awake_actors=rt.awake_count)
    )


async def openapi(request: Request) -> Response:
    rt = _runtime(request)
    auth: bool = request.app.state.token_required
    return json_response(openapi_document(rt.registry, rt.config.max_wait, auth=auth))


# A listing filtered by key prefix reads at most this many actors per request; with fewer
# matches than asked, ``next_after`` says where the next request goes on.
KEY_SCAN_BUDGET = 10_000


def _key_text(key: list[str]) -> str:
    return "/".join(key)


async def list_actors(request: Request) -> Response:
    rt = _runtime(request)
    q = request.query_params
    limit = wire.query_limit(q)
    after = wire.query_actor_id(q, "after")
    prefix = wire.query_key_prefix(q)
    name = q.get("name")
    found: list[ActorInfo] = []
    more = False
    if prefix is None:
        found = await rt.list_actors(name, limit, after)
        more = len(found) == limit
        cursor = found[-1].actor_id if found else None
    else:  # scan pages, keep those whose key (parts joined by "/") starts with the prefix
        scanned = 0
        cursor = after
        more = True
        size = min(protocol.MAX_LIMIT, KEY_SCAN_BUDGET)
        while len(found) < limit and scanned < KEY_SCAN_BUDGET:
            page = await rt.list_actors(name, size, cursor)
            for a in page:
                scanned += 1
                cursor = a.actor_id
                if _key_text(a.key).startswith(prefix):
                    found.append(a)
                    if len(found) == limit:
                        break
            if len(page) < size and (not page or cursor == page[-1].actor_id):
                more = False  # read to the end
                break
    listed = [protocol.ListedActor(**protocol.actor(a), awake=rt.is_awake(a.actor_id)) for a in found]
    return json_response(protocol.ActorList(actors=listed, next_after=cursor if more else None))


async def actor_state(request: Request) -> Response:
    rt = _runtime(request)
    actor_id = _actor_id(request)
    await rt.actor_info(actor_id)  # 404 for an unknown actor
    record = await rt.storage.load_actor(actor_id)
    state = json.loads(record.state) if record is not None and record.state is not None else None
    return json_response(protocol.ActorState(state=state))


async def resolve_actor(request: Request) -> Response:
    env: ResolveActor = await wire.read_envelope(request, ResolveActor)
    info = await _runtime(request).resolve(env.name, env.key, env.mode)
    return json_response(protocol.actor(info), 201 if info.created else 200)


async def get_actor(request: Request) -> Response:
    rt = _runtime(request)
    actor_id = _actor_id(request)
    info = await rt.actor_info(actor_id)
    out = protocol.ActorDetail(
        actor_id=info.actor_id,
        name=info.name,
        key=info.key,
        created=info.created,
        awake=rt.is_awake(actor_id),
    )
    if rt.clustered:  # several nodes: which one runs it now (None: asleep, unowned)
        owner = await rt.owner(actor_id)
        out["owner"] = protocol.Owner(node=owner.node, address=owner.address) if owner else None
    return json_response(out)


async def send_message(request: Request) -> Response:
    rt = _runtime(request)
    actor_id = _actor_id(request)
    header_key = wire.header_idempotency_key(request.headers.get("idempotency-key"))
    env: SendMessage = await wire.read_envelope(request, SendMessage, max_wait=rt.config.max_wait)
    queue = request.path_params["queue"]
    key = env.idempotency_key or header_key
    if env.wait:
        result = await rt.send_and_wait(
            actor_id,
            queue,
            env.body,
            timeout=env.timeout,
            block=env.block,
            delay=env.delay,
            idempotency_key=key,
        )
        return json_response(protocol.message_result(result))
    receipt = await rt.send(
        actor_id, queue, env.body, block=env.block, timeout=env.timeout, delay=env.delay, idempotency_key=key
    )
    return json_response(protocol.accepted(receipt), 200 if receipt.duplicate else 201)


async def send_batch(request: Request) -> Response:
    actor_id = _actor_id(request)
    env: SendBatch = await wire.read_envelope(request, SendBatch)
    items = [
        Outgoing(m.queue, m.body, m.delay, m.idempotency_key, m.traceparent, m.tracestate)
        for m in env.messages
    ]
    return _batch_response(await _runtime(request).send_batch(actor_id, items))


async def send_any(request: Request) -> Response:
    env: SendAny = await wire.read_envelope(request, SendAny)
    items = [
        (m.actor_id, Outgoing(m.queue, m.body, m.delay, m.idempotency_key, m.traceparent, m.tracestate))
        for m in env.messages
    ]
    return _batch_response(await _runtime(request).send_items(items))


def _batch_response(results: list[SendReceipt | ActorqError]) -> Response:
    out: list[protocol.SendAccepted | protocol.ItemFailed] = []
    for r in results:
        if isinstance(r, ActorqError):
            out.append(protocol.ItemFailed(error=protocol.error_body(r), status=r.status))
        else:
            out.append(protocol.accepted(r))
    return json_response(protocol.BatchResults(results=out))


async def get_message(request: Request) -> Response:
    rt = _runtime(request)
    actor_id = _actor_id(request)
    msg_id = _msg_id(request)
    q = request.query_params
    timeout = wire.query_seconds(q, "timeout", rt.config.max_wait)  # checked with or without wait
    if wire.query_bool(q, "wait"):
        await rt.actor_info(actor_id)
        result = await rt.wait_result(actor_id, msg_id, timeout)
    else:
        result = await rt.lookup_result(actor_id, msg_id)
    return json_response(protocol.message_result(result))


async def list_queues(request: Request) -> Response:
    infos = await _runtime(request).queue_info(_actor_id(request))
    return json_response(protocol.QueueList(queues=[protocol.queue_stats(i) for i in infos]))


async def list_pending(request: Request) -> Response:
    rt = _runtime(request)
    actor_id = _actor_id(request)
    q = request.query_params
    status_name = q.get("status", "pending")
    statuses = {"pending": MessageStatus.PENDING, "in_flight": MessageStatus.INFLIGHT}
    if status_name not in statuses:
        raise BadRequest(
            "status must be 'pending' or 'in_flight'",
            details=[
                {
                    "loc": ["query", "status"],
                    "msg": "Input should be 'pending' or 'in_flight'",
                    "type": "literal_error",
                }
            ],
        )
    recs = await rt.list_messages(actor_id, statuses[status_name], wire.query_limit(q), q.get("queue"))
    return json_response(
        protocol.MessageList(
            messages=[
                protocol.PendingMessage(
                    id=r.id,
                    queue=r.queue,
                    attempt=r.attempt,
                    created_at=r.created_at,
                    available_at=r.available_at,
                    body=json.loads(r.body),
                )
                for r in recs
            ]
        )
    )


async def call_action(request: Request) -> Response:
    actor_id = _actor_id(request)
    env: CallAction = await wire.read_envelope(request, CallAction, optional=True)
    result = await _runtime(request).call_action(
        actor_id,
        request.path_params["action"],
        decode_bytes(env.args),
        decode_bytes(env.kwargs) or None,
        forward=FORWARDED_HEADER not in request.headers,  # forwarded once at most
    )
    return json_response(protocol.action_result(result))


async def dead_letters(request: Request) -> Response:
    actor_id = _actor_id(request)
    limit = wire.query_limit(request.query_params)
    letters = await _runtime(request).dead_letters(actor_id, limit)
    return json_response(protocol.DeadLetterList(dead_letters=[protocol.dead_letter(d) for d in letters]))


async def retry_dead(request: Request) -> Response:
    await _runtime(request).retry_dead(_actor_id(request), _msg_id(request))
    return json_response(protocol.Done(ok=True))


async def delete_dead(request: Request) -> Response:
    await _runtime(request).delete_dead(_actor_id(request), _msg_id(request))
    return json_response(protocol.Done(ok=True))


async def cluster_nodes(request: Request) -> Response:
    rt = _runtime(request)
    limit = wire.query_limit(request.query_params)
    found = await rt.cluster_nodes(limit)
    if found is None:  # one process: itself, with its awake actors
        awake = sorted(rt.awake_ids())
        local = protocol.ClusterNode(
            node="local",
            address=None,
            this_node=True,
            started_at=None,
            heartbeat_at=None,
            actor_count=len(awake),
            actors=awake[:limit],
        )
        return json_response(protocol.NodeList(clustered=False, nodes=[local]))
    stats = rt.node_stats()
    me = stats.node_id if stats is not None else None
    nodes = [
        protocol.ClusterNode(
            node=n.node_id,
            address=n.address,
            this_node=n.node_id == me,
            started_at=n.started_at,
            heartbeat_at=n.heartbeat_at,
            actor_count=n.actor_count,
            actors=n.actors,
        )
        for n in found
    ]
    return json_response(protocol.NodeList(clustered=True, nodes=nodes))


async def metrics_endpoint(request: Request) -> Response:
    body, content_type = await metrics.render(_runtime(request))
    return Response(body, media_type=content_type)


def _route(path: str, **methods: tuple[Endpoint, tuple[str, ...]]) -> Route:
    """One route per path: ``GET=(endpoint, query parameters it takes)``, ``POST=...``. Any other
    query parameter is a 400; any other method a 405 whose ``Allow`` lists the path's methods."""
    allowed = {method: (endpoint, frozenset(query)) for method, (endpoint, query) in methods.items()}
    if "GET" in allowed:
        allowed["HEAD"] = allowed["GET"]

    async def dispatch(request: Request) -> Response:
        endpoint, query = allowed[request.method]
        wire.check_query(request.query_params, query)
        return await endpoint(request)

    name = "_".join(endpoint.__name__ for endpoint, _ in methods.values())
    return Route(path, dispatch, methods=list(methods), name=name)


NONE: tuple[str, ...] = ()
PREVIEW_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

ROUTES = [
    _route("/healthz", GET=(healthz, NONE)),
    _route("/metrics", GET=(metrics_endpoint, NONE)),
    _route("/openapi.json", GET=(openapi, NONE)),
    _route("/docs", GET=(docs_page, NONE)),
    _route("/docs/static/{name}", GET=(docs_static, NONE)),
    _route(
        "/v1/actors", GET=(list_actors, ("name", "limit", "after", "key_prefix")), POST=(resolve_actor, NONE)
    ),
    _route("/v1/actors/{actor_id}", GET=(get_actor, NONE)),
    _route("/v1/actors/{actor_id}/state", GET=(actor_state, NONE)),
    _route("/v1/actors/{actor_id}/queues", GET=(list_queues, NONE)),
    _route("/v1/actors/{actor_id}/queues/{queue}/messages", POST=(send_message, NONE)),
    _route("/v1/actors/{actor_id}/batch", POST=(send_batch, NONE)),
    _route("/v1/batch", POST=(send_any, NONE)),
    _route("/v1/cluster/nodes", GET=(cluster_nodes, ("limit",))),
    _route("/v1/actors/{actor_id}/messages", GET=(list_pending, ("status", "queue", "limit"))),
    _route("/v1/actors/{actor_id}/messages/{msg_id}", GET=(get_message, ("wait", "timeout"))),
    _route("/v1/actors/{actor_id}/actions/{action}", POST=(call_action, NONE)),
    _route("/v1/actors/{actor_id}/dead-letters", GET=(dead_letters, ("limit",))),
    _route("/v1/actors/{actor_id}/dead-letters/{msg_id}/retry", POST=(retry_dead, NONE)),
    _route("/v1/actors/{actor_id}/dead-letters/{msg_id}", DELETE=(delete_dead, NONE)),
    WebSocketRoute("/v1/actors/{actor_id}/connect", connect_endpoint),
    Route(PREVIEW_PREFIX + "{token}", preview, methods=PREVIEW_METHODS),
    Route(PREVIEW_PREFIX + "{token}/{rest:path}", preview, methods=PREVIEW_METHODS),
    WebSocketRoute(PREVIEW_PREFIX + "{token}", preview_socket),
    WebSocketRoute(PREVIEW_PREFIX + "{token}/{rest:path}", preview_socket),
]

# open without the token: liveness, the API page's static files (the same for every server;
# the page asks for the token to read /openapi.json), and previews (their token is the credential,
# checked by the actor they name: server/preview.py)
_OPEN_PATHS = frozenset({"/healthz", "/docs"})
_OPEN_PREFIXES = ("/docs/static/", PREVIEW_PREFIX)


def _route_path(scope: Scope) -> str:
    """The path inside this app: mounted under a prefix, ``path`` still carries ``root_path``."""
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def _open(path: str) -> bool:
    """Routes that need no token: liveness, the API page and its files, and the inspector's static
    files (those pages ask for the token and send it with every API call they make)."""
    return path in _OPEN_PATHS or path.startswith(_OPEN_PREFIXES) or inspector.is_static(path)


# Largest HTTP request body read at all (a full batch of 64 KiB messages fits); bigger is a 413.
MAX_REQUEST_BYTES = 32 * 1024 * 1024


def _enter_trace(scope: Scope) -> Token[otel_context.Context] | None:
    """Make the trace context a request's headers carry (W3C ``traceparent``/``tracestate`` by
    default) current for its route, unless an instrumentation around this app already made a
    span of its own current (its span is then the parent, and it read the headers itself)."""
    if trace.get_current_span().get_span_context().is_valid:
        return None
    headers: dict[str, str] = {}
    for name, value in scope.get("headers", ()):
        if name in (b"traceparent", b"tracestate", b"baggage"):
            headers[name.decode()] = value.decode("latin-1")
    if not headers:
        return None
    ctx = extract_trace(headers)
    return None if ctx is None else otel_context.attach(ctx)


class ActorqMiddleware:
    """What every request goes through before its route (HTTP and WebSocket alike): the
    ``Host``/``Origin`` check (403), the bearer token (401), then for HTTP the body's media type
    (415) and size (413); and the lazy runtime start when mounted in another app."""

    def __init__(
        self,
        app: ASGIApp,
        runtime: Runtime,
        token: str | None,
        max_request_bytes: int,
        hosts: HostPolicy,
    ) -> None:
        self.app = app
        self.runtime = runtime
        self.token = token.encode() if token else None
        self.max_request_bytes = max_request_bytes
        self.hosts = hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            refused = self._refusal(scope)
            if refused is not None:
                if scope["type"] == "websocket" and "websocket.http.response" not in scope.get(
                    "extensions", {}
                ):
                    code = 4403 if isinstance(refused, Forbidden) else 4401
                    await send({"type": "websocket.close", "code": code, "reason": refused.code})
                    return
                # HTTP, or a WebSocket handshake refused with a real 401/403 (denial response extension)
                await error_response(refused)(scope, receive, send)
                return
            if not self.runtime.started:
                await self.runtime.start()
        if scope["type"] == "http":
            # a preview's body is the VM server's business (forms, uploads), not JSON
            media = (
                None
                if _route_path(scope).startswith(PREVIEW_PREFIX)
                else media_type_error(scope["method"], scope.get("headers", ()))
            )
            refused = media or self._declared_too_big(scope)
            if refused is not None:
                await error_response(refused)(scope, receive, send)
                return
            receive = self._bounded(receive)
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        token = _enter_trace(scope)
        try:
            await self.app(scope, receive, send)
        finally:
            if token is not None:
                otel_context.detach(token)

    def _refusal(self, scope: Scope) -> ActorqError | None:
        host: str | None = None
        origin: str | None = None
        for name, value in scope.get("headers", ()):
            if name == b"host":
                host = value.decode("latin-1")
            elif name == b"origin":
                origin = value.decode("latin-1")
        path = _route_path(scope)
        if path.startswith(PREVIEW_PREFIX):
            # a preview's own pages post back from an opaque origin ("null": they are sandboxed),
            # and its credential is in the URL, not ambient: Origin guards nothing here (Host does)
            origin = None
        refused: ActorqError | None = self.hosts.check(host, origin)
        if refused is None and self.token is not None and not _open(path):
            if not self._authorized(scope):
                refused = Unauthorized("missing or wrong bearer token")
        return refused

    def _declared_too_big(self, scope: Scope) -> ActorqError | None:
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_request_bytes:
                return MessageTooLarge(
                    f"request body is {int(value)} bytes; the server accepts at most {self.max_request_bytes}"
                )
        return None

    def _bounded(self, receive: Receive) -> Receive:
        """Stop reading a body (chunked, or lying about its length) once it passes the limit."""
        seen = 0
        limit = self.max_request_bytes

        async def bounded() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise MessageTooLarge(f"request body exceeds the server's limit of {limit} bytes")
            return message

        return bounded

    def _authorized(self, scope: Scope) -> bool:
        assert self.token is not None
        for name, value in scope.get("headers", ()):
            if name == b"authorization" and value[:7].lower() == b"bearer ":
                return hmac.compare_digest(value[7:].strip(), self.token)
        if scope["type"] == "websocket":
            # browsers cannot set headers on a WebSocket: the token as a subprotocol
            # (``actorq.token.<token>``), or the older ``?token=`` (redacted in the logs)
            for offered in scope.get("subprotocols", ()):
                if offered.startswith(TOKEN_SUBPROTOCOL):
                    return hmac.compare_digest(offered[len(TOKEN_SUBPROTOCOL) :].encode(), self.token)
            for part in scope.get("query_string", b"").split(b"&"):
                if part.startswith(b"token="):
                    return hmac.compare_digest(part[6:], self.token)
        return False


def resolve_token(token: str | None) -> str | None:
    """The token to require: ``token``, else ``$ACTORQ_TOKEN``; ``None`` when neither is set.

    A token that is set but empty (or blank) is refused with :class:`ValueError` instead of
    turning authentication off, and so is one that cannot travel in an ``Authorization`` header
    (anything but visible ASCII)."""
    source = "token"
    if token is None:
        token = os.environ.get("ACTORQ_TOKEN")
        source = "ACTORQ_TOKEN"
        if token is None:
            return None
    if not token.strip():
        raise ValueError(
            f"{source} is set but empty: refusing to start without authentication "
            "(give a real token, or unset it to run without one)"
        )
    if not all(33 <= ord(ch) <= 126 for ch in token):
        raise ValueError(
            f"{source} must be visible ASCII characters (no whitespace, control or non-ASCII "
            "characters): an Authorization header cannot carry anything else the same way everywhere"
        )
    return token


def create_app(
    registry: Registry,
    *,
    storage: str | os.PathLike[str] | Storage | None = None,
    token: str | None = None,
    runtime: Runtime | None = None,
    max_request_bytes: int = MAX_REQUEST_BYTES,
    host: str | None = None,
    allowed_hosts: Sequence[str] | None = None,
    **config: Any,
) -> Starlette:
    """Build the ASGI app. ``token`` defaults to ``$ACTORQ_TOKEN``; ``config`` feeds RuntimeConfig.

    ``host``: the address the server is bound to, which decides the ``Host`` names it answers to
    (``None``, as when mounted in another app: any, unless ``allowed_hosts`` lists them);
    ``allowed_hosts``: further names to accept (see :mod:`actorq.server.hosts`)."""
    token = resolve_token(token)
    install_log_redaction()  # for any uvicorn serving this app, with its access log on or off
    rt = runtime or Runtime(registry, open_storage(storage), RuntimeConfig(**config))
    if rt.forwarder is None:  # used only when several nodes share a PostgreSQL database
        rt.forwarder = HttpForwarder(token)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await rt.start()
        try:
            yield
        finally:
            await rt.stop()

    app = Starlette(
        routes=[*ROUTES, *inspector.routes()],  # the API, then the inspector's static files
        lifespan=lifespan,
        exception_handlers={
            ActorqError: on_actorq_error,
            HTTPException: on_http_error,
            Exception: on_unexpected,
        },
    )
    app.state.runtime = rt
    app.state.token_required = token is not None
    hosts = HostPolicy(host, allowed_hosts, rt.config.advertise)
    app.add_middleware(
        ActorqMiddleware, runtime=rt, token=token, max_request_bytes=max_request_bytes, hosts=hosts
    )
    return app
