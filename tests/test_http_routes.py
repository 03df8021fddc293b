"""Every HTTP route's happy paths, route by route (docs/protocol.md), against a real uvicorn server
(batches, with every way one of their items can fail alone, too); plus the app mounted inside
another Starlette app. Bad requests are in tests/test_bad_input.py, the WebSocket in
tests/test_websocket.py, the clients in tests/test_clients.py."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route, WebSocketRoute

from actorq import Unauthorized
from actorq.client import AsyncClient, create_client
from actorq.server.app import ROUTES
from actorq.server.openapi import openapi_document
from tests.apps.api_app import next_named, queues, registry, serve_asgi
from tests.apps.batch_app import registry as batch_registry
from tests.apps.batch_app import seen


@pytest.fixture
async def client() -> AsyncIterator[AsyncClient]:
    async with registry.test(sweep_interval=0.05) as c:
        yield c


@pytest.fixture
async def http(client: AsyncClient) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=client.url, timeout=30) as h:
        yield h


async def wait_for(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def new_actor(http: httpx.AsyncClient, name: str, key: list[str]) -> str:
    r = await http.post("/v1/actors", json={"name": name, "key": key})
    assert r.status_code in (200, 201), r.text
    actor_id: str = r.json()["actor_id"]
    return actor_id


async def send(http: httpx.AsyncClient, actor_id: str, queue: str, **envelope: Any) -> httpx.Response:
    return await http.post(f"/v1/actors/{actor_id}/queues/{queue}/messages", json=envelope)


# -- operations ----------------------------------------------------------------------------------
async def test_healthz(client: AsyncClient, http: httpx.AsyncClient) -> None:
    r = await http.get("/healthz")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    assert r.json() == {"status": "ok", "awake_actors": 0}
    await client.api.get_or_create(["h"]).add(1)
    assert (await http.get("/healthz")).json() == {"status": "ok", "awake_actors": 1}
    assert await client.health() == {"status": "ok", "awake_actors": 1}


def _resolve_ref(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = doc
    for part in ref[2:].split("/"):
        assert part in node, f"dangling $ref {ref}"
        node = node[part]
    return node


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def check_openapi_31(doc: dict[str, Any]) -> None:
    """The structural rules of OpenAPI 3.1 that a document generator most easily breaks."""
    assert re.fullmatch(r"3\.1\.\d+", doc["openapi"])
    assert isinstance(doc["info"]["title"], str) and isinstance(doc["info"]["version"], str)
    methods = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
    for path, item in doc["paths"].items():
        assert path.startswith("/")
        templated = set(re.findall(r"{([^}]+)}", path))
        for method, op in item.items():
            assert method in methods | {"summary", "description", "parameters", "servers"}, method
            if method not in methods:
                continue
            assert op["responses"], f"{method} {path} has no responses"
            for status, resp in op["responses"].items():
                assert re.fullmatch(r"[1-5](\d\d|XX)|default", status), status
                assert isinstance(resp["description"], str)
            params = op.get("parameters", [])
            for p in params:
                assert p["in"] in ("query", "header", "path", "cookie") and p["name"]
                assert "schema" in p or "content" in p
                if p["in"] == "path":
                    assert p["required"] is True
            assert {p["name"] for p in params if p["in"] == "path"} == templated, f"{method} {path}"
            if "requestBody" in op:
                assert op["requestBody"]["content"]
    for ref in _refs(doc):
        _resolve_ref(doc, ref)


async def test_openapi_document(http: httpx.AsyncClient) -> None:
    r = await http.get("/openapi.json")
    assert r.status_code == 200
    doc = r.json()
    check_openapi_31(doc)
    assert doc == json.loads(json.dumps(openapi_document(registry)))
    for route in ROUTES:
        path = route.path.replace(":path}", "}")  # Starlette's path convertor is OpenAPI's plain parameter
        assert path in doc["paths"], route.path
        if isinstance(route, WebSocketRoute):
            assert "101" in doc["paths"][path]["get"]["responses"]
            continue
        assert isinstance(route, Route) and route.methods is not None
        for method in route.methods - {"HEAD"}:
            assert method.lower() in doc["paths"][path], f"{method} {route.path}"
    schemas = doc["components"]["schemas"]
    assert set(schemas["SendMessage"]["properties"]) == {
        "body",
        "wait",
        "timeout",
        "block",
        "delay",
        "idempotency_key",
    }
    assert schemas["SendMessage"]["additionalProperties"] is False
    assert set(doc["components"]["schemas"]) >= {"SendMessage", "ResolveActor", "CallAction", "Error"}
    assert set(schemas["Error"]["properties"]["error"]["properties"]["code"]["enum"]) >= {
        "bad_request",
        "unauthorized",
        "not_found",
        "actor_exists",
        "message_too_large",
        "validation_error",
        "queue_full",
        "actor_error",
        "unavailable",
    }
    listing = {p["name"] for p in doc["paths"]["/v1/actors"]["get"]["parameters"]}
    assert listing == {"name", "limit", "after", "key_prefix"}

    actors = doc["x-actorq-actors"]
    assert set(actors) == set(registry.definitions)
    schemas = doc["components"]["schemas"]

    def resolved(schema: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in schema:
            schema = schemas[schema["$ref"].rsplit("/", 1)[-1]]
        return schema

    tasks = actors["inbox"]["queues"]["tasks"]
    body = resolved(tasks["body"])
    assert body["type"] == "object"
    assert body["properties"] == {
        "title": {"title": "Title", "type": "string"},
        "priority": {"title": "Priority", "type": "integer"},
    }
    assert sorted(body["required"]) == ["priority", "title"]
    assert (tasks["max_size"], tasks["max_message_bytes"]) == (1000, 65536)
    assert actors["inbox"]["queues"]["small"]["max_message_bytes"] == 100
    assert actors["inbox"]["queues"]["free"]["body"] == {}, "Any accepts anything"
    jobs = actors["api"]["queues"]["jobs"]
    assert resolved(jobs["response"])["properties"] == {"doubled": {"title": "Doubled", "type": "integer"}}
    assert resolved(actors["gated"]["queues"]["in"]["body"]) == {"type": "integer"}
    assert actors["gated"]["queues"]["in"]["max_size"] == 2
    assert actors["inbox"]["actions"]["two"]["params"] == ["a", "b"]
    assert actors["api"]["actions"]["add"]["params"] == ["by"]


async def test_metrics(client: AsyncClient, http: httpx.AsyncClient) -> None:
    """The route answers Prometheus text; every series is in tests/test_metrics.py."""

    def read(text: str) -> dict[str, float]:
        out: dict[str, float] = {}
        for family in text_string_to_metric_families(text):  # a real parser: the format is valid
            for sample in family.samples:
                if sample.labels.get("actor", "api") == "api":  # this test's own actor type
                    out[sample.name] = out.get(sample.name, 0.0) + sample.value
        return out

    r = await http.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    assert "# TYPE actorq_messages_sent_total counter" in r.text
    assert "# TYPE actorq_awake_actors gauge" in r.text
    before = read(r.text)  # counters are per process: compare, never assume a start value
    h = client.api.get_or_create(["metrics"])
    for i in range(3):
        await h.send("idle", i)
    await h.send("jobs", {"n": 1}, wait=True, timeout=10)
    await h.add(1)
    conn = await h.connect()
    await conn.add(1)
    await conn.close()
    after = read((await http.get("/metrics")).text)
    assert after["actorq_messages_sent_total"] - before.get("actorq_messages_sent_total", 0) == 4
    assert after["actorq_actions_total"] - before.get("actorq_actions_total", 0) == 2
    assert after["actorq_awake_actors"] == (await http.get("/healthz")).json()["awake_actors"] == 1


# -- actors --------------------------------------------------------------------------------------
async def test_list_actors_with_name_filter_and_pagination(
    client: AsyncClient, http: httpx.AsyncClient
) -> None:
    ids = {await new_actor(http, "inbox", [f"i{n}"]) for n in range(5)}
    ids |= {await new_actor(http, "store", [f"s{n}"]) for n in range(2)}
    r = await http.get("/v1/actors")
    everyone = r.json()["actors"]
    assert [a["actor_id"] for a in everyone] == sorted(ids), "ordered by actor id"
    assert all(set(a) == {"actor_id", "name", "key", "created", "awake"} for a in everyone)
    assert sorted(a["key"][0] for a in everyone if a["name"] == "store") == ["s0", "s1"]

    inboxes = (await http.get("/v1/actors", params={"name": "inbox"})).json()["actors"]
    assert sorted(a["key"][0] for a in inboxes) == [f"i{n}" for n in range(5)]
    assert {a["name"] for a in inboxes} == {"inbox"}

    pages: list[list[str]] = []
    after: str | None = None
    while True:
        params = {"name": "inbox", "limit": "2", **({"after": after} if after else {})}
        page = [a["actor_id"] for a in (await http.get("/v1/actors", params=params)).json()["actors"]]
        if not page:
            break
        pages.append(page)
        after = page[-1]
    assert [len(p) for p in pages] == [2, 2, 1]
    assert [i for page in pages for i in page] == [a["actor_id"] for a in inboxes], "no gaps, no repeats"

    first = await client.list_actors(limit=3)
    rest = await client.list_actors(after=first[-1].actor_id)
    assert [a.actor_id for a in first + rest] == [a["actor_id"] for a in everyone]
    assert [a.actor_id for a in await client.list_actors("store")] == sorted(
        a["actor_id"] for a in everyone if a["name"] == "store"
    )


async def test_get_actor_and_its_awake_flag(client: AsyncClient, http: httpx.AsyncClient) -> None:
    key = ["org/repo", "é ü", ""]
    r = await http.post("/v1/actors", json={"name": "sleepy", "key": key})
    assert r.status_code == 201
    created = r.json()
    assert created == {"actor_id": created["actor_id"], "name": "sleepy", "key": key, "created": True}
    aid = created["actor_id"]
    again = await http.post("/v1/actors", json={"name": "sleepy", "key": key, "mode": "get"})
    assert again.status_code == 200 and again.json() == {**created, "created": False}

    async def awake() -> bool:
        info = (await http.get(f"/v1/actors/{aid}")).json()
        assert {k: info[k] for k in ("actor_id", "name", "key")} == {
            "actor_id": aid,
            "name": "sleepy",
            "key": key,
        }
        return bool(info["awake"])

    assert (await http.post(f"/v1/actors/{aid}/actions/ping")).json() == {"result": "pong"}
    assert await awake()

    async def asleep() -> bool:
        return not await awake()

    await wait_for(asleep, "the actor to fall asleep (sleep_timeout=0.2)")
    assert (await http.post(f"/v1/actors/{aid}/actions/ping", json={"args": []})).json()["result"] == "pong"
    assert await awake(), "an action wakes it"


# -- queues and messages -------------------------------------------------------------------------
async def test_queue_stats(client: AsyncClient, http: httpx.AsyncClient) -> None:
    api = await new_actor(http, "api", ["stats"])
    for n in (1, 2):
        assert (await send(http, api, "jobs", body={"n": n}, wait=True, timeout=10)).json()[
            "status"
        ] == "completed"
    for i in range(3):
        assert (await send(http, api, "idle", body=i)).status_code == 201
    assert (await send(http, api, "idle", body="later", delay=60)).status_code == 201
    assert await queues(http, api) == {
        "jobs": {
            "queue": "jobs",
            "pending": 0,
            "delayed": 0,
            "in_flight": 0,
            "completed": 2,
            "dead": 0,
            "max_size": 1000,
        },
        "idle": {
            "queue": "idle",
            "pending": 3,
            "delayed": 1,
            "in_flight": 0,
            "completed": 0,
            "dead": 0,
            "max_size": 1000,
        },
    }, "pending counts ready messages; delayed ones are counted apart"

    gated = await new_actor(http, "gated", ["stats"])
    await send(http, gated, "in", body=1)
    await wait_for(lambda: _in_flight_is(http, gated, 1), "the first message to be in flight")
    await send(http, gated, "in", body=2)
    stats = await queues(http, gated)
    assert {k: stats["in"][k] for k in ("pending", "in_flight", "completed", "max_size")} == {
        "pending": 1,
        "in_flight": 1,
        "completed": 0,
        "max_size": 2,
    }
    flaky = await new_actor(http, "flaky", ["stats"])
    tag = uuid.uuid4().hex
    r = await send(http, flaky, "work", body={"tag": tag, "fail_times": 9}, wait=True, timeout=20)
    assert r.json()["status"] == "failed"
    assert (await queues(http, flaky))["work"]["dead"] == 1
    info = await client.api.get_for_id(api).queues()
    assert [(q.queue, q.pending, q.delayed, q.completed) for q in info] == [
        ("jobs", 0, 0, 2),
        ("idle", 3, 1, 0),
    ]
    await client.gated.get_for_id(gated).open()  # let the held handler finish before shutdown


async def _in_flight_is(http: httpx.AsyncClient, actor_id: str, count: int) -> bool:
    r = await http.get(f"/v1/actors/{actor_id}/messages", params={"status": "in_flight"})
    return len(r.json()["messages"]) == count


async def test_pending_and_in_flight_listing(client: AsyncClient, http: httpx.AsyncClient) -> None:
    gid = await new_actor(http, "gated", ["listing"])
    t0 = time.time()
    for body in (10, 11, 12):
        assert (await send(http, gid, "in", body=body)).status_code == 201
        if body == 10:
            await wait_for(lambda: _in_flight_is(http, gid, 1), "message 1 in flight")
    in_flight = (await http.get(f"/v1/actors/{gid}/messages", params={"status": "in_flight"})).json()
    [m] = in_flight["messages"]
    assert set(m) == {"id", "queue", "attempt", "created_at", "available_at", "body"}
    assert (m["id"], m["queue"], m["attempt"]) == (1, "in", 1)
    assert t0 - 1 < m["created_at"] <= time.time()
    pending = (await http.get(f"/v1/actors/{gid}/messages")).json()["messages"]  # default: pending
    assert [(p["id"], p["queue"], p["attempt"]) for p in pending] == [(2, "in", 0), (3, "in", 0)]
    limited = (await http.get(f"/v1/actors/{gid}/messages", params={"limit": "1", "queue": "in"})).json()
    assert [p["id"] for p in limited["messages"]] == [2]
    assert [p["id"] for p in await client.gated.get_for_id(gid).messages("pending")] == [2, 3]
    assert [p["id"] for p in await client.gated.get_for_id(gid).messages("in_flight")] == [1]

    sid = await new_actor(http, "store", ["listing"])
    await send(http, sid, "q", body="now")
    await send(http, sid, "q", body="later", delay=120)
    listed = (await http.get(f"/v1/actors/{sid}/messages")).json()["messages"]
    assert [p["id"] for p in listed] == [1, 2], "delayed messages are pending too"
    assert listed[1]["available_at"] - listed[1]["created_at"] == pytest.approx(120, abs=1)

    await client.gated.get_for_id(gid).open()
    for status in ("pending", "in_flight"):

        async def drained(status: str = status) -> bool:
            r = await http.get(f"/v1/actors/{gid}/messages", params={"status": status})
            return r.json()["messages"] == []

        await wait_for(drained, f"no {status} messages")


async def test_dead_letters_over_http(client: AsyncClient, http: httpx.AsyncClient) -> None:
    fid = await new_actor(http, "flaky", ["dead"])
    tag = uuid.uuid4().hex
    t0 = time.time()
    r = await send(http, fid, "work", body={"tag": tag, "fail_times": 2}, wait=True, timeout=20)
    assert r.json()["status"] == "failed" and "poison" in r.json()["error"]
    doomed = await send(
        http, fid, "work", body={"tag": tag + "-doomed", "fail_times": 99}, wait=True, timeout=20
    )
    assert doomed.json()["status"] == "failed"

    letters = (await http.get(f"/v1/actors/{fid}/dead-letters")).json()["dead_letters"]
    assert [(d["id"], d["queue"], d["body"]["tag"], d["attempt"]) for d in letters] == [
        (1, "work", tag, 2),
        (2, "work", tag + "-doomed", 2),
    ]
    first = letters[0]
    assert set(first) == {"id", "queue", "body", "attempt", "error", "created_at", "failed_at"}
    assert first["error"] == f"RuntimeError: poison {tag} on attempt 2"
    assert t0 - 1 < first["created_at"] <= first["failed_at"] <= time.time()
    assert (
        len((await http.get(f"/v1/actors/{fid}/dead-letters", params={"limit": "1"})).json()["dead_letters"])
        == 1
    )

    # retry: back to pending with the same id, delivered again (attempts counted from 0)
    r = await http.post(f"/v1/actors/{fid}/dead-letters/1/retry")
    assert r.status_code == 200 and r.json() == {"ok": True}
    done = (await http.get(f"/v1/actors/{fid}/messages/1", params={"wait": "true", "timeout": "10"})).json()
    assert (done["id"], done["status"], done["response"]) == (1, "completed", {"tag": tag, "attempt": 1})
    assert await client.flaky.get_for_id(fid).attempts(tag) == [1, 2, 1]
    # delete: gone for good
    r = await http.delete(f"/v1/actors/{fid}/dead-letters/2")
    assert r.status_code == 200 and r.json() == {"ok": True}
    assert (await http.get(f"/v1/actors/{fid}/dead-letters")).json() == {"dead_letters": []}
    assert (await http.get(f"/v1/actors/{fid}/messages/2")).status_code == 404
    assert (await http.post(f"/v1/actors/{fid}/dead-letters/2/retry")).status_code == 404
    assert (await http.delete(f"/v1/actors/{fid}/dead-letters/2")).status_code == 404
    assert (await http.post(f"/v1/actors/{fid}/dead-letters/1/retry")).status_code == 404, "no longer dead"
    assert {
        k: v for k, v in (await queues(http, fid))["work"].items() if k in ("completed", "dead", "pending")
    } == {
        "completed": 1,
        "dead": 0,
        "pending": 0,
    }


async def test_result_lookup_with_and_without_wait(client: AsyncClient, http: httpx.AsyncClient) -> None:
    gid = await new_actor(http, "gated", ["results"])
    first = (await send(http, gid, "in", body=5)).json()
    assert first == {"id": 1, "status": "accepted", "duplicate": False}
    await wait_for(lambda: _in_flight_is(http, gid, 1), "message 1 in flight")
    second = (await send(http, gid, "in", body=6)).json()

    async def lookup(msg_id: int, **params: str) -> dict[str, Any]:
        r = await http.get(f"/v1/actors/{gid}/messages/{msg_id}", params=params)
        assert r.status_code == 200, r.text
        out: dict[str, Any] = r.json()
        return out

    assert await lookup(1) == {"id": 1, "status": "in_flight", "response": None, "attempt": 1}
    assert await lookup(second["id"]) == {"id": 2, "status": "pending", "response": None, "attempt": 0}
    assert await lookup(1, wait="true", timeout="0.2") == {
        "id": 1,
        "status": "timed_out",
        "response": None,
        "attempt": 1,
    }
    # a waited send that times out does not cancel its message
    r = await send(http, gid, "in", body=7, wait=True, timeout=0.2)
    assert (r.status_code, r.json()["status"], r.json()["id"]) == (200, "timed_out", 3)

    waiter = asyncio.create_task(lookup(2, wait="true", timeout="30"))
    await asyncio.sleep(0.2)
    assert not waiter.done()
    await http.post(f"/v1/actors/{gid}/actions/open")
    assert (await waiter)["status"] == "completed" and (await waiter)["response"] == {"doubled": 12}
    assert await lookup(1) == {"id": 1, "status": "completed", "response": {"doubled": 10}, "attempt": 1}
    assert (await lookup(3, wait="1", timeout="10"))["response"] == {"doubled": 14}
    h = client.gated.get_for_id(gid)
    r3 = await h.result(3)
    assert (r3.id, r3.status, r3.response, r3.ok) == (3, "completed", {"doubled": 14}, True)
    assert (await h.result(3, wait=True, timeout=5)).response == {"doubled": 14}


async def test_idempotency_key_header_and_field(client: AsyncClient, http: httpx.AsyncClient) -> None:
    sid = await new_actor(http, "store", ["idem"])
    other = await new_actor(http, "store", ["idem-other"])
    path = f"/v1/actors/{sid}/queues/q/messages"
    r1 = await http.post(path, json={"body": "first"}, headers={"Idempotency-Key": "hdr-1"})
    r2 = await http.post(path, json={"body": "second"}, headers={"Idempotency-Key": "hdr-1"})
    assert (r1.status_code, r1.json()) == (201, {"id": 1, "status": "accepted", "duplicate": False})
    assert (r2.status_code, r2.json()) == (200, {"id": 1, "status": "accepted", "duplicate": True})
    # the envelope's key wins over the header
    r3 = await http.post(
        path, json={"body": "third", "idempotency_key": "env-1"}, headers={"Idempotency-Key": "hdr-1"}
    )
    assert (r3.status_code, r3.json()["id"], r3.json()["duplicate"]) == (201, 2, False)
    r4 = await http.post(path, json={"body": "fourth"}, headers={"Idempotency-Key": "env-1"})
    assert (r4.status_code, r4.json()["id"], r4.json()["duplicate"]) == (200, 2, True)
    # keys are per actor
    r5 = await http.post(
        f"/v1/actors/{other}/queues/q/messages", json={"body": "x"}, headers={"Idempotency-Key": "hdr-1"}
    )
    assert (r5.status_code, r5.json()["id"]) == (201, 1)
    assert (await queues(http, sid))["q"]["pending"] == 2, "duplicates stored nothing"

    # a waited send repeated with its key answers with the first message's result
    aid = await new_actor(http, "api", ["idem"])
    w1 = await send(http, aid, "jobs", body={"n": 4}, wait=True, timeout=10, idempotency_key="job-4")
    w2 = await send(http, aid, "jobs", body={"n": 5}, wait=True, timeout=10, idempotency_key="job-4")
    assert w1.json()["response"] == w2.json()["response"] == {"doubled": 8}
    assert w1.json()["id"] == w2.json()["id"] == 1
    assert (await queues(http, aid))["jobs"]["completed"] == 1
    h = client.store.get_for_id(sid)
    a = await h.send("q", "client", idempotency_key="cli")
    b = await h.send("q", "client again", idempotency_key="cli")
    assert (a.id, a.duplicate, b.id, b.duplicate) == (3, False, 3, True)


async def test_batch_send(client: AsyncClient, http: httpx.AsyncClient) -> None:
    iid = await new_actor(http, "inbox", ["batch"])
    r = await http.post(
        f"/v1/actors/{iid}/batch",
        json={
            "messages": [
                {"queue": "free", "body": 1, "idempotency_key": "b1"},
                {"queue": "tasks", "body": {"title": "no priority"}},
                {"queue": "nosuch", "body": 2},
                {"queue": "free", "body": 3},
                {"queue": "free", "body": 1, "idempotency_key": "b1"},
            ]
        },
    )
    assert r.status_code == 200
    results = r.json()["results"]
    assert results[0] == {"id": 1, "status": "accepted", "duplicate": False}
    assert (results[1]["status"], results[1]["error"]["code"]) == (422, "validation_error")
    assert (results[2]["status"], results[2]["error"]["code"]) == (404, "not_found")
    assert results[3] == {"id": 2, "status": "accepted", "duplicate": False}
    assert results[4] == {"id": 1, "status": "accepted", "duplicate": True}

    async def processed() -> bool:
        return await client.inbox.get_for_id(iid).seen() == [["free", 1], ["free", 3]]

    await wait_for(processed, "the two accepted items to be processed, in order")


# -- batches on the batch test registry: every way an item fails, alone -------------------------
async def test_batch_endpoint_per_item_results() -> None:
    seen.clear()
    async with batch_registry.test() as client, httpx.AsyncClient(base_url=client.url) as http:
        h = client.b.get_or_create(["x"])
        await h.resolve()
        messages = [
            {"queue": "q", "body": {"n": 1}, "idempotency_key": "a"},
            {"queue": "q", "body": "not a dict"},
            {"queue": "nosuch", "body": {}},
            {"queue": "tiny", "body": "x" * 40},
            {"queue": "small", "body": 1},
            {"queue": "small", "body": 2},
            {"queue": "q", "body": {"n": 2}, "idempotency_key": "a"},
            {"queue": "q", "body": {"n": 3}},
        ]
        r = await http.post(f"/v1/actors/{h.actor_id}/batch", json={"messages": messages})
        assert r.status_code == 200
        results = r.json()["results"]
        assert [x.get("id") for x in results] == [1, None, None, None, 2, 3, 1, 4]
        assert [x.get("error", {}).get("code") for x in results] == [
            None,
            "validation_error",
            "not_found",
            "message_too_large",
            None,
            None,
            None,
            None,
        ]
        assert results[6]["duplicate"] is True
        r = await http.post(f"/v1/actors/{h.actor_id}/batch", json={"messages": []})
        assert r.status_code == 400
        r = await http.post(f"/v1/actors/{h.actor_id}/batch", json={"messages": [{"body": 1}]})
        assert r.status_code == 400, "an item needs its queue"
        for _ in range(200):
            if len(seen) == 4:
                break
            await asyncio.sleep(0.01)
        assert seen == [(1, {"n": 1}), (2, 1), (3, 2), (4, {"n": 3})]


async def test_batch_to_any_actors_per_item_results_in_order() -> None:
    seen.clear()
    async with batch_registry.test() as client, httpx.AsyncClient(base_url=client.url) as http:
        a, b = client.b.get_or_create(["any-a"]), client.b.get_or_create(["any-b"])
        await a.resolve()
        await b.resolve()
        messages = [
            {"actor_id": a.actor_id, "queue": "q", "body": {"n": 1}},
            {"actor_id": b.actor_id, "queue": "q", "body": {"n": 1}},
            {"actor_id": "0" * 20, "queue": "q", "body": {}},
            {"actor_id": b.actor_id, "queue": "q", "body": "not a dict"},
            {"actor_id": a.actor_id, "queue": "q", "body": {"n": 2}, "idempotency_key": "k"},
            {"actor_id": b.actor_id, "queue": "small", "body": 1},
            {"actor_id": a.actor_id, "queue": "q", "body": {"n": 2}, "idempotency_key": "k"},
        ]
        r = await http.post("/v1/batch", json={"messages": messages})
        assert r.status_code == 200, r.text
        results = r.json()["results"]
        assert [x.get("id") for x in results] == [1, 1, None, None, 2, 2, 2]
        assert [x.get("error", {}).get("code") for x in results] == [
            None,
            None,
            "not_found",
            "validation_error",
            None,
            None,
            None,
        ]
        assert results[2]["status"] == 404 and results[6]["duplicate"] is True
        for _ in range(300):
            if len(seen) == 4:
                break
            await asyncio.sleep(0.01)
        assert sorted(seen, key=str) == sorted([(1, {"n": 1}), (2, {"n": 2}), (1, {"n": 1}), (2, 1)], key=str)


# -- mounted inside another app ------------------------------------------------------------------
def outer_app(inner: Starlette) -> Starlette:
    async def home(request: Request) -> PlainTextResponse:
        return PlainTextResponse("the host application")

    return Starlette(routes=[Route("/", home), Mount("/actorq", app=inner)])


async def test_mounted_under_a_prefix_over_asgi(tmp_path: Path) -> None:
    inner = registry.app(storage=tmp_path / "mounted")
    transport = httpx.ASGITransport(app=outer_app(inner))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://host", timeout=30) as http:
            assert (await http.get("/")).text == "the host application"
            assert (await http.get("/actorq/healthz")).json()["status"] == "ok"
            r = await http.post("/actorq/v1/actors", json={"name": "api", "key": ["m"]})
            assert r.status_code == 201
            aid = r.json()["actor_id"]
            r = await http.post(
                f"/actorq/v1/actors/{aid}/queues/jobs/messages",
                json={"body": {"n": 8}, "wait": True, "timeout": 10},
            )
            assert r.json()["status"] == "completed" and r.json()["response"] == {"doubled": 16}
            assert (await http.post(f"/actorq/v1/actors/{aid}/actions/add", json={"args": [3]})).json() == {
                "result": 3
            }
            assert "/v1/actors" in (await http.get("/actorq/openapi.json")).json()["paths"]
            r = await http.get("/actorq/v1/nothing")
            assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
            assert (await http.get("/v1/actors")).status_code == 404, "only under the prefix"
    finally:
        await inner.state.runtime.stop()
    # what was sent through the mounted app is on disk
    async with registry.test(storage=tmp_path / "mounted") as client:
        [a] = await client.list_actors("api")
        assert await client.api.get_for_id(a.actor_id).add(0) == 3
        assert (await client.api.get_for_id(a.actor_id).result(1)).response == {"doubled": 16}


async def test_mounted_under_a_prefix_on_uvicorn_with_a_token(tmp_path: Path) -> None:
    inner = registry.app(storage=tmp_path / "mounted", token="tok")
    try:
        async with serve_asgi(outer_app(inner)) as url:
            async with httpx.AsyncClient(base_url=url) as http:
                assert (await http.get("/")).text == "the host application"
                assert (await http.get("/actorq/healthz")).status_code == 200, (
                    "/healthz stays open when mounted"
                )
                assert (await http.get("/actorq/v1/actors")).status_code == 401
            async with create_client(url + "/actorq", token="tok") as client:
                h = client.api.get_or_create(["mounted"])
                r = await h.send("jobs", {"n": 2}, wait=True, timeout=10)
                assert r.ok and r.response == {"doubled": 4}
                async with await h.connect() as conn:  # the WebSocket under the prefix, with the token
                    assert await conn.shout("mounted") == "MOUNTED"
                    assert await next_named(conn, "shout") == "mounted"
                assert [a.key for a in await client.list_actors()] == [["mounted"]]
            async with create_client(url + "/actorq") as anonymous:
                with pytest.raises(Unauthorized):
                    await anonymous.api.get_or_create(["mounted"]).resolve()
    finally:
        await inner.state.runtime.stop()
