"""Pack a VM's ``/home/user`` into compressed chunks and unpack it on another node.

Used only with storage that moves files between nodes (PostgreSQL). Packing is a ``tar.gz`` of the
home directory (symlinks kept as links, never followed). Unpacking extracts regular files and
directories with tarfile's ``data`` filter (no absolute paths, no ``..``, no device files) into a
fresh directory, then creates the symlinks last, as stored (a VM may link to ``/usr/bin/git``;
links are resolved inside the VM later), so nothing is ever written through a link; then the new
directory replaces the home at once, so a half-restored home is never seen.
"""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import tempfile
from pathlib import Path

from actorq.agent_os.sandbox import chown_tree
from actorq.errors import BadRequest

CHUNK = 1024 * 1024
MAX_BYTES = 512 * 1024 * 1024  # compressed; a larger home is not moved (a typed error says so)


def pack(home: Path, *, max_bytes: int = MAX_BYTES) -> list[bytes]:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=6) as tar:
        for name in sorted(os.listdir(home)):
            tar.add(home / name, arcname=name, recursive=True)
    data = buf.getvalue()
    if len(data) > max_bytes:
        raise BadRequest(
            f"the VM's /home/user is {len(data)} bytes compressed; snapshots hold at most {max_bytes}",
            details={"size": len(data), "max_bytes": max_bytes},
        )
    return [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)] or [data]


def unpack(chunks: list[bytes], home: Path, *, owner: int | None = None) -> None:
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
        if owner is not None:
            chown_tree(staging, owner)
        old = home.with_name(home.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        if home.exists():
            home.rename(old)
        staging.rename(home)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
