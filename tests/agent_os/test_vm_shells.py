"""A spawned process's stdin and interactive shells on a terminal of the VM's own: round trips
through the HTTP client and its event stream, and each bad input a typed error that changes
nothing (the process, the shell and the VM keep serving)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from actorq import BadRequest, MessageTooLarge, NotFound, QueueFull, ValidationError
from actorq.agent_os.processes import MAX_STDIN_WRITE
from actorq.client import AsyncClient
from tests.apps.vm_app import registry


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[AsyncClient]:
    async with registry.test(storage=tmp_path / "data") as c:
        yield c


class Events:
    """What a connected client received, and a way to wait for something in it."""

    def __init__(self) -> None:
        self.items: list[tuple[str, Any]] = []
        self._changed = asyncio.Event()

    def add(self, name: str, data: Any) -> None:
        self.items.append((name, data))
        self._changed.set()

    async def until(self, ok: Callable[[], bool], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not ok():
            left = deadline - time.monotonic()
            assert left > 0, f"timed out; events so far: {self.items[-20:]}"
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)

    def shell_text(self, shell_id: str) -> str:
        return "".join(d["data"] for n, d in self.items if n == "shell_data" and d["shell_id"] == shell_id)


@contextlib.asynccontextmanager
async def listen(vm: Any) -> AsyncIterator[Events]:
    events = Events()
    async with await vm.connect() as conn:

        async def collect() -> None:
            async for ev in conn:
                events.add(ev.name, ev.data)

        task = asyncio.create_task(collect())
        try:
            yield events
        finally:
            task.cancel()


async def test_stdin_round_trip(client: AsyncClient) -> None:
    vm = client.vm.get_or_create(["stdin"])
    p = await vm.spawn("cat")
    assert await vm.write_process_stdin(p.pid, "hello ") == 6
    assert await vm.write_process_stdin(p.pid, b"bytes\xff\n") == 7
    assert await vm.wait_process(p.pid, timeout=0.3) is None  # cat waits for more: stdin is open
    await vm.close_process_stdin(p.pid)
    await vm.close_process_stdin(p.pid)  # twice: nothing more happens
    assert await vm.wait_process(p.pid, timeout=10) == 0
    (info,) = [x for x in await vm.list_processes() if x.pid == p.pid]
    assert info.stdout_tail == "hello bytes\ufffd\n"
    # a large write goes through whole (more than a pipe holds at once)
    big = await vm.spawn("sh", ["-c", "wc -c"])
    await vm.write_process_stdin(big.pid, b"x" * MAX_STDIN_WRITE)
    await vm.close_process_stdin(big.pid)
    assert await vm.wait_process(big.pid, timeout=10) == 0
    (info,) = [x for x in await vm.list_processes() if x.pid == big.pid]
    assert info.stdout_tail.strip() == str(MAX_STDIN_WRITE)


async def test_bad_stdin_writes_are_typed_errors_and_change_nothing(client: AsyncClient) -> None:
    vm = client.vm.get_or_create(["stdin-bad"])
    with pytest.raises(NotFound):
        await vm.write_process_stdin(999, "x")
    with pytest.raises(NotFound):
        await vm.close_process_stdin(999)
    p = await vm.spawn("cat")
    with pytest.raises((BadRequest, ValidationError)):
        await vm.write_process_stdin(p.pid, 12)  # type: ignore[arg-type]
    with pytest.raises(MessageTooLarge):
        await vm.write_process_stdin(p.pid, b"y" * (MAX_STDIN_WRITE + 1))
    await vm.write_process_stdin(p.pid, "still here\n")
    await vm.close_process_stdin(p.pid)
    with pytest.raises(BadRequest, match="closed"):
        await vm.write_process_stdin(p.pid, "late")
    assert await vm.wait_process(p.pid, timeout=10) == 0
    (info,) = [x for x in await vm.list_processes() if x.pid == p.pid]
    assert info.stdout_tail == "still here\n"  # nothing of the refused writes reached it
    # a process that never reads its stdin: what may wait is bounded, then QueueFull (retry later)
    idle = await vm.spawn("sleep", ["30"])
    with pytest.raises(QueueFull):
        for _ in range(16):
            await vm.write_process_stdin(idle.pid, b"z" * MAX_STDIN_WRITE)
    await vm.kill_process(idle.pid)
    assert await vm.wait_process(idle.pid, timeout=10) == 137
    with pytest.raises(BadRequest):
        await vm.write_process_stdin(idle.pid, "after exit")
    assert (await vm.exec("echo ok")).stdout == "ok\n"


async def test_shell_round_trip(client: AsyncClient) -> None:
    vm = client.vm.get_or_create(["shell"])
    async with listen(vm) as events:
        sid = await vm.open_shell(cols=100, rows=30)
        await vm.write_shell(sid, "echo hi-$((40 + 2))\n")
        await events.until(lambda: "hi-42" in events.shell_text(sid))
        await vm.write_shell(sid, "stty size; tty\n")
        await events.until(lambda: "30 100" in events.shell_text(sid))
        await vm.resize_shell(sid, 132, 43)
        await vm.write_shell(sid, "stty size\n")
        await events.until(lambda: "43 132" in events.shell_text(sid))
        text = events.shell_text(sid)
        assert "/dev/pts/" in text  # a terminal of the VM's own devpts
        assert "no job control" not in text  # the terminal is the shell's controlling terminal
        # Ctrl-C reaches the foreground job through the terminal
        await vm.write_shell(sid, "sleep 30; echo after-sleep\n")
        await asyncio.sleep(0.5)
        await vm.write_shell(sid, "\x03echo interrupted-$((1+1))\n")
        await events.until(lambda: "interrupted-2" in events.shell_text(sid))
        assert "\nafter-sleep" not in events.shell_text(sid)  # the sleep was interrupted
        # exit ends it: a shell_exit event with its code, and its id is gone
        await vm.write_shell(sid, "exit 3\n")
        await events.until(lambda: ("shell_exit", 3) in [(n, d.get("exit_code")) for n, d in events.items])
        with pytest.raises(NotFound):
            await vm.write_shell(sid, "echo gone\n")
        # close_shell ends one still running
        other = await vm.open_shell(command="sh")
        await vm.write_shell(other, "echo from-sh\n")
        await events.until(lambda: "from-sh" in events.shell_text(other))
        await vm.close_shell(other)
        with pytest.raises(NotFound):
            await vm.close_shell(other)
        await events.until(lambda: any(n == "shell_exit" and d["shell_id"] == other for n, d in events.items))
    assert all("seq" in d for _, d in events.items)


async def test_bad_shell_inputs_are_typed_errors_and_change_nothing(client: AsyncClient) -> None:
    vm = client.vm.get_or_create(["shell-bad"])
    for bad in ({"cols": 0}, {"rows": -1}, {"cols": 10**6}, {"rows": 1001}, {"cols": "wide"}):
        with pytest.raises((BadRequest, ValidationError)):
            await vm.open_shell(**bad)
    for command in ("", "a\0b"):
        with pytest.raises(BadRequest):
            await vm.open_shell(command=command)
    with pytest.raises((BadRequest, NotFound)):
        await vm.open_shell(cwd="/home/user/no-such-dir")
    with pytest.raises(NotFound):
        await vm.write_shell("sh_999", "x")
    with pytest.raises(NotFound):
        await vm.resize_shell("sh_999", 80, 24)
    with pytest.raises(NotFound):
        await vm.close_shell("sh_999")
    async with listen(vm) as events:
        sid = await vm.open_shell()
        assert sid == "sh_1"  # none of the refused ones was opened
        for cols, rows in ((0, 24), (80, 0), (1001, 24), (80, 10**9)):
            with pytest.raises(BadRequest):
                await vm.resize_shell(sid, cols, rows)
        with pytest.raises(MessageTooLarge):
            await vm.write_shell(sid, "y" * (MAX_STDIN_WRITE + 1))
        with pytest.raises((BadRequest, ValidationError)):
            await vm.write_shell(sid, 5)  # type: ignore[arg-type]
        await vm.write_shell(sid, "stty size\n")
        await events.until(lambda: "24 80" in events.shell_text(sid))  # the refused resizes changed nothing
        assert "yyyy" not in events.shell_text(sid)
        await vm.close_shell(sid)
