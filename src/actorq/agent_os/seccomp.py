"""The seccomp filter every VM process runs under: a deny-list of kernel interfaces an agent never needs.

bubblewrap already puts a VM in its own user, PID, IPC and UTS namespaces without capabilities, so
most of what is refused here would fail anyway. The filter is the second wall: it closes the kernel
attack surface that stays reachable *inside* a user namespace, and the calls whose bugs have been the
way out of containers, in the spirit of the default profiles of Docker and Flatpak. Everything not
listed below is allowed; a refused call fails with an errno, so well-behaved programs fall back.

Refused with EPERM:

- mounting and re-rooting (``mount``, ``umount2``, ``pivot_root``, ``chroot`` and the new mount API:
  ``open_tree``, ``open_tree_attr``, ``move_mount``, ``fsopen``, ``fsconfig``, ``fsmount``,
  ``fspick``, ``mount_setattr``): a user namespace lets its owner mount, and filesystem code
  reachable that way is a rich source of kernel bugs;
- new namespaces: ``setns``, and ``unshare`` or ``clone`` with a namespace flag (mount, UTS, IPC,
  user, PID, network, cgroup; time for ``unshare``). Plain ``clone`` (threads, fork) is untouched.
  A nested user namespace would hand the agent a full set of capabilities over fresh namespaces;
- looking into other processes: ``ptrace``, ``process_vm_readv``, ``process_vm_writev``, ``kcmp``,
  ``pidfd_getfd``;
- kernel subsystems with a long record of exploitable bugs and no use to an agent: ``bpf``, the key
  store (``keyctl``, ``add_key``, ``request_key``), ``perf_event_open``, ``userfaultfd`` (makes
  kernel races easy to win), io_uring (``io_uring_setup``, ``io_uring_enter``,
  ``io_uring_register``; libuv and others fall back to a thread pool), ``fanotify_init``;
- administration of the machine: ``kexec_load``, ``kexec_file_load``, ``init_module``,
  ``finit_module``, ``delete_module``, ``iopl``, ``ioperm``, ``swapon``, ``swapoff``, ``reboot``,
  ``settimeofday``, ``clock_settime``, ``clock_adjtime``, ``adjtimex``, ``acct``, ``quotactl``,
  ``quotactl_fd``, ``lookup_dcookie``, ``vhangup``, ``syslog``, ``uselib``, ``move_pages``,
  ``migrate_pages``;
- ``open_by_handle_at`` and ``name_to_handle_at``: a file handle opens a file without a path, past
  the mount layout that is the VM's whole view of the host;
- ``personality`` except the values Docker allows (``PER_LINUX``, ``PER_LINUX32``, ``UNAME26``,
  both together, and the query ``0xffffffff``): the others turn off address space randomisation
  or make data executable;
- ``ioctl`` ``TIOCSTI`` and ``TIOCLINUX``: they type into a terminal, which would run commands in
  whatever shell shares it.

``clone3`` fails with ENOSYS: its flags sit in memory the filter cannot read, and on ENOSYS glibc
falls back to ``clone``, which is checked. ``socket`` fails with EAFNOSUPPORT for every family but
``AF_UNIX``, ``AF_INET``, ``AF_INET6`` and ``AF_NETLINK``: the rarer protocol families (packet,
bluetooth, vsock, ...) are where socket bugs live, and that errno reads as "not built into this
kernel". A call made with another architecture's convention (i386 ``int 0x80`` on x86_64, 32-bit
ARM on aarch64, the x32 ABI) kills the process: those numbers mean other calls, so the table
cannot judge them.

The program is classic BPF in the layout bwrap's ``--seccomp FD`` reads (and libseccomp exports):
an array of ``struct sock_filter``. Each rule is one small block that decides its own syscall, so
a jump never has to reach far, and a syscall whose verdict needs no argument is decided from
``nr`` and ``arch`` alone, which lets the kernel cache "allowed" for it and skip the filter.

Must not import anything from actorq but :mod:`actorq.errors`.
"""

from __future__ import annotations

import functools
import os
import struct
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from actorq.errors import SandboxUnavailable

__all__ = ["ARCHES", "DENIED", "SYSCALLS", "UnsupportedArch", "program", "program_for"]


class UnsupportedArch(SandboxUnavailable):
    """No seccomp filter is written for this machine's architecture."""


# Linux's values, the same on x86_64 and aarch64. Not the errno module: the host building the
# program need not be Linux.
EPERM: Final = 1
ENOSYS: Final = 38
EAFNOSUPPORT: Final = 97

RET_KILL_PROCESS: Final = 0x8000_0000
RET_ERRNO: Final = 0x0005_0000  # | errno
RET_ALLOW: Final = 0x7FFF_0000

AUDIT_ARCH: Final[Mapping[str, int]] = {"x86_64": 0xC000_003E, "aarch64": 0xC000_00B7}
ARCHES: Final = tuple(AUDIT_ARCH)

# On x86_64 the x32 ABI shares AUDIT_ARCH_X86_64 and sets this bit in nr; its numbers 512-547 are
# other calls (ptrace, kexec_load, move_pages, process_vm_* among them), so they must not pass.
X32_SYSCALL_BIT: Final = 0x4000_0000

CLONE_NEWTIME: Final = 0x0000_0080
CLONE_NEWNS: Final = 0x0002_0000
CLONE_NEWCGROUP: Final = 0x0200_0000
CLONE_NEWUTS: Final = 0x0400_0000
CLONE_NEWIPC: Final = 0x0800_0000
CLONE_NEWUSER: Final = 0x1000_0000
CLONE_NEWPID: Final = 0x2000_0000
CLONE_NEWNET: Final = 0x4000_0000
CLONE_NAMESPACES: Final = (
    CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET
)
# For clone 0x80 is part of the exit signal, so CLONE_NEWTIME means something only to unshare.
UNSHARE_NAMESPACES: Final = CLONE_NAMESPACES | CLONE_NEWTIME

AF_UNIX: Final = 1
AF_INET: Final = 2
AF_INET6: Final = 10
AF_NETLINK: Final = 16
SOCKET_FAMILIES: Final = (AF_UNIX, AF_INET, AF_INET6, AF_NETLINK)

PERSONALITIES: Final = (0x0, 0x8, 0x2_0000, 0x2_0008, 0xFFFF_FFFF)

TIOCSTI: Final = 0x5412
TIOCLINUX: Final = 0x541C

# Refused with EPERM whatever the arguments.
DENIED: Final = (
    "mount", "umount2", "pivot_root", "chroot",
    "open_tree", "open_tree_attr", "move_mount", "fsopen", "fsconfig", "fsmount", "fspick",
    "mount_setattr",
    "setns",
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
    "bpf",
    "keyctl", "add_key", "request_key",
    "perf_event_open",
    "kexec_load", "kexec_file_load",
    "init_module", "finit_module", "delete_module",
    "iopl", "ioperm",
    "swapon", "swapoff",
    "reboot",
    "settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
    "acct",
    "quotactl", "quotactl_fd",
    "lookup_dcookie",
    "vhangup",
    "open_by_handle_at", "name_to_handle_at",
    "userfaultfd",
    "io_uring_setup", "io_uring_enter", "io_uring_register",
    "move_pages", "migrate_pages",
    "syslog",
    "uselib",
    "fanotify_init",
)  # fmt: skip

# Numbers from the kernel's syscall tables (aarch64 uses the generic one of the newer
# architectures). A wrong number blocks some other call in silence, so the tests compare these
# with the installed kernel headers.
_X86_64: Final[Mapping[str, int]] = {
    "ioctl": 16,
    "socket": 41,
    "clone": 56,
    "ptrace": 101,
    "syslog": 103,
    "uselib": 134,
    "personality": 135,
    "vhangup": 153,
    "pivot_root": 155,
    "adjtimex": 159,
    "chroot": 161,
    "acct": 163,
    "settimeofday": 164,
    "mount": 165,
    "umount2": 166,
    "swapon": 167,
    "swapoff": 168,
    "reboot": 169,
    "iopl": 172,
    "ioperm": 173,
    "init_module": 175,
    "delete_module": 176,
    "quotactl": 179,
    "lookup_dcookie": 212,
    "clock_settime": 227,
    "kexec_load": 246,
    "add_key": 248,
    "request_key": 249,
    "keyctl": 250,
    "migrate_pages": 256,
    "unshare": 272,
    "move_pages": 279,
    "perf_event_open": 298,
    "fanotify_init": 300,
    "name_to_handle_at": 303,
    "open_by_handle_at": 304,
    "clock_adjtime": 305,
    "setns": 308,
    "process_vm_readv": 310,
    "process_vm_writev": 311,
    "kcmp": 312,
    "finit_module": 313,
    "kexec_file_load": 320,
    "bpf": 321,
    "userfaultfd": 323,
    "io_uring_setup": 425,
    "io_uring_enter": 426,
    "io_uring_register": 427,
    "open_tree": 428,
    "move_mount": 429,
    "fsopen": 430,
    "fsconfig": 431,
    "fsmount": 432,
    "fspick": 433,
    "clone3": 435,
    "pidfd_getfd": 438,
    "mount_setattr": 442,
    "quotactl_fd": 443,
    "open_tree_attr": 467,
}

_AARCH64: Final[Mapping[str, int]] = {
    "lookup_dcookie": 18,
    "ioctl": 29,
    "umount2": 39,
    "mount": 40,
    "pivot_root": 41,
    "chroot": 51,
    "vhangup": 58,
    "quotactl": 60,
    "acct": 89,
    "personality": 92,
    "unshare": 97,
    "kexec_load": 104,
    "init_module": 105,
    "delete_module": 106,
    "clock_settime": 112,
    "syslog": 116,
    "ptrace": 117,
    "reboot": 142,
    "settimeofday": 170,
    "adjtimex": 171,
    "socket": 198,
    "add_key": 217,
    "request_key": 218,
    "keyctl": 219,
    "clone": 220,
    "swapon": 224,
    "swapoff": 225,
    "migrate_pages": 238,
    "move_pages": 239,
    "perf_event_open": 241,
    "fanotify_init": 262,
    "name_to_handle_at": 264,
    "open_by_handle_at": 265,
    "clock_adjtime": 266,
    "setns": 268,
    "process_vm_readv": 270,
    "process_vm_writev": 271,
    "kcmp": 272,
    "finit_module": 273,
    "bpf": 280,
    "userfaultfd": 282,
    "kexec_file_load": 294,
    "io_uring_setup": 425,
    "io_uring_enter": 426,
    "io_uring_register": 427,
    "open_tree": 428,
    "move_mount": 429,
    "fsopen": 430,
    "fsconfig": 431,
    "fsmount": 432,
    "fspick": 433,
    "clone3": 435,
    "pidfd_getfd": 438,
    "mount_setattr": 442,
    "quotactl_fd": 443,
    "open_tree_attr": 467,
}

SYSCALLS: Final[Mapping[str, Mapping[str, int]]] = {"x86_64": _X86_64, "aarch64": _AARCH64}

# Calls an architecture never had: nothing to refuse there. Any other name missing from a table is
# a mistake, and building the program fails on it.
_NEVER_HAD: Final[Mapping[str, frozenset[str]]] = {
    "x86_64": frozenset(),
    "aarch64": frozenset({"iopl", "ioperm", "uselib"}),
}


# Classic BPF opcodes, the only ones the program uses (all of them in the set the kernel's
# seccomp cache can evaluate from nr and arch alone).
_LD_W_ABS: Final = 0x20
_JEQ_K: Final = 0x15
_JGE_K: Final = 0x35
_JSET_K: Final = 0x45
_RET_K: Final = 0x06

# struct seccomp_data: int nr; u32 arch; u64 instruction_pointer; u64 args[6].
_NR: Final = 0
_ARCH: Final = 4


def _arg_low(index: int) -> int:
    # Both targets are little-endian, so an argument's low 32 bits come first. The calls judged
    # here take int or unsigned int there (clone's flags too: the kernel drops the upper half).
    return 16 + 8 * index


@dataclass(frozen=True)
class _Insn:
    code: int
    k: int
    jt: int | str = 0  # a label, or how many instructions to skip
    jf: int | str = 0


@dataclass(frozen=True)
class _Label:
    name: str


_Item = _Insn | _Label


def _ret(value: int) -> _Insn:
    return _Insn(_RET_K, value)


def _errno(value: int) -> _Insn:
    return _ret(RET_ERRNO | value)


def _load(offset: int) -> _Insn:
    return _Insn(_LD_W_ABS, offset)


def _jeq(k: int, jt: int | str, jf: int | str) -> _Insn:
    return _Insn(_JEQ_K, k, jt, jf)


def _check_arch(audit_arch: int) -> list[_Item]:
    return [_load(_ARCH), _jeq(audit_arch, 1, 0), _ret(RET_KILL_PROCESS), _load(_NR)]


def _refuse_x32() -> list[_Item]:
    # nr -1 is what a tracer sets to skip a call; it has the bit too and must keep getting ENOSYS.
    return [_Insn(_JGE_K, X32_SYSCALL_BIT, 0, 2), _jeq(0xFFFF_FFFF, 1, 0), _ret(RET_KILL_PROCESS)]


# Every block below starts with nr in A. A block that loads an argument belongs to a single
# syscall and ends in a return on every path, so A never has to be reloaded.


def _deny(nr: int, errno: int) -> list[_Item]:
    return [_jeq(nr, 0, 1), _errno(errno)]


def _deny_flags(name: str, nr: int, arg: int, mask: int, errno: int) -> list[_Item]:
    end = f"{name}:end"
    return [
        _jeq(nr, 0, end),
        _load(_arg_low(arg)),
        _Insn(_JSET_K, mask, 1, 0),
        _ret(RET_ALLOW),
        _errno(errno),
        _Label(end),
    ]


def _allow_values(name: str, nr: int, arg: int, values: Iterable[int], errno: int) -> list[_Item]:
    end, allow = f"{name}:end", f"{name}:allow"
    return [
        _jeq(nr, 0, end),
        _load(_arg_low(arg)),
        *(_jeq(value, allow, 0) for value in values),
        _errno(errno),
        _Label(allow),
        _ret(RET_ALLOW),
        _Label(end),
    ]


def _deny_values(name: str, nr: int, arg: int, values: Iterable[int], errno: int) -> list[_Item]:
    end, deny = f"{name}:end", f"{name}:deny"
    return [
        _jeq(nr, 0, end),
        _load(_arg_low(arg)),
        *(_jeq(value, deny, 0) for value in values),
        _ret(RET_ALLOW),
        _Label(deny),
        _errno(errno),
        _Label(end),
    ]


def _rules(arch: str) -> list[_Item]:
    nr = SYSCALLS[arch]
    items = _check_arch(AUDIT_ARCH[arch])
    if arch == "x86_64":
        items += _refuse_x32()
    # The argument checks first: ioctl and clone are frequent and, unlike the rest, the kernel
    # cannot cache their verdict, so they should not have to walk the whole list.
    items += _deny_values("ioctl", nr["ioctl"], 1, (TIOCSTI, TIOCLINUX), EPERM)
    items += _deny_flags("clone", nr["clone"], 0, CLONE_NAMESPACES, EPERM)
    items += _allow_values("socket", nr["socket"], 0, SOCKET_FAMILIES, EAFNOSUPPORT)
    items += _deny_flags("unshare", nr["unshare"], 0, UNSHARE_NAMESPACES, EPERM)
    items += _allow_values("personality", nr["personality"], 0, PERSONALITIES, EPERM)
    items += _deny(nr["clone3"], ENOSYS)
    for name in DENIED:
        if name not in _NEVER_HAD[arch]:
            items += _deny(nr[name], EPERM)
    items.append(_ret(RET_ALLOW))
    return items


def _assemble(items: list[_Item]) -> bytes:
    where: dict[str, int] = {}
    insns: list[_Insn] = []
    for item in items:
        if isinstance(item, _Label):
            if item.name in where:
                raise ValueError(f"label {item.name} placed twice")
            where[item.name] = len(insns)
        else:
            insns.append(item)

    def offset(at: int, target: int | str) -> int:
        if isinstance(target, str) and target not in where:
            raise ValueError(f"jump from instruction {at} to {target!r}, which is never placed")
        skip = target if isinstance(target, int) else where[target] - at - 1
        # Jumps go forward only, by at most 255: refuse rather than emit one that lands elsewhere.
        if not 0 <= skip <= 255 or at + skip + 1 >= len(insns):
            raise ValueError(f"jump from instruction {at} to {target!r} is out of reach")
        return skip

    out = bytearray()
    for at, insn in enumerate(insns):
        jt = offset(at, insn.jt) if insn.code not in (_LD_W_ABS, _RET_K) else 0
        jf = offset(at, insn.jf) if insn.code not in (_LD_W_ABS, _RET_K) else 0
        out += struct.pack("<HBBI", insn.code, jt, jf, insn.k)
    return bytes(out)


@functools.cache
def program_for(arch: str) -> bytes:
    """The filter for processes of ``arch`` ("x86_64" or "aarch64"), as bwrap ``--seccomp`` reads it."""
    if arch not in AUDIT_ARCH:
        raise UnsupportedArch(f"no seccomp filter for {arch!r}; have: {', '.join(ARCHES)}")
    return _assemble(_rules(arch))


def _machine() -> str:
    arch = os.uname().machine
    # A 32-bit userland on a 64-bit kernel would run the sandbox's programs with the 32-bit
    # convention, which the filter kills outright.
    if sys.byteorder != "little" or struct.calcsize("P") != 8:
        raise UnsupportedArch(
            f"no seccomp filter for a {struct.calcsize('P') * 8}-bit {sys.byteorder}-endian {arch}"
        )
    return arch


@functools.cache
def program() -> bytes:
    """The filter for this machine; raises :class:`UnsupportedArch` where there is none."""
    return program_for(_machine())
