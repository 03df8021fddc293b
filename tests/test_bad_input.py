"""Bad input: every bad request gets a clear typed error and changes
nothing.

For each case: the HTTP status and error ``code`` on the wire (raw httpx), the exact exception class
raised by the async client and by the sync client (run in a thread: the server shares this event
loop), and a snapshot of every actor, queue and processed message taken before and after.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

import aiohttp
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
from tests.apps.api_app import registry

TOKEN = "s3cret"


@pytest.fixture
async def client() -> AsyncIterator[AsyncClient]:
    async with registry.test() as c:
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
    await both_raise(client, lambda c: c.inbox.get_for_id(ghost).resolve(), NotFound)
    await both_raise(client, lambda c: c.inbox.get_for_id(ghost).send("free", 1), NotFound)
    await both_raise(client, lambda c: c.inbox.get_for_id(ghost).seen(), NotFound)
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
    error_of(await raw(client, "GET", "/v1/nothing-here"), 404, "not_found")
    error_of(await raw(client, "GET", f"/v1/actors/{aid}/messages/999"), 404, "not_found")
    error_of(await raw(client, "GET", f"/v1/actors/{aid}/messages/999?wait=true&timeout=1"), 404, "not_found")
    error_of(await raw(client, "POST", f"/v1/actors/{aid}/dead-letters/1/retry"), 404, "not_found")
    error_of(await raw(client, "DELETE", f"/v1/actors/{aid}/dead-letters/1"), 404, "not_found")
    # a known path with the wrong method: 405, with the same error shape
    error_of(await raw(client, "GET", f"/v1/actors/{aid}/actions/seen"), 405, "bad_request")
    await both_raise(client, lambda c: c.inbox.get_or_create(["main"]).result(999), NotFound)
    await both_raise(client, lambda c: c.inbox.get_or_create(["main"]).retry_dead_letter(1), NotFound)
    await both_raise(client, lambda c: c.inbox.get_or_create(["main"]).delete_dead_letter(1), NotFound)
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
    # block=True waits for room, bounded by its timeout, then gives the same answer
    r = await raw(
        client,
        "POST",
        f"/v1/actors/{h.actor_id}/queues/in/messages",
        b'{"body": 3, "block": true, "timeout": 0.3}',
    )
    error_of(r, 429, "queue_full")
    assert int(r.headers["retry-after"]) >= 1
    await both_raise(client, lambda c: c.gated.get_or_create(["full"]).send("in", 3), QueueFull)
    await both_raise(
        client, lambda c: c.gated.get_or_create(["full"]).send("in", 3, wait=True, timeout=1), QueueFull
    )
    await both_raise(
        client, lambda c: c.gated.get_or_create(["full"]).send("in", 3, block=True, timeout=0.2), QueueFull
    )
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
        pytest.param(b'{"name": "inbox", "key": "main"}', id="key-a-string"),
        pytest.param(b'{"name": "inbox", "key": [1]}', id="key-of-ints"),
        pytest.param(b'{"name": "inbox", "key": [["a"]]}', id="key-nested"),
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
    await both_raise(client, lambda c: c.inbox.get_or_create([1]), BadRequest)
    await both_raise(client, lambda c: c.inbox.get_or_create(["a", None]), BadRequest)
    await both_raise(client, lambda c: c.inbox.get_or_create(["main"]).send("free", 1, delay=-1), BadRequest)
    await both_raise(
        client, lambda c: c.inbox.get_or_create(["main"]).send("free", 1, wait=True, timeout=-1), BadRequest
    )
    await both_raise(
        client, lambda c: c.inbox.get_or_create(["main"]).send("free", 1, block=True, timeout=-1), BadRequest
    )
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
        await both_raise(client, lambda c: c.list_actors(), Unauthorized, token="wrong")
        await both_raise(client, lambda c: c.inbox.get_for_id(aid).seen(), Unauthorized, token="wrong")

        # WebSocket: refused without the token, accepted with the header or ?token=
        ws_url = client.url.replace("http", "ws", 1) + f"/v1/actors/{aid}/connect"
        async with aiohttp.ClientSession() as session:
            for url, headers in [
                (ws_url, {}),
                (ws_url + "?token=wrong", {}),
                (ws_url, {"Authorization": "Bearer wrong"}),
            ]:
                with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                    await session.ws_connect(url, headers=headers)
                assert refused.value.status == 401
            for url, headers in [
                (ws_url + f"?token={TOKEN}", {}),
                (ws_url, {"Authorization": f"Bearer {TOKEN}"}),
            ]:
                async with session.ws_connect(url, headers=headers) as ws:
                    assert (await ws.receive_json(timeout=5)) == {"type": "init", "actor_id": aid}
        async with create_client(client.url) as anonymous:
            with pytest.raises(Unauthorized):
                await anonymous.inbox.get_for_id(aid).connect()
        async with create_client(client.url, token=TOKEN) as good:
            conn = await good.inbox.get_for_id(aid).connect()
            assert await conn.two(4, "2") == "42"
            await conn.close()
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
    await both_raise(client, lambda c: c.inbox.get(["absent"]).resolve(), NotFound)
    await both_raise(client, lambda c: c.inbox.get("absent").send("free", 1), NotFound)
    await both_raise(client, lambda c: c.inbox.get(["absent"]).seen(), NotFound)
    # the key of an actor of another type is not this type's actor
    await both_raise(client, lambda c: c.gated.get(["main"]).resolve(), NotFound)
    assert await snapshot(client) == before
