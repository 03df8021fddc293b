"""The web inspector at /ui/, driven in Debian's Chromium by Playwright: what it shows changes
live as clients act on the server, its buttons act through the API like any client, and with a
token it asks for it and keeps it out of URLs.

Skipped only when /usr/bin/chromium is absent (``make system`` installs it)."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from actorq.client import AsyncClient
from tests.apps.inspector_app import POISON, registry

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (make system)")
playwright_api = pytest.importorskip("playwright.async_api")

TOKEN = "inspector-t0ken"
LIVE = 8_000  # ms: how long the page may take to show a change (it polls every second)


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    async with playwright_api.async_playwright() as p:
        b = await p.chromium.launch(executable_path=str(CHROMIUM))
        try:
            yield b
        finally:
            await b.close()


@pytest.fixture
async def client() -> AsyncIterator[AsyncClient]:
    async with registry.test() as c:
        yield c


async def open_page(browser: Any, url: str, sockets: list[Any] | None = None) -> tuple[Any, list[str]]:
    page = await browser.new_page(viewport={"width": 1300, "height": 900})
    if sockets is not None:  # the page's WebSockets pass through the test, which can drop them

        def through(ws: Any) -> None:
            ws.connect_to_server()
            sockets.append(ws)

        await page.route_web_socket(re.compile(r"/connect$"), through)
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))

    def console(m: Any) -> None:  # an API error answer is logged by Chromium itself: not a problem
        if m.type == "error" and not m.text.startswith("Failed to load resource"):
            problems.append(f"console {m.type}: {m.text}")

    page.on("console", console)
    await page.goto(url)
    return page, problems


def count(page: Any, queue: str, name: str) -> Any:
    return page.locator(f'#queues tr[data-queue="{queue}"] td[data-count="{name}"]')


async def test_static_files_are_open_and_carry_a_strict_csp(client: AsyncClient) -> None:
    async with registry.test(token=TOKEN) as c, httpx.AsyncClient(base_url=c.url) as http:
        r = await http.get("/ui/")
        assert r.status_code == 200 and "<title>actorq inspector</title>" in r.text
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
        assert "script-src 'self'" in r.headers["content-security-policy"]
        for path in ("/ui/js/main.js", "/ui/js/api.js", "/ui/style.css"):
            assert (await http.get(path)).status_code == 200, path
        assert (await http.get("/ui", follow_redirects=False)).headers["location"] == "/ui/"
        # the files are open; the API behind them is not
        assert (await http.get("/v1/actors")).status_code == 401
        assert (await http.get("/ui/../v1/actors")).status_code == 401
        assert (await http.get("/ui/js/nope.js")).status_code == 404
        # no other site may load it through a rebound name
        assert (await http.get("/ui/", headers={"Host": "evil.example"})).status_code == 403
        # nothing but the inspector's own files comes from under /ui/, however the path is spelt
        port = int(c.url.rsplit(":", 1)[1])
        for path in (
            "/ui/../v1/actors",
            "/ui/..%2f..%2fv1/actors",
            "/ui/%2e%2e/%2e%2e/pyproject.toml",
            "/ui/../../../../etc/passwd",
            "/ui//etc/passwd",
        ):
            status, body = await raw_get(port, path)
            assert status == 404 and b"actors" not in body.split(b"\r\n\r\n", 1)[1][:20], (path, body)
        assert (await raw_get(port, "/ui/js/../index.html"))[0] == 200


async def raw_get(port: int, path: str) -> tuple[int, bytes]:
    """A request whose path goes out exactly as written (httpx would normalise it)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    data = await reader.read()
    writer.close()
    return int(data.split(b" ", 2)[1]), data


async def test_the_page_s_parsers_metrics_text_and_schema_references(
    client: AsyncClient, browser: Any
) -> None:
    page, problems = await open_page(browser, client.url + "/ui/")
    samples = await page.evaluate(
        """async (text) => (await import("/ui/js/chart.js")).parseMetrics(text)""",
        '# HELP x_total a counter\n# TYPE x_total counter\nx_total{actor="a",queue="q \\"1\\""} 3.0\n'
        'x_total{actor="b",queue="q"} 4\nup 1 1700000000\nbad line here\nh_bucket{le="+Inf"} 2\n',
    )
    assert samples == [
        {"name": "x_total", "labels": {"actor": "a", "queue": 'q "1"'}, "value": 3},
        {"name": "x_total", "labels": {"actor": "b", "queue": "q"}, "value": 4},
        {"name": "up", "labels": {}, "value": 1},
        {"name": "h_bucket", "labels": {"le": "+Inf"}, "value": 2},
    ]
    total = await page.evaluate(
        """async () => { const m = await import("/ui/js/chart.js");
            const s = m.parseMetrics('x_total{a="1"} 3\\nx_total{a="2"} 4\\ny 1');
            return [m.metricValue(s, "x_total"), m.metricValue(s, "x_total", {a: "2"}),
                    m.metricValue(s, "z")]; }"""
    )
    assert total == [7, 4, None]
    doc = {
        "components": {
            "schemas": {
                "Letter": {"type": "object", "properties": {"to": {"$ref": "#/components/schemas/Addr"}}},
                "Addr": {"type": "string", "format": "email"},
                "Node": {"type": "object", "properties": {"next": {"$ref": "#/components/schemas/Node"}}},
            }
        }
    }
    resolved = await page.evaluate(
        """async ([doc]) => { const m = await import("/ui/js/api.js");
            return [m.resolveRefs({"$ref": "#/components/schemas/Letter"}, doc),
                    m.resolveRefs({"$ref": "#/components/schemas/Node"}, doc),
                    m.resolveRefs({"$ref": "#/components/schemas/Missing"}, doc),
                    m.resolveRefs({"$ref": "https://elsewhere.example/x"}, doc)]; }""",
        [doc],
    )
    assert resolved[0] == {"type": "object", "properties": {"to": {"type": "string", "format": "email"}}}
    assert resolved[1] == {"type": "object", "properties": {"next": {"$ref": "#/components/schemas/Node"}}}
    assert resolved[2] == {"$ref": "#/components/schemas/Missing"}
    assert resolved[3] == {"$ref": "https://elsewhere.example/x"}  # never fetched
    assert problems == []


async def test_schemas_published_as_component_references_show_whole(
    client: AsyncClient, browser: Any
) -> None:
    """The OpenAPI document names each queue's body and each action's arguments in ``components``
    and points at them: the page shows them whole, references resolved; an action whose arguments
    are not published (an older server) shows none."""
    async with httpx.AsyncClient(base_url=client.url) as http:
        doc = (await http.get("/openapi.json")).json()
    worker = doc["x-actorq-actors"]["worker"]
    assert "$ref" in worker["queues"]["jobs"]["body"]
    del worker["actions"]["announce"]["args"]
    aid = await client.worker.get_or_create(["schemas"]).resolve()
    page = await browser.new_page()
    body = json.dumps(doc)
    await page.route(
        "**/openapi.json", lambda route: route.fulfill(status=200, content_type="application/json", body=body)
    )
    await page.goto(f"{client.url}/ui/#/actor/{aid}")
    schema = page.locator("#send-schema")
    await playwright_api.expect(schema).to_contain_text('"pause"', timeout=LIVE)
    assert "$ref" not in await schema.inner_text()
    await page.locator("#action-name").select_option("add")
    await playwright_api.expect(page.locator("#action-schema")).to_contain_text('"prefixItems"')
    assert "$ref" not in await page.locator("#action-schema").inner_text()
    await page.locator("#action-name").select_option("announce")  # none published: hidden
    await playwright_api.expect(page.locator("#action-schema")).to_be_hidden()


async def test_lists_actors_by_type_and_key_prefix_and_opens_one(client: AsyncClient, browser: Any) -> None:
    for key in (["tenant-1", "inbox"], ["tenant-1", "outbox"], ["tenant-2", "inbox"]):
        await client.mailbox.get_or_create(key).resolve()
    await client.worker.get_or_create(["w"]).resolve()
    page, problems = await open_page(browser, client.url + "/ui/")
    rows = page.locator("#actor-list tbody tr")
    await playwright_api.expect(rows).to_have_count(4, timeout=LIVE)
    await page.locator('#type-tabs [data-type="worker"]').click()
    await playwright_api.expect(rows).to_have_count(1, timeout=LIVE)
    await page.locator('#type-tabs [data-type="mailbox"]').click()
    await page.locator("#key-search").fill("tenant-1/")
    await playwright_api.expect(rows).to_have_count(2, timeout=LIVE)
    await playwright_api.expect(page.locator("#actor-list")).not_to_contain_text("tenant-2")
    assert "type=mailbox" in page.url and "key=tenant-1" in page.url
    await rows.filter(has_text="inbox").locator("a.key").click()
    await playwright_api.expect(page.locator("#actor-key")).to_have_text("tenant-1 / inbox", timeout=LIVE)
    assert problems == []


async def test_the_actor_list_pages_by_50(client: AsyncClient, browser: Any) -> None:
    for i in range(55):
        await client.mailbox.get_or_create(["paged", f"{i:02d}"]).resolve()
    page, problems = await open_page(browser, f"{client.url}/ui/#/actors?type=mailbox&key=paged/")
    rows = page.locator("#actor-list tbody tr")
    await playwright_api.expect(rows).to_have_count(50, timeout=LIVE)
    await playwright_api.expect(page.locator("#page-prev")).to_be_disabled()
    await page.locator("#page-next").click()
    await playwright_api.expect(rows).to_have_count(5, timeout=LIVE)
    await playwright_api.expect(page.locator("#page-no")).to_have_text("page 2")
    await playwright_api.expect(page.locator("#page-next")).to_be_disabled()
    await page.locator("#page-prev").click()
    await playwright_api.expect(rows).to_have_count(50, timeout=LIVE)
    assert problems == []


async def test_pending_count_and_messages_change_live(client: AsyncClient, browser: Any) -> None:
    box = client.mailbox.get_or_create(["live"])
    aid = await box.resolve()
    page, problems = await open_page(browser, f"{client.url}/ui/#/actor/{aid}")
    await playwright_api.expect(count(page, "letters", "pending")).to_have_text("0", timeout=LIVE)
    await box.send("letters", {"to": "ann", "text": "first"})
    await playwright_api.expect(count(page, "letters", "pending")).to_have_text("1", timeout=LIVE)
    await box.send("letters", {"to": "bob", "text": "second"}, delay=600)
    await playwright_api.expect(count(page, "letters", "delayed")).to_have_text("1", timeout=LIVE)
    msgs = page.locator("#messages tbody tr")
    await playwright_api.expect(msgs).to_have_count(2, timeout=LIVE)
    await playwright_api.expect(msgs.nth(0)).to_contain_text('"text":"first"')
    await playwright_api.expect(msgs.nth(1)).to_contain_text("in 9 min")
    # a message sent from the page's own form
    await page.locator("#send-queue").select_option("letters")
    await page.locator("#send-schema").evaluate("e => e.closest('details').open = true")
    await playwright_api.expect(page.locator("#send-schema")).to_contain_text('"text"')
    hint = await page.locator("#send-body").get_attribute("placeholder")
    assert json.loads(hint or "") == {"to": "", "text": ""}
    await page.locator("#send-body").fill('{"to": "cy", "text": "from the page"}')
    await page.locator("#send-submit").click()
    await playwright_api.expect(page.locator("#send-result")).to_contain_text('"status": "accepted"')
    await playwright_api.expect(count(page, "letters", "pending")).to_have_text("2", timeout=LIVE)
    assert [m["body"]["text"] for m in await box.messages()] == ["first", "second", "from the page"]
    # a body the queue's type refuses: the server's 422 shows, nothing is stored
    await page.locator("#send-body").fill('{"to": "cy"}')
    await page.locator("#send-submit").click()
    await playwright_api.expect(page.locator("#send-result")).to_contain_text("validation_error")
    assert len(await box.messages()) == 3
    assert problems == []


async def test_a_dead_letter_is_shown_and_retried_from_the_page(client: AsyncClient, browser: Any) -> None:
    worker = client.worker.get_or_create(["dead"])
    aid = await worker.resolve()
    POISON.add("bad-1")
    try:
        failed = await worker.send("jobs", {"tag": "bad-1", "n": 21}, wait=True, timeout=10)
        assert failed.status == "failed"
        page, problems = await open_page(browser, f"{client.url}/ui/#/actor/{aid}")
        await playwright_api.expect(count(page, "jobs", "dead")).to_have_text("1", timeout=LIVE)
        letter = page.locator(f'#dead-letters tr[data-msg-id="{failed.id}"]')
        await playwright_api.expect(letter).to_contain_text("cannot do job bad-1")
        await playwright_api.expect(letter).to_contain_text('"tag":"bad-1"')
        # the confirm dialog, declined: nothing happens
        page.once("dialog", lambda d: d.dismiss())
        await letter.locator("button.retry").click()
        await page.wait_for_timeout(300)
        assert len(await worker.dead_letters()) == 1
        POISON.discard("bad-1")
        dialogs: list[str] = []

        async def accept(d: Any) -> None:
            dialogs.append(d.message)
            await d.accept()

        page.once("dialog", accept)
        await letter.locator("button.retry").click()
        await playwright_api.expect(count(page, "jobs", "dead")).to_have_text("0", timeout=LIVE)
        await playwright_api.expect(count(page, "jobs", "completed")).to_have_text("1", timeout=LIVE)
        assert dialogs and f"Retry message {failed.id}" in dialogs[0]
        assert await worker.dead_letters() == []
        # the retried message's result, looked up by id; and the state it left
        await page.locator("#result-id").fill(str(failed.id))
        await page.locator("#result-form button").click()
        await playwright_api.expect(page.locator("#result-out")).to_contain_text('"doubled": 42')
        await playwright_api.expect(page.locator("#state")).to_contain_text('"last": "bad-1"', timeout=LIVE)
        assert problems == []
    finally:
        POISON.discard("bad-1")


async def test_a_dead_letter_is_deleted_from_the_page(client: AsyncClient, browser: Any) -> None:
    worker = client.worker.get_or_create(["delete"])
    aid = await worker.resolve()
    POISON.add("bad-2")
    try:
        failed = await worker.send("jobs", {"tag": "bad-2", "n": 1}, wait=True, timeout=10)
        page, _ = await open_page(browser, f"{client.url}/ui/#/actor/{aid}")
        letter = page.locator(f'#dead-letters tr[data-msg-id="{failed.id}"]')
        page.once("dialog", lambda d: d.accept())
        await letter.locator("button.delete").click()
        await playwright_api.expect(page.locator("#dead-letters")).to_contain_text(
            "No dead letters", timeout=LIVE
        )
        assert await worker.dead_letters() == []
    finally:
        POISON.discard("bad-2")


async def test_an_action_called_from_the_page_and_its_events_over_the_websocket(
    client: AsyncClient, browser: Any
) -> None:
    worker = client.worker.get_or_create(["events"])
    aid = await worker.resolve()
    page, problems = await open_page(browser, f"{client.url}/ui/#/actor/{aid}")
    await playwright_api.expect(page.locator("#ws-status")).to_have_text("open", timeout=LIVE)
    await page.locator("#action-name").select_option("announce")
    await playwright_api.expect(page.locator("#action-params")).to_have_text("announce(text, times)")
    await page.locator("#action-args").fill('["hello"]')
    await page.locator("#action-kwargs").fill('{"times": 2}')
    await page.locator("#action-submit").click()
    await playwright_api.expect(page.locator("#action-result")).to_have_text('"HELLO"')
    events = page.locator('#events li[data-event="announcement"]')
    await playwright_api.expect(events).to_have_count(2, timeout=LIVE)
    await playwright_api.expect(events.first).to_contain_text('"i":1')  # newest first
    # events the actor broadcasts while handling a message sent by a client
    await worker.send("jobs", {"tag": "ev", "n": 1}, wait=True, timeout=10)
    await playwright_api.expect(page.locator('#events li[data-event="job_started"]')).to_have_count(
        1, timeout=LIVE
    )
    # not listening: the WebSocket is closed (the actor may sleep), events no longer arrive
    await page.locator("#ws-listen").click()
    await playwright_api.expect(page.locator("#ws-status")).to_have_text("not listening")
    await worker.action("announce", "unheard")
    await page.wait_for_timeout(500)
    await playwright_api.expect(page.locator("#events")).not_to_contain_text("unheard")
    await page.locator("#ws-listen").click()
    await playwright_api.expect(page.locator("#ws-status")).to_have_text("open", timeout=LIVE)
    await worker.action("announce", "heard")
    await playwright_api.expect(page.locator("#events")).to_contain_text("heard", timeout=LIVE)
    # an action that fails: the error shows; bad JSON never leaves the page
    await page.locator("#action-args").fill('["x", "not a number"]')
    await page.locator("#action-kwargs").fill("{}")
    await page.locator("#action-submit").click()
    await playwright_api.expect(page.locator("#action-result")).to_contain_text("validation_error")
    await page.locator("#action-args").fill("[nope")
    await page.locator("#action-submit").click()
    await playwright_api.expect(page.locator("#action-result")).to_contain_text("not JSON")
    assert problems == []


async def test_the_token_is_asked_for_a_wrong_one_refused_and_kept_out_of_urls(browser: Any) -> None:
    async with registry.test(token=TOKEN) as c:
        aid = await c.worker.get_or_create(["secret"]).resolve()
        page, _ = await open_page(browser, f"{c.url}/ui/#/actor/{aid}")
        requests: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        dialog = page.locator("#token-dialog")
        await playwright_api.expect(dialog).to_be_visible(timeout=LIVE)
        await page.locator("#token-input").fill("wrong-token")
        await page.locator("#token-submit").click()
        await playwright_api.expect(page.locator("#token-error")).to_have_text(
            "The server refused that token.", timeout=LIVE
        )
        await playwright_api.expect(dialog).to_be_visible()
        await page.locator("#token-input").fill(TOKEN)
        await page.locator("#token-submit").click()
        await playwright_api.expect(dialog).to_be_hidden(timeout=LIVE)
        await playwright_api.expect(page.locator("#actor-key")).to_have_text("secret", timeout=LIVE)
        await playwright_api.expect(page.locator("#ws-status")).to_have_text("open", timeout=LIVE)
        # a mutating call from the page passes the token, Host and Origin checks
        await page.locator("#action-name").select_option("add")
        await page.locator("#action-args").fill("[3]")
        await page.locator("#action-submit").click()
        await playwright_api.expect(page.locator("#action-result")).to_have_text("3")
        assert await page.evaluate("sessionStorage.getItem('actorq.token')") == TOKEN
        assert not [u for u in requests if TOKEN in u or "wrong-token" in u]
        assert TOKEN not in page.url
        # a new tab of the same browser context shares nothing: asked again
        other, _ = await open_page(browser, f"{c.url}/ui/")
        await playwright_api.expect(other.locator("#token-dialog")).to_be_visible(timeout=LIVE)
        # "Forget token" drops it: the page asks again
        await page.locator("#forget-token").click()
        await playwright_api.expect(page.locator("#token-dialog")).to_be_visible(timeout=LIVE)
        assert await page.evaluate("sessionStorage.getItem('actorq.token')") is None


async def test_the_page_websocket_with_a_wrong_token_is_refused(browser: Any) -> None:
    async with registry.test(token=TOKEN) as c:
        aid = await c.worker.get_or_create(["ws"]).resolve()
        page, _ = await open_page(browser, f"{c.url}/ui/")
        script = """async ([aid, protocols]) => await new Promise((resolve) => {
            const ws = new WebSocket(`ws://${location.host}/v1/actors/${aid}/connect`, protocols);
            ws.onmessage = (ev) => { resolve("open: " + ev.data); ws.close(); };
            ws.onclose = (ev) => resolve("closed " + ev.code);
        })"""
        refused = await page.evaluate(script, [aid, ["actorq", "actorq.token.wrong"]])
        assert refused == "closed 1006"
        accepted = await page.evaluate(script, [aid, ["actorq", f"actorq.token.{TOKEN}"]])
        assert re.fullmatch(r'open: \{"type":"init","actor_id":"[^"]+"\}', accepted)


async def test_cluster_page_shows_the_node_its_actors_and_throughput_from_metrics(
    client: AsyncClient, browser: Any
) -> None:
    worker = client.worker.get_or_create(["busy"])
    await worker.action("add", 1)
    page, problems = await open_page(browser, f"{client.url}/ui/#/cluster")
    node = page.locator('#nodes tr[data-node="local"]')
    await playwright_api.expect(node).to_contain_text("this node", timeout=LIVE)
    await playwright_api.expect(node.locator(".node-actors")).to_contain_text("worker / busy", timeout=LIVE)
    await playwright_api.expect(page.locator("#cluster-mode")).to_contain_text("no cluster")
    for i in range(20):
        await worker.send("jobs", {"tag": f"t{i}", "n": i})
    # the sends show as a rate once two scrapes have seen the counter
    sends = page.locator('#charts path[data-series="sent"]')
    await playwright_api.expect(sends).to_have_count(1, timeout=LIVE)
    # queue depth, from actorq_queue_messages: three letters wait in a mailbox without a run loop
    for i in range(3):
        await client.mailbox.get_or_create(["waiting"]).send("letters", {"to": "x", "text": str(i)})
    depth = page.locator('[data-chart="Queue depth (all actors)"]')
    await playwright_api.expect(depth.locator(".legend")).to_contain_text("pending: 3", timeout=LIVE)
    await node.locator(".node-actors a", has_text="worker / busy").click()
    await playwright_api.expect(page.locator("#actor-key")).to_have_text("busy", timeout=LIVE)
    await playwright_api.expect(page.locator('#queue-charts path[data-series="pending"]')).to_have_count(
        1, timeout=LIVE
    )
    assert problems == []


async def test_mounted_under_a_prefix_the_page_talks_to_the_api_under_it(
    tmp_path: Path, browser: Any
) -> None:
    from starlette.applications import Starlette
    from starlette.routing import Mount

    from tests.apps.api_app import serve_asgi

    inner = registry.app(storage=tmp_path / "mounted", token=TOKEN)
    try:
        async with serve_asgi(Starlette(routes=[Mount("/actorq", app=inner)])) as url:
            async with httpx.AsyncClient(base_url=url) as http:
                r = await http.get("/actorq/ui", follow_redirects=False)
                assert r.status_code == 308 and r.headers["location"] == "/actorq/ui/"
            page, problems = await open_page(browser, f"{url}/actorq/ui/#/actors")
            await page.locator("#token-input").fill(TOKEN)
            await page.locator("#token-submit").click()
            await page.locator("#open-type").select_option("mailbox")
            await page.locator("#open-key").fill("nobody")
            await page.locator("#open-actor button").click()
            await playwright_api.expect(page.locator("#open-error")).to_contain_text(
                "not_found", timeout=LIVE
            )
            async with httpx.AsyncClient(base_url=url + "/actorq") as http:
                r = await http.post(
                    "/v1/actors",
                    json={"name": "worker", "key": ["mounted"]},
                    headers={"Authorization": f"Bearer {TOKEN}"},
                )
                aid = r.json()["actor_id"]
            await page.goto(f"{url}/actorq/ui/#/actor/{aid}")
            await playwright_api.expect(page.locator("#actor-key")).to_have_text("mounted", timeout=LIVE)
            await playwright_api.expect(page.locator("#ws-status")).to_have_text("open", timeout=LIVE)
            assert problems == []
    finally:
        await inner.state.runtime.stop()


@pytest.fixture
def pg_schema() -> Iterator[str]:
    from tests.storage.conftest import fresh_schema, pg_up

    if not pg_up():
        pytest.skip("PostgreSQL is not running")
    yield from fresh_schema("inspui_")


async def test_with_two_nodes_the_page_shows_which_runs_each_actor(pg_schema: str, browser: Any) -> None:
    from actorq.storage.postgres import PostgresStorage
    from tests.storage.conftest import PG_DSN

    async with (
        registry.test(storage=PostgresStorage(PG_DSN, schema=pg_schema)) as a,
        registry.test(storage=PostgresStorage(PG_DSN, schema=pg_schema)) as b,
    ):
        on_a = a.worker.get_or_create(["on-a"])
        await on_a.action("add", 1)  # awake, and leased, on node a
        aid = await on_a.resolve()
        a_node = next(n for n in await a.cluster_nodes() if n["this_node"])["node"]
        page, problems = await open_page(browser, f"{b.url}/ui/#/actors?type=worker")
        row = page.locator(f'#actor-list tr[data-actor-id="{aid}"]')
        await playwright_api.expect(row).to_contain_text(a_node[:8], timeout=LIVE)
        await playwright_api.expect(row).to_contain_text("asleep")  # not in node b's process
        await page.goto(f"{b.url}/ui/#/cluster")
        await playwright_api.expect(page.locator("#nodes tbody tr")).to_have_count(2, timeout=LIVE)
        owner = page.locator(f'#nodes tr[data-node="{a_node}"]')
        await playwright_api.expect(owner.locator(".node-actors")).to_contain_text(
            "worker / on-a", timeout=LIVE
        )
        await playwright_api.expect(page.locator("#cluster-mode")).to_contain_text("2 nodes")
        # the actor's page on node b: its events come relayed from node a
        await page.goto(f"{b.url}/ui/#/actor/{aid}")
        await playwright_api.expect(page.locator("#ws-status")).to_have_text("open", timeout=LIVE)
        await on_a.action("announce", "relayed")
        await playwright_api.expect(page.locator('#events li[data-event="announcement"]')).to_contain_text(
            "relayed", timeout=LIVE
        )
        assert problems == []


# -- agent VMs ------------------------------------------------------------------------------------
async def test_a_pi_session_transcript_streams_live_on_the_vm_page(tmp_path: Path, browser: Any) -> None:
    from actorq.testing.fake_llm import FakeLLM, pi_agent_files
    from tests.apps.vm_app import registry as vm_registry
    from tests.conftest import LLM_PORT

    async with FakeLLM(port=LLM_PORT) as llm, vm_registry.test(storage=tmp_path / "data") as c:
        vm = c.vm.get_or_create(["inspected"])
        for path, text in pi_agent_files(llm.url).items():
            await vm.write_file(f"/home/user/{path}", text)
        await vm.write_file("/home/user/notes/todo.txt", "buy milk\n")
        session = await vm.create_session("pi")
        aid = await vm.resolve()
        page, problems = await open_page(browser, f"{c.url}/ui/#/vm/{aid}")
        await playwright_api.expect(page.locator("#ws-status")).to_have_text("open", timeout=LIVE)
        await playwright_api.expect(
            page.locator(f'#session-list button[data-session="{session["session_id"]}"]')
        ).to_be_visible(timeout=LIVE)
        # a prompt sent by a client: its transcript streams into the page as the agent works
        r = await vm.send_prompt(session["session_id"], "Write a summary to /home/user/s.txt: a\nb")
        assert r["tool_calls"] == ["write"]
        turns = page.locator("#transcript .turn")
        await playwright_api.expect(turns.filter(has_text="tool call · write")).to_have_count(1, timeout=LIVE)
        await playwright_api.expect(turns.filter(has_text="tool call · write")).to_contain_text(
            "/home/user/s.txt"
        )
        await playwright_api.expect(turns.filter(has_text="tool result · write")).to_have_count(
            1, timeout=LIVE
        )
        await playwright_api.expect(turns.filter(has_text="stop reason").last).to_contain_text("stop")
        # and one sent from the page
        await page.locator("#prompt-text").fill("Write a summary to /home/user/t.txt: c")
        await page.locator("#prompt-submit").click()
        await playwright_api.expect(page.locator("#prompt-result")).to_contain_text(
            '"stop_reason": "stop"', timeout=30_000
        )
        await playwright_api.expect(turns.filter(has_text="tool call · write")).to_have_count(2, timeout=LIVE)
        # a page opened later shows what happened before from the VM's event history, the
        # prompts' text included, each event once: the same transcript as the live page's
        later, later_problems = await open_page(browser, f"{c.url}/ui/#/vm/{aid}")
        again = later.locator("#transcript .turn")
        await playwright_api.expect(again.filter(has_text="tool call · write")).to_have_count(2, timeout=LIVE)
        await playwright_api.expect(later.locator("#transcript .turn.prompt")).to_have_count(2)
        await playwright_api.expect(later.locator("#transcript .turn.prompt").first).to_contain_text(
            "Write a summary to /home/user/s.txt"
        )
        await playwright_api.expect(again.filter(has_text="stop reason")).to_have_count(4)
        assert await again.all_inner_texts() == await turns.all_inner_texts()
        assert later_problems == []
        await later.close()
        # the file browser: /home/user, a directory, a file's text
        await page.locator('#vm-tabs [data-pane="files"]').click()
        await page.locator('#file-list tr[data-name="notes"] a').click()
        await page.locator('#file-list tr[data-name="todo.txt"] a').click()
        await playwright_api.expect(page.locator("#file-text")).to_have_text("buy milk\n")
        async with page.expect_download() as download:
            await page.locator("#file-download").click()
        assert (await download.value).suggested_filename == "todo.txt"
        # processes: one spawned by a client, killed from the page
        proc = await vm.spawn("sleep", ["300"])
        await page.locator('#vm-tabs [data-pane="processes"]').click()
        row = page.locator(f'#process-list tr[data-pid="{proc["pid"]}"]')
        await playwright_api.expect(row).to_contain_text("running", timeout=LIVE)
        page.once("dialog", lambda d: d.accept())
        await row.locator("button.kill").click()
        await playwright_api.expect(row).to_contain_text("exit", timeout=LIVE)
        await page.locator('#vm-tabs [data-pane="cron"]').click()
        await playwright_api.expect(page.locator("#cron-list")).to_contain_text("No cron jobs", timeout=LIVE)
        assert problems == []


async def test_a_held_tool_call_is_allowed_from_the_vm_page_and_the_history_survives_a_restart(
    tmp_path: Path, browser: Any
) -> None:
    from actorq.testing.fake_llm import FakeLLM, pi_agent_files
    from tests.apps.vm_app import registry as vm_registry
    from tests.conftest import LLM_PORT

    async with FakeLLM(port=LLM_PORT) as llm:
        async with vm_registry.test(storage=tmp_path / "data") as c:
            vm = c.permvm.get_or_create(["held"])
            for path, text in pi_agent_files(llm.url).items():
                await vm.write_file(f"/home/user/{path}", text)
            sid = (await vm.create_session("pi"))["session_id"]
            aid = await vm.resolve()
            sockets: list[Any] = []
            page, problems = await open_page(browser, f"{c.url}/ui/#/vm/{aid}", sockets)
            await playwright_api.expect(page.locator("#ws-status")).to_have_text("open", timeout=LIVE)
            # the VM's limits beside what it uses
            await playwright_api.expect(page.locator('#vm-usage [data-usage="memory"]')).to_contain_text(
                "/", timeout=LIVE
            )
            prompt = asyncio.create_task(vm.send_prompt(sid, "Write a summary to /home/user/held.txt: x"))
            held = page.locator("#permission-list tr[data-request]")
            await playwright_api.expect(held).to_have_count(1, timeout=30_000)
            await playwright_api.expect(held).to_contain_text("write")
            await playwright_api.expect(held).to_contain_text("/home/user/held.txt")
            assert not await vm.exists("/home/user/held.txt")
            await held.locator("button.allow").click()
            r = await asyncio.wait_for(prompt, 60)
            assert r["stop_reason"] == "stop" and await vm.exists("/home/user/held.txt")
            await playwright_api.expect(page.locator("#permissions")).to_be_hidden(timeout=LIVE)
            transcript = page.locator("#transcript .turn")
            allowed = transcript.filter(has_text="permission allowed · write")
            await playwright_api.expect(allowed).to_have_count(1)
            await playwright_api.expect(transcript.filter(has_text='"outcome"')).to_have_count(0)  # once
            # the connection drops and a prompt runs meanwhile: once the page is back, it has
            # caught up from the last event it handled, with nothing missing and nothing twice
            await sockets[-1].close(code=4000)
            await playwright_api.expect(page.locator("#ws-status")).not_to_have_text("open", timeout=LIVE)
            await vm.send_prompt(sid, "Say hello")  # typically over before the page retries (1 s)
            await playwright_api.expect(page.locator("#ws-status")).to_have_text("open", timeout=LIVE)
            await playwright_api.expect(transcript.filter(has_text="Say hello")).to_have_count(
                1, timeout=LIVE
            )
            await playwright_api.expect(transcript.filter(has_text="stop reason")).to_have_count(
                3, timeout=LIVE
            )
            assert len(sockets) == 2
            fresh, fresh_problems = await open_page(browser, f"{c.url}/ui/#/vm/{aid}")
            again = fresh.locator("#transcript .turn")
            await playwright_api.expect(again.filter(has_text="stop reason")).to_have_count(3, timeout=LIVE)
            live = await transcript.all_inner_texts()
            assert await again.all_inner_texts() == live
            assert fresh_problems == []
            await fresh.close()
            # a process's whole output, from the history's process output events
            proc = await vm.spawn("sh", ["-c", "for i in 1 2 3; do echo line $i; done"])
            await vm.wait_process(proc["pid"], timeout=20)
            await page.locator('#vm-tabs [data-pane="processes"]').click()
            row = page.locator(f'#process-list tr[data-pid="{proc["pid"]}"]')
            await row.locator("button.output").click()
            await playwright_api.expect(page.locator("#process-output-text")).to_have_text(
                "line 1\nline 2\nline 3\n", timeout=LIVE
            )
            assert problems == []
            await page.close()
        # the server restarted: the transcript comes back from the VM's event history
        async with vm_registry.test(storage=tmp_path / "data") as c:
            page, problems = await open_page(browser, f"{c.url}/ui/#/vm/{aid}")
            turns = page.locator("#transcript .turn")
            await playwright_api.expect(turns.filter(has_text="tool result · write")).to_have_count(
                1, timeout=30_000
            )
            prompts = page.locator("#transcript .turn.prompt")
            await playwright_api.expect(prompts).to_have_count(2)
            await playwright_api.expect(prompts.first).to_contain_text(
                "Write a summary to /home/user/held.txt: x"
            )
            assert await turns.all_inner_texts() == live
            assert problems == []
