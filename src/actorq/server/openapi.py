"""The OpenAPI 3.1 document served at ``/openapi.json``: every route with the status codes it
really answers and their bodies' schemas (the request models and answer types of
:mod:`actorq.protocol`), plus, per actor type, the JSON Schema of every queue's body and response (from
the declared types) under ``x-actorq-actors``."""

from __future__ import annotations

import functools
from typing import Any

from pydantic import TypeAdapter

from actorq import protocol
from actorq._version import __version__
from actorq.core import Registry, RuntimeConfig
from actorq.errors import ERRORS

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
    502: "the action's agent or LLM failed (prompt_failed)",
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
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "actorq",
            "version": __version__,
            "description": "Durable actors with queues. WebSocket: GET /v1/actors/{actor_id}/connect "
            "(see docs/protocol.md).",
        },
        "paths": paths,
        "components": {"schemas": _schemas(max_wait)},
    }
    if auth:  # this server has a token: every route but /healthz needs it
        doc["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        doc["security"] = [{"bearer": []}]
        paths["/healthz"]["get"]["security"] = []
    else:  # no token: no 401 can come back
        for item in paths.values():
            for op in item.values():
                op["responses"].pop("401", None)
    return doc


def _schema(adapter: Any) -> Any:
    if adapter is None:
        return {}
    try:
        return adapter.json_schema()
    except Exception:  # a type pydantic cannot describe still validates; describe it as "any"
        return {}


def openapi_document(
    registry: Registry, max_wait: float = DEFAULT_MAX_WAIT, *, auth: bool = False
) -> dict[str, Any]:
    """The document for a server with this ``max_wait`` (the largest ``timeout``) that requires a
    token (``auth``) or not."""
    doc = dict(_base(float(max_wait), auth))
    actors: dict[str, Any] = {}
    for name, d in registry.definitions.items():
        actors[name] = {
            "queues": {
                qname: {
                    "body": _schema(qd.body_adapter),
                    "response": _schema(qd.response_adapter),
                    "max_size": qd.max_size,
                    "max_message_bytes": qd.max_message_bytes,
                }
                for qname, qd in d.queues.items()
            },
            "actions": {
                aname: {"params": [p for p in list(ad.signature.parameters)[1:]]}
                for aname, ad in d.actions.items()
            },
        }
    doc["x-actorq-actors"] = actors
    return doc
