"""The application object: the actor types it serves, and the entry points that serve them.

``setup(use={...})`` returns an :class:`App`. It sits above both the core and the server: it is a
core :class:`~actorq.core.Registry` (the actor types, all the runtime needs to know) that also
knows how to run the server for them (``start``, ``serve``, ``app``) and how to hand a test a
client connected to a real server (``test``). Nothing below it (core, server, storage, client)
imports this module. The server and the client are imported when an entry point is used, so that
``import actorq`` stays light.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from actorq.core import ActorDefinition, Registry

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from actorq.client import AsyncClient
    from actorq.storage import Storage


class App(Registry):
    """The actor types an application serves (``setup(use={...})``), with its entry points."""

    def start(
        self,
        host: str = "127.0.0.1",
        port: int = 6420,
        storage: str | os.PathLike[str] | Storage | None = None,
        **options: Any,
    ) -> None:
        """Serve until interrupted (SIGINT/SIGTERM shut down gracefully). Blocks."""
        from actorq.server.serve import run

        run(self, host=host, port=port, storage=storage, **options)

    async def serve(
        self,
        host: str = "127.0.0.1",
        port: int = 6420,
        storage: str | os.PathLike[str] | Storage | None = None,
        **options: Any,
    ) -> None:
        """Serve on the running event loop until cancelled or signalled."""
        from actorq.server.serve import serve

        await serve(self, host=host, port=port, storage=storage, **options)

    def app(self, storage: str | os.PathLike[str] | Storage | None = None, **options: Any) -> Starlette:
        """The ASGI app alone, to mount inside another Starlette/FastAPI application."""
        from actorq.server.app import create_app

        return create_app(self, storage=storage, **options)

    @asynccontextmanager
    async def test(
        self, storage: str | os.PathLike[str] | Storage | None = None, **options: Any
    ) -> AsyncIterator[AsyncClient]:
        """Run a real server on a free loopback port (temporary SQLite unless ``storage``) and
        yield an async client connected to it."""
        from actorq.client import create_client
        from actorq.server.serve import test_server

        async with (
            test_server(self, storage=storage, **options) as server,
            create_client(server.url, token=server.token) as client,
        ):
            yield client


def setup(use: Mapping[str, ActorDefinition]) -> App:
    """Build the application: the actor types it serves, by name."""
    return App(use)


__all__ = ["App", "setup"]
