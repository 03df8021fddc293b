"""The agent VM's built-in actions give the same typed objects through the async client, the sync
client, a WebSocket connection and inside an actor: ``(await vm.exec("ls")).exit_code``."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from actorq import ActorContext, ActorqError, actor, setup
from actorq.agent_os import DirEntry, ExecResult, FileStat, agent_os, software
from actorq.client import create_sync_client
from actorq.server.forward import HttpForwarder

KEY = ["typed"]


async def probe(c: ActorContext) -> list[Any]:
    vm = c.actors.agent_os("vm").get_or_create(KEY)
    r = await vm.exec("echo inside")
    st = await vm.stat("/home/user/t.txt")
    untyped = await c.actors.vm.get_or_create(KEY).exec("true")
    return [type(r).__name__, r.exit_code, r.stdout, type(st).__name__, st.size, type(untyped).__name__]


registry = setup(
    use={"vm": agent_os(software=[software.common], network=False), "probe": actor(actions={"probe": probe})}
)


async def test_vm_results_are_typed_through_both_clients_and_inside_an_actor(tmp_path: Path) -> None:
    async with registry.test(storage=tmp_path / "data") as client:
        vm = client.agent_os("vm").get_or_create(KEY)
        assert await vm.write_file("/home/user/t.txt", b"\x00abc") == 4
        assert await vm.read_file("/home/user/t.txt") == b"\x00abc"  # bytes, not base64
        r = await vm.exec("echo hi; echo err >&2; exit 3")
        assert isinstance(r, ExecResult)
        assert (r.exit_code, r.stdout, r.stderr) == (3, "hi\n", "err\n")
        assert r["exit_code"] == 3  # read by field name too, as the dicts of earlier versions
        st = await vm.stat("/home/user/t.txt")
        assert isinstance(st, FileStat) and st.size == 4 and not st.is_directory
        entries = await vm.readdir_recursive()
        assert entries and all(isinstance(e, DirEntry) for e in entries)
        assert isinstance(await client.vm.get_or_create(KEY).exec("true"), ExecResult)  # untyped handle
        conn = await client.vm.get_or_create(KEY).connect()
        try:
            over_ws = await conn.exec("echo ws")
            assert isinstance(over_ws, ExecResult) and over_ws.stdout == "ws\n"
        finally:
            await conn.close()
        # a node that does not own the VM forwards the call to the one that does: the answer it
        # relays is typed the same way (the forwarder rebuilds the result, the route names it again)
        forwarder = HttpForwarder()
        try:
            address = client.url.removeprefix("http://")
            forwarded = await forwarder.call_action(address, await vm.resolve(), "exec", ["echo f"], None)
            assert isinstance(forwarded, ExecResult) and forwarded.stdout == "f\n"
        finally:
            await forwarder.close()
        assert await client.probe.get_or_create(["p"]).probe() == [
            "ExecResult",
            0,
            "inside\n",
            "FileStat",
            4,
            "ExecResult",
        ]

        def sync_flow() -> list[Any]:
            with create_sync_client(client.url) as sync:
                svm = sync.agent_os("vm").get_or_create(KEY)
                e = svm.exec("echo sync")
                s = svm.stat("/home/user/t.txt")
                return [type(e).__name__, e.stdout, type(s).__name__, s.size, svm.read_file("t.txt")]

        assert await asyncio.to_thread(sync_flow) == ["ExecResult", "sync\n", "FileStat", 4, b"\x00abc"]


def test_the_typed_handles_list_every_action_with_its_signature() -> None:
    """``AgentOSActions`` / ``SyncAgentOSActions`` declare each public VM action with the
    parameters (names, kinds, defaults) of the action itself, so a typed call is the same call."""
    import inspect

    from actorq.agent_os.actions import ACTIONS
    from actorq.vm_types import RESULT_TYPES, AgentOSActions, SyncAgentOSActions

    public = {n for n in ACTIONS if n not in ("cron_tick", "permission_resume")}  # internal ones
    for cls in (AgentOSActions, SyncAgentOSActions):
        declared = {n for n, _ in inspect.getmembers(cls, inspect.isfunction) if not n.startswith("_")}
        assert declared - {"action"} == public, cls
        for name in public:
            want = list(inspect.signature(ACTIONS[name]).parameters.values())[1:]
            got = list(inspect.signature(getattr(cls, name)).parameters.values())[1:]
            shape = [(p.kind, p.default) for p in want]
            assert [(p.kind, p.default) for p in got] == shape, (cls.__name__, name)
            kw = [p.name for p in want if p.kind is p.KEYWORD_ONLY]
            assert [p.name for p in got if p.kind is p.KEYWORD_ONLY] == kw, (cls.__name__, name)
    assert set(RESULT_TYPES) >= {"Session", "PromptResult", "ExecResult", "ProcessInfo", "FileStat"}
    assert set(RESULT_TYPES) >= {"DirEntry", "FetchResult", "CronJob", "BatchReadResult", "BatchWriteResult"}
    assert set(RESULT_TYPES) >= {"SessionModes", "PreviewUrl", "PermissionRequest", "EventPage"}


def test_result_types_survive_the_wire_shape() -> None:
    """The answer names a VM result's type, a list of them too; the name rebuilds the object;
    an unknown name (a newer server's) leaves the JSON as it is."""
    from actorq import protocol
    from actorq.vm_types import FetchResult, Session, decode_result

    fetched = FetchResult(200, {"a": "b"}, b"\xff")
    answer = protocol.action_result(fetched)
    assert answer["result_type"] == "FetchResult"
    assert decode_result(answer["result"], answer.get("result_type")) == fetched
    sessions = [Session("s1", "pi"), Session("s2", "pi")]
    listed = protocol.action_result(sessions)
    assert listed["result_type"] == "list[Session]"
    assert decode_result(listed["result"], listed["result_type"]) == sessions
    assert "result_type" not in protocol.action_result([]) and "result_type" not in protocol.action_result(3)
    assert decode_result({"x": 1}, "SomethingNew") == {"x": 1}
    newer = {**answer["result"], "added_later": True}  # a field this version does not know
    assert decode_result(newer, "FetchResult") == fetched
    for bad, name in (({"x": 1}, "ExecResult"), ([1], "ExecResult"), ({}, "list[Session]")):
        with pytest.raises(ActorqError, match="unexpected answer"):
            decode_result(bad, name)  # a malformed answer is a typed error, not a TypeError
