"""The OpenAPI 3.1 document served at ``/openapi.json``: the wire protocol plus, per actor
type, the JSON Schema of every queue's body and response (from the declared types)."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from actorq import __version__
from actorq.server.wire import CallAction, ResolveActor, SendAny, SendBatch, SendMessage

if TYPE_CHECKING:
    from actorq.core.registry import Registry

_ERROR = {"$ref": "#/components/schemas/Error"}
_ID = {"name": "actor_id", "in": "path", "required": True, "schema": {"type": "string"}}


def _op(
    summary: str,
    *,
    body: str | None = None,
    params: list[dict[str, Any]] | None = None,
    ok: str = "200",
    errors: tuple[int, ...] = (400, 401, 404),
) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "parameters": params or []}
    if body:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{body}"}}},
        }
    responses: dict[str, Any] = {
        ok: {"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}}
    }
    for code in errors:
        responses[str(code)] = {"description": "error", "content": {"application/json": {"schema": _ERROR}}}
    op["responses"] = responses
    return op


def _path(name: str, desc: str, schema: str = "string") -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": desc, "schema": {"type": schema}}


def _query(name: str, schema: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": {"type": schema}}


def _schema(adapter: Any) -> Any:
    if adapter is None:
        return {}
    try:
        return adapter.json_schema()
    except Exception:  # a type pydantic cannot describe still validates; describe it as "any"
        return {}


@functools.cache
def _base() -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    for model in (ResolveActor, SendMessage, SendBatch, SendAny, CallAction):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))  # nested models (BatchItem) are what the $refs point at
        schemas[model.__name__] = schema
    schemas["Error"] = {
        "type": "object",
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {
                        "type": "string",
                        "enum": [
                            "bad_request",
                            "unauthorized",
                            "not_found",
                            "actor_exists",
                            "completion_error",
                            "message_too_large",
                            "validation_error",
                            "queue_full",
                            "actor_error",
                            "unavailable",
                            "actorq_error",
                        ],
                    },
                    "message": {"type": "string"},
                    "details": {},
                    "retry_after": {"type": "number"},
                },
            }
        },
    }
    q = _path("queue", "queue name")
    m = _path("msg_id", "message id", "integer")
    paths: dict[str, Any] = {
        "/healthz": {"get": _op("Liveness", errors=())},
        "/metrics": {"get": _op("Prometheus metrics", errors=())},
        "/openapi.json": {"get": _op("This document", errors=(401,))},
        "/v1/actors": {
            "get": _op(
                "List actors, ordered by id; pass the last id as `after` for the next page",
                params=[_query("name", "string"), _query("limit", "integer"), _query("after", "string")],
            ),
            "post": _op(
                "Get, create or get-or-create an actor by name and key",
                body="ResolveActor",
                errors=(400, 401, 404, 409),
            ),
        },
        "/v1/actors/{actor_id}": {"get": _op("Actor by id", params=[_ID])},
        "/v1/actors/{actor_id}/queues": {"get": _op("Queue depths", params=[_ID])},
        "/v1/actors/{actor_id}/queues/{queue}/messages": {
            "post": _op(
                "Send a message (optionally wait for its completion)",
                body="SendMessage",
                params=[_ID, q],
                ok="201",
                errors=(400, 401, 404, 413, 422, 429, 503),
            ),
        },
        "/v1/actors/{actor_id}/batch": {
            "post": _op(
                "Send several plain messages in one transaction; per-item results",
                body="SendBatch",
                params=[_ID],
                errors=(400, 401, 404, 503),
            ),
        },
        "/v1/batch": {
            "post": _op(
                "Send plain messages to any actors in one transaction; per-item results, in order",
                body="SendAny",
                errors=(400, 401, 503),
            ),
        },
        "/v1/actors/{actor_id}/messages": {
            "get": _op(
                "Pending or in-flight messages",
                params=[
                    _ID,
                    _query("status", "string"),
                    _query("queue", "string"),
                    _query("limit", "integer"),
                ],
            )
        },
        "/v1/actors/{actor_id}/messages/{msg_id}": {
            "get": _op(
                "Look up (or wait for) a message's result",
                params=[
                    _ID,
                    m,
                    {"name": "wait", "in": "query", "schema": {"type": "boolean"}},
                    {"name": "timeout", "in": "query", "schema": {"type": "number"}},
                ],
            ),
        },
        "/v1/actors/{actor_id}/actions/{action}": {
            "post": _op(
                "Call an action",
                body="CallAction",
                params=[_ID, _path("action", "action name")],
                errors=(400, 401, 404, 422, 500, 503),
            ),
        },
        "/v1/actors/{actor_id}/dead-letters": {
            "get": _op("Dead letters", params=[_ID, _query("limit", "integer")])
        },
        "/v1/actors/{actor_id}/dead-letters/{msg_id}/retry": {
            "post": _op("Retry a dead letter", params=[_ID, m])
        },
        "/v1/actors/{actor_id}/dead-letters/{msg_id}": {
            "delete": _op("Delete a dead letter", params=[_ID, m])
        },
        "/v1/actors/{actor_id}/connect": {
            "get": {
                "summary": "WebSocket: actions, sends and the actor's events (frames in docs/protocol.md)",
                "parameters": [_ID, _query("token", "string")],
                "responses": {
                    "101": {"description": "Switching Protocols (WebSocket)"},
                    "401": {"description": "error", "content": {"application/json": {"schema": _ERROR}}},
                    "404": {"description": "error", "content": {"application/json": {"schema": _ERROR}}},
                },
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "actorq",
            "version": __version__,
            "description": "Durable actors with queues. WebSocket: GET /v1/actors/{actor_id}/connect "
            "(see docs/protocol.md).",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def openapi_document(registry: Registry) -> dict[str, Any]:
    doc = dict(_base())
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
