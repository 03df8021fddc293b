"""Agent VM benchmarks: sandbox cold start, pi session start, idle pi memory, concurrent prompts.

  python bench/bench_agent_os.py            # full run, prints a table, writes bench/results/agent_os.json
  python bench/bench_agent_os.py --quick    # small counts

Everything runs through a real server (``registry.test()``: uvicorn on loopback, SQLite) and the
async client, with the real pi binary in bubblewrap sandboxes talking to the local fake LLM.

* cold start: ``exec("true")`` on a VM key never used before (wake + sandbox + process), p50/p99;
  also the bare sandbox launch (bwrap + ``true``) without the actor around it.
* session start: ``create_session("pi")`` until pi answers its RPC state request.
* idle pi session memory: RSS of each VM's process tree (bwrap + node) after one prompt.
* concurrency: 8 VMs each with a pi session prompting at once (each prompt: a tool call round trip,
  two LLM requests); wall time and per-prompt latency.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from actorq import setup  # noqa: E402
from actorq.agent_os import agent_os, software  # noqa: E402
from actorq.agent_os.fake_llm import FakeLLM, pi_agent_files  # noqa: E402
from actorq.agent_os.limits import Limits, Network  # noqa: E402
from actorq.agent_os.workspace import Workspace  # noqa: E402
from actorq.server.serve import free_port  # noqa: E402
from bench.report import write_results  # noqa: E402

LLM_PORT = free_port()  # the fake LLM's port on the host, declared so the VMs may reach it
registry = setup(
    use={"vm": agent_os(software=[software.common, software.pi], network=Network(host_ports=[LLM_PORT]))}
)


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


def tree_rss_mb(root_pid: int) -> float:
    """RSS of a process and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            status = (d / "status").read_text()
        except OSError:
            continue
        pid = int(d.name)
        children.setdefault(int(fields[1]), []).append(pid)
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                rss[pid] = int(line.split()[1])
    total, todo = 0, [root_pid]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo.extend(children.get(pid, []))
    return total / 1024


async def bare_launch(n: int) -> list[float]:
    """The sandbox alone (host thread, namespaces, cgroups, bubblewrap + ``true``), no actor, no HTTP."""
    root = Path(tempfile.mkdtemp(prefix="actorq-bench-vm-"))
    ws = await Workspace.open(
        root / "vm",
        data_dir=root,
        name="bench",
        software=[software.common],
        network=Network(outbound=False),
        limits=Limits(),
    )
    out = []
    try:
        for _ in range(n):
            t = time.perf_counter()
            p = await ws.sandbox.launch(["true"], stdin=False)
            await p.communicate()
            out.append((time.perf_counter() - t) * 1000)
    finally:
        await ws.close()
    return out


def vm_trees() -> list[int]:
    """pids of the outer bwrap of every live pi session (children of this process)."""
    me = os.getpid()
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            cmd = (d / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == me and b"bwrap" in cmd and b"cli.js" in cmd:
            out.append(int(d.name))
    return out


async def run(quick: bool) -> dict[str, Any]:
    cold_n = 10 if quick else 50
    vms = 2 if quick else 8
    results: dict[str, Any] = {}
    bare = await bare_launch(cold_n)
    results["sandbox_launch"] = {"p50_ms": pct(bare, 50), "p99_ms": pct(bare, 99), "n": cold_n}
    async with FakeLLM(port=LLM_PORT) as llm, registry.test() as client:
        cold = []
        for i in range(cold_n):
            vm = client.vm.get_or_create([f"cold-{i}"])
            await vm.resolve()
            t = time.perf_counter()
            r = await vm.exec("true")
            cold.append((time.perf_counter() - t) * 1000)
            assert r["exit_code"] == 0
        results["cold_start_exec_true"] = {"p50_ms": pct(cold, 50), "p99_ms": pct(cold, 99), "n": cold_n}
        warm = []
        vm = client.vm.get_or_create(["cold-0"])
        for _ in range(cold_n):
            t = time.perf_counter()
            await vm.exec("true")
            warm.append((time.perf_counter() - t) * 1000)
        results["warm_exec_true"] = {"p50_ms": pct(warm, 50), "p99_ms": pct(warm, 99), "n": cold_n}

        handles = [client.vm.get_or_create([f"pi-{i}"]) for i in range(vms)]
        starts, sessions = [], []
        for h in handles:
            for path, text in pi_agent_files(llm.url).items():
                await h.write_file(f"/home/user/{path}", text)
            t = time.perf_counter()
            s = await h.create_session("pi")
            starts.append((time.perf_counter() - t) * 1000)
            sessions.append(s["session_id"])
        results["pi_session_start"] = {"p50_ms": pct(starts, 50), "max_ms": max(starts), "n": vms}

        async def prompt(h: Any, sid: str, i: int) -> float:
            t = time.perf_counter()
            r = await h.send_prompt(sid, f"Write a summary to /home/user/out-{i}.txt: line one\nline two")
            assert r["stop_reason"] == "stop", r
            return (time.perf_counter() - t) * 1000

        one = await prompt(handles[0], sessions[0], 0)
        t0 = time.perf_counter()
        lat = await asyncio.gather(*(prompt(h, s, 1) for h, s in zip(handles, sessions, strict=True)))
        wall = time.perf_counter() - t0
        results["prompt_single"] = {"ms": one}
        results["prompts_concurrent"] = {
            "vms": vms,
            "wall_s": wall,
            "prompts_per_s": vms / wall,
            "p50_ms": statistics.median(lat),
            "max_ms": max(lat),
        }
        await asyncio.sleep(0.5)
        trees = vm_trees()
        rss = [tree_rss_mb(p) for p in trees]
        results["idle_pi_session_rss"] = {
            "mean_mb": statistics.mean(rss) if rss else 0.0,
            "max_mb": max(rss) if rss else 0.0,
            "sessions": len(rss),
        }
    return results


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "agent_os.json"))
    args = ap.parse_args()
    res = asyncio.run(run(args.quick))
    table = Table(
        "metric", "measured", "goal", title="actorq agent VM benchmarks" + (" (quick)" if args.quick else "")
    )
    r = res
    table.add_row(
        "sandbox launch (bwrap + true) p50 / p99",
        f"{r['sandbox_launch']['p50_ms']:.1f} / {r['sandbox_launch']['p99_ms']:.1f} ms",
        "",
    )
    table.add_row(
        "cold start: exec('true') on a fresh VM p50 / p99",
        f"{r['cold_start_exec_true']['p50_ms']:.1f} / {r['cold_start_exec_true']['p99_ms']:.1f} ms",
        "p50 <= 10 ms",
    )
    table.add_row(
        "warm exec('true') p50 / p99",
        f"{r['warm_exec_true']['p50_ms']:.1f} / {r['warm_exec_true']['p99_ms']:.1f} ms",
        "",
    )
    table.add_row(
        "pi session create -> ready p50 / max",
        f"{r['pi_session_start']['p50_ms']:.0f} / {r['pi_session_start']['max_ms']:.0f} ms",
        "",
    )
    table.add_row("one prompt (tool call round trip)", f"{r['prompt_single']['ms']:.0f} ms", "")
    c = r["prompts_concurrent"]
    table.add_row(
        f"{c['vms']} VMs prompting at once: wall / p50 / max",
        f"{c['wall_s'] * 1000:.0f} / {c['p50_ms']:.0f} / {c['max_ms']:.0f} ms",
        "",
    )
    m = r["idle_pi_session_rss"]
    table.add_row(
        "idle pi session RSS (bwrap + node) mean / max",
        f"{m['mean_mb']:.0f} / {m['max_mb']:.0f} MB ({m['sessions']} sessions)",
        "",
    )
    Console().print(table)
    write_results(args.out, res, quick=args.quick)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
