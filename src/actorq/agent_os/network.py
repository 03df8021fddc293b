"""A VM's network: its own namespace, policy routing that fences it, slirp4netns, host port forwards.

Every VM has its own network namespace (made by the VM's host thread, see ``host.py``), so its
loopback is its own and the host's loopback services (the actorq API among them) are out of reach.
With ``Network(outbound=True)`` a ``slirp4netns`` process, running on the host with its own
sandbox and seccomp filter, carries the VM's connections out as ordinary sockets of the host.
Before any VM process runs, policy routing rules in the VM's namespace make the host's own
addresses and gateways, private, link-local (cloud metadata) and CGNAT ranges answer ``EACCES``
(``prohibit``), except what ``Network(allow=...)`` opts back in (never the host's own addresses);
slirp's DNS forwarder (10.0.2.3) stays reachable on port 53.
The VM has no capabilities in that namespace, so it cannot change the rules.

``Network(host_ports=[...])`` listens on those ports on the VM's 127.0.0.1 (and ::1) and relays each
connection to the same port on the host's loopback, from the server's event loop.

Must not import the core or storage.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import shutil
import socket
import struct
from collections.abc import Callable
from pathlib import Path

from actorq.agent_os.limits import BLOCKED, Network
from actorq.errors import SandboxUnavailable

SLIRP_NET = "10.0.2.0/24"
SLIRP_DNS = "10.0.2.3"
SLIRP_GATEWAY = "10.0.2.2"
_RELAY_CHUNK = 65536
MAX_RELAYED = 256  # connections a VM may have open through its host ports at once


def host_addresses(fib_trie: str | None = None) -> list[str]:
    """The host's own IPv4 addresses (from the kernel's routing trie), loopback excluded."""
    text = Path("/proc/net/fib_trie").read_text() if fib_trie is None else fib_trie
    out: list[str] = []
    last = None
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("|-- "):
            last = s[4:]
        elif "/32 host LOCAL" in s and last and not last.startswith("127.") and last not in out:
            out.append(last)
    return out


def host_gateways(route: str | None = None) -> list[str]:
    """The host's IPv4 gateways (its router is the way to its network's other machines)."""
    text = Path("/proc/net/route").read_text() if route is None else route
    out: list[str] = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) > 2 and fields[2] != "00000000":
            try:
                addr = socket.inet_ntoa(struct.pack("<I", int(fields[2], 16)))
            except (ValueError, struct.error):
                continue
            if addr not in out:
                out.append(addr)
    return out


def rules(net: Network, own: list[str]) -> str:
    """``ip -batch`` input that fences an outbound VM (see the module docstring); ``own``: the host's
    addresses and gateways, refused before any ``allow`` can let them through."""
    lines = [f"rule add prio {40 + i} to {a}/32 prohibit" for i, a in enumerate(own)]
    lines += [
        f"rule add prio 1000 to {SLIRP_DNS}/32 ipproto udp dport 53 lookup main",
        f"rule add prio 1001 to {SLIRP_DNS}/32 ipproto tcp dport 53 lookup main",
        # slirp's gateway, so that slirp can add its default route whether or not these rules came
        # first; slirp itself refuses connections to it (--disable-host-loopback)
        f"rule add prio 1002 to {SLIRP_GATEWAY}/32 lookup main",
    ]
    lines += [f"rule add prio {2000 + i} to {cidr} lookup main" for i, cidr in enumerate(net.allow)]
    lines += [f"rule add prio {3000 + i} to {cidr} prohibit" for i, cidr in enumerate(BLOCKED)]
    return "\n".join(lines) + "\n"


def loopback_up() -> None:
    """Bring up ``lo`` in the calling thread's network namespace (a new one starts with it down)."""
    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s, siocgifflags, req))[1]
        fcntl.ioctl(s, siocsifflags, struct.pack("16sH14x", b"lo", flags | iff_up))


def no_ipv6_on_new_links() -> None:
    """Interfaces made from now on in the calling thread's network namespace get no IPv6: slirp's
    is IPv4 only, and the router solicitations and address checks of an IPv6 link would only cost
    time (and be one more thing a VM could talk to). The loopback keeps ``::1``."""
    # /proc/sys/net answers for the network namespace of the thread that opens it
    with open("/proc/sys/net/ipv6/conf/default/disable_ipv6", "w") as f:
        f.write("1")


def resolv_conf(net: Network) -> str:
    return f"nameserver {SLIRP_DNS}\n" if net.outbound else "# this VM has no outbound network\n"


def slirp_path() -> str:
    path = shutil.which("slirp4netns")
    if path is None:
        raise SandboxUnavailable(
            "slirp4netns is not installed; agent VMs with outbound network need it: "
            "apt-get install slirp4netns (or agent_os(network=False))",
            details={"missing": "slirp4netns"},
        )
    return path


class Slirp:
    """One ``slirp4netns`` for one VM namespace; it exits when we close its exit pipe or die."""

    def __init__(self) -> None:
        self.proc: asyncio.subprocess.Process | None = None
        self._exit_w: int | None = None
        self._stderr = b""
        self._drain: asyncio.Task[None] | None = None

    async def _read_stderr(self, stream: asyncio.StreamReader) -> None:
        while chunk := await stream.read(4096):  # always drained: a full pipe would stall slirp
            self._stderr = (self._stderr + chunk)[-2048:]

    async def start(self, netns_path: str, timeout: float = 10.0) -> None:
        binary = slirp_path()
        ready_r, ready_w = os.pipe()
        exit_r, exit_w = os.pipe()
        self._exit_w = exit_w
        try:
            self.proc = await asyncio.create_subprocess_exec(
                binary,
                "--configure",
                "--mtu=65520",
                "--disable-host-loopback",
                "--enable-sandbox",
                "--enable-seccomp",
                f"--ready-fd={ready_w}",
                f"--exit-fd={exit_r}",
                "--netns-type=path",
                netns_path,
                "tap0",
                pass_fds=(ready_w, exit_r),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                env={"PATH": "/usr/bin:/bin"},
            )
        finally:
            os.close(ready_w)
            os.close(exit_r)
        assert self.proc.stderr is not None
        self._drain = asyncio.create_task(self._read_stderr(self.proc.stderr))
        try:
            ready = await asyncio.wait_for(asyncio.to_thread(os.read, ready_r, 1), timeout)
        except TimeoutError:
            ready = b""
        finally:
            os.close(ready_r)
        if ready != b"1":
            await self.close()
            said = self._stderr.decode("utf-8", "replace").strip()[-300:]
            raise SandboxUnavailable(f"slirp4netns did not bring up the VM's network: {said or 'no output'}")

    async def close(self) -> None:
        if self._exit_w is not None:
            os.close(self._exit_w)
            self._exit_w = None
        proc, self.proc = self.proc, None
        if proc is not None and proc.returncode is None:
            try:
                await asyncio.wait_for(proc.wait(), 2.0)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if self._drain is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._drain, 1.0)


def listeners(ports: tuple[int, ...]) -> list[socket.socket]:
    """Listening sockets on the calling thread's (the VM's) loopback for each host port."""
    out: list[socket.socket] = []
    try:
        for port in ports:
            for family, addr in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
                try:
                    s = socket.socket(family, socket.SOCK_STREAM)
                except OSError:
                    continue  # no IPv6 in this kernel
                try:
                    if family == socket.AF_INET6:
                        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                    s.bind((addr, port))
                    s.listen(128)
                    s.setblocking(False)
                except OSError:
                    s.close()
                    if family == socket.AF_INET:
                        raise
                    continue
                out.append(s)
    except BaseException:
        for s in out:
            s.close()
        raise
    return out


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(_RELAY_CHUNK):
            writer.write(chunk)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        pass


class PortRelay:
    """Relays connections made inside a VM to ``127.0.0.1:port`` on to the host's same port."""

    def __init__(self, on_error: Callable[[str], None] | None = None) -> None:
        self._servers: list[asyncio.Server] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._on_error = on_error

    async def start(self, socks: list[socket.socket]) -> None:
        for s in socks:
            port = s.getsockname()[1]
            server = await asyncio.start_server(self._handler(port), sock=s)
            self._servers.append(server)

    def _handler(
        self, port: int
    ) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], asyncio.Future[None]]:
        async def handle(vm_r: asyncio.StreamReader, vm_w: asyncio.StreamWriter) -> None:
            if len(self._tasks) >= MAX_RELAYED:  # a VM opening connections without end
                vm_w.close()
                return
            task = asyncio.current_task()
            if task is not None:
                self._tasks.add(task)
            try:
                try:
                    host_r, host_w = await asyncio.open_connection("127.0.0.1", port)
                except OSError:
                    return  # nothing listens on the host: the VM sees its connection closed
                try:
                    await asyncio.gather(_pump(vm_r, host_w), _pump(host_r, vm_w))
                finally:
                    host_w.close()
            finally:
                vm_w.close()
                if task is not None:
                    self._tasks.discard(task)

        return handle  # type: ignore[return-value]

    async def close(self) -> None:
        for server in self._servers:
            server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        for server in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 1.0)
        self._servers.clear()
