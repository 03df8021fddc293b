"""The routes the web inspector needs beyond the basics, as every client has them: an actor's
persisted state, pending messages with their bodies, and the actor list filtered by key prefix
with each actor's ``awake`` flag and a ``next_after`` cursor."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from actorq.client import AsyncClient, create_sync_client
from actorq.errors import BadRequest, NotFound
from tests.apps.api_app import registry


@pytest.fixture
async def client() -> AsyncIterator[AsyncClient]:
    async with registry.test() as c:
        yield c


async def test_state_is_null_until_saved_then_what_the_actor_persisted(client: AsyncClient) -> None:
    h = client.api.get_or_create(["state"])
    assert await h.persisted_state() is None
    assert await h.action("add", 5) == 5
    assert await h.persisted_state() == {"total": 5}
    assert (await h.send("jobs", {"n": 2}, wait=True, timeout=10)).ok
    assert await h.persisted_state() == {"total": 5, "jobs": 1}


async def test_state_of_an_unknown_actor_is_a_404_and_the_sync_client_reads_it_too(
    client: AsyncClient,
) -> None:
    async with httpx.AsyncClient(base_url=client.url) as http:
        r = await http.get("/v1/actors/no-such-actor/state")
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
        r = await http.get("/v1/actors/x/state", params={"limit": "1"})
        assert r.status_code == 400
    with pytest.raises(NotFound):
        await client.api.get_for_id("no-such-actor").persisted_state()
    aid = await client.api.get_or_create(["sync-state"]).resolve()
    await client.api.get_for_id(aid).action("add", 2)

    def read() -> object:
        with create_sync_client(client.url) as sc:
            return sc.api.get_for_id(aid).persisted_state()

    assert await asyncio.to_thread(read) == {"total": 2}


async def test_pending_messages_carry_their_bodies(client: AsyncClient) -> None:
    h = client.store.get_or_create(["bodies"])
    await h.send("q", {"file": "a.py"})
    await h.send("q", [1, "two", None])
    pending = await h.messages("pending")
    assert [(m["id"], m["body"]) for m in pending] == [(1, {"file": "a.py"}), (2, [1, "two", None])]


async def test_list_by_key_prefix_pages_with_next_after(client: AsyncClient) -> None:
    for k in (["t1", "a"], ["t1", "b"], ["t2", "a"], ["t10"], ["other"]):
        await client.store.get_or_create(k).resolve()
    found = await client.list_actors("store", key_prefix="t1")
    assert sorted(a.key for a in found) == [["t1", "a"], ["t1", "b"], ["t10"]]
    assert [a.key for a in await client.list_actors("store", key_prefix="t1/")] in (
        [["t1", "a"], ["t1", "b"]],
        [["t1", "b"], ["t1", "a"]],
    )
    assert await client.list_actors("store", key_prefix="zzz") == []
    async with httpx.AsyncClient(base_url=client.url) as http:
        # page by page: two at a time, following next_after to the end
        seen: list[list[str]] = []
        after = None
        for _ in range(5):
            params = {"name": "store", "key_prefix": "t", "limit": "2"}
            if after:
                params["after"] = after
            r = await http.get("/v1/actors", params=params)
            assert r.status_code == 200, r.text
            data = r.json()
            seen += [a["key"] for a in data["actors"]]
            assert all(a["awake"] is False for a in data["actors"])
            after = data["next_after"]
            if after is None:
                break
        assert sorted(seen) == [["t1", "a"], ["t1", "b"], ["t10"], ["t2", "a"]]
        # unfiltered: next_after is the last id of a full page, null on a short one
        r = await http.get("/v1/actors", params={"name": "store", "limit": "2"})
        assert r.json()["next_after"] == r.json()["actors"][-1]["actor_id"]
        r = await http.get("/v1/actors", params={"name": "store", "limit": "1000"})
        assert r.json()["next_after"] is None


async def test_awake_is_listed(client: AsyncClient) -> None:
    h = client.api.get_or_create(["awake-listed"])
    await h.action("add", 1)
    listed = (await httpx.AsyncClient(base_url=client.url).get("/v1/actors", params={"name": "api"})).json()
    assert {a["actor_id"]: a["awake"] for a in listed["actors"]}[await h.resolve()] is True


@pytest.mark.parametrize("bad", ["", "a\x00b", "x" * 1025])
async def test_a_bad_key_prefix_is_a_400_naming_it(client: AsyncClient, bad: str) -> None:
    async with httpx.AsyncClient(base_url=client.url) as http:
        r = await http.get("/v1/actors", params={"key_prefix": bad})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["details"][0]["loc"] == ["query", "key_prefix"]
    if bad:
        with pytest.raises(BadRequest):
            await client.list_actors(key_prefix=bad)


async def test_cluster_nodes_without_a_cluster_is_this_process_with_its_awake_actors(
    client: AsyncClient,
) -> None:
    h = client.api.get_or_create(["node-listed"])
    await h.action("add", 1)
    nodes = await client.cluster_nodes()
    assert len(nodes) == 1
    node = nodes[0]
    assert node["node"] == "local" and node["this_node"] is True and node["address"] is None
    assert await h.resolve() in node["actors"] and node["actor_count"] >= 1
    async with httpx.AsyncClient(base_url=client.url) as http:
        r = await http.get("/v1/cluster/nodes")
        assert r.status_code == 200 and r.json()["clustered"] is False
        assert (await http.get("/v1/cluster/nodes", params={"limit": "0"})).status_code == 400
        assert (await http.get("/v1/cluster/nodes", params={"node": "x"})).status_code == 400


@pytest.fixture
def pg_schema() -> Iterator[str]:
    from tests.storage.conftest import fresh_schema, pg_up

    if not pg_up():
        pytest.skip("PostgreSQL is not running")
    yield from fresh_schema("insp_")


async def test_cluster_nodes_lists_each_node_and_the_actors_it_runs(pg_schema: str) -> None:
    from actorq.storage.postgres import PostgresStorage
    from tests.storage.conftest import PG_DSN

    async with (
        registry.test(storage=PostgresStorage(PG_DSN, schema=pg_schema)) as a,
        registry.test(storage=PostgresStorage(PG_DSN, schema=pg_schema)) as b,
    ):
        on_a = a.api.get_or_create(["on-a"])
        await on_a.action("add", 1)  # woken (and leased) by node a
        aid = await on_a.resolve()
        nodes = await b.cluster_nodes()
        assert len(nodes) == 2
        assert [n["this_node"] for n in nodes].count(True) == 1
        owner = next(n for n in nodes if aid in n["actors"])
        assert owner["this_node"] is False and owner["actor_count"] == 1 and owner["address"]
        assert all(n["heartbeat_at"] and n["started_at"] for n in nodes)
        assert all(len(n["actors"]) <= 1 for n in await a.cluster_nodes(limit=1))


async def test_a_key_prefix_listing_past_the_scan_budget_goes_on_with_next_after(
    client: AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from actorq.server import app as server_app

    for i in range(7):
        await client.store.get_or_create([f"few-{i}" if i in (1, 5) else f"other-{i}"]).resolve()
    monkeypatch.setattr(server_app, "KEY_SCAN_BUDGET", 2)  # each request reads two actors at most
    async with httpx.AsyncClient(base_url=client.url) as http:
        r = (await http.get("/v1/actors", params={"name": "store", "key_prefix": "few-"})).json()
        assert len(r["actors"]) <= 2 and r["next_after"] is not None
    # the clients follow next_after until they have `limit` actors or there are no more
    assert sorted(a.key[0] for a in await client.list_actors("store", key_prefix="few-")) == [
        "few-1",
        "few-5",
    ]
    assert len(await client.list_actors("store", key_prefix="few-", limit=1)) == 1
    assert await client.list_actors("store", key_prefix="none-") == []


def test_every_vm_action_the_page_calls_is_a_public_vm_action() -> None:
    """The VM page talks through the VM's own actions only: each name it calls is one of them
    (not an internal one such as cron_tick), so renaming an action cannot silently break it."""
    import re
    from pathlib import Path

    from actorq.agent_os.actions import ACTIONS

    js = (Path(__file__).parent.parent / "src/actorq/server/static/ui/js/vm.js").read_text()
    called = set(re.findall(r'\bcall\("([a-z_]+)"', js))
    assert {"get_session_events", "get_events", "list_permission_requests", "respond_permission"} <= called
    assert "get_usage" in called and called <= set(ACTIONS) - {"cron_tick", "permission_resume"}
