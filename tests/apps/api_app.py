"""The registry behind the HTTP route, WebSocket, bad-input and client tests, and their helpers.

It is served in-process (``registry.test()``) and as a real server process
(``python -m actorq serve tests.apps.api_app:registry``). Module-level dictionaries hold what
tests need to observe or steer from outside an actor (gates, attempt logs); they are keyed by
actor id or by a tag the test makes unique, so tests sharing this module never see each other.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypedDict

import httpx
import uvicorn
from starlette.types import ASGIApp

from actorq import ActorContext, actor, queue, setup
from actorq.client import ActorConnection
from actorq.server.serve import free_port


class Task(TypedDict):
    title: str
    priority: int


class Job(TypedDict):
    n: int


class JobOut(TypedDict):
    doubled: int


class Work(TypedDict):
    tag: str
    fail_times: int


# -- inbox: plain messages, typed bodies, size limits, actions that check arity or raise ----------
async def inbox_run(c: ActorContext) -> None:
    async for m in c.queue.iter():
        c.state.setdefault("seen", []).append([m.name, m.body])


async def seen(c: ActorContext) -> list[Any]:
    return list(c.state.get("seen", []))


async def two(c: ActorContext, a: int, b: str) -> str:
    return f"{a}{b}"


async def boom(c: ActorContext) -> None:
    raise KeyError("the handler's own words")


inbox = actor(
    queues={
        "tasks": queue(Task),
        "free": queue(Any),
        "small": queue(Any, max_message_bytes=100),
    },
    actions={"seen": seen, "two": two, "boom": boom},
    run=inbox_run,
    state=dict,
)


# -- gated: a completable queue of size 2 whose handler holds each message until opened ----------
GATES: dict[str, asyncio.Event] = {}


def _gate(actor_id: str) -> asyncio.Event:
    return GATES.setdefault(actor_id, asyncio.Event())


async def gated_run(c: ActorContext) -> None:
    async for m in c.queue.iter(completable=True):
        c.state.setdefault("seen", []).append(m.body)
        await _gate(c.actor_id).wait()
        await m.complete({"doubled": m.body * 2})


async def open_gate(c: ActorContext) -> None:
    _gate(c.actor_id).set()


gated = actor(
    queues={"in": queue(int, JobOut, max_size=2)},
    actions={"open": open_gate, "seen": seen},
    run=gated_run,
    state=dict,
)


# -- flaky: fails a message's first ``fail_times`` deliveries (max_attempts=2) -------------------
ATTEMPTS: dict[str, list[int]] = {}


async def flaky_run(c: ActorContext) -> None:
    async for m in c.queue.iter(completable=True):
        tried = ATTEMPTS.setdefault(m.body["tag"], [])
        tried.append(m.attempt)
        if len(tried) <= m.body["fail_times"]:
            raise RuntimeError(f"poison {m.body['tag']} on attempt {m.attempt}")
        await m.complete({"tag": m.body["tag"], "attempt": m.attempt})


async def attempts(c: ActorContext, tag: str) -> list[int]:
    return ATTEMPTS.get(tag, [])


flaky = actor(
    queues={"work": queue(Work, dict)},
    actions={"attempts": attempts},
    run=flaky_run,
    max_attempts=2,
    retry_backoff=0.01,
)


# -- api: completable jobs with events, an unread queue, actions that broadcast ------------------
async def api_run(c: ActorContext) -> None:
    async for m in c.queue.iter("jobs", completable=True):
        c.broadcast("got", m.body)
        c.state["jobs"] = c.state.get("jobs", 0) + 1
        await m.complete({"doubled": m.body["n"] * 2})


async def shout(c: ActorContext, text: str) -> str:
    c.broadcast("shout", text)
    return text.upper()


async def burst(c: ActorContext, n: int) -> int:
    for i in range(n):
        c.broadcast("seq", {"i": i})
        if i % 7 == 0:
            await asyncio.sleep(0)  # let a concurrent action interleave; order must still hold
    return n


async def add(c: ActorContext, by: int) -> int:
    c.state["total"] = c.state.get("total", 0) + by
    return int(c.state["total"])


api = actor(
    queues={"jobs": queue(Job, JobOut), "idle": queue(Any)},
    actions={"shout": shout, "burst": burst, "add": add},
    run=api_run,
    state=dict,
)


# -- store: no run loop, so everything sent stays pending ----------------------------------------
store = actor(queues={"q": queue(Any)})


# -- hold: completes messages, unless this process was started with API_APP_HOLD=1 ---------------
async def hold_run(c: ActorContext) -> None:
    if os.environ.get("API_APP_HOLD") == "1":
        await asyncio.Event().wait()
    async for m in c.queue.iter(completable=True):
        await m.complete({"echo": m.body, "attempt": m.attempt})


hold = actor(queues={"ask": queue(Any, Any)}, run=hold_run)


# -- sleepy: goes to sleep quickly, to observe the "awake" flag ----------------------------------
async def ping(c: ActorContext) -> str:
    return "pong"


sleepy = actor(actions={"ping": ping}, sleep_timeout=0.2)


registry = setup(
    use={
        "inbox": inbox,
        "gated": gated,
        "flaky": flaky,
        "api": api,
        "store": store,
        "hold": hold,
        "sleepy": sleepy,
    }
)


@asynccontextmanager
async def serve_asgi(app: ASGIApp, *, lifespan: str = "on") -> AsyncIterator[str]:
    """Serve any ASGI app (e.g. one that mounts ``registry.app()``) with a real uvicorn on a free
    loopback port, on this event loop; yields its base URL."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan=lifespan)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("uvicorn stopped before it started")
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def stored(client: Any) -> Any:
    """Everything the server holds for the API test registry: each actor's queues and the inbox's
    record, to compare before and after a request that must change nothing."""
    out = []
    for a in await client.list_actors(limit=1000):
        h = client.actor(a.name).get_for_id(a.actor_id)
        out.append((a.name, a.key, [(q.queue, q.pending, q.completed) for q in await h.queues()]))
    return out, await client.inbox.get_or_create(["main"]).seen()


async def queues(http: httpx.AsyncClient, actor_id: str) -> dict[str, dict[str, Any]]:
    """``GET /v1/actors/{id}/queues`` as ``{queue name: its stats}``."""
    r = await http.get(f"/v1/actors/{actor_id}/queues")
    assert r.status_code == 200
    return {q["queue"]: q for q in r.json()["queues"]}


async def next_named(conn: ActorConnection, name: str) -> Any:
    """The data of the next event called ``name`` on ``conn`` (others are skipped)."""
    while True:
        ev = await conn.next_event(10)
        if ev.name == name:
            return ev.data
