"""Side by side, in one run on one machine: actorq now, actorq at a baseline revision, RivetKit and a
bare HTTP echo, each doing the same four workloads; one table, and bench/results/compare.json.

  python bench/compare.py                      # 3 rounds, full counts (make compare)
  python bench/compare.py --quick              # small counts, 1 round (a smoke run)
  python bench/compare.py --baseline REV       # the "before" column from REV (default below)
  python bench/compare.py --no-baseline --no-rivetkit

The workloads are those of RivetKit's peer benchmark (``bench.mjs``), with its counts, concurrency
and message bodies: (a) 500 sequential sends of ``{"i": i}``, each awaited; (b) 2,000 sends with 32
in flight, 32 handles, then ``count`` polled until the actor has processed them all; (c) 300
sequential completable round trips (``send("echo", {"n": n}, wait=True)``); (d) 300 sequential
``count()`` action calls over HTTP. actorq also runs (b) with one HTTP request per send (its client
otherwise coalesces concurrent sends) and (d) over its WebSocket, as ``bench_core.py`` does.

Each side is a fresh process with a fresh server: actorq (``bench_core.Server``: ``actorq serve``
on a temporary SQLite directory, ``bench.apps``' ``bench`` actor) driven by actorq's async client on
uvloop; the baseline the same, with the baseline's ``src`` first on ``PYTHONPATH`` for both server
and client (from a temporary ``git worktree``; the workload code and ``bench.apps`` are this
tree's); RivetKit by its own ``run.sh`` (its engine on 127.0.0.1:6420, its client in Node); the
floor by ``bench/echo_server.py`` (Starlette on uvicorn) driven by an aiohttp session like actorq's
client's. Sides run interleaved, one after another, round after round (now, baseline, RivetKit, echo,
now, ...), so slow drift in the machine's load lands on every side; the table shows each figure's
median over the rounds and its min-max.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import IO, Any

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.report import write_results  # noqa: E402
from bench.worktree import dirty, git_worktree, short_commit  # noqa: E402

BASELINE = "c370ef1"  # the last revision before the layers were split
RIVETKIT_PORTS = (6420, 6421, 6430)  # its engine's gateway, API peer and metrics
RIVETKIT_FILES = ("package.json", "package-lock.json", "server.mjs", "bench.mjs", "run.sh")
SIDES = ("now", "baseline", "rivetkit", "echo")

# bench.mjs's counts; quick ones for a smoke run (RivetKit's phases are capped by time instead)
FULL = {"seq": 500, "conc": 2000, "concurrency": 32, "echo": 300, "action": 300}
QUICK = {"seq": 100, "conc": 400, "concurrency": 32, "echo": 60, "action": 60}
WARMUP = 10  # of each operation, before any phase (bench.mjs does one; Python's first calls cost more)

err = Console(stderr=True)


class SideFailed(Exception):
    """One side of one round did not produce figures (the others still run)."""


# -- figures ------------------------------------------------------------------------------------
def rank(sorted_xs: list[float], p: float) -> float:
    """Nearest-rank percentile, as bench.mjs computes it, so both sides' p50/p99 mean the same."""
    i = min(len(sorted_xs) - 1, max(0, math.ceil(p / 100 * len(sorted_xs)) - 1))
    return sorted_xs[i]


def stats(samples_ms: list[float], elapsed_s: float) -> dict[str, float]:
    xs = sorted(samples_ms)
    return {
        "n": len(xs),
        "ops_per_s": len(xs) / elapsed_s,
        "p50_ms": rank(xs, 50),
        "p99_ms": rank(xs, 99),
        "mean_ms": statistics.fmean(xs),
    }


async def sequential(n: int, op: Callable[[int], Awaitable[None]]) -> dict[str, float]:
    samples = []
    t0 = time.perf_counter()
    for i in range(n):
        t = time.perf_counter()
        await op(i)
        samples.append((time.perf_counter() - t) * 1000)
    return stats(samples, time.perf_counter() - t0)


async def concurrent(n: int, workers: Sequence[Callable[[int], Awaitable[None]]]) -> dict[str, float]:
    """``n`` operations, one in flight per worker (bench.mjs's phase b)."""
    samples: list[float] = []
    issued = 0

    async def worker(op: Callable[[int], Awaitable[None]]) -> None:
        nonlocal issued
        while issued < n:
            i = issued
            issued += 1
            t = time.perf_counter()
            await op(i)
            samples.append((time.perf_counter() - t) * 1000)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(op) for op in workers))
    return stats(samples, time.perf_counter() - t0)


# -- actorq (now or baseline: whichever actorq is first on PYTHONPATH) -------------------------
async def actorq_workloads(url: str, counts: dict[str, int]) -> dict[str, Any]:
    from actorq.client import create_client

    async with create_client(url) as client, create_client(url, coalesce=False) as single:
        actor_id = await client.bench.get_or_create(["compare"]).resolve()
        h = client.bench.get_for_id(actor_id)
        sent = 0

        async def send(handle: Any, i: int) -> None:
            await handle.send("tasks", {"i": i})

        async def echo(i: int) -> None:
            r = await h.send("echo", {"n": i}, wait=True, timeout=10)
            if r.status != "completed" or r.response != {"n": i}:
                raise SideFailed(f"echo {i} answered {r!r}")

        async def count(i: int) -> None:
            await h.count()

        async def drained(t0: float) -> float:
            """Seconds from ``t0`` until the actor has processed every task sent."""
            deadline = time.monotonic() + 120
            while await h.count() < sent:
                if time.monotonic() > deadline:
                    raise SideFailed(f"the actor did not process {sent} tasks within 120 s")
                await asyncio.sleep(0.005)
            return time.perf_counter() - t0

        for i in range(WARMUP):
            await count(i)
            await send(h, -1)
            await echo(-1)
        sent += WARMUP
        out: dict[str, Any] = {}
        out["seq_send"] = await sequential(counts["seq"], lambda i: send(h, i))
        sent += counts["seq"]
        await drained(time.perf_counter())
        for name, c in (("conc_send", client), ("conc_send_single", single)):
            handles = [c.bench.get_for_id(actor_id) for _ in range(counts["concurrency"])]
            t0 = time.perf_counter()
            r = await concurrent(counts["conc"], [functools.partial(send, hh) for hh in handles])
            sent += counts["conc"]
            e2e = counts["conc"] / await drained(t0)
            out[name] = {**r, "concurrency": counts["concurrency"], "e2e_per_s": e2e}
        out["completable_rtt"] = await sequential(counts["echo"], echo)
        out["action_rtt"] = await sequential(counts["action"], count)
        conn = await h.connect()
        try:
            for i in range(WARMUP):
                await conn.ping(i)

            async def ping(i: int) -> None:
                if await conn.ping(i) != i:
                    raise SideFailed("ping answered wrong")

            out["ws_action_rtt"] = await sequential(counts["action"], ping)
        finally:
            await conn.close()
        return out


def actorq_side(counts: dict[str, int], src: Path) -> dict[str, Any]:
    import actorq
    from bench.bench_core import Server, run

    where = Path(actorq.__file__).resolve()
    if not where.is_relative_to(src.resolve()):
        raise SideFailed(f"actorq came from {where}, not from {src}")
    tmp = Path(tempfile.mkdtemp(prefix="actorq-compare-"))
    try:
        server = Server(tmp / "data").wait_healthy()
        try:
            figures = run(actorq_workloads(server.url, counts))
        finally:
            server.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"figures": figures, "actorq": str(where)}


# -- the floor: bare Starlette echo ------------------------------------------------------------
async def echo_workloads(url: str, counts: dict[str, int]) -> dict[str, Any]:
    import aiohttp

    async with aiohttp.ClientSession(
        headers={"Content-Type": "application/json"},
        connector=aiohttp.TCPConnector(limit=256, ttl_dns_cache=300),
    ) as session:

        async def post(body: dict[str, Any]) -> None:
            async with session.post(url + "/echo", data=json.dumps(body).encode()) as resp:
                if resp.status != 200 or json.loads(await resp.read()) != body:
                    raise SideFailed(f"echo answered {resp.status}")

        for i in range(WARMUP):
            await post({"i": i})
        workers = [lambda i: post({"i": i})] * counts["concurrency"]
        return {
            "seq_send": await sequential(counts["seq"], lambda i: post({"i": i})),
            "conc_send": {
                **await concurrent(counts["conc"], workers),
                "concurrency": counts["concurrency"],
            },
            "completable_rtt": await sequential(counts["echo"], lambda i: post({"n": i})),
            "action_rtt": await sequential(counts["action"], lambda i: post({"args": []})),
        }


def echo_side(counts: dict[str, int]) -> dict[str, Any]:
    import httpx

    from bench.bench_core import free_port, run

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, str(ROOT / "bench" / "echo_server.py"), "--port", str(port)])
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url + "/healthz", timeout=0.5).status_code == 200:
                    break
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SideFailed("the echo server did not start") from None
                time.sleep(0.05)
        return {"figures": run(echo_workloads(url, counts))}
    finally:
        proc.terminate()
        proc.wait(10)


# -- RivetKit -----------------------------------------------------------------------------------
def listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def rivetkit_side(peer: Path, work: Path, scale: int, log: Path) -> dict[str, Any]:
    """One run of the peer's ``run.sh`` from ``work`` (a writable copy: the peer's folder is
    read-only, and root passes run.sh's own writability test); its figures in our shape."""
    busy = [p for p in RIVETKIT_PORTS if listening(p)]
    if busy:
        raise SideFailed(f"127.0.0.1:{busy} already in use; RivetKit's engine needs it (stop that first)")
    work.mkdir(parents=True, exist_ok=True)
    for name in RIVETKIT_FILES:
        dst = work / name
        dst.unlink(missing_ok=True)
        shutil.copyfile(peer / name, dst)
    env = {**os.environ, "RIVETKIT_PEER_COPIED": "1", "BENCH_TIME_SCALE": str(scale)}
    with log.open("a") as stderr:
        # the first run also npm-installs (~340 MB, a native build or two)
        rc, stdout = run_group(["bash", str(work / "run.sh")], 1200 + 240 * scale, stderr, cwd=work, env=env)
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    if rc != 0 or not lines:
        tail = log.read_text().splitlines()[-15:]
        raise SideFailed(f"run.sh exited {rc}; its log {log} ends:\n" + "\n".join(tail))
    doc: dict[str, Any] = json.loads(lines[-1])
    a, b, c, d = doc["a_seq_send"], doc["b_conc_send"], doc["c_echo_rtt"], doc["d_action_count"]

    def fig(x: dict[str, Any], rate: str) -> dict[str, Any]:
        return {
            "n": x["done"],
            "target": x["target"],
            "ops_per_s": x[rate],
            "p50_ms": x["p50_ms"],
            "p99_ms": x["p99_ms"],
            "mean_ms": x["mean_ms"],
        }

    figures = {
        "seq_send": fig(a, "sends_per_s"),
        "conc_send": {
            **fig(b, "sends_per_s"),
            "concurrency": b["concurrency"],
            "e2e_per_s": b["e2e_processed_per_s"],
        },
        "completable_rtt": fig(c, "calls_per_s"),
        "action_rtt": fig(d, "calls_per_s"),
    }
    return {"figures": figures, "raw": doc}


# -- one side as a process of its own -----------------------------------------------------------
def run_group(argv: list[str], timeout: float, stderr: IO[str], **kw: Any) -> tuple[int, str]:
    """Run ``argv`` in a session of its own; its exit code and stdout. On a timeout or ^C its
    whole process group gets SIGTERM (so run.sh's trap stops RivetKit's server and engine, and a
    side's server is not left behind), then SIGKILL 30 s later."""
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=stderr, text=True, start_new_session=True, **kw
    )
    try:
        stdout, _ = proc.communicate(timeout=timeout)
        return proc.returncode, stdout
    except (subprocess.TimeoutExpired, KeyboardInterrupt) as exc:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise SideFailed(f"{argv[-1]} did not finish within {timeout:.0f} s") from None


def run_side(kind: str, out: Path, quick: bool, src: Path | None = None) -> dict[str, Any]:
    """``kind`` ("actorq" or "echo") in a fresh interpreter; actorq from ``src``."""
    env = dict(os.environ)
    argv = [sys.executable, str(Path(__file__).resolve()), "--side", kind, "--out", str(out)]
    if src is not None:
        env["PYTHONPATH"] = f"{src}{os.pathsep}{ROOT}"
        argv += ["--src", str(src)]
    with tempfile.TemporaryFile("w+") as stderr:
        rc, _ = run_group([*argv, *(["--quick"] if quick else [])], 1800, stderr, env=env)
        stderr.seek(0)
        if rc != 0:
            raise SideFailed(f"{kind} side exited {rc}:\n{stderr.read()[-2000:]}")
    doc: dict[str, Any] = json.loads(out.read_text())
    return doc


# -- the table ----------------------------------------------------------------------------------
# (label, workload, field, the workload RivetKit and the echo are compared with)
ROWS: list[tuple[str, str, str, str]] = [
    ("(a) sequential sends/s", "seq_send", "ops_per_s", "seq_send"),
    ("(a) sequential send p50 ms", "seq_send", "p50_ms", "seq_send"),
    ("(a) sequential send p99 ms", "seq_send", "p99_ms", "seq_send"),
    ("(b) 32 concurrent sends/s", "conc_send", "ops_per_s", "conc_send"),
    ("(b) 32 concurrent send p50 ms", "conc_send", "p50_ms", "conc_send"),
    ("(b) 32 concurrent send p99 ms", "conc_send", "p99_ms", "conc_send"),
    ("(b) processed/s, first send to drained", "conc_send", "e2e_per_s", "conc_send"),
    ("(b') 32 concurrent, 1 request/send: sends/s", "conc_send_single", "ops_per_s", "conc_send"),
    ("(b') 1 request/send p50 ms", "conc_send_single", "p50_ms", "conc_send"),
    ("(b') 1 request/send p99 ms", "conc_send_single", "p99_ms", "conc_send"),
    ("(b') processed/s, first send to drained", "conc_send_single", "e2e_per_s", "conc_send"),
    ("(c) completable round trip p50 ms", "completable_rtt", "p50_ms", "completable_rtt"),
    ("(c) completable round trip p99 ms", "completable_rtt", "p99_ms", "completable_rtt"),
    ("(c) completable round trips/s", "completable_rtt", "ops_per_s", "completable_rtt"),
    ("(d) action round trip (HTTP) p50 ms", "action_rtt", "p50_ms", "action_rtt"),
    ("(d) action round trip (HTTP) p99 ms", "action_rtt", "p99_ms", "action_rtt"),
    ("(d') action round trip (WebSocket) p50 ms", "ws_action_rtt", "p50_ms", "ws_action_rtt"),
    ("(d') action round trip (WebSocket) p99 ms", "ws_action_rtt", "p99_ms", "ws_action_rtt"),
]
NOTES = [
    "Figures: median over the rounds, (min-max) across rounds when there are several: that spread "
    "is the run-to-run noise. Ratios are actorq now / the other side, of the medians: above 1 is "
    "better for /s rows, below 1 is better for ms rows.",
    "Workloads follow RivetKit's bench.mjs: its counts, 32 in flight on 32 handles, bodies {i} and {n}, "
    "nearest-rank percentiles. actorq's own bench_core.py uses larger counts, a 64-byte body and one "
    "handle; here actorq is aligned to the peer.",
    "(b) is actorq's default client, which coalesces concurrent sends into batch requests; (b') is "
    "coalesce=False, one HTTP request per send as RivetKit and the echo make; both are compared with "
    "the others' (b).",
    "(d) is an HTTP action call as RivetKit's count(); (d') is actorq's WebSocket action, bench_core's "
    "figure (no peer figure).",
    "Bare echo: POST of the same body answered with it; it stores nothing, so its (a)-(d) are the "
    "cost of one loopback HTTP round trip from this client (its (c) and (d) are sequential POSTs).",
]


def summarize(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for side in SIDES:
        per: dict[str, dict[str, list[float]]] = {}
        for r in rounds:
            for wl, figs in r.get(side, {}).get("figures", {}).items():
                for k, v in figs.items():
                    if isinstance(v, int | float):
                        per.setdefault(wl, {}).setdefault(k, []).append(float(v))
        if per:
            out[side] = {
                wl: {
                    k: {"median": statistics.median(vs), "min": min(vs), "max": max(vs), "rounds": len(vs)}
                    for k, vs in fs.items()
                }
                for wl, fs in per.items()
            }
    return out


def ratios(summary: dict[str, Any]) -> dict[str, dict[str, float]]:
    now = summary.get("now", {})
    out: dict[str, dict[str, float]] = {}
    for other in ("baseline", "rivetkit", "echo"):
        them = summary.get(other, {})
        for _, wl, field, peer_wl in ROWS:
            theirs_wl = wl if other == "baseline" else peer_wl
            a = now.get(wl, {}).get(field)
            b = them.get(theirs_wl, {}).get(field)
            if a and b and b["median"]:
                out.setdefault(f"now/{other}", {})[f"{wl}.{field}"] = a["median"] / b["median"]
    return out


def noise_note(summary: dict[str, Any], load: dict[str, Any]) -> str:
    """How far apart the rounds were: per side, the median over the table's figures of
    (max - min) / median."""
    parts = []
    for side in SIDES:
        spreads = [
            (x["max"] - x["min"]) / x["median"]
            for _, wl, field, peer_wl in ROWS
            if (x := summary.get(side, {}).get(wl if side in ("now", "baseline") else peer_wl, {}).get(field))
            and x["rounds"] > 1
            and x["median"]
        ]
        if spreads:
            parts.append(f"{side} {statistics.median(spreads):.0%}")
    start, end = (", ".join(f"{v:.1f}" for v in load[k]) for k in ("start", "end"))
    spread = "; ".join(parts) if parts else "one round only, no spread"
    return (
        f"Run-to-run spread, (max-min)/median over the rounds, median of the rows: {spread}. "
        f"Load average at start {start}, at end {end}."
    )


def cell(summary: dict[str, Any], side: str, wl: str, field: str) -> str:
    x = summary.get(side, {}).get(wl, {}).get(field)
    if x is None:
        return "-"
    fmt = ",.0f" if field.endswith("per_s") else ".2f"
    s = f"{x['median']:{fmt}}"
    if x["rounds"] > 1:
        s += f" ({x['min']:{fmt}}-{x['max']:{fmt}})"
    return s


def table(doc: dict[str, Any], title: str) -> Table:
    summary, rat = doc["summary"], doc["ratios"]
    rev = doc["revisions"]
    heads = {
        "now": f"actorq now ({rev['now']['commit']}{'+' if rev['now']['dirty'] else ''})",
        "baseline": f"actorq baseline ({rev['baseline']['commit']})" if rev.get("baseline") else "baseline",
        "rivetkit": "RivetKit " + (doc.get("rivetkit_version") or ""),
        "echo": "bare echo",
    }
    t = Table("metric", *heads.values(), "now/baseline", "now/RivetKit", "now/echo", title=title)
    for label, wl, field, peer_wl in ROWS:
        cells = [cell(summary, side, wl if side in ("now", "baseline") else peer_wl, field) for side in heads]
        if all(c == "-" for c in cells):
            continue
        rs = [rat.get(f"now/{o}", {}).get(f"{wl}.{field}") for o in ("baseline", "rivetkit", "echo")]
        t.add_row(label, *cells, *(f"{r:.2f}x" if r else "-" for r in rs))
    return t


# -- driver -------------------------------------------------------------------------------------
@contextmanager
def baseline_src(rev: str | None) -> Iterator[Path | None]:
    if rev is None:
        yield None
        return
    with git_worktree(rev) as tree:
        yield tree / "src"


def default_peer() -> Path:
    env = os.environ.get("ACTORQ_RIVETKIT_PEER")
    return Path(env) if env else ROOT / "bench" / "peers" / "rivetkit"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small counts and 1 round (a smoke run)")
    ap.add_argument("--rounds", type=int, help="rounds of every side, interleaved (default 3, quick 1)")
    ap.add_argument("--baseline", default=BASELINE, help=f"git revision for the before column ({BASELINE})")
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--no-rivetkit", action="store_true")
    ap.add_argument("--no-echo", action="store_true")
    ap.add_argument("--rivetkit-peer", type=Path, default=None, help="the RivetKit peer's folder (run.sh)")
    ap.add_argument(
        "--rivetkit-scale",
        type=int,
        default=None,
        help="BENCH_TIME_SCALE for RivetKit's phase caps, an integer (default 6: its full counts; quick 1)",
    )
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "compare.json")
    ap.add_argument("--side", choices=["actorq", "echo"], help=argparse.SUPPRESS)
    ap.add_argument("--src", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    counts = QUICK if args.quick else FULL

    if args.side:  # one side, in the process run_side started
        figures = actorq_side(counts, args.src) if args.side == "actorq" else echo_side(counts)
        args.out.write_text(json.dumps(figures))
        return 0

    rounds_n = args.rounds or (1 if args.quick else 3)
    scale = args.rivetkit_scale or (1 if args.quick else 6)
    peer = (args.rivetkit_peer or default_peer()).resolve()
    if not args.no_rivetkit:
        missing = [n for n in RIVETKIT_FILES if not (peer / n).is_file()]
        if missing or not shutil.which("npm"):
            why = "missing " + ", ".join(missing) if missing else "no npm"
            err.print(
                f"RivetKit peer not usable at {peer} ({why}); give --rivetkit-peer PATH or"
                " ACTORQ_RIVETKIT_PEER, or --no-rivetkit"
            )
            return 2
    rev = None if args.no_baseline else args.baseline
    if rev is not None and not short_commit(rev):
        err.print(f"unknown revision {rev!r} for the baseline (--baseline REV, or --no-baseline)")
        return 2
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "actorq" / "bench"
    order = [
        s
        for s, on in zip(SIDES, (True, rev is not None, not args.no_rivetkit, not args.no_echo), strict=True)
        if on
    ]
    doc: dict[str, Any] = {
        "config": {
            "counts": counts,
            "warmup": WARMUP,
            "rounds": rounds_n,
            "order": order,
            "rivetkit_time_scale": None if args.no_rivetkit else scale,
        },
        "revisions": {
            "now": {"commit": short_commit("HEAD"), "dirty": dirty()},
            "baseline": {"revision": rev, "commit": short_commit(rev)} if rev else None,
        },
        "load_average": {"start": os.getloadavg()},
        "rounds": [],
        "notes": list(NOTES),
    }
    log = cache / "rivetkit-run.log"
    if "rivetkit" in order:
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text("")
    failed = False
    with ExitStack() as stack:
        base_src = stack.enter_context(baseline_src(rev))
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="actorq-compare-")))
        for r in range(rounds_n):
            this: dict[str, Any] = {}
            doc["rounds"].append(this)
            for side in order:
                err.print(f"round {r + 1}/{rounds_n}: {side}")
                t0 = time.monotonic()
                try:
                    out = tmp / f"{side}-{r}.json"
                    if side == "now":
                        this[side] = run_side("actorq", out, args.quick, ROOT / "src")
                    elif side == "baseline":
                        this[side] = run_side("actorq", out, args.quick, base_src)
                    elif side == "echo":
                        this[side] = run_side("echo", out, args.quick)
                    else:
                        with log.open("a") as f:
                            f.write(f"--- round {r + 1} ---\n")
                        this[side] = rivetkit_side(peer, cache / "rivetkit-peer", scale, log)
                        doc["rivetkit_version"] = this[side]["raw"].get("rivetkit_version")
                        doc["node_version"] = this[side]["raw"].get("node_version")
                except (SideFailed, subprocess.TimeoutExpired, OSError, ValueError, KeyError) as exc:
                    failed = True
                    this[side] = {"error": str(exc)}
                    err.print(f"[red]{side} failed:[/] {exc}")
                this[side]["seconds"] = time.monotonic() - t0
    doc["load_average"]["end"] = os.getloadavg()
    doc["summary"] = summarize(doc["rounds"])
    doc["ratios"] = ratios(doc["summary"])
    for side in order:
        if side != "rivetkit":
            continue
        for r in doc["rounds"]:
            for wl, f in r.get(side, {}).get("figures", {}).items():
                if f.get("n", 0) < f.get("target", 0):
                    doc["notes"].append(
                        f"RivetKit's {wl} stopped at its time cap after {f['n']} of {f['target']} "
                        f"(BENCH_TIME_SCALE={scale}); its rates are over the time it ran"
                    )
    doc["notes"].append(noise_note(doc["summary"], doc["load_average"]))
    title = f"side by side, {rounds_n} round(s)" + (" (quick)" if args.quick else "")
    con = Console(width=None if sys.stdout.isatty() else 200)
    con.print(table(doc, title))
    for note in doc["notes"]:
        con.print(f"- {note}")
    write_results(args.out, doc, quick=args.quick)
    Console().print(f"wrote {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
