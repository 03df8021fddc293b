"""What survives: cron jobs keep firing after a restart (agentOS loses them), software is a small
declaration, and a machine without bubblewrap gets a clear typed error."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from pathlib import Path

import pytest

from actorq import ActorqError
from actorq.agent_os import SandboxUnavailable, npm_package, software
from actorq.agent_os.sandbox import Sandbox
from tests.apps.vm_app import registry


async def test_cron_jobs_survive_a_restart(tmp_path: Path) -> None:
    async with registry.test(storage=tmp_path / "data") as client:
        vm = client.vm.get_or_create(["cron-restart"])
        job = await vm.schedule_cron("* * * * * *", {"type": "exec", "command": "echo tick >> ticks"})
        await asyncio.sleep(1.5)
    # the server is gone: nothing fires; a new one on the same data directory fires the job again
    await asyncio.sleep(1.0)
    async with registry.test(storage=tmp_path / "data") as client:
        vm = client.vm.get_or_create(["cron-restart"])
        n_before = len((await vm.read_file("/home/user/ticks")).split())
        (listed,) = await vm.list_cron_jobs()
        assert listed["id"] == job["id"]
        deadline = time.monotonic() + 8
        while len((await vm.read_file("/home/user/ticks")).split()) < n_before + 2:
            assert time.monotonic() < deadline, "the cron job did not fire after the restart"
            await asyncio.sleep(0.2)
        # once per due time: the ticks are at least ~1 s apart, never doubled by re-arming on wake
        (listed,) = await vm.list_cron_jobs()
        assert listed["runs"] >= 2 and listed["last_result"]["exit_code"] == 0


def test_adding_software_is_one_declaration(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    again = npm_package("@mariozechner/pi-coding-agent", software.PI_VERSION, name="pi")
    # pi is that one declaration plus actorq's permission hook, mounted read-only beside it
    hooks = (str(software.PI_HOOKS_DIR), software.PI_HOOKS_VM_DIR)
    assert replace(again, mounts=(*again.mounts, hooks)) == software.pi
    lint = npm_package("eslint", "9.0.0")
    assert lint.mounts == (("$CACHE", "/opt/eslint"),) and lint.path == ("/opt/eslint/node_modules/.bin",)
    monkeypatch.setenv("ACTORQ_SOFTWARE", str(tmp_path / "empty-cache"))
    with pytest.raises(SandboxUnavailable, match="actorq software install eslint"):
        Sandbox.mounts([software.common, lint])


async def test_missing_bubblewrap_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap on PATH
    async with registry.test(storage=tmp_path / "data") as client:
        vm = client.offline.get_or_create(["no-bwrap"])
        with pytest.raises(SandboxUnavailable, match="apt-get install bubblewrap"):
            await vm.exec("true")


async def test_a_wake_that_fails_after_the_workspace_opened_leaves_nothing_running(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The core runs a VM's sleep only after a wake that succeeded: a wake failing late (here its
    cron jobs' re-arming) must itself close what it opened (the VM's host thread, namespaces and
    cgroups), and the next request wakes the VM afresh."""
    import hashlib
    import threading

    from actorq.agent_os.actions import cron

    real = cron.rearm

    async def broken(c: object) -> None:
        raise RuntimeError("cron re-arming failed")

    monkeypatch.setattr(cron, "rearm", broken)
    async with registry.test(storage=tmp_path / "data") as client:
        vm = client.vm.get_or_create(["late-failure"])
        actor_id = await vm.resolve()
        thread = "vm-vm-" + hashlib.blake2b(actor_id.encode(), digest_size=8).hexdigest()  # VMHost's
        for _ in range(2):
            with pytest.raises(ActorqError):
                await vm.exec("true")
            hosts = [t.name for t in threading.enumerate() if t.name == thread]
            assert not hosts, f"a failed wake left its host thread running: {hosts}"
        monkeypatch.setattr(cron, "rearm", real)
        assert (await vm.exec("echo ok"))["stdout"] == "ok\n"
