"""Agent VM persistence across ``kill -9`` of a real server process: files in /home/user survive,
no sandboxed process outlives the server, and a pi session resumes from its transcript in the VM
(the model sees the earlier conversation again)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from actorq.agent_os.fake_llm import FakeLLM, pi_agent_files
from actorq.client import create_client
from tests.conftest import LLM_PORT, ServerProcess


async def _vm_pids(data_dir: Path) -> bytes:
    """pids of live processes running as the VMs' uids (each VM has its own, owner of its home);
    zombies are dead already (waiting for the machine's init to reap them) and do not count."""
    uids = {str(h.stat().st_uid) for h in data_dir.glob("actors/*/vm/home/user")}
    assert uids and "0" not in uids
    ps = await asyncio.create_subprocess_exec(
        "ps", "-o", "pid=,stat=", "-u", ",".join(uids), stdout=asyncio.subprocess.PIPE
    )
    out, _ = await ps.communicate()
    return b"\n".join(ln.split()[0] for ln in out.splitlines() if not ln.split()[1].startswith(b"Z"))


async def test_files_and_pi_session_survive_kill_9(
    server_factory: type[ServerProcess], data_dir: Path
) -> None:
    async with FakeLLM(port=LLM_PORT) as llm:
        server = server_factory("tests.apps.vm_app:registry", data_dir).start()
        async with create_client(server.url) as client:
            vm = client.vm.get_or_create(["persist"])
            for path, text in pi_agent_files(llm.url).items():
                await vm.write_file(f"/home/user/{path}", text)
            await vm.write_file("/home/user/notes.txt", "written before the crash")
            session = await vm.create_session("pi", env={"ANTHROPIC_API_KEY": "sk-never-on-disk-42"})
            sid = session["session_id"]
            r = await vm.send_prompt(
                sid, "The code word is PINEAPPLE. Write a summary to /home/user/one.txt: hi"
            )
            assert r["stop_reason"] == "stop"
            assert await vm.exists("/home/user/one.txt")
            assert await _vm_pids(data_dir) != b""  # the sandbox and pi, as the VM's uid
        server.kill9()
        await asyncio.sleep(0.5)
        # --die-with-parent: the sandbox (and pi in it) died with the server
        assert await _vm_pids(data_dir) == b""
        files = [p for p in data_dir.rglob("*") if p.is_file()]
        assert not [p for p in files if b"sk-never-on-disk-42" in p.read_bytes()]  # env never hits disk

        requests_before = len(llm.requests)
        server = server_factory("tests.apps.vm_app:registry", data_dir).start()
        async with create_client(server.url) as client:
            vm = client.vm.get_or_create(["persist"])
            assert await vm.read_file("/home/user/notes.txt") == b"written before the crash"
            assert await vm.exists("/home/user/one.txt")
            (listed,) = await vm.list_sessions()
            assert listed["session_id"] == sid and listed["status"] == "stopped"
            assert listed["transcript"]
            resumed = await vm.resume_session(sid)
            assert resumed["status"] == "ready"
            r = await vm.send_prompt(sid, "What was the code word? Write a summary to /home/user/two.txt: ok")
            assert r["stop_reason"] == "stop"
            assert await vm.exists("/home/user/two.txt")
        server.terminate()
        after = llm.requests[requests_before:]
        assert after, "the resumed session never called the model"
        assert "PINEAPPLE" in json.dumps(after[0]["messages"])  # the transcript came back
