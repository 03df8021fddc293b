"""Scale-out benchmarks: three server nodes sharing one PostgreSQL database, against
one SQLite node, in the same run, on the same machine.

  python bench/bench_cluster.py            # full run, prints a table, writes bench/results/cluster.json
  python bench/bench_cluster.py --quick    # small counts

Metrics: durable sends/s with 32 senders (4 client processes x 8) spread over 100 actors —
on 3 PostgreSQL nodes with each actor's sends going to any node (round robin: 2 of 3 land on a
node that does not own the actor, which stores them and NOTIFYs the owner), on 3 nodes with
clients sending to the owner, and on one SQLite node; the ratio cluster / SQLite; the same with
``--many`` (256) senders, where 32 closed-loop senders leave a 2-core machine latency-bound rather
than busy; and takeover time: ``kill -9`` of the node owning an actor, then a ``wait=True`` send
through a survivor, timed from the kill to its completion (default lease TTL, 10 s).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import shutil
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import uvloop
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from actorq.client import create_client  # noqa: E402
from bench.bench_core import Server  # noqa: E402
from bench.report import write_results  # noqa: E402

console = Console()
PG_DSN = os.environ.get("ACTORQ_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")
ACTORS = 100
SENDERS = 32
PROCS = 4


def start_nodes(storage: str, n: int, env: dict[str, str] | None = None) -> list[Server]:
    nodes = [Server(storage, env) for _ in range(n)]  # started together, then waited for
    return [node.wait_healthy() for node in nodes]


# -- throughput ---------------------------------------------------------------------------------
async def _send_many(urls: list[str], proc_no: int, total: int, concurrency: int, affine: bool) -> float:
    clients = [create_client(u) for u in urls]
    try:
        # actor i is reached through node i % n (affine: its owner, which woke it first), or
        # through every node in turn (round robin, as behind a load balancer)
        handles = [[c.sink.get_or_create([f"a{i}"]) for c in clients] for i in range(ACTORS)]
        await asyncio.gather(*(handles[i][i % len(urls)].send("q", {"warm": True}) for i in range(ACTORS)))
        if not affine:
            await asyncio.gather(*(h.send("q", {"warm": True}) for row in handles for h in row))
        left = total
        n = 0

        async def sender() -> None:
            nonlocal left, n
            while left > 0:
                left -= 1
                n += 1
                actor = (n * 7 + proc_no * 13) % ACTORS
                node = actor % len(urls) if affine else n % len(urls)
                await handles[actor][node].send("q", {"payload": "x" * 64})

        t0 = time.perf_counter()
        await asyncio.gather(*(sender() for _ in range(concurrency)))
        return time.perf_counter() - t0
    finally:
        for c in clients:
            await c.close()


def _proc_sender(
    urls: list[str], proc_no: int, total: int, conc: int, affine: bool, start: Any, out: Any
) -> None:
    start.wait()
    out.put(uvloop.run(_send_many(urls, proc_no, total, conc, affine)))


def throughput(
    urls: list[str], total: int, affine: bool = True, senders: int = SENDERS, procs: int = PROCS
) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    per = total // procs
    workers = [
        ctx.Process(target=_proc_sender, args=(urls, p, per, senders // procs, affine, start, out))
        for p in range(procs)
    ]
    for w in workers:
        w.start()
    time.sleep(1.5)  # let them import
    start.set()
    durations = [out.get() for _ in workers]
    for w in workers:
        w.join()
    return {
        "sends_per_s": per * procs / max(durations),
        "sends": per * procs,
        "senders": senders,
        "actors": ACTORS,
        "client_processes": procs,
        "nodes": len(urls),
        "routing": "owner" if affine else "round robin",
    }


def drain(url: str) -> None:
    async def pending() -> int:
        async with create_client(url) as client:
            total = 0
            for i in range(ACTORS):
                total += sum(
                    q.pending + q.in_flight for q in await client.sink.get_or_create([f"a{i}"]).queues()
                )
            return total

    deadline = time.monotonic() + 300
    while uvloop.run(pending()) and time.monotonic() < deadline:
        time.sleep(0.5)


# -- takeover -----------------------------------------------------------------------------------
async def takeover(nodes: list[Server]) -> dict[str, float]:
    async with create_client(nodes[0].url) as client:
        h = client.echo.get_or_create(["takeover"])
        assert (await h.send("q", 0, wait=True, timeout=10)).status == "completed"
        owner_pid = await h.where()
    owner = next(n for n in nodes if n.proc.pid == owner_pid)
    survivor = next(n for n in nodes if n is not owner)
    owner.proc.send_signal(signal.SIGKILL)
    t0 = time.perf_counter()
    owner.proc.wait()
    async with create_client(survivor.url) as client:
        r = await client.echo.get_or_create(["takeover"]).send("q", 1, wait=True, timeout=60)
        elapsed = time.perf_counter() - t0
        new_pid = await client.echo.get_or_create(["takeover"]).where()
    assert r.status == "completed" and new_pid != owner_pid
    return {"seconds": elapsed, "lease_ttl_s": float(os.environ.get("ACTORQ_LEASE_TTL") or 10.0)}


async def _drop_schema(schema: str) -> None:
    conn = await asyncpg.connect(PG_DSN)
    try:
        await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    finally:
        await conn.close()


# -- driver -------------------------------------------------------------------------------------
def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-takeover", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "cluster.json"))
    ap.add_argument("--total", type=int, help="sends per throughput phase (default 40,000; 4,000 quick)")
    ap.add_argument("--many", type=int, default=256, help="senders in the saturation phases")
    args = ap.parse_args()
    total = args.total or (4_000 if args.quick else 40_000)
    many = args.many
    results: dict[str, Any] = {}
    tmp = Path(tempfile.mkdtemp(prefix="actorq-bench-"))
    schema = "bench_" + uuid.uuid4().hex[:10]
    try:
        sqlite = start_nodes(str(tmp / "data"), 1)
        try:
            results["sqlite_one_node"] = throughput([sqlite[0].url], total)
            drain(sqlite[0].url)
            results["sqlite_one_node_many"] = throughput([sqlite[0].url], total, senders=many)
            drain(sqlite[0].url)
        finally:
            sqlite[0].stop()
        nodes = start_nodes(PG_DSN, 3, {"ACTORQ_PG_SCHEMA": schema})
        try:
            urls = [n.url for n in nodes]
            results["postgres_three_nodes_owner"] = throughput(urls, total, affine=True)
            drain(urls[0])
            results["postgres_three_nodes_any"] = throughput(urls, total, affine=False)
            drain(urls[0])
            results["postgres_three_nodes_any_many"] = throughput(urls, total, affine=False, senders=many)
            drain(urls[0])
            if not args.no_takeover:
                results["takeover_after_kill9"] = uvloop.run(takeover(nodes))
        finally:
            for n in nodes:
                n.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        asyncio.run(_drop_schema(schema))

    table = Table(
        "metric", "measured", "goal", title="actorq scale-out benchmarks" + (" (quick)" if args.quick else "")
    )
    for key, label, base_key in (
        ("postgres_three_nodes_any", "3 PostgreSQL nodes, sends to any node", "sqlite_one_node"),
        ("postgres_three_nodes_owner", "3 PostgreSQL nodes, sends to the owner", "sqlite_one_node"),
        ("sqlite_one_node", "1 SQLite node", "sqlite_one_node"),
        ("postgres_three_nodes_any_many", "3 PostgreSQL nodes, any node", "sqlite_one_node_many"),
        ("sqlite_one_node_many", "1 SQLite node", "sqlite_one_node_many"),
    ):
        r = results[key]
        v = r["sends_per_s"]
        base = results[base_key]["sends_per_s"]
        r["ratio_to_sqlite"] = v / base
        goal = ">= 10,000" if key.startswith("postgres") and r["senders"] == SENDERS else "-"
        table.add_row(
            f"durable sends/s, {r['senders']} senders, {ACTORS} actors ({label})",
            f"{v:,.0f} ({v / base:.2f}x)",
            goal,
        )
    if "takeover_after_kill9" in results:
        t = results["takeover_after_kill9"]
        table.add_row(
            f"takeover after kill -9 (lease TTL {t['lease_ttl_s']:.0f} s)",
            f"{t['seconds']:.2f} s",
            "<= TTL + 1 s",
        )
    console.print(table)
    write_results(args.out, results, quick=args.quick)
    console.print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
