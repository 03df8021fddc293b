"""Agent sessions through the VM actor and the HTTP client: pi and an ACP agent, events broadcast
to connected clients, and each bad input a typed error after which the VM keeps serving."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from actorq import NotFound, ValidationError
from actorq.agent_os import PromptFailed, SessionClosed
from actorq.agent_os.fake_llm import FakeLLM, Reply, pi_agent_files
from actorq.client import AsyncClient
from tests.apps.vm_app import registry

STUB = Path(__file__).with_name("acp_stub_agent.py")


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[AsyncClient]:
    async with registry.test(storage=tmp_path / "data") as c:
        yield c


async def pi_vm(client: AsyncClient, llm: FakeLLM, key: str) -> Any:
    vm = client.vm.get_or_create([key])
    for path, text in pi_agent_files(llm.url).items():
        await vm.write_file(f"/home/user/{path}", text)
    return vm


async def test_pi_session_events_reach_connected_clients(client: AsyncClient, llm: FakeLLM) -> None:
    vm = await pi_vm(client, llm, "events")
    session = await vm.create_session("pi", additional_instructions="Be brief.")
    events: list[tuple[str, Any]] = []
    async with await vm.connect() as conn:

        async def collect() -> None:
            async for ev in conn:
                events.append((ev.name, ev.data))

        task = asyncio.create_task(collect())
        r = await vm.send_prompt(session["session_id"], "Write a summary to /home/user/s.txt: a\nb")
        await asyncio.sleep(0.2)
        task.cancel()
    assert r["stop_reason"] == "stop" and r["tool_calls"] == ["write"]
    kinds = [d["type"] for n, d in events if n == "session_event"]
    assert "agent_start" in kinds and "tool_execution_start" in kinds and "agent_end" in kinds
    assert all(d["session_id"] == session["session_id"] for n, d in events if n == "session_event")
    assert (await vm.list_sessions())[0]["status"] == "ready"


async def test_bad_session_inputs_are_typed_errors(client: AsyncClient, llm: FakeLLM) -> None:
    vm = await pi_vm(client, llm, "bad")
    with pytest.raises(NotFound):
        await vm.create_session("no-such-agent")
    with pytest.raises(NotFound):
        await vm.send_prompt("ses_nope", "hi")
    with pytest.raises(ValidationError):
        await vm.create_session("pi", env={"KEY": 5})
    assert await vm.list_sessions() == []
    session = await vm.create_session("pi")
    sid = session["session_id"]
    llm.script([Reply.error(500, "upstream exploded")])
    with pytest.raises(PromptFailed, match="upstream exploded"):
        await vm.send_prompt(sid, "hello")
    llm.script([Reply.malformed()])
    with pytest.raises(PromptFailed):
        await vm.send_prompt(sid, "hello again")
    r = await vm.send_prompt(sid, "Write a summary to /home/user/ok.txt: still works")
    assert r["stop_reason"] == "stop" and await vm.exists("/home/user/ok.txt")
    await vm.close_session(sid)
    with pytest.raises(SessionClosed):
        await vm.send_prompt(sid, "after close")
    assert (await vm.list_sessions())[0]["status"] == "closed"
    assert (await vm.exec("echo alive"))["stdout"] == "alive\n"  # the VM keeps serving


async def test_an_acp_agent_works_through_the_vm(client: AsyncClient) -> None:
    vm = client.acpvm.get_or_create(["acp"])
    await vm.write_file("/home/user/acp_stub_agent.py", STUB.read_bytes())
    session = await vm.create_session("stub")
    r = await vm.send_prompt(session["session_id"], "write hello acp to /home/user/from-acp.txt")
    assert r["stop_reason"] == "end_turn"
    assert await vm.read_file("/home/user/from-acp.txt") == b"hello acp"
    r = await vm.send_prompt(session["session_id"], "write nope to /etc/evil")
    assert "write failed" in r["text"]  # refused by the VM's path resolution
    with pytest.raises(PromptFailed):
        await vm.send_prompt(session["session_id"], "FAIL")
