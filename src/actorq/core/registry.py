"""The registry: the set of actor types an application serves (``setup(use={...})``).

``start``/``serve``/``test``/``app`` are entry points that hand the registry to the server
package; they import it lazily so that the core itself never depends on HTTP.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from actorq.core.definitions import ActorDefinition
from actorq.errors import NotFound

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from actorq.client.async_client import AsyncClient
    from actorq.storage.protocol import Storage

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


class Registry:
    def __init__(self, use: Mapping[str, ActorDefinition]) -> None:
        for name, definition in use.items():
            if not _NAME.match(name):
                raise ValueError(f"actor name {name!r} must be a Python identifier (letters, digits, _)")
            if not isinstance(definition, ActorDefinition):
                raise TypeError(f"{name!r} must be declared with actor(...)")
        self.definitions: dict[str, ActorDefinition] = dict(use)

    def definition(self, name: str) -> ActorDefinition:
        d = self.definitions.get(name)
        if d is None:
            raise NotFound(f"unknown actor type {name!r}", details={"actors": sorted(self.definitions)})
        return d

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
        from actorq.server.serve import test_server

        async with test_server(self, storage=storage, **options) as client:
            yield client


def setup(use: Mapping[str, ActorDefinition]) -> Registry:
    """Build the registry of actor types this application serves."""
    return Registry(use)
