"""JSON routes take JSON only: any other Content-Type, or a body without one, is a 415
``unsupported_media_type`` that stores nothing. A browser can send ``text/plain``,
``application/x-www-form-urlencoded`` and ``multipart/form-data`` cross-site without asking
(a "simple" request): refusing them is what keeps a web page from POSTing to the server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from actorq.client import AsyncClient, create_client, create_sync_client
from actorq.errors import ERRORS, UnsupportedMediaType, error_from_dict
from tests.apps.api_app import registry, stored


@pytest.fixture
async def client() -> AsyncIterator[AsyncClient]:
    async with registry.test() as c:
        h = c.inbox.get_or_create(["main"])
        assert (await h.send("free", "baseline", wait=True, timeout=10)).ok
        yield c


def routes(aid: str) -> list[tuple[str, str, bytes]]:
    """Every JSON route that takes a body, each with a body that would succeed as JSON."""
    return [
        ("POST", "/v1/actors", b'{"name": "inbox", "key": ["csrf"]}'),
        ("POST", f"/v1/actors/{aid}/queues/free/messages", b'{"body": "csrf"}'),
        ("POST", f"/v1/actors/{aid}/batch", b'{"messages": [{"queue": "free", "body": "csrf"}]}'),
        (
            "POST",
            "/v1/batch",
            b'{"messages": [{"actor_id": "%s", "queue": "free", "body": 1}]}' % aid.encode(),
        ),
        ("POST", f"/v1/actors/{aid}/actions/two", b'{"args": [1, "x"]}'),
        ("POST", f"/v1/actors/{aid}/dead-letters/1/retry", b"{}"),
        ("DELETE", f"/v1/actors/{aid}/dead-letters/1", b"{}"),
    ]


REFUSED = [
    "text/plain",
    "text/plain;charset=UTF-8",  # what fetch() and <form enctype="text/plain"> send
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=----x",
    "application/jsonp",
    "application/json-patch",
    "text/json",
    "json",
    "",
    "application/json; charset=latin-1",  # the body is read as UTF-8, nothing else
    "application/+json",
]


@pytest.mark.parametrize("ctype", REFUSED)
async def test_non_json_content_types_are_415_and_store_nothing(client: AsyncClient, ctype: str) -> None:
    aid = await client.inbox.get_or_create(["main"]).resolve()
    before = await stored(client)
    async with httpx.AsyncClient(base_url=client.url) as http:
        for method, path, content in routes(aid):
            r = await http.request(method, path, content=content, headers={"Content-Type": ctype})
            assert r.status_code == 415, (method, path, ctype, r.status_code, r.text)
            err = r.json()["error"]
            assert err["code"] == "unsupported_media_type" and "JSON" in err["message"]
            assert err["details"]["content_type"] == ctype
    assert await stored(client) == before


async def test_a_body_without_a_content_type_is_415(client: AsyncClient) -> None:
    aid = await client.inbox.get_or_create(["main"]).resolve()
    before = await stored(client)
    async with httpx.AsyncClient(base_url=client.url) as http:
        for method, path, content in routes(aid):
            r = await http.request(method, path, content=content)
            assert "content-type" not in r.request.headers
            assert r.status_code == 415, (method, path, r.text)
            assert r.json()["error"]["code"] == "unsupported_media_type"

            async def chunked(data: bytes = content) -> AsyncIterator[bytes]:
                yield data

            r = await http.request(method, path, content=chunked())
            assert r.request.headers.get("transfer-encoding") == "chunked"
            assert r.status_code == 415, (method, path, r.text)
    assert await stored(client) == before


@pytest.mark.parametrize(
    "ctype",
    [
        "application/json",
        "application/json; charset=utf-8",
        'Application/JSON;Charset="UTF-8"',
        "application/vnd.actorq+json",
        "application/problem+json; charset=utf-8",
    ],
)
async def test_json_content_types_are_accepted(client: AsyncClient, ctype: str) -> None:
    h = client.inbox.get_or_create(["main"])
    aid = await h.resolve()
    async with httpx.AsyncClient(base_url=client.url) as http:
        r = await http.post(
            f"/v1/actors/{aid}/queues/free/messages",
            content=b'{"body": "ok"}',
            headers={"Content-Type": ctype},
        )
        assert r.status_code == 201, r.text
        r = await http.post(
            f"/v1/actors/{aid}/actions/two", content=b'{"args": [4, "2"]}', headers={"Content-Type": ctype}
        )
        assert r.json() == {"result": "42"}


async def test_no_body_needs_no_content_type(client: AsyncClient) -> None:
    aid = await client.inbox.get_or_create(["main"]).resolve()
    async with httpx.AsyncClient(base_url=client.url) as http:
        r = await http.post(f"/v1/actors/{aid}/actions/seen")
        assert r.status_code == 200 and "content-type" not in r.request.headers
        r = await http.post(f"/v1/actors/{aid}/dead-letters/1/retry")
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
        assert (await http.get("/v1/actors", headers={"Content-Type": "text/plain"})).status_code == 200


async def test_unsupported_media_type_round_trips_through_both_clients(client: AsyncClient) -> None:
    assert (UnsupportedMediaType.code, UnsupportedMediaType.status) == ("unsupported_media_type", 415)
    assert ERRORS["unsupported_media_type"] is UnsupportedMediaType
    assert type(error_from_dict(415, {"error": {"code": "x", "message": "m"}})) is UnsupportedMediaType
    aid = await client.inbox.get_or_create(["main"]).resolve()
    before = await stored(client)
    # clients whose requests go out with a wrong Content-Type (as a misconfigured proxy would make them)
    async with create_client(client.url, retry_for=0) as bad:
        bad._get_session().headers["Content-Type"] = "text/plain"
        with pytest.raises(UnsupportedMediaType) as a:
            await bad.inbox.get_for_id(aid).send("free", "x")
    assert a.value.details["content_type"] == "text/plain"

    def sync_call() -> None:
        with create_sync_client(client.url, retry_for=0) as sync:
            sync._http.headers["Content-Type"] = "text/plain"
            with pytest.raises(UnsupportedMediaType) as s:
                sync.inbox.get_for_id(aid).send("free", "x")
            assert s.value.details == a.value.details

    await asyncio.to_thread(sync_call)
    assert await stored(client) == before
