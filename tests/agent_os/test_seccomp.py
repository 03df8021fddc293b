"""The VM seccomp filter: run in a small BPF interpreter against an independent model of the rules,
checked against the installed kernel headers, and installed for real by bwrap in the shape actorq
launches VMs (an unprivileged uid in a user namespace)."""

from __future__ import annotations

import ast
import errno
import json
import os
import platform
import re
import shutil
import struct
import subprocess
import textwrap
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actorq.agent_os import seccomp
from actorq.errors import SandboxUnavailable

# The rules written out again here rather than read from the module, so that a call dropped from
# (or added to) the module's lists fails a test.
EPERM_ALWAYS = frozenset(
    {
        "mount", "umount2", "pivot_root", "chroot", "open_tree", "open_tree_attr", "move_mount",
        "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr", "setns", "ptrace",
        "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd", "bpf", "keyctl", "add_key",
        "request_key", "perf_event_open", "kexec_load", "kexec_file_load", "init_module",
        "finit_module", "delete_module", "iopl", "ioperm", "swapon", "swapoff", "reboot",
        "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "acct", "quotactl",
        "quotactl_fd", "lookup_dcookie", "vhangup", "open_by_handle_at", "name_to_handle_at",
        "userfaultfd", "io_uring_setup", "io_uring_enter", "io_uring_register", "move_pages",
        "migrate_pages", "syslog", "uselib", "fanotify_init",
    }
)  # fmt: skip
ARG_CHECKED = frozenset({"clone", "unshare", "socket", "personality", "ioctl"})
NEVER_ON_AARCH64 = frozenset({"iopl", "ioperm", "uselib"})

ALLOW = 0x7FFF_0000
KILL_PROCESS = 0x8000_0000


def ERRNO(value: int) -> int:
    return 0x0005_0000 | value


AUDIT = {"x86_64": 0xC000_003E, "aarch64": 0xC000_00B7}
AUDIT_I386 = 0x4000_0003
AUDIT_ARM = 0x4000_0028
NS_FLAGS = {
    "CLONE_NEWNS": 0x0002_0000,
    "CLONE_NEWCGROUP": 0x0200_0000,
    "CLONE_NEWUTS": 0x0400_0000,
    "CLONE_NEWIPC": 0x0800_0000,
    "CLONE_NEWUSER": 0x1000_0000,
    "CLONE_NEWPID": 0x2000_0000,
    "CLONE_NEWNET": 0x4000_0000,
}
CLONE_NEWTIME = 0x80
SIGCHLD = 17
FORK_FLAGS = 0x0120_0000 | SIGCHLD  # CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID, as glibc's fork
THREAD_FLAGS = 0x003D_0F00  # VM FS FILES SIGHAND THREAD SYSVSEM SETTLS PARENT_SETTID CHILD_CLEARTID
FAMILIES_ALLOWED = {1, 2, 10, 16}  # AF_UNIX, AF_INET, AF_INET6, AF_NETLINK
PERSONALITY_ALLOWED = {0x0, 0x8, 0x2_0000, 0x2_0008, 0xFFFF_FFFF}
TIOCSTI, TIOCLINUX = 0x5412, 0x541C
U32, U64 = 0xFFFF_FFFF, 0xFFFF_FFFF_FFFF_FFFF


# --- a classic BPF interpreter, as strict as the kernel's seccomp loader --------------------------

LD_W_ABS, JMP_JA, JEQ_K, JGT_K, JGE_K, JSET_K, RET_K = 0x20, 0x05, 0x15, 0x25, 0x35, 0x45, 0x06
MNEMONIC = {LD_W_ABS: "ld", JMP_JA: "ja", JEQ_K: "jeq", JGT_K: "jgt", JGE_K: "jge", JSET_K: "jset"}
SECCOMP_DATA_SIZE = 64


@dataclass(frozen=True)
class Insn:
    code: int
    jt: int
    jf: int
    k: int


def decode(prog: bytes) -> list[Insn]:
    assert len(prog) % 8 == 0, "not a whole number of sock_filter entries"
    return [Insn(*fields) for fields in struct.iter_unpack("<HBBI", prog)]


def disassemble(insns: Sequence[Insn]) -> str:
    lines = []
    for at, i in enumerate(insns):
        if i.code == RET_K:
            text = f"ret {i.k:#x}"
        elif i.code == LD_W_ABS:
            text = f"ld [{i.k}]"
        elif i.code == JMP_JA:
            text = f"ja {at + 1 + i.k}"
        else:
            text = f"{MNEMONIC[i.code]} #{i.k:#x}, {at + 1 + i.jt}, {at + 1 + i.jf}"
        lines.append(f"{at:4}: {text}")
    return "\n".join(lines)


def successors(at: int, i: Insn) -> list[int]:
    if i.code == RET_K:
        return []
    if i.code == LD_W_ABS:
        return [at + 1]
    if i.code == JMP_JA:
        return [at + 1 + i.k]
    return [at + 1 + i.jt, at + 1 + i.jf]


def validate(insns: Sequence[Insn]) -> None:
    """What the kernel checks when bwrap loads the program, and that no instruction is dead."""
    assert 1 <= len(insns) <= 4096
    for at, i in enumerate(insns):
        assert i.code in (*MNEMONIC, RET_K), f"{at}: opcode {i.code:#x} not used by a seccomp filter"
        if i.code == LD_W_ABS:
            assert i.k % 4 == 0 and i.k < SECCOMP_DATA_SIZE, f"{at}: load outside seccomp_data"
        assert all(t < len(insns) for t in successors(at, i)), f"{at}: jumps past the end"
    assert insns[-1].code == RET_K
    seen, todo = {0}, [0]
    while todo:
        for t in successors(todo[-1], insns[todo.pop()]):
            if t not in seen:
                seen.add(t)
                todo.append(t)
    assert seen == set(range(len(insns))), f"unreachable: {sorted(set(range(len(insns))) - seen)}"


def run(insns: Sequence[Insn], nr: int, arch: int, args: Sequence[int] = ()) -> tuple[int, set[int]]:
    """The verdict for one call, and the seccomp_data offsets the program read to reach it."""
    data = struct.pack("<IIQ6Q", nr & U32, arch, 0x4000_1000, *(list(args) + [0] * 6)[:6])
    a, pc = 0, 0
    loaded: set[int] = set()
    for _ in range(len(insns)):  # forward jumps only: a program can't take more steps
        i = insns[pc]
        if i.code == RET_K:
            return i.k, loaded
        if i.code == LD_W_ABS:
            (a,) = struct.unpack_from("<I", data, i.k)
            loaded.add(i.k)
            pc += 1
        elif i.code == JMP_JA:
            pc += 1 + i.k
        else:
            taken = {JEQ_K: a == i.k, JGT_K: a > i.k, JGE_K: a >= i.k, JSET_K: a & i.k != 0}[i.code]
            pc += 1 + (i.jt if taken else i.jf)
    raise AssertionError("ran past the program")


def expected(arch: str, nr: int, audit_arch: int, args: Sequence[int] = ()) -> int:
    """The rules, independently of how the module builds its program."""
    if audit_arch != AUDIT[arch]:
        return KILL_PROCESS
    nr &= U32
    if arch == "x86_64" and nr >= 0x4000_0000 and nr != U32:
        return KILL_PROCESS
    name = {v: k for k, v in seccomp.SYSCALLS[arch].items()}.get(nr)
    low = [a & U32 for a in (*args, 0, 0, 0, 0, 0, 0)]
    if name in EPERM_ALWAYS:
        return ERRNO(errno.EPERM)
    if name == "clone":
        return ERRNO(errno.EPERM) if low[0] & sum(NS_FLAGS.values()) else ALLOW
    if name == "unshare":
        return ERRNO(errno.EPERM) if low[0] & (sum(NS_FLAGS.values()) | CLONE_NEWTIME) else ALLOW
    if name == "socket":
        return ALLOW if low[0] in FAMILIES_ALLOWED else ERRNO(errno.EAFNOSUPPORT)
    if name == "personality":
        return ALLOW if low[0] in PERSONALITY_ALLOWED else ERRNO(errno.EPERM)
    if name == "ioctl":
        return ERRNO(errno.EPERM) if low[1] in (TIOCSTI, TIOCLINUX) else ALLOW
    if name == "clone3":
        return ERRNO(errno.ENOSYS)
    return ALLOW


@pytest.fixture(scope="module", params=sorted(AUDIT))
def arch(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def prog(arch: str) -> list[Insn]:
    return decode(seccomp.program_for(arch))


def verdict(arch: str, name: str, *args: int) -> int:
    return run(prog(arch), seccomp.SYSCALLS[arch][name], AUDIT[arch], args)[0]


# --- pure tests -----------------------------------------------------------------------------------


def test_program_loads_as_the_kernel_checks_it(arch: str) -> None:
    insns = prog(arch)
    validate(insns)
    assert len(insns) < 256, disassemble(insns)  # one linear pass stays cheap


def test_the_deny_list_is_exactly_these_calls() -> None:
    assert set(seccomp.DENIED) == EPERM_ALWAYS
    assert len(seccomp.DENIED) == len(EPERM_ALWAYS)


def test_every_number_up_to_1023_gets_the_rules_verdict(arch: str) -> None:
    insns = prog(arch)
    mismatches = {
        nr: (hex(got), hex(want))
        for nr in range(1024)
        for args in ((), (FORK_FLAGS, TIOCSTI), (0x4000_0000, 0x40))
        if (got := run(insns, nr, AUDIT[arch], args)[0]) != (want := expected(arch, nr, AUDIT[arch], args))
    }
    assert not mismatches


@pytest.mark.parametrize("name", sorted(EPERM_ALWAYS))
def test_each_denied_call_gets_eperm_whatever_its_arguments(arch: str, name: str) -> None:
    if arch == "aarch64" and name in NEVER_ON_AARCH64:
        assert name not in seccomp.SYSCALLS[arch]
        return
    for args in ((), (U64,) * 6, (1, 2, 3, 4, 5, 6)):
        assert verdict(arch, name, *args) == ERRNO(errno.EPERM)


def test_numbers_outside_the_table_are_allowed(arch: str) -> None:
    table = seccomp.SYSCALLS[arch]
    denied = {table[name] for name in EPERM_ALWAYS if name in table}
    for nr in set(range(451)) - {table[name] for name in ARG_CHECKED}:
        want = ERRNO(errno.EPERM) if nr in denied else ALLOW
        if nr == table["clone3"]:
            want = ERRNO(errno.ENOSYS)
        assert run(prog(arch), nr, AUDIT[arch])[0] == want, nr
    assert run(prog(arch), 0xFFFF_FFFF, AUDIT[arch])[0] == ALLOW  # nr -1: the kernel says ENOSYS


def test_clone_namespace_flags_are_refused_and_fork_and_threads_are_not(arch: str) -> None:
    vfork = 0x4000 | 0x100 | SIGCHLD  # CLONE_VFORK | CLONE_VM, as posix_spawn
    for flags in (0, SIGCHLD, FORK_FLAGS, THREAD_FLAGS, vfork, CLONE_NEWTIME | SIGCHLD, (1 << 32) | SIGCHLD):
        assert verdict(arch, "clone", flags) == ALLOW, hex(flags)
    for name, flag in NS_FLAGS.items():
        assert verdict(arch, "clone", flag | FORK_FLAGS) == ERRNO(errno.EPERM), name
        assert verdict(arch, "clone", (7 << 32) | flag) == ERRNO(errno.EPERM), name
    assert verdict(arch, "clone3") == ERRNO(errno.ENOSYS)
    assert verdict(arch, "clone3", 0, 88) == ERRNO(errno.ENOSYS)


def test_unshare_refuses_every_namespace_including_time(arch: str) -> None:
    for name, flag in {**NS_FLAGS, "CLONE_NEWTIME": CLONE_NEWTIME}.items():
        assert verdict(arch, "unshare", flag) == ERRNO(errno.EPERM), name
    for flags in (0, 0x200, 0x400, 0x4_0000, 0x4_0600):  # CLONE_FS, CLONE_FILES, CLONE_SYSVSEM
        assert verdict(arch, "unshare", flags) == ALLOW, hex(flags)


def test_socket_families(arch: str) -> None:
    for family in range(64):
        want = ALLOW if family in FAMILIES_ALLOWED else ERRNO(errno.EAFNOSUPPORT)
        assert verdict(arch, "socket", family, 1, 0) == want, family
    # the kernel reads the family as an int: the upper half of the register does not matter
    assert verdict(arch, "socket", (1 << 32) | 2, 1) == ALLOW
    assert verdict(arch, "socket", (1 << 32) | 17, 3) == ERRNO(errno.EAFNOSUPPORT)


def test_ioctl_terminal_injection(arch: str) -> None:
    for request in (TIOCSTI, TIOCLINUX, (1 << 32) | TIOCSTI, (0xDEAD << 32) | TIOCLINUX):
        assert verdict(arch, "ioctl", 0, request) == ERRNO(errno.EPERM), hex(request)
    # TCGETS, TIOCGWINSZ, FIONREAD, FIONBIO, FIOCLEX, TIOCOUTQ, a request merely ending in 5412, FS_IOC_*
    for request in (0x5401, 0x5413, 0x541B, 0x5421, 0x5451, 0x5411, 0x5413_5412, 0xC020_660B):
        assert verdict(arch, "ioctl", 0, request) == ALLOW, hex(request)
    assert verdict(arch, "ioctl", TIOCSTI, 0x541B) == ALLOW  # the fd is not the request


def test_personality(arch: str) -> None:
    for value in PERSONALITY_ALLOWED:
        assert verdict(arch, "personality", value) == ALLOW, hex(value)
    for value in (0x0040000, 0x0400000, 0x0008 | 0x0040000, 0x1, 0x0200000, 0xFFFF_FFFE):
        assert verdict(arch, "personality", value) == ERRNO(errno.EPERM), hex(value)
    assert verdict(arch, "personality", (1 << 32) | 0x8) == ALLOW  # an unsigned int in the kernel


def test_other_architectures_are_killed(arch: str) -> None:
    insns = prog(arch)
    others = [AUDIT_I386, AUDIT_ARM, 0, 0xFFFF_FFFF, *(a for name, a in AUDIT.items() if name != arch)]
    for audit_arch in others:
        for nr in (0, 1, 20, 39, 172, 435, 1023):
            assert run(insns, nr, audit_arch)[0] == KILL_PROCESS, (hex(audit_arch), nr)


def test_x32_numbers_are_killed_on_x86_64() -> None:
    insns = prog("x86_64")
    for nr in (0x4000_0000, 0x4000_0000 + 39, 0x4000_0000 + 521, 0x4000_0000 + 528, 0x7FFF_FFFF, 0xFFFF_FFFE):
        assert run(insns, nr, AUDIT["x86_64"])[0] == KILL_PROCESS, hex(nr)
    assert run(insns, 0xFFFF_FFFF, AUDIT["x86_64"])[0] == ALLOW
    # aarch64 has no such ABI: a huge number is just unknown there (ENOSYS from the kernel)
    assert run(prog("aarch64"), 0x4000_0000 + 39, AUDIT["aarch64"])[0] == ALLOW


def test_calls_decided_by_number_never_read_their_arguments(arch: str) -> None:
    # What lets the kernel cache "allowed" for them and skip the filter on every later call.
    checked = {seccomp.SYSCALLS[arch][name] for name in ARG_CHECKED}
    for nr in range(1024):
        if nr not in checked:
            assert run(prog(arch), nr, AUDIT[arch], (U64,) * 6)[1] <= {0, 4}, nr


nrs = st.one_of(
    st.sampled_from(sorted({n for table in seccomp.SYSCALLS.values() for n in table.values()})),
    st.integers(0, 1023),
    st.integers(0, U32),
    st.sampled_from([0x4000_0000, 0x4000_0027, U32, U32 - 1]),
)
interesting_args = st.sampled_from(
    [0, SIGCHLD, FORK_FLAGS, THREAD_FLAGS, CLONE_NEWTIME, TIOCSTI, TIOCLINUX, 0x40000, U32, U64,
     *NS_FLAGS.values(), *FAMILIES_ALLOWED, *PERSONALITY_ALLOWED, (1 << 32) | TIOCSTI, 17, 31, 40]
)  # fmt: skip
arg_values = st.one_of(st.integers(0, U64), st.integers(0, 64), interesting_args)


@settings(max_examples=3000, deadline=None)
@given(
    arch_name=st.sampled_from(sorted(AUDIT)),
    nr=nrs,
    audit_arch=st.sampled_from([*AUDIT.values(), AUDIT_I386, AUDIT_ARM, 0]),
    args=st.lists(arg_values, min_size=6, max_size=6),
)
def test_random_calls_get_the_rules_verdict(
    arch_name: str, nr: int, audit_arch: int, args: list[int]
) -> None:
    got = run(prog(arch_name), nr, audit_arch, args)[0]
    assert got == expected(arch_name, nr, audit_arch, args)


def test_program_is_for_this_machine_and_cached() -> None:
    machine = platform.machine()
    if machine not in AUDIT:
        with pytest.raises(seccomp.UnsupportedArch):
            seccomp.program()
        return
    assert seccomp.program() == seccomp.program_for(machine)
    assert seccomp.program() is seccomp.program()


def test_unknown_architectures_are_refused() -> None:
    for name in ("i386", "armv7l", "riscv64", "x86-64", ""):
        with pytest.raises(seccomp.UnsupportedArch, match="no seccomp filter"):
            seccomp.program_for(name)
    assert issubclass(seccomp.UnsupportedArch, SandboxUnavailable)


def test_the_assembler_refuses_a_jump_it_cannot_encode() -> None:
    items: list[seccomp._Item] = [seccomp._jeq(1, "far", 0)]
    items += [seccomp._ret(0)] * 300 + [seccomp._Label("far"), seccomp._ret(1)]
    with pytest.raises(ValueError, match="out of reach"):
        seccomp._assemble(items)


def test_errno_values_are_linuxs() -> None:
    if platform.system() != "Linux":
        pytest.skip("compares with this host's errno values")
    assert (seccomp.EPERM, seccomp.ENOSYS, seccomp.EAFNOSUPPORT) == (
        errno.EPERM,
        errno.ENOSYS,
        errno.EAFNOSUPPORT,
    )


def test_module_imports_nothing_from_actorq_but_errors() -> None:
    tree = ast.parse(Path(seccomp.__file__).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {
        alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    }
    assert {m for m in imported if m and m.split(".")[0] == "actorq"} == {"actorq.errors"}


# --- the tables against each other and against the kernel headers ---------------------------------

HEADERS = {
    "x86_64": [Path("/usr/include/x86_64-linux-gnu/asm/unistd_64.h"), Path("/usr/include/asm/unistd_64.h")],
    "aarch64": [Path("/usr/include/asm-generic/unistd.h")],
}


def header_numbers(arch: str) -> dict[str, int]:
    for path in HEADERS[arch]:
        if path.exists():
            return {
                m[1]: int(m[2])
                for m in re.finditer(r"^#define __NR_(\w+)\s+(\d+)\s*$", path.read_text(), re.M)
            }
    pytest.skip(f"no kernel headers for {arch} ({', '.join(map(str, HEADERS[arch]))})")


def test_both_tables_name_the_same_calls() -> None:
    x86, arm = seccomp.SYSCALLS["x86_64"], seccomp.SYSCALLS["aarch64"]
    assert set(x86) - set(arm) == NEVER_ON_AARCH64
    assert set(arm) <= set(x86)
    assert set(x86) == EPERM_ALWAYS | ARG_CHECKED | {"clone3"}
    for table in (x86, arm):
        assert len(set(table.values())) == len(table), "two names share a number"


def test_numbers_match_the_kernel_headers(arch: str) -> None:
    header = header_numbers(arch)
    table = seccomp.SYSCALLS[arch]
    wrong = {name: (nr, header[name]) for name, nr in table.items() if name in header and header[name] != nr}
    assert not wrong
    # A call missing from the headers must be newer than all of them, not a typo.
    newer = {name: nr for name, nr in table.items() if name not in header}
    assert all(nr > max(header.values()) for nr in newer.values()), newer
    assert set(newer) <= {"open_tree_attr"}
    for name in NEVER_ON_AARCH64 if arch == "aarch64" else ():
        assert name not in header


def test_flag_values_match_the_kernel_headers() -> None:
    def defines(path: str) -> dict[str, int]:
        if not Path(path).exists():
            pytest.skip(f"{path} is not installed")
        text = Path(path).read_text()
        return {
            m[1]: int(m[2], 0)
            for m in re.finditer(r"^#define\s+(\w+)\s+(0x[0-9a-fA-F]+|\d+)U?\b", text, re.M)
        }

    sched = defines("/usr/include/linux/sched.h")
    assert {name: sched[name] for name in NS_FLAGS} == NS_FLAGS
    assert sched["CLONE_NEWTIME"] == CLONE_NEWTIME == seccomp.CLONE_NEWTIME
    assert seccomp.CLONE_NAMESPACES == sum(NS_FLAGS.values())
    ioctls = defines("/usr/include/asm-generic/ioctls.h")
    assert (
        (ioctls["TIOCSTI"], ioctls["TIOCLINUX"])
        == (TIOCSTI, TIOCLINUX)
        == (seccomp.TIOCSTI, seccomp.TIOCLINUX)
    )
    ret = defines("/usr/include/linux/seccomp.h")
    assert (ret["SECCOMP_RET_ALLOW"], ret["SECCOMP_RET_ERRNO"], ret["SECCOMP_RET_KILL_PROCESS"]) == (
        ALLOW,
        0x0005_0000,
        KILL_PROCESS,
    )


# --- installed for real by bwrap -----------------------------------------------------------------

SANDBOX_UID = 70001


def sandbox_argv(fd: int | None) -> list[str]:
    """The shape actorq launches VMs in: an unprivileged uid, bwrap making the user namespace."""
    prefix: list[str] = []
    if os.geteuid() == 0:
        prefix = ["setpriv", f"--reuid={SANDBOX_UID}", f"--regid={SANDBOX_UID}", "--clear-groups", "--"]
    return [
        *prefix, "bwrap", "--unshare-user", "--disable-userns", "--uid", "1000", "--gid", "1000",
        "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--die-with-parent", "--new-session",
        "--ro-bind", "/usr", "/usr", "--symlink", "usr/bin", "/bin", "--symlink", "usr/lib", "/lib",
        "--symlink", "usr/lib64", "/lib64", "--ro-bind", "/etc", "/etc", "--proc", "/proc",
        "--dev", "/dev", "--tmpfs", "/tmp", "--chdir", "/tmp",
        *(["--seccomp", str(fd)] if fd is not None else []),
        "--",
    ]  # fmt: skip


def sandboxed(
    argv: Sequence[str], *, filtered: bool = True, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    fd = None
    if filtered:
        fd = os.memfd_create("actorq-seccomp", os.MFD_CLOEXEC)
        data = memoryview(seccomp.program())
        while data:
            data = data[os.write(fd, data) :]
        os.lseek(fd, 0, os.SEEK_SET)
    try:
        return subprocess.run(
            [*sandbox_argv(fd), *argv],
            pass_fds=[fd] if fd is not None else [],
            env={"PATH": "/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8"},
            cwd="/",
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    finally:
        if fd is not None:
            os.close(fd)


@pytest.fixture(scope="module")
def kernel() -> Iterator[None]:
    if platform.system() != "Linux" or platform.machine() not in AUDIT:
        pytest.skip("the filter is for Linux on x86_64 and aarch64")
    for tool in ("bwrap", *(("setpriv",) if os.geteuid() == 0 else ())):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    probe = sandboxed(["/usr/bin/true"], filtered=False)
    if probe.returncode != 0:
        pytest.skip(f"bwrap cannot make a sandbox here: {probe.stderr.strip()}")
    yield


# Runs inside the sandbox under the system python. Each probe runs in a forked child, so one that
# changes the process (personality, a tracer) or is killed (SIGSYS) leaves the others alone.
PROBES = textwrap.dedent(
    r"""
    import ctypes, errno, fcntl, json, mmap, os, signal, sys, termios, time

    NR = json.loads(sys.argv[1])
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long

    def call(name, *args):
        nr = NR[name] if isinstance(name, str) else name
        ctypes.set_errno(0)
        r = libc.syscall(ctypes.c_long(nr), *(ctypes.c_ulong(a) if isinstance(a, int) else a for a in args))
        if r == 0 and name in ("clone",):  # a child after all: leave at once
            os._exit(0)
        return "ok" if r >= 0 else errno.errorcode.get(ctypes.get_errno(), str(ctypes.get_errno()))

    def sock(family, kind):
        fd = libc.socket(family, kind, 0)
        if fd < 0:
            return errno.errorcode[ctypes.get_errno()]
        os.close(fd)
        return "ok"

    def ptrace_attach():
        pid = os.fork()
        if pid == 0:
            time.sleep(30)
            os._exit(0)
        try:
            return call("ptrace", 16, pid, 0, 0)  # PTRACE_ATTACH
        finally:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)

    def tiocsti(request, on_tty):
        if on_tty:  # a pty that is our controlling terminal: where the kernel itself would allow it
            _, fd = os.openpty()
            os.setsid()
            fcntl.ioctl(fd, termios.TIOCSCTTY, 0)
        else:
            fd, _ = os.pipe()
        c = ctypes.c_char(b"x")
        return call("ioctl", fd, request, ctypes.byref(c))

    def fionread():
        r, _ = os.pipe()
        n = ctypes.c_int(-1)
        return call("ioctl", r, 0x541B, ctypes.byref(n))

    def int80_getpid():
        # mov eax, 20 (getpid in the i386 table); int 0x80; ret
        page = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
        page.write(bytes([0xB8, 20, 0, 0, 0, 0xCD, 0x80, 0xC3]))
        fn = ctypes.CFUNCTYPE(ctypes.c_long)(ctypes.addressof(ctypes.c_char.from_buffer(page)))
        return "ok" if fn() == os.getpid() else "wrong pid"

    def seccomp_status():
        for line in open("/proc/self/status"):
            if line.startswith("Seccomp:"):
                return line.split()[1]

    bad = 1  # a pointer the kernel cannot read: EFAULT when it gets that far
    tmp = ctypes.c_char_p(b"/tmp")
    probes = {
        "mount": lambda: call("mount", 0, tmp, bad, 0, 0),
        "umount2": lambda: call("umount2", tmp, 0x10000),
        "pivot_root": lambda: call("pivot_root", tmp, tmp),
        "chroot": lambda: call("chroot", tmp),
        "open_tree": lambda: call("open_tree", 2**32 - 100, tmp, 0xDEAD0000),
        "open_tree_attr": lambda: call("open_tree_attr", 2**32 - 100, tmp, 0xDEAD0000, 0, 0),
        "fsopen": lambda: call("fsopen", bad, 0),
        "unshare(CLONE_NEWUSER)": lambda: call("unshare", 0x10000000),
        "unshare(CLONE_NEWNET)": lambda: call("unshare", 0x40000000),
        "unshare(CLONE_NEWNS)": lambda: call("unshare", 0x00020000),
        "unshare(CLONE_FILES)": lambda: call("unshare", 0x400),
        "clone(CLONE_NEWUSER)": lambda: call("clone", 0x10000000 | 17, 0, 0, 0, 0),
        "setns": lambda: call("setns", 2**32 - 1, 0),
        "keyctl": lambda: call("keyctl", 0xDEAD, 0, 0, 0, 0),
        "add_key": lambda: call("add_key", bad, bad, 0, 0, 0),
        "request_key": lambda: call("request_key", bad, bad, 0, 0),
        "bpf": lambda: call("bpf", 0xDEAD, 0, 0),
        "perf_event_open": lambda: call("perf_event_open", 0, 0, 2**64 - 1, 2**64 - 1, 0),
        "ptrace(PTRACE_TRACEME)": lambda: call("ptrace", 0, 0, 0, 0),
        "ptrace(PTRACE_ATTACH)": ptrace_attach,
        "process_vm_readv": lambda: call("process_vm_readv", os.getpid(), 0, 0, 0, 0, 0),
        "pidfd_getfd": lambda: call("pidfd_getfd", 2**32 - 1, 0, 0),
        "io_uring_setup": lambda: call("io_uring_setup", 1, 0),
        "userfaultfd": lambda: call("userfaultfd", 0),
        "kexec_load": lambda: call("kexec_load", 0, 0, 0, 0),
        "init_module": lambda: call("init_module", 0, 0, tmp),
        "finit_module": lambda: call("finit_module", 2**32 - 1, tmp, 0),
        "syslog": lambda: call("syslog", 10, 0, 0),  # SYSLOG_ACTION_SIZE_BUFFER
        "clone3": lambda: call("clone3", 0, 0),
        "socket(AF_BLUETOOTH)": lambda: sock(31, 1),
        "socket(AF_PACKET)": lambda: sock(17, 3),
        "socket(AF_VSOCK)": lambda: sock(40, 1),
        "socket(AF_ALG)": lambda: sock(38, 5),
        "socket(AF_UNIX)": lambda: sock(1, 1),
        "socket(AF_INET)": lambda: sock(2, 1),
        "socket(AF_INET6)": lambda: sock(10, 2),
        "socket(AF_NETLINK)": lambda: sock(16, 3),
        "personality(ADDR_NO_RANDOMIZE)": lambda: call("personality", 0x0040000),
        "personality(query)": lambda: call("personality", 0xFFFFFFFF),
        "ioctl(TIOCSTI) pipe": lambda: tiocsti(0x5412, False),
        "ioctl(TIOCSTI) tty": lambda: tiocsti(0x5412, True),
        "ioctl(TIOCLINUX) pipe": lambda: tiocsti(0x541C, False),
        "ioctl(FIONREAD)": fionread,
        "Seccomp": seccomp_status,
    }
    if os.uname().machine == "x86_64":
        probes["int 0x80 getpid"] = int80_getpid
        probes["x32 getpid"] = lambda: call(0x40000000 | 39)

    def isolated(fn):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            try:
                out = str(fn())
            except BaseException as e:
                out = f"raised {e!r}"
            os.write(w, out.encode())
            os._exit(0)
        os.close(w)
        out = b""
        while chunk := os.read(r, 4096):
            out += chunk
        os.close(r)
        _, status = os.waitpid(pid, 0)
        return signal.Signals(os.WTERMSIG(status)).name if os.WIFSIGNALED(status) else out.decode()

    print(json.dumps({name: isolated(fn) for name, fn in probes.items()}))
    """
)

EXPECTED = {
    "mount": "EPERM",
    "umount2": "EPERM",
    "pivot_root": "EPERM",
    "chroot": "EPERM",
    "open_tree": "EPERM",
    "open_tree_attr": "EPERM",
    "fsopen": "EPERM",
    "unshare(CLONE_NEWUSER)": "EPERM",
    "unshare(CLONE_NEWNET)": "EPERM",
    "unshare(CLONE_NEWNS)": "EPERM",
    "unshare(CLONE_FILES)": "ok",
    "clone(CLONE_NEWUSER)": "EPERM",
    "setns": "EPERM",
    "keyctl": "EPERM",
    "add_key": "EPERM",
    "request_key": "EPERM",
    "bpf": "EPERM",
    "perf_event_open": "EPERM",
    "ptrace(PTRACE_TRACEME)": "EPERM",
    "ptrace(PTRACE_ATTACH)": "EPERM",
    "process_vm_readv": "EPERM",
    "pidfd_getfd": "EPERM",
    "io_uring_setup": "EPERM",
    "userfaultfd": "EPERM",
    "kexec_load": "EPERM",
    "init_module": "EPERM",
    "finit_module": "EPERM",
    "syslog": "EPERM",
    "clone3": "ENOSYS",
    "socket(AF_BLUETOOTH)": "EAFNOSUPPORT",
    "socket(AF_PACKET)": "EAFNOSUPPORT",
    "socket(AF_VSOCK)": "EAFNOSUPPORT",
    "socket(AF_ALG)": "EAFNOSUPPORT",
    "socket(AF_UNIX)": "ok",
    "socket(AF_INET)": "ok",
    "socket(AF_INET6)": "ok",
    "socket(AF_NETLINK)": "ok",
    "personality(ADDR_NO_RANDOMIZE)": "EPERM",
    "personality(query)": "ok",
    "ioctl(TIOCSTI) pipe": "EPERM",
    "ioctl(TIOCSTI) tty": "EPERM",
    "ioctl(TIOCLINUX) pipe": "EPERM",
    "ioctl(FIONREAD)": "ok",
    "Seccomp": "2",
    "int 0x80 getpid": "SIGSYS",
    "x32 getpid": "SIGSYS",
}

# Probes whose arguments make the kernel itself answer something else (EFAULT, EINVAL, EBADF, a
# success...), so the errno above can only have come from the filter.
KERNEL_SAYS_OTHERWISE = (
    "mount", "umount2", "open_tree", "open_tree_attr", "unshare(CLONE_NEWUSER)", "clone(CLONE_NEWUSER)",
    "setns", "keyctl", "add_key", "request_key", "perf_event_open", "ptrace(PTRACE_TRACEME)",
    "ptrace(PTRACE_ATTACH)", "process_vm_readv", "pidfd_getfd", "clone3", "socket(AF_PACKET)",
    "personality(ADDR_NO_RANDOMIZE)", "ioctl(TIOCSTI) pipe", "ioctl(TIOCSTI) tty", "ioctl(TIOCLINUX) pipe",
    "int 0x80 getpid", "x32 getpid", "Seccomp",
)  # fmt: skip


def probe(*, filtered: bool) -> dict[str, str]:
    numbers = json.dumps(dict(seccomp.SYSCALLS[platform.machine()]))
    result = sandboxed(["/usr/bin/python3", "-c", PROBES, numbers], filtered=filtered)
    assert result.returncode == 0, result.stderr
    probes: dict[str, str] = json.loads(result.stdout)
    return probes


@pytest.mark.usefixtures("kernel")
def test_the_kernel_refuses_what_the_filter_denies() -> None:
    filtered, bare = probe(filtered=True), probe(filtered=False)
    want = {name: v for name, v in EXPECTED.items() if name in filtered}
    assert filtered == want, {n: (filtered.get(n), v) for n, v in want.items() if filtered.get(n) != v}
    same = {
        name: bare[name] for name in KERNEL_SAYS_OTHERWISE if name in bare and bare[name] == filtered[name]
    }
    assert not same, f"without the filter the kernel says the same, so these prove nothing: {same}"


def check(result: subprocess.CompletedProcess[str], stdout: str) -> None:
    assert (result.returncode, result.stdout.strip()) == (0, stdout), result.stderr


@pytest.mark.usefixtures("kernel")
def test_shell_pipeline() -> None:
    check(sandboxed(["sh", "-c", "echo hi | cat"]), "hi")


@pytest.mark.usefixtures("kernel")
def test_python_threads_and_subprocesses() -> None:
    script = textwrap.dedent(
        """
        import concurrent.futures, socket, subprocess, threading
        out = []
        threads = [threading.Thread(target=out.append, args=(i,)) for i in range(8)]
        [t.start() for t in threads]
        [t.join() for t in threads]
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            squares = sum(pool.map(lambda x: x * x, range(10)))
        child = subprocess.run(["sh", "-c", "echo sub"], capture_output=True, text=True).stdout.strip()
        a, b = socket.socketpair()
        a.sendall(b"pair")
        print(len(out), squares, child, b.recv(4).decode())
        """
    )
    check(sandboxed(["/usr/bin/python3", "-c", script]), "8 285 sub pair")


@pytest.mark.usefixtures("kernel")
def test_node_child_processes_workers_fs_and_loopback() -> None:
    if not Path("/usr/bin/node").exists():
        pytest.skip("node is not installed under /usr")
    script = textwrap.dedent(
        """
        const cp = require("child_process"), fs = require("fs"), net = require("net");
        const { Worker } = require("worker_threads");
        cp.execSync("true");
        const sub = cp.spawnSync("sh", ["-c", "echo sub"]).stdout.toString().trim();
        (async () => {
          await fs.promises.writeFile("/tmp/n.txt", "data");
          const read = await fs.promises.readFile("/tmp/n.txt", "utf8");
          const worker = await new Promise((resolve, reject) =>
            new Worker("require('worker_threads').parentPort.postMessage(6 * 7)", { eval: true })
              .on("message", resolve).on("error", reject));
          const server = net.createServer((s) => s.end("pong")).listen(0, "127.0.0.1");
          await new Promise((resolve) => server.on("listening", resolve));
          const reply = await new Promise((resolve) => {
            let got = "";
            net.connect(server.address().port, "127.0.0.1")
              .on("data", (d) => { got += d; }).on("end", () => resolve(got));
          });
          server.close();
          console.log(sub, read, worker, reply);
        })();
        """
    )
    check(sandboxed(["/usr/bin/node", "-e", script]), "sub data 42 pong")


@pytest.mark.usefixtures("kernel")
def test_git() -> None:
    script = (
        "git init -q /tmp/repo && cd /tmp/repo && echo x > f && git add f"
        " && git -c user.name=a -c user.email=a@example.invalid commit -qm first && git log --format=%s"
    )
    check(sandboxed(["sh", "-c", script]), "first")


@pytest.mark.usefixtures("kernel")
def test_unshare_fails_and_says_why() -> None:
    result = sandboxed(["unshare", "-U", "true"])
    assert result.returncode != 0
    assert "Operation not permitted" in result.stderr  # bwrap's own limit alone says "No space left"


def test_probes_cover_every_expectation() -> None:
    names = set(re.findall(r'^\s+(?:probes\[)?"([^"]+)"(?:\]\s*=|:)', PROBES, re.M))
    assert names == set(EXPECTED)
    assert set(KERNEL_SAYS_OTHERWISE) <= names
