"""The pi driver against the REAL pi binary in a real sandbox, talking to the fake LLM on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from actorq.agent_os import software
from actorq.agent_os.agents.base import DriverOptions
from actorq.agent_os.agents.pi import PiDriver
from actorq.agent_os.fake_llm import FakeLLM, Reply, pi_agent_files, stand_in_reply, summarize
from actorq.agent_os.limits import Network
from actorq.agent_os.process import VMProcess
from actorq.agent_os.sandbox import HOME, kill_tree
from actorq.agent_os.workspace import Workspace
from actorq.errors import PromptFailed, SessionClosed
from actorq.server.serve import free_port
from tests.agent_os.conftest import open_workspace

pytestmark = [
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed"),
    pytest.mark.skipif(
        not software.pi.installed(), reason="pi is not installed (actorq software install pi)"
    ),
]

CODE = """import os

def load(path):
    return open(path).read()

class Reviewer:
    def run(self):
        pass
"""
REVIEW_PROMPT = f"Please write a summary to /home/user/review.txt:\n{CODE}"


@pytest.fixture
async def llm() -> AsyncIterator[FakeLLM]:
    async with FakeLLM() as server:
        yield server


@pytest.fixture
async def ws(tmp_path: Path, llm: FakeLLM) -> AsyncIterator[Workspace]:
    # no outbound network: the VM reaches only the fake LLM's port, forwarded to its 127.0.0.1
    net = Network(outbound=False, host_ports=[llm.port])
    async with open_workspace(tmp_path, [software.common, software.pi], network=net) as w:
        yield w


class Harness:
    """Builds drivers for one VM and records what they broadcast."""

    def __init__(self, ws: Workspace, llm: FakeLLM) -> None:
        self.ws = ws
        self.home = ws.host.home_on_disk
        self.llm = llm
        self.events: list[dict[str, Any]] = []
        self.drivers: list[PiDriver] = []

    async def configure(self, *, retries: int = 0) -> None:
        for rel, text in pi_agent_files(self.llm.url, retries=retries).items():
            await self.ws.files.write_file(f"/home/user/{rel}", text)

    async def launch(self, argv: list[str], *, cwd: str, env: Mapping[str, str]) -> VMProcess:
        return await self.ws.sandbox.launch(argv, cwd=cwd, env=env)

    def emit(self, name: str, data: Any) -> None:
        assert name == "session_event"
        self.events.append(data)

    async def driver(
        self,
        *,
        env: Mapping[str, str] | None = None,
        instructions: str | None = None,
        resume_from: str | None = None,
    ) -> PiDriver:
        opts = DriverOptions(
            session_id="s1",
            env=dict(env or {}),
            cwd=HOME,
            additional_instructions=instructions,
            launcher=self.launch,
            emit=self.emit,
            resume_from=resume_from,
        )
        d = PiDriver(opts)
        self.drivers.append(d)
        await d.start()
        return d

    def host_path(self, vm_path: str) -> Path:
        return self.home / Path(vm_path).relative_to(HOME)

    def types(self) -> list[str]:
        return [e["type"] for e in self.events]


@pytest.fixture
async def h(ws: Workspace, llm: FakeLLM) -> AsyncIterator[Harness]:
    harness = Harness(ws, llm)
    await harness.configure()
    yield harness
    for d in harness.drivers:
        await d.close()


async def wait_for_requests(llm: FakeLLM, n: int, timeout: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while len(llm.requests) < n:
        assert loop.time() < deadline, f"the LLM got {len(llm.requests)} requests, expected {n}"
        await asyncio.sleep(0.02)


def roles(request: dict[str, Any]) -> list[str]:
    return [m["role"] for m in request["messages"]]


def all_text(request: dict[str, Any]) -> str:
    return json.dumps(request["messages"])


# --- (a) the whole chain: prompt -> tool call -> file in the VM -> final answer -------------------


async def test_prompt_writes_file_through_tool_call(h: Harness) -> None:
    d = await h.driver()
    assert d.transcript is not None and d.transcript.startswith("/home/user/.pi/agent/sessions/")

    result = await d.prompt(REVIEW_PROMPT, timeout=60)

    review = (h.home / "review.txt").read_text()
    assert "lines: 8" in review
    assert "definitions: load, Reviewer, run" in review
    assert "first line: import os" in review

    assert result.stop_reason == "stop"
    assert result.text.startswith("Done: the tool finished")
    assert result.tool_calls == ["write"]
    assert result.events == len(h.events) > 5

    # the LLM saw our model, the user prompt, then (second call) the tool's result
    first, second = h.llm.requests
    assert first["model"] == second["model"] == "stand-in"
    assert first["stream"] is True
    assert roles(first) == ["system", "user"]
    assert "write" in [t["function"]["name"] for t in first["tools"]]
    assert roles(second)[-2:] == ["assistant", "tool"]
    assert "Successfully wrote" in second["messages"][-1]["content"]

    types = h.types()
    assert types[0] == "agent_start" and types[-1] == "agent_end"
    assert all(e["session_id"] == "s1" for e in h.events)
    start = next(e for e in h.events if e["type"] == "tool_execution_start")
    assert start["tool"] == "write" and start["args"]["path"] == "/home/user/review.txt"
    end = next(e for e in h.events if e["type"] == "tool_execution_end")
    assert end["is_error"] is False and "Successfully wrote" in end["result"]
    deltas = "".join(e["delta"] for e in h.events if e.get("update") == "text_delta")
    assert deltas == result.text
    final = [e for e in h.events if e["type"] == "message_end" and e["role"] == "assistant"]
    assert [e["stop_reason"] for e in final] == ["toolUse", "stop"]

    # pi persisted the conversation where the driver says
    assert h.host_path(d.transcript).is_file()


# --- (b) LLM failures are PromptFailed with the agent's message; the session survives ---------


async def test_http_500_fails_prompt_then_driver_recovers(h: Harness) -> None:
    d = await h.driver()
    h.llm.script([Reply.error(500, "upstream exploded")])
    with pytest.raises(PromptFailed) as err:
        await d.prompt("hello there", timeout=60)
    assert "500" in err.value.message and "upstream exploded" in err.value.message
    assert err.value.details["reason"] == "agent_error"
    assert any(e.get("stop_reason") == "error" for e in h.events)

    result = await d.prompt("hello again", timeout=60)
    assert result.stop_reason == "stop" and result.text.startswith("Stand-in model here")


async def test_malformed_stream_fails_prompt_then_new_driver_works(h: Harness) -> None:
    d = await h.driver()
    h.llm.script([Reply.malformed()])
    with pytest.raises(PromptFailed) as err:
        await d.prompt("hello there", timeout=60)
    assert err.value.message  # the agent's own words, never an empty success
    await d.close()

    d2 = await h.driver()
    result = await d2.prompt("hello again", timeout=60)
    assert result.stop_reason == "stop" and result.text


async def test_pi_auto_retry_is_followed_to_the_end(h: Harness) -> None:
    await h.configure(retries=1)
    d = await h.driver()
    h.llm.script([Reply.error(503, "try later"), "recovered answer"])
    result = await d.prompt("hello", timeout=60)
    assert result.text == "recovered answer"
    assert "auto_retry_start" in h.types()
    assert len(h.llm.requests) == 2


async def test_agent_process_exit_is_prompt_failed(h: Harness) -> None:
    d = await h.driver()
    assert d._proc is not None
    kill_tree(d._proc)
    await d._proc.wait()
    with pytest.raises(PromptFailed) as err:
        await d.prompt("anyone there?", timeout=30)
    assert "pi exited" in err.value.message
    assert err.value.details["reason"] == "agent_exited"


async def test_start_failure_carries_the_agents_stderr(h: Harness) -> None:
    with pytest.raises(PromptFailed) as err:
        await h.driver(env={"NODE_OPTIONS": "--no-such-node-flag"})
    assert err.value.message.startswith("pi did not start: pi exited")
    assert "is not allowed in NODE_OPTIONS" in err.value.message
    # env values are masked even in the agent's own words
    assert "--no-such-node-flag" not in err.value.message and "***" in err.value.message


async def test_no_model_configured_is_prompt_failed(h: Harness) -> None:
    shutil.rmtree(h.home / ".pi")
    d = await h.driver()
    with pytest.raises(PromptFailed) as err:
        await d.prompt("hello", timeout=30)
    assert err.value.message
    assert h.llm.requests == []


# --- (c) cancel and timeout --------------------------------------------------------------------


async def test_cancel_mid_prompt_returns_aborted(h: Harness) -> None:
    d = await h.driver()
    h.llm.script([Reply.text("far too slow", delay=60)])
    task = asyncio.create_task(d.prompt("take your time", timeout=120))
    await wait_for_requests(h.llm, 1)
    await d.cancel()
    result = await asyncio.wait_for(task, 20)
    assert result.stop_reason == "aborted"
    assert "far too slow" not in result.text

    after = await d.prompt("still there?", timeout=60)
    assert after.stop_reason == "stop" and after.text.startswith("Stand-in model here")


async def test_timeout_aborts_and_raises(h: Harness) -> None:
    d = await h.driver()
    h.llm.script([Reply.text("far too slow", delay=60)])
    with pytest.raises(PromptFailed) as err:
        await d.prompt("take your time", timeout=2)
    assert err.value.details["reason"] == "timeout"

    after = await d.prompt("still there?", timeout=60)
    assert after.stop_reason == "stop"


async def test_caller_giving_up_aborts_pi_and_next_prompt_works(h: Harness) -> None:
    d = await h.driver()
    h.llm.script([Reply.text("far too slow", delay=60)])
    task = asyncio.create_task(d.prompt("take your time", timeout=None))
    await wait_for_requests(h.llm, 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    after = await d.prompt("still there?", timeout=60)
    assert after.stop_reason == "stop" and after.text.startswith("Stand-in model here")
    assert "aborted" in [e.get("stop_reason") for e in h.events]


# --- (d) resume from the transcript ------------------------------------------------------------


async def test_resume_from_transcript_continues_the_conversation(h: Harness) -> None:
    d = await h.driver()
    await d.prompt("Remember the word pelican.", timeout=60)
    transcript = d.transcript
    assert transcript is not None
    await d.close()
    await d.close()  # idempotent
    with pytest.raises(SessionClosed):
        await d.prompt("too late", timeout=5)

    d2 = await h.driver(resume_from=transcript)
    assert d2.transcript == transcript
    await d2.prompt("Which word did I ask you to remember?", timeout=60)
    last = h.llm.requests[-1]
    assert "pelican" in all_text(last)
    assert roles(last) == ["system", "user", "assistant", "user"]


# --- (e) additional instructions reach the system prompt ------------------------------------


async def test_additional_instructions_reach_system_prompt(h: Harness) -> None:
    d = await h.driver(instructions="Always sign your answers as REVIEWER-7.")
    await d.prompt("hi", timeout=60)
    system = h.llm.requests[0]["messages"][0]
    assert system["role"] == "system"
    assert "Always sign your answers as REVIEWER-7." in system["content"]


# --- (f) secrets in env never land on disk or in events -----------------------------------------


async def test_env_secret_is_not_written_anywhere(h: Harness) -> None:
    secret = "sk-secret-123"
    d = await h.driver(env={"ANTHROPIC_API_KEY": secret})
    await d.prompt(REVIEW_PROMPT, timeout=60)
    assert (h.home / "review.txt").exists()
    await d.close()

    leaks = [p for p in h.home.parent.parent.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]
    assert leaks == []
    assert secret not in json.dumps(h.events)
    assert secret not in json.dumps(h.llm.requests)


# --- the fake LLM on its own --------------------------------------------------------------------


def test_stand_in_model_is_deterministic() -> None:
    messages = [{"role": "user", "content": REVIEW_PROMPT}]
    reply = stand_in_reply(messages)
    assert reply == stand_in_reply(messages)
    assert reply.kind == "tool_call" and reply.tool == "write"
    assert reply.arguments["path"] == "/home/user/review.txt"
    assert reply.arguments["content"] == summarize(CODE)
    after_tool = [*messages, {"role": "assistant", "content": None}, {"role": "tool", "content": "ok"}]
    assert stand_in_reply(after_tool).kind == "text"
    assert stand_in_reply([{"role": "user", "content": "hi"}]).kind == "text"


async def test_fake_llm_speaks_openai_sse() -> None:
    async with FakeLLM() as llm, httpx.AsyncClient() as client:
        models = (await client.get(f"{llm.url}/models")).json()
        assert [m["id"] for m in models["data"]] == ["stand-in"]
        llm.script([Reply.error(503, "busy"), "scripted"])
        body = {"model": "stand-in", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
        failed = await client.post(f"{llm.url}/chat/completions", json=body)
        assert failed.status_code == 503 and failed.json()["error"]["message"] == "busy"
        ok = await client.post(f"{llm.url}/chat/completions", json=body)
        lines = [ln[len("data: ") :] for ln in ok.text.splitlines() if ln.startswith("data: ")]
        assert lines[-1] == "[DONE]"
        chunks = [json.loads(ln) for ln in lines[:-1]]
        assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
        assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == "scripted"
        assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
        assert len(llm.requests) == 2 and llm.pending == 0


def test_fake_llm_runs_as_a_module() -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "actorq.agent_os.fake_llm", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        assert proc.stdout is not None
        assert f"127.0.0.1:{port}/v1" in proc.stdout.readline().decode()
        models = httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=5).json()
        assert models["data"][0]["id"] == "stand-in"
    finally:
        proc.terminate()
        proc.wait(10)
