"""The core's signed-URL seam without any VM: an actor type's ``http_action`` is the only thing the
open ``/v1/preview/{token}/`` route reaches, and an actor type without one is not reachable at all."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from actorq import ActorContext, actor, setup
from actorq.core import http_token_actor, http_token_head


async def echo(c: ActorContext, token: str, request: dict[str, Any]) -> dict[str, Any]:
    if not token.endswith(".good"):
        from actorq.errors import Forbidden

        raise Forbidden("not a token of mine")
    body = f"{c.actor_id} {request['method']} {request['path']} {len(request['body'])}".encode()
    return {"status": 200, "headers": {"content-type": "text/plain"}, "body": body}


async def secret(c: ActorContext) -> str:
    return "the secret action"


registry = setup(
    use={
        "site": actor(actions={"echo": echo, "secret": secret}, http_action="echo"),
        "plain": actor(actions={"secret": secret}),
    }
)


def test_the_token_head_names_the_actor() -> None:
    head = http_token_head("site:abc/ü")
    assert "." not in head and "/" not in head and "=" not in head
    assert http_token_actor(f"{head}.anything") == "site:abc/ü"
    for bad in ("", "nodot", ".x", "!!!.x"):
        assert http_token_actor(bad) is None


def test_http_action_must_be_one_of_the_actions() -> None:
    with pytest.raises(ValueError):
        actor(actions={"secret": secret}, http_action="missing")


async def test_only_the_http_action_is_reached_without_the_token(tmp_path: Path) -> None:
    async with registry.test(storage=tmp_path / "data", token="tok") as client:
        site_id = await client.site.get_or_create(["a"]).resolve()
        plain_id = await client.plain.get_or_create(["a"]).resolve()
        async with httpx.AsyncClient(base_url=client.url) as browser:
            r = await browser.post(
                f"/v1/preview/{http_token_head(site_id)}.good/x/%2e%2e/y?q=1",
                content=b"abc",
                headers={"content-type": "text/plain"},
            )
            assert r.status_code == 200 and r.text == f"{site_id} POST /x/%2e%2e/y?q=1 3"
            assert r.headers["content-security-policy"].startswith("sandbox")
            r = await browser.get(f"/v1/preview/{http_token_head(site_id)}.bad/")
            assert r.status_code == 403
            # an actor type without http_action: the same 404 as an unknown actor, nothing called
            for head in (http_token_head(plain_id), http_token_head("nobody")):
                r = await browser.get(f"/v1/preview/{head}.good/")
                assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
            assert (await browser.post(f"/v1/actors/{site_id}/actions/secret", json={})).status_code == 401
