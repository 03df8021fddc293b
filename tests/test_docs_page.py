"""The interactive API page at ``/docs``: served from files in the package (no CDN: it works
offline), open without the token (it holds nothing about the server), and the Host check still
applies. A real browser (chromium through Playwright) renders every operation of ``/openapi.json``,
with no request leaving the server."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from actorq.client import AsyncClient
from actorq.server.docs import FILES
from actorq.server.openapi import openapi_document
from tests.apps.api_app import registry

TOKEN = "docs-token-7c2a"
CDN = re.compile(r"unpkg\.com|jsdelivr|cdnjs|googleapis|gstatic|bootstrapcdn|cloudflare|petstore", re.I)
URL = re.compile(rb"https?://")
SCREENSHOT = Path(__file__).parent.parent / "docs" / "img" / "api-docs.png"


@pytest.fixture
async def client() -> AsyncIterator[AsyncClient]:
    async with registry.test(token=TOKEN) as c:
        yield c


async def test_the_page_and_its_files_are_served_without_token_and_name_no_outside_url(
    client: AsyncClient,
) -> None:
    async with httpx.AsyncClient(base_url=client.url) as http:
        page = await http.get("/docs")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "default-src 'none'" in page.headers["content-security-policy"]
        assert not URL.search(page.content), "the page itself names no URL outside this server"
        sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert sources and all(s.startswith("/docs/static/") for s in sources), sources
        for name, (_path, media) in FILES.items():
            r = await http.get(f"/docs/static/{name}")
            assert r.status_code == 200 and r.headers["content-type"].startswith(media), name
            assert not CDN.search(r.text), (name, CDN.search(r.text))
            if name.startswith("docs."):  # ours: no URL at all
                assert not URL.search(r.content), name
        for src in sources:
            assert (await http.get(src)).status_code == 200, src
        script = (await http.get("/docs/static/docs.js")).text
        assert '"/openapi.json"' in script and "validatorUrl: null" in script

        # the document itself still needs the token; the page asks for it
        assert (await http.get("/openapi.json")).status_code == 401
        ok = await http.get("/openapi.json", headers={"Authorization": f"Bearer {TOKEN}"})
        assert ok.status_code == 200

        missing = await http.get("/docs/static/app.py")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
        for sneaky in ("/docs/static/..%2Fdocs.py", "/docs/static/swagger-ui%2FNOTICE", "/docs/static/"):
            assert (await http.get(sneaky)).status_code == 404, sneaky
        rebound = await http.get("/docs", headers={"Host": "evil.example"})
        assert rebound.status_code == 403 and rebound.json()["error"]["code"] == "forbidden"
        rebound = await http.get("/docs/static/docs.js", headers={"Host": "evil.example"})
        assert rebound.status_code == 403


def test_the_vendored_files_ship_in_the_package() -> None:
    """hatch builds the wheel from the package directory: every file /docs serves lives in it."""
    package = Path(__file__).parent.parent / "src" / "actorq"
    for path, _media in FILES.values():
        assert path.is_file() and package in path.parents, path
    readme = (package / "server" / "static" / "swagger-ui" / "README.md").read_text()
    assert "swagger-ui-dist" in readme and "5.35.0" in readme


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


async def test_a_browser_renders_every_operation_offline(client: AsyncClient, tmp_path: Path) -> None:
    playwright_api = pytest.importorskip("playwright.async_api")
    assert CHROMIUM, "chromium is needed (make setup installs it with apt)"
    doc = openapi_document(registry)
    summaries = [op["summary"] for item in doc["paths"].values() for op in item.values()]
    outside: list[str] = []
    async with playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 1600})

            def only_this_server_or(base: str) -> Callable[[Any], Awaitable[None]]:
                async def route_it(route: Any) -> None:
                    if route.request.url.startswith(base):
                        await route.continue_()
                    else:
                        outside.append(route.request.url)
                        await route.abort()

                return route_it

            await page.route("**/*", only_this_server_or(client.url))
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.goto(f"{client.url}/docs")
            # a token is configured: the page asks for it before it can read the document
            await page.wait_for_selector("#actorq-token input[name=token]", state="visible")
            await page.fill("#actorq-token input[name=token]", "wrong")
            await page.click("#actorq-token button")
            await page.wait_for_selector("text=That token was refused.")
            await page.fill("#actorq-token input[name=token]", TOKEN)
            await page.click("#actorq-token button")
            await page.wait_for_selector(".opblock", timeout=20_000)
            rendered = await page.locator(".opblock").count()
            assert rendered == len(summaries), (rendered, len(summaries))
            text = await page.inner_text("#swagger-ui")
            for summary in ("Send a message (optionally wait for its completion)", "Call an action"):
                assert summary in text
            assert "Schemas" in text  # the components: queue bodies, action arguments and results
            await page.locator(".opblock").nth(0).scroll_into_view_if_needed()
            # docs/img/api-docs.png is refreshed on request only, so a test run leaves the tree as it was
            shot = SCREENSHOT if os.environ.get("ACTORQ_UPDATE_SCREENSHOTS") else tmp_path / "api-docs.png"
            await page.screenshot(path=str(shot), full_page=False)
            assert shot.stat().st_size > 10_000  # something was drawn
            assert not errors, errors

            # a server without a token: the page renders at once, no form
            async with registry.test() as open_client:
                other = await browser.new_page()
                await other.route("**/*", only_this_server_or(open_client.url))
                other.on("pageerror", lambda exc: errors.append(str(exc)))
                await other.goto(f"{open_client.url}/docs")
                await other.wait_for_selector(".opblock", timeout=20_000)
                assert await other.locator(".opblock").count() == len(summaries)
                assert not await other.locator("#actorq-token").is_visible()
            assert not errors, errors
        finally:
            await browser.close()
    assert not outside, f"the page reached outside the server: {outside}"
