"""Agent session controls through the VM actor and the HTTP client: modes, models and config
options (the ACP stub agent and the real pi against the fake LLM), MCP servers per session, token
usage per prompt (result and metrics), and each bad input a typed error that changes nothing."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from actorq import BadRequest, NotFound, ValidationError
from actorq.agent_os import Unsupported
from actorq.agent_os.fake_llm import FakeLLM, pi_agent_files
from actorq.client import AsyncClient
from actorq.core import METRICS_REGISTRY
from actorq.testing.fake_llm import PROVIDER
from tests.apps.vm_app import registry

STUB = Path(__file__).with_name("acp_stub_agent.py")
MCP_LOG = "/home/user/.acp-stub-mcp.jsonl"


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[AsyncClient]:
    async with registry.test(storage=tmp_path / "data") as c:
        yield c


async def acp_vm(client: AsyncClient, key: str) -> Any:
    vm = client.acpvm.get_or_create([key])
    await vm.write_file("/home/user/acp_stub_agent.py", STUB.read_bytes())
    return vm


def tokens(agent: str, kind: str) -> float:
    return (
        METRICS_REGISTRY.get_sample_value("actorq_vm_prompt_tokens_total", {"agent": agent, "kind": kind})
        or 0.0
    )


async def test_acp_modes_models_and_usage(client: AsyncClient) -> None:
    vm = await acp_vm(client, "controls")
    sid = (await vm.create_session("stub")).session_id
    modes = await vm.get_modes(sid)
    assert modes.current_mode_id == "ask"
    assert [m["id"] for m in modes.available_modes] == ["ask", "code"]
    options = await vm.get_config_options(sid)
    assert [(o["id"], o["category"], o["currentValue"]) for o in options] == [
        ("model", "model", "stub-small")
    ]

    before = tokens("stub", "input"), tokens("stub", "cache_read")
    r = await vm.send_prompt(sid, "hello STATE")
    assert r.text.endswith("[mode=ask model=stub-small]")
    assert r.usage == {"input": 20, "output": 10, "cache_read": 5, "cache_write": 0, "total": 35}
    assert (tokens("stub", "input"), tokens("stub", "cache_read")) == (before[0] + 20, before[1] + 5)

    assert (await vm.set_mode(sid, "code")).current_mode_id == "code"
    after = await vm.set_model(sid, "stub-large")
    assert after[0]["currentValue"] == "stub-large"
    r = await vm.send_prompt(sid, "again STATE")
    assert r.text.endswith("[mode=code model=stub-large]")  # the agent itself switched
    assert (await vm.get_modes(sid)).current_mode_id == "code"

    # bad input: typed, and the session keeps what it had
    with pytest.raises(NotFound):
        await vm.set_mode(sid, "no-such-mode")
    with pytest.raises(BadRequest):
        await vm.set_model(sid, "no-such-model")
    with pytest.raises(BadRequest):
        await vm.set_mode(sid, "")
    with pytest.raises(NotFound):
        await vm.set_config_option(sid, "no-such-option", "x")
    with pytest.raises(BadRequest):
        await vm.set_config_option(sid, "model", True)
    with pytest.raises(NotFound):
        await vm.get_modes("ses_nope")
    assert (await vm.get_modes(sid)).current_mode_id == "code"
    assert (await vm.get_config_options(sid))[0]["currentValue"] == "stub-large"
    r = await vm.send_prompt(sid, "still STATE")
    assert r.text.endswith("[mode=code model=stub-large]")


async def test_an_agent_without_controls_answers_unsupported(client: AsyncClient) -> None:
    vm = await acp_vm(client, "plain")
    sid = (await vm.create_session("stub", env={"STUB_PLAIN": "1"})).session_id
    for call in (
        vm.get_modes(sid),
        vm.set_mode(sid, "code"),
        vm.get_config_options(sid),
        vm.set_model(sid, "stub-large"),
    ):
        with pytest.raises(Unsupported) as exc:
            await call
        assert exc.value.code == "unsupported" and exc.value.status == 501
    r = await vm.send_prompt(sid, "hello STATE")
    assert r.stop_reason == "end_turn" and "[mode=" not in r.text


async def test_mcp_servers_reach_the_acp_agent(client: AsyncClient) -> None:
    vm = await acp_vm(client, "mcp")
    servers = [
        {
            "name": "files",
            "command": "/usr/bin/mcp-files",
            "args": ["--root", "/home/user"],
            "env": {"K": "v"},
        },
        {
            "type": "http",
            "name": "web",
            "url": "http://127.0.0.1:9/mcp",
            "headers": {"Authorization": "Bearer t"},
        },
    ]
    sid = (await vm.create_session("stub", mcp_servers=servers)).session_id
    seen = [json.loads(line) for line in (await vm.read_file(MCP_LOG)).decode().splitlines()]
    assert seen[-1]["sessionId"] and seen[-1]["method"] == "session/new"
    assert seen[-1]["mcpServers"] == [
        {
            "name": "files",
            "command": "/usr/bin/mcp-files",
            "args": ["--root", "/home/user"],
            "env": [{"name": "K", "value": "v"}],
        },
        {
            "type": "http",
            "name": "web",
            "url": "http://127.0.0.1:9/mcp",
            "headers": [{"name": "Authorization", "value": "Bearer t"}],
        },
    ]
    # the secrets in them never reach the VM's persisted state
    state = json.dumps([s.__dict__ for s in await vm.list_sessions()])
    assert "Bearer t" not in state and sid in state

    # a running agent keeps the MCP servers it started with
    with pytest.raises(BadRequest):
        await vm.resume_session(sid, mcp_servers=servers[:1])
    assert (await vm.send_prompt(sid, "still here")).stop_reason == "end_turn"

    # an agent that takes no http servers: Unsupported, and no session was made
    with pytest.raises(Unsupported):
        await vm.create_session("stub", env={"STUB_NO_HTTP": "1"}, mcp_servers=servers)
    bad: list[Any] = [
        "nope",
        [{"name": "x"}],  # stdio without a command
        [{"name": "x", "command": "c", "args": "not-a-list"}],
        [{"type": "sse", "name": "x", "url": "http://127.0.0.1/"}],
        [{"type": "http", "name": "x", "url": "file:///etc/passwd"}],
        [{"name": "x", "command": "c", "bogus": 1}],
        [{"name": "x", "command": "c"}, {"name": "x", "command": "d"}],
        [{"name": "x", "command": "c", "env": {"A": 1}}],
        [{"name": "x", "command": "c\x00"}],
    ]
    for value in bad:  # a wrong JSON type is the core's ValidationError (422), the rest BadRequest
        with pytest.raises(ValidationError if value == "nope" else BadRequest):
            await vm.create_session("stub", mcp_servers=value)
    assert [s.session_id for s in await vm.list_sessions()] == [sid]


async def pi_two_models(client: AsyncClient, llm: FakeLLM, key: str) -> Any:
    vm = client.vm.get_or_create([key])
    files = pi_agent_files(llm.url)
    models = json.loads(files[".pi/agent/models.json"])
    first = models["providers"][PROVIDER]["models"][0]
    models["providers"][PROVIDER]["models"].append({**first, "id": "stand-in-large", "name": "large (fake)"})
    files[".pi/agent/models.json"] = json.dumps(models)
    for path, text in files.items():
        await vm.write_file(f"/home/user/{path}", text)
    return vm


async def test_pi_set_model_switches_the_model_the_llm_sees(client: AsyncClient, llm: FakeLLM) -> None:
    vm = await pi_two_models(client, llm, "pi-models")
    sid = (await vm.create_session("pi")).session_id
    options = {o["id"]: o for o in await vm.get_config_options(sid)}
    assert options["model"]["currentValue"] == f"{PROVIDER}/stand-in"
    assert {c["value"] for c in options["model"]["options"]} >= {
        f"{PROVIDER}/stand-in",
        f"{PROVIDER}/stand-in-large",
    }

    before = tokens("pi", "output")
    r = await vm.send_prompt(sid, "hello")
    assert llm.requests[-1]["model"] == "stand-in"
    assert r.usage is not None and r.usage["input"] > 0 and r.usage["output"] > 0
    assert tokens("pi", "output") == before + r.usage["output"]

    with pytest.raises(NotFound):
        await vm.set_model(sid, "no-such-model")
    with pytest.raises(BadRequest):
        await vm.set_config_option(sid, "thought_level", "enormous")
    with pytest.raises(Unsupported):
        await vm.get_modes(sid)
    with pytest.raises(NotFound):
        await vm.set_config_option(sid, "no-such-option", "x")
    levels = {o["id"]: o for o in await vm.set_config_option(sid, "thought_level", "off")}
    assert levels["thought_level"]["currentValue"] == "off"
    after = {o["id"]: o for o in await vm.set_model(sid, "stand-in-large")}
    assert after["model"]["currentValue"] == f"{PROVIDER}/stand-in-large"
    await vm.send_prompt(sid, "hello again")
    assert llm.requests[-1]["model"] == "stand-in-large"


async def test_pi_takes_no_mcp_servers(client: AsyncClient, llm: FakeLLM) -> None:
    vm = await pi_two_models(client, llm, "pi-mcp")
    with pytest.raises(Unsupported, match="MCP"):
        await vm.create_session("pi", mcp_servers=[{"name": "x", "command": "/bin/true"}])
    assert await vm.list_sessions() == []
    sid = (await vm.create_session("pi")).session_id  # the VM keeps serving
    assert (await vm.send_prompt(sid, "hi")).stop_reason == "stop"


async def test_after_a_restart_mcp_servers_are_given_again_to_session_load(tmp_path: Path) -> None:
    servers = [{"name": "files", "command": "/usr/bin/mcp-files", "args": [], "env": {"TOKEN": "s3cret-mcp"}}]
    async with registry.test(storage=tmp_path / "data") as c:
        vm = await acp_vm(c, "restart")
        sid = (await vm.create_session("stub", mcp_servers=servers)).session_id
    async with registry.test(storage=tmp_path / "data") as c:
        vm = c.acpvm.get_or_create(["restart"])
        assert (await vm.list_sessions())[0].status == "stopped"
        await vm.resume_session(sid, mcp_servers=servers)
        last = json.loads((await vm.read_file(MCP_LOG)).decode().splitlines()[-1])
        acp_session = (await vm.list_sessions())[0].transcript  # the ACP session id
        assert last["method"] == "session/load" and last["sessionId"] == acp_session
        assert last["mcpServers"][0]["env"] == [{"name": "TOKEN", "value": "s3cret-mcp"}]
        assert (await vm.send_prompt(sid, "back STATE")).text.endswith("[mode=ask model=stub-small]")
    # the MCP server's secret never reached the data directory (kept in memory only)
    for path in (tmp_path / "data").rglob("*"):
        if path.is_file() and "home" not in path.parts:
            assert b"s3cret-mcp" not in path.read_bytes(), path
