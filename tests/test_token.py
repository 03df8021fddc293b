"""The bearer token: an empty one refuses to start (never "auth off"), it never reaches a log, the
clients send it only in the Authorization header, and browsers (which cannot set headers on a
WebSocket) can give it as a WebSocket subprotocol."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import websockets
from starlette.types import ASGIApp, Receive, Scope, Send

from actorq.client import create_client, create_sync_client
from actorq.server.serve import free_port
from tests.apps.api_app import registry, serve_asgi
from tests.conftest import ROOT, ServerProcess

TOKEN = "Tk-9f3c2b7e41d0a8"


# -- an empty token is a mistake, not "no authentication" -----------------------------------------
@pytest.mark.parametrize("empty", ["", "   ", "\t"])
async def test_an_empty_token_refuses_to_start(
    empty: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ACTORQ_TOKEN", raising=False)
    with pytest.raises(ValueError, match="empty"):
        registry.app(storage=tmp_path / "a", token=empty)
    with pytest.raises(ValueError, match="empty"):
        await registry.serve(port=free_port(), storage=tmp_path / "b", token=empty)
    with pytest.raises(ValueError, match="empty"):
        async with registry.test(token=empty):
            pass
    monkeypatch.setenv("ACTORQ_TOKEN", empty)  # set, but empty: the same refusal
    with pytest.raises(ValueError, match="ACTORQ_TOKEN"):
        registry.app(storage=tmp_path / "c")
    with pytest.raises(ValueError, match="ACTORQ_TOKEN"):
        await registry.serve(port=free_port(), storage=tmp_path / "d")
    assert not (tmp_path / "b").exists() and not (tmp_path / "d").exists(), "nothing was opened"


def test_start_with_an_empty_token_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ACTORQ_TOKEN", raising=False)
    with pytest.raises(ValueError, match="empty"):
        registry.start(port=free_port(), storage=tmp_path / "data", token="")


@pytest.mark.parametrize("bad", ["two words", "line\nbreak", "nul\x00"])
def test_a_token_that_cannot_travel_in_a_header_is_refused(bad: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="token"):
        registry.app(storage=tmp_path, token=bad)


@pytest.mark.parametrize(
    ("args", "env"),
    [
        pytest.param(["--token", ""], {}, id="serve-option"),
        pytest.param([], {"ACTORQ_TOKEN": ""}, id="environment"),
        pytest.param([], {"ACTORQ_TOKEN": "  "}, id="environment-blank"),
        pytest.param(["--token", ""], {"ACTORQ_TOKEN": "good"}, id="option-overrides-env"),
    ],
)
def test_cli_serve_with_an_empty_token_exits_2(args: list[str], env: dict[str, str], tmp_path: Path) -> None:
    full_env = {k: v for k, v in os.environ.items() if k != "ACTORQ_TOKEN"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "actorq",
            "serve",
            "tests.apps.api_app:registry",
            "--port",
            str(free_port()),
            "--storage",
            str(tmp_path / "data"),
            *args,
        ],
        cwd=ROOT,
        env={**full_env, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "empty" in proc.stderr and "token" in proc.stderr.lower(), proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "data").exists()


def test_cli_global_empty_token_before_serve_exits_2(tmp_path: Path) -> None:
    full_env = {k: v for k, v in os.environ.items() if k != "ACTORQ_TOKEN"}
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "actorq", "--token", "", "serve", "tests.apps.api_app:registry"),
            *("--port", str(free_port()), "--storage", str(tmp_path / "data")),
        ],
        cwd=ROOT,
        env={**full_env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "empty" in proc.stderr, proc.stderr


# -- the token never reaches a log ------------------------------------------------------------------
async def test_the_token_never_appears_in_the_server_log(tmp_path: Path) -> None:
    server = ServerProcess(
        "tests.apps.api_app:registry",
        tmp_path / "data",
        env={"ACTORQ_TOKEN": TOKEN},
        args=["--log-level", "debug", "--access-log"],
    )
    server.start()
    try:
        async with create_client(server.url, token=TOKEN) as client:
            h = client.api.get_or_create(["log"])
            assert (await h.send("jobs", {"n": 1}, wait=True, timeout=10)).ok
            conn = await h.connect()
            assert await conn.shout("hi") == "HI"
            await conn.close()
            aid = h.actor_id
        ws = server.url.replace("http", "ws", 1) + f"/v1/actors/{aid}/connect"
        async with aiohttp.ClientSession() as session:
            # the legacy query form still works, and a wrong token in it is refused: both logged
            async with session.ws_connect(f"{ws}?token={TOKEN}") as sock:
                assert (await sock.receive_json(timeout=5))["type"] == "init"
            with pytest.raises(aiohttp.WSServerHandshakeError):
                await session.ws_connect(f"{ws}?token={TOKEN}x")
            async with session.ws_connect(ws, protocols=("actorq", f"actorq.token.{TOKEN}")) as sock:
                assert (await sock.receive_json(timeout=5))["type"] == "init"
            # plain HTTP with the token in the query (no route takes it there): refused, logged redacted
            async with session.get(f"{server.url}/v1/actors?token={TOKEN}&limit=5") as resp:
                assert resp.status == 401
            async with session.get(
                f"{server.url}/v1/actors?limit=5&token={TOKEN}", headers={"Authorization": f"Bearer {TOKEN}"}
            ) as resp:
                assert resp.status == 400
        assert server.terminate() == 0
        log = server.log()
        assert "/connect" in log and "GET /v1/actors" in log, "the access log and WebSocket lines are on"
        assert "token=[redacted]" in log
        assert TOKEN not in log, log
    finally:
        server.stop()


# -- the clients send the token in the Authorization header only ------------------------------------
class Recorder:
    """ASGI middleware noting each request's query string and Authorization header."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.seen: list[tuple[str, str, bytes, bytes | None, bytes | None]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            headers = dict(scope["headers"])
            self.seen.append(
                (
                    scope["type"],
                    scope["path"],
                    scope.get("query_string", b""),
                    headers.get(b"authorization"),
                    headers.get(b"sec-websocket-protocol"),
                )
            )
        await self.app(scope, receive, send)


@pytest.fixture
async def recorded(tmp_path: Path) -> AsyncIterator[tuple[Recorder, str]]:
    rec = Recorder(registry.app(storage=tmp_path / "data", token=TOKEN))
    async with serve_asgi(rec) as url:
        yield rec, url


async def test_clients_send_the_token_only_as_a_bearer_header(recorded: tuple[Recorder, str]) -> None:
    rec, url = recorded
    async with create_client(url, token=TOKEN) as client:
        h = client.api.get_or_create(["hdr"])
        assert (await h.send("jobs", {"n": 2}, wait=True, timeout=10)).ok
        await h.send("idle", 1)
        await h.queues()
        conn = await h.connect()
        assert await conn.add(1) == 1
        await conn.close()

    def sync_calls() -> Any:
        with create_sync_client(url, token=TOKEN) as sync:
            s = sync.api.get_or_create(["hdr"])
            s.send("idle", 2)
            return s.queues()

    await asyncio.to_thread(sync_calls)
    kinds = {kind for kind, *_ in rec.seen}
    assert kinds == {"http", "websocket"}, rec.seen
    assert len(rec.seen) >= 8
    for kind, path, query, auth, _ in rec.seen:
        assert TOKEN.encode() not in query, (kind, path, query)
        assert auth == f"Bearer {TOKEN}".encode(), (kind, path, auth)


# -- a browser's way: the token as a WebSocket subprotocol -----------------------------------------
async def test_websocket_token_as_a_subprotocol(recorded: tuple[Recorder, str]) -> None:
    _, url = recorded
    async with create_client(url, token=TOKEN) as client:
        aid = await client.api.get_or_create(["sub"]).resolve()
    ws = url.replace("http", "ws", 1) + f"/v1/actors/{aid}/connect"
    # what a browser does: new WebSocket(url, ["actorq", "actorq.token." + token]); it drops a
    # connection whose answer names no subprotocol, so the server must pick one it was offered
    async with websockets.connect(ws, subprotocols=["actorq", f"actorq.token.{TOKEN}"]) as sock:  # type: ignore[list-item]
        assert sock.subprotocol == "actorq"
        assert '"init"' in await asyncio.wait_for(sock.recv(), 5)
    async with websockets.connect(ws, subprotocols=[f"actorq.token.{TOKEN}"]) as sock:  # type: ignore[list-item]
        assert sock.subprotocol == f"actorq.token.{TOKEN}"
        assert '"init"' in await asyncio.wait_for(sock.recv(), 5)
    for protocols in (["actorq", "actorq.token.wrong"], ["actorq"], [f"actorq.token.{TOKEN}x"]):
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with websockets.connect(ws, subprotocols=protocols):  # type: ignore[arg-type]
                pass
        assert refused.value.response.status_code == 401
