"""VM home snapshots (the files that follow a VM to another node): a faithful round trip, and an
archive that tries to write outside the home restores nothing outside it."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from actorq import BadRequest
from actorq.agent_os import snapshot
from actorq.agent_os.snapshot import CHUNK


def pack(home: Path, **kw: int) -> list[bytes]:
    fd = os.open(home, os.O_RDONLY | os.O_DIRECTORY)
    try:
        return snapshot.pack(fd, **kw)
    finally:
        os.close(fd)


def unpack(chunks: list[bytes], home: Path) -> None:
    snapshot.unpack(chunks, home, owner=os.getuid())


def test_round_trip_keeps_files_dirs_links_and_modes(tmp_path: Path) -> None:
    home = tmp_path / "a" / "home"
    (home / "src" / "pkg").mkdir(parents=True)
    (home / "src" / "pkg" / "m.py").write_text("x = 1\n")
    (home / ".pi" / "agent").mkdir(parents=True)
    (home / ".pi" / "agent" / "s.jsonl").write_text('{"a": 1}\n')
    (home / "blob").write_bytes(os.urandom(3 * CHUNK))  # incompressible: several chunks
    (home / "run.sh").write_text("#!/bin/sh\n")
    (home / "run.sh").chmod(0o755)
    os.symlink("src/pkg", home / "rel-link")
    os.symlink("/usr/bin/git", home / "abs-link")
    chunks = pack(home)
    assert len(chunks) >= 3 and all(len(c) <= CHUNK for c in chunks)

    other = tmp_path / "b" / "home"
    other.mkdir(parents=True)
    (other / "stale.txt").write_text("replaced whole")
    unpack(chunks, other)
    assert not (other / "stale.txt").exists()
    assert (other / "src" / "pkg" / "m.py").read_text() == "x = 1\n"
    assert (other / ".pi" / "agent" / "s.jsonl").read_text() == '{"a": 1}\n'
    assert (other / "blob").read_bytes() == (home / "blob").read_bytes()
    assert os.stat(other / "run.sh").st_mode & 0o777 == 0o755
    assert os.readlink(other / "rel-link") == "src/pkg" and os.readlink(other / "abs-link") == "/usr/bin/git"
    assert sorted(p.name for p in other.parent.iterdir()) == ["home"]  # no staging left behind


def test_a_hostile_archive_writes_nothing_outside(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:

        def add(name: str, data: bytes = b"x", **kw: object) -> None:
            info = tarfile.TarInfo(name)
            for k, v in kw.items():
                setattr(info, k, v)
            info.size = len(data) if info.type == tarfile.REGTYPE else 0
            tar.addfile(info, io.BytesIO(data) if info.type == tarfile.REGTYPE else None)

        add("ok.txt", b"fine")
        add("out", type=tarfile.SYMTYPE, linkname=str(tmp_path))  # a link to outside...
        add("out/pwned.txt", b"through the link")  # ...then a file through it
        add("../escaped.txt", b"climb")
        add(str(tmp_path / "absolute.txt"), b"absolute")
    home = tmp_path / "vm" / "home"
    home.mkdir(parents=True)
    with pytest.raises(tarfile.FilterError):
        unpack([buf.getvalue()], home)  # refused as a whole: the home is left as it was
    assert not (tmp_path / "pwned.txt").exists()
    assert not (tmp_path / "vm" / "escaped.txt").exists() and not (tmp_path / "absolute.txt").exists()


def test_a_home_over_the_limit_is_a_typed_error(tmp_path: Path) -> None:
    (tmp_path / "big").write_bytes(os.urandom(200_000))
    with pytest.raises(BadRequest, match="snapshots hold at most"):
        pack(tmp_path, max_bytes=100_000)
