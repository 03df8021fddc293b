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
from actorq.client import AsyncClient
from actorq.server.serve import free_port
from actorq.testing.fake_anthropic import FakeAnthropic

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
