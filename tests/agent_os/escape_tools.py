"""Attack tools for the escape suite: scripts that run inside a VM (hostile code), and the host-side
bait, listeners and probes the tests check them against."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import os
import secrets
import shutil
import socket
import stat
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from actorq.errors import ActorqError

HOST_TOKEN = "HOST-ONLY-c0ffee-7d1e"  # content of every bait file: seen in a response = host read
HOST_NAMES = ("host-only-file.txt", "host-only-dir", "host-only-deep.txt")  # names only the host has
BAIT_SIZE = 4321  # a size no VM file in these tests has: a stat reporting it described the host
BAIT_MTIME = 1_000_000_000  # 2001-09-09: a stat reporting it described the host

# -- scripts run inside the VM -----------------------------------------------------------------

SWAP = r"""
# swap two names (a directory and a symlink) atomically, again and again: renameat2(RENAME_EXCHANGE)
import ctypes, platform, sys, time
libc = ctypes.CDLL(None, use_errno=True)
NR = {"x86_64": 316, "aarch64": 276}[platform.machine()]
a, b, secs = sys.argv[1].encode(), sys.argv[2].encode(), float(sys.argv[3])
end, n = time.monotonic() + secs, 0
while time.monotonic() < end:
    if libc.syscall(NR, -100, a, -100, b, 2) != 0:
        print("renameat2 failed: errno", ctypes.get_errno(), flush=True)
        sys.exit(1)
    n += 1
print("swaps", n, flush=True)
"""

CONNECT = r"""
# try each target ("tcp:HOST:PORT" or "unix:@NAME"); one JSON line per target
import json, socket, sys
for target in sys.argv[1:]:
    kind, _, rest = target.partition(":")
    try:
        if kind == "unix":
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(3)
            s.connect("\0" + rest[1:])
        else:
            host, port = rest.rsplit(":", 1)
            s = socket.create_connection((host, int(port)), timeout=3)
        s.settimeout(3)
        try:
            banner = s.recv(100).decode(errors="replace")
        except OSError:
            banner = ""
        s.close()
        print(json.dumps({"target": target, "connected": True, "banner": banner}))
    except OSError as e:
        print(json.dumps({"target": target, "connected": False, "error": str(e)}))
"""

SYSCALLS = r"""
# each call would succeed for an unprivileged process without a seccomp filter (or fails anyway
# without capabilities); prints {name: [return value, errno]}
import ctypes, json, os, platform
libc = ctypes.CDLL(None, use_errno=True)
NR = {
    "x86_64": dict(unshare=272, mount=165, keyctl=250, add_key=248, bpf=321, perf_event_open=298,
                   ptrace=101, kexec_load=246, init_module=175, finit_module=313),
    "aarch64": dict(unshare=97, mount=40, keyctl=219, add_key=217, bpf=280, perf_event_open=241,
                    ptrace=117, kexec_load=104, init_module=105, finit_module=273),
}[platform.machine()]
sc = libc.syscall
sc.restype = ctypes.c_long
L = ctypes.c_long

def call(*args):
    ctypes.set_errno(0)
    r = sc(*args)
    return [int(r), ctypes.get_errno()]

def in_child(fn):
    # run fn in a child (it may change the child: a new namespace, a tracer); report its result
    rd, wr = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(rd)
        os.write(wr, json.dumps(fn()).encode())
        os._exit(0)
    os.close(wr)
    data = os.read(rd, 4096)
    os.waitpid(pid, 0)
    return json.loads(data)

out = {}
out["unshare(CLONE_NEWUSER)"] = in_child(lambda: call(L(NR["unshare"]), L(0x10000000)))
out["unshare(CLONE_NEWNET)"] = in_child(lambda: call(L(NR["unshare"]), L(0x40000000)))
out["unshare(CLONE_NEWUSER|CLONE_NEWNS)"] = in_child(lambda: call(L(NR["unshare"]), L(0x10020000)))
os.makedirs("/tmp/mnt-probe", exist_ok=True)
out["mount"] = call(L(NR["mount"]), b"none", b"/tmp/mnt-probe", b"tmpfs", L(0), None)
out["keyctl"] = call(L(NR["keyctl"]), L(0), L(-3), L(1))  # KEYCTL_GET_KEYRING_ID, session, create
out["add_key"] = call(L(NR["add_key"]), b"user", b"redteam", b"x", L(1), L(-2))
attr = ctypes.create_string_buffer(16)  # BPF_MAP_CREATE: array map, 4-byte key/value, 1 entry
ctypes.memmove(attr, (ctypes.c_uint32 * 4)(2, 4, 4, 1), 16)
out["bpf"] = call(L(NR["bpf"]), L(0), attr, L(16))
pe = ctypes.create_string_buffer(128)  # PERF_TYPE_SOFTWARE / CPU_CLOCK, user space only
ctypes.memmove(pe, (ctypes.c_uint32 * 2)(1, 128), 8)
ctypes.memmove(ctypes.byref(pe, 40), (ctypes.c_uint64 * 1)(1 | 32 | 64), 8)
out["perf_event_open"] = call(L(NR["perf_event_open"]), pe, L(0), L(-1), L(-1), L(0))
out["ptrace(PTRACE_TRACEME)"] = in_child(lambda: call(L(NR["ptrace"]), L(0), L(0), L(0), L(0)))
out["kexec_load"] = call(L(NR["kexec_load"]), L(0), L(0), None, L(0))
out["init_module"] = call(L(NR["init_module"]), None, L(0), b"")
out["finit_module"] = call(L(NR["finit_module"]), L(-1), b"", L(0))
print(json.dumps(out))
"""

SLEEPERS = r"""
# start up to N sleepers, count how many started, then end them all
import subprocess, sys
n = int(sys.argv[1])
procs, failed = [], 0
for _ in range(n):
    try:
        procs.append(subprocess.Popen(["sleep", "30"]))
    except OSError:
        failed += 1
print(len(procs), failed, flush=True)
for p in procs:
    p.kill()
for p in procs:
    p.wait()
"""

MEMORY_HOG = r"""
# allocate and touch MB megabytes, hold them a moment
import sys, time
mb = int(sys.argv[1])
chunks = [bytearray(1 << 20) for _ in range(mb)]  # bytearray zero-fills: every page is touched
print("allocated", len(chunks), flush=True)
time.sleep(float(sys.argv[2]) if len(sys.argv) > 2 else 0)
"""

SLOW_FILL = r"""
# write MB megabytes to PATH, one megabyte every few milliseconds (a poller gets a chance to see it)
import sys, time
path, mb = sys.argv[1], int(sys.argv[2])
with open(path, "wb") as f:
    for i in range(mb):
        f.write(b"\1" * (1 << 20))
        f.flush()
        time.sleep(0.01)
print("filled", mb, flush=True)
"""

API_ATTACK = r"""
# from inside a VM: drive the actorq API to run a command in another VM and read it back
import json, sys, urllib.error, urllib.request
base, victim = sys.argv[1], sys.argv[2]
answered = []  # every HTTP answer the API gave (even an error): the API was reachable

def post(path, body):
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            answered.append(r.status)
            return json.load(r)
    except urllib.error.HTTPError as e:
        answered.append(e.code)
        raise

try:
    info = post("/v1/actors", {"name": "vm", "key": [victim]})
    actor = info.get("actor_id") or info.get("id")
    post(f"/v1/actors/{actor}/actions/write_file", {"args": ["/home/user/pwned-by-api", "pwned"]})
    r = post(f"/v1/actors/{actor}/actions/exec", {"args": ["cat /home/user/victim-secret.txt"]})
    print(json.dumps({"reached": True, "answers": answered, "stdout": r["result"]["stdout"]}))
except Exception as e:
    print(json.dumps({"reached": bool(answered), "answers": answered, "error": repr(e)}))
"""

HTTP_SERVER = r"""
# a one-page HTTP server on 127.0.0.1:PORT answering TEXT
import http.server, sys
port, text = int(sys.argv[1]), sys.argv[2].encode()

class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(text)))
        self.end_headers()
        self.wfile.write(text)

    def log_message(self, *a):
        pass

try:
    srv = http.server.HTTPServer(("127.0.0.1", port), H)
except OSError as e:
    print("bind failed:", e, flush=True)
    sys.exit(3)
print("listening", flush=True)
srv.serve_forever()
"""

PRELOAD_C = r"""
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void append(int out, const char *path) {
    char buf[2048];
    int fd = open(path, O_RDONLY);
    if (fd < 0) return;
    ssize_t n = read(fd, buf, sizeof buf);
    if (n > 0) write(out, buf, (size_t)n);
    close(fd);
}

/* Runs in every process that loads this object: says who and where it was. The host directory
   exists only on the host; inside a VM the marker lands in the VM's own /tmp. */
__attribute__((constructor)) static void marker(void) {
    const char *dirs[] = {HOST_MARKERS, "/tmp"};
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    char exe[512] = {0}, mnt[128] = {0}, pidns[128] = {0};
    readlink("/proc/self/exe", exe, sizeof exe - 1);
    readlink("/proc/self/ns/mnt", mnt, sizeof mnt - 1);
    readlink("/proc/self/ns/pid", pidns, sizeof pidns - 1);
    for (int i = 0; i < 2; i++) {
        char p[1024];
        snprintf(p, sizeof p, "%s/preload-marker-%d-%ld-%ld", dirs[i], (int)getpid(), (long)ts.tv_sec,
                 (long)ts.tv_nsec);
        int fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0666);
        if (fd < 0) continue;
        dprintf(fd, "uid=%d euid=%d exe=%s mnt=%s pidns=%s\n", (int)getuid(), (int)geteuid(), exe, mnt,
                pidns);
        append(fd, "/proc/self/cgroup");
        close(fd);
        return;
    }
}
"""


async def put(vm: Any, name: str, text: str) -> str:
    """Write an attack script into the VM's home; its VM path."""
    path = f"/home/user/.redteam/{name}"
    await vm.write_file(path, text)
    return path


async def sh(vm: Any, command: str, **kwargs: Any) -> dict[str, Any]:
    """Run a shell line in the VM that must succeed (setting up an attack)."""
    r: dict[str, Any] = await vm.exec(command, **kwargs)
    assert r["exit_code"] == 0, f"attack setup failed: {command!r}: {r}"
    return r


# -- host-side bait and evidence ---------------------------------------------------------------


@dataclass
class Bait:
    """Root-owned host files outside the data directory, which no VM action may touch."""

    dir: Path
    file: Path  # dir/host-only-file.txt
    deep: Path  # dir/host-only-dir/host-only-deep.txt

    def snapshot(self) -> dict[str, tuple[Any, ...]]:
        return snapshot(self.dir)


def make_bait(base: Path) -> Bait:
    d = base / "host-bait"
    (d / "host-only-dir").mkdir(parents=True)
    os.chmod(d, 0o755)
    f = d / "host-only-file.txt"
    deep = d / "host-only-dir" / "host-only-deep.txt"
    for p in (f, deep):
        p.write_text(HOST_TOKEN + "x" * (BAIT_SIZE - len(HOST_TOKEN)))
        os.chmod(p, 0o644)
        os.utime(p, (BAIT_MTIME, BAIT_MTIME))
    os.utime(d / "host-only-dir", (BAIT_MTIME, BAIT_MTIME))
    return Bait(d, f, deep)


def snapshot(root: Path) -> dict[str, tuple[Any, ...]]:
    """Everything about a host tree an attack could change: names, types, modes, owners, contents."""
    out: dict[str, tuple[Any, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in [".", *dirnames, *filenames]:
            p = os.path.join(dirpath, name) if name != "." else dirpath
            st = os.lstat(p)
            kind = stat.S_IFMT(st.st_mode)
            extra: Any = None
            if stat.S_ISREG(st.st_mode):
                extra = hashlib.sha256(Path(p).read_bytes()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                extra = os.readlink(p)
            out[os.path.relpath(p, root)] = (kind, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, extra)
    return out


def diff(before: dict[str, tuple[Any, ...]], after: dict[str, tuple[Any, ...]]) -> list[str]:
    out = [f"created on the host: {p}" for p in sorted(set(after) - set(before))]
    out += [f"deleted on the host: {p}" for p in sorted(set(before) - set(after))]
    out += [
        f"changed on the host: {p} {before[p]} -> {after[p]}"
        for p in sorted(set(before) & set(after))
        if before[p] != after[p]
    ]
    return out


def as_fields(value: Any) -> dict[str, Any] | None:
    """A VM action's result as its fields: a typed result (``FileStat``, ``BatchReadResult``...) or a
    dict; ``None`` for anything else (bytes, strings, numbers)."""
    if isinstance(value, dict):
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    return None


def mentions_host(value: Any) -> bool:
    """A response carries host content: the bait's token or names."""
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else repr(value)
    return HOST_TOKEN in text or any(n in text for n in HOST_NAMES)


def host_paths(data: Path) -> list[str]:
    """Spellings of the data directory (and the VM roots under it) a message must never contain."""
    return list(dict.fromkeys([str(data), os.path.realpath(data), "/actors/"]))


def leak(text: str, data: Path) -> str | None:
    for p in host_paths(data):
        if p in text:
            return p
    return None


def error_text(exc: ActorqError) -> str:
    return f"{exc.code} {exc.message} {exc.details!r}"


def typed(exc: ActorqError) -> bool:
    """A clear client error (4xx), not a server failure (500 'action raised OSError')."""
    return exc.status < 500


def find_home(data: Path, marker: str) -> Path | None:
    """The host directory holding a VM's /home/user: where the marker file the VM wrote lies."""
    for dirpath, _dirnames, filenames in os.walk(data, followlinks=False):
        if marker in filenames:
            return Path(dirpath)
    return None


async def locate_home(vm: Any, data: Path) -> Path:
    marker = f"home-marker-{uuid.uuid4().hex}"
    await vm.write_file(f"/home/user/{marker}", "m")
    home = find_home(data, marker)
    assert home is not None, "could not find the VM's home on the host"
    return home


async def locate_tmp(vm: Any, data: Path) -> Path | None:
    """The host directory holding a VM's /tmp, if it lies under the data directory (a tmpfs
    does not)."""
    marker = f"tmp-marker-{uuid.uuid4().hex}"
    await vm.write_file(f"/tmp/{marker}", "m")
    return find_home(data, marker)


def server_snapshot(data: Path, vm_trees: list[Path]) -> dict[str, tuple[Any, ...]]:
    """The server's own files for its VMs: everything below the data directory except the VMs'
    /home/user and /tmp trees and the database files at its top."""
    out: dict[str, tuple[Any, ...]] = {}
    skip = {str(p) for p in vm_trees}
    for entry in sorted(data.iterdir()):
        if not entry.is_dir() or entry.is_symlink():
            continue
        for rel, info in snapshot(entry).items():
            full = os.path.normpath(os.path.join(entry, rel))
            if not any(full == s or full.startswith(s + os.sep) for s in skip):
                out[os.path.relpath(full, data)] = info
    return out


def own_mnt_ns() -> str:
    return os.readlink("/proc/self/ns/mnt")


def host_ipv4() -> str | None:
    """An IPv4 address of this host other than loopback."""
    try:
        out = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.TimeoutExpired):
        out = ""
    for line in out.splitlines():
        parts = line.split()
        if "inet" in parts:
            addr = parts[parts.index("inet") + 1].split("/")[0]
            if not addr.startswith("127."):
                return addr
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the outgoing address
        addr = s.getsockname()[0]
        if not addr.startswith("127."):
            return str(addr)
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Listener:
    """A host service a VM must not reach: every connection it accepts is counted."""

    banner: bytes
    port: int = 0
    accepted: int = 0
    server: asyncio.AbstractServer | None = None
    _conns: list[asyncio.StreamWriter] = field(default_factory=list)

    async def _on_conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        writer.write(self.banner)
        with contextlib.suppress(Exception):
            await writer.drain()
        writer.close()


@contextlib.asynccontextmanager
async def tcp_listener(host: str, banner: bytes, port: int = 0) -> AsyncIterator[Listener]:
    lst = Listener(banner)
    lst.server = await asyncio.start_server(lst._on_conn, host, port)
    lst.port = lst.server.sockets[0].getsockname()[1]
    try:
        yield lst
    finally:
        lst.server.close()
        await lst.server.wait_closed()


_LAN_SERVER = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(16)
print("ready", flush=True)
while True:
    c, _ = s.accept(); c.sendall(sys.argv[3].encode()); c.close()
"""


@contextlib.contextmanager
def lan_host(banner: str) -> Iterator[tuple[str, int]]:
    """Another machine on a private LAN: a network namespace behind a veth pair, with a TCP
    service at 10.199.x.2 (the host's end, 10.199.x.1, is one of the host's own addresses)."""
    if shutil.which("ip") is None:
        pytest.skip("iproute2 is not installed")
    n = secrets.randbelow(250) + 1
    name, host_if, peer_if = f"aq-lan-{n}", f"aqlan{n}a", f"aqlan{n}b"
    here, there, port = f"10.199.{n}.1", f"10.199.{n}.2", 18080
    setup = [
        ["ip", "netns", "add", name],
        ["ip", "link", "add", host_if, "type", "veth", "peer", "name", peer_if],
        ["ip", "link", "set", peer_if, "netns", name],
        ["ip", "addr", "add", f"{here}/30", "dev", host_if],
        ["ip", "link", "set", host_if, "up"],
        ["ip", "-n", name, "addr", "add", f"{there}/30", "dev", peer_if],
        ["ip", "-n", name, "link", "set", peer_if, "up"],
        ["ip", "-n", name, "link", "set", "lo", "up"],
    ]
    proc: subprocess.Popen[bytes] | None = None
    try:
        for cmd in setup:
            subprocess.run(cmd, check=True, capture_output=True)
        proc = subprocess.Popen(
            ["ip", "netns", "exec", name, sys.executable, "-c", _LAN_SERVER, there, str(port), banner],
            stdout=subprocess.PIPE,
        )
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
        yield there, port
    finally:
        if proc is not None:
            proc.kill()
            proc.wait()
        subprocess.run(["ip", "link", "del", host_if], capture_output=True)
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


@contextlib.asynccontextmanager
async def abstract_listener(name: str, banner: bytes) -> AsyncIterator[Listener]:
    lst = Listener(banner)
    lst.server = await asyncio.start_unix_server(lst._on_conn, path="\0" + name)
    try:
        yield lst
    finally:
        lst.server.close()
        await lst.server.wait_closed()


def compile_preload(workdir: Path, host_markers: Path) -> Path:
    """A shared object whose constructor leaves a marker (uid, exe, namespaces, cgroup)."""
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is not installed: cannot build the LD_PRELOAD probe")
    workdir.mkdir(parents=True, exist_ok=True)
    src = workdir / "probe.c"
    src.write_text(PRELOAD_C)
    so = workdir / "probe.so"
    subprocess.run(
        [gcc, "-shared", "-fPIC", "-O1", f'-DHOST_MARKERS="{host_markers}"', "-o", str(so), str(src)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    os.chmod(workdir, 0o755)
    os.chmod(so, 0o755)
    return so


def markers(directory: Path) -> list[str]:
    if not directory.is_dir():
        return []
    return [p.read_text(errors="replace") for p in sorted(directory.glob("preload-marker-*"))]


def proc_cmdlines() -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        out.append((int(entry), raw.replace(b"\0", b" ").decode("utf-8", "replace")))
    return out
