"""Running the app under uvicorn: signals, graceful shutdown, and the in-process test server."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import shutil
import signal
import socket
import tempfile
import threading
from collections.abc import AsyncIterator, Generator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from types import FrameType
from typing import Any

import uvicorn

from actorq.core import Registry, Runtime, RuntimeConfig
from actorq.errors import Unavailable
from actorq.server.app import MAX_REQUEST_BYTES, create_app, resolve_token
from actorq.server.logs import configure_logging, install_log_redaction, redact_value, uvicorn_log_config
from actorq.storage import Storage, open_storage


class ActorqServer(uvicorn.Server):
    """uvicorn's server, plus: on SIGTERM/SIGINT release waiting senders at once (503, they retry)
    before uvicorn drains connections; then the lifespan lets the current handlers finish."""

    def __init__(self, config: uvicorn.Config, runtime: Runtime, *, signals: bool = True) -> None:
        super().__init__(config)
        self.runtime = runtime
        self._signals = signals
        self._loop: asyncio.AbstractEventLoop | None = None

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.runtime.begin_shutdown)
        super().handle_exit(sig, frame)

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # Like uvicorn's, but a graceful stop exits 0 instead of re-raising the signal: a service
        # manager should see a clean exit when every handler finished and nothing was lost.
        if not self._signals or threading.current_thread() is not threading.main_thread():
            yield
            return
        original = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)


def _split(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    fields = set(RuntimeConfig.__dataclass_fields__)
    return {k: v for k, v in options.items() if k in fields}, {
        k: v for k, v in options.items() if k not in fields
    }


def build(
    registry: Registry,
    *,
    host: str,
    port: int,
    storage: str | os.PathLike[str] | Storage | None,
    token: str | None = None,
    log_level: str = "info",
    access_log: bool = False,
    signals: bool = True,
    max_request_bytes: int = MAX_REQUEST_BYTES,
    allowed_hosts: Sequence[str] | None = None,
    **options: Any,
) -> ActorqServer:
    rt_opts, rest = _split(options)
    if rest:
        raise TypeError(f"unknown server option(s): {', '.join(sorted(rest))}")
    token = resolve_token(token)  # before anything is opened: an empty token never starts a server
    if token:
        redact_value(token)
    # the address other nodes forward requests to (several nodes on one PostgreSQL database)
    rt_opts.setdefault("advertise", os.environ.get("ACTORQ_ADVERTISE") or f"{host}:{port}")
    runtime = Runtime(registry, open_storage(storage), RuntimeConfig(**rt_opts))
    app = create_app(
        registry,
        runtime=runtime,
        token=token,
        max_request_bytes=max_request_bytes,
        host=host,
        allowed_hosts=allowed_hosts,
    )
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        lifespan="on",
        log_config=uvicorn_log_config(),
        timeout_graceful_shutdown=int(runtime.config.grace) + 1,
        access_log=access_log,
        proxy_headers=False,  # no proxy in front by default; saves a middleware per request
        ws="websockets-sansio" if _has_sansio() else "auto",
    )
    server = ActorqServer(config, runtime, signals=signals)
    install_log_redaction()  # after uvicorn.Config, which (re)configures its loggers
    return server


def _has_sansio() -> bool:
    try:
        import websockets  # noqa: F401
    except ImportError:
        return False
    return True


def check_port(host: str, port: int) -> None:
    """Raise :class:`Unavailable` if ``host:port`` cannot be listened on (another server has it),
    before anything is opened; uvicorn binds it again right after."""
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise Unavailable(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    for family, kind, proto, _name, address in addresses:
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(address)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise Unavailable(
                        f"port {port} on {host} is in use by another process (choose another with --port)"
                    ) from None
                raise Unavailable(f"cannot listen on {host}:{port}: {exc.strerror}") from None


async def serve(registry: Registry, **options: Any) -> None:
    """Serve until signalled. Refused before anything runs, with :class:`Unavailable`: a port in
    use, a data directory another process holds."""
    server = build(registry, **options)
    check_port(server.config.host, server.config.port)
    await server.runtime.start()  # the storage, opened here so its refusal is a plain error
    try:
        await server.serve()
    finally:
        await server.runtime.stop()  # already stopped by the lifespan unless uvicorn never ran it
    if not server.started:
        raise SystemExit(f"actorq could not start on {options.get('host')}:{options.get('port')}")


def run(registry: Registry, **options: Any) -> None:
    """Serve until signalled (``registry.start()``), logging to stderr as ``actorq serve`` does."""
    configure_logging(options.get("log_level", "info"))
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard]
        asyncio.run(serve(registry, **options))
        return
    uvloop.run(serve(registry, **options))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass(frozen=True)
class RunningServer:
    """A server :func:`test_server` runs: where to reach it, and the token it requires."""

    url: str
    token: str | None


@asynccontextmanager
async def test_server(
    registry: Registry, storage: str | os.PathLike[str] | Storage | None = None, **options: Any
) -> AsyncIterator[RunningServer]:
    """Run a real server on a free loopback port (temporary SQLite unless ``storage``) until the
    block ends; the caller connects its own client to it."""
    tmp = tempfile.mkdtemp(prefix="actorq-test-") if storage is None else None
    port = free_port()
    token = resolve_token(options.pop("token", None))
    server = build(
        registry,
        host="127.0.0.1",
        port=port,
        storage=storage if storage is not None else tmp,
        token=token,
        log_level=options.pop("log_level", "warning"),
        signals=False,
        **options,
    )
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("test server stopped before it started")
            await asyncio.sleep(0.005)
        yield RunningServer(f"http://127.0.0.1:{port}", token)
    finally:
        server.runtime.begin_shutdown()
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


__all__ = ["ActorqServer", "RunningServer", "build", "free_port", "run", "serve", "test_server"]
