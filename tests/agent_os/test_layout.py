"""How agent_os is put together: one action table, the core used only by the actor type, and the
agent-process base's stderr tail (no VM needed)."""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path

import actorq.agent_os
from actorq.agent_os import agent_os, software
from actorq.agent_os.actions import ACTIONS
from actorq.agent_os.agents.base import DriverOptions
from actorq.agent_os.agents.process import AgentProcess

PACKAGE = Path(actorq.agent_os.__file__).parent
ACTOR_TYPE = {"vm.py", "machine.py", "metrics.py", "actions"}  # the only parts that may use the core

NAMES = {
    "create_session", "send_prompt", "cancel_prompt", "close_session", "list_sessions",
    "resume_session", "read_file", "write_file", "read_files", "write_files", "mkdir", "readdir",
    "readdir_recursive", "stat", "exists", "move", "delete_file", "exec", "spawn", "wait_process",
    "list_processes", "kill_process", "vm_fetch", "schedule_cron", "list_cron_jobs",
    "cancel_cron_job", "cron_tick", "list_permission_requests", "respond_permission",
    "permission_resume", "write_process_stdin", "close_process_stdin", "open_shell",
    "write_shell", "resize_shell", "close_shell", "get_events", "get_session_events",
    "get_modes", "set_mode", "get_config_options", "set_config_option", "set_model",
    "create_signed_preview_url", "expire_signed_preview_url", "list_preview_urls", "preview_request",
    "get_usage",
}  # fmt: skip


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):  # function-level imports count too
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return found


def test_one_action_table_is_what_the_vm_type_declares() -> None:
    assert set(ACTIONS) == NAMES
    vm = agent_os(software=[software.common])
    assert {n: a.fn for n, a in vm.actions.items()} == dict(ACTIONS)


def test_only_the_actor_type_uses_the_core_and_nothing_uses_server_client_or_storage() -> None:
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        mods = _imports(path)
        for mod in mods:
            assert not mod.startswith(("actorq.server", "actorq.client", "actorq.storage")), (rel, mod)
            if mod.startswith("actorq.core"):
                assert rel.parts[0] in ACTOR_TYPE, (rel, mod)
                assert mod == "actorq.core", f"{rel} imports core internals ({mod}), not its facade"


async def test_agent_stderr_tail_is_masked_before_it_is_cut() -> None:
    secret = "s3cr3t-value-0123456789"
    opts = DriverOptions("ses_x", {"KEY": secret}, "/home/user", None, None, lambda n, d: None)  # type: ignore[arg-type]
    proc = AgentProcess(opts)
    reader = asyncio.StreamReader()
    # a secret 4 KiB from the end: cutting the tail there first would leave its end unmasked
    reader.feed_data(f"failed with {secret}".encode() + b"y" * 4090 + f"\nand {secret}\n".encode())
    reader.feed_eof()
    await proc._read_stderr(reader)
    tail = proc._stderr_tail()
    assert tail.startswith("failed with ***y") and tail.endswith("and ***")
    for cut in (500, 1000, 4096, len(tail)):
        assert secret[-6:] not in tail[-cut:] and secret[:6] not in tail[-cut:]
