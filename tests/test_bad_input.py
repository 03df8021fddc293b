"""Bad input: every bad request gets a clear typed error and changes nothing.

For each case: the HTTP status and error ``code`` on the wire (raw httpx), the field ``details``
names, the exact exception class raised by the async client and by the sync client (run in a
thread: the server shares this event loop), and a snapshot of every actor, queue and processed
message taken before and after. Sections: unknown things (404), bodies failing their types (422,
413), full queues (429), envelopes that are not valid (400), bad values in well-formed requests
(ids out of 64-bit range, lone surrogates, keys with NUL or over 1 KiB, delays and timeouts that
are not finite numbers in range, limits outside 1..1000, unknown query parameters, methods a path
does not have), bodies that are not JSON (415), missing tokens (401), actions and handlers that
fail (422, 500), create/get conflicts (409, 404), oversized requests. Bad WebSocket frames are in
tests/test_websocket.py.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

import httpx
import pytest

from actorq import (
    ActorError,
    ActorExists,
    ActorqError,
    BadRequest,
    MessageTooLarge,
    NotFound,
    QueueFull,
    Unauthorized,
    ValidationError,
)
from actorq.client import AsyncClient, create_client, create_sync_client
from actorq.client import _base as b
from actorq.errors import ERRORS, UnsupportedMediaType, error_from_dict
from tests.apps.api_app import registry

TOKEN = "s3cret"
MAX_WAIT = 30.0  # the test server's max_wait: longer waits are bad input
DAY = 86400


@pytest.fixture
async def client() -> AsyncIterator[AsyncClient]:
    async with registry.test(max_wait=MAX_WAIT) as c:
        # a baseline every snapshot covers: two actors, one processed message
        h = c.inbox.get_or_create(["main"])
        assert (await h.send("tasks", {"title": "first", "priority": 1}, wait=True, timeout=10)).ok
        await c.store.get_or_create(["s"]).send("q", "kept")
        yield c


@dataclass(frozen=True, slots=True)
class RawRequest(b.Request):
    """A client request whose body bytes are given as-is (malformed on purpose)."""

    raw: bytes = b""

    def body(self) -> bytes | None:
        return self.raw


async def raw(
    client: AsyncClient,
    method: str,
    path: str,
    content: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    if content is not None and headers is None:
        headers = {"Content-Type": "application/json"}  # as every JSON client sends
    async with httpx.AsyncClient(base_url=client.url) as http:
        return await http.request(method, path, content=content, headers=headers)


def error_of(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """Assert the wire shape of an error and return its ``error`` object."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"error"}
    err: dict[str, Any] = body["error"]
    assert err["code"] == code
    assert isinstance(err["message"], str) and err["message"]
    assert set(err) <= {"code", "message", "details", "retry_after"}
    return err


async def snapshot(client: AsyncClient) -> Any:
    """Everything a bad request could have changed: actors, every queue's counts, pending
    messages, and what the inbox actor processed."""
    out = []
    for a in await client.list_actors(limit=1000):
        h = client.actor(a.name).get_for_id(a.actor_id)
        out.append(
            (
                a.name,
                a.key,
                a.actor_id,
                [asdict(q) for q in await h.queues()],
                [(m["id"], m["queue"]) for m in await h.messages("pending")],
            )
        )
    return out, await client.inbox.get_or_create(["main"]).seen()


AnyCall = Callable[[Any], Any]


async def both_raise(
    client: AsyncClient, call: AnyCall, exc: type[ActorqError], token: str | None = None
) -> tuple[ActorqError, ActorqError]:
    """``call(client)`` raises exactly ``exc`` from the async client and from the sync client."""
    async with create_client(client.url, token=token, retry_for=0) as fresh:
        with pytest.raises(ActorqError) as a:
            await call(fresh)

    def in_thread() -> Any:
        with create_sync_client(client.url, token=token, retry_for=0) as sync:
            return call(sync)

    with pytest.raises(ActorqError) as s:
        await asyncio.to_thread(in_thread)
    assert type(a.value) is exc, repr(a.value)
    assert type(s.value) is exc, repr(s.value)
    assert a.value.code == s.value.code == exc.code
    assert a.value.details == s.value.details
    return a.value, s.value


async def actor_id(client: AsyncClient, name: str, key: str) -> str:
    return await client.actor(name).get_or_create([key]).resolve()


# -- 404s ----------------------------------------------------------------------------------------
async def test_unknown_actor_type(client: AsyncClient) -> None:
    before = await snapshot(client)
    err = error_of(
        await raw(client, "POST", "/v1/actors", b'{"name": "nosuch", "key": ["main"]}'), 404, "not_found"
    )
    assert "nosuch" in err["message"] and "inbox" in err["details"]["actors"]
    a, _ = await both_raise(client, lambda c: c.nosuch.get_or_create(["main"]).resolve(), NotFound)
    assert "nosuch" in a.message
    await both_raise(client, lambda c: c.nosuch.get_or_create(["main"]).send("tasks", {}), NotFound)
    error_of(await raw(client, "GET", "/v1/actors?name=nosuch"), 404, "not_found")
    await both_raise(client, lambda c: c.list_actors("nosuch"), NotFound)
    assert await snapshot(client) == before


async def test_unknown_actor_id(client: AsyncClient) -> None:
    before = await snapshot(client)
    ghost = "0" * 20
    for method, path, content in [
        ("GET", f"/v1/actors/{ghost}", None),
        ("GET", f"/v1/actors/{ghost}/queues", None),
        ("GET", f"/v1/actors/{ghost}/messages", None),
        ("GET", f"/v1/actors/{ghost}/messages/1", None),
        ("GET", f"/v1/actors/{ghost}/dead-letters", None),
        ("POST", f"/v1/actors/{ghost}/queues/tasks/messages", b'{"body": {"title": "x", "priority": 1}}'),
        ("POST", f"/v1/actors/{ghost}/batch", b'{"messages": [{"queue": "free", "body": 1}]}'),
        ("POST", f"/v1/actors/{ghost}/actions/seen", b"{}"),
    ]:
        error_of(await raw(client, method, path, content), 404, "not_found")
    for call in [
        lambda c: c.inbox.get_for_id(ghost).resolve(),
        lambda c: c.inbox.get_for_id(ghost).send("free", 1),
        lambda c: c.inbox.get_for_id(ghost).seen(),
    ]:
        await both_raise(client, call, NotFound)
    assert await snapshot(client) == before


async def test_unknown_queue(client: AsyncClient) -> None:
    aid = await actor_id(client, "inbox", "main")
    before = await snapshot(client)
    err = error_of(
        await raw(client, "POST", f"/v1/actors/{aid}/queues/nosuch/messages", b'{"body": {}}'),
        404,
        "not_found",
    )
    assert "nosuch" in err["message"] and err["details"] == {"queues": ["free", "small", "tasks"]}
    a, _ = await both_raise(client, lambda c: c.inbox.get_or_create(["main"]).send("nosuch", {}), NotFound)
    assert a.details == {"queues": ["free", "small", "tasks"]}
    await both_raise(
        client, lambda c: c.inbox.get_or_create(["main"]).send("nosuch", {}, wait=True, timeout=1), NotFound
    )
    error_of(await raw(client, "GET", f"/v1/actors/{aid}/messages?queue=nosuch"), 404, "not_found")
    assert await snapshot(client) == before


async def test_unknown_action(client: AsyncClient) -> None:
    aid = await actor_id(client, "inbox", "main")
    before = await snapshot(client)
    err = error_of(await raw(client, "POST", f"/v1/actors/{aid}/actions/nosuch", b"{}"), 404, "not_found")
    assert err["details"] == {"actions": ["boom", "seen", "two"]}
    await both_raise(client, lambda c: c.inbox.get_or_create(["main"]).nosuch(1), NotFound)
    await both_raise(client, lambda c: c.inbox.get_or_create(["main"]).action("nosuch"), NotFound)
    assert await snapshot(client) == before


async def test_unknown_route_and_message(client: AsyncClient) -> None:
    aid = await actor_id(client, "inbox", "main")
    before = await snapshot(client)
    for method, path in [
        ("GET", "/v1/nothing-here"),
        ("GET", f"/v1/actors/{aid}/messages/999"),
        ("GET", f"/v1/actors/{aid}/messages/999?wait=true&timeout=1"),
        ("POST", f"/v1/actors/{aid}/dead-letters/1/retry"),
        ("DELETE", f"/v1/actors/{aid}/dead-letters/1"),
    ]:
        error_of(await raw(client, method, path), 404, "not_found")
    for call in [
        lambda c: c.inbox.get_or_create(["main"]).result(999),
        lambda c: c.inbox.get_or_create(["main"]).retry_dead_letter(1),
        lambda c: c.inbox.get_or_create(["main"]).delete_dead_letter(1),
    ]:
        await both_raise(client, call, NotFound)
    assert await snapshot(client) == before


# -- 422 / 413 -----------------------------------------------------------------------------------
async def test_body_failing_validation_is_422_with_pydantic_errors(client: AsyncClient) -> None:
    aid = await actor_id(client, "inbox", "main")
    gid = await actor_id(client, "gated", "v")
    before = await snapshot(client)
    err = error_of(
        await raw(client, "POST", f"/v1/actors/{aid}/queues/tasks/messages", b'{"body": {"title": 1}}'),
        422,
        "validation_error",
    )
    by_loc = {tuple(d["loc"]): d for d in err["details"]}
    assert set(by_loc) == {("title",), ("priority",)}
    assert by_loc[("priority",)]["type"] == "missing" and by_loc[("title",)]["type"] == "string_type"
    assert all(d["msg"] for d in err["details"])
    a, _ = await both_raise(
        client, lambda c: c.inbox.get_or_create(["main"]).send("tasks", {"title": 1}), ValidationError
    )
    assert a.details == err["details"]
    a, _ = await both_raise(
        client,
        lambda c: c.inbox.get_or_create(["main"]).send("tasks", {"title": "x", "priority": "high"}),
        ValidationError,
    )
    assert [(d["loc"], d["type"]) for d in a.details] == [(["priority"], "int_parsing")]
    a, _ = await both_raise(
        client,
        lambda c: c.gated.get_or_create(["v"]).send("in", "seven", wait=True, timeout=1),
        ValidationError,
    )
    assert a.details[0]["loc"] == []
    error_of(
        await raw(client, "POST", f"/v1/actors/{gid}/queues/in/messages", b'{"body": null}'),
        422,
        "validation_error",
    )
    assert await snapshot(client) == before


async def test_message_too_large_default_and_custom_limit(client: AsyncClient) -> None:
    aid = await actor_id(client, "inbox", "main")
    # the custom limit (100 bytes of encoded JSON) lets exactly 100 through
    ok = await client.inbox.get_or_create(["main"]).send("small", "x" * 98, wait=True, timeout=10)
    assert ok.ok
    before = await snapshot(client)
    err = error_of(
        await raw(
            client, "POST", f"/v1/actors/{aid}/queues/free/messages", b'{"body": "' + b"x" * 70_000 + b'"}'
        ),
        413,
        "message_too_large",
    )
    assert err["details"] == {"size": 70_002, "max_message_bytes": 65_536}
    err = error_of(
        await raw(
            client, "POST", f"/v1/actors/{aid}/queues/small/messages", b'{"body": "' + b"x" * 99 + b'"}'
        ),
        413,
        "message_too_large",
    )
    assert err["details"] == {"size": 101, "max_message_bytes": 100}
    # multi-byte characters count as their UTF-8 bytes
    a, _ = await both_raise(
        client, lambda c: c.inbox.get_or_create(["main"]).send("small", "é" * 50), MessageTooLarge
    )
    assert a.details == {"size": 102, "max_message_bytes": 100}
    await both_raise(
        client, lambda c: c.inbox.get_or_create(["main"]).send("free", ["y" * 1000] * 70), MessageTooLarge
    )
    await both_raise(
        client,
        lambda c: c.inbox.get_or_create(["main"]).send("small", "z" * 200, wait=True, timeout=1),
        MessageTooLarge,
    )
    assert await snapshot(client) == before


# -- 429 -----------------------------------------------------------------------------------------
async def wait_for(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def test_queue_full_is_429_with_retry_after_and_loses_nothing(client: AsyncClient) -> None:
    h = client.gated.get_or_create(["full"])
    first = await h.send("in", 0)

    async def zero_in_flight() -> bool:
        return [m["id"] for m in await h.messages("in_flight")] == [first.id]

    await wait_for(zero_in_flight, "message 0 to be in flight")
    ids = [first.id] + [(await h.send("in", i)).id for i in (1, 2)]
    [q] = await h.queues()
    assert (q.pending, q.in_flight, q.max_size) == (2, 1, 2), "the one being handled does not count"
    before = await snapshot(client)

    r = await raw(client, "POST", f"/v1/actors/{h.actor_id}/queues/in/messages", b'{"body": 3}')
    error_of(r, 429, "queue_full")
    assert int(r.headers["retry-after"]) >= 1
    assert r.headers["retry-after"] == "1"
    # block=True waits for room, bounded by its timeout, then gives the same answer
    r = await raw(
        client,
        "POST",
        f"/v1/actors/{h.actor_id}/queues/in/messages",
        b'{"body": 3, "block": true, "timeout": 0.3}',
    )
    error_of(r, 429, "queue_full")
    assert int(r.headers["retry-after"]) >= 1
    for call in [
        lambda c: c.gated.get_or_create(["full"]).send("in", 3),
        lambda c: c.gated.get_or_create(["full"]).send("in", 3, wait=True, timeout=1),
        lambda c: c.gated.get_or_create(["full"]).send("in", 3, block=True, timeout=0.2),
    ]:
        await both_raise(client, call, QueueFull)
    assert await snapshot(client) == before

    blocked = asyncio.create_task(h.send("in", 4, block=True, timeout=30))
    await asyncio.sleep(0.3)
    assert not blocked.done(), "a blocking sender waits while the queue is full"
    await h.open()
    results = [await h.result(i, wait=True, timeout=10) for i in ids]
    assert [(r.status, r.response) for r in results] == [
        ("completed", {"doubled": 0}),
        ("completed", {"doubled": 2}),
        ("completed", {"doubled": 4}),
    ]
    late = await blocked
    assert (await h.result(late.id, wait=True, timeout=10)).response == {"doubled": 8}
    assert await h.seen() == [0, 1, 2, 4], "every accepted message processed, in order; rejected ones never"


# -- 400: bytes that are not a valid envelope ----------------------------------------------------
@pytest.mark.parametrize(
    ("content", "field"),
    [
        pytest.param(b'{"body": {"title": "x"', None, id="malformed-json"),
        pytest.param(b"{'body': 1}", None, id="single-quotes"),
        pytest.param(b'{"body": "\xff\xfe"}', None, id="invalid-utf8"),
        pytest.param(b"\xff\xfe\xfa{}", None, id="wrong-encoding"),
        pytest.param(b"\xef\xbb\xbf\x00\x00", None, id="bom-and-nul"),
        pytest.param(b"", None, id="empty-body"),
        pytest.param(b'{"body": 1, "wait": "perhaps"}', "wait", id="wait-not-bool"),
        pytest.param(b'{"body": 1, "timeout": "soon"}', "timeout", id="timeout-not-number"),
        pytest.param(b'{"body": 1, "idempotency_key": 5}', "idempotency_key", id="key-not-string"),
        pytest.param(b'{"body": 1, "block": [true]}', "block", id="block-not-bool"),
        pytest.param(b'{"body": 1, "surprise": 1}', "surprise", id="extra-field"),
        pytest.param(b'{"body": 1, "delay": -1}', "delay", id="negative-delay"),
        pytest.param(b'{"body": 1, "timeout": -5}', "timeout", id="negative-timeout"),
        pytest.param(b'{"body": 1, "wait": true, "timeout": -0.5}', "timeout", id="negative-wait-timeout"),
        pytest.param(b"[1, 2]", None, id="not-an-object"),
        pytest.param(b'"body"', None, id="a-bare-string"),
    ],
)
async def test_malformed_send_envelopes_are_400(
    client: AsyncClient, content: bytes, field: str | None
) -> None:
    aid = await actor_id(client, "inbox", "main")
    path = f"/v1/actors/{aid}/queues/free/messages"
    before = await snapshot(client)
    err = error_of(await raw(client, "POST", path, content), 400, "bad_request")
    if field is not None:
        assert field in {d["loc"][0] for d in err["details"]}, err
    # the clients cannot produce these bytes by themselves; fed raw, they still raise BadRequest
    req = RawRequest("POST", path, raw=content)
    await both_raise(client, lambda c: c.request(req), BadRequest)
    assert await snapshot(client) == before


async def test_malformed_action_and_batch_bodies_are_400(client: AsyncClient) -> None:
    aid = await actor_id(client, "inbox", "main")
    before = await snapshot(client)
    for path, content in [
        (f"/v1/actors/{aid}/actions/two", b"{not json"),
        (f"/v1/actors/{aid}/actions/two", b'{"args": 5}'),
        (f"/v1/actors/{aid}/actions/two", b'{"args": [1, "x"], "kwargs": 5}'),
        (f"/v1/actors/{aid}/actions/two", b'{"args": [1, "x"], "extra": {}}'),
        (f"/v1/actors/{aid}/actions/two", b'{"args": ["\xff"]}'),
        (f"/v1/actors/{aid}/batch", b'{"messages": []}'),
        (f"/v1/actors/{aid}/batch", b'{"messages": [{"body": 1}]}'),
        (f"/v1/actors/{aid}/batch", b""),
        ("/v1/batch", b'{"messages": []}'),
        ("/v1/batch", b'{"messages": [{"queue": "free", "body": 1}]}'),  # no actor_id
        ("/v1/batch", f'{{"messages": [{{"actor_id": "{aid}", "queue": "free", "x": 1}}]}}'.encode()),
        ("/v1/batch", f'{{"messages": [{{"actor_id": "{aid}", "queue": "free", "delay": -1}}]}}'.encode()),
        ("/v1/batch", b'{"messages": "all"}'),
        ("/v1/batch", b"{not json"),
        ("/v1/actors", b'{"name": "inbox", "key": ["main"], "mode": "maybe"}'),
    ]:
        error_of(await raw(client, "POST", path, content), 400, "bad_request")
    for query in ("limit=many", "status=bogus"):
        error_of(await raw(client, "GET", f"/v1/actors/{aid}/messages?{query}"), 400, "bad_request")
    for query in ("wait=true&timeout=-1", "wait=true&timeout=soon"):
        error_of(await raw(client, "GET", f"/v1/actors/{aid}/messages/1?{query}"), 400, "bad_request")
    error_of(await raw(client, "GET", "/v1/actors?limit=lots"), 400, "bad_request")
    await both_raise(
        client, lambda c: c.inbox.get_or_create(["main"]).result(1, wait=True, timeout=-1), BadRequest
    )
    assert await snapshot(client) == before


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b'{"name": "inbox", "key": null}', id="key-null"),
        pytest.param(b'{"name": "inbox"}', id="key-missing"),
        pytest.param(b'{"key": ["main"]}', id="name-missing"),
    ],
)
async def test_key_not_a_list_of_strings_is_400(client: AsyncClient, content: bytes) -> None:
    before = await snapshot(client)
    err = error_of(await raw(client, "POST", "/v1/actors", content), 400, "bad_request")
    assert err["details"], "pydantic's errors say which field"
    assert await snapshot(client) == before


async def test_clients_refuse_bad_keys_and_negative_numbers(client: AsyncClient) -> None:
    before = await snapshot(client)
    for call in [
        lambda c: c.inbox.get_or_create([1]),
        lambda c: c.inbox.get_or_create(["a", None]),
        lambda c: c.inbox.get_or_create(["main"]).send("free", 1, delay=-1),
        lambda c: c.inbox.get_or_create(["main"]).send("free", 1, wait=True, timeout=-1),
        lambda c: c.inbox.get_or_create(["main"]).send("free", 1, block=True, timeout=-1),
    ]:
        await both_raise(client, call, BadRequest)
    assert await snapshot(client) == before


# -- 401 -----------------------------------------------------------------------------------------
async def test_missing_token_is_401_and_changes_nothing() -> None:
    async with registry.test(token=TOKEN) as client:
        h = client.inbox.get_or_create(["main"])
        assert (await h.send("free", "with the token", wait=True, timeout=10)).ok
        before = await snapshot(client)
        aid = h.actor_id
        for method, path, content in [
            ("GET", "/v1/actors", None),
            ("POST", "/v1/actors", b'{"name": "inbox", "key": ["intruder"]}'),
            ("GET", f"/v1/actors/{aid}/queues", None),
            ("POST", f"/v1/actors/{aid}/queues/free/messages", b'{"body": "no token"}'),
            ("POST", f"/v1/actors/{aid}/actions/seen", b"{}"),
            ("GET", "/openapi.json", None),
            ("GET", "/metrics", None),
            ("GET", "/v1/no-such-route", None),
        ]:
            error_of(await raw(client, method, path, content), 401, "unauthorized")
            for bad in ("Bearer wrong", f"Basic {TOKEN}", TOKEN, f"Bearer {TOKEN}x"):
                r = await raw(client, method, path, content, headers={"Authorization": bad})
                error_of(r, 401, "unauthorized")
        # /healthz stays open; the right token works (scheme is case-insensitive)
        assert (await raw(client, "GET", "/healthz")).status_code == 200
        assert (await raw(client, "GET", "/v1/actors", headers={"Authorization": f"Bearer {TOKEN}"})).json()
        r = await raw(client, "GET", f"/v1/actors/{aid}", headers={"Authorization": f"bearer {TOKEN}"})
        assert r.status_code == 200 and r.json()["actor_id"] == aid

        await both_raise(
            client, lambda c: c.inbox.get_or_create(["main"]).send("free", "no token"), Unauthorized
        )
        await both_raise(client, lambda c: c.inbox.get_or_create(["intruder"]).resolve(), Unauthorized)
        await both_raise(client, lambda c: c.list_actors(), Unauthorized)
        await both_raise(client, lambda c: c.list_actors(), Unauthorized, token="wrong")
        await both_raise(client, lambda c: c.inbox.get_for_id(aid).seen(), Unauthorized, token="wrong")

        # the token is checked before anything else: a body without a Content-Type is a 401 too
        async with httpx.AsyncClient(base_url=client.url) as http:
            r = await http.post(f"/v1/actors/{aid}/queues/free/messages", content=b'{"body": 2}')
            assert r.status_code == 401
        assert await snapshot(client) == before


# -- 422 / 500 from actions ----------------------------------------------------------------------
async def test_wrong_arity_is_422(client: AsyncClient) -> None:
    aid = await actor_id(client, "inbox", "main")
    before = await snapshot(client)
    err = error_of(
        await raw(client, "POST", f"/v1/actors/{aid}/actions/two", b'{"args": [1]}'), 422, "validation_error"
    )
    assert err["details"] == {"expected": ["a", "b"], "got": 1}
    error_of(await raw(client, "POST", f"/v1/actors/{aid}/actions/two", b""), 422, "validation_error")
    a, _ = await both_raise(client, lambda c: c.inbox.get_or_create(["main"]).two(1), ValidationError)
    assert a.details == {"expected": ["a", "b"], "got": 1}
    a, _ = await both_raise(
        client, lambda c: c.inbox.get_or_create(["main"]).two(1, "x", "y"), ValidationError
    )
    assert a.details == {"expected": ["a", "b"], "got": 3}
    await both_raise(
        client, lambda c: c.inbox.get_or_create(["main"]).action("seen", "extra"), ValidationError
    )
    # right arity, wrong type: pydantic's errors for the argument
    a, _ = await both_raise(client, lambda c: c.inbox.get_or_create(["main"]).two("x", "y"), ValidationError)
    assert a.details[0]["type"] == "int_parsing"
    assert await client.inbox.get_or_create(["main"]).two(1, "x") == "1x"
    assert await snapshot(client) == before


async def test_action_that_raises_is_500_and_the_server_keeps_serving(client: AsyncClient) -> None:
    aid = await actor_id(client, "inbox", "main")
    before = await snapshot(client)
    err = error_of(await raw(client, "POST", f"/v1/actors/{aid}/actions/boom", b"{}"), 500, "actor_error")
    assert "the handler's own words" in err["message"] and "KeyError" in err["message"]
    assert err["details"] == {"action": "boom", "type": "KeyError"}
    a, s = await both_raise(client, lambda c: c.inbox.get_or_create(["main"]).boom(), ActorError)
    assert "the handler's own words" in a.message and a.message == s.message
    # the same actor and the server go on
    h = client.inbox.get_or_create(["main"])
    assert await h.two(2, "b") == "2b"
    assert (await h.send("free", "after the crash", wait=True, timeout=10)).ok
    assert (await raw(client, "GET", "/healthz")).json()["status"] == "ok"
    _, seen_before = before
    assert await h.seen() == [*seen_before, ["free", "after the crash"]]


async def test_run_handler_that_raises_retries_then_dead_letters(client: AsyncClient) -> None:
    tag = uuid.uuid4().hex
    poisoned = client.flaky.get_or_create(["poisoned"])
    other = client.flaky.get_or_create(["other"])
    # other actors (and other types) keep working while one actor's handler keeps failing
    bad, good, inbox = await asyncio.gather(
        poisoned.send("work", {"tag": tag + "-bad", "fail_times": 99}, wait=True, timeout=20),
        other.send("work", {"tag": tag + "-good", "fail_times": 0}, wait=True, timeout=20),
        client.inbox.get_or_create(["main"]).send("free", "meanwhile", wait=True, timeout=20),
    )
    assert bad.status == "failed" and f"poison {tag}-bad on attempt 2" in (bad.error or "")
    assert await poisoned.attempts(tag + "-bad") == [1, 2], "retried once (max_attempts=2), then given up"
    assert good.status == "completed" and good.response == {"tag": tag + "-good", "attempt": 1}
    assert inbox.ok

    [dead] = await poisoned.dead_letters()
    assert (dead.id, dead.queue, dead.attempt) == (bad.id, "work", 2)
    assert dead.body == {"tag": tag + "-bad", "fail_times": 99} and "poison" in (dead.error or "")
    [q] = await poisoned.queues()
    assert (q.pending, q.in_flight, q.completed, q.dead) == (0, 0, 0, 1)
    assert (await poisoned.result(bad.id)).status == "failed"

    # the poisoned actor itself goes on with its next message; a message failing once is redelivered
    again = await poisoned.send("work", {"tag": tag + "-once", "fail_times": 1}, wait=True, timeout=20)
    assert again.status == "completed" and again.response == {"tag": tag + "-once", "attempt": 2}
    assert await poisoned.attempts(tag + "-once") == [1, 2]

    # the same from the sync client
    def sync_poison() -> Any:
        with create_sync_client(client.url) as sync:
            return sync.flaky.get_or_create(["sync"]).send(
                "work", {"tag": tag + "-sync", "fail_times": 5}, wait=True, timeout=20
            )

    failed = await asyncio.to_thread(sync_poison)
    assert failed.status == "failed" and "poison" in (failed.error or "")


# -- 409 / 404 on resolve ------------------------------------------------------------------------
async def test_create_of_an_existing_key_is_409(client: AsyncClient) -> None:
    before = await snapshot(client)
    err = error_of(
        await raw(client, "POST", "/v1/actors", b'{"name": "inbox", "key": ["main"], "mode": "create"}'),
        409,
        "actor_exists",
    )
    assert "main" in err["message"]
    await both_raise(client, lambda c: c.inbox.create(["main"]).resolve(), ActorExists)
    await both_raise(client, lambda c: c.store.create("s").send("q", "x"), ActorExists)
    assert await snapshot(client) == before
    # a new key is created once, then exists
    r = await raw(client, "POST", "/v1/actors", b'{"name": "inbox", "key": ["new"], "mode": "create"}')
    assert r.status_code == 201 and r.json()["created"] is True
    error_of(
        await raw(client, "POST", "/v1/actors", b'{"name": "inbox", "key": ["new"], "mode": "create"}'),
        409,
        "actor_exists",
    )


async def test_get_of_a_missing_key_is_404(client: AsyncClient) -> None:
    before = await snapshot(client)
    err = error_of(
        await raw(client, "POST", "/v1/actors", b'{"name": "inbox", "key": ["absent"], "mode": "get"}'),
        404,
        "not_found",
    )
    assert "absent" in err["message"]
    for call in [
        lambda c: c.inbox.get(["absent"]).resolve(),
        lambda c: c.inbox.get("absent").send("free", 1),
        lambda c: c.inbox.get(["absent"]).seen(),
        lambda c: c.gated.get(["main"]).resolve(),  # the key of an actor of another type: not this type's
    ]:
        await both_raise(client, call, NotFound)
    assert await snapshot(client) == before


# == bad values in otherwise well-formed requests: a typed 4xx naming the field ==================
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
    for call in [
        lambda c: h(c).send("free", "\ud800"),
        lambda c: h(c).send("free", {"x": ["\udc00"]}, wait=True, timeout=1),
        lambda c: h(c).send("free", 1, idempotency_key="\ud800"),
        lambda c: h(c).two(1, "\ud800"),
        lambda c: c.inbox.get_or_create(["\ud800"]).resolve(),
    ]:
        await both_raise(client, call, BadRequest)
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


# == JSON routes take JSON only: any other Content-Type, or a body without one, is a 415 ======
# A browser can send text/plain, application/x-www-form-urlencoded and multipart/form-data
# cross-site without asking (a "simple" request): refusing them keeps a web page from POSTing.
def routes(aid: str) -> list[tuple[str, str, bytes]]:
    """Every JSON route that takes a body, each with a body that would succeed as JSON."""
    return [
        ("POST", "/v1/actors", b'{"name": "inbox", "key": ["csrf"]}'),
        ("POST", f"/v1/actors/{aid}/queues/free/messages", b'{"body": "csrf"}'),
        ("POST", f"/v1/actors/{aid}/batch", b'{"messages": [{"queue": "free", "body": "csrf"}]}'),
        (
            "POST",
            "/v1/batch",
            b'{"messages": [{"actor_id": "%s", "queue": "free", "body": 1}]}' % aid.encode(),
        ),
        ("POST", f"/v1/actors/{aid}/actions/two", b'{"args": [1, "x"]}'),
        ("POST", f"/v1/actors/{aid}/dead-letters/1/retry", b"{}"),
        ("DELETE", f"/v1/actors/{aid}/dead-letters/1", b"{}"),
    ]


REFUSED = [
    "text/plain",
    "text/plain;charset=UTF-8",  # what fetch() and <form enctype="text/plain"> send
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=----x",
    "application/jsonp",
    "application/json-patch",
    "text/json",
    "json",
    "",
    "application/json; charset=latin-1",  # the body is read as UTF-8, nothing else
    "application/+json",
]


@pytest.mark.parametrize("ctype", REFUSED)
async def test_non_json_content_types_are_415_and_store_nothing(client: AsyncClient, ctype: str) -> None:
    aid = await client.inbox.get_or_create(["main"]).resolve()
    before = await snapshot(client)
    async with httpx.AsyncClient(base_url=client.url) as http:
        for method, path, content in routes(aid):
            r = await http.request(method, path, content=content, headers={"Content-Type": ctype})
            assert r.status_code == 415, (method, path, ctype, r.status_code, r.text)
            err = r.json()["error"]
            assert err["code"] == "unsupported_media_type" and "JSON" in err["message"]
            assert err["details"]["content_type"] == ctype
    assert await snapshot(client) == before


async def test_a_body_without_a_content_type_is_415(client: AsyncClient) -> None:
    aid = await client.inbox.get_or_create(["main"]).resolve()
    before = await snapshot(client)
    async with httpx.AsyncClient(base_url=client.url) as http:
        for method, path, content in routes(aid):
            r = await http.request(method, path, content=content)
            assert "content-type" not in r.request.headers
            assert r.status_code == 415, (method, path, r.text)
            assert r.json()["error"]["code"] == "unsupported_media_type"

            async def chunked(data: bytes = content) -> AsyncIterator[bytes]:
                yield data

            r = await http.request(method, path, content=chunked())
            assert r.request.headers.get("transfer-encoding") == "chunked"
            assert r.status_code == 415, (method, path, r.text)
    assert await snapshot(client) == before


@pytest.mark.parametrize(
    "ctype",
    [
        "application/json",
        "application/json; charset=utf-8",
        'Application/JSON;Charset="UTF-8"',
        "application/vnd.actorq+json",
        "application/problem+json; charset=utf-8",
    ],
)
async def test_json_content_types_are_accepted(client: AsyncClient, ctype: str) -> None:
    h = client.inbox.get_or_create(["main"])
    aid = await h.resolve()
    async with httpx.AsyncClient(base_url=client.url) as http:
        r = await http.post(
            f"/v1/actors/{aid}/queues/free/messages",
            content=b'{"body": "ok"}',
            headers={"Content-Type": ctype},
        )
        assert r.status_code == 201, r.text
        r = await http.post(
            f"/v1/actors/{aid}/actions/two", content=b'{"args": [4, "2"]}', headers={"Content-Type": ctype}
        )
        assert r.json() == {"result": "42"}


async def test_no_body_needs_no_content_type(client: AsyncClient) -> None:
    aid = await client.inbox.get_or_create(["main"]).resolve()
    async with httpx.AsyncClient(base_url=client.url) as http:
        r = await http.post(f"/v1/actors/{aid}/actions/seen")
        assert r.status_code == 200 and "content-type" not in r.request.headers
        r = await http.post(f"/v1/actors/{aid}/dead-letters/1/retry")
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
        assert (await http.get("/v1/actors", headers={"Content-Type": "text/plain"})).status_code == 200


async def test_unsupported_media_type_round_trips_through_both_clients(client: AsyncClient) -> None:
    assert (UnsupportedMediaType.code, UnsupportedMediaType.status) == ("unsupported_media_type", 415)
    assert ERRORS["unsupported_media_type"] is UnsupportedMediaType
    assert type(error_from_dict(415, {"error": {"code": "x", "message": "m"}})) is UnsupportedMediaType
    aid = await client.inbox.get_or_create(["main"]).resolve()
    before = await snapshot(client)
    # clients whose requests go out with a wrong Content-Type (as a misconfigured proxy would make them)
    async with create_client(client.url, retry_for=0) as bad:
        bad._get_session().headers["Content-Type"] = "text/plain"
        with pytest.raises(UnsupportedMediaType) as a:
            await bad.inbox.get_for_id(aid).send("free", "x")
    assert a.value.details["content_type"] == "text/plain"

    def sync_call() -> None:
        with create_sync_client(client.url, retry_for=0) as sync:
            sync._http.headers["Content-Type"] = "text/plain"
            with pytest.raises(UnsupportedMediaType) as s:
                sync.inbox.get_for_id(aid).send("free", "x")
            assert s.value.details == a.value.details

    await asyncio.to_thread(sync_call)
    assert await snapshot(client) == before


# -- requests over the size limit, chunked or not, and pathological nesting --------------------
async def test_oversized_and_pathological_requests(client: AsyncClient) -> None:
    h = client.inbox.get_or_create(["main"])
    await h.resolve()
    before = await snapshot(client)
    path = f"/v1/actors/{h.actor_id}/queues/free/messages"
    async with registry.test(max_request_bytes=1000) as small, httpx.AsyncClient(base_url=small.url) as http:
        sh = small.inbox.get_or_create(["main"])
        await sh.resolve()
        spath = f"/v1/actors/{sh.actor_id}/queues/free/messages"
        json_type = {"Content-Type": "application/json"}
        r = await http.post(spath, content=b'{"body": "' + b"x" * 2000 + b'"}', headers=json_type)
        assert r.status_code == 413 and r.json()["error"]["code"] == "message_too_large"

        async def chunks():  # type: ignore[no-untyped-def]
            for _ in range(40):
                yield b" " * 100  # no Content-Length: chunked, counted as it arrives

        r = await http.post(spath, content=chunks(), headers=json_type)
        assert r.status_code == 413
        [q] = [q for q in await sh.queues() if q.queue == "free"]
        assert q.pending + q.completed + q.in_flight == 0
    r = await raw(client, "POST", path, b"[" * 100_000 + b"]" * 100_000)
    assert r.status_code == 400 and r.json()["error"]["code"] == "bad_request"
    assert await snapshot(client) == before


# -- the error types: one code and status each ------------------------------------------------
def test_errors_are_typed_and_stable() -> None:
    codes = {
        cls.code: cls.status
        for cls in (
            BadRequest,
            Unauthorized,
            NotFound,
            ValidationError,
            MessageTooLarge,
            QueueFull,
            ActorError,
            ActorExists,
        )
    }
    assert codes == {
        "bad_request": 400,
        "unauthorized": 401,
        "not_found": 404,
        "validation_error": 422,
        "message_too_large": 413,
        "queue_full": 429,
        "actor_error": 500,
        "actor_exists": 409,
    }
    assert all(issubclass(c, ActorqError) for c in (BadRequest, QueueFull, ActorError))
