"""Pack a VM's ``/home/user`` into compressed chunks and unpack it on another node.

Used only with storage that moves files between nodes (PostgreSQL). Packing walks the home through
descriptors without ever following a link (``trees.walk``), on the VM's host thread as the VM's uid,
so a VM process swapping files for links while a periodic snapshot runs can only make it skip or
cut short a file of its own; symlinks are stored as links. Unpacking happens before any VM process
runs, into a fresh directory beside the home that no VM can see: regular files and directories
through tarfile's ``data`` filter (no absolute paths, no ``..``, no devices), hard links dropped,
symlinks created last as stored (a VM may link to ``/usr/bin/git``; links are resolved inside the VM
later), so nothing is written through a link; the tree is then given to the VM's uid and replaces
the home at once, so a half-restored home is never seen.
"""

from __future__ import annotations

import io
import os
import shutil
import stat as stat_mod
import tarfile
import tempfile
from pathlib import Path

from actorq.agent_os.trees import chown_tree, walk
from actorq.errors import BadRequest

CHUNK = 1024 * 1024
MAX_BYTES = 512 * 1024 * 1024  # compressed; a larger home is not moved (a typed error says so)


class _Exactly(io.RawIOBase):
    """``size`` bytes of an open file: what tarfile was promised even if the file shrank meanwhile."""

    def __init__(self, fd: int, size: int) -> None:
        self._fd, self._left = fd, size

    def readable(self) -> bool:
        return True

    def readinto(self, buf: memoryview) -> int:  # type: ignore[override]
        n = min(len(buf), self._left)
        if n == 0:
            return 0
        data = os.read(self._fd, n) or b"\0" * n
        buf[: len(data)] = data
        self._left -= len(data)
        return len(data)


def pack(home_fd: int, *, max_bytes: int = MAX_BYTES) -> list[bytes]:
    """``home_fd``: an O_RDONLY directory descriptor of the VM's home."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=6) as tar:
        for rel, dir_fd, entries in walk(home_fd):
            for name, st in entries:
                _add(tar, dir_fd, f"{rel}/{name}" if rel else name, name, st)
    data = buf.getvalue()
    if len(data) > max_bytes:
        raise BadRequest(
            f"the VM's /home/user is {len(data)} bytes compressed; snapshots hold at most {max_bytes}",
            details={"size": len(data), "max_bytes": max_bytes},
        )
    return [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)] or [data]


def _add(tar: tarfile.TarFile, dir_fd: int, arcname: str, name: str, st: os.stat_result) -> None:
    info = tarfile.TarInfo(arcname)
    info.mode, info.mtime = stat_mod.S_IMODE(st.st_mode), int(st.st_mtime)
    if stat_mod.S_ISDIR(st.st_mode):
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
    elif stat_mod.S_ISLNK(st.st_mode):
        try:
            info.linkname = os.readlink(name, dir_fd=dir_fd)
        except OSError:
            return
        info.type = tarfile.SYMTYPE
        tar.addfile(info)
    elif stat_mod.S_ISREG(st.st_mode):
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
        except OSError:
            return  # gone, or swapped for a link since the listing
        try:
            now = os.fstat(fd)
            if not stat_mod.S_ISREG(now.st_mode) or (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
                return
            info.size = now.st_size
            tar.addfile(info, io.BufferedReader(_Exactly(fd, now.st_size)))
        finally:
            os.close(fd)
    # sockets, fifos: not part of a home worth moving


def unpack(chunks: list[bytes], home: Path, *, owner: int) -> None:
    """Replace ``home`` (on the host disk, as root, before the VM runs) with the snapshot's tree."""
    staging = Path(tempfile.mkdtemp(prefix=".home-restore-", dir=home.parent))
    try:
        links: list[tuple[str, str]] = []

        def keep(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo | None:
            if member.issym():
                links.append((member.name, member.linkname))
                return None
            if member.islnk():
                return None  # hard links are not needed for a home and could alias outside
            return tarfile.data_filter(member, dest)

        with tarfile.open(fileobj=io.BytesIO(b"".join(chunks)), mode="r:gz") as tar:
            tar.extractall(staging, filter=keep)
        real = os.path.realpath(staging)
        for name, target in links:
            path = os.path.realpath(os.path.join(staging, os.path.dirname(name)))
            dest = os.path.join(path, os.path.basename(name))
            inside = path == real or path.startswith(real + os.sep)  # its directory is in the home
            if inside and not os.path.lexists(dest):
                os.symlink(target, dest)
        os.chmod(staging, 0o755)
        fd = os.open(staging, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            chown_tree(fd, owner)
        finally:
            os.close(fd)
        old = home.with_name(home.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        if home.exists():
            home.rename(old)
        staging.rename(home)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
