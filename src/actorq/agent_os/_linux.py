"""The Linux system calls the VM host side needs and Python 3.11 does not wrap, through ctypes.

``openat2`` (race-free resolution inside a VM root), ``unshare``/``setns``/``mount`` (the VM's own
namespaces, entered by one host thread), and per-thread credentials. glibc's ``setuid`` family
changes every thread of the process (it broadcasts with a signal, as POSIX asks); the raw system
calls change only the calling thread, which is what lets one thread act as a VM's user while the
rest of the server stays root. Only the thread that owns a VM ever calls the credential functions.

Must not import anything from actorq but ``errors``.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import struct
from collections.abc import Iterator
from contextlib import contextmanager

_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long

# system call numbers that differ per architecture (the generic table is aarch64's)
_NR: dict[str, dict[str, int]] = {
    "x86_64": {
        "openat2": 437,
        "setresuid": 117,
        "setresgid": 119,
        "setgroups": 116,
        "setfsuid": 122,
        "setfsgid": 123,
        "setns": 308,
        "unshare": 272,
    },
    "aarch64": {
        "openat2": 437,
        "setresuid": 147,
        "setresgid": 149,
        "setgroups": 159,
        "setfsuid": 151,
        "setfsgid": 152,
        "setns": 268,
        "unshare": 97,
    },
}
_nr = _NR.get(platform.machine(), {})

O_PATH = os.O_PATH
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10

CLONE_NEWNS = 0x00020000
CLONE_FS = 0x00000200
CLONE_NEWNET = 0x40000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWCGROUP = 0x02000000

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MNT_DETACH = 2


def supported() -> bool:
    """Whether this architecture's numbers are known (x86_64, aarch64)."""
    return bool(_nr)


def _call(name: str, *args: int | bytes | None) -> int:
    nr = _nr.get(name)
    if nr is None:
        raise OSError(errno.ENOSYS, f"{name} is not wired for {platform.machine()}")
    res = int(_syscall(ctypes.c_long(nr), *args))
    if res < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return res


def openat2(dirfd: int, path: str | bytes, flags: int, resolve: int, mode: int = 0) -> int:
    """``openat2(2)``: ``path`` resolved under ``dirfd`` with ``resolve`` rules; returns an fd.

    ``EAGAIN`` (a concurrent rename moved something during a ``..`` walk) is retried a few times,
    as the kernel asks callers to.
    """
    how = struct.pack("QQQ", flags | os.O_CLOEXEC, mode, resolve)
    raw = os.fsencode(path)
    for _ in range(16):
        try:
            return _call("openat2", dirfd, raw, how, len(how))
        except OSError as exc:
            if exc.errno != errno.EAGAIN:
                raise
    raise OSError(errno.EAGAIN, "the VM kept renaming directories during resolution")


def unshare(flags: int) -> None:
    if _libc.unshare(ctypes.c_int(flags)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"unshare: {os.strerror(err)}")


def setns(fd: int, nstype: int) -> None:
    if _libc.setns(ctypes.c_int(fd), ctypes.c_int(nstype)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    enc = [None if s is None else os.fsencode(s) for s in (source, target, fstype, data)]
    if _libc.mount(enc[0], enc[1], enc[2], ctypes.c_ulong(flags), enc[3]) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {target}: {os.strerror(err)}")


def umount(target: str, flags: int = MNT_DETACH) -> None:
    if _libc.umount2(os.fsencode(target), ctypes.c_int(flags)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"umount {target}: {os.strerror(err)}")


# -- per-thread credentials -----------------------------------------------------------------------
def drop_groups() -> None:
    """Empty this thread's supplementary groups (root's group 0 must not count for a VM's files)."""
    _call("setgroups", 0, None)


def set_fs_ids(uid: int, gid: int) -> None:
    """This thread's filesystem uid/gid (file permission checks and new files' owner)."""
    # setfsuid/setfsgid report the previous id, never an error: read back to know it took
    _call("setfsgid", gid)
    _call("setfsuid", uid)
    if _call("setfsuid", -1) != uid or _call("setfsgid", -1) != gid:
        raise PermissionError(errno.EPERM, "could not change this thread's filesystem ids")


@contextmanager
def fs_ids(uid: int, gid: int) -> Iterator[None]:
    """Run the block with this thread's file access as ``uid``/``gid``, then back to root.

    A non-root fsuid also drops the file capabilities (CAP_DAC_OVERRIDE, CAP_CHOWN, CAP_FOWNER...)
    from the thread's effective set, so the block can touch only what that user could.
    """
    set_fs_ids(uid, gid)
    try:
        yield
    finally:
        set_fs_ids(0, 0)


@contextmanager
def thread_ids(uid: int, gid: int) -> Iterator[None]:
    """Run the block with this thread's real and effective ids set to ``uid``/``gid``.

    The saved ids stay 0, so the thread can come back; a process forked inside the block starts
    with the unprivileged ids and loses the saved root ids at its ``execve``.
    """
    _call("setresgid", gid, gid, 0)
    try:
        _call("setresuid", uid, uid, 0)
    except BaseException:
        _call("setresgid", 0, 0, 0)
        raise
    try:
        yield
    finally:
        _call("setresuid", 0, 0, 0)
        _call("setresgid", 0, 0, 0)


def fd_path(fd: int) -> str:
    """Where an open file is now, as the calling thread's mount namespace sees it."""
    return os.readlink(f"/proc/thread-self/fd/{fd}")
