"""Bad values in otherwise well-formed requests: each is a typed 4xx naming the field in
``details``, and stores nothing.

Ids out of 64-bit range or not integers; strings that are not Unicode (lone surrogates, which
JSON escapes can spell); keys with NUL, over 1 KiB, not lists of strings; ``delay`` / ``timeout``
that are not finite numbers in range (NaN, Infinity, negative, strings, booleans, ``delay`` over
366 days, ``timeout`` over the server's ``max_wait``); ``limit`` outside 1..1000. Through raw
HTTP, the WebSocket, and both clients.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from actorq import BadRequest
from actorq.client import AsyncClient
from tests.apps.api_app import registry
from tests.test_bad_input import RawRequest, both_raise, error_of, raw, snapshot

MAX_WAIT = 30.0
DAY = 86400


@pytest.fixture
async def client() -> AsyncIterator[AsyncClient]:
    async with registry.test(max_wait=MAX_WAIT) as c:
        h = c.inbox.get_or_create(["main"])
        assert (await h.send("tasks", {"title": "first", "priority": 1}, wait=True, timeout=10)).ok
        await c.store.get_or_create(["s"]).send("q", "kept")
        yield c


async def ids(client: AsyncClient) -> tuple[str, str]:
    return (
        await client.inbox.get_or_create(["main"]).resolve(),
        await client.store.get_or_create(["s"]).resolve(),
    )


def locs(err: dict[str, Any]) -> list[list[Any]]:
    details = err.get("details")
    assert isinstance(details, list) and details, err
    assert all({"loc", "msg", "type"} <= set(d) and d["msg"] for d in details), details
    return [d["loc"] for d in details]


def names_field(err: dict[str, Any], *field: Any) -> None:
    """Some error in ``details`` is at (or inside) ``field``."""
    found = locs(err)
    assert any(loc[: len(field)] == list(field) for loc in found), (field, found)


# -- message ids -----------------------------------------------------------------------------------
BAD_IDS = [
    "9223372036854775808",  # 2**63
    "18446744073709551616",  # 2**64
    "99999999999999999999999999999",
    "-1",
    "0",
    "1.5",
    "1e3",
    "abc",
    "+1",
    "1_000",
    "%201",
    "%D9%A1",  # an Arabic-Indic digit one: int() would take it
    "0x10",
]


@pytest.mark.parametrize("bad", BAD_IDS)
async def test_message_ids_out_of_range_or_not_integers_are_400(client: AsyncClient, bad: str) -> None:
    aid, _ = await ids(client)
    before = await snapshot(client)
    for method, path in [
        ("GET", f"/v1/actors/{aid}/messages/{bad}"),
        ("GET", f"/v1/actors/{aid}/messages/{bad}?wait=true&timeout=0.1"),
        ("POST", f"/v1/actors/{aid}/dead-letters/{bad}/retry"),
        ("DELETE", f"/v1/actors/{aid}/dead-letters/{bad}"),
    ]:
        err = error_of(await raw(client, method, path), 400, "bad_request")
        names_field(err, "path", "msg_id")
    assert await snapshot(client) == before


async def test_the_largest_id_is_valid_and_unknown(client: AsyncClient) -> None:
    aid, _ = await ids(client)
    top = 2**63 - 1
    error_of(await raw(client, "GET", f"/v1/actors/{aid}/messages/{top}"), 404, "not_found")
    error_of(await raw(client, "POST", f"/v1/actors/{aid}/dead-letters/{top}/retry"), 404, "not_found")
    error_of(await raw(client, "DELETE", f"/v1/actors/{aid}/dead-letters/{top}"), 404, "not_found")


async def test_clients_get_bad_request_for_out_of_range_ids(client: AsyncClient) -> None:
    before = await snapshot(client)
    for bad in (2**63, 2**70, -1, 0):
        a, _ = await both_raise(
            client, lambda c, i=bad: c.inbox.get_or_create(["main"]).result(i), BadRequest
        )
        assert a.details[0]["loc"] == ["path", "msg_id"]
        await both_raise(
            client, lambda c, i=bad: c.inbox.get_or_create(["main"]).retry_dead_letter(i), BadRequest
        )
        await both_raise(
            client, lambda c, i=bad: c.inbox.get_or_create(["main"]).delete_dead_letter(i), BadRequest
        )
    assert await snapshot(client) == before


# -- lone surrogates ---------------------------------------------------------------------------------
LONE = "\\ud800"  # as the JSON escape: six ASCII bytes on the wire
LOW = "\\udfff"


def surrogate_requests(aid: str) -> list[tuple[str, bytes, list[Any]]]:
    q = f"/v1/actors/{aid}/queues/free/messages"
    return [
        (q, f'{{"body": "{LONE}"}}'.encode(), ["body"]),
        (q, f'{{"body": {{"ok": ["fine", "x{LOW}y"]}}}}'.encode(), ["body", "ok", 1]),
        (q, f'{{"body": {{"{LONE}": 1}}}}'.encode(), ["body"]),
        (q, f'{{"body": 1, "idempotency_key": "k{LONE}"}}'.encode(), ["idempotency_key"]),
        (
            f"/v1/actors/{aid}/batch",
            f'{{"messages": [{{"queue": "f{LONE}", "body": 1}}]}}'.encode(),
            ["messages", 0, "queue"],
        ),
        (
            f"/v1/actors/{aid}/batch",
            f'{{"messages": [{{"queue": "free", "body": "{LONE}"}}]}}'.encode(),
            ["messages", 0, "body"],
        ),
        (
            f"/v1/actors/{aid}/batch",
            f'{{"messages": [{{"queue": "free", "body": 1, "idempotency_key": "{LONE}"}}]}}'.encode(),
            ["messages", 0, "idempotency_key"],
        ),
        (
            "/v1/batch",
            f'{{"messages": [{{"actor_id": "{aid}{LONE}", "queue": "free"}}]}}'.encode(),
            ["messages", 0, "actor_id"],
        ),
        (
            "/v1/batch",
            f'{{"messages": [{{"actor_id": "{aid}", "queue": "free", "body": "{LONE}"}}]}}'.encode(),
            ["messages", 0, "body"],
        ),
        ("/v1/actors", f'{{"name": "inbox", "key": ["a{LONE}"]}}'.encode(), ["key", 0]),
        ("/v1/actors", f'{{"name": "in{LONE}box", "key": ["a"]}}'.encode(), ["name"]),
        (f"/v1/actors/{aid}/actions/two", f'{{"args": [1, "{LONE}"]}}'.encode(), ["args", 1]),
        (
            f"/v1/actors/{aid}/actions/two",
            f'{{"args": [1, "x"], "kwargs": {{"{LOW}": 1}}}}'.encode(),
            ["kwargs"],
        ),
    ]


async def test_lone_surrogates_anywhere_in_a_body_are_400(client: AsyncClient) -> None:
    aid, _ = await ids(client)
    before = await snapshot(client)
    for path, content, field in surrogate_requests(aid):
        err = error_of(await raw(client, "POST", path, content), 400, "bad_request")
        names_field(err, *field)
        assert any(d["type"] == "string_unicode" for d in err["details"]), err
        await both_raise(
            client, lambda c, p=path, b=content: c.request(RawRequest("POST", p, raw=b)), BadRequest
        )
    assert await snapshot(client) == before


async def test_surrogate_pairs_are_ordinary_characters(client: AsyncClient) -> None:
    h = client.inbox.get_or_create(["main"])
    aid = await h.resolve()
    r = await raw(client, "POST", f"/v1/actors/{aid}/queues/free/messages", b'{"body": "\\ud83d\\ude00"}')
    assert r.status_code == 201, r.text
    assert (await h.result(r.json()["id"], wait=True, timeout=10)).ok
    assert (await h.seen())[-1] == ["free", "\U0001f600"]


async def test_clients_send_lone_surrogates_as_a_typed_bad_request(client: AsyncClient) -> None:
    before = await snapshot(client)
    h = lambda c: c.inbox.get_or_create(["main"])  # noqa: E731
    await both_raise(client, lambda c: h(c).send("free", "\ud800"), BadRequest)
    await both_raise(client, lambda c: h(c).send("free", {"x": ["\udc00"]}, wait=True, timeout=1), BadRequest)
    await both_raise(client, lambda c: h(c).send("free", 1, idempotency_key="\ud800"), BadRequest)
    await both_raise(client, lambda c: h(c).two(1, "\ud800"), BadRequest)
    await both_raise(client, lambda c: c.inbox.get_or_create(["\ud800"]).resolve(), BadRequest)
    assert await snapshot(client) == before


# -- keys ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("key", "loc"),
    [
        pytest.param('["a\\u0000b"]', ["key", 0], id="nul"),
        pytest.param('["ok", "\\u0000"]', ["key", 1], id="nul-second-part"),
        pytest.param(json.dumps(["x" * 1025]), ["key"], id="over-1KiB-one-part"),
        pytest.param(json.dumps(["x" * 600, "y" * 500]), ["key"], id="over-1KiB-in-total"),
        pytest.param(json.dumps(["é" * 513]), ["key"], id="over-1KiB-in-UTF-8"),
        pytest.param('"main"', ["key"], id="a-string"),
        pytest.param('{"a": 1}', ["key"], id="an-object"),
        pytest.param("[1]", ["key", 0], id="int-part"),
        pytest.param("[null]", ["key", 0], id="null-part"),
        pytest.param("[true]", ["key", 0], id="bool-part"),
        pytest.param('[["a"]]', ["key", 0], id="nested"),
    ],
)
async def test_bad_keys_are_400_and_create_nothing(client: AsyncClient, key: str, loc: list[Any]) -> None:
    before = await snapshot(client)
    for mode in ("get_or_create", "create", "get"):
        body = f'{{"name": "inbox", "key": {key}, "mode": "{mode}"}}'.encode()
        err = error_of(await raw(client, "POST", "/v1/actors", body), 400, "bad_request")
        names_field(err, *loc)
    assert await snapshot(client) == before


async def test_a_key_of_exactly_1KiB_is_fine(client: AsyncClient) -> None:
    for key in (["x" * 1024], ["é" * 512], ["a" * 512, "b" * 512]):
        r = await raw(client, "POST", "/v1/actors", json.dumps({"name": "store", "key": key}).encode())
        assert r.status_code == 201, r.text


async def test_clients_refuse_bad_keys_with_bad_request(client: AsyncClient) -> None:
    before = await snapshot(client)
    for key in (["a\x00"], ["x" * 2000], ["y" * 700, "z" * 700]):
        a, _ = await both_raise(client, lambda c, k=key: c.inbox.get_or_create(k).resolve(), BadRequest)
        assert a.details[0]["loc"][0] == "key"
        await both_raise(client, lambda c, k=key: c.inbox.get_or_create(k).send("free", 1), BadRequest)
    assert await snapshot(client) == before


# -- delay and timeout ---------------------------------------------------------------------------------
NOT_SECONDS = [
    pytest.param("NaN", id="nan"),
    pytest.param("Infinity", id="infinity"),
    pytest.param("-Infinity", id="minus-infinity"),
    pytest.param("1e999", id="overflows-to-infinity"),
    pytest.param("-1", id="negative"),
    pytest.param("-0.001", id="slightly-negative"),
    pytest.param('"5"', id="a-numeric-string"),
    pytest.param('"soon"', id="a-string"),
    pytest.param("true", id="true"),
    pytest.param("false", id="false"),
    pytest.param("[1]", id="a-list"),
    pytest.param('{"s": 1}', id="an-object"),
]


@pytest.mark.parametrize("value", NOT_SECONDS)
async def test_delay_and_timeout_must_be_finite_non_negative_numbers(client: AsyncClient, value: str) -> None:
    aid, sid = await ids(client)
    before = await snapshot(client)
    q = f"/v1/actors/{aid}/queues/free/messages"
    for path, content, loc in [
        (q, f'{{"body": 1, "delay": {value}}}', ["delay"]),
        (q, f'{{"body": 1, "timeout": {value}}}', ["timeout"]),
        (q, f'{{"body": 1, "wait": true, "timeout": {value}}}', ["timeout"]),
        (q, f'{{"body": 1, "block": true, "timeout": {value}}}', ["timeout"]),
        (
            f"/v1/actors/{aid}/batch",
            f'{{"messages": [{{"queue": "free", "delay": {value}}}]}}',
            ["messages", 0, "delay"],
        ),
        (
            "/v1/batch",
            f'{{"messages": [{{"actor_id": "{sid}", "queue": "q", "delay": {value}}}]}}',
            ["messages", 0, "delay"],
        ),
    ]:
        err = error_of(await raw(client, "POST", path, content.encode()), 400, "bad_request")
        names_field(err, *loc)
    assert await snapshot(client) == before


async def test_delay_over_366_days_and_timeout_over_max_wait_are_400(client: AsyncClient) -> None:
    aid, sid = await ids(client)
    before = await snapshot(client)
    q = f"/v1/actors/{aid}/queues/free/messages"
    too_long = 366 * DAY + 1
    for path, content, loc in [
        (q, f'{{"body": 1, "delay": {too_long}}}', ["delay"]),
        (q, '{"body": 1, "delay": 1e300}', ["delay"]),
        (q, f'{{"body": 1, "timeout": {MAX_WAIT + 0.5}}}', ["timeout"]),
        (q, f'{{"body": 1, "wait": true, "timeout": {10**30}}}', ["timeout"]),
        (
            f"/v1/actors/{aid}/batch",
            f'{{"messages": [{{"queue": "free", "delay": {too_long}}}]}}',
            ["messages", 0, "delay"],
        ),
        (
            "/v1/batch",
            f'{{"messages": [{{"actor_id": "{sid}", "queue": "q", "delay": {too_long}}}]}}',
            ["messages", 0, "delay"],
        ),
    ]:
        err = error_of(await raw(client, "POST", path, content.encode()), 400, "bad_request")
        names_field(err, *loc)
    assert await snapshot(client) == before
    # the limits themselves are fine (a plain send: its timeout only bounds the request)
    r = await raw(
        client,
        "POST",
        f"/v1/actors/{sid}/queues/q/messages",
        f'{{"body": 1, "delay": {366 * DAY}, "timeout": {MAX_WAIT}}}'.encode(),
    )
    assert r.status_code == 201, r.text


@pytest.mark.parametrize(
    "value", ["nan", "inf", "-inf", "infinity", "1e999", "-1", "soon", "True", str(MAX_WAIT + 1), ""]
)
async def test_result_wait_timeout_in_the_query_must_be_in_range(client: AsyncClient, value: str) -> None:
    aid, _ = await ids(client)
    for wait in ("true", "false"):  # checked even where it is not used
        r = await raw(client, "GET", f"/v1/actors/{aid}/messages/1?wait={wait}&timeout={value}")
        names_field(error_of(r, 400, "bad_request"), "query", "timeout")


async def test_clients_get_bad_request_for_bad_numbers(client: AsyncClient) -> None:
    before = await snapshot(client)
    h = lambda c: c.inbox.get_or_create(["main"])  # noqa: E731
    for delay in (float("nan"), float("inf"), -1.0, 366 * DAY + 1.0, True):
        a, _ = await both_raise(client, lambda c, d=delay: h(c).send("free", 1, delay=d), BadRequest)
        assert ["delay"] in [d["loc"] for d in a.details], a.details
    for timeout in (float("nan"), float("-inf"), MAX_WAIT + 1, 10.0**20):
        await both_raise(client, lambda c, t=timeout: h(c).send("free", 1, wait=True, timeout=t), BadRequest)
        await both_raise(client, lambda c, t=timeout: h(c).result(1, wait=True, timeout=t), BadRequest)
    assert await snapshot(client) == before


# -- limit ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "value", ["0", "1001", "-1", "1.5", "ten", "", "1e2", "%205", "99999999999999999999", "true"]
)
async def test_limit_outside_1_to_1000_is_400(client: AsyncClient, value: str) -> None:
    aid, _ = await ids(client)
    before = await snapshot(client)
    for path in ("/v1/actors", f"/v1/actors/{aid}/messages", f"/v1/actors/{aid}/dead-letters"):
        err = error_of(await raw(client, "GET", f"{path}?limit={value}"), 400, "bad_request")
        names_field(err, "query", "limit")
    assert await snapshot(client) == before


async def test_limit_bounds_are_accepted_and_clients_refuse_others(client: AsyncClient) -> None:
    aid, _ = await ids(client)
    for value in ("1", "1000"):
        for path in ("/v1/actors", f"/v1/actors/{aid}/messages", f"/v1/actors/{aid}/dead-letters"):
            assert (await raw(client, "GET", f"{path}?limit={value}")).status_code == 200
    for limit in (0, 1001):
        await both_raise(client, lambda c, n=limit: c.list_actors(limit=n), BadRequest)
        await both_raise(
            client, lambda c, n=limit: c.inbox.get_or_create(["main"]).messages("pending", n), BadRequest
        )
        await both_raise(
            client, lambda c, n=limit: c.inbox.get_or_create(["main"]).dead_letters(n), BadRequest
        )


@pytest.mark.parametrize("value", ["perhaps", "2", "", "truee"])
async def test_wait_in_the_query_must_be_a_boolean(client: AsyncClient, value: str) -> None:
    aid, _ = await ids(client)
    names_field(
        error_of(await raw(client, "GET", f"/v1/actors/{aid}/messages/1?wait={value}"), 400, "bad_request"),
        "query",
        "wait",
    )


# -- other strings that must stay out of storage -------------------------------------------------------
async def test_nul_in_ids_and_idempotency_keys_is_400(client: AsyncClient) -> None:
    aid, _ = await ids(client)
    before = await snapshot(client)
    q = f"/v1/actors/{aid}/queues/free/messages"
    for method, path, content, loc in [
        ("POST", q, b'{"body": 1, "idempotency_key": "a\\u0000b"}', ["idempotency_key"]),
        (
            "POST",
            "/v1/batch",
            f'{{"messages": [{{"actor_id": "{aid}\\u0000", "queue": "free"}}]}}'.encode(),
            ["messages", 0, "actor_id"],
        ),
        ("GET", f"/v1/actors/{aid}%00/queues", None, ["path", "actor_id"]),
        ("POST", f"/v1/actors/{aid}%00/queues/free/messages", b'{"body": 1}', ["path", "actor_id"]),
        ("GET", "/v1/actors?after=a%00b", None, ["query", "after"]),
    ]:
        names_field(error_of(await raw(client, method, path, content), 400, "bad_request"), *loc)
    r = await raw(
        client,
        "POST",
        q,
        b'{"body": 1}',
        headers={"Idempotency-Key": "k" * 201, "Content-Type": "application/json"},
    )
    names_field(error_of(r, 400, "bad_request"), "header", "idempotency-key")
    assert await snapshot(client) == before


# -- the same over the WebSocket ------------------------------------------------------------------------
async def test_bad_values_in_websocket_frames_are_error_frames(client: AsyncClient) -> None:
    h = client.api.get_or_create(["ws-fields"])
    aid = await h.resolve()
    url = client.url.replace("http", "ws", 1) + f"/v1/actors/{aid}/connect"
    cases: list[tuple[str, list[Any]]] = [
        (f'{{"type": "send", "id": 1, "queue": "idle", "body": "{LONE}"}}', ["body"]),
        (
            f'{{"type": "send", "id": 2, "queue": "idle", "body": 1, "idempotency_key": "{LONE}"}}',
            ["idempotency_key"],
        ),
        (f'{{"type": "action", "id": 3, "name": "shout", "args": ["{LONE}"]}}', ["args", 0]),
        (
            '{"type": "send", "id": 4, "queue": "jobs", "body": {"n": 1}, "wait": true, "timeout": NaN}',
            ["timeout"],
        ),
        (
            '{"type": "send", "id": 5, "queue": "jobs", "body": {"n": 1}, "wait": true, "timeout": -1}',
            ["timeout"],
        ),
        (
            '{"type": "send", "id": 6, "queue": "jobs", "body": {"n": 1}, "wait": true, "timeout": true}',
            ["timeout"],
        ),
        (
            json.dumps(
                {
                    "type": "send",
                    "id": 7,
                    "queue": "jobs",
                    "body": {"n": 1},
                    "wait": True,
                    "timeout": MAX_WAIT + 1,
                }
            ),
            ["timeout"],
        ),
        ('{"type": "send", "id": 8, "queue": "jobs", "body": {"n": 1}, "wait": "yes"}', ["wait"]),
        ('{"type": "action", "id": 9, "name": "add", "args": [Infinity]}', ["args", 0]),
    ]
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        assert (await ws.receive_json(timeout=5))["type"] == "init"
        for frame, loc in cases:
            await ws.send_str(frame)
            got = await ws.receive_json(timeout=5)
            assert got["type"] == "error" and got["error"]["code"] == "bad_request", (frame, got)
            names_field(got["error"], *loc)
        assert not ws.closed
    [jobs, idle] = await h.queues()
    assert (jobs.pending, jobs.completed, idle.pending) == (0, 0, 0), "no frame stored anything"
    assert await h.add(0) == 0, "no action ran"


# -- query parameters a route does not take -------------------------------------------------------------
async def test_unknown_or_repeated_query_parameters_are_400(client: AsyncClient) -> None:
    aid, sid = await ids(client)
    before = await snapshot(client)
    for method, path, content, name in [
        ("GET", "/v1/actors?limit=5&lmit=5", None, "lmit"),
        ("GET", "/v1/actors?=null", None, ""),
        ("GET", f"/v1/actors/{aid}/messages?status=pending&token=x", None, "token"),
        ("GET", f"/v1/actors/{aid}/messages/1?wait=false&delay=1", None, "delay"),
        ("GET", f"/v1/actors/{aid}/queues?limit=1", None, "limit"),
        ("POST", f"/v1/actors/{sid}/queues/q/messages?wait=true", b'{"body": 1}', "wait"),
        ("POST", f"/v1/actors/{sid}/batch?x=1", b'{"messages": [{"queue": "q"}]}', "x"),
        ("POST", "/v1/actors?name=store", b'{"name": "store", "key": ["q-extra"]}', "name"),
        ("POST", f"/v1/actors/{aid}/actions/seen?args=1", b"{}", "args"),
        ("GET", "/v1/actors?limit=1&limit=2", None, "limit"),
    ]:
        err = error_of(await raw(client, method, path, content), 400, "bad_request")
        names_field(err, "query", name)
    assert await snapshot(client) == before


async def test_a_method_a_path_does_not_have_is_405_with_allow(client: AsyncClient) -> None:
    aid, _ = await ids(client)
    before = await snapshot(client)
    for method, path, allow in [
        ("DELETE", "/v1/actors", {"GET", "HEAD", "POST"}),
        ("PUT", "/v1/actors", {"GET", "HEAD", "POST"}),
        ("GET", f"/v1/actors/{aid}/actions/seen", {"POST"}),
        ("GET", f"/v1/actors/{aid}/dead-letters/1", {"DELETE"}),
        ("POST", "/healthz", {"GET", "HEAD"}),
    ]:
        r = await raw(client, method, path)
        error_of(r, 405, "bad_request")
        assert {m.strip() for m in r.headers["allow"].split(",")} == allow, (method, path, r.headers)
    assert await snapshot(client) == before
