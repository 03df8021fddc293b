"""``/openapi.json`` documents what each route really answers: every status code it returns, with
the schema of its body (the pydantic wire models), errors with the error body schema, and
``/metrics`` as text. Real answers of the server are validated against those schemas here; the
schemathesis run (tests/test_schemathesis.py) does the same for generated requests."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jsonschema_rs
import openapi_spec_validator
import pytest

from actorq.client import AsyncClient
from actorq.errors import ERRORS
from actorq.server.openapi import openapi_document
from tests.apps.api_app import registry

JSON = {"Content-Type": "application/json"}


@pytest.fixture
async def client() -> AsyncIterator[AsyncClient]:
    async with registry.test() as c:
        yield c


@pytest.fixture
async def doc(client: AsyncClient) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=client.url) as http:
        r = await http.get("/openapi.json")
    assert r.status_code == 200
    out: dict[str, Any] = r.json()
    return out


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, op)
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if method in ("get", "post", "delete")
    ]


def schema_of(
    doc: dict[str, Any], path: str, method: str, status: int, media: str = "application/json"
) -> Any:
    responses = doc["paths"][path][method]["responses"]
    assert str(status) in responses, (
        f"{method.upper()} {path} does not document {status}: {sorted(responses)}"
    )
    return responses[str(status)]["content"][media]["schema"]


def validator(doc: dict[str, Any], schema: Any) -> jsonschema_rs.Validator:
    return jsonschema_rs.validator_for({**schema, "components": doc["components"]})


async def check(
    doc: dict[str, Any],
    http: httpx.AsyncClient,
    route: str,
    method: str,
    url: str,
    content: bytes | None = None,
) -> httpx.Response:
    """Make the request, then assert its status is documented and its body matches the schema."""
    r = await http.request(
        method.upper(), url, content=content, headers=JSON if content is not None else None
    )
    schema = schema_of(doc, route, method, r.status_code)
    errors = [e.message for e in validator(doc, schema).iter_errors(r.json())]
    assert not errors, (method, url, r.status_code, r.text, errors)
    return r


def test_no_success_body_is_left_as_a_bare_object() -> None:
    doc = json.loads(json.dumps(openapi_document(registry)))
    for path, method, op in operations(doc):
        for status, resp in op["responses"].items():
            if status.startswith("2"):
                for media, content in resp["content"].items():
                    assert content["schema"] != {"type": "object"}, (method, path, status, media)
                    if media == "application/json" and path != "/openapi.json":
                        text = json.dumps(content["schema"])
                        assert "$ref" in text, (method, path, status, content["schema"])


def test_every_route_documents_its_error_statuses_with_the_error_schema() -> None:
    doc = json.loads(json.dumps(openapi_document(registry, auth=True)))
    error_ref = {"$ref": "#/components/schemas/Error"}
    for path, method, op in operations(doc):
        statuses = {int(s) for s in op["responses"] if s.isdigit()}
        assert 403 in statuses, (method, path)  # Host / Origin
        if path not in ("/healthz", "/docs", "/docs/static/{name}"):
            assert 401 in statuses, (method, path)
        if path.startswith("/v1/"):
            assert {400, 503} <= statuses, (method, path, statuses)
        if method in ("post", "delete"):
            assert {413, 415} <= statuses, (method, path, statuses)
        for status in statuses:
            if status >= 400:
                content = op["responses"][str(status)]["content"]
                assert content == {"application/json": {"schema": error_ref}}, (method, path, status)
    assert doc["security"] == [{"bearer": []}] and doc["paths"]["/healthz"]["get"]["security"] == []
    without = json.loads(json.dumps(openapi_document(registry)))
    assert "security" not in without, "no token: nothing to authenticate"
    assert all("401" not in op["responses"] for _, _, op in operations(without))
    code = doc["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]
    assert set(code["enum"]) == set(ERRORS)
    assert "unsupported_media_type" in code["enum"] and "forbidden" in code["enum"]


def test_sends_and_resolves_document_both_200_and_201() -> None:
    doc = json.loads(json.dumps(openapi_document(registry)))
    send = doc["paths"]["/v1/actors/{actor_id}/queues/{queue}/messages"]["post"]["responses"]
    assert {"200", "201"} <= set(send)
    assert send["201"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/SendAccepted"
    }
    either = send["200"]["content"]["application/json"]["schema"]
    assert {"$ref": "#/components/schemas/SendAccepted"} in either["anyOf"]
    assert {"$ref": "#/components/schemas/MessageResult"} in either["anyOf"]
    resolve = doc["paths"]["/v1/actors"]["post"]["responses"]
    for status in ("200", "201"):
        assert resolve[status]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/Actor"
        }
    metrics = doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert set(metrics) == {"text/plain"} and metrics["text/plain"]["schema"]["type"] == "string"
    # fields and their limits
    params = {p["name"]: p for p in doc["paths"]["/v1/actors"]["get"]["parameters"]}
    assert (params["limit"]["schema"]["minimum"], params["limit"]["schema"]["maximum"]) == (1, 1000)
    msg_id = next(
        p
        for p in doc["paths"]["/v1/actors/{actor_id}/messages/{msg_id}"]["get"]["parameters"]
        if p["name"] == "msg_id"
    )
    assert (msg_id["schema"]["minimum"], msg_id["schema"]["maximum"]) == (1, 2**63 - 1)


async def test_real_answers_match_the_documented_schemas(doc: dict[str, Any], client: AsyncClient) -> None:
    h = client.api.get_or_create(["doc"])
    aid = await h.resolve()
    gid = await client.flaky.get_or_create(["doc"]).resolve()
    async with httpx.AsyncClient(base_url=client.url) as http:
        await check(doc, http, "/healthz", "get", "/healthz")
        await check(doc, http, "/openapi.json", "get", "/openapi.json")
        r = await http.get("/metrics")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
        await check(doc, http, "/v1/actors", "get", "/v1/actors?limit=5")
        await check(doc, http, "/v1/actors", "post", "/v1/actors", b'{"name": "api", "key": ["doc2"]}')  # 201
        await check(doc, http, "/v1/actors", "post", "/v1/actors", b'{"name": "api", "key": ["doc2"]}')  # 200
        await check(
            doc,
            http,
            "/v1/actors",
            "post",
            "/v1/actors",
            b'{"name": "api", "key": ["doc2"], "mode": "create"}',
        )
        await check(doc, http, "/v1/actors/{actor_id}", "get", f"/v1/actors/{aid}")
        await check(doc, http, "/v1/actors/{actor_id}/queues", "get", f"/v1/actors/{aid}/queues")
        send = "/v1/actors/{actor_id}/queues/{queue}/messages"
        url = f"/v1/actors/{aid}/queues/jobs/messages"
        first = await check(doc, http, send, "post", url, b'{"body": {"n": 1}, "idempotency_key": "d1"}')
        assert first.status_code == 201
        again = await check(doc, http, send, "post", url, b'{"body": {"n": 1}, "idempotency_key": "d1"}')
        assert again.status_code == 200 and again.json()["duplicate"] is True
        waited = await check(doc, http, send, "post", url, b'{"body": {"n": 2}, "wait": true, "timeout": 10}')
        assert waited.json()["status"] == "completed"
        await check(doc, http, send, "post", url, b'{"body": {"n": "x"}}')  # 422
        await check(doc, http, send, "post", url, b'{"body": {"n": 1}, "delay": -1}')  # 400
        await check(
            doc, http, send, "post", f"/v1/actors/{aid}/queues/nosuch/messages", b'{"body": 1}'
        )  # 404
        m = "/v1/actors/{actor_id}/messages/{msg_id}"
        await check(doc, http, m, "get", f"/v1/actors/{aid}/messages/{first.json()['id']}")
        await check(
            doc, http, m, "get", f"/v1/actors/{aid}/messages/{first.json()['id']}?wait=true&timeout=5"
        )
        await check(doc, http, m, "get", f"/v1/actors/{aid}/messages/99999")
        await check(
            doc, http, "/v1/actors/{actor_id}/messages", "get", f"/v1/actors/{aid}/messages?status=in_flight"
        )
        batch = b'{"messages": [{"queue": "idle", "body": 1}, {"queue": "nosuch", "body": 2}]}'
        await check(doc, http, "/v1/actors/{actor_id}/batch", "post", f"/v1/actors/{aid}/batch", batch)
        anywhere = json.dumps(
            {"messages": [{"actor_id": aid, "queue": "idle"}, {"actor_id": "ghost", "queue": "q"}]}
        )
        await check(doc, http, "/v1/batch", "post", "/v1/batch", anywhere.encode())
        act = "/v1/actors/{actor_id}/actions/{action}"
        await check(doc, http, act, "post", f"/v1/actors/{aid}/actions/shout", b'{"args": ["hi"]}')
        await check(doc, http, act, "post", f"/v1/actors/{aid}/actions/shout", b'{"args": []}')  # 422
        poisoned = client.flaky.get_or_create(["doc"])
        dead = await poisoned.send("work", {"tag": "doc-openapi", "fail_times": 9}, wait=True, timeout=20)
        assert dead.status == "failed"
        await check(doc, http, "/v1/actors/{actor_id}/dead-letters", "get", f"/v1/actors/{gid}/dead-letters")
        retry = "/v1/actors/{actor_id}/dead-letters/{msg_id}/retry"
        await check(doc, http, retry, "post", f"/v1/actors/{gid}/dead-letters/{dead.id}/retry")
        await check(doc, http, retry, "post", f"/v1/actors/{gid}/dead-letters/{dead.id}/retry")  # 404 now
        await check(
            doc,
            http,
            "/v1/actors/{actor_id}/dead-letters/{msg_id}",
            "delete",
            f"/v1/actors/{gid}/dead-letters/1",
        )


def test_the_document_is_valid_openapi_3_1() -> None:
    from examples.demo_app import registry as demo  # the agent VM's actions: dataclasses, bytes

    for reg in (registry, demo):
        for auth in (False, True):
            openapi_spec_validator.validate(json.loads(json.dumps(openapi_document(reg, auth=auth))))


def test_each_queue_and_action_has_its_schemas_as_components() -> None:
    doc = json.loads(json.dumps(openapi_document(registry)))
    schemas = doc["components"]["schemas"]
    jobs = doc["x-actorq-actors"]["api"]["queues"]["jobs"]
    assert jobs["body"] == {"$ref": "#/components/schemas/api.jobs.Body"}
    assert jobs["response"] == {"$ref": "#/components/schemas/api.jobs.Response"}
    assert validator(doc, jobs["body"]).is_valid({"n": 3})
    assert not validator(doc, jobs["body"]).is_valid({"n": "three"})
    assert not validator(doc, jobs["body"]).is_valid({})
    assert validator(doc, jobs["response"]).is_valid({"doubled": 6})
    assert schemas["api.jobs.Body"] == {"$ref": "#/components/schemas/Job"}  # the user's model, by name
    assert doc["x-actorq-actors"]["api"]["queues"]["idle"]["body"] == {}  # Any: anything

    two = doc["x-actorq-actors"]["inbox"]["actions"]["two"]  # async def two(c, a: int, b: str) -> str
    assert two["params"] == ["a", "b"]
    args = validator(doc, two["args"])
    assert args.is_valid({"args": [1, "x"]}) and args.is_valid({"args": [1], "kwargs": {"b": "x"}})
    assert not args.is_valid({"args": ["x", "x"]}) and not args.is_valid({"args": [1, "x", 3]})
    assert not args.is_valid({"kwargs": {"c": 1}})
    assert schemas["inbox.two.Result"] == {"type": "string"}
    assert schemas["inbox.boom.Result"] == {"type": "null"}  # -> None
    assert doc["x-actorq-actors"]["hold"]["queues"]["ask"]["response"] == {}


def test_agent_vm_results_say_bytes_travel_tagged() -> None:
    from examples.demo_app import registry as demo

    doc = json.loads(json.dumps(openapi_document(demo)))
    vm = next(a for a in doc["x-actorq-actors"].values() if "read_file" in a["actions"])
    read = vm["actions"]["read_file"]["result"]
    assert validator(doc, read).is_valid({"$bytes": "aGk="})
    assert not validator(doc, read).is_valid("hi")
    exec_result = validator(doc, vm["actions"]["exec"]["result"])
    assert exec_result.is_valid({"exit_code": 0, "stdout": "", "stderr": ""})


def test_a_user_model_named_like_a_wire_model_keeps_both() -> None:
    from typing import TypedDict

    from actorq import actor, queue, setup

    class Actor(TypedDict):  # the same name as the wire model of POST /v1/actors' answer
        nickname: str

    clash = setup(use={"people": actor(queues={"add": queue(Actor)})})
    doc = json.loads(json.dumps(openapi_document(clash)))
    schemas = doc["components"]["schemas"]
    assert "actor_id" in json.dumps(schemas["Actor"])  # the wire model is untouched
    body = doc["x-actorq-actors"]["people"]["queues"]["add"]["body"]
    assert validator(doc, body).is_valid({"nickname": "n"})
    assert not validator(doc, body).is_valid({"actor_id": "x"})
    openapi_spec_validator.validate(doc)


def test_every_operation_has_a_unique_operation_id() -> None:
    doc = openapi_document(registry)
    ids = [op["operationId"] for _, _, op in operations(doc)]
    assert len(ids) == len(set(ids)) == len(operations(doc))


def test_every_operation_is_in_a_declared_group() -> None:
    doc = openapi_document(registry)
    declared = [t["name"] for t in doc["tags"]]
    used = {tag for _, _, op in operations(doc) for tag in op["tags"]}
    assert used == set(declared)
    send = doc["paths"]["/v1/actors/{actor_id}/queues/{queue}/messages"]["post"]
    assert send["tags"] == ["messages"]
    assert doc["paths"]["/docs"]["get"]["tags"] == ["server"]
