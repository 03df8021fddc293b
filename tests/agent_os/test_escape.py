"""The standing escape suite: code inside an agent VM is hostile (an agent prompted with anyone's
words runs shell commands), and the server runs as root. Each test mounts one class of attack from
inside a VM (or through the host-side actions a VM's files feed) and asserts the safe outcome.

The helpers and the in-VM attack scripts are in ``escape_tools``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import stat
import threading
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from actorq import errors
from actorq.client import AsyncClient
from actorq.errors import ActorqError, NotFound
from tests.agent_os import escape_tools as t
from tests.apps import escape_app
from tests.apps.escape_app import registry

# the typed error of a VM over its limits (it may not exist yet: then the test needing it fails)
ResourceLimit: type[ActorqError] | None = getattr(errors, "ResourceLimit", None)

ACP_STUB = Path(__file__).with_name("acp_stub_agent.py")
CLIMB = "../" * 30  # more than enough `..` to reach the host's / from any VM directory
LAUNCHERS = ("bwrap", "setpriv", "nsenter", "unshare", "capsh", "setsid", "chroot", "su", "sudo", "runuser")


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[AsyncClient]:
    async with registry.test(storage=tmp_path / "data") as c:
        yield c


@pytest.fixture
def bait(tmp_path: Path) -> t.Bait:
    return t.make_bait(tmp_path)


def resource_limit() -> type[ActorqError]:
    if ResourceLimit is None:
        pytest.fail("actorq.errors.ResourceLimit does not exist: no typed error for a VM over its limits")
    return ResourceLimit


def report(findings: list[str], limit: int = 25) -> str:
    more = f"\n... and {len(findings) - limit} more" if len(findings) > limit else ""
    return "\n".join(findings[:limit]) + more


# ================================================================================================
# 1. Links at every step of every host-side file action
# ================================================================================================


class Planted:
    """Links a VM process plants in its home, each leading (on the host) out of the VM."""

    DIRS = ("d_abs", "d_rel", "d_proc", "o_abs", "chain", "/tmp/d_tmp", "real/up", "vm_root", "vm_etc")
    FILES = ("f_abs", "f_rel", "f_proc", "o_file")
    LEAVES = ("host-only-file.txt", "host-only-dir/host-only-deep.txt", "host-only-dir", "new.txt")
    DOTDOT = (
        "real/../d_abs/host-only-file.txt",
        "d_abs/../host-bait/host-only-file.txt",
        "/home/user/../user/d_rel/host-only-file.txt",
        "real/inside.txt/../../d_proc/host-only-file.txt",
        "/tmp/../home/user/f_rel",
        "d_rel/../../..",
        "/tmp/d_tmp/../host-bait",
        "real/up/../host-only-file.txt",
    )

    def __init__(self, bait: t.Bait, other_home: Path) -> None:
        links = {
            "f_abs": str(bait.file),
            "f_rel": CLIMB + str(bait.file).lstrip("/"),
            "f_proc": f"/proc/self/root{bait.file}",
            "d_abs": str(bait.dir),
            "d_rel": CLIMB + str(bait.dir).lstrip("/"),
            "d_proc": f"/proc/self/root{bait.dir}",
            "o_abs": str(other_home),  # another VM's home, by its host path
            "o_file": str(other_home / "host-only-file.txt"),
            "chain": "d_rel",
            "/tmp/d_tmp": str(bait.dir),
            "real/up": "../d_abs",
            # relative links that, followed on the host, stay under the VM's root but leave its
            # /home/user and /tmp: the server's own files for the VM (etc/passwd, ...)
            "vm_root": "../..",
            "vm_etc": "../../etc",
        }
        cmds = ["mkdir -p real", "echo inside > real/inside.txt"]
        cmds += [f"rm -rf '{name}' && ln -sfn '{target}' '{name}'" for name, target in links.items()]
        self.script = " && ".join(cmds)

    @classmethod
    def paths(cls) -> list[str]:
        through = [f"{d}/{leaf}" for d in cls.DIRS for leaf in cls.LEAVES]
        return [*through, *cls.DOTDOT, *cls.FILES, *cls.DIRS]


async def _other_vm(client: AsyncClient, data: Path) -> tuple[Any, Path]:
    other = client.vm.get_or_create(["other"])
    await other.write_file("/home/user/host-only-file.txt", t.HOST_TOKEN)
    await other.mkdir("/home/user/host-only-dir")
    return other, await t.locate_home(other, data)


def _check_value(call: str, action: str, value: Any, findings: list[str]) -> None:
    """What an action returned, minus the echoed request path: does it carry host content?"""
    shown: Any = value
    if action == "read_files":
        shown = [item.get("content") for item in value]
    elif action == "readdir_recursive":
        shown = [entry["name"] for entry in value]
    elif action in ("stat", "write_files"):
        shown = None
    if shown is not None and t.mentions_host(shown):
        findings.append(f"{call} returned host content: {str(shown)[:160]}")
    items = value if isinstance(value, list) else [value]
    for item in items:
        fields = t.as_fields(item)
        if fields and (fields.get("size") == t.BAIT_SIZE or fields.get("mtime") == t.BAIT_MTIME):
            findings.append(f"{call} described a host file: {item}")


def _check_error(call: str, exc: ActorqError, data: Path, findings: list[str]) -> None:
    if not t.typed(exc):
        findings.append(f"{call} failed on the server ({exc.status} {exc.code}): {exc.message[:200]}")
    where = t.leak(t.error_text(exc), data)
    if where:
        findings.append(f"{call} error names the host path {where!r}: {exc.message[:200]}")


async def _attack(vm: Any, action: str, path: str, i: int) -> Any:
    if action == "read_file":
        return await vm.read_file(path)
    if action == "read_files":
        return await vm.read_files([path])
    if action == "write_file":
        return await vm.write_file(path, "pwned-by-vm")
    if action == "write_files":
        return await vm.write_files([{"path": path, "content": "pwned-by-vm"}])
    if action == "mkdir":
        await vm.mkdir(f"{path}/made-by-host")
        return await vm.mkdir(path)
    if action in ("readdir", "readdir_recursive", "stat"):
        return await getattr(vm, action)(path)
    if action == "exists":
        found = await vm.exists(path)
        name = path.rsplit("/", 1)[-1]
        return (
            f"exists({path!r}) is True for a host-only name {name}"
            if found and name in t.HOST_NAMES
            else found
        )
    if action == "move_src":
        return await vm.move(path, f"/home/user/moved-{i}")
    if action == "move_dst":
        await vm.write_file(f"/home/user/mvsrc-{i}", "payload-from-vm")
        return await vm.move(f"/home/user/mvsrc-{i}", path)
    if action == "delete_file":
        return await vm.delete_file(path)
    if action == "delete_recursive":
        return await vm.delete_file(path, recursive=True)
    if action == "exec_cwd":
        r = await vm.exec("ls -la", cwd=path)
        return r["stdout"]
    if action == "spawn_cwd":
        p = await vm.spawn("ls", ["-la"], cwd=path)
        await vm.wait_process(p["pid"], timeout=10)
        return [x["stdout_tail"] for x in await vm.list_processes() if x["pid"] == p["pid"]]
    raise AssertionError(action)


ACTIONS = [
    "read_file",
    "read_files",
    "write_file",
    "write_files",
    "mkdir",
    "readdir",
    "readdir_recursive",
    "stat",
    "exists",
    "move_src",
    "move_dst",
    "delete_file",
    "delete_recursive",
    "exec_cwd",
    "spawn_cwd",
]


@pytest.mark.parametrize("action", ACTIONS)
async def test_planted_links_never_lead_a_host_side_action_out_of_the_vm(
    client: AsyncClient, tmp_path: Path, bait: t.Bait, action: str
) -> None:
    """A VM plants symlinks (final component, intermediate directory, `..` games, absolute and
    relative targets naming a root-owned host file, /proc/self/root, another VM's home); every
    host-side action either acts inside the VM or raises a typed error, never touching the host."""
    data = tmp_path / "data"
    vm = client.vm.get_or_create(["attacker"])
    other, other_home = await _other_vm(client, data)
    planted = Planted(bait, other_home)
    tmps = [await t.locate_tmp(vm, data), await t.locate_tmp(other, data)]
    trees = [await t.locate_home(vm, data), other_home, *(p for p in tmps if p is not None)]
    host_before, other_before = bait.snapshot(), t.snapshot(other_home)
    server_before = t.server_snapshot(data, trees)
    findings: list[str] = []
    for i, path in enumerate(Planted.paths()):
        await t.sh(vm, planted.script)  # re-planted each time: an action may act on a link itself
        call = f"{action}({path!r})"
        try:
            value = await _attack(vm, action, path, i)
        except ActorqError as exc:
            _check_error(call, exc, data, findings)
            continue
        _check_value(call, action, value, findings)
        if isinstance(value, list):  # batch actions: per-item errors
            for item in value:
                fields = t.as_fields(item)
                if fields and isinstance(fields.get("error"), dict):
                    err = fields["error"]
                    if err.get("code") in ("actor_error", "actorq_error"):
                        findings.append(f"{call} item failed on the server: {err}")
                    where = t.leak(json.dumps(err), data)
                    if where:
                        findings.append(f"{call} item error names the host path {where!r}: {err}")
    touched = t.diff(host_before, bait.snapshot())
    touched += [f"other VM: {d}" for d in t.diff(other_before, t.snapshot(other_home))]
    touched += [f"server files: {d}" for d in t.diff(server_before, t.server_snapshot(data, trees))]
    findings = touched + findings
    assert not findings, report(findings)


@pytest.mark.parametrize("target", ["absolute", "relative", "proc_root", "new_host_file", "other_vm"])
@pytest.mark.parametrize("action", ["write_file", "write_files", "acp_agent_write"])
async def test_write_file_never_writes_through_a_planted_temporary_file(
    client: AsyncClient, tmp_path: Path, bait: t.Bait, target: str, action: str
) -> None:
    """The known hole: host-side write_file writes ``.<name>.actorq-tmp`` beside the target and
    renames it; a VM that planted that name as a symlink to a host path gets the host file
    written, as root. With an ACP agent the VM needs no caller at all: the agent plants the
    link with its shell, then asks the host (fs/write_text_file) to write the file."""
    data = tmp_path / "data"
    vm = (client.acpvm if action == "acp_agent_write" else client.vm).get_or_create(["attacker"])
    _other, other_home = await _other_vm(client, data)
    dest = {
        "absolute": str(bait.file),
        "relative": CLIMB + str(bait.file).lstrip("/"),
        "proc_root": f"/proc/self/root{bait.file}",
        "new_host_file": str(bait.dir / "created-by-vm.txt"),
        "other_vm": str(other_home / "host-only-file.txt"),
    }[target]
    await t.sh(
        vm, f"mkdir -p sub && ln -s '{dest}' .victim.actorq-tmp && ln -s '{dest}' sub/.victim.actorq-tmp"
    )
    session_id = None
    if action == "acp_agent_write":
        await vm.write_file("/home/user/acp_stub_agent.py", ACP_STUB.read_bytes())
        session_id = (await vm.create_session("stub"))["session_id"]
    host_before, other_before = bait.snapshot(), t.snapshot(other_home)
    findings: list[str] = []
    for path in ("/home/user/victim", "/home/user/sub/victim"):
        try:
            if action == "write_file":
                await vm.write_file(path, "pwned")
            elif action == "write_files":
                for item in await vm.write_files([{"path": path, "content": "pwned"}]):
                    if not item["success"] and item["error"]["code"] in ("actor_error", "actorq_error"):
                        findings.append(f"{action}({path!r}) item failed on the server: {item['error']}")
            else:
                r = await vm.send_prompt(session_id, f"write pwned to {path}")
                where = t.leak(r["text"], data)
                if where:
                    findings.append(f"the agent was told the host path {where!r}: {r['text'][:200]}")
        except ActorqError as exc:
            _check_error(f"{action}({path!r})", exc, data, findings)
    for victim in (bait.file, bait.dir / "created-by-vm.txt", other_home / "host-only-file.txt"):
        if victim.exists() and victim.read_text().startswith("pwned"):
            findings.append(
                f"host file {victim.name} written through the VM's link: content {victim.read_text()!r}"
            )
    findings += t.diff(host_before, bait.snapshot())
    findings += [f"other VM: {d}" for d in t.diff(other_before, t.snapshot(other_home))]
    assert not findings, report(findings)


# ================================================================================================
# 2. Link-swap races: a directory and a symlink to the host exchanged while the host acts
# ================================================================================================

RACE_SECONDS = 8.0


async def _race(
    vm: Any,
    bait: t.Bait,
    box_files: dict[str, str],
    op: Callable[[int], Awaitable[Any]],
    data: Path,
    workers: int = 4,
) -> tuple[collections.Counter[str], list[str]]:
    """Inside the VM, `box` (a real directory) and `lnk` (a symlink to the host bait directory)
    swap places with renameat2(RENAME_EXCHANGE) in a tight loop while ``op`` runs on the host."""
    swap = await t.put(vm, "swap.py", t.SWAP)
    setup = ["rm -rf box lnk", "mkdir -p box", f"ln -s '{bait.dir}' lnk"]
    setup += [f"printf %s '{content}' > 'box/{name}'" for name, content in box_files.items()]
    await t.sh(vm, " && ".join(setup))
    swapper = await vm.spawn("python3", [swap, "box", "lnk", str(RACE_SECONDS + 5)])
    await asyncio.sleep(0.3)
    outcomes: collections.Counter[str] = collections.Counter()
    findings: list[str] = []
    end = time.monotonic() + RACE_SECONDS
    counter = iter(range(10**9))

    async def worker() -> None:
        while time.monotonic() < end:
            i = next(counter)
            try:
                value = await op(i)
            except ActorqError as exc:
                outcomes[exc.code] += 1
                if not t.typed(exc) and len(findings) < 200:
                    findings.append(f"a call failed on the server ({exc.code}): {exc.message[:160]}")
                where = t.leak(t.error_text(exc), data)
                if where and len(findings) < 200:
                    findings.append(f"an error names the host path {where!r}: {exc.message[:160]}")
                continue
            outcomes["ok"] += 1
            if t.mentions_host(value):
                outcomes["host content"] += 1
                if len(severe) < 50:
                    severe.append(f"a response carried host content: {str(value)[:120]}")

    severe: list[str] = []
    await asyncio.gather(*(worker() for _ in range(workers)))
    findings = severe + findings
    procs = {p["pid"]: p for p in await vm.list_processes()}
    assert procs[swapper["pid"]]["running"], f"the swapper stopped early: {procs[swapper['pid']]}"
    await vm.kill_process(swapper["pid"])
    return outcomes, findings


async def test_race_read_file_never_returns_host_content(
    client: AsyncClient, tmp_path: Path, bait: t.Bait
) -> None:
    vm = client.vm.get_or_create(["racer"])
    outcomes, findings = await _race(
        vm,
        bait,
        {"host-only-file.txt": "vm side"},
        lambda i: vm.read_file("/home/user/box/host-only-file.txt"),
        tmp_path / "data",
    )
    assert outcomes["ok"] > 0, outcomes  # the VM's own file was read at times: the race was real
    assert not findings, f"{dict(outcomes)}\n{report(findings)}"


async def test_race_write_and_mkdir_never_touch_the_host(
    client: AsyncClient, tmp_path: Path, bait: t.Bait
) -> None:
    vm = client.vm.get_or_create(["racer"])
    before = bait.snapshot()

    async def op(i: int) -> Any:
        if i % 3 == 0:
            return await vm.write_file(f"/home/user/box/from-host-{i % 7}.txt", "pwned")
        if i % 3 == 1:
            return await vm.mkdir(f"/home/user/box/dir-from-host-{i % 7}")
        return await vm.write_files([{"path": f"/home/user/box/batch-{i % 7}.txt", "content": "pwned"}])

    outcomes, findings = await _race(vm, bait, {"vm-side.txt": "vm side"}, op, tmp_path / "data")
    assert outcomes["ok"] > 0, outcomes
    findings = t.diff(before, bait.snapshot()) + findings
    assert not findings, f"{dict(outcomes)}\n{report(findings)}"


async def test_race_readdir_never_lists_the_host(client: AsyncClient, tmp_path: Path, bait: t.Bait) -> None:
    vm = client.vm.get_or_create(["racer"])

    async def op(i: int) -> Any:
        if i % 2:
            return await vm.readdir("/home/user/box")
        return await vm.readdir_recursive("/home/user/box")

    outcomes, findings = await _race(vm, bait, {"vm-side.txt": "vm side"}, op, tmp_path / "data")
    assert outcomes["ok"] > 0, outcomes
    assert not findings, f"{dict(outcomes)}\n{report(findings)}"


async def test_race_delete_and_move_never_touch_the_host(
    client: AsyncClient, tmp_path: Path, bait: t.Bait
) -> None:
    vm = client.vm.get_or_create(["racer"])
    before = bait.snapshot()

    async def op(i: int) -> Any:
        if i % 2:
            return await vm.delete_file("/home/user/box/host-only-file.txt")
        await vm.write_file(f"/home/user/srcs/moved-in-{i}.txt", "payload")
        return await vm.move(f"/home/user/srcs/moved-in-{i}.txt", "/home/user/box")

    outcomes, findings = await _race(vm, bait, {"host-only-file.txt": "vm side"}, op, tmp_path / "data")
    assert outcomes["ok"] > 0, outcomes
    findings = t.diff(before, bait.snapshot()) + findings
    assert not findings, f"{dict(outcomes)}\n{report(findings)}"


# ================================================================================================
# 3. The caller's env reaches the sandboxed command only, never the launcher
# ================================================================================================


async def _start_everything(vm: Any, env: dict[str, str]) -> list[str]:
    """exec, spawn, a shell and a pi session, each with ``env``; what each said (for the failure
    message)."""
    said: list[str] = []
    r = await vm.exec("echo started", env=env)
    said.append(f"exec: {r['exit_code']} {r['stderr'][:200]}")
    p = await vm.spawn("sleep", ["0.2"], env=env)
    said.append(f"spawn: {await vm.wait_process(p['pid'], timeout=15)}")
    shell = await vm.open_shell(env=env)
    await vm.write_shell(shell, "echo started\n")
    await asyncio.sleep(0.3)
    await vm.close_shell(shell)
    said.append("shell: opened")
    try:
        session = await vm.create_session("pi", env=env)
        said.append(f"pi: {session['status']}")
        await vm.close_session(session["session_id"])
    except ActorqError as exc:
        said.append(f"pi: {exc.code} {exc.message[:200]}")
    return said


@pytest.mark.parametrize("vm_type", ["vm", "offline"])
async def test_ld_preload_from_a_host_path_is_never_loaded_by_the_launcher(
    client: AsyncClient, tmp_path: Path, vm_type: str
) -> None:
    host_markers = tmp_path / "host-markers"
    host_markers.mkdir(mode=0o777)
    os.chmod(host_markers, 0o777)
    so = t.compile_preload(tmp_path / "so", host_markers)
    vm = getattr(client, vm_type).get_or_create(["preload"])
    said = await _start_everything(vm, {"LD_PRELOAD": str(so)})
    found = t.markers(host_markers)
    assert found == [], f"the host-side launcher loaded {so} ({'; '.join(said)}):\n" + "".join(found)


@pytest.mark.parametrize("vm_type", ["vm", "offline"])
async def test_ld_preload_from_inside_loads_only_in_the_unprivileged_sandboxed_command(
    client: AsyncClient, tmp_path: Path, vm_type: str
) -> None:
    host_markers = tmp_path / "host-markers"
    host_markers.mkdir(mode=0o777)
    os.chmod(host_markers, 0o777)
    so = t.compile_preload(tmp_path / "so", host_markers)
    vm = getattr(client, vm_type).get_or_create(["preload"])
    await vm.write_file("/home/user/evil.so", so.read_bytes())
    await t.sh(vm, "chmod 755 /home/user/evil.so")
    said = await _start_everything(vm, {"LD_PRELOAD": "/home/user/evil.so"})
    bad = [f"on the host: {m}" for m in t.markers(host_markers)]
    host_ns = t.own_mnt_ns()
    for name in await vm.readdir("/tmp"):
        if not name.startswith("preload-marker-"):
            continue
        text = (await vm.read_file(f"/tmp/{name}")).decode(errors="replace")
        fields = dict(kv.split("=", 1) for kv in text.splitlines()[0].split())
        exe = os.path.basename(fields["exe"])
        if fields["uid"] == "0" or fields["euid"] == "0":
            bad.append(f"loaded as uid 0 in {fields['exe']}: {text.splitlines()[0]}")
        if exe in LAUNCHERS:
            bad.append(f"loaded in the launcher {fields['exe']}: {text.splitlines()[0]}")
        if fields["mnt"] == host_ns:
            bad.append(f"loaded outside the sandbox (host mount namespace): {text.splitlines()[0]}")
    assert not bad, "; ".join(said) + "\n" + "\n".join(bad)


@pytest.mark.parametrize("vm_type", ["vm", "offline"])
async def test_path_in_env_never_picks_the_host_launcher_binaries(
    client: AsyncClient, tmp_path: Path, vm_type: str
) -> None:
    """``env={"PATH": ...}`` must not decide which bwrap/nsenter/setpriv the host runs as root."""
    fake = tmp_path / "fakebin"
    fake.mkdir()
    hits = tmp_path / "fake-hits"
    hits.mkdir(mode=0o777)
    os.chmod(hits, 0o777)
    for name in (*LAUNCHERS, "sh", "python3", "node", "sleep", "env"):
        real = f"/usr/bin/{name}"
        wrapper = fake / name
        wrapper.write_text(
            f'#!/bin/sh\necho "{name} uid=$(id -u)" > {hits}/{name}-$$\n'
            f'[ -x {real} ] && exec {real} "$@"\nexit 127\n'
        )
        wrapper.chmod(0o755)
    os.chmod(fake, 0o755)
    vm = getattr(client, vm_type).get_or_create(["path"])
    said = await _start_everything(vm, {"PATH": f"{fake}:/usr/bin:/bin"})
    ran = sorted(p.read_text().strip() for p in hits.iterdir())
    assert ran == [], f"the host ran the caller's binaries as the server ({'; '.join(said)}): {ran}"


@pytest.mark.parametrize("vm_type", ["vm", "offline"])
async def test_env_values_never_appear_on_any_command_line(client: AsyncClient, vm_type: str) -> None:
    secret = f"sk-redteam-{uuid.uuid4().hex}"
    vm = getattr(client, vm_type).get_or_create(["cmdline"])
    p = await vm.spawn("sleep", ["20"], env={"API_KEY": secret, "LD_PRELOAD": f"/nonexistent/{secret}.so"})
    session = await vm.create_session("pi", env={"API_KEY": secret})
    try:
        await asyncio.sleep(0.5)
        seen = [(pid, line[:300]) for pid, line in t.proc_cmdlines() if secret in line]
        assert seen == [], f"an env value is on a command line (world-readable in /proc): {seen}"
    finally:
        await vm.kill_process(p["pid"])
        await vm.close_session(session["session_id"])


# ================================================================================================
# 4. Network
# ================================================================================================


async def _connect(vm: Any, *targets: str) -> dict[str, dict[str, Any]]:
    script = await t.put(vm, "connect.py", t.CONNECT)
    r = await vm.exec(f"python3 {script} " + " ".join(targets), timeout=30)
    assert r["exit_code"] == 0, r
    return {d["target"]: d for d in map(json.loads, r["stdout"].splitlines())}


@pytest.mark.parametrize("vm_type", ["vm", "offline"])
async def test_host_services_are_unreachable_from_inside(client: AsyncClient, vm_type: str) -> None:
    """A listener on the host's 127.0.0.1, the actorq server's own port, and a listener on 0.0.0.0
    reached through the host's own non-loopback address: none answers a VM."""
    server_port = int(client.url.rsplit(":", 1)[1])
    addr = t.host_ipv4()
    async with (
        t.tcp_listener("127.0.0.1", b"host-loopback-service\n") as loop_lst,
        t.tcp_listener("0.0.0.0", b"host-any-service\n") as any_lst,
    ):
        targets = [
            f"tcp:127.0.0.1:{loop_lst.port}",
            f"tcp:127.0.0.1:{server_port}",
            f"tcp:localhost:{server_port}",
        ]
        targets += [f"tcp:127.0.0.1:{any_lst.port}"]
        if addr is not None:
            targets += [f"tcp:{addr}:{any_lst.port}"]
        vm = getattr(client, vm_type).get_or_create(["net"])
        got = await _connect(vm, *targets)
    reached = {k: v for k, v in got.items() if v["connected"]}
    assert not reached, f"host services reached from a VM: {reached}"
    assert loop_lst.accepted == 0 and any_lst.accepted == 0


@pytest.mark.parametrize("vm_type", ["vm", "offline"])
async def test_host_abstract_unix_sockets_are_unreachable_from_inside(
    client: AsyncClient, vm_type: str
) -> None:
    """Abstract unix sockets belong to a network namespace: a VM sharing the host's reaches every
    host service listening on one (D-Bus, X11, container runtimes...)."""
    name = f"actorq-redteam-{uuid.uuid4().hex[:12]}"
    async with t.abstract_listener(name, b"host-abstract-service\n") as lst:
        vm = getattr(client, vm_type).get_or_create(["net"])
        got = await _connect(vm, f"unix:@{name}")
    assert not got[f"unix:@{name}"]["connected"], f"host abstract socket reached: {got}"
    assert lst.accepted == 0


@pytest.mark.parametrize("vm_type", ["vm", "offline"])
async def test_a_vm_cannot_drive_the_actorq_api(client: AsyncClient, vm_type: str) -> None:
    """From inside a VM, the server's HTTP API would run commands in (and read) any other VM."""
    victim = client.vm.get_or_create(["victim"])
    await victim.write_file("/home/user/victim-secret.txt", "victim's secret")
    attacker = getattr(client, vm_type).get_or_create(["attacker"])
    script = await t.put(attacker, "api.py", t.API_ATTACK)
    port = int(client.url.rsplit(":", 1)[1])
    for base in (f"http://127.0.0.1:{port}", f"http://localhost:{port}"):
        r = await attacker.exec(f"python3 {script} {base} victim", timeout=30)
        assert r["exit_code"] == 0, r
        out = json.loads(r["stdout"])
        assert out["reached"] is False, f"a VM drove the API through {base}: {out}"
    assert await victim.exists("/home/user/pwned-by-api") is False


async def test_a_declared_host_port_is_forwarded_and_nothing_else(tmp_path: Path) -> None:
    async with (
        t.tcp_listener("127.0.0.1", b"local-llm\n") as allowed,
        t.tcp_listener("127.0.0.1", b"undeclared\n") as other,
    ):
        reg = escape_app.build(vm=escape_app.vm_type(network=escape_app.network(host_ports=[allowed.port])))
        async with reg.test(storage=tmp_path / "data") as client:
            vm = client.vm.get_or_create(["ports"])
            server_port = int(client.url.rsplit(":", 1)[1])
            got = await _connect(
                vm,
                f"tcp:127.0.0.1:{allowed.port}",
                f"tcp:127.0.0.1:{other.port}",
                f"tcp:127.0.0.1:{server_port}",
            )
    assert got[f"tcp:127.0.0.1:{allowed.port}"]["connected"], got
    assert got[f"tcp:127.0.0.1:{allowed.port}"]["banner"] == "local-llm\n", got
    assert not got[f"tcp:127.0.0.1:{other.port}"]["connected"], got
    assert not got[f"tcp:127.0.0.1:{server_port}"]["connected"], got


async def test_network_allow_opts_a_range_back_in(tmp_path: Path) -> None:
    """A private address (another machine on the LAN) is refused unless allowed; the host's own
    addresses stay refused even when an allow range covers them."""
    own = t.host_ipv4()
    with t.lan_host("allowed-range\n") as (lan, port):
        async with t.tcp_listener("0.0.0.0", b"host-itself\n") as on_host:
            allow = [f"{lan}/32"] + ([f"{own}/32"] if own else [])
            reg = escape_app.build(
                vm=escape_app.vm_type(network=escape_app.network(allow=allow)),
                closed=escape_app.vm_type(network=escape_app.network()),
            )
            async with reg.test(storage=tmp_path / "data") as client:
                target = f"tcp:{lan}:{port}"
                host_target = f"tcp:{own}:{on_host.port}"
                opened = await _connect(
                    client.vm.get_or_create(["allow"]), target, *([host_target] if own else [])
                )
                closed = await _connect(client.closed.get_or_create(["allow"]), target)
    assert opened[target]["connected"] and opened[target]["banner"] == "allowed-range\n", opened
    assert not closed[target]["connected"], closed
    if own:
        assert not opened[host_target]["connected"], opened
        assert on_host.accepted == 0


async def _serve(vm: Any, port: int, text: str) -> dict[str, Any]:
    script = await t.put(vm, "http_server.py", t.HTTP_SERVER)
    proc: dict[str, Any] = await vm.spawn("python3", [script, str(port), text])
    return proc


async def _fetch(vm: Any, port: int) -> bytes | None:
    deadline = time.monotonic() + 8
    while True:
        try:
            r = await vm.vm_fetch(port, "/")
            return bytes(r["body"])
        except NotFound:
            if time.monotonic() > deadline:
                return None
            await asyncio.sleep(0.1)


@pytest.mark.parametrize("vm_type", ["vm", "offline"])
async def test_vm_fetch_reaches_the_vms_own_server_and_only_it(client: AsyncClient, vm_type: str) -> None:
    """Two VMs serve on the same port, each its own; vm_fetch reaches each VM's server and never a
    host service on a port where the VM listens on nothing."""
    port = t.free_port()
    handle = getattr(client, vm_type)
    a, b = handle.get_or_create(["fetch-a"]), handle.get_or_create(["fetch-b"])
    pa = await _serve(a, port, "served by A")
    assert await _fetch(a, port) == b"served by A"
    pb = await _serve(b, port, "served by B")
    got_b = await _fetch(b, port)
    procs = {p["pid"]: p for p in await b.list_processes()}
    assert got_b == b"served by B", f"B got {got_b!r}; B's server: {procs[pb['pid']]}"
    async with t.tcp_listener(
        "127.0.0.1", b"HTTP/1.0 200 OK\r\nContent-Length: 12\r\n\r\nhost service"
    ) as lst:
        try:
            r = await a.vm_fetch(lst.port, "/")
            leaked: Any = r["body"]
        except NotFound:
            leaked = None
    assert leaked is None, f"vm_fetch reached a host service: {leaked!r}"
    await a.kill_process(pa["pid"])
    await b.kill_process(pb["pid"])


# ================================================================================================
# 5. No new namespaces, a seccomp filter, no capabilities
# ================================================================================================


@pytest.mark.parametrize("vm_type", ["vm", "offline"])
async def test_no_namespaces_no_capabilities_and_a_seccomp_filter(client: AsyncClient, vm_type: str) -> None:
    vm = getattr(client, vm_type).get_or_create(["seccomp"])
    findings: list[str] = []
    for cmd in (
        "unshare -U true",
        "unshare -Ur true",
        "unshare -Urn true",
        "unshare -Urm true",
        "unshare -n true",
    ):
        r = await vm.exec(cmd)
        if r["exit_code"] == 0:
            findings.append(f"`{cmd}` succeeded inside the VM")
    script = await t.put(vm, "syscalls.py", t.SYSCALLS)
    r = await vm.exec(f"python3 {script}")
    assert r["exit_code"] == 0, r
    for name, (ret, _err) in json.loads(r["stdout"]).items():
        if ret != -1:
            findings.append(f"{name} succeeded inside the VM (returned {ret})")
    status = dict(
        line.split(":", 1)
        for line in (await vm.exec("cat /proc/self/status"))["stdout"].splitlines()
        if ":" in line
    )
    status = {k: v.strip() for k, v in status.items()}
    if status.get("Seccomp") != "2":
        findings.append(f"no seccomp filter: Seccomp: {status.get('Seccomp')}")
    for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        if int(status.get(cap, "1"), 16) != 0:
            findings.append(f"{cap}: {status.get(cap)}")
    if status.get("NoNewPrivs") != "1":
        findings.append(f"NoNewPrivs: {status.get('NoNewPrivs')}")
    assert not findings, report(findings)


# ================================================================================================
# 6. Limits, per VM
# ================================================================================================


async def test_pids_limit_caps_forks_inside_the_vm(tmp_path: Path) -> None:
    reg = escape_app.build(vm=escape_app.vm_type(limits=escape_app.limits(pids=40)))
    async with reg.test(storage=tmp_path / "data") as client:
        vm = client.vm.get_or_create(["pids"])
        script = await t.put(vm, "sleepers.py", t.SLEEPERS)
        r = await vm.exec(f"python3 {script} 100", timeout=60)
        started, failed = (int(x) for x in r["stdout"].split()[:2])
        assert started <= 40 and failed >= 60, f"{started} of 100 sleepers started under pids=40: {r}"
        assert (await vm.exec("echo still-here"))["stdout"] == "still-here\n"


async def test_memory_limit_kills_only_that_vms_process(tmp_path: Path) -> None:
    reg = escape_app.build(vm=escape_app.vm_type(limits=escape_app.limits(memory_mb=128)))
    async with reg.test(storage=tmp_path / "data") as client:
        hog, bystander = client.vm.get_or_create(["hog"]), client.vm.get_or_create(["bystander"])
        script = await t.put(hog, "hog.py", t.MEMORY_HOG)
        blowup: asyncio.Future[Any] = asyncio.ensure_future(hog.exec(f"python3 {script} 300 3", timeout=60))
        await asyncio.sleep(0.5)
        r = await bystander.exec("echo fine")
        assert r["exit_code"] == 0 and r["stdout"] == "fine\n", r
        async with aiohttp.ClientSession() as http, http.get(f"{client.url}/healthz") as resp:
            assert resp.status == 200, await resp.text()
        result = await blowup
        assert result["exit_code"] != 0 and "allocated 300" not in result["stdout"], (
            f"300 MB allocated under memory_mb=128: {result}"
        )
        assert (await hog.exec("echo recovered"))["stdout"] == "recovered\n"


async def test_tmp_is_a_size_capped_tmpfs(tmp_path: Path) -> None:
    reg = escape_app.build(vm=escape_app.vm_type(limits=escape_app.limits(tmp_mb=16)))
    async with reg.test(storage=tmp_path / "data") as client:
        vm = client.vm.get_or_create(["tmpcap"])
        r = await vm.exec("head -c 40M /dev/zero > /tmp/big")
        assert r["exit_code"] != 0 and "No space left on device" in r["stderr"], r
        st = await vm.stat("/tmp/big")
        assert st["size"] <= 16 * 1024 * 1024, st
        r = await vm.exec("findmnt -no FSTYPE /tmp")
        assert r["stdout"].strip() == "tmpfs", r


async def test_disk_limit_stops_the_vm_and_host_side_writes_until_files_are_deleted(tmp_path: Path) -> None:
    limit_error = resource_limit()
    reg = escape_app.build(vm=escape_app.vm_type(limits=escape_app.limits(disk_mb=32)))
    async with reg.test(storage=tmp_path / "data") as client:
        vm = client.vm.get_or_create(["diskcap"])
        script = await t.put(vm, "fill.py", t.SLOW_FILL)
        r = await vm.exec(f"python3 {script} /home/user/big 200", timeout=60)
        assert r["exit_code"] != 0 and "filled" not in r["stdout"], f"200 MB written under disk_mb=32: {r}"
        size = (await vm.stat("/home/user/big"))["size"]
        assert size < 200 * 1024 * 1024, size
        with pytest.raises(limit_error):
            await vm.write_file("/home/user/more.bin", b"\0" * (2 << 20))
        with pytest.raises(limit_error):
            await vm.exec("true")
        with pytest.raises(limit_error):
            await vm.spawn("true")
        await vm.delete_file("/home/user/big")
        await vm.write_file("/home/user/more.bin", b"\0" * (2 << 20))
        assert (await vm.exec("echo writable"))["stdout"] == "writable\n"


# ================================================================================================
# 7. Another VM's files
# ================================================================================================


async def test_vms_run_as_distinct_unprivileged_host_uids(client: AsyncClient, tmp_path: Path) -> None:
    data = tmp_path / "data"
    a, b = client.vm.get_or_create(["uid-a"]), client.vm.get_or_create(["uid-b"])
    owners = {}
    for name, vm in (("a", a), ("b", b)):
        await t.sh(vm, "echo mine > made-inside.txt")
        owners[name] = (await t.locate_home(vm, data) / "made-inside.txt").stat().st_uid
    assert owners["a"] != 0 and owners["b"] != 0 and os.getuid() not in owners.values(), owners
    assert owners["a"] != owners["b"], f"both VMs' processes run as host uid {owners['a']}"


async def test_a_vm_never_reads_or_writes_another_vms_files(client: AsyncClient, tmp_path: Path) -> None:
    data = tmp_path / "data"
    a, b = client.vm.get_or_create(["vm-a"]), client.vm.get_or_create(["vm-b"])
    await b.write_file("/home/user/host-only-file.txt", t.HOST_TOKEN)
    await b.write_file("/home/user/notes.txt", "b's notes")
    b_home = await t.locate_home(b, data)
    before = t.snapshot(b_home)
    findings: list[str] = []
    # from inside A: by B's host path, /proc games and the shared host uid
    inside = [
        f"cat {b_home}/host-only-file.txt",
        f"cat /proc/self/root{b_home}/host-only-file.txt",
        f"cat /proc/1/root{b_home}/notes.txt",
        f"ls {b_home} {b_home.parent}",
        f"echo x > {b_home}/from-a.txt",
        f"echo x > /proc/self/root{b_home}/from-a.txt",
    ]
    r = await a.exec("; ".join(inside))
    if t.mentions_host(r["stdout"]) or "b's notes" in r["stdout"]:
        findings.append(f"A read B's files from inside: {r['stdout'][:200]}")
    # through host-side actions on links A plants
    links = {
        "b_home": b_home,
        "b_proc": f"/proc/self/root{b_home}",
        ".notes.actorq-tmp": b_home / "notes.txt",
        "b_rel": CLIMB + str(b_home).lstrip("/"),
    }
    await t.sh(a, " && ".join(f"ln -s '{target}' '{name}'" for name, target in links.items()))
    calls: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
        ("read b_home/notes.txt", lambda: a.read_file("b_home/notes.txt")),
        ("read b_rel/host-only-file.txt", lambda: a.read_file("b_rel/host-only-file.txt")),
        ("readdir b_proc", lambda: a.readdir("b_proc")),
        ("write notes (tmp link)", lambda: a.write_file("notes", "written by A")),
        ("write b_rel/from-a.txt", lambda: a.write_file("b_rel/from-a.txt", "written by A")),
        ("move into b_home", lambda: a.move("notes", "b_home")),
        ("delete b_rel/notes.txt", lambda: a.delete_file("b_rel/notes.txt")),
    ]
    for what, call in calls:
        try:
            value = await call()
        except ActorqError:
            continue
        if t.mentions_host(value) or "b's notes" in repr(value):
            findings.append(f"{what} returned B's files: {value!r:.200}")
    findings += [f"B's home: {d}" for d in t.diff(before, t.snapshot(b_home))]
    if (b_home / "notes.txt").read_text() != "b's notes":
        findings.append(f"B's notes.txt overwritten by A: {(b_home / 'notes.txt').read_text()!r}")
    assert not findings, report(findings)


# ================================================================================================
# 8. The data directory
# ================================================================================================


async def test_the_data_directory_is_private(client: AsyncClient, tmp_path: Path) -> None:
    """0700 for the data directory and every directory the server made, 0600 for its files;
    only what lies inside a VM's own /home/user and /tmp is the VM's business."""
    data = tmp_path / "data"
    vm_trees: list[Path] = []
    for handle, key in ((client.vm, "perm-a"), (client.offline, "perm-b")):
        vm = handle.get_or_create([key])
        await vm.write_file("/home/user/src/app.py", "print('hi')")
        await t.sh(vm, "mkdir -p made && echo x > made/inside.txt")
        p = await vm.spawn("sleep", ["0.1"])
        await vm.wait_process(p["pid"], timeout=10)
        vm_trees.append(await t.locate_home(vm, data))
        tmp_dir = await t.locate_tmp(vm, data)
        if tmp_dir is not None:
            vm_trees.append(tmp_dir)
    session = await client.vm.get_or_create(["perm-a"]).create_session("pi")
    await client.vm.get_or_create(["perm-a"]).close_session(session["session_id"])
    findings: list[str] = []
    mode = stat.S_IMODE(data.stat().st_mode)
    if mode != 0o700:
        findings.append(f"data directory is {oct(mode)}")
    for dirpath, dirnames, filenames in os.walk(data):
        here = Path(dirpath)
        dirnames[:] = [d for d in dirnames if here / d not in vm_trees]
        for name in [*dirnames, *filenames]:
            p = here / name
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                continue
            m = stat.S_IMODE(st.st_mode)
            if m & 0o077:
                kind = "directory" if stat.S_ISDIR(st.st_mode) else "file"
                findings.append(f"{kind} {p.relative_to(data)} is {oct(m)}")
    assert not findings, report(findings)


# ================================================================================================
# 9. Error messages never name host paths, and bad paths are typed errors
# ================================================================================================

BAD_PATHS = (
    "file.txt/below",  # through a regular file (ENOTDIR)
    "sock",  # a unix socket the VM made
    "loop1",  # a symlink loop
    "loop1/x",
    "a" * 300,  # a name too long
    "/home/user/" + ("x" * 250 + "/") * 16,  # short enough for the VM, too long once on the host
    "dangling",  # a symlink to nowhere
    "../../../../etc/passwd",
    "/proc/self/root/etc/passwd",
    "abs_host",  # a symlink to a host path
    "sub",  # a directory where a file is expected
)


async def _bad_path_errors(vm: Any) -> list[tuple[str, str, ActorqError | dict[str, Any]]]:
    await t.sh(
        vm,
        "echo x > file.txt && mkdir -p sub/inner && ln -sfn loop2 loop1 && ln -sfn loop1 loop2 "
        "&& ln -sfn /nowhere/at/all dangling && ln -sfn /etc/shadow abs_host "
        "&& python3 -c \"import socket; socket.socket(socket.AF_UNIX).bind('sock')\"",
    )
    out: list[tuple[str, str, ActorqError | dict[str, Any]]] = []

    async def attempt(what: str, path: str, call: Awaitable[Any]) -> None:
        try:
            value = await call
        except ActorqError as exc:
            out.append((what, path, exc))
            return
        if isinstance(value, list):
            for item in value:
                fields = t.as_fields(item)
                if fields and isinstance(fields.get("error"), dict):
                    out.append((what, path, fields["error"]))

    for p in BAD_PATHS:
        await attempt("read_file", p, vm.read_file(p))
        await attempt("read_files", p, vm.read_files([p]))
        await attempt("write_file", p, vm.write_file(f"{p}/new", "x"))
        await attempt("write_files", p, vm.write_files([{"path": f"{p}/new", "content": "x"}]))
        await attempt("stat", p, vm.stat(p))
        await attempt("exists", p, vm.exists(p))
        await attempt("readdir", p, vm.readdir(p))
        await attempt("readdir_recursive", p, vm.readdir_recursive(p))
        await attempt("mkdir", p, vm.mkdir(f"{p}/new"))
        await attempt("delete_file", p, vm.delete_file(f"{p}/nothing"))
        await attempt("move", p, vm.move(p, "moved-away"))
        await attempt("exec cwd", p, vm.exec("true", cwd=p))
    await attempt("move into itself", "sub", vm.move("sub", "sub/inner"))
    await attempt("move dir onto file", "sub", vm.move("sub", "file.txt"))
    return out


def _text(err: ActorqError | dict[str, Any]) -> str:
    return t.error_text(err) if isinstance(err, ActorqError) else json.dumps(err)


async def test_error_messages_never_name_host_paths(client: AsyncClient, tmp_path: Path) -> None:
    vm = client.vm.get_or_create(["errors"])
    errors = await _bad_path_errors(vm)
    data = tmp_path / "data"
    leaks = [
        f"{what}({path[:40]!r}): {_text(err)[:240]}"
        for what, path, err in errors
        if t.leak(_text(err), data) is not None
    ]
    assert not leaks, report(leaks)


async def test_bad_paths_get_typed_errors_not_server_failures(client: AsyncClient) -> None:
    vm = client.vm.get_or_create(["errors"])
    errors = await _bad_path_errors(vm)
    failures = []
    for what, path, err in errors:
        code = err.code if isinstance(err, ActorqError) else err.get("code")
        if code in ("actor_error", "actorq_error"):
            failures.append(f"{what}({path[:40]!r}): {_text(err)[:200]}")
    assert not failures, report(failures)


# ================================================================================================
# Found on the way: attacks beyond the list above
# ================================================================================================


async def test_a_fifo_in_the_vm_does_not_hang_host_side_actions(client: AsyncClient, tmp_path: Path) -> None:
    """A VM makes FIFOs: host-side read_file opens one and blocks for good (a server thread each);
    so does write_file when the VM made its temporary file a FIFO."""
    vm = client.vm.get_or_create(["fifo"])
    await t.sh(vm, "mkfifo pipe .target.actorq-tmp")
    home = await t.locate_home(vm, tmp_path / "data")
    held: list[int] = []

    def unblock_reader() -> None:  # a writer that goes away at once: the blocked reader sees EOF
        with contextlib.suppress(OSError):
            os.close(os.open(home / "pipe", os.O_WRONLY | os.O_NONBLOCK))

    def unblock_writer() -> None:  # a reader kept open until the writer is done
        with contextlib.suppress(OSError):
            held.append(os.open(home / ".target.actorq-tmp", os.O_RDONLY | os.O_NONBLOCK))

    outcomes: list[str] = []
    cases: list[tuple[str, Callable[[], Awaitable[Any]], Callable[[], None]]] = [
        ("read_file", lambda: vm.read_file("/home/user/pipe"), unblock_reader),
        ("read_files", lambda: vm.read_files(["/home/user/pipe"]), unblock_reader),
        ("write_file", lambda: vm.write_file("/home/user/target", "data"), unblock_writer),
    ]
    for name, call, unblock in cases:
        task = asyncio.ensure_future(call())
        done, _ = await asyncio.wait({task}, timeout=5)
        if not done:
            outcomes.append(f"{name} still blocked on a FIFO after 5 s")
            for _ in range(100):  # let the server's thread go, so the server can stop
                unblock()
                await asyncio.sleep(0.05)
                if task.done():
                    break
        try:
            await asyncio.wait_for(task, 10)
        except ActorqError as exc:
            if not t.typed(exc):
                outcomes.append(f"{name}: {exc.code} {exc.message[:120]}")
    for fd in held:
        os.close(fd)
    assert not outcomes, report(outcomes)


async def test_a_deep_tree_made_inside_can_be_listed_and_deleted(client: AsyncClient, tmp_path: Path) -> None:
    """A VM nests 1100 directories (cd-ing down, so no path is ever long inside): host-side
    recursive actions must not fail on it, and the VM's files must stay deletable. (Made in one
    process: 1100 mkdir(1) runs took ~5 s on a loaded machine, and a disk measurement in the middle
    rightly stopped the VM's processes once the tree was too deep to measure.)"""
    vm = client.vm.get_or_create(["deep"])
    make = "import os\nfor _ in range(1100):\n    os.mkdir('d')\n    os.chdir('d')"
    findings: list[str] = []
    try:
        await t.sh(vm, f'python3 -c "{make}"', timeout=60)
        try:
            await vm.readdir_recursive("/home/user")
        except ActorqError as exc:
            if not t.typed(exc):
                findings.append(f"readdir_recursive: {exc.code} {exc.message[:160]}")
        try:
            await vm.delete_file("/home/user/d", recursive=True)
        except ActorqError as exc:
            findings.append(f"delete_file(recursive=True) of the VM's tree: {exc.code} {exc.message[:160]}")
        if await vm.exists("/home/user/d"):
            findings.append("the deep tree could not be deleted")
    finally:
        # a tree left behind would stop pytest's own clean-up of old temporary directories later
        # (shutil.rmtree recurses per level); rm(1) removes any depth
        rm = ("-type", "d", "-name", "d", "-prune", "-exec", "rm", "-rf", "{}", "+")
        proc = await asyncio.create_subprocess_exec("find", str(tmp_path / "data"), "-maxdepth", "6", *rm)
        await proc.wait()
    assert not findings, report(findings)


async def test_a_long_path_does_not_stall_the_server(client: AsyncClient) -> None:
    """Each path component must not cost a walk of the whole path again: 400 components took
    seconds of server CPU, on the event loop for mkdir (every other request waited)."""
    vm = client.vm.get_or_create(["long"])
    await vm.exec("true")
    latencies: list[float] = []
    stop = threading.Event()

    def probe() -> None:
        while not stop.is_set():
            t0 = time.monotonic()
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"{client.url}/healthz", timeout=60) as r,
            ):
                r.read()
            latencies.append(time.monotonic() - t0)
            time.sleep(0.05)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    took: dict[str, float] = {}
    cases: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
        ("mkdir", lambda: vm.mkdir("/home/user/" + "m/" * 400)),
        ("write_file", lambda: vm.write_file("/home/user/" + "w/" * 400 + "f.txt", "x")),
    ]
    for name, call in cases:
        t0 = time.monotonic()
        try:
            await call()
        except ActorqError as exc:
            assert t.typed(exc), exc
        took[name] = time.monotonic() - t0
    await asyncio.sleep(0.3)
    stop.set()
    await asyncio.to_thread(thread.join, 60)
    slow = max(took.values()) >= 3.0 or max(latencies) >= 1.5
    assert not slow, f"a 400-component path took {took} s; /healthz waited up to {max(latencies):.1f} s"


async def test_a_vm_learns_no_host_layout_but_its_homes_mount_root(
    client: AsyncClient, tmp_path: Path
) -> None:
    """/proc/self/mountinfo names, as the root of each bind mount, where the source lies on the
    host filesystem: for the VM's home that is its directory in the data directory, and nothing
    can hide that short of a filesystem of its own (documented). Nothing else may name the data
    directory: not the generated /etc files, not /tmp, not the cgroup or the descriptors."""
    vm = client.vm.get_or_create(["layout"])
    r = await vm.exec("cat /proc/self/mountinfo /proc/mounts /proc/self/cgroup; ls -la /proc/self/fd/")
    data = tmp_path / "data"
    lines = [line for line in r["stdout"].splitlines() if str(data) in line]
    others = [
        line for line in lines if not (line.split()[3].endswith("/vm/home/user") and " /home/user " in line)
    ]
    assert not others, "the VM sees the data directory beyond its home's mount root:\n" + "\n".join(
        others[:5]
    )


# ================================================================================================
# 9. Terminals
# ================================================================================================

TIOCSTI_ALL = r"""
import errno, fcntl, glob, json, os, sys, termios
marker = "echo INJ''ECTED-" + sys.argv[1]  # prints INJECTED-<hex> only if it runs
found = {"pts": sorted(os.listdir("/dev/pts"))}  # before ptmx below opens a new one
targets = {"fd0": 0, "fd1": 1, "fd2": 2}
for path in ["/dev/tty", "/dev/console", *sorted(glob.glob("/dev/pts/*"))]:
    try:
        targets[path] = os.open(path, os.O_RDWR | os.O_NOCTTY)
    except OSError as exc:
        found[path] = "open: " + errno.errorcode.get(exc.errno, str(exc.errno))
for name, fd in targets.items():
    try:
        for ch in marker + "\n":
            fcntl.ioctl(fd, termios.TIOCSTI, ch.encode())
        found[name] = "typed"
    except OSError as exc:
        found[name] = errno.errorcode.get(exc.errno, str(exc.errno))
found["tty"] = os.ttyname(0)
print("RESULT" + json.dumps(found) + "END")
"""


async def test_a_shell_cannot_type_into_any_terminal_or_reach_the_host(
    client: AsyncClient, bait: t.Bait, tmp_path: Path
) -> None:
    """A VM's shell runs on a terminal of the VM's own devpts: ``TIOCSTI`` (typing into a terminal,
    which would run commands in the shell reading it) is refused on it and on every terminal it can
    open, the host's terminals are not there to open, and the shell sees nothing of the host."""
    token = uuid.uuid4().hex
    host_master, host_slave = os.openpty()  # stands for the terminal the server was started from
    os.set_blocking(host_slave, False)
    vm = client.vm.get_or_create(["terminal"])
    script = await t.put(vm, "tiocsti.py", TIOCSTI_ALL)
    seen: list[str] = []
    async with await vm.connect() as conn:

        async def collect() -> None:
            async for ev in conn:
                if ev.name == "shell_data":
                    seen.append(ev.data["data"])

        task = asyncio.create_task(collect())
        try:
            sid = await vm.open_shell()
            await vm.write_shell(sid, f"python3 {script} {token}; cat {bait.file}; ls /proc/1/root/\n")
            deadline = time.monotonic() + 15
            while "END" not in "".join(seen).split("RESULT", 1)[-1]:
                assert time.monotonic() < deadline, "".join(seen)[-2000:]
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)  # anything typed would have run by now
            await vm.close_shell(sid)
        finally:
            task.cancel()
    out = "".join(seen)
    result = json.loads(out.split("RESULT", 1)[1].split("END", 1)[0].replace("\r\n", ""))
    typed = [name for name, verdict in result.items() if verdict == "typed"]
    assert typed == [], f"TIOCSTI typed into {typed}: {result}"
    assert result["fd0"] == "EPERM" and result["/dev/tty"] == "EPERM", result
    assert result["tty"].startswith("/dev/pts/") and result["pts"] == ["0", "ptmx"], result
    assert t.HOST_TOKEN not in out
    listing = out.rsplit("ls /proc/1/root/", 1)[-1].split()
    assert "home" in listing and not {"root", "var", "boot", "srv"} & set(listing), listing
    assert f"INJECTED-{token}" not in out, "a line typed by TIOCSTI ran in the shell"
    try:
        leaked = os.read(host_slave, 65536)
    except BlockingIOError:
        leaked = b""
    assert token.encode() not in leaked
    os.close(host_master)
    os.close(host_slave)
