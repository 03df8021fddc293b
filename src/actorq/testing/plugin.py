"""actorq's pytest plugin (entry point ``pytest11``: loaded by pytest wherever actorq is installed).

Fixtures, all function-scoped:

* ``actorq_registry``: yours to define (return your ``setup(use=...)``); the fixtures below serve it.
* ``actorq_server``: that registry served on a free loopback port (temporary SQLite), as an
  :class:`ActorqServer` (``.url``, ``.token``, ``.client()``, ``.sync_client()``).
* ``actorq_sync_client``: a blocking client connected to it.
* ``actorq_client``: an async client connected to it (needs pytest-asyncio; for ``async def`` tests).
* ``actorq_serve``: a factory, ``actorq_serve(registry, token=..., storage=..., max_wait=...)``,
  for tests that need more than one server or server options.
* ``fake_llm``: a running :class:`~actorq.testing.fake_llm.FakeLLM` (``.url``, ``.script()``,
  ``.requests``, ``.agent_files()`` for pi in an agent VM).

Servers run on an event loop of their own, in a thread, so the same fixtures serve sync tests and
async ones (whatever runs their loop), and a test that blocks does not stall its server. Each is
stopped, and its temporary data removed, when the test ends.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

# imported where used: pytest loads this plugin in every run wherever actorq is installed, and the
# server stack takes about a second to import
if TYPE_CHECKING:
    from actorq.app import App
    from actorq.client import AsyncClient, SyncClient
    from actorq.testing.fake_llm import FakeLLM

T = TypeVar("T")

START_TIMEOUT = 60.0  # seconds a server (or the fake LLM) may take to start or stop


class _BackgroundLoop:
    """An event loop in a daemon thread; async context managers entered on it, exited in reverse."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="actorq-testing", daemon=True)
        self.thread.start()
        self._entered: list[AbstractAsyncContextManager[Any]] = []

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(START_TIMEOUT)

    def enter(self, cm: AbstractAsyncContextManager[T]) -> T:
        value = self.run(cm.__aenter__())
        self._entered.append(cm)
        return value

    def close(self) -> None:
        try:
            while self._entered:
                self.run(self._entered.pop().__aexit__(None, None, None))
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(START_TIMEOUT)
            self.loop.close()


@dataclass
class ActorqServer:
    """A registry served for one test: where it is, and clients for it."""

    url: str
    token: str | None
    registry: App
    _sync_clients: list[SyncClient] = field(default_factory=list, repr=False)

    def client(self, **options: Any) -> AsyncClient:
        """A new async client (use it as ``async with`` on the test's own event loop); options as
        for :func:`~actorq.client.create_client` (``token=None`` for one without the token)."""
        from actorq.client import create_client

        return create_client(self.url, **{"token": self.token, **options})

    def sync_client(self, **options: Any) -> SyncClient:
        """A new blocking client, closed when the test ends."""
        from actorq.client import create_sync_client

        client = create_sync_client(self.url, **{"token": self.token, **options})
        self._sync_clients.append(client)
        return client


Serve = Callable[..., ActorqServer]


@pytest.fixture
def actorq_registry() -> App:
    """Override this fixture to return the registry the other actorq fixtures serve."""
    raise pytest.UsageError(
        "the actorq fixtures serve the registry of a fixture named 'actorq_registry': define one "
        "(in conftest.py or the test module) that returns your setup(use=...)"
    )


@pytest.fixture
def actorq_serve() -> Iterator[Serve]:
    """``actorq_serve(registry, **options)``: serve ``registry`` until the test ends (options as for
    ``registry.test()``: ``token``, ``storage``, ``max_wait``, ...)."""
    from actorq.app import App
    from actorq.server.serve import RunningServer, test_server

    background = _BackgroundLoop()
    servers: list[ActorqServer] = []

    def serve(registry: App, **options: Any) -> ActorqServer:
        if not isinstance(registry, App):
            raise TypeError(f"actorq_serve takes a registry (setup(use=...)), not {type(registry).__name__}")
        running: RunningServer = background.enter(test_server(registry, **options))
        server = ActorqServer(running.url, running.token, registry)
        servers.append(server)
        return server

    try:
        yield serve
    finally:
        for server in servers:
            for client in server._sync_clients:
                client.close()
        background.close()


@pytest.fixture
def actorq_server(actorq_registry: App, actorq_serve: Serve) -> ActorqServer:
    """The ``actorq_registry`` fixture's registry, served on a free loopback port."""
    return actorq_serve(actorq_registry)


@pytest.fixture
def actorq_sync_client(actorq_server: ActorqServer) -> SyncClient:
    """A blocking client of ``actorq_server``."""
    return actorq_server.sync_client()


@pytest.fixture
def fake_llm() -> Iterator[FakeLLM]:
    """A fake OpenAI-compatible LLM on a free loopback port (``fake_llm.url`` ends in ``/v1``)."""
    from actorq.testing.fake_llm import FakeLLM

    background = _BackgroundLoop()
    try:
        yield background.enter(FakeLLM())
    finally:
        background.close()


try:
    import pytest_asyncio
except ImportError:  # no pytest-asyncio: the async client fixture is not offered
    pass
else:

    @pytest_asyncio.fixture
    async def actorq_client(actorq_server: ActorqServer) -> AsyncIterator[AsyncClient]:
        """An async client of ``actorq_server``, on the test's event loop."""
        async with actorq_server.client() as client:
            yield client
