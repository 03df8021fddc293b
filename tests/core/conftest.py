"""The in-process harness: a Registry's actors on a Runtime over a temporary SQLite store, no HTTP.

``start_runtime`` is the one place the tests build a :class:`Runtime`; everything else reaches it
through :class:`LocalActors`, a client-shaped view (``actors.<type>.get_or_create(key)``, handles
with ``send``/``result``/``queues``/actions...) that calls the runtime's facade directly. So a
test of core behaviour reads like a client test, and the ``open_actors`` fixture runs it twice: on
the runtime alone, and through a real server over HTTP (``registry.test()``), so every promise is
also checked on the wire. The ``runtime`` fixture gives the bare Runtime, for its own facade.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import pytest

from actorq._typing import adapter
from actorq.client import AsyncClient
from actorq.client._base import Request
from actorq.core.registry import Registry
from actorq.core.runtime import Runtime, RuntimeConfig
from actorq.results import DeadLetter, QueueInfo, SendReceipt, SendResult
from actorq.storage.sqlite import SQLiteStorage

Mode = Literal["get", "create", "get_or_create", "id"]


async def start_runtime(registry: Registry, data_dir: Path, **config: Any) -> Runtime:
    """A started Runtime for ``registry`` on SQLite in ``data_dir``; ``config``: RuntimeConfig's
    fields. (The server builds its Runtime the same way, around an HTTP app.)"""
    runtime = Runtime(registry, SQLiteStorage(data_dir), RuntimeConfig(**config))
    await runtime.start()
    return runtime


class LocalHandle:
    """One actor of a :class:`LocalActors`, with the async client handle's methods."""

    def __init__(
        self, runtime: Runtime, name: str, key: Sequence[str] | None, mode: Mode, actor_id: str | None
    ) -> None:
        self._rt = runtime
        self._name = name
        self._key = key
        self._mode = mode
        self._actor_id = actor_id

    @property
    def actor_id(self) -> str | None:
        return self._actor_id

    async def resolve(self) -> str:
        if self._actor_id is None or self._mode != "get":
            if self._mode == "id":
                assert self._actor_id is not None
                await self._rt.actor_info(self._actor_id)
            else:
                assert self._key is not None
                self._actor_id = (await self._rt.resolve(self._name, self._key, self._mode)).actor_id
        assert self._actor_id is not None
        return self._actor_id

    async def send(
        self,
        queue: str,
        body: Any = None,
        *,
        wait: bool = False,
        timeout: float | None = None,
        block: bool = False,
        delay: float | None = None,
        idempotency_key: str | None = None,
        response_type: Any = None,
    ) -> Any:
        actor_id = await self.resolve()
        if wait:
            result = await self._rt.send_and_wait(
                actor_id,
                queue,
                body,
                timeout=timeout,
                block=block,
                delay=delay,
                idempotency_key=idempotency_key,
            )
            return _typed(result, response_type)
        receipt: SendReceipt = await self._rt.send(
            actor_id, queue, body, block=block, timeout=timeout, delay=delay, idempotency_key=idempotency_key
        )
        return receipt

    async def result(
        self, message_id: int, *, wait: bool = False, timeout: float | None = None, response_type: Any = None
    ) -> SendResult:
        actor_id = await self.resolve()
        if wait:
            await self._rt.actor_info(actor_id)
            result = await self._rt.wait_result(actor_id, message_id, timeout)
        else:
            result = await self._rt.lookup_result(actor_id, message_id)
        return _typed(result, response_type)

    async def action(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return await self._rt.call_action(await self.resolve(), name, list(args), kwargs or None)

    async def queues(self) -> list[QueueInfo]:
        return await self._rt.queue_info(await self.resolve())

    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        return await self._rt.dead_letters(await self.resolve(), limit)

    async def retry_dead_letter(self, message_id: int) -> None:
        await self._rt.retry_dead(await self.resolve(), message_id)

    async def delete_dead_letter(self, message_id: int) -> None:
        await self._rt.delete_dead(await self.resolve(), message_id)

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        if name.startswith("_"):
            raise AttributeError(name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            return await self.action(name, *args, **kwargs)

        return call


def _typed(result: SendResult, response_type: Any) -> SendResult:
    if response_type is None or result.response is None:
        return result
    if result.status != "completed":
        return result
    ad = adapter(response_type)  # as the clients read a typed response
    return replace(result, response=ad.validate_python(result.response) if ad else result.response)


class LocalAccessor:
    def __init__(self, runtime: Runtime, name: str) -> None:
        self._rt = runtime
        self._name = name

    def _handle(self, key: str | Sequence[str], mode: Mode) -> LocalHandle:
        return LocalHandle(self._rt, self._name, [key] if isinstance(key, str) else list(key), mode, None)

    def get_or_create(self, key: str | Sequence[str]) -> LocalHandle:
        return self._handle(key, "get_or_create")

    def get(self, key: str | Sequence[str]) -> LocalHandle:
        return self._handle(key, "get")

    def create(self, key: str | Sequence[str]) -> LocalHandle:
        return self._handle(key, "create")

    def get_for_id(self, actor_id: str) -> LocalHandle:
        return LocalHandle(self._rt, self._name, None, "id", actor_id)


class LocalActors:
    """A Runtime seen the way a client sees a server."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def actor(self, name: str) -> LocalAccessor:
        return LocalAccessor(self.runtime, name)

    def __getattr__(self, name: str) -> LocalAccessor:
        if name.startswith("_"):
            raise AttributeError(name)
        return self.actor(name)


@asynccontextmanager
async def local_actors(registry: Registry, data_dir: Path, **config: Any) -> AsyncIterator[LocalActors]:
    runtime = await start_runtime(registry, data_dir, **config)
    try:
        yield LocalActors(runtime)
    finally:
        await runtime.stop()


async def awake(actors: LocalActors | AsyncClient, actor_id: str) -> bool:
    """Whether the actor is awake now (the runtime's directory, or ``GET /v1/actors/{id}``)."""
    if isinstance(actors, LocalActors):
        return actors.runtime.is_awake(actor_id)
    data = await actors.request(Request("GET", f"/v1/actors/{actor_id}"))
    return bool(data["awake"])


OpenActors = Callable[..., AbstractAsyncContextManager[Any]]
Actors = LocalActors | AsyncClient  # what ``open_actors`` gives


@pytest.fixture(params=["runtime", "http"])
def open_actors(request: pytest.FixtureRequest, tmp_path: Path) -> OpenActors:
    """``open_actors(registry, storage=None, **config)``: an async context manager giving the
    registry's actors either on a bare Runtime (:class:`LocalActors`) or through a real server and
    the async client (``registry.test()``); ``storage``: a data directory, to reopen it later."""

    def open_(registry: Registry, storage: Path | None = None, **config: Any) -> Any:
        if request.param == "http":
            return registry.test(storage=storage, **config)
        return local_actors(registry, storage or tmp_path / "runtime-data", **config)

    return open_


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[Runtime]]]:
    """``await runtime(registry, **config)``: a started Runtime on SQLite in ``tmp_path``, stopped
    at the end of the test."""
    started: list[Runtime] = []

    async def make(registry: Registry, **config: Any) -> Runtime:
        rt = await start_runtime(registry, tmp_path / f"runtime-{len(started)}", **config)
        started.append(rt)
        return rt

    yield make
    for rt in started:
        await rt.stop()
