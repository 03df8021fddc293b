"""Signed preview URLs: a server in the VM (python -m http.server, started with spawn) reached
through the actorq server without the API token, until the URL expires or is expired; forged,
expired and malformed URLs are typed errors that send nothing into the VM, and nothing else of the
server or of other VMs can be reached through a preview."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from actorq import BadRequest, NotFound
from actorq.client import AsyncClient
from tests.apps.vm_app import registry

TOKEN = "preview-test-token"
PORT = 18941


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[AsyncClient]:
    async with registry.test(storage=tmp_path / "data", token=TOKEN) as c:
        yield c


@pytest.fixture
async def browser(client: AsyncClient) -> AsyncIterator[httpx.AsyncClient]:
    """What a browser has: the server's address, no API token."""
    async with httpx.AsyncClient(base_url=client.url, timeout=30) as b:
        yield b


async def serve(vm: Any, port: int = PORT) -> None:
    await vm.write_file("/home/user/site/index.html", "<h1>inside</h1>")
    await vm.write_file("/home/user/site/sub/page.txt", "sub page")
    await vm.spawn("python3", ["-m", "http.server", str(port), "--bind", "127.0.0.1"], cwd="/home/user/site")
    deadline = time.monotonic() + 10
    while True:
        try:
            await vm.vm_fetch(port, "/")
            return
        except NotFound:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)


async def raw_get(base: str, target: str, host: str | None = None) -> tuple[int, bytes]:
    """A GET with the request target exactly as given (no client-side normalization)."""
    parts = urlsplit(base)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    writer.write(
        f"GET {target} HTTP/1.1\r\nHost: {host or parts.netloc}\r\nConnection: close\r\n\r\n".encode()
    )
    await writer.drain()
    data = await reader.read()
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


async def test_a_preview_serves_the_vm_port_without_the_api_token(
    client: AsyncClient, browser: httpx.AsyncClient
) -> None:
    vm = client.offline.get_or_create(["preview"])
    await serve(vm)
    assert (await browser.get("/v1/actors")).status_code == 401  # the API stays closed
    p = await vm.create_signed_preview_url(PORT, 60)
    assert p.port == PORT and p.url.startswith("/v1/preview/") and p.expires_at > time.time() + 50
    r = await browser.get(p.url)
    assert r.status_code == 200 and "index.html" not in r.text and r.text == "<h1>inside</h1>"
    assert r.headers["content-security-policy"].startswith("sandbox")  # an opaque origin for its scripts
    r = await browser.get(p.url + "sub/page.txt?x=1")
    assert r.status_code == 200 and r.text == "sub page"
    # a form post is the VM server's business (http.server answers 501 to POST), not a 415 of ours
    r = await browser.post(p.url, data={"a": "b"}, headers={"origin": "null"})  # a sandboxed page's form
    assert r.status_code == 501 and "SimpleHTTP" in r.headers.get("server", "")
    r = await browser.post("/v1/actors", json={}, headers={"origin": "null"})
    assert r.status_code == 403  # the API still refuses a foreign Origin
    assert [x.id for x in await vm.list_preview_urls()] == [p.id]

    # expired by hand: 403, and nothing proxied
    assert await vm.expire_signed_preview_url(p.url) is True
    r = await browser.get(p.url)
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    assert await vm.expire_signed_preview_url(p.id) is False
    assert await vm.list_preview_urls() == []

    # expired by its ttl
    short = await vm.create_signed_preview_url(PORT, 1)
    assert (await browser.get(short.url)).status_code == 200
    await asyncio.sleep(short.expires_at - time.time() + 0.2)
    assert (await browser.get(short.url)).status_code == 403


async def test_bad_previews_are_typed_and_change_nothing(
    client: AsyncClient, browser: httpx.AsyncClient
) -> None:
    vm = client.offline.get_or_create(["bad-preview"])
    await serve(vm, PORT + 1)
    for port, ttl in ((0, 60), (65536, 60), (PORT, 0), (PORT, 8 * 24 * 3600), (PORT, float("inf"))):
        with pytest.raises(BadRequest):
            await vm.create_signed_preview_url(port, ttl)
    with pytest.raises(BadRequest):
        await vm.expire_signed_preview_url("")
    assert await vm.list_preview_urls() == []

    good = await vm.create_signed_preview_url(PORT + 1, 60)
    token = good.url.split("/")[3]
    head, pid, expires, sig = token.split(".")
    forged = [
        f"{head}.{pid}.{expires}.{sig[:-2]}AA",  # another signature
        f"{head}.{pid}.{int(expires) + 3600}.{sig}",  # a later expiry
        f"{head}.prv_000000000000000000000000.{expires}.{sig}",  # another preview id
    ]
    for bad in forged:
        r = await browser.get(f"/v1/preview/{bad}/")
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden", bad
    # another VM's head with this VM's token: that VM does not know it
    other = client.offline.get_or_create(["other-preview"])
    other_head = (await other.create_signed_preview_url(PORT + 1, 60)).url.split("/")[3].split(".")[0]
    assert (await browser.get(f"/v1/preview/{other_head}.{pid}.{expires}.{sig}/")).status_code == 403
    for junk in ("nothing", "!!!.a.b.c", "bm8tc3VjaC1hY3Rvcg.a.1.b"):
        r = await browser.get(f"/v1/preview/{junk}/")
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", junk

    # a port nothing listens on: 502, typed
    dead = await vm.create_signed_preview_url(PORT + 2, 60)
    r = await browser.get(dead.url)
    assert r.status_code == 502 and r.json()["error"]["code"] == "bad_gateway"

    # nothing in the path leaves the preview: dot segments and encoded slashes go to the VM's
    # server (or nowhere), never to the API; a foreign Host is refused before any route
    status, body = await raw_get(client.url, f"/v1/preview/{token}/../../v1/actors")
    assert status == 404 and b"actors" not in body  # http.server's 404 for its own path
    status, body = await raw_get(client.url, f"/v1/preview/{token}%2F..%2F..%2Fv1%2Factors")
    assert status == 404 and b'"actors"' not in body
    status, _ = await raw_get(client.url, good.url, host="evil.example")
    assert status == 403
    assert (await browser.get(good.url)).text == "<h1>inside</h1>"  # the good one still works
    assert sorted(x.id for x in await vm.list_preview_urls()) == sorted([good.id, dead.id])


async def test_a_preview_outlives_a_restart_and_expiring_it_is_durable(tmp_path: Path) -> None:
    async with registry.test(storage=tmp_path / "data", token=TOKEN) as c:
        vm = c.offline.get_or_create(["durable-preview"])
        keep = await vm.create_signed_preview_url(PORT + 3, 600)
        gone = await vm.create_signed_preview_url(PORT + 3, 600)
        assert await vm.expire_signed_preview_url(gone.id)
    async with registry.test(storage=tmp_path / "data", token=TOKEN) as c:
        vm = c.offline.get_or_create(["durable-preview"])
        await serve(vm, PORT + 3)  # processes do not survive a restart; the preview does
        async with httpx.AsyncClient(base_url=c.url, timeout=30) as b:
            assert (await b.get(keep.url)).text == "<h1>inside</h1>"
            assert (await b.get(gone.url)).status_code == 403
        assert [p.id for p in await vm.list_preview_urls()] == [keep.id]


WS_SERVER = Path(__file__).with_name("ws_echo_server.py")


async def test_a_websocket_through_a_preview(client: AsyncClient) -> None:
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus

    vm = client.offline.get_or_create(["ws-preview"])
    port = PORT + 5
    await vm.write_file("/home/user/ws_echo_server.py", WS_SERVER.read_bytes())
    await vm.spawn("python3", ["/home/user/ws_echo_server.py", str(port)])
    p = await vm.create_signed_preview_url(port, 60)
    ws_url = client.url.replace("http://", "ws://") + p.url + "room/1?x=2"
    deadline = time.monotonic() + 10
    while True:
        try:
            far = await connect(ws_url, subprotocols=["chat"])  # type: ignore[list-item]
            break
        except InvalidStatus:
            assert time.monotonic() < deadline  # the echo server is still starting
            await asyncio.sleep(0.2)
    async with far:
        assert far.subprotocol == "chat"
        assert await far.recv() == "hello /room/1?x=2 chat"
        await far.send("ping")
        assert await far.recv() == "echo: ping"
        await far.send(b"\x00\x01")
        assert await far.recv() == b"echo: \x00\x01"
    # forged, or expired: the handshake is refused and nothing is opened
    head, pid, expires, sig = p.url.split("/")[3].split(".")
    forged = client.url.replace("http://", "ws://") + f"/v1/preview/{head}.{pid}.{expires}.{sig[:-2]}AA/"
    with pytest.raises(InvalidStatus) as refused:
        await connect(forged)
    assert refused.value.response.status_code == 403
    assert await vm.expire_signed_preview_url(p.id)
    with pytest.raises(InvalidStatus):
        await connect(ws_url)


@pytest.mark.parametrize("expires", ["²", "١٢٣", "9" * 5000])
def test_a_token_with_an_odd_expiry_is_forbidden_not_a_crash(expires: str) -> None:
    # the preview route is open (no API token): whatever the token holds, the answer is Forbidden;
    # str.isdigit() admits digits int() refuses (superscripts) and non-ASCII ones
    from actorq.agent_os import preview
    from actorq.errors import Forbidden

    state: dict[str, Any] = {}
    url = preview.create(state, "a1", "YTE", 8000, 60)
    head, pid, _, sig = url.url.removeprefix(preview.PREFIX).rstrip("/").split(".")
    with pytest.raises(Forbidden):
        preview.admit(state, "a1", f"{head}.{pid}.{expires}.{sig}")
