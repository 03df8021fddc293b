"""The OpenAPI 3.1 document served at ``/openapi.json``: every route with the status codes it
really answers and their bodies' schemas (the request models and answer types of
:mod:`actorq.protocol`), plus, per actor type, the JSON Schema of every queue's body and response (from
the declared types) under ``x-actorq-actors``."""

from __future__ import annotations

import functools
import inspect
import re
from typing import Any

from pydantic import TypeAdapter
from pydantic.json_schema import JsonSchemaMode

from actorq import protocol
from actorq._typing import BYTES_KEY
from actorq._version import __version__
from actorq.core import Registry, RuntimeConfig
from actorq.errors import ERRORS
from actorq.server.docs import FILES as DOCS_FILES

DEFAULT_MAX_WAIT = RuntimeConfig.max_wait

_REF = "#/components/schemas/{model}"
_ERROR = {"$ref": "#/components/schemas/Error"}

# why each error status can come back (the description of its response)
_WHY = {
    400: "bad request: malformed JSON, a field out of range or of the wrong type (details name it)",
    401: "a token is configured and the request did not carry it",
    403: "Host or Origin is not one this server answers to",
    404: "unknown actor type, actor, queue, action, message or route",
    409: "conflict: the actor exists (create), or the action's own conflict",
    413: "the request or the message body is too large",
    415: "the body is not JSON (Content-Type application/json or application/*+json)",
    422: "the body or the arguments fail the declared types",
    429: "the queue is full (Retry-After)",
    500: "the action raised (actor_error)",
    502: "the action's agent or LLM failed (prompt_failed), or a preview's port in the VM did not "
    "answer (bad_gateway)",
    503: "not available now: shutting down, storage or the owning node unreachable (Retry-After)",
}
_RETRY_AFTER = {
    "Retry-After": {"description": "seconds to wait before trying again", "schema": {"type": "integer"}}
}

_ALWAYS = (403,)  # the Host / Origin check comes before everything
_V1 = (400, 401, 403, 503)  # every /v1 route: bad parameters, token, host, availability
_BODY = (413, 415)  # routes that take a body
_ACTOR = (404,)  # routes under /v1/actors/{actor_id}

# every body's schema, requests and answers alike (nested ones come along as $defs)
_MODELS: tuple[Any, ...] = (
    protocol.ResolveActor,
    protocol.SendMessage,
    protocol.SendBatch,
    protocol.SendAny,
    protocol.CallAction,
    protocol.Health,
    protocol.Actor,
    protocol.ActorDetail,
    protocol.ActorList,
    protocol.ActorState,
    protocol.NodeList,
    protocol.QueueList,
    protocol.SendAccepted,
    protocol.MessageResult,
    protocol.BatchResults,
    protocol.MessageList,
    protocol.ActionResult,
    protocol.DeadLetterList,
    protocol.Done,
)


def _ref(model: Any) -> dict[str, str]:
    return {"$ref": _REF.format(model=model if isinstance(model, str) else model.__name__)}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _op(
    summary: str,
    ok: dict[int, dict[str, Any]],
    errors: tuple[int, ...],
    *,
    body: Any = None,
    body_required: bool = True,
    params: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "parameters": params or []}
    if body is not None:
        op["requestBody"] = {
            "required": body_required,
            "content": {"application/json": {"schema": _ref(body)}},
        }
    responses: dict[str, Any] = {str(status): resp for status, resp in sorted(ok.items())}
    for status in sorted(set(errors)):
        resp = {"description": _WHY[status], "content": {"application/json": {"schema": _ERROR}}}
        if status in (429, 503):
            resp["headers"] = _RETRY_AFTER
        responses[str(status)] = resp
    op["responses"] = responses
    return op


def _string(**constraints: Any) -> dict[str, Any]:
    return {"type": "string", **constraints}


_ACTOR_ID = {
    "name": "actor_id",
    "in": "path",
    "required": True,
    "description": "the actor's id (as answered by POST /v1/actors)",
    "schema": _string(minLength=1, maxLength=protocol.MAX_TEXT, pattern=r"^[^\x00-\x1f\x7f/]+$"),
}
_MSG_ID = {
    "name": "msg_id",
    "in": "path",
    "required": True,
    "description": "message id",
    "schema": {"type": "integer", "minimum": 1, "maximum": protocol.MAX_ID},
}
_LIMIT = {
    "name": "limit",
    "in": "query",
    "required": False,
    "description": f"at most this many (default 100, 1 to {protocol.MAX_LIMIT})",
    "schema": {"type": "integer", "minimum": 1, "maximum": protocol.MAX_LIMIT},
}


_DOCUMENT = {
    "type": "object",
    "required": ["openapi", "info", "paths", "components", "x-actorq-actors"],
    "properties": {
        "openapi": {"type": "string", "pattern": r"^3\.1\."},
        "info": {"type": "object", "required": ["title", "version"]},
        "paths": {"type": "object"},
        "components": {"type": "object"},
        "x-actorq-actors": {
            "type": "object",
            "description": "per actor type: each queue's body and response JSON Schema, its limits, "
            "and each action's parameters",
        },
    },
}


# what a generated client calls each operation
_OPERATION_IDS = {
    ("/healthz", "get"): "healthz",
    ("/metrics", "get"): "metrics",
    ("/openapi.json", "get"): "openapi",
    ("/docs", "get"): "docs_page",
    ("/docs/static/{name}", "get"): "docs_file",
    ("/v1/actors", "get"): "list_actors",
    ("/v1/actors", "post"): "resolve_actor",
    ("/v1/actors/{actor_id}", "get"): "get_actor",
    ("/v1/actors/{actor_id}/state", "get"): "get_state",
    ("/v1/cluster/nodes", "get"): "cluster_nodes",
    ("/v1/actors/{actor_id}/queues", "get"): "list_queues",
    ("/v1/actors/{actor_id}/queues/{queue}/messages", "post"): "send_message",
    ("/v1/actors/{actor_id}/batch", "post"): "send_batch",
    ("/v1/batch", "post"): "send_any",
    ("/v1/actors/{actor_id}/messages", "get"): "list_messages",
    ("/v1/actors/{actor_id}/messages/{msg_id}", "get"): "get_message",
    ("/v1/actors/{actor_id}/actions/{action}", "post"): "call_action",
    ("/v1/actors/{actor_id}/dead-letters", "get"): "list_dead_letters",
    ("/v1/actors/{actor_id}/dead-letters/{msg_id}/retry", "post"): "retry_dead_letter",
    ("/v1/actors/{actor_id}/dead-letters/{msg_id}", "delete"): "delete_dead_letter",
    ("/v1/actors/{actor_id}/connect", "get"): "connect",
}


# how the /docs page groups the operations
_TAGS = [
    {"name": "actors", "description": "find, create and inspect actors; their WebSocket"},
    {
        "name": "messages",
        "description": "send to queues (one, a batch, or to several actors) and look up results",
    },
    {"name": "actions", "description": "call an actor's actions (RPC methods)"},
    {"name": "dead letters", "description": "messages that failed max_attempts times"},
    {"name": "server", "description": "health, metrics, cluster nodes, this document and the API page"},
    {"name": "previews", "description": "signed preview URLs: a server in an agent VM, no token needed"},
]

_PREVIEW_METHODS = ("get", "post", "put", "patch", "delete", "options")


def _preview_paths() -> dict[str, Any]:
    """The open preview route: any method, any body, the VM server's answer (docs/protocol.md)."""
    token = {
        "name": "token",
        "in": "path",
        "required": True,
        "description": "the signed token of create_signed_preview_url (the credential)",
        "schema": _string(minLength=1),
    }
    rest = {
        "name": "rest",
        "in": "path",
        "required": True,
        "description": "the path on the VM's server (passed on as sent)",
        "schema": _string(),
    }
    out: dict[str, Any] = {}
    for path, params, suffix in (
        ("/v1/preview/{token}", [token], ""),
        ("/v1/preview/{token}/{rest}", [token, rest], "_path"),
    ):
        item: dict[str, Any] = {}
        for method in _PREVIEW_METHODS:
            op = _op(
                "A request to the VM's server behind a signed preview URL (no API token)",
                {
                    200: {
                        "description": "the VM server's answer, whatever its status and type",
                        "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
                    }
                },
                (*_ALWAYS, 400, 403, 404, 413, 502, 503),
                params=params,
            )
            op["responses"].pop("403")
            op["responses"]["403"] = {
                "description": "Host/Origin refused, or the preview is forged, expired or revoked",
                "content": {"application/json": {"schema": _ERROR}},
            }
            if method == "get":
                op["description"] = (
                    "Also a WebSocket: an upgrade request is relayed to the VM server's WebSocket "
                    "(subprotocols passed on); a refused one is closed before the handshake (403)."
                )
                op["responses"]["101"] = {"description": "Switching Protocols (WebSocket, relayed)"}
            op["operationId"] = f"preview_{method}{suffix}"
            op["tags"] = ["previews"]
            item[method] = op
        out[path] = item
    return out


def _tag(path: str) -> str:
    if not path.startswith("/v1/") or path.startswith("/v1/cluster/"):
        return "server"
    if "/dead-letters" in path:
        return "dead letters"
    if "/actions/" in path:
        return "actions"
    if "/messages" in path or path.endswith("/batch"):
        return "messages"
    return "actors"


def _path(name: str, desc: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": desc,
        "schema": _string(minLength=1, pattern=r"^[^/]+$"),
    }


def _query(name: str, schema: dict[str, Any], desc: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": desc, "schema": schema}


def _with_max_wait(node: Any, max_wait: float) -> None:
    """Put the server's ``max_wait`` as the ``maximum`` of every ``timeout`` field."""
    if isinstance(node, dict):
        timeout = node.get("properties", {}).get("timeout")
        if isinstance(timeout, dict):
            for branch in timeout.get("anyOf", [timeout]):
                if branch.get("type") == "number":
                    branch["maximum"] = max_wait
        for value in node.values():
            _with_max_wait(value, max_wait)
    elif isinstance(node, list):
        for value in node:
            _with_max_wait(value, max_wait)


def _schemas(max_wait: float) -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    for model in _MODELS:
        schema = TypeAdapter(model).json_schema(ref_template=_REF)
        schemas.update(schema.pop("$defs", {}))  # nested models (BatchItem, ...) the $refs point at
        schemas[model.__name__] = schema
    error_body = TypeAdapter(protocol.ErrorBody).json_schema(ref_template=_REF)
    error_body["properties"]["code"] = {"type": "string", "enum": sorted(ERRORS)}
    schemas["ErrorBody"] = error_body
    # the error body inline (one schema a client can read at a glance)
    schemas["Error"] = {
        "type": "object",
        "title": "Error",
        "required": ["error"],
        "additionalProperties": False,
        "properties": {"error": error_body},
    }
    _with_max_wait(schemas, max_wait)
    return schemas


@functools.cache
def _base(max_wait: float, auth: bool) -> dict[str, Any]:
    q = _path("queue", "queue name")
    send_ok = {
        201: _json(_ref(protocol.SendAccepted), "accepted: stored before this answer"),
        200: _json(
            {"anyOf": [_ref(protocol.SendAccepted), _ref(protocol.MessageResult)]},
            "a duplicate (the idempotency key was used: that message), or the outcome of a wait",
        ),
    }
    paths: dict[str, Any] = {
        "/healthz": {"get": _op("Liveness (no token needed)", {200: _json(_ref(protocol.Health))}, _ALWAYS)},
        "/metrics": {
            "get": _op(
                "Prometheus metrics",
                {
                    200: {
                        "description": "Prometheus text exposition format",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
                (401, 403),
            )
        },
        "/openapi.json": {"get": _op("This document", {200: _json(_DOCUMENT, "OpenAPI 3.1")}, (401, 403))},
        "/docs": {
            "get": _op(
                "The interactive API page (no token needed; it asks for one to read this document)",
                {200: {"description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}}},
                _ALWAYS,
            )
        },
        "/docs/static/{name}": {
            "get": _op(
                "The API page's scripts and styles (no token needed)",
                {
                    200: {
                        "description": "the file",
                        "content": {
                            media: {"schema": {"type": "string"}}
                            for media in ("text/javascript", "text/css", "text/plain")
                        },
                    }
                },
                (*_ALWAYS, 404),
                params=[
                    {
                        "name": "name",
                        "in": "path",
                        "required": True,
                        "description": "file name",
                        "schema": {"type": "string", "enum": list(DOCS_FILES)},
                    }
                ],
            )
        },
        "/v1/actors": {
            "get": _op(
                "List actors, ordered by id; pass the last id as `after` for the next page",
                {200: _json(_ref(protocol.ActorList))},
                (*_V1, 404),
                params=[
                    _query("name", _string(), "only this actor type (404 if unknown)"),
                    _LIMIT,
                    _query(
                        "after",
                        _string(minLength=1, maxLength=protocol.MAX_TEXT, pattern=r"^[^\x00-\x1f\x7f]+$"),
                        "the last actor id of the previous page (or the answer's `next_after`)",
                    ),
                    _query(
                        "key_prefix",
                        _string(minLength=1, maxLength=protocol.MAX_KEY_BYTES, pattern=r"^[^\x00]+$"),
                        "only actors whose key, its parts joined by '/', starts with this; a request reads "
                        "at most 10 000 actors, `next_after` says where to go on",
                    ),
                ],
            ),
            "post": _op(
                "Get, create or get-or-create an actor by name and key",
                {201: _json(_ref(protocol.Actor), "created"), 200: _json(_ref(protocol.Actor), "found")},
                (*_V1, *_BODY, 404, 409),
                body=protocol.ResolveActor,
            ),
        },
        "/v1/actors/{actor_id}": {
            "get": _op(
                "Actor by id", {200: _json(_ref(protocol.ActorDetail))}, (*_V1, *_ACTOR), params=[_ACTOR_ID]
            )
        },
        "/v1/cluster/nodes": {
            "get": _op(
                "The nodes serving this database and the actors each runs now (`limit` per node)",
                {200: _json(_ref(protocol.NodeList))},
                _V1,
                params=[_LIMIT],
            )
        },
        "/v1/actors/{actor_id}/state": {
            "get": _op(
                "The actor's persisted state (null until first saved)",
                {200: _json(_ref(protocol.ActorState))},
                (*_V1, *_ACTOR),
                params=[_ACTOR_ID],
            )
        },
        "/v1/actors/{actor_id}/queues": {
            "get": _op(
                "Queue depths", {200: _json(_ref(protocol.QueueList))}, (*_V1, *_ACTOR), params=[_ACTOR_ID]
            )
        },
        "/v1/actors/{actor_id}/queues/{queue}/messages": {
            "post": _op(
                "Send a message (optionally wait for its completion)",
                send_ok,
                (*_V1, *_BODY, *_ACTOR, 422, 429),
                body=protocol.SendMessage,
                params=[
                    _ACTOR_ID,
                    q,
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": False,
                        "description": "the same as the body's idempotency_key (the body's wins)",
                        "schema": _string(
                            minLength=1, maxLength=protocol.MAX_TEXT, pattern=protocol.HEADER_KEY_PATTERN
                        ),
                    },
                ],
            ),
        },
        "/v1/actors/{actor_id}/batch": {
            "post": _op(
                "Send several plain messages in one transaction; per-item results",
                {200: _json(_ref(protocol.BatchResults))},
                (*_V1, *_BODY, *_ACTOR),
                body=protocol.SendBatch,
                params=[_ACTOR_ID],
            ),
        },
        "/v1/batch": {
            "post": _op(
                "Send plain messages to any actors in one transaction; per-item results, in order",
                {200: _json(_ref(protocol.BatchResults))},
                (*_V1, *_BODY),
                body=protocol.SendAny,
            ),
        },
        "/v1/actors/{actor_id}/messages": {
            "get": _op(
                "Pending or in-flight messages",
                {200: _json(_ref(protocol.MessageList))},
                (*_V1, *_ACTOR),
                params=[
                    _ACTOR_ID,
                    _query("status", {"type": "string", "enum": ["pending", "in_flight"]}, "default pending"),
                    _query("queue", _string(), "only this queue (404 if unknown)"),
                    _LIMIT,
                ],
            )
        },
        "/v1/actors/{actor_id}/messages/{msg_id}": {
            "get": _op(
                "Look up (or wait for) a message's result",
                {200: _json(_ref(protocol.MessageResult))},
                (*_V1, *_ACTOR),
                params=[
                    _ACTOR_ID,
                    _MSG_ID,
                    _query(
                        "wait",
                        {"type": "string", "enum": [*protocol.QUERY_TRUE, *protocol.QUERY_FALSE]},
                        "wait for it to be completed or dead-lettered (default false)",
                    ),
                    _query(
                        "timeout",
                        {"type": "number", "minimum": 0, "maximum": max_wait},
                        "seconds to wait (default: the server's max_wait)",
                    ),
                ],
            ),
        },
        "/v1/actors/{actor_id}/actions/{action}": {
            "post": _op(
                "Call an action",
                {200: _json(_ref(protocol.ActionResult))},
                (*_V1, *_BODY, *_ACTOR, 409, 422, 429, 500, 502),
                body=protocol.CallAction,
                body_required=False,
                params=[_ACTOR_ID, _path("action", "action name")],
            ),
        },
        "/v1/actors/{actor_id}/dead-letters": {
            "get": _op(
                "Dead letters",
                {200: _json(_ref(protocol.DeadLetterList))},
                (*_V1, *_ACTOR),
                params=[_ACTOR_ID, _LIMIT],
            )
        },
        "/v1/actors/{actor_id}/dead-letters/{msg_id}/retry": {
            "post": _op(
                "Retry a dead letter: back to pending, same id, attempts from 0",
                {200: _json(_ref(protocol.Done))},
                (*_V1, *_BODY, *_ACTOR),
                params=[_ACTOR_ID, _MSG_ID],
            )
        },
        "/v1/actors/{actor_id}/dead-letters/{msg_id}": {
            "delete": _op(
                "Delete a dead letter",
                {200: _json(_ref(protocol.Done))},
                (*_V1, *_BODY, *_ACTOR),
                params=[_ACTOR_ID, _MSG_ID],
            )
        },
        "/v1/actors/{actor_id}/connect": {
            "get": {
                "summary": "WebSocket: actions, sends and the actor's events (frames in docs/protocol.md)",
                "description": "Authenticate with the Authorization header or the subprotocol "
                "actorq.token.<token> (offer 'actorq' beside it). A plain HTTP request (no upgrade) "
                "gets 404.",
                "parameters": [_ACTOR_ID],
                "responses": {
                    "101": {"description": "Switching Protocols (WebSocket)"},
                    **{
                        str(status): {
                            "description": _WHY[status],
                            "content": {"application/json": {"schema": _ERROR}},
                        }
                        for status in (400, 401, 403, 404, 503)
                    },
                },
            }
        },
    }
    paths.update(_preview_paths())
    for (path, method), operation_id in _OPERATION_IDS.items():
        paths[path][method]["operationId"] = operation_id
        paths[path][method]["tags"] = [_tag(path)]
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "actorq",
            "version": __version__,
            "description": "Durable actors with queues. WebSocket: GET /v1/actors/{actor_id}/connect "
            "(see docs/protocol.md).",
        },
        "tags": _TAGS,
        "paths": paths,
        "components": {"schemas": _schemas(max_wait)},
    }
    if auth:  # this server has a token: every route but /healthz and the API page needs it
        doc["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        doc["security"] = [{"bearer": []}]
        for open_path in ("/healthz", "/docs", "/docs/static/{name}"):
            paths[open_path]["get"]["security"] = []
        for path, item in paths.items():
            if path.startswith("/v1/preview/"):
                for op in item.values():
                    op["security"] = []
    else:  # no token: no 401 can come back
        for item in paths.values():
            for op in item.values():
                op["responses"].pop("401", None)
    return doc


_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]")
_BYTES = {
    "type": "object",
    "title": "Bytes",
    "description": "bytes, base64-encoded",
    "required": [BYTES_KEY],
    "additionalProperties": False,
    "properties": {BYTES_KEY: {"type": "string", "contentEncoding": "base64"}},
}


def _component(*parts: str) -> str:
    """A component name (``^[A-Za-z0-9._-]+$``) for a schema of a queue or an action."""
    return ".".join(_NAME_CHARS.sub("_", part) for part in parts)


def _tagged_bytes(node: Any) -> Any:
    """Results travel with every ``bytes`` as ``{"$bytes": base64}``: say so in their schema."""
    if isinstance(node, dict):
        if node.get("type") == "string" and node.get("format") == "binary":
            return {"$ref": _REF.format(model="Bytes")}
        return {k: _tagged_bytes(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_tagged_bytes(v) for v in node]
    return node


def _describable(adapter: TypeAdapter[Any], mode: JsonSchemaMode) -> bool:
    try:
        adapter.json_schema(mode=mode)
    except Exception:  # a type pydantic cannot describe still validates; describe it as "any"
        return False
    return True


def _actor_schemas(registry: Registry) -> tuple[dict[str, Any], dict[str, Any]]:
    """Per actor type: each queue's body and response, each action's arguments and result, as
    components (one set of definitions shared by all of them: a model used twice is one schema,
    two models of one name get distinct ones), and the ``x-actorq-actors`` map that points at them.
    """
    inputs: list[tuple[str, JsonSchemaMode, TypeAdapter[Any]]] = []

    def add(adapter: TypeAdapter[Any] | None, mode: JsonSchemaMode, *parts: str) -> dict[str, Any]:
        if adapter is None or not _describable(adapter, mode):
            return {}
        name = _component(*parts)
        inputs.append((name, mode, adapter))
        return {"$ref": _REF.format(model=name)}

    actors: dict[str, Any] = {}
    pending_args: list[tuple[str, list[inspect.Parameter], dict[str, Any], str]] = []
    for name, d in registry.definitions.items():
        queues = {
            qname: {
                "body": add(qd.body_adapter, "validation", name, qname, "Body"),
                "response": add(qd.response_adapter, "serialization", name, qname, "Response"),
                "max_size": qd.max_size,
                "max_message_bytes": qd.max_message_bytes,
            }
            for qname, qd in d.queues.items()
        }
        actions: dict[str, Any] = {}
        for aname, ad in d.actions.items():
            params = list(ad.signature.parameters.values())[1:]
            schemas = {
                p.name: add(ad.param_adapters.get(p.name), "validation", name, aname, "param", p.name)
                for p in params
            }
            args_name = _component(name, aname, "Args")
            pending_args.append((args_name, params, schemas, f"arguments of {name}.{aname}"))
            actions[aname] = {
                "params": [p.name for p in params],
                "args": {"$ref": _REF.format(model=args_name)},
                "result": add(ad.result_adapter, "serialization", name, aname, "Result"),
            }
        actors[name] = {"queues": queues, "actions": actions}
    keyed, defs = TypeAdapter.json_schemas(inputs, ref_template=_REF)
    components: dict[str, Any] = dict(defs.get("$defs", {}))
    for (key, _mode), schema in keyed.items():
        target = schema.get("$ref", "").rsplit("/", 1)[-1]
        if set(schema) == {"$ref"} and target in components and target != key:
            components[key] = {"$ref": schema["$ref"]}  # a model: its name, kept as the definition
        else:
            components[key] = schema
    for key, _mode, _adapter in inputs:
        if key.endswith((".Result", ".Response")):
            components[key] = _tagged_bytes(components[key])
    # each parameter's schema inline in its action's Args (only the models it uses are components)
    for args_name, params, refs, title in pending_args:
        inline = {p: components.pop(ref["$ref"].rsplit("/", 1)[-1]) if ref else {} for p, ref in refs.items()}
        components[args_name] = _args_schema(params, inline, title)
    return components, actors


def _args_schema(params: list[inspect.Parameter], schemas: dict[str, Any], title: str) -> dict[str, Any]:
    """What ``args`` (positional) and ``kwargs`` (by name) of a call may hold."""
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    rest = next((p for p in params if p.kind is p.VAR_POSITIONAL), None)
    by_name = [p for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    more = next((p for p in params if p.kind is p.VAR_KEYWORD), None)
    args: dict[str, Any] = {"type": "array"}
    if positional:  # an empty prefixItems is not valid JSON Schema
        args["prefixItems"] = [schemas[p.name] for p in positional]
    if rest is None:
        args["maxItems"] = len(positional)
    else:
        args["items"] = schemas[rest.name]
    kwargs: dict[str, Any] = {"type": "object", "properties": {p.name: schemas[p.name] for p in by_name}}
    if more is None:
        kwargs["additionalProperties"] = False
    required = [p.name for p in params if p.kind is p.KEYWORD_ONLY and p.default is p.empty]
    if required:
        kwargs["required"] = required
    return {
        "type": "object",
        "title": title,
        "description": "the body of POST .../actions/{action} (arguments also given by name in "
        "kwargs count only once; which are required depends on what args holds)",
        "properties": {"args": args, "kwargs": kwargs},
        "additionalProperties": False,
    }


def _renamed(node: Any, renamed: dict[str, str]) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(_REF.format(model="")):
            name = ref[len(_REF.format(model="")) :]
            node = {**node, "$ref": _REF.format(model=renamed.get(name, name))}
        return {k: v if k == "$ref" else _renamed(v, renamed) for k, v in node.items()}
    if isinstance(node, list):
        return [_renamed(v, renamed) for v in node]
    return node


def openapi_document(
    registry: Registry, max_wait: float = DEFAULT_MAX_WAIT, *, auth: bool = False
) -> dict[str, Any]:
    """The document for a server with this ``max_wait`` (the largest ``timeout``) that requires a
    token (``auth``) or not."""
    base = _base(float(max_wait), auth)
    components, actors = _actor_schemas(registry)
    taken = {*base["components"]["schemas"], "Bytes"}
    renamed = {name: f"{name}.user" for name in components if name in taken}
    if renamed:  # a user's model named like a wire model (Actor, Error, ...): both kept, apart
        components, actors = _renamed(components, renamed), _renamed(actors, renamed)
        components = {renamed.get(name, name): schema for name, schema in components.items()}
    doc = {
        **base,
        "components": {
            **base["components"],
            "schemas": {**base["components"]["schemas"], "Bytes": _BYTES, **components},
        },
    }
    doc["x-actorq-actors"] = actors
    return doc
