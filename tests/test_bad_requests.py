"""Every bad input gets a clear typed error (status, code, exception class in both
clients) and changes nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, TypedDict

import httpx
import pytest

from actorq import (
    ActorContext,
    ActorError,
    ActorExists,
    ActorqError,
    BadRequest,
    MessageTooLarge,
    NotFound,
    QueueFull,
    Unauthorized,
    ValidationError,
    actor,
    queue,
    setup,
)
from actorq.client import AsyncClient, create_sync_client


class Task(TypedDict):
    title: str
    priority: int


async def run(c: ActorContext) -> None:
    async for _m in c.queue.iter():
        c.state["done"] = c.state.get("done", 0) + 1


async def done(c: ActorContext) -> int:
    return int(c.state.get("done", 0))


async def two(c: ActorContext, a: int, b: str) -> str:
    return f"{a}{b}"


async def boom(c: ActorContext) -> None:
    raise KeyError("the handler's own words")


registry = setup(
    use={
        "inbox": actor(
            queues={"tasks": queue(Task, max_size=3, max_message_bytes=200), "free": queue(Any)},
            actions={"done": done, "two": two, "boom": boom},
            run=run,
            state=dict,
        )
    }
)


@pytest.fixture
async def client() -> AsyncIterator[AsyncClient]:
    async with registry.test() as c:
        yield c


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


async def snapshot(client: AsyncClient) -> Any:
    h = client.inbox.get_or_create(["main"])
    actors = await client.list_actors()
    return [(a.name, a.key) for a in actors], await h.queues(), await h.done()


async def both_clients(client: AsyncClient, call: Any, exc: type[ActorqError]) -> None:
    """The same failing call raises ``exc`` from the async and the sync client."""
    with pytest.raises(exc):
        await call(client)
    with create_sync_client(client.url) as sync:
        with pytest.raises(exc):
            await asyncio.to_thread(call, sync)


def _send(actor: str, key: list[str], q: str, body: Any) -> Any:
    return lambda c: c.actor(actor).get_or_create(key).send(q, body)


async def test_typed_errors_change_nothing(client: AsyncClient) -> None:
    h = client.inbox.get_or_create(["main"])
    await h.send("tasks", {"title": "ok", "priority": 1}, wait=True, timeout=5)
    before = await snapshot(client)
    cases: list[tuple[Any, type[ActorqError]]] = [
        (_send("nosuch", ["main"], "tasks", {}), NotFound),  # unknown actor type
        (_send("inbox", ["main"], "nosuch", {}), NotFound),  # unknown queue
        (_send("inbox", ["main"], "tasks", {"title": "x"}), ValidationError),  # missing field
        (_send("inbox", ["main"], "tasks", {"title": "x", "priority": "high"}), ValidationError),
        (_send("inbox", ["main"], "tasks", {"title": "x" * 300, "priority": 1}), MessageTooLarge),
        (lambda c: c.inbox.get_or_create(["main"]).action("nosuch"), NotFound),  # unknown action
        (lambda c: c.inbox.get_or_create(["main"]).two(1), ValidationError),  # wrong arity
        (lambda c: c.inbox.get_or_create(["main"]).two("x", "y"), ValidationError),  # wrong type
        (lambda c: c.inbox.get_or_create(["main"]).boom(), ActorError),
        (lambda c: c.inbox.create(["main"]).resolve(), ActorExists),
        (lambda c: c.inbox.get(["absent"]).resolve(), NotFound),
        (lambda c: c.inbox.get_for_id("0" * 20).resolve(), NotFound),
        (lambda c: c.inbox.get_or_create(["main"]).result(999), NotFound),
        (lambda c: c.inbox.get_or_create(["main"]).retry_dead_letter(1), NotFound),
    ]
    for call, exc in cases:
        await both_clients(client, call, exc)
    assert await snapshot(client) == before


async def test_error_details_on_the_wire(client: AsyncClient) -> None:
    h = client.inbox.get_or_create(["main"])
    await h.resolve()
    path = f"/v1/actors/{h.actor_id}/queues/tasks/messages"
    r = await raw(client, "POST", path, b'{"body": {"title": 1}}')
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["code"] == "validation_error"
    locs = sorted(tuple(d["loc"]) for d in err["details"])
    assert locs == [("priority",), ("title",)]
    r = await raw(client, "POST", path, b'{"body": {"title": "' + b"x" * 300 + b'", "priority": 1}}')
    assert r.status_code == 413 and r.json()["error"]["code"] == "message_too_large"
    r = await raw(client, "POST", f"/v1/actors/{h.actor_id}/actions/boom", b"{}")
    assert r.status_code == 500
    assert (
        r.json()["error"]["code"] == "actor_error"
        and "the handler's own words" in r.json()["error"]["message"]
    )
    r = await raw(client, "GET", "/v1/nope")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"{not json", "malformed JSON"),
        (b"\xff\xfe\xfa{}", "wrong encoding"),
        (b"", "empty body"),
        (b'{"body": {}, "wait": "perhaps"}', "wrong envelope type"),
        (b'{"body": {}, "surprise": 1}', "extra envelope field"),
        (b'{"body": {}, "delay": -1}', "negative delay"),
        (b'{"body": {}, "timeout": -5}', "negative timeout"),
        (b"[1, 2]", "envelope not an object"),
    ],
)
async def test_malformed_requests_are_400(client: AsyncClient, content: bytes, why: str) -> None:
    h = client.inbox.get_or_create(["main"])
    await h.resolve()
    before = await snapshot(client)
    r = await raw(client, "POST", f"/v1/actors/{h.actor_id}/queues/free/messages", content)
    assert r.status_code == 400, why
    assert r.json()["error"]["code"] == "bad_request"
    assert await snapshot(client) == before


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


@pytest.mark.parametrize(
    "content", [b'{"name": "inbox", "key": "main"}', b'{"name": "inbox", "key": [1]}', b'{"name": "inbox"}']
)
async def test_bad_keys_are_400(client: AsyncClient, content: bytes) -> None:
    r = await raw(client, "POST", "/v1/actors", content)
    assert r.status_code == 400 and r.json()["error"]["code"] == "bad_request"
    assert await client.list_actors() == []


async def test_queue_full_is_429_with_retry_after_and_loses_nothing() -> None:
    gate = asyncio.Event()

    async def held(c: ActorContext) -> None:
        async for m in c.queue.iter():
            c.state.setdefault("seen", []).append(m.body)
            await gate.wait()

    async def seen(c: ActorContext) -> Any:
        return c.state.get("seen", [])

    reg = setup(
        use={"q": actor(queues={"in": queue(int, max_size=2)}, run=held, actions={"seen": seen}, state=dict)}
    )
    async with reg.test() as client:
        h = client.q.get_or_create(["x"])
        await h.send("in", 0)
        await asyncio.sleep(0.2)  # 0 is in flight, not counted
        await h.send("in", 1)
        await h.send("in", 2)
        r = await raw(client, "POST", f"/v1/actors/{h.actor_id}/queues/in/messages", b'{"body": 3}')
        assert r.status_code == 429 and r.headers["retry-after"] == "1"
        assert r.json()["error"]["code"] == "queue_full"
        await both_clients(client, lambda c: c.q.get_or_create(["x"]).send("in", 3), QueueFull)
        gate.set()
        for _ in range(100):
            if await h.seen() == [0, 1, 2]:
                break
            await asyncio.sleep(0.02)
        assert await h.seen() == [0, 1, 2]


async def test_token_required_when_configured() -> None:
    async with registry.test(token="s3cret") as client:
        h = client.inbox.get_or_create(["main"])
        await h.send("free", 1)  # the harness's client carries the token
        async with httpx.AsyncClient(base_url=client.url) as http:
            for path in ("/v1/actors", f"/v1/actors/{h.actor_id}/queues", "/openapi.json"):
                r = await http.get(path)
                assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
            r = await http.get("/v1/actors", headers={"Authorization": "Bearer wrong"})
            assert r.status_code == 401
            r = await http.post(f"/v1/actors/{h.actor_id}/queues/free/messages", content=b'{"body": 2}')
            assert r.status_code == 401
            assert (await http.get("/healthz")).status_code == 200
            assert (
                await http.get("/v1/actors", headers={"Authorization": "Bearer s3cret"})
            ).status_code == 200
        from actorq.client import create_client

        async with create_client(client.url) as anonymous:
            with pytest.raises(Unauthorized):
                await anonymous.inbox.get_or_create(["main"]).send("free", 3)
            with pytest.raises(Unauthorized):
                await anonymous.inbox.get_for_id(h.actor_id or "").connect()
        with create_sync_client(client.url) as sync:
            with pytest.raises(Unauthorized):
                await asyncio.to_thread(sync.list_actors)  # the server shares this loop: not inline
        [q] = [q for q in await h.queues() if q.queue == "free"]
        assert q.pending + q.in_flight + q.completed == 1, "unauthenticated sends stored nothing"


async def test_failing_run_handler_does_not_stop_the_server() -> None:
    async def crashy(c: ActorContext) -> None:
        async for m in c.queue.iter():
            if m.body == "bad":
                raise RuntimeError("poison")

    reg = setup(use={"w": actor(queues={"q": queue(str)}, run=crashy, max_attempts=2, retry_backoff=0.01)})
    async with reg.test() as client:
        bad = await client.w.get_or_create(["a"]).send("q", "bad", wait=True, timeout=10)
        assert bad.status == "failed" and "poison" in (bad.error or "")
        good = await client.w.get_or_create(["b"]).send("q", "good", wait=True, timeout=10)
        assert good.status == "completed"
        same = await client.w.get_or_create(["a"]).send("q", "good", wait=True, timeout=10)
        assert same.status == "completed"


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
