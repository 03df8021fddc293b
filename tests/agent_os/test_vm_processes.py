"""Agent VM processes, network and cron: exec, spawn with streamed output, vm_fetch (network on
and off), durable cron jobs that really fire, and processes killed when the VM sleeps."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from actorq import BadRequest, NotFound, ValidationError
from actorq.client import AsyncClient
from tests.apps.vm_app import registry


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[AsyncClient]:
    async with registry.test(storage=tmp_path / "data") as c:
        yield c


async def test_exec_runs_a_shell_line_in_the_sandbox(client: AsyncClient) -> None:
    vm = client.vm.get_or_create(["exec"])
    r = await vm.exec("echo out; echo err >&2; id -u; pwd; echo $HOME; exit 3")
    assert r["exit_code"] == 3
    # uid 1000 in the VM's user namespace (an unprivileged uid of its own on the host)
    assert r["stdout"].split() == ["out", "1000", "/home/user", "/home/user"]
    assert r["stderr"] == "err\n"
    await vm.mkdir("/home/user/proj")
    r = await vm.exec("pwd; echo $GREETING", cwd="/home/user/proj", env={"GREETING": "hi"})
    assert r["stdout"].split() == ["/home/user/proj", "hi"]
    r = await vm.exec("printf '\\377\\376ok'")
    assert r["stdout"].endswith("ok") and "\ufffd" in r["stdout"]  # UTF-8 with errors replaced
    r = await vm.exec("git --version && node --version && python3 --version")
    assert r["exit_code"] == 0 and "git version" in r["stdout"]


async def test_exec_timeout_and_output_limit(client: AsyncClient) -> None:
    vm = client.vm.get_or_create(["limits"])
    t0 = time.monotonic()
    r = await vm.exec("sleep 30", timeout=0.5)
    assert r["timed_out"] is True and r["exit_code"] == 124
    assert time.monotonic() - t0 < 5
    r = await vm.exec("head -c 3000000 /dev/zero | tr '\\0' a")
    assert r["truncated"] is True and len(r["stdout"]) == 1024 * 1024
    with pytest.raises(BadRequest):
        await vm.exec("")
    with pytest.raises(NotFound):
        await vm.exec("true", cwd="/home/user/no-such-dir")
    with pytest.raises(ValidationError):
        await vm.exec("true", env={"A": 1})


async def test_spawn_streams_output_and_can_be_waited_and_killed(client: AsyncClient) -> None:
    vm = client.vm.get_or_create(["spawn"])
    events: list[tuple[str, Any]] = []
    async with await vm.connect() as conn:

        async def collect() -> None:
            async for ev in conn:
                events.append((ev.name, ev.data))

        task = asyncio.create_task(collect())
        p = await vm.spawn("sh", ["-c", "echo one; sleep 0.2; echo two; exit 7"])
        assert await vm.wait_process(p["pid"], timeout=10) == 7
        long = await vm.spawn("sleep", ["60"])
        procs = {x["pid"]: x for x in await vm.list_processes()}
        assert procs[p["pid"]]["running"] is False and procs[p["pid"]]["exit_code"] == 7
        assert procs[p["pid"]]["stdout_tail"] == "one\ntwo\n"
        assert procs[long["pid"]]["running"] is True
        await vm.kill_process(long["pid"])
        assert await vm.wait_process(long["pid"], timeout=10) == 137
        await asyncio.sleep(0.2)
        task.cancel()
    out = "".join(d["data"] for n, d in events if n == "process_output" and d["pid"] == p["pid"])
    assert out == "one\ntwo\n"
    exits = [{k: v for k, v in d.items() if k != "seq"} for n, d in events if n == "process_exit"]
    assert {"pid": p["pid"], "exit_code": 7} in exits
    with pytest.raises(NotFound):
        await vm.wait_process(999)
    sleeper = await vm.spawn("sleep", ["30"])
    assert await vm.wait_process(sleeper["pid"], timeout=0.2) is None  # still running
    await vm.kill_process(sleeper["pid"])


async def test_vm_fetch_reaches_a_server_inside(client: AsyncClient) -> None:
    for name, port in (("vm", 18931), ("offline", 18932)):
        vm = getattr(client, name).get_or_create(["web"])
        await vm.write_file("/home/user/site/index.html", f"<h1>{name}</h1>")
        p = await vm.spawn(
            "python3", ["-m", "http.server", str(port), "--bind", "127.0.0.1"], cwd="/home/user/site"
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                r = await vm.vm_fetch(port, "/index.html")
                break
            except NotFound:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.1)
        assert r["status"] == 200 and r["body"] == f"<h1>{name}</h1>".encode()
        await vm.kill_process(p["pid"])


async def test_network_off_cuts_the_outside(client: AsyncClient) -> None:
    vm = client.offline.get_or_create(["cut"])
    # the test's own server is on the host's loopback: unreachable from a network=False VM
    port = int(client.url.rsplit(":", 1)[1])
    probe = f"python3 -c \"import socket; socket.create_connection(('127.0.0.1', {port}), 2)\""
    r = await vm.exec(probe)
    assert r["exit_code"] != 0 and "refused" in r["stderr"].lower()
    online = client.vm.get_or_create(["cut"])  # its own network namespace too: the host's loopback is not its
    r = await online.exec(probe)
    assert r["exit_code"] != 0 and "refused" in r["stderr"].lower()


async def test_cron_jobs_fire_on_schedule_and_cancel(client: AsyncClient) -> None:
    vm = client.vm.get_or_create(["cron"])
    job = await vm.schedule_cron("* * * * * *", {"type": "exec", "command": "date +%s.%N >> ticks"})
    assert job["id"].startswith("cron_") and job["next_run"] > time.time() - 1
    await asyncio.sleep(3.5)
    ticks = (await vm.read_file("/home/user/ticks")).decode().split()
    assert len(ticks) >= 2
    jobs = await vm.list_cron_jobs()
    assert jobs[0]["runs"] >= 2 and jobs[0]["last_result"]["exit_code"] == 0
    assert await vm.cancel_cron_job(job["id"]) is True
    await asyncio.sleep(1.5)
    n = len((await vm.read_file("/home/user/ticks")).decode().split())
    await asyncio.sleep(2.0)
    assert len((await vm.read_file("/home/user/ticks")).decode().split()) == n
    assert await vm.list_cron_jobs() == []
    with pytest.raises(ValidationError):
        await vm.schedule_cron("every tuesday", {"type": "exec", "command": "true"})
    with pytest.raises(ValidationError):
        await vm.schedule_cron("* * * * *", {"type": "launch-missiles"})


async def _pgrep(pattern: str) -> bytes:
    ps = await asyncio.create_subprocess_exec("pgrep", "-f", pattern, stdout=asyncio.subprocess.PIPE)
    out, _ = await ps.communicate()
    return out.strip()


async def test_stopping_kills_processes_but_keeps_files(tmp_path: Path) -> None:
    marker = f"sleep 301.{time.time_ns() % 1000}"
    async with registry.test(storage=tmp_path / "data") as client:
        vm = client.vm.get_or_create(["stopping"])
        await vm.write_file("/home/user/keep.txt", "kept")
        await vm.write_file("/tmp/scratch", "gone after sleep")
        # exec's daemons die with it (the sandbox's PID namespace ends with its first process)
        assert (await vm.exec(f"sh -c '{marker} &'; echo started"))["stdout"] == "started\n"
        assert await _pgrep(marker) == b""
        await vm.spawn("sh", ["-c", marker])  # a spawned process keeps the VM awake...
        assert await _pgrep(marker) != b""
    assert await _pgrep(marker) == b"", "a VM process outlived its server"  # ...until it stops
    async with registry.test(storage=tmp_path / "data") as client:
        vm = client.vm.get_or_create(["stopping"])
        assert await vm.read_file("/home/user/keep.txt") == b"kept"
        assert await vm.exists("/tmp/scratch") is False  # /tmp is emptied on wake
        assert await vm.list_processes() == []


async def test_actions_are_not_cut_by_the_clients_request_timeout(client: AsyncClient) -> None:
    from actorq.client import create_client

    async with create_client(client.url, timeout=0.3) as short:  # plain requests: 0.3 s
        vm = short.vm.get_or_create(["long-action"])
        r = await vm.exec("sleep 1; echo done")  # an action may take as long as it takes
        assert r["stdout"] == "done\n"


async def test_bad_process_arguments_are_typed_errors(client: AsyncClient) -> None:
    vm = client.vm.get_or_create(["bad-args"])
    for call in (
        vm.exec("echo a\0b"),
        vm.spawn("echo", ["a\0b"]),
        vm.exec("true", timeout=float("nan")),
        vm.exec("true", timeout=-1),
        vm.exec("true", env={"A=B": "x"}),
        vm.exec("true", env={"A": "x\0y"}),
    ):
        with pytest.raises((BadRequest, ValidationError)):
            await call
    p = await vm.spawn("sleep", ["5"])
    with pytest.raises(BadRequest):
        await vm.kill_process(p["pid"], signal=999)
    with pytest.raises((BadRequest, ValidationError)):
        await vm.wait_process(p["pid"], timeout=float("inf"))
    await vm.kill_process(p["pid"])
    assert await vm.wait_process(p["pid"], timeout=10) == 137
