"""Agent VM benchmarks: sandbox layers, cold start, warm exec, pi session start, idle memory, prompts.

  python bench/bench_agent_os.py            # full run: this tree and the baseline, side by side
  python bench/bench_agent_os.py --quick    # small counts
  python bench/bench_agent_os.py --baseline none   # this tree only
  python bench/bench_agent_os.py --part history --quick   # the event history only

Everything runs through a real server (``registry.test()``: uvicorn on loopback, SQLite) and the
async client, with the real pi binary in bubblewrap sandboxes talking to the local fake LLM
(through a declared host port). The same benchmark of the baseline revision (default: the last one
before VMs were fenced, whose sandbox shared the host's network and ran bwrap as root) runs first,
from a temporary git worktree, so both columns come from one run on one machine.

* layers: what one sandboxed ``true`` costs with each layer added, on a VM's host thread:
  bubblewrap as root (the old model, without its setpriv step), as the VM's uid in a user namespace
  with ``--disable-userns``, with the seccomp filter, and the full launch (cgroups, rlimits, pause);
* cold start: ``exec("true")`` on a VM key never used before (wake + namespaces + cgroups + network
  + sandbox + process), p50/p99, and where a wake's time goes;
* warm exec: ``exec("true")`` on an awake VM;
* session start: ``create_session("pi")`` until pi answers its RPC state request;
* idle pi session memory: RSS of each VM's process tree (bwrap + node) after one prompt;
* warm sessions: ``create_session("pi")`` served by a VM's warm pool vs started cold, and the RSS
  of one pooled agent (``--only warm`` runs this part alone);
* concurrency: 8 VMs each with a pi session prompting at once (each prompt: a tool call round trip,
  two LLM requests); wall time and per-prompt latency;
* approvals: a pi ``write`` held by an ``ask`` rule: from pi starting the tool to the client seeing
  the ``permission_request`` event, and from that event through ``respond_permission`` to pi having
  run the tool (its ``tool_execution_end`` event at the client). ``--part approvals`` runs only this.
* ``--part history``: the event history (appending, a wake holding 10,000 events, a late client's
  catch-up on all of them), written to ``bench/results/agent_os_history.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import statistics
import subprocess
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
from actorq.agent_os import _linux, agent_os, seccomp, software  # noqa: E402  # noqa: E402
from actorq.agent_os.fake_llm import FakeLLM, Reply, pi_agent_files  # noqa: E402
from actorq.agent_os.host import LAUNCH_ENV, VMHost, bwrap_path  # noqa: E402
from actorq.agent_os.limits import Limits, Network  # noqa: E402
from actorq.agent_os.permissions import Permissions, ask  # noqa: E402
from actorq.agent_os.workspace import Workspace  # noqa: E402
from actorq.server.serve import free_port  # noqa: E402
from bench.report import write_results  # noqa: E402
from bench.worktree import git_worktree, short_commit  # noqa: E402

LLM_PORT = free_port()  # the fake LLM's port on the host, declared so the VMs may reach it
HOST_TIMINGS: list[dict[str, float]] = []  # VMHost.timings of each wake, in order
_start = VMHost.start


async def _timed_start(self: VMHost, *args: Any, **kwargs: Any) -> None:
    await _start(self, *args, **kwargs)
    HOST_TIMINGS.append(dict(self.timings))


VMHost.start = _timed_start  # type: ignore[method-assign]
_LLM_NET = Network(host_ports=[LLM_PORT])
registry = setup(
    use={
        "vm": agent_os(software=[software.common, software.pi], network=_LLM_NET),  # default Limits()
        # the same without the CPU cap: pi's start-up uses more than one core for a moment
        "uncapped": agent_os(
            software=[software.common, software.pi], network=_LLM_NET, limits=Limits(cpus=None)
        ),
        # two pi agents kept started per awake VM; a short idle sleep so the bench can restart it
        "warm": agent_os(
            software=[software.common, software.pi], network=_LLM_NET, warm_pool=2, sleep_timeout=2.0
        ),
    }
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


def _run(argv: list[str], fds: list[int], uid: int | None) -> float:
    """One sandboxed ``true`` started by the calling (VM host) thread; milliseconds to its exit."""
    t = time.perf_counter()
    ctx = _linux.thread_ids(uid, uid) if uid is not None else contextlib.nullcontext()
    with ctx:
        p = subprocess.Popen(argv, pass_fds=fds, env=LAUNCH_ENV, cwd="/", stdout=subprocess.DEVNULL)
    p.wait()
    return (time.perf_counter() - t) * 1000


async def layers(n: int) -> dict[str, Any]:
    """Each layer of a sandbox launch, added one by one, on a real VM's host thread."""
    root = Path(tempfile.mkdtemp(prefix="actorq-bench-vm-"))
    ws = await Workspace.open(
        root / "vm",
        data_dir=root,
        name="bench",
        software=[software.common],
        network=Network(outbound=False),
        limits=Limits(),
    )
    out: dict[str, Any] = {}
    try:
        base = ws.sandbox.bwrap_args()
        userns = base[: base.index("--unshare-pid")]  # --unshare-user --disable-userns --uid/--gid
        as_root = [a for a in base if a not in userns]
        bwrap = bwrap_path()
        sfd = os.memfd_create("bench-seccomp")
        os.write(sfd, seccomp.program())

        def seccomp_run() -> float:
            os.lseek(sfd, 0, os.SEEK_SET)
            return _run([bwrap, *base, "--seccomp", str(sfd), "--", "true"], [sfd], ws.host.uid)

        variants = {
            "bwrap_as_root": lambda: _run([bwrap, *as_root, "--", "true"], [], None),
            "as_vm_uid_with_userns": lambda: _run([bwrap, *base, "--", "true"], [], ws.host.uid),
            "plus_seccomp": seccomp_run,
        }
        for name, fn in variants.items():
            xs = [await ws.host.call(fn) for _ in range(n)]
            out[name] = {"p50_ms": pct(xs, 50), "p99_ms": pct(xs, 99)}
        full = []
        for _ in range(n):
            t = time.perf_counter()
            p = await ws.sandbox.launch(["true"], stdin=False)
            await p.communicate()
            full.append((time.perf_counter() - t) * 1000)
        out["full_launch"] = {"p50_ms": pct(full, 50), "p99_ms": pct(full, 99)}
        os.close(sfd)
    finally:
        await ws.close()
        shutil.rmtree(root, ignore_errors=True)
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


async def previews(client: Any, vm: Any, n: int) -> dict[str, Any]:
    """A GET of a small page in the VM: by vm_fetch (API token) and by a signed preview URL (none)."""
    import httpx

    port = 18990
    await vm.write_file("/home/user/site/index.html", "<h1>bench</h1>")
    await vm.spawn("python3", ["-m", "http.server", str(port), "--bind", "127.0.0.1"], cwd="/home/user/site")
    for _ in range(100):
        with contextlib.suppress(Exception):
            await vm.vm_fetch(port, "/")
            break
        await asyncio.sleep(0.1)
    n = max(n, 30)
    fetch, preview = [], []
    for _ in range(n):
        t = time.perf_counter()
        await vm.vm_fetch(port, "/")
        fetch.append((time.perf_counter() - t) * 1000)
    url = (await vm.create_signed_preview_url(port, 600)).url
    async with httpx.AsyncClient(base_url=client.url) as browser:
        await browser.get(url)  # the connection is made once, as vm_fetch's client already has
        for _ in range(n):
            t = time.perf_counter()
            r = await browser.get(url)
            preview.append((time.perf_counter() - t) * 1000)
            assert r.status_code == 200, r.text
    return {
        "vm_fetch_get": {"p50_ms": pct(fetch, 50), "p99_ms": pct(fetch, 99), "n": n},
        "preview_get": {"p50_ms": pct(preview, 50), "p99_ms": pct(preview, 99), "n": n},
    }


def vm_processes() -> dict[int, tuple[bytes, int]]:
    """Every process in this process's VM cgroups: pid -> (first argv word, RSS in kB)."""
    mine = f"/actorq-{os.getpid()}-".encode()
    out: dict[int, tuple[bytes, int]] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            if mine not in (d / "cgroup").read_bytes():
                continue
            cmd = (d / "cmdline").read_bytes().split(b"\0")[0]
            status = (d / "status").read_text()
        except OSError:
            continue
        kb = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
        out[int(d.name)] = (cmd, kb)
    return out


def pi_count() -> int:
    """pi agents running in this process's VMs (``pi`` once it set its title, ``node`` before)."""
    return sum(1 for cmd, _ in vm_processes().values() if cmd == b"pi" or cmd.endswith(b"node"))


async def _until(cond: Any, vm: Any, timeout: float = 60.0) -> None:
    """Wait for ``cond()``, keeping the VM awake with a cheap action meanwhile."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError("the warm pool did not fill")
        await vm.exists("/home/user")
        await asyncio.sleep(0.2)


async def warm_sessions(client: Any, llm: FakeLLM, n: int) -> dict[str, Any]:
    """create_session("pi") served by the warm pool vs started cold (a caller env: the pool cannot
    serve it), and the RSS of one pooled agent's process tree (bwrap + node, from /proc). Runs
    before anything else starts a VM, so this process's VM cgroups hold this VM's processes only."""
    vm = client.warm.get_or_create(["warm-0"])
    for path, text in pi_agent_files(llm.url).items():
        await vm.write_file(f"/home/user/{path}", text)
    await asyncio.sleep(0.5)
    while pi_count():  # the pool of that first wake predates the config: let the VM sleep
        await asyncio.sleep(0.2)
    warm, cold, rss_trees = [], [], []
    served = 0
    for i in range(n):
        await _until(lambda: pi_count() >= 2, vm)
        t0 = time.monotonic()
        await _until(lambda t0=t0: time.monotonic() - t0 > 2.0, vm)  # pi answers get_state by then
        if i == 0:  # two pooled agents and nothing else: what one pooled session costs
            rss_trees.append(sum(kb for _, kb in vm_processes().values()) / 1024 / 2)
        # cold first, with the pool full and idle (nothing refilling beside it)
        t = time.perf_counter()
        s = await vm.create_session("pi", env={"BENCH": str(i)})
        cold.append((time.perf_counter() - t) * 1000)
        assert not s["warm"]
        await vm.close_session(s["session_id"])
        t = time.perf_counter()
        s = await vm.create_session("pi")
        warm.append((time.perf_counter() - t) * 1000)
        served += bool(s["warm"])
        await vm.close_session(s["session_id"])
    return {
        "warm": {"p50_ms": pct(warm, 50), "p99_ms": pct(warm, 99), "n": n, "served_warm": served},
        "cold": {"p50_ms": pct(cold, 50), "p99_ms": pct(cold, 99), "n": n},
        "pooled_rss_mb": rss_trees[0] if rss_trees else 0.0,
    }


async def run(quick: bool, only: str | None = None) -> dict[str, Any]:
    cold_n = 10 if quick else 50
    vms = 2 if quick else 8
    results: dict[str, Any] = {}
    if only in (None, "warm"):
        async with FakeLLM(port=LLM_PORT) as llm, registry.test() as client:
            results["warm_sessions"] = await warm_sessions(client, llm, 10 if quick else 30)
        if only == "warm":
            return results
    results["layers"] = await layers(cold_n)
    results["sandbox_launch"] = {**results["layers"]["full_launch"], "n": cold_n}
    async with FakeLLM(port=LLM_PORT) as llm, registry.test() as client:
        cold = []
        wakes: list[dict[str, float]] = []
        for i in range(cold_n):
            vm = client.vm.get_or_create([f"cold-{i}"])
            await vm.resolve()
            t = time.perf_counter()
            r = await vm.exec("true")
            cold.append((time.perf_counter() - t) * 1000)
            assert r["exit_code"] == 0
            wakes.append(HOST_TIMINGS[-1] if HOST_TIMINGS else {})
        results["cold_start_exec_true"] = {"p50_ms": pct(cold, 50), "p99_ms": pct(cold, 99), "n": cold_n}
        parts = sorted({k for w in wakes for k in w})
        results["cold_start_parts"] = {k: pct([w.get(k, 0.0) for w in wakes], 50) for k in parts}
        warm = []
        vm = client.vm.get_or_create(["cold-0"])
        for _ in range(cold_n):
            t = time.perf_counter()
            await vm.exec("true")
            warm.append((time.perf_counter() - t) * 1000)
        results["warm_exec_true"] = {"p50_ms": pct(warm, 50), "p99_ms": pct(warm, 99), "n": cold_n}
        results.update(await previews(client, vm, cold_n))

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
        switch = []
        for _ in range(cold_n):
            t = time.perf_counter()
            await handles[0].set_model(sessions[0], "stand-in")
            switch.append((time.perf_counter() - t) * 1000)
        results["pi_set_model"] = {"p50_ms": pct(switch, 50), "p99_ms": pct(switch, 99), "n": cold_n}

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
        # after the memory figure, so that it counts the 8 sessions above only
        uncapped = []
        for i in range(min(vms, 4)):
            h = client.uncapped.get_or_create([f"pi-{i}"])
            for path, text in pi_agent_files(llm.url).items():
                await h.write_file(f"/home/user/{path}", text)
            t = time.perf_counter()
            await h.create_session("pi")
            uncapped.append((time.perf_counter() - t) * 1000)
        results["pi_session_start_cpus_none"] = {
            "p50_ms": pct(uncapped, 50),
            "max_ms": max(uncapped),
            "n": len(uncapped),
        }
        results["approvals"] = await approvals(client, llm, 10 if quick else 30)
    return results


async def approvals(client: Any, llm: FakeLLM, n: int) -> dict[str, Any]:
    """Held-call round trips (module docstring), ``n`` of them in one pi session."""
    h = client.vm.get_or_create(["approvals"])
    for path, text in pi_agent_files(llm.url).items():
        await h.write_file(f"/home/user/{path}", text)
    policy = Permissions(rules=[ask("write")])
    sid = (await h.create_session("pi", permissions=policy))["session_id"]
    ask_ms, answer_ms = [], []
    async with await h.connect() as conn:
        events = aiter(conn)

        async def until(name: str, kind: str | None = None) -> tuple[float, Any]:
            async for ev in events:
                if ev.name == name and (kind is None or ev.data.get("type") == kind):
                    return time.perf_counter(), ev.data
            raise RuntimeError("the event stream ended")

        for i in range(n):
            llm.script([Reply.tool_call("write", {"path": f"/home/user/held-{i}.txt", "content": "x"}), "ok"])
            prompt = asyncio.create_task(h.send_prompt(sid, "write it"))
            started, _ = await until("session_event", "tool_execution_start")
            asked, req = await until("permission_request")
            await h.respond_permission(sid, req["request_id"], "allow")
            ran, _ = await until("session_event", "tool_execution_end")
            assert (await prompt)["stop_reason"] == "stop"
            ask_ms.append((asked - started) * 1000)
            answer_ms.append((ran - asked) * 1000)
    return {
        "call_to_event_p50_ms": pct(ask_ms, 50),
        "call_to_event_p99_ms": pct(ask_ms, 99),
        "event_to_continue_p50_ms": pct(answer_ms, 50),
        "event_to_continue_p99_ms": pct(answer_ms, 99),
        "n": n,
    }


async def run_approvals(quick: bool) -> dict[str, Any]:
    async with FakeLLM(port=LLM_PORT) as llm, registry.test() as client:
        return {"approvals": await approvals(client, llm, 10 if quick else 30)}


async def history_bench(quick: bool) -> dict[str, Any]:
    """A VM's event history: the cost of numbering and appending one event, the wake of a VM whose
    history holds 10,000 events, and a late client's catch-up on all of them (``get_events`` from
    0, in pages of 1,000 and in one page of 10,000; one session's events out of them)."""
    from actorq.agent_os.history import HISTORY_FILE, History

    n = 10_000
    rounds = 3 if quick else 10
    out: dict[str, Any] = {"events": n}
    root = Path(tempfile.mkdtemp(prefix="actorq-bench-history-"))
    try:
        h = await History.open(root / "alone.jsonl", limit=n)
        event = {"session_id": "ses_bench", "type": "message_update", "delta": "x" * 120}
        t = time.perf_counter()
        for _ in range(n):
            h.record("session_event", event)
        out["record_us"] = (time.perf_counter() - t) / n * 1e6
        await h.close()
        reg = setup(use={"vm": agent_os(software=[software.common], network=False)})
        data = root / "data"
        async with reg.test(storage=data) as client:
            await client.vm.get_or_create(["history"]).exec("true")
        (actor_dir,) = (data / "actors").iterdir()
        h = await History.open(actor_dir / HISTORY_FILE, limit=n)
        for i in range(n):  # one event in four a session's, the rest process output
            if i % 4 == 0:
                h.record("session_event", {**event, "session_id": "ses_one"})
            else:
                h.record("process_output", {"pid": 1, "stream": "stdout", "data": "y" * 120})
        await h.close()
        async with reg.test(storage=data) as client:
            vm = client.vm.get_or_create(["history"])
            await vm.resolve()
            t = time.perf_counter()
            await vm.exec("true")
            out["wake_with_10k_ms"] = (time.perf_counter() - t) * 1000
            await vm.exec("true")
            fresh = client.vm.get_or_create(["no-history"])
            await fresh.resolve()
            t = time.perf_counter()
            await fresh.exec("true")
            out["wake_without_history_ms"] = (time.perf_counter() - t) * 1000
            pages, whole, session = [], [], []
            for _ in range(rounds):
                t = time.perf_counter()
                since, got = 0, 0
                while True:
                    page = await vm.get_events(since=since, limit=1000)
                    got += len(page.events)
                    since = page.next_since
                    if not page.more:
                        break
                pages.append((time.perf_counter() - t) * 1000)
                assert got >= n, got
                t = time.perf_counter()
                page = await vm.get_events(since=0, limit=n)
                whole.append((time.perf_counter() - t) * 1000)
                assert len(page.events) == n
                t = time.perf_counter()
                page = await vm.get_session_events("ses_one", since=0, limit=n)
                session.append((time.perf_counter() - t) * 1000)
                assert len(page.events) == n // 4
            out["catch_up_10k_pages_of_1000_ms"] = {"p50_ms": pct(pages, 50), "max_ms": max(pages)}
            out["catch_up_10k_one_page_ms"] = {"p50_ms": pct(whole, 50), "max_ms": max(whole)}
            out["session_2500_of_10k_ms"] = {"p50_ms": pct(session, 50), "max_ms": max(session)}
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return out


def history_main(quick: bool, out: str) -> int:
    r = asyncio.run(history_bench(quick))
    table = Table("metric", "value", "goal", title="agent VM event history" + (" (quick)" if quick else ""))
    table.add_row("number + append one event", f"{r['record_us']:.1f} us", "")
    table.add_row(
        "wake of a VM holding 10,000 events (exec true) / of a fresh VM",
        f"{r['wake_with_10k_ms']:.0f} / {r['wake_without_history_ms']:.0f} ms",
        "",
    )
    table.add_row(
        "catch up 10,000 events, pages of 1,000: p50 / max",
        _p(r, "catch_up_10k_pages_of_1000_ms", "p50_ms", "max_ms", ".0f"),
        "fast (< 1 s)",
    )
    table.add_row(
        "catch up 10,000 events, one page: p50 / max",
        _p(r, "catch_up_10k_one_page_ms", "p50_ms", "max_ms", ".0f"),
        "",
    )
    table.add_row(
        "one session's 2,500 events out of 10,000: p50 / max",
        _p(r, "session_2500_of_10k_ms", "p50_ms", "max_ms", ".0f"),
        "",
    )
    Console(width=150).print(table)
    write_results(out, r, quick=quick)
    return 0


BASELINE = "cd1ba91~1"  # the last revision before VMs were fenced (own uid, network, cgroups)


def baseline(rev: str, quick: bool) -> dict[str, Any] | None:
    """The same benchmark at revision ``rev``, from a temporary worktree; its results (or None)."""
    if rev == "none":
        return None
    with git_worktree(rev) as tree:
        out = tree.parent / "baseline.json"
        env = {**os.environ, "PYTHONPATH": f"{tree / 'src'}{os.pathsep}{tree}"}
        argv = [sys.executable, str(tree / "bench" / "bench_agent_os.py"), "--out", str(out)]
        Console(stderr=True).print(f"baseline: {rev} (in {tree})")
        subprocess.run(
            [*argv, *(["--quick"] if quick else [])], env=env, check=True, stdout=subprocess.DEVNULL
        )
        doc: dict[str, Any] = json.loads(out.read_text())
        return {"revision": rev, "commit": short_commit(rev), "results": doc["results"]}


def _p(r: dict[str, Any] | None, key: str, a: str = "p50_ms", b: str = "p99_ms", fmt: str = ".1f") -> str:
    if r is None or key not in r:
        return "-"
    x = r[key]
    return f"{x[a]:{fmt}} / {x[b]:{fmt}} ms"


def warm_rows(table: Table, r: dict[str, Any], columns: int = 2) -> None:
    w = r.get("warm_sessions")
    if w is None:
        return
    pad = [""] * (columns - 2)
    table.add_row(
        "create_session('pi') from the warm pool p50 / p99",
        *pad[:1],
        _p(w, "warm") + f" ({w['warm']['served_warm']}/{w['warm']['n']} warm)",
        *(["p50 <= 50 ms"] if columns > 2 else []),
    )
    table.add_row(
        "create_session('pi') cold (caller env) p50 / p99",
        *pad[:1],
        _p(w, "cold", fmt=".0f"),
        *([""] if columns > 2 else []),
    )
    table.add_row(
        "RSS per pooled pi agent (bwrap + node)",
        *pad[:1],
        f"{w['pooled_rss_mb']:.0f} MB",
        *([""] if columns > 2 else []),
    )


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--baseline", default=BASELINE, help="git revision to compare with, or 'none'")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "agent_os.json"))
    ap.add_argument(
        "--part",
        choices=["all", "approvals", "history", "warm"],
        default="all",
        help="only this part (no baseline)",
    )
    ap.add_argument("--only", choices=["warm"], help="the same as --part warm")
    args = ap.parse_args()
    if args.only:
        args.part = args.only
    if args.part == "approvals":
        return approvals_only(args.quick, args.out)
    if args.part == "history":
        out = args.out.replace("agent_os.json", "agent_os_history.json")
        return history_main(args.quick, out)
    if args.part == "warm":
        res = asyncio.run(run(args.quick, "warm"))
        table = Table("metric", "value", title="actorq agent VM benchmarks: warm only")
        warm_rows(table, res)
        Console(width=150).print(table)
        out = Path(args.out).with_name("agent_os_warm.json")
        write_results(str(out), res, quick=args.quick)
        return 0
    before = baseline(args.baseline, args.quick)
    res = asyncio.run(run(args.quick))
    b = before["results"] if before else None
    title = "actorq agent VM benchmarks" + (" (quick)" if args.quick else "")
    table = Table(
        "metric", f"before ({before['commit']})" if before else "before", "after", "goal", title=title
    )
    r = res
    for name, label in (
        ("bwrap_as_root", "layer: bwrap as root, no user namespace"),
        ("as_vm_uid_with_userns", "layer: as the VM's uid, user namespace"),
        ("plus_seccomp", "layer: + seccomp filter"),
        ("full_launch", "layer: + cgroups, rlimits (full launch)"),
    ):
        table.add_row(f"{label} p50 / p99", "", _p(r["layers"], name), "")
    table.add_row(
        "sandbox launch (bwrap + true) p50 / p99", _p(b, "sandbox_launch"), _p(r, "sandbox_launch"), ""
    )
    table.add_row(
        "cold start: exec('true') on a fresh VM p50 / p99",
        _p(b, "cold_start_exec_true"),
        _p(r, "cold_start_exec_true"),
        "p50 <= 30 ms",
    )
    parts = ", ".join(f"{k.removesuffix('_ms')} {v:.1f}" for k, v in r["cold_start_parts"].items())
    table.add_row("  a wake's host set-up (p50, ms; the parts after namespaces run together)", "", parts, "")
    table.add_row(
        "warm exec('true') p50 / p99", _p(b, "warm_exec_true"), _p(r, "warm_exec_true"), "p50 <= 10 ms"
    )
    table.add_row(
        "vm_fetch GET of a page in the VM p50 / p99", _p(b, "vm_fetch_get"), _p(r, "vm_fetch_get"), ""
    )
    table.add_row(
        "the same through a signed preview URL (no token) p50 / p99",
        _p(b, "preview_get"),
        _p(r, "preview_get"),
        "",
    )
    table.add_row(
        "pi set_model (RPC round trips) p50 / p99", _p(b, "pi_set_model"), _p(r, "pi_set_model"), ""
    )
    table.add_row(
        "pi session create -> ready p50 / max",
        _p(b, "pi_session_start", "p50_ms", "max_ms", ".0f"),
        _p(r, "pi_session_start", "p50_ms", "max_ms", ".0f"),
        "no slower than before",
    )
    table.add_row(
        "  the same with Limits(cpus=None)",
        "",
        _p(r, "pi_session_start_cpus_none", "p50_ms", "max_ms", ".0f"),
        "",
    )
    table.add_row(
        "one prompt (tool call round trip)",
        f"{b['prompt_single']['ms']:.0f} ms" if b else "-",
        f"{r['prompt_single']['ms']:.0f} ms",
        "",
    )

    def conc(x: dict[str, Any] | None) -> str:
        if x is None:
            return "-"
        c = x["prompts_concurrent"]
        return f"{c['wall_s'] * 1000:.0f} / {c['p50_ms']:.0f} / {c['max_ms']:.0f} ms"

    table.add_row(
        f"{r['prompts_concurrent']['vms']} VMs prompting at once: wall / p50 / max", conc(b), conc(r), ""
    )

    def mem(x: dict[str, Any] | None) -> str:
        if x is None:
            return "-"
        m = x["idle_pi_session_rss"]
        return f"{m['mean_mb']:.0f} / {m['max_mb']:.0f} MB ({m['sessions']} sessions)"

    table.add_row("idle pi session RSS (bwrap + node) mean / max", mem(b), mem(r), "")
    _approval_row(table, r)
    warm_rows(table, r, columns=4)
    Console(width=150).print(table)
    write_results(args.out, {**res, "baseline": before}, quick=args.quick)
    return 0


def _approval_row(table: Table, r: dict[str, Any]) -> None:
    a = r.get("approvals")
    if a is None:
        return
    for key, label in (
        ("call_to_event", "approval: pi tool call -> permission_request event p50 / p99"),
        ("event_to_continue", "approval: event -> respond -> pi ran the tool p50 / p99"),
    ):
        table.add_row(label, "", f"{a[key + '_p50_ms']:.1f} / {a[key + '_p99_ms']:.1f} ms", "")


def approvals_only(quick: bool, out: str) -> int:
    res = asyncio.run(run_approvals(quick))
    table = Table(
        "metric", "before", "after", "goal", title="actorq agent VM approvals" + (" (quick)" if quick else "")
    )
    _approval_row(table, res)
    Console(width=150).print(table)
    write_results(str(Path(out).with_name("agent_os_approvals.json")), res, quick=quick)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
