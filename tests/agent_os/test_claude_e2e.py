"""Claude Code (claude-agent-acp, the pinned real package) end to end in a VM: through the ACP
driver, against the local fake Anthropic Messages API forwarded into the VM, it streams, calls
its Write tool, the file is in the VM, and the final text comes back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from actorq import setup
from actorq.agent_os import Network, agent_os, software
from actorq.agent_os.permissions import Permissions, ask
from actorq.client import AsyncClient, create_client
from actorq.server.serve import free_port
from actorq.testing.fake_anthropic import FakeAnthropic
from tests.conftest import LLM_PORT, ServerProcess

PORT = free_port()
# no way out but the fake: Claude Code reaches nothing beyond it, whatever it would try
registry = setup(
    use={
        "cvm": agent_os(
            software=[software.common, software.claude],
            network=Network(outbound=False, host_ports=[PORT]),
            sleep_timeout=30.0,
        )
    }
)


@pytest.fixture(autouse=True)
def _claude_installed() -> None:
    if not software.claude.installed():  # `make setup` installs it: a missing one is a failure
        pytest.fail("Claude Code is not installed: run `make setup` (or `actorq software install claude`)")


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[AsyncClient]:
    async with registry.test(storage=tmp_path / "data") as c:
        yield c


async def test_claude_code_writes_a_file_through_the_vm(client: AsyncClient) -> None:
    async with FakeAnthropic(port=PORT) as api:
        vm = client.cvm.get_or_create(["c"])
        session = await vm.create_session("claude", env=api.agent_env())
        assert session["agent_type"] == "claude"
        events: list[dict[str, Any]] = []
        async with await vm.connect() as conn:

            async def collect() -> None:
                async for ev in conn:
                    if ev.name == "session_event":
                        events.append(ev.data)

            task = asyncio.create_task(collect())
            r = await vm.send_prompt(
                session["session_id"], "Write a summary to /home/user/notes.txt: alpha\nbeta", timeout=120
            )
            await asyncio.sleep(0.3)
            task.cancel()
        assert r["stop_reason"] == "end_turn", r
        # Claude Code may put a notice of its own first (e.g. that a gateway, not Anthropic, answers)
        assert r["text"].strip().endswith("Done: the file is written."), r["text"]
        assert r["tool_calls"], r
        written = await vm.read_file("/home/user/notes.txt")
        assert b"Summary (stand-in model)" in written and b"first line: alpha" in written
        kinds = {e["type"] for e in events}
        assert "agent_message_chunk" in kinds and "tool_call" in kinds, kinds
        assert api.requests and all(b.get("stream") for b in api.requests)
        # the key reached Claude Code inside the VM only: never an event
        assert "sk-ant-fake-key-for-tests" not in repr(events)


def _tool_results(api: FakeAnthropic) -> list[dict[str, Any]]:
    """Every tool_result block Claude Code sent back to the model."""
    return [
        b
        for body in api.requests
        for m in body.get("messages") or []
        if isinstance(m, dict) and isinstance(m.get("content"), list)
        for b in m["content"]
        if isinstance(b, dict) and b.get("type") == "tool_result"
    ]


@pytest.mark.parametrize("decision", ["allow", "deny"])
async def test_claude_codes_write_is_held_for_approval(client: AsyncClient, decision: str) -> None:
    path = f"/home/user/held-{decision}.txt"
    async with FakeAnthropic(port=PORT) as api:
        vm = client.cvm.get_or_create([f"perm-{decision}"])
        session = await vm.create_session(
            "claude", env=api.agent_env(), permissions=Permissions(rules=[ask("edit")], timeout=120)
        )
        sid = session["session_id"]
        held: list[dict[str, Any]] = []
        async with await vm.connect() as conn:

            async def collect() -> None:
                async for ev in conn:
                    if ev.name == "permission_request":
                        held.append(ev.data)

            task = asyncio.create_task(collect())
            prompt = asyncio.create_task(
                vm.send_prompt(sid, f"Write a summary to {path}: alpha\nbeta", timeout=180)
            )
            async with asyncio.timeout(120):
                while not (pending := await vm.list_permission_requests(sid)) or not held:
                    assert not prompt.done(), prompt.result()
                    await asyncio.sleep(0.05)
            assert not await vm.exists(path)  # nothing written before the answer
            (req,) = pending
            assert held[0]["request_id"] == req.request_id and req.status == "pending"
            # an ACP agent's call is named by its kind; Claude Code's title names its tool
            assert req.kind == "edit" and req.tool == "edit" and req.paths == [path], req
            assert req.title.startswith("Write") and req.input["file_path"] == path, req
            answered = await vm.respond_permission(sid, req.request_id, decision)
            assert answered.status == ("allowed" if decision == "allow" else "denied")
            r = await prompt
            task.cancel()
        assert r["stop_reason"] == "end_turn", r
        assert await vm.list_permission_requests() == []
        results = _tool_results(api)
        assert len(results) == 1, results
        if decision == "allow":
            assert b"first line: alpha" in await vm.read_file(path)
            assert not results[0].get("is_error"), results
        else:
            assert not await vm.exists(path)
            # Claude Code tells the model the call was refused, as an error tool result
            assert results[0].get("is_error") is True, results
            assert "refused permission" in str(results[0].get("content")), results


async def test_claude_codes_held_write_survives_kill_9(
    server_factory: type[ServerProcess], data_dir: Path
) -> None:
    """The server dies while Claude Code's Write waits; after a restart the answer re-runs the
    prompt from Claude Code's own transcript and the stored answer lets the same Write through."""
    path = "/home/user/after-crash.txt"
    async with FakeAnthropic(port=LLM_PORT) as api:
        server = server_factory("tests.apps.vm_app:registry", data_dir).start()
        async with create_client(server.url) as c:
            vm = c.permclaude.get_or_create(["claude-crash"])
            sid = (await vm.create_session("claude", env=api.agent_env()))["session_id"]
            prompt = asyncio.create_task(vm.send_prompt(sid, f"Write a summary to {path}: kept\nsafe"))
            async with asyncio.timeout(120):
                while not (pending := await vm.list_permission_requests(sid)):
                    assert not prompt.done(), prompt.result()
                    await asyncio.sleep(0.05)
            server.kill9()
            with pytest.raises(Exception):  # noqa: B017 - the server died under the call
                await prompt
        (held,) = pending
        server = server_factory("tests.apps.vm_app:registry", data_dir).start()
        async with create_client(server.url) as c:
            vm = c.permclaude.get_or_create(["claude-crash"])
            (still,) = await vm.list_permission_requests()
            assert still.request_id == held.request_id and still.status == "pending"
            assert not await vm.exists(path)
            # the session's env (the key) lived in the dead server's memory only: give it again
            await vm.resume_session(sid, env=api.agent_env())
            resumed: list[dict[str, Any]] = []
            async with await vm.connect() as conn:

                async def collect() -> None:
                    async for ev in conn:
                        if ev.name == "permission_resumed":
                            resumed.append(ev.data)

                task = asyncio.create_task(collect())
                assert (await vm.respond_permission(sid, held.request_id, "allow")).status == "allowed"
                async with asyncio.timeout(180):
                    while not resumed:
                        await asyncio.sleep(0.1)
                task.cancel()
            (done,) = resumed
            assert done.get("stop_reason") == "end_turn", done
            assert done["text"].strip().endswith("Done: the file is written."), done
            assert b"first line: kept" in await vm.read_file(path)
            assert await vm.list_permission_requests() == []
        server.terminate()
