"""The ACP driver against a real ACP agent process (acp_stub_agent.py) inside a real bubblewrap sandbox."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from actorq.agent_os import software
from actorq.agent_os.agents.acp import AcpDriver, acp_agent
from actorq.agent_os.agents.base import DriverOptions
from actorq.agent_os.process import VMProcess
from actorq.agent_os.sandbox import HOME
from actorq.agent_os.workspace import Workspace
from actorq.errors import PromptFailed, SandboxUnavailable, SessionClosed
from tests.agent_os.conftest import open_workspace

STUB = Path(__file__).with_name("acp_stub_agent.py")
STUB_CMD = ["python3", f"{HOME}/acp_stub_agent.py"]

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")


@pytest.fixture
async def ws(tmp_path: Path) -> AsyncIterator[Workspace]:
    async with open_workspace(tmp_path, [software.common]) as w:
        await w.files.write_file(f"{HOME}/acp_stub_agent.py", STUB.read_bytes())
        yield w


class Harness:
    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.home = ws.host.home_on_disk
        self.events: list[dict[str, Any]] = []
        self.drivers: list[AcpDriver] = []

    async def launcher(self, argv: list[str], *, cwd: str, env: Mapping[str, str]) -> VMProcess:
        return await self.ws.sandbox.launch(argv, cwd=cwd, env=env)

    def emit(self, name: str, data: Any) -> None:
        assert name == "session_event"
        self.events.append(data)

    def opts(self, **kw: Any) -> DriverOptions:
        base: dict[str, Any] = dict(
            session_id="s1",
            env={"STUB_SECRET": "hunter2"},
            cwd=HOME,
            additional_instructions=None,
            launcher=self.launcher,
            emit=self.emit,
        )
        base.update(kw)
        return DriverOptions(**base)

    async def start(self, command: list[str] | None = None, *, fs: bool = True, **kw: Any) -> AcpDriver:
        d = AcpDriver(self.opts(**kw), command or STUB_CMD, fs=self.ws.files if fs else None)
        self.drivers.append(d)
        await d.start()
        return d

    def types(self) -> list[str]:
        return [e["type"] for e in self.events]


@pytest.fixture
async def h(ws: Workspace) -> AsyncIterator[Harness]:
    harness = Harness(ws)
    yield harness
    for d in harness.drivers:
        await d.close()


async def test_prompt_streams_text_and_events_and_writes_through_fs(h: Harness) -> None:
    d = await h.start()
    assert d.agent_type == "acp"
    assert d.transcript is not None and d.transcript.startswith("stub-")
    result = await d.prompt("please write hello world to /home/user/out/hello.txt", timeout=30)
    assert result.stop_reason == "end_turn"
    assert result.text.startswith("Hello from stub. You said: please write")
    assert "wrote /home/user/out/hello.txt" in result.text
    assert (h.home / "out" / "hello.txt").read_text() == "hello world"
    assert result.tool_calls == ["Write /home/user/out/hello.txt"]
    assert result.events >= 5
    types = h.types()
    for kind in ("agent_message_chunk", "tool_call", "permission", "tool_call_update", "stop"):
        assert kind in types, types
    assert all(e["session_id"] == "s1" for e in h.events)
    assert {
        "type": "permission",
        "session_id": "s1",
        "tool_call_id": h.events[3]["tool_call_id"],
        "option": "yes",
    } in h.events
    assert h.events[-1] == {"session_id": "s1", "type": "stop", "stop_reason": "end_turn"}
    assert not any("hunter2" in str(e) for e in h.events)


async def test_env_secrets_are_masked_in_events_and_errors(h: Harness) -> None:
    d = await h.start()
    result = await d.prompt("the secret is hunter2", timeout=30)
    assert result.text.endswith("the secret is hunter2")  # the caller's own result is not rewritten
    assert h.events and not any("hunter2" in str(e) for e in h.events)
    assert any("the secret is ***" in str(e.get("text")) for e in h.events)
    with pytest.raises(PromptFailed) as info:
        await d.prompt("FAIL with hunter2", timeout=30)
    assert "stub failure requested: FAIL with ***" in info.value.message


async def test_read_text_file_goes_through_fs(h: Harness) -> None:
    await h.ws.files.write_file("/home/user/notes.txt", "remember the milk")
    d = await h.start()
    result = await d.prompt("read /home/user/notes.txt", timeout=30)
    assert "read: remember the milk" in result.text
    missing = await d.prompt("read /home/user/nope.txt", timeout=30)
    assert "read failed" in missing.text and "-32002" in missing.text


OUTSIDE = ["/home/user/../escape.txt", "/etc/escape.txt", "/home/user/link/escape.txt"]


@pytest.mark.parametrize("path", OUTSIDE)
async def test_write_outside_the_vm_is_refused(h: Harness, tmp_path: Path, path: str) -> None:
    await h.ws.files.write_file("/home/user/.keep", "")
    (h.home / "link").symlink_to("/root/escape-dir")  # a symlink pointing out of the VM's files
    d = await h.start()
    result = await d.prompt(f"write pwned to {path}", timeout=30)
    assert result.stop_reason == "end_turn"
    assert "write failed" in result.text and "outside the VM" in result.text
    assert not await asyncio.to_thread(lambda: list(tmp_path.rglob("escape.txt")))
    assert [e["status"] for e in h.events if e["type"] == "tool_call_update"] == ["failed"]


async def test_without_fs_the_capability_is_not_offered(h: Harness) -> None:
    d = await h.start(fs=False)
    result = await d.prompt("write x to /home/user/x.txt", timeout=30)
    assert "write failed" in result.text and "Method not found" in result.text
    assert not (h.home / "x.txt").exists()


async def test_agent_error_is_prompt_failed_and_the_session_survives(h: Harness) -> None:
    d = await h.start()
    with pytest.raises(PromptFailed) as info:
        await d.prompt("please FAIL", timeout=30)
    assert "stub failure requested" in info.value.message
    assert info.value.details["code"] == -32603
    again = await d.prompt("hello", timeout=30)
    assert again.stop_reason == "end_turn"


async def test_cancel_stops_a_slow_prompt(h: Harness) -> None:
    d = await h.start()
    task = asyncio.create_task(d.prompt("be SLOW", None))
    for _ in range(500):
        if "agent_message_chunk" in h.types():
            break
        await asyncio.sleep(0.01)
    await d.cancel()
    result = await asyncio.wait_for(task, 10)
    assert result.stop_reason == "cancelled"
    assert (await d.prompt("hello", timeout=30)).stop_reason == "end_turn"


async def test_timeout_cancels_and_fails(h: Harness) -> None:
    d = await h.start()
    with pytest.raises(PromptFailed) as info:
        await d.prompt("be SLOW", timeout=0.5)
    assert info.value.details == {"reason": "timeout"}
    # the agent got session/cancel, so it is idle and takes the next prompt
    assert (await d.prompt("hello", timeout=30)).stop_reason == "end_turn"


async def test_agent_exiting_mid_prompt_is_prompt_failed(h: Harness) -> None:
    d = await h.start()
    with pytest.raises(PromptFailed) as info:
        await d.prompt("EXIT now", timeout=30)
    assert "exited with code 3" in info.value.message
    assert info.value.details["exit_code"] == 3


async def test_close_is_idempotent_and_ends_the_process(h: Harness) -> None:
    d = await h.start()
    proc = d._proc
    assert proc is not None
    await d.close()
    await d.close()
    assert proc.returncode is not None
    with pytest.raises(SessionClosed):
        await d.prompt("hello", timeout=5)
    await d.cancel()  # a no-op once closed


async def test_close_during_a_prompt_is_session_closed(h: Harness) -> None:
    d = await h.start()
    task = asyncio.create_task(d.prompt("be SLOW", None))
    await asyncio.sleep(0.3)
    await d.close()
    with pytest.raises(SessionClosed):
        await asyncio.wait_for(task, 10)


async def test_bad_command_fails_clearly(h: Harness) -> None:
    with pytest.raises((PromptFailed, SandboxUnavailable)) as info:
        await h.start(["/no/such/acp-agent"])
    assert "/no/such/acp-agent" in info.value.message
    assert "No such file" in info.value.message
    assert "hunter2" not in info.value.message


async def test_not_an_acp_agent_times_out_at_start(h: Harness) -> None:
    d = AcpDriver(h.opts(), ["sleep", "30"], start_timeout=0.5)
    h.drivers.append(d)
    with pytest.raises(PromptFailed) as info:
        await d.start()
    assert info.value.details == {"reason": "timeout"}
    assert d._proc is not None and d._proc.returncode is not None


async def test_additional_instructions_prefix_only_the_first_prompt(h: Harness) -> None:
    d = await h.start(additional_instructions="Always be brief.")
    first = await d.prompt("hi", timeout=30)
    assert "You said: Always be brief.\n\nhi" in first.text
    second = await d.prompt("again", timeout=30)
    assert "Always be brief." not in second.text


async def test_resume_loads_the_previous_acp_session(h: Harness) -> None:
    d1 = await h.start()
    sid = d1.transcript
    assert sid is not None
    await d1.close()
    d2 = await h.start(resume_from=sid, additional_instructions="not again")
    assert d2.transcript == sid
    result = await d2.prompt("hello", timeout=30)
    assert "not again" not in result.text

    d3 = await h.start(resume_from="stub-unknown")
    assert d3.transcript not in (None, "stub-unknown")
    assert any(e["type"] == "resume_failed" for e in h.events)


async def test_acp_agent_declaration(h: Harness) -> None:
    spec = acp_agent(STUB_CMD, name="stub")
    assert spec.agent_type == "stub" and spec.command == tuple(STUB_CMD)
    d = spec.driver(h.opts(), fs=h.ws.files)
    h.drivers.append(d)
    assert d.agent_type == "stub"
    await d.start()
    assert (await d.prompt("hi", timeout=30)).text.endswith("You said: hi")
    with pytest.raises(ValueError):
        acp_agent([])
    with pytest.raises(ValueError):
        acp_agent("claude-code-acp")  # type: ignore[arg-type]
