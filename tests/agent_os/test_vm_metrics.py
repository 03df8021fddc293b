"""The agent VM's series on ``/metrics`` (docs/observability.md): VMs awake, processes running,
sessions open, prompt durations by agent type, and kills by the limit that caused them (still
counted once the VM sleeps and its cgroups are gone).

The series are per process (other tests' VMs count in them too), so the test reads differences;
it runs its VMs alone, so the gauges move only by what it does."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from actorq import setup
from actorq.agent_os import Limits, acp_agent, agent_os, software

STUB = Path(__file__).with_name("acp_stub_agent.py")
HOG = "import sys; chunks = [bytearray(1 << 20) for _ in range(int(sys.argv[1]))]; print('allocated')"
FORKS = """
import subprocess
procs, failed = [], 0
for _ in range(60):
    try:
        procs.append(subprocess.Popen(["sleep", "30"]))
    except OSError:
        failed += 1
for p in procs:
    p.kill()
print(failed)
"""

registry = setup(
    use={
        "mvm": agent_os(
            software=[software.common],
            network=False,
            limits=Limits(memory_mb=64, pids=40, cpus=None, disk_mb=None),
            agents={"stub": acp_agent(["python3", "/home/user/acp_stub_agent.py"])},
            sleep_timeout=1.5,
        )
    }
)

Scrape = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str) -> Scrape:
    text = httpx.get(url + "/metrics", timeout=10).text
    assert "_created" not in text
    out: Scrape = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            assert not {"key", "actor_id"} & set(s.labels), s
            out[s.name, tuple(sorted(s.labels.items()))] = s.value
    return out


def value(m: Scrape, name: str, **labels: str) -> float:
    return m.get((name, tuple(sorted(labels.items()))), 0.0)


def delta(after: Scrape, before: Scrape, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


async def test_vm_figures_move_with_what_the_vm_runs(tmp_path: Path) -> None:
    async with registry.test(storage=tmp_path / "data") as client:
        before = await asyncio.to_thread(scrape, client.url)
        vm = client.mvm.get_or_create(["m"])
        assert (await vm.exec("true"))["exit_code"] == 0
        now = await asyncio.to_thread(scrape, client.url)
        assert delta(now, before, "actorq_vm_awake") == 1
        assert delta(now, before, "actorq_vm_processes") == 0, "the exec is over"

        sleeper = await vm.spawn("sleep", ["60"])
        await vm.write_file("/home/user/acp_stub_agent.py", STUB.read_bytes())
        session = await vm.create_session("stub")
        now = await asyncio.to_thread(scrape, client.url)
        assert delta(now, before, "actorq_vm_processes") == 1, "the spawned sleep"
        assert delta(now, before, "actorq_vm_sessions") == 1
        started = time.monotonic()
        await vm.send_prompt(session["session_id"], "write hello to /home/user/hello.txt")
        took = time.monotonic() - started
        await vm.kill_process(sleeper["pid"])
        assert await vm.wait_process(sleeper["pid"], timeout=10) == 137

        timed_out = await vm.exec("sleep 30", timeout=0.3)
        assert timed_out["timed_out"]
        await vm.write_file("/home/user/hog.py", HOG.encode())
        hog = await vm.exec("python3 /home/user/hog.py 200", timeout=60)
        assert "allocated" not in hog["stdout"], hog
        await vm.write_file("/home/user/forks.py", FORKS.encode())
        forks = await vm.exec("python3 /home/user/forks.py", timeout=60)
        assert int(forks["stdout"]) > 0, forks
        await vm.close_session(session["session_id"])
        after = await asyncio.to_thread(scrape, client.url)

        assert delta(after, before, "actorq_vm_processes") == 0
        assert delta(after, before, "actorq_vm_sessions") == 0
        prompt = {"agent": "stub"}
        assert delta(after, before, "actorq_vm_prompt_seconds_count", **prompt) == 1
        assert 0 < delta(after, before, "actorq_vm_prompt_seconds_sum", **prompt) <= took
        assert delta(after, before, "actorq_vm_limit_kills_total", limit="time") == 1
        assert delta(after, before, "actorq_vm_limit_kills_total", limit="memory") >= 1, hog
        assert delta(after, before, "actorq_vm_limit_kills_total", limit="disk") == 0
        assert delta(after, before, "actorq_vm_forks_refused_total") >= int(forks["stdout"])
        # the VM action calls are counted like any actor's
        assert delta(after, before, "actorq_actions_total", actor="mvm", action="exec", outcome="ok") == 4

        deadline = time.monotonic() + 20
        while delta(slept := await asyncio.to_thread(scrape, client.url), before, "actorq_vm_awake"):
            assert time.monotonic() < deadline, "the VM did not go to sleep"
            await asyncio.sleep(0.2)
        kills = "actorq_vm_limit_kills_total"
        assert value(slept, kills, limit="memory") == value(after, kills, limit="memory"), "kept"


async def test_processes_stopped_over_the_disk_cap_are_counted(tmp_path: Path) -> None:
    limits = Limits(disk_mb=16)
    capped = setup(use={"dvm": agent_os(software=[software.common], network=False, limits=limits)})
    async with capped.test(storage=tmp_path / "data") as client:
        before = await asyncio.to_thread(scrape, client.url)
        vm = client.dvm.get_or_create(["d"])
        sleeper = await vm.spawn("sleep", ["60"])
        r = await vm.exec("head -c 10M /dev/zero > a && head -c 10M /dev/zero > b")  # each under the cap
        assert r["exit_code"] == 0, r
        assert await vm.wait_process(sleeper["pid"], timeout=20) == 137, "stopped: the home is over its cap"
        after = await asyncio.to_thread(scrape, client.url)
        assert delta(after, before, "actorq_vm_limit_kills_total", limit="disk") == 1, "the sleeper"
        assert delta(after, before, "actorq_vm_processes") == 0
