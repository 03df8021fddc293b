"""Warm sessions: pooled pi agents handed out by create_session, refilled, skipped for calls they
cannot serve, held within the VM's limits and stopped (no process left) when the VM sleeps."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from actorq import setup
from actorq.agent_os import Limits, Permissions, acp_agent, agent_os, deny, software
from actorq.agent_os.fake_llm import FakeLLM, pi_agent_files
from actorq.agent_os.warm import pool_sizes
from actorq.client import AsyncClient
from tests.apps.vm_app import LLM

STUB = Path(__file__).with_name("acp_stub_agent.py")

registry = setup(
    use={
        "warm": agent_os(
            software=[software.common, software.pi], network=LLM, warm_pool=2, sleep_timeout=2.0
        ),
        "acpwarm": agent_os(
            software=[software.common],
            network=False,
            agents={"stub": acp_agent(["python3", "/home/user/acp_stub_agent.py"])},
            warm_pool=1,
            sleep_timeout=2.0,
        ),
        # a pooled agent is bound by the VM type's policy like a cold one
        "guarded": agent_os(
            software=[software.common, software.pi],
            network=LLM,
            warm_pool=1,
            permissions=Permissions(rules=[deny("write")]),
            sleep_timeout=2.0,
        ),
        # half of 48 pids leaves room for one pooled pi (node's threads count), not four
        "tight": agent_os(
            software=[software.common, software.pi],
            network=LLM,
            warm_pool={"pi": 4},
            limits=Limits(pids=48, memory_mb=1024, disk_mb=None),
            sleep_timeout=2.0,
        ),
    }
)


def test_warm_pool_declarations_are_checked() -> None:
    assert pool_sizes(None, {"pi": 1}) == {}
    assert pool_sizes(2, {"pi": 1, "claude": 1}) == {"pi": 2, "claude": 2}
    assert pool_sizes({"pi": 0}, {"pi": 1}) == {}
    for bad in (True, -1, 65, "2", {"nope": 1}, {"pi": 1.5}, {"pi": -2}):
        with pytest.raises(ValueError):
            agent_os(software=[software.common, software.pi], warm_pool=bad)  # type: ignore[arg-type]


def pi_processes() -> list[int]:
    """pids of the pi agents in the VM cgroups of this test process (``node .../cli.js --mode rpc``
    until pi sets its process title, ``pi`` after)."""
    mine = f"/actorq-{os.getpid()}-".encode()
    out: list[int] = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().split(b"\0")
            group = (d / "cgroup").read_bytes()
        except OSError:
            continue
        is_pi = cmd[0] == b"pi" or (cmd[0].endswith(b"node") and b"rpc" in cmd)
        if is_pi and mine in group:
            out.append(int(d.name))
    return out


async def until(cond: Any, timeout: float = 30.0, awake: Any = None) -> None:
    """Wait for ``cond()``; with ``awake`` (a VM handle), keep that VM from its idle sleep meanwhile."""
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        if awake is not None:
            await awake.exists("/home/user")
        await asyncio.sleep(0.2)


async def idle(vm: Any, seconds: float) -> None:
    """Let time pass with the VM kept awake."""
    await until(lambda t=time.monotonic() + seconds: time.monotonic() >= t, timeout=seconds + 5, awake=vm)


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[AsyncClient]:
    async with registry.test(storage=tmp_path / "data") as c:
        yield c


async def configured(client: AsyncClient, llm: FakeLLM, kind: str, key: str) -> Any:
    """A VM whose pi config is written, put to sleep once, so its next wake's pool sees the config."""
    vm = getattr(client, kind).get_or_create([key])
    for path, text in pi_agent_files(llm.url).items():
        await vm.write_file(f"/home/user/{path}", text)
    await until(lambda: bool(pi_processes()))  # the pool of this wake started (before the config)
    await until(lambda: not pi_processes())  # asleep: that pool is gone
    return vm


async def test_pooled_sessions_are_fast_work_and_refill(client: AsyncClient, llm: FakeLLM) -> None:
    vm = await configured(client, llm, "warm", "a")
    await vm.exists("/home/user")  # wakes the VM: its pool fills in the background
    await until(lambda: len(pi_processes()) == 2, awake=vm)
    await idle(vm, 3.0)  # pi answers its first request (the pool's readiness) well within this
    took = []
    sessions = []
    for _ in range(2):
        t = time.perf_counter()
        s = await vm.create_session("pi")
        took.append(time.perf_counter() - t)
        sessions.append(s)
    assert all(s["warm"] for s in sessions), sessions
    assert min(took) < 0.05, took
    r = await vm.send_prompt(sessions[0]["session_id"], "Write a summary to /home/user/w.txt: warm\nok")
    assert r["stop_reason"] == "stop" and r["tool_calls"] == ["write"]
    assert b"warm" in await vm.read_file("/home/user/w.txt")
    # the pool refills behind the two taken: two sessions plus two pooled agents
    await until(lambda: len(pi_processes()) == 4, awake=vm)
    statuses = {s["session_id"]: s["status"] for s in await vm.list_sessions()}
    assert statuses == {s["session_id"]: "ready" for s in sessions}


async def test_calls_the_pool_cannot_serve_go_cold(client: AsyncClient, llm: FakeLLM) -> None:
    vm = await configured(client, llm, "warm", "b")
    await vm.exists("/home/user")
    await until(lambda: len(pi_processes()) == 2, awake=vm)
    await idle(vm, 2.0)
    pooled = set(pi_processes())
    cold = [
        await vm.create_session("pi", env={"MY_TOKEN": "s3cret-value"}),
        await vm.create_session("pi", cwd="/tmp"),
        await vm.create_session("pi", additional_instructions="Answer briefly."),
    ]
    assert not any(s["warm"] for s in cold)
    for i, s in enumerate(cold):
        r = await vm.send_prompt(s["session_id"], f"Write a summary to /home/user/c{i}.txt: cold {i}")
        assert r["stop_reason"] == "stop", r
        assert f"cold {i}".encode() in await vm.read_file(f"/home/user/c{i}.txt")
    assert pooled <= set(pi_processes())  # the pool was left alone
    # config changed after the pooled agents started: they are stale and closed, not handed out;
    # the call gets an agent started after the change (one the pool was starting, or a cold one)
    settings = "/home/user/.pi/agent/settings.json"
    await vm.write_file(settings, (await vm.read_file(settings)).decode() + "\n")
    s = await vm.create_session("pi")
    await until(lambda: not pooled & set(pi_processes()), timeout=10.0, awake=vm)
    r = await vm.send_prompt(s["session_id"], "Write a summary to /home/user/c9.txt: after change")
    assert r["stop_reason"] == "stop"
    # and the refilled pool serves the next call
    await idle(vm, 4.0)
    s = await vm.create_session("pi")
    assert s["warm"]


async def test_a_pooled_agent_obeys_the_vm_policy(client: AsyncClient, llm: FakeLLM) -> None:
    vm = await configured(client, llm, "guarded", "g")
    await vm.exists("/home/user")
    await until(lambda: len(pi_processes()) == 1, awake=vm)
    await idle(vm, 2.0)
    s = await vm.create_session("pi")
    assert s["warm"], s
    r = await vm.send_prompt(s["session_id"], "Write a summary to /home/user/g.txt: must not land")
    assert r["stop_reason"] == "stop", r
    assert not await vm.exists("/home/user/g.txt")  # denied by the VM type's policy
    # a session with a policy of its own never takes a pooled agent (started under the VM's)
    own = await vm.create_session("pi", permissions=Permissions(rules=[], default="allow"))
    assert not own["warm"]
    r = await vm.send_prompt(own["session_id"], "Write a summary to /home/user/own.txt: allowed")
    assert r["stop_reason"] == "stop", r
    assert b"allowed" in await vm.read_file("/home/user/own.txt")


async def test_the_pool_keeps_within_the_vm_limits(client: AsyncClient, llm: FakeLLM) -> None:
    vm = await configured(client, llm, "tight", "c")
    await vm.exists("/home/user")
    await idle(vm, 8.0)  # time for the pool to fill as far as it may
    pooled = len(pi_processes())
    assert 1 <= pooled < 4, pooled
    # the caller's half is left: sessions beyond the pool still start and work
    s = await vm.create_session("pi", env={"X": "1"})
    r = await vm.send_prompt(s["session_id"], "Write a summary to /home/user/t.txt: fits")
    assert r["stop_reason"] == "stop"


async def test_vm_sleep_stops_the_pool(client: AsyncClient, llm: FakeLLM) -> None:
    vm = await configured(client, llm, "warm", "d")
    await vm.exists("/home/user")
    await until(lambda: len(pi_processes()) == 1, awake=vm)
    s = await vm.create_session("pi")  # waits for the pooled agent starting
    assert s["warm"]
    await until(lambda: len(pi_processes()) == 3, awake=vm)
    # idle past sleep_timeout: the VM sleeps with two pooled agents and a session
    await until(lambda: not pi_processes(), timeout=15.0)
    # the session outlives its process; it resumes cold on the next wake
    assert (await vm.list_sessions())[0]["status"] == "stopped"
    r = await vm.send_prompt(s["session_id"], "Write a summary to /home/user/d.txt: resumed")
    assert r["stop_reason"] == "stop"


def stub_processes() -> list[int]:
    mine = f"/actorq-{os.getpid()}-".encode()
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                cmd = (d / "cmdline").read_bytes().split(b"\0")
                if (
                    cmd[:2] == [b"python3", b"/home/user/acp_stub_agent.py"]
                    and mine in (d / "cgroup").read_bytes()
                ):
                    out.append(int(d.name))
            except OSError:
                continue
    return out


async def test_a_pooled_acp_agent_takes_instructions_with_its_first_prompt(client: AsyncClient) -> None:
    vm = client.acpwarm.get_or_create(["e"])
    await vm.write_file("/home/user/acp_stub_agent.py", STUB.read_bytes())
    await asyncio.sleep(2.5)  # that wake's pool found no agent to start; let the VM sleep
    await until(lambda: not stub_processes())
    await vm.exists("/home/user")
    await until(lambda: len(stub_processes()) == 1, awake=vm)
    await idle(vm, 1.0)
    s = await vm.create_session("stub", additional_instructions="Speak like a pirate.")
    assert s["warm"]
    r = await vm.send_prompt(s["session_id"], "hello")
    assert "Speak like a pirate." in r["text"] and "hello" in r["text"], r
    r = await vm.send_prompt(s["session_id"], "again")
    assert "pirate" not in r["text"]  # the first prompt only


async def test_a_call_with_mcp_servers_goes_cold_and_controls_work_on_a_pooled_session(
    client: AsyncClient,
) -> None:
    """A pooled agent was started without MCP servers: a call that brings some starts its own
    agent, which gets them; session controls work on the pooled session as on a cold one."""
    import json

    vm = client.acpwarm.get_or_create(["m"])
    await vm.write_file("/home/user/acp_stub_agent.py", STUB.read_bytes())
    await asyncio.sleep(2.5)  # that wake's pool found no agent to start; let the VM sleep
    await until(lambda: not stub_processes())
    await vm.exists("/home/user")
    await until(lambda: len(stub_processes()) == 1, awake=vm)
    await idle(vm, 1.0)
    servers = [{"name": "files", "command": "/usr/bin/mcp-files", "args": [], "env": {}}]
    s = await vm.create_session("stub", mcp_servers=servers)
    assert not s["warm"]
    log = (await vm.read_file("/home/user/.acp-stub-mcp.jsonl")).decode().splitlines()
    assert json.loads(log[-1])["mcpServers"][0]["name"] == "files"
    pooled = await vm.create_session("stub")
    assert pooled["warm"]
    modes = await vm.set_mode(pooled["session_id"], "code")
    assert modes.current_mode_id == "code"
    await vm.set_model(pooled["session_id"], "stub-large")
    r = await vm.send_prompt(pooled["session_id"], "STATE")
    assert "[mode=code model=stub-large]" in r.text, r
