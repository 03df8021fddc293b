"""A VM's numbered event history: a client joining mid-prompt catches up with no gap and no
duplicate, the history survives a server restart, it is bounded (the oldest go, ``first_seq`` and
``dropped`` say so), and bad ``since``/``limit`` values are typed errors. The ``History`` file
itself is also tested alone (no VM)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from actorq import BadRequest, NotFound, ValidationError, setup
from actorq.agent_os import agent_os, software
from actorq.agent_os.fake_llm import FakeLLM, Reply, pi_agent_files
from actorq.agent_os.history import History
from tests.apps.vm_app import registry

small = setup(use={"small": agent_os(software=[software.common], network=False, history=20)})


# -- the file alone --------------------------------------------------------------------------------
async def test_history_numbers_keeps_bounds_and_reloads(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    h = await History.open(path, limit=5)
    sent = [h.record("process_output", {"pid": 1, "data": f"line {i}"}) for i in range(12)]
    assert [e["seq"] for e in sent] == list(range(1, 13))
    page = await h.page(0)
    assert [e["seq"] for e in page.events] == [8, 9, 10, 11, 12]
    assert (page.first_seq, page.last_seq, page.dropped, page.more) == (8, 12, True, False)
    assert (await h.page(7)).dropped is False and (await h.page(10)).events[0]["data"] == sent[10]
    assert (await h.page(12)).events == [] and (await h.page(12)).next_since == 12
    p1 = await h.page(0, limit=2)
    assert [e["seq"] for e in p1.events] == [8, 9] and p1.more and p1.next_since == 9
    await h.close()
    h.record("process_exit", {"pid": 1, "exit_code": 0})  # after the VM went to sleep: still kept
    with path.open("ab") as f:
        f.write(b'{"seq": 14, "name": "cut sh')  # a crash in the middle of a line
    again = await History.open(path, limit=5)
    assert [e["seq"] for e in (await again.page(0)).events] == [9, 10, 11, 12, 13]
    assert again.record("x", {})["seq"] == 14  # numbers go on, never reused
    await again.close()
    lines = path.read_bytes().splitlines()
    # the cut line is gone, not glued to; a rewrite's first line says what it let go
    assert all("seq" in json.loads(line) or "dropped" in json.loads(line) for line in lines)
    for since, limit in ((-1, 10), (0, 0), (0, 10**6), ("1", 10), (True, 10)):
        with pytest.raises(BadRequest):
            await again.page(since, limit)  # type: ignore[arg-type]


async def test_history_file_is_rewritten_once_it_holds_twice_what_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    h = await History.open(path, limit=100)
    await h.ready()
    for i in range(1000):
        h.record("e", {"i": i})
    await h.close()
    assert len(path.read_bytes().splitlines()) <= 202
    # reopened: what is recorded before the file's events are read in comes after them
    again = await History.open(path, limit=100)
    assert again.record("e", {"i": 1000})["seq"] == 1001
    page = await again.page(0, 1000)
    assert [e["seq"] for e in page.events] == list(range(902, 1002))
    assert page.dropped and page.first_seq == 902  # what the rewrite let go is known after it
    assert [e["data"]["i"] for e in page.events] == list(range(901, 1001))
    await again.close()
    # never fetched from: the file outgrowing twice its bound has it read in and rewritten anyway
    idle = await History.open(path, limit=10)
    for i in range(30):
        idle.record("e", {"i": i})
    await asyncio.sleep(0.2)
    idle.record("e", {"i": 30})
    await idle.close()
    assert len(path.read_bytes().splitlines()) <= 22


async def test_a_chatty_process_never_pushes_a_sessions_events_out(tmp_path: Path) -> None:
    h = await History.open(tmp_path / "events.jsonl", limit=10)
    await h.ready()
    said = [h.record("session_event", {"session_id": "ses_a", "n": i})["seq"] for i in range(3)]
    for i in range(100):
        h.record("process_output", {"pid": 1, "data": str(i)})
    session = await h.page(0, session_id="ses_a")
    assert [e["seq"] for e in session.events] == said and not session.dropped
    everything = await h.page(0)
    assert [e["seq"] for e in everything.events] == [*said, *range(94, 104)]
    assert everything.dropped and everything.first_seq == 94  # output 4..93 is gone
    assert not (await h.page(93)).dropped and (await h.page(93)).events[0]["seq"] == 94
    h.skip_to(500)  # numbered on another node meanwhile
    assert h.record("x", {})["seq"] == 501 and (await h.page(103)).dropped
    await h.close()


# -- through a VM ------------------------------------------------------------------------------------
@contextlib.asynccontextmanager
async def collected(vm: Any) -> AsyncIterator[list[tuple[str, Any]]]:
    items: list[tuple[str, Any]] = []
    async with await vm.connect() as conn:

        async def collect() -> None:
            async for ev in conn:
                items.append((ev.name, ev.data))

        task = asyncio.create_task(collect())
        try:
            yield items
        finally:
            await asyncio.sleep(0.2)
            task.cancel()


async def test_a_client_joining_mid_prompt_catches_up_without_gaps_or_duplicates(
    tmp_path: Path, llm: FakeLLM
) -> None:
    async with registry.test(storage=tmp_path / "data") as client:
        vm = client.vm.get_or_create(["late"])
        for path, text in pi_agent_files(llm.url).items():
            await vm.write_file(f"/home/user/{path}", text)
        session = await vm.create_session("pi")
        sid = session.session_id
        llm.script(
            [
                Reply.tool_call("write", {"path": "/home/user/a.txt", "content": "a"}),
                Reply.text("done writing the file for you now", delay=1.5),
            ]
        )
        async with collected(vm) as early:  # connected from the start: the reference
            prompt = asyncio.create_task(vm.send_prompt(sid, "write a.txt"))
            deadline = time.monotonic() + 30
            while not any(d.get("type") == "tool_execution_end" for n, d in early if n == "session_event"):
                assert time.monotonic() < deadline and not prompt.done(), early
                await asyncio.sleep(0.05)
            # the late client: connect first, then fetch what came before, then dedupe by seq
            async with collected(vm) as live:
                caught = await vm.get_session_events(sid, since=0)
                assert caught.events and not caught.more
                seen: dict[int, dict[str, Any]] = {e["seq"]: e["data"] for e in caught.events}
                result = await prompt
                await asyncio.sleep(0.3)
            for name, data in live:
                if name == "session_event" and data["session_id"] == sid:
                    seen.setdefault(data["seq"], data)
        assert result.stop_reason == "stop"
        reference = {d["seq"]: d for n, d in early if n == "session_event"}
        assert seen.keys() >= reference.keys()  # nothing the early client saw is missing
        history = await vm.get_session_events(sid, since=0)
        assert [e["seq"] for e in history.events] == sorted(seen)  # the same events, each once
        assert [e["data"] for e in history.events] == [seen[s] for s in sorted(seen)]
        assert any(e["data"].get("type") == "agent_end" for e in history.events)
        # caught-up and live overlapped (the join was mid-prompt) and both halves were needed
        live_seqs = {d["seq"] for n, d in live if n == "session_event"}
        assert live_seqs and set(e["seq"] for e in caught.events) - live_seqs
        # the VM-wide history holds them too, in order, with no gap in the numbers
        everything = await vm.get_events(since=0, limit=10_000)
        seqs = [e["seq"] for e in everything.events]
        assert seqs == list(range(everything.first_seq, everything.last_seq + 1))
        assert set(seen) <= set(seqs)
        with pytest.raises(NotFound):
            await vm.get_session_events("ses_nope")
        for bad in ({"since": -1}, {"limit": 0}, {"limit": 10**6}):
            with pytest.raises((BadRequest, ValidationError)):
                await vm.get_events(**bad)
    # the session's events survive a server restart, numbers and all
    async with registry.test(storage=tmp_path / "data") as client:
        vm = client.vm.get_or_create(["late"])
        again = await vm.get_session_events(sid, since=0)
        assert again.events == history.events
        assert (await vm.list_sessions())[0].status == "stopped"


async def test_history_survives_a_restart_and_numbers_go_on(tmp_path: Path) -> None:
    async with small.test(storage=tmp_path / "data") as client:
        vm = client.small.get_or_create(["restart"])
        p = await vm.spawn("sh", ["-c", "echo before-restart"])
        await vm.wait_process(p.pid, timeout=10)
        await asyncio.sleep(0.2)
        before = await vm.get_events()
    async with small.test(storage=tmp_path / "data") as client:
        vm = client.small.get_or_create(["restart"])
        after = await vm.get_events()
        assert after.events == before.events and after.last_seq == before.last_seq > 0
        assert any(e["data"].get("data") == "before-restart\n" for e in after.events)
        p = await vm.spawn("true")
        await vm.wait_process(p.pid, timeout=10)
        await asyncio.sleep(0.2)
        newer = await vm.get_events(since=before.last_seq)
        assert newer.events and newer.events[0]["seq"] == before.last_seq + 1


async def test_history_is_bounded_and_says_what_was_dropped(tmp_path: Path) -> None:
    async with small.test(storage=tmp_path / "data") as client:
        vm = client.small.get_or_create(["bounded"])
        async with collected(vm) as live:
            for _ in range(30):
                p = await vm.spawn("true")
                await vm.wait_process(p.pid, timeout=10)
        page = await vm.get_events(since=0)
        assert len(page.events) == 20 and page.dropped
        assert page.first_seq == page.events[0]["seq"] == page.last_seq - 19
        assert [e["seq"] for e in page.events] == list(range(page.first_seq, page.last_seq + 1))
        assert not (await vm.get_events(since=page.first_seq - 1)).dropped
        assert [d["seq"] for _, d in live][-20:] == [e["seq"] for e in page.events]


async def test_an_event_with_a_lone_surrogate_is_numbered_kept_and_reloaded(tmp_path: Path) -> None:
    # an agent's JSON (ACP, pi RPC) may carry "\ud800": json.loads gives a lone surrogate, which
    # UTF-8 cannot encode; the event must still be numbered, written and read back, not raise
    path = tmp_path / "events.jsonl"
    h = await History.open(path)
    body = h.record("session_update", {"session_id": "s1", "text": "a\ud800b"})
    assert body["seq"] == 1 and h.record("x", {})["seq"] == 2
    await h.close()
    again = await History.open(path)
    assert [e["data"] for e in (await again.page(0)).events] == [body, {"seq": 2}]
    await again.close()


async def test_events_of_actions_move_the_states_high_water_mark(tmp_path: Path) -> None:
    # cron_fired (and permission_resumed) are emitted by actions: their seq must reach the state's
    # history_seq too, or a VM waking on another node would number its next event with theirs
    async with small.test(storage=tmp_path / "data") as client:
        vm = client.small.get_or_create(["mark"])
        job = await vm.schedule_cron("* * * * * *", {"type": "exec", "command": "true"})
        fired: list[dict[str, Any]] = []
        for _ in range(60):
            fired = [e for e in (await vm.get_events()).events if e["name"] == "cron_fired"]
            if fired:
                break
            await asyncio.sleep(0.1)
        await vm.cancel_cron_job(job.id)
        assert fired
        state = await vm.persisted_state()
        assert state["history_seq"] >= fired[-1]["seq"]
