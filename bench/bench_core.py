"""Core benchmarks (issue: durable actors on embedded SQLite), one server process, loopback HTTP.

  python bench/bench_core.py            # full run, prints a table, writes bench/results/core.json
  python bench/bench_core.py --quick    # small counts (used by the smoke test)
  python bench/bench_core.py --only rtt

Metrics: durable sends/s with 32 concurrent senders on one actor (one client process with 32
in flight, and 4 client processes x 8 so the client is not the bottleneck); completable round
trip p50/p99 (sequential send wait=True); WebSocket action round trip p50/p99; wake from sleep to
the first message (server-side: send commit -> handler); server RSS growth for N actors that
were created, each woken by one message, and are all asleep again.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import uvloop
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from actorq.client import create_client  # noqa: E402
from bench.report import write_results  # noqa: E402

console = Console()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Server:
    """``python -m actorq serve bench.apps:registry`` on a free port, on ``storage`` (a data
    directory or a ``postgresql://`` URL); ``wait_healthy()`` before use."""

    def __init__(self, storage: str | Path, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        full_env = {
            **os.environ,
            "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
            **(env or {}),
        }
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "actorq",
                "serve",
                "bench.apps:registry",
                "--port",
                str(self.port),
                "--storage",
                str(storage),
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=full_env,
        )

    def wait_healthy(self) -> Server:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/healthz", timeout=0.5).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError("server did not start")

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


# -- throughput ---------------------------------------------------------------------------------
async def _send_many(url: str, key: str, total: int, concurrency: int, coalesce: bool = True) -> float:
    async with create_client(url, coalesce=coalesce) as client:
        h = client.sink.get_or_create([key])
        await h.send("q", {"warm": True})
        left = total

        async def sender() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                await h.send("q", {"payload": "x" * 64})

        t0 = time.perf_counter()
        await asyncio.gather(*(sender() for _ in range(concurrency)))
        return time.perf_counter() - t0


def _proc_sender(url: str, key: str, total: int, concurrency: int, start: Any, out: Any) -> None:
    start.wait()
    out.put(run(_send_many(url, key, total, concurrency)))


def run(coro: Any) -> Any:
    """Client side on uvloop, as a throughput-minded client would run."""
    return uvloop.run(coro)


def throughput_one_process(url: str, total: int, coalesce: bool = True) -> dict[str, Any]:
    key = "one-proc" if coalesce else "one-proc-single"
    elapsed = run(_send_many(url, key, total, 32, coalesce))
    return {
        "sends_per_s": total / elapsed,
        "sends": total,
        "senders": 32,
        "client_processes": 1,
        "coalesce": coalesce,
    }


def drain(url: str, key: str) -> None:
    """Wait until the actor has worked through the backlog, so phases do not overlap."""

    async def pending() -> int:
        async with create_client(url) as client:
            return sum(q.pending + q.in_flight for q in await client.sink.get_or_create([key]).queues())

    deadline = time.monotonic() + 300
    while run(pending()) and time.monotonic() < deadline:
        time.sleep(0.2)


def throughput_multi_process(url: str, total: int, procs: int = 4) -> dict[str, float]:
    ctx = mp.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    per = total // procs
    workers = [
        ctx.Process(target=_proc_sender, args=(url, "multi-proc", per, 32 // procs, start, out))
        for _ in range(procs)
    ]
    for w in workers:
        w.start()
    time.sleep(1.5)  # let them import and connect
    t0 = time.perf_counter()
    start.set()
    for w in workers:
        w.join()
    wall = time.perf_counter() - t0
    durations = [out.get() for _ in workers]
    return {
        "sends_per_s": per * procs / max(durations),
        "sends": per * procs,
        "senders": 32,
        "client_processes": procs,
        "wall_s": wall,
    }


# -- latencies ----------------------------------------------------------------------------------
async def completable_rtt(url: str, n: int) -> dict[str, float]:
    async with create_client(url) as client:
        h = client.echo.get_or_create(["rtt"])
        for _ in range(50):
            await h.send("q", 1, wait=True, timeout=10)
        samples = []
        for i in range(n):
            t0 = time.perf_counter()
            r = await h.send("q", i, wait=True, timeout=10)
            samples.append((time.perf_counter() - t0) * 1000)
            assert r.status == "completed"
        return {"p50_ms": statistics.median(samples), "p99_ms": pct(samples, 99), "n": n}


async def ws_action_rtt(url: str, n: int) -> dict[str, float]:
    async with create_client(url) as client:
        conn = await client.echo.get_or_create(["ws"]).connect()
        try:
            for _ in range(100):
                await conn.ping(1)
            samples = []
            for i in range(n):
                t0 = time.perf_counter()
                assert await conn.ping(i) == i
                samples.append((time.perf_counter() - t0) * 1000)
        finally:
            await conn.close()
        return {"p50_ms": statistics.median(samples), "p99_ms": pct(samples, 99), "n": n}


async def wake_latency(url: str, n: int) -> dict[str, float]:
    async with create_client(url) as client, httpx.AsyncClient(base_url=url) as http:
        h = client.sleepy.get_or_create(["wake"])
        await h.send("q", 0, wait=True, timeout=10)
        lags, rtts = [], []
        for i in range(n):
            while (await http.get(f"/v1/actors/{h.actor_id}")).json()["awake"]:
                await asyncio.sleep(0.05)
            t0 = time.perf_counter()
            r = await h.send("q", i, wait=True, timeout=10)
            rtts.append((time.perf_counter() - t0) * 1000)
            lags.append(r.response["lag_ms"])
        return {
            "p50_ms": statistics.median(lags),
            "max_ms": max(lags),
            "rtt_p50_ms": statistics.median(rtts),
            "n": n,
        }


async def sleeping_actors(server: Server, n: int) -> dict[str, float]:
    async with create_client(server.url) as client, httpx.AsyncClient(base_url=server.url) as http:
        # warm up every code path once (one actor created, woken, asleep again) before the baseline
        await client.idle.get_or_create(["warm-up"]).send("q", 0)
        while (await http.get("/healthz")).json()["awake_actors"]:
            await asyncio.sleep(0.2)
        base = server.rss_mb()
        sem = asyncio.Semaphore(64)

        async def one(i: int) -> None:
            async with sem:
                await client.idle.get_or_create([f"a{i}"]).send("q", i)

        t0 = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        created_s = time.perf_counter() - t0
        peak = server.rss_mb()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if (await http.get("/healthz")).json()["awake_actors"] == 0:
                break
            await asyncio.sleep(0.5)
        await asyncio.sleep(1.0)
        asleep = server.rss_mb()
        awake = (await http.get("/healthz")).json()["awake_actors"]
    return {
        "actors": n,
        "rss_before_mb": base,
        "rss_peak_mb": peak,
        "rss_asleep_mb": asleep,
        "growth_mb": asleep - base,
        "still_awake": awake,
        "create_and_wake_per_s": n / created_s,
    }


# -- driver -------------------------------------------------------------------------------------
def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", choices=["sends", "rtt", "ws", "wake", "sleeping"])
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "core.json"))
    args = ap.parse_args()
    q = args.quick
    sizes = {
        "sends": 2_000 if q else 30_000,
        "rtt": 200 if q else 3_000,
        "ws": 300 if q else 5_000,
        "wake": 3 if q else 20,
        "sleeping": 2_000 if q else 100_000,
    }
    tmp = Path(tempfile.mkdtemp(prefix="actorq-bench-"))
    results: dict[str, Any] = {}
    try:
        server = Server(tmp / "data").wait_healthy()
        try:
            want = [args.only] if args.only else list(sizes)
            if "sleeping" in want:  # first: its baseline is the server before any other load
                results["sleeping_actors"] = run(sleeping_actors(server, sizes["sleeping"]))
            if "sends" in want:
                results["sends_one_client_process"] = throughput_one_process(server.url, sizes["sends"])
                drain(server.url, "one-proc")
                results["sends_one_request_per_send"] = throughput_one_process(
                    server.url, sizes["sends"], False
                )
                drain(server.url, "one-proc-single")
                results["sends_four_client_processes"] = throughput_multi_process(server.url, sizes["sends"])
                drain(server.url, "multi-proc")
            if "rtt" in want:
                results["completable_rtt"] = run(completable_rtt(server.url, sizes["rtt"]))
            if "ws" in want:
                results["ws_action_rtt"] = run(ws_action_rtt(server.url, sizes["ws"]))
            if "wake" in want:
                results["wake_from_sleep"] = run(wake_latency(server.url, sizes["wake"]))
        finally:
            server.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    table = Table(
        "metric", "measured", "goal", "ok", title="actorq core benchmarks" + (" (quick)" if q else "")
    )
    rows = []
    if "sends_one_client_process" in results:
        for name, label in (
            ("sends_one_client_process", "1 client process"),
            ("sends_four_client_processes", "4 client processes"),
            ("sends_one_request_per_send", "1 process, coalescing off"),
        ):
            v = results[name]["sends_per_s"]
            rows.append((f"durable sends/s, 32 senders ({label})", f"{v:,.0f}", ">= 5,000", v >= 5000))
    if "completable_rtt" in results:
        r = results["completable_rtt"]
        rows.append(("completable round trip p50", f"{r['p50_ms']:.2f} ms", "<= 2 ms", r["p50_ms"] <= 2))
        rows.append(("completable round trip p99", f"{r['p99_ms']:.2f} ms", "<= 10 ms", r["p99_ms"] <= 10))
    if "ws_action_rtt" in results:
        r = results["ws_action_rtt"]
        rows.append(("WebSocket action round trip p50", f"{r['p50_ms']:.3f} ms", "<= 1 ms", r["p50_ms"] <= 1))
        rows.append(("WebSocket action round trip p99", f"{r['p99_ms']:.3f} ms", "-", True))
    if "wake_from_sleep" in results:
        r = results["wake_from_sleep"]
        rows.append(
            ("wake from sleep to first message p50", f"{r['p50_ms']:.2f} ms", "<= 5 ms", r["p50_ms"] <= 5)
        )
        rows.append(("wake from sleep, worst", f"{r['max_ms']:.2f} ms", "-", True))
    if "sleeping_actors" in results:
        r = results["sleeping_actors"]
        rows.append(
            (
                f"RSS growth, {r['actors']:,} sleeping actors",
                f"{r['growth_mb']:.1f} MB",
                "<= 50 MB",
                r["growth_mb"] <= 50 and r["still_awake"] == 0,
            )
        )
    for name, value, goal, ok in rows:
        table.add_row(name, value, goal, "[green]yes[/]" if ok else "[red]no[/]")
    console.print(table)
    write_results(args.out, results, quick=q)
    console.print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
