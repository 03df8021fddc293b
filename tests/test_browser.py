"""What a web page in the user's browser can do to a server on 127.0.0.1:6420, and must not.

* DNS rebinding: a page on ``evil.example`` whose name is re-pointed at 127.0.0.1 reaches the
  server with ``Host: evil.example`` — refused (403 ``forbidden``) unless the server is bound to
  that name (or told to accept it with ``allowed_hosts``).
* Cross-site requests: a page's ``fetch()`` / form POST carries ``Origin: http://evil.example``
  — refused when the origin is not one of the server's own names.
* Cross-site WebSocket hijacking: browsers apply no CORS to WebSockets, so the handshake's
  ``Origin`` is checked the same way.

Each refusal stores nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest
import websockets

from actorq.client import AsyncClient, create_client, create_sync_client
from actorq.errors import ERRORS, Forbidden
from actorq.server.serve import build, free_port
from tests.apps.api_app import registry, serve_asgi, stored
from tests.conftest import ServerProcess

TOKEN = "b-9d1e77f0c2"
JSON = {"Content-Type": "application/json"}


@pytest.fixture
async def client() -> AsyncIterator[AsyncClient]:
    async with registry.test() as c:  # bound to 127.0.0.1
        assert (await c.inbox.get_or_create(["main"]).send("free", "baseline", wait=True, timeout=10)).ok
        yield c


def forbidden(r: httpx.Response) -> dict[str, Any]:
    assert r.status_code == 403, (r.request.headers, r.status_code, r.text)
    err: dict[str, Any] = r.json()["error"]
    assert err["code"] == "forbidden" and err["message"]
    return err


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


REBOUND_HOSTS = [
    "evil.example",
    "evil.example:6420",
    "127.0.0.1.evil.example",
    "localhost.evil.example:80",
    "evil.localhost",
    "[::2]:6420",
    "10.0.0.1",
    "",
    "local host",
    "localhost:6420:1",
]


# -- DNS rebinding ---------------------------------------------------------------------------------
@pytest.mark.parametrize("host", REBOUND_HOSTS)
async def test_a_rebinding_host_is_refused_and_stores_nothing(client: AsyncClient, host: str) -> None:
    aid = await client.inbox.get_or_create(["main"]).resolve()
    before = await stored(client)
    headers = {"Host": host}
    async with httpx.AsyncClient(base_url=client.url) as http:
        err = forbidden(await http.get("/v1/actors", headers=headers))
        assert "Host" in err["message"]
        forbidden(await http.get("/healthz", headers=headers))
        forbidden(await http.get("/openapi.json", headers=headers))
        forbidden(
            await http.post(
                f"/v1/actors/{aid}/queues/free/messages",
                content=b'{"body": "rebound"}',
                headers=headers | JSON,
            )
        )
        forbidden(
            await http.post(
                "/v1/actors", content=b'{"name": "inbox", "key": ["rebound"]}', headers=headers | JSON
            )
        )
        forbidden(
            await http.post(
                f"/v1/actors/{aid}/actions/two", content=b'{"args": [1, "x"]}', headers=headers | JSON
            )
        )
    assert await stored(client) == before


async def test_the_loopback_names_are_accepted_on_a_loopback_server(client: AsyncClient) -> None:
    port = port_of(client.url)
    async with httpx.AsyncClient(base_url=client.url) as http:
        for host in (
            f"127.0.0.1:{port}",
            "127.0.0.1",
            f"localhost:{port}",
            "localhost",
            "LocalHost:1234",
            "localhost.",
            f"[::1]:{port}",
            "[::1]",
        ):
            r = await http.get("/v1/actors", headers={"Host": host})
            assert r.status_code == 200, (host, r.text)
    # the clients, by either name
    for url in (client.url, f"http://localhost:{port}"):
        async with create_client(url) as c:
            assert (await c.inbox.get_or_create(["main"]).send("free", "by name", wait=True, timeout=10)).ok


# -- cross-site requests ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "origin",
    [
        "http://evil.example",
        "https://evil.example:6420",
        "http://127.0.0.1.evil.example",
        "null",  # sandboxed iframes, file:// pages
        "http://localhost.evil.example",
        "file://",
        "not a url",
    ],
)
async def test_a_cross_site_post_is_refused_and_stores_nothing(client: AsyncClient, origin: str) -> None:
    aid = await client.inbox.get_or_create(["main"]).resolve()
    before = await stored(client)
    async with httpx.AsyncClient(base_url=client.url) as http:
        for ctype in ("text/plain;charset=UTF-8", "application/x-www-form-urlencoded", "application/json"):
            # what fetch(url, {method: "POST", mode: "no-cors", body}) or a <form> sends
            headers = {"Origin": origin, "Content-Type": ctype}
            err = forbidden(
                await http.post(
                    f"/v1/actors/{aid}/queues/free/messages", content=b'{"body": "csrf"}', headers=headers
                )
            )
            assert "Origin" in err["message"]
            forbidden(
                await http.post(
                    f"/v1/actors/{aid}/actions/two", content=b'{"args": [1, "x"]}', headers=headers
                )
            )
            forbidden(
                await http.post("/v1/actors", content=b'{"name": "inbox", "key": ["x"]}', headers=headers)
            )
        forbidden(await http.get("/v1/actors", headers={"Origin": origin}))
    assert await stored(client) == before


async def test_same_machine_origins_are_accepted(client: AsyncClient) -> None:
    aid = await client.inbox.get_or_create(["main"]).resolve()
    port = port_of(client.url)
    async with httpx.AsyncClient(base_url=client.url) as http:
        for origin in (
            f"http://127.0.0.1:{port}",
            "http://localhost:3000",
            "https://localhost",
            "http://[::1]:8080",
        ):
            r = await http.post(
                f"/v1/actors/{aid}/queues/free/messages",
                content=b'{"body": "local page"}',
                headers={"Origin": origin} | JSON,
            )
            assert r.status_code == 201, (origin, r.text)


# -- cross-site WebSocket hijacking -------------------------------------------------------------
async def test_a_websocket_from_a_foreign_origin_is_refused(tmp_path: Path) -> None:
    async with registry.test(token=TOKEN) as client:
        h = client.api.get_or_create(["ws"])
        aid = await h.resolve()
        ws = client.url.replace("http", "ws", 1) + f"/v1/actors/{aid}/connect"
        good = ["actorq", f"actorq.token.{TOKEN}"]
        for origin in ("http://evil.example", "null", "https://127.0.0.1.evil.example"):
            # a browser offers the token subprotocol (it cannot set a header) and sends its Origin;
            # even with the right token, a foreign page must not get the socket
            with pytest.raises(websockets.InvalidStatus) as refused:
                async with websockets.connect(ws, origin=origin, subprotocols=good):  # type: ignore[arg-type, list-item]
                    pass
            assert refused.value.response.status_code == 403
            async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as session:
                with pytest.raises(aiohttp.WSServerHandshakeError) as denied:
                    await session.ws_connect(ws, origin=origin)
                assert denied.value.status == 403
        # a rebinding Host on the handshake
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with websockets.connect(
                ws,
                subprotocols=good,
                additional_headers={"Host": "evil.example:6420"},  # type: ignore[list-item]
            ):
                pass
        assert refused.value.response.status_code == 403
        # the same socket from a page of the machine itself is served
        async with websockets.connect(
            ws, origin=f"http://localhost:{port_of(client.url)}", subprotocols=good
        ) as sock:  # type: ignore[arg-type, list-item]
            assert '"init"' in await asyncio.wait_for(sock.recv(), 5)
            await sock.send('{"type": "action", "id": 1, "name": "add", "args": [2]}')
            assert '"result":2' in await asyncio.wait_for(sock.recv(), 5)
        assert await h.add(0) == 2, "only the allowed page's action ran"


# -- other bindings: a specific address, a wildcard, a mounted app, allowed_hosts -------------------
@contextlib.asynccontextmanager
async def app_as_if_bound(
    tmp_path: Path, host: str | None, allowed: Sequence[str] | None = None
) -> AsyncIterator[str]:
    """The app's Host policy for a server bound to ``host``, actually served on loopback."""
    from actorq.server.app import create_app

    app = create_app(registry, storage=tmp_path / "data", host=host, allowed_hosts=allowed)
    async with serve_asgi(app) as url:
        yield url


async def get_as(url: str, host: str, origin: str | None = None) -> int:
    headers = {"Host": host} | ({"Origin": origin} if origin else {})
    async with httpx.AsyncClient(base_url=url) as http:
        return (await http.get("/v1/actors", headers=headers)).status_code


async def test_bound_to_a_specific_address_accepts_that_address_and_allowed_names(tmp_path: Path) -> None:
    async with app_as_if_bound(tmp_path, "192.0.2.10", ["actorq.internal"]) as url:
        assert await get_as(url, "192.0.2.10:6420") == 200
        assert await get_as(url, "192.0.2.10") == 200
        assert await get_as(url, "ACTORQ.internal:80") == 200
        assert await get_as(url, "actorq.internal", origin="https://actorq.internal") == 200
        for host in ("localhost", "127.0.0.1", "192.0.2.11", "evil.example"):
            assert await get_as(url, host) == 403, host
        assert await get_as(url, "192.0.2.10", origin="http://evil.example") == 403


async def test_the_advertised_address_is_accepted_for_requests_forwarded_by_other_nodes(
    tmp_path: Path,
) -> None:
    from actorq.server.app import create_app

    app = create_app(registry, storage=tmp_path / "data", host="192.0.2.10", advertise="node-a.internal:6420")
    async with serve_asgi(app) as url:
        assert await get_as(url, "node-a.internal:6420") == 200
        assert await get_as(url, "192.0.2.10:6420") == 200
        assert await get_as(url, "node-b.internal:6420") == 403


async def test_bound_to_a_wildcard_accepts_any_host_but_not_a_foreign_origin(tmp_path: Path) -> None:
    for wildcard in ("0.0.0.0", "::"):
        async with app_as_if_bound(tmp_path / wildcard.replace(":", "v6"), wildcard) as url:
            assert await get_as(url, "anything.example:6420") == 200
            assert await get_as(url, "10.1.2.3") == 200
            # the page must come from the name it reached the server by
            assert await get_as(url, "svc.example:6420", origin="https://svc.example") == 200
            assert await get_as(url, "svc.example:6420", origin="http://evil.example") == 403
            assert await get_as(url, "svc.example", origin="null") == 403
    async with app_as_if_bound(tmp_path / "listed", "0.0.0.0", ["svc.example"]) as url:
        assert await get_as(url, "svc.example") == 200
        assert await get_as(url, "other.example") == 403
        assert await get_as(url, "svc.example", origin="http://other.example") == 403


async def test_a_mounted_app_checks_hosts_only_when_told(tmp_path: Path) -> None:
    async with app_as_if_bound(tmp_path / "a", None) as url:  # registry.app(): the host app decides
        assert await get_as(url, "anything.example") == 200
    async with app_as_if_bound(tmp_path / "b", None, ["app.example"]) as url:
        assert await get_as(url, "app.example") == 200
        assert await get_as(url, "evil.example") == 403
    app = registry.app(storage=tmp_path / "c", allowed_hosts=["app.example"])
    async with serve_asgi(app) as url:
        assert await get_as(url, "evil.example") == 403


async def test_serve_on_a_specific_loopback_address_with_allowed_hosts(tmp_path: Path) -> None:
    port = free_port()
    server = build(
        registry,
        host="127.0.0.2",
        port=port,
        storage=tmp_path / "data",
        allowed_hosts=["actorq.test"],
        signals=False,
        log_level="warning",
    )
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            assert not task.done()
            await asyncio.sleep(0.01)
        url = f"http://127.0.0.2:{port}"
        assert await get_as(url, f"127.0.0.2:{port}") == 200
        assert await get_as(url, "actorq.test") == 200
        assert await get_as(url, "localhost") == 403, "bound to one address: not every loopback name"
        async with create_client(url) as c:
            assert (await c.inbox.get_or_create(["x"]).send("free", 1, wait=True, timeout=10)).ok
    finally:
        server.should_exit = True
        await task


def test_cli_allowed_host(tmp_path: Path) -> None:
    server = ServerProcess(
        "tests.apps.api_app:registry",
        tmp_path / "data",
        args=["--allowed-host", "actorq.test", "--allowed-host", "other.test"],
    )
    server.start()
    try:
        for host, status in (
            ("actorq.test", 200),
            ("other.test:1", 200),
            ("127.0.0.1", 200),
            ("evil.test", 403),
        ):
            assert httpx.get(server.url + "/v1/actors", headers={"Host": host}).status_code == status, host
    finally:
        server.stop()


# -- the typed error through both clients ---------------------------------------------------------
async def test_forbidden_round_trips_through_both_clients(client: AsyncClient) -> None:
    assert (Forbidden.code, Forbidden.status) == ("forbidden", 403)
    assert ERRORS["forbidden"] is Forbidden
    aid = await client.inbox.get_or_create(["main"]).resolve()
    before = await stored(client)
    async with create_client(client.url, retry_for=0) as c:
        c._get_session().headers["Origin"] = "http://evil.example"
        with pytest.raises(Forbidden) as a:
            await c.inbox.get_for_id(aid).send("free", "x")

    def sync_call() -> None:
        with create_sync_client(client.url, retry_for=0) as s:
            s._http.headers["Host"] = "evil.example"
            with pytest.raises(Forbidden):
                s.inbox.get_for_id(aid).send("free", "x")

    await asyncio.to_thread(sync_call)
    assert "Origin" in a.value.message
    assert await stored(client) == before
