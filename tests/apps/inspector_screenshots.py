"""The inspector screenshots of docs/inspector.md, made against real servers with some data.

    PYTHONPATH=src python -m tests.apps.inspector_screenshots docs/img

Needs /usr/bin/chromium and the pi agent (``actorq software install pi``) for the VM page.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

from playwright.async_api import Page, async_playwright

from tests.apps.inspector_app import POISON
from tests.apps.inspector_app import registry as app_registry

VIEWPORT = {"width": 1360, "height": 900}


async def shoot(page: Page, url: str, path: Path, wait: float, full: bool = False) -> None:
    await page.goto(url)
    await page.wait_for_timeout(int(wait * 1000))
    await page.screenshot(path=str(path), full_page=full)
    print("wrote", path)


async def actors_and_actor(page: Page, out: Path) -> None:
    async with app_registry.test() as c:
        for tenant in ("acme", "globex", "initech"):
            for box in ("inbox", "outbox"):
                await c.mailbox.get_or_create([tenant, box]).resolve()
        for name in ("ingest", "billing", "reports"):
            await c.worker.get_or_create([name]).resolve()
        w = c.worker.get_or_create(["ingest"])
        for i in range(12):
            await w.send("jobs", {"tag": f"batch-{i}", "n": i}, wait=True, timeout=10)
        POISON.add("corrupt-7")
        await w.send("jobs", {"tag": "corrupt-7", "n": 7}, wait=True, timeout=10)
        await w.action("add", 5)
        await shoot(page, f"{c.url}/ui/#/actors", out / "inspector-actors.png", 2.5)
        page.set_default_timeout(10_000)
        aid = await w.resolve()
        await page.goto(f"{c.url}/ui/#/actor/{aid}")
        await page.wait_for_timeout(1500)
        box = c.mailbox.get_or_create(["acme", "inbox"])
        for i in range(6):
            await box.send("letters", {"to": f"user{i}@acme.test", "text": f"hello #{i}"})
        for i in range(30):  # more jobs while the page records its charts: a backlog, then drained
            for j in range(6 if i < 12 else 0):
                await w.send("jobs", {"tag": f"late-{i}.{j}", "n": i, "pause": 0.15})
            if i % 5 == 0:
                await w.action("announce", f"step {i}")
            await page.wait_for_timeout(1000)
        await page.locator("#action-name").select_option("announce")
        await page.locator("#action-args").fill('["deploy finished"]')
        await page.locator("#action-submit").click()
        await page.wait_for_timeout(1500)
        await page.screenshot(path=str(out / "inspector-actor.png"), full_page=True)
        print("wrote", out / "inspector-actor.png")
        await page.goto(f"{c.url}/ui/#/cluster")
        for i in range(40):  # a varying load for the charts to show
            for j in range(1 + (i * 7) % 11):
                await box.send("anything", {"n": i, "j": j})
            for j in range((i * 5) % 7):
                await w.send("jobs", {"tag": f"c{i}.{j}", "n": j})
            if i % 3 == 0:
                await w.action("add", 1)
            await page.wait_for_timeout(700)
        await page.screenshot(path=str(out / "inspector-cluster.png"), full_page=True)
        print("wrote", out / "inspector-cluster.png")
        POISON.discard("corrupt-7")


async def vm_page(page: Page, out: Path) -> None:
    import tests.conftest  # noqa: F401  (sets ACTORQ_LLM_PORT before the VM app is imported)
    from actorq.testing.fake_llm import FakeLLM, pi_agent_files
    from tests.apps.vm_app import registry as vm_registry
    from tests.conftest import LLM_PORT

    with tempfile.TemporaryDirectory() as tmp:
        async with FakeLLM(port=LLM_PORT) as llm, vm_registry.test(storage=Path(tmp) / "data") as c:
            # a VM type whose policy holds writes: the page shows the held one with Allow / Deny
            vm = c.permvm.get_or_create(["reviewer"])
            for path, text in pi_agent_files(llm.url).items():
                await vm.write_file(f"/home/user/{path}", text)
            await vm.write_file("/home/user/src/app.py", "def add(a, b):\n    return a + b\n")
            session = await vm.create_session("pi")
            sid = session["session_id"]
            aid = await vm.resolve()
            await page.goto(f"{c.url}/ui/#/vm/{aid}")
            await page.wait_for_timeout(1500)
            await vm.exec("head -c 3000000 /dev/zero > /home/user/blob.bin")
            first = asyncio.create_task(
                vm.send_prompt(sid, "Write a summary to /home/user/review.txt: def add(a, b): return a + b")
            )
            while not await vm.list_permission_requests(sid):
                await asyncio.sleep(0.1)
            (held,) = await vm.list_permission_requests(sid)
            await vm.respond_permission(sid, held.request_id, "allow")
            await first
            second = asyncio.create_task(
                vm.send_prompt(sid, "Write the test plan to /home/user/plan.txt: add(2, 3) == 5")
            )
            while not await vm.list_permission_requests(sid):
                await asyncio.sleep(0.1)
            await page.wait_for_timeout(2500)
            await page.screenshot(path=str(out / "inspector-vm.png"), full_page=True)
            print("wrote", out / "inspector-vm.png")
            (held,) = await vm.list_permission_requests(sid)
            await vm.respond_permission(sid, held.request_id, "deny")
            await second


async def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path="/usr/bin/chromium")
        page = await browser.new_page(viewport=VIEWPORT)  # type: ignore[arg-type]
        await actors_and_actor(page, out)
        await vm_page(page, out)
        await browser.close()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/img")))
