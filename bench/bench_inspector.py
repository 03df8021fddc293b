"""The inspector with many actors: how long the actors list takes to show its first page, and a
key-prefix search to show its matches, in Debian's Chromium (Playwright), against a real server.

  python bench/bench_inspector.py            # 10,000 actors
  python bench/bench_inspector.py --quick    # 2,000 actors, fewer runs

The actors are written straight into a SQLite storage (``resolve_actor``, as the runtime does),
then a server starts on it; each figure is from the navigation (or the keystroke) to the rows
being on screen, so it includes the page's own requests (``GET /v1/actors``) and rendering, and,
for a search, the 250 ms the page waits for typing to pause.
Writes bench/results/inspector.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from actorq.storage import open_storage
from bench.apps import registry

CHROMIUM = "/usr/bin/chromium"
RESULTS = Path(__file__).resolve().parent / "results" / "inspector.json"
TENANTS = 100


async def fill(data: Path, n: int) -> float:
    st = open_storage(data)
    await st.open()
    started = time.perf_counter()
    try:
        now = time.time()
        for i in range(n):
            key = (f"tenant{i % TENANTS:03d}", f"box{i:05d}")
            await st.resolve_actor(
                "sink", key, create=True, must_create=False, new_id=uuid.uuid4().hex[:20], now=now
            )
    finally:
        await st.close()
    return time.perf_counter() - started


async def timed(page: Any, action: Any, want: int, prefix: str = "") -> float:
    """From ``action`` until the list shows ``want`` rows and says it matched ``prefix`` (checked
    at every animation frame, so the figure is not rounded up to a polling interval)."""
    said = f"{want} shown" + (f" matching “{prefix}”" if prefix else "")
    started = time.perf_counter()
    await action()
    await page.wait_for_function(
        """([said, want]) => {
            const s = document.querySelector("#actors-status");
            const rows = document.querySelectorAll("#actor-list tbody tr").length;
            return s && s.textContent === said && (want === 0 || rows === want);
        }""",
        arg=[said, want],
        polling="raf",
        timeout=60_000,
    )
    return time.perf_counter() - started


async def run(n: int, runs: int) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        filled = await fill(data, n)
        print(f"wrote {n} actors into SQLite in {filled:.1f} s")
        async with registry.test(storage=data) as c, async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM)
            page = await browser.new_page(viewport={"width": 1300, "height": 900})
            first, search, late, miss = [], [], [], []
            per_tenant = n // TENANTS
            last = f"tenant{(n - 1) % TENANTS:03d}/box{n - 1:05d}"
            box = page.locator("#key-search")
            for _ in range(runs):
                await page.goto("about:blank")
                first.append(await timed(page, lambda: page.goto(f"{c.url}/ui/#/actors?type=sink"), 50))
                # a prefix whose actors are spread over the whole table (every 100th actor)
                search.append(
                    await timed(page, lambda: box.fill("tenant042/"), min(50, per_tenant), "tenant042/")
                )
                # one actor, the last written: the scan reads every actor before it
                late.append(await timed(page, lambda: box.fill(last), 1, last))
                # nothing matches: the whole table is read
                miss.append(await timed(page, lambda: box.fill("nobody/"), 0, "nobody/"))
            await browser.close()

    def ms(xs: list[float]) -> float:
        return round(statistics.median(xs) * 1000, 1)

    return {
        "actors": n,
        "runs": runs,
        "first_page_ms": ms(first),
        "prefix_search_ms": ms(search),
        "search_one_at_the_end_ms": ms(late),
        "search_no_match_ms": ms(miss),
        "fill_s": round(filled, 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--actors", type=int, default=None)
    args = ap.parse_args()
    n = args.actors or (2_000 if args.quick else 10_000)
    result = asyncio.run(run(n, 2 if args.quick else 5))
    print(f"{'actors':>8} {'first page':>11} {'prefix':>8} {'last one':>9} {'no match':>9}  (ms, median)")
    print(
        f"{result['actors']:>8} {result['first_page_ms']:>11} {result['prefix_search_ms']:>8} "
        f"{result['search_one_at_the_end_ms']:>9} {result['search_no_match_ms']:>9}"
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print("wrote", RESULTS)


if __name__ == "__main__":
    main()
