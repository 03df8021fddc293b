"""Private on-disk places: a data directory is 0700 and the files the server writes in it 0600,
whatever the process umask; looser modes left by an earlier run are tightened when storage opens.

Files are changed through a descriptor opened with ``O_NOFOLLOW``, so a symbolic link planted
in a directory that used to be open to others cannot make the server chmod (or open) a file
elsewhere. A shared sticky directory such as ``/tmp`` is refused rather than locked up.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> None:
    """Create ``path`` (and missing parents) with mode 0700, or tighten an existing directory to
    0700. Raises :class:`PermissionError` for a shared sticky directory (``/tmp``-like) or a
    path that is not a directory."""
    try:
        path.mkdir(mode=DIR_MODE, parents=True)
    except FileExistsError:
        pass
    st = os.stat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise NotADirectoryError(f"data directory {path} is not a directory")
    current = stat.S_IMODE(st.st_mode)
    if current & stat.S_ISVTX and current & stat.S_IWOTH:
        raise PermissionError(
            f"{path} is a shared directory (sticky and world-writable, like /tmp); "
            "give actorq a data directory of its own"
        )
    if current != DIR_MODE:
        os.chmod(path, DIR_MODE)


def _open_own(path: Path, flags: int) -> int:
    try:
        return os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, FILE_MODE)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise PermissionError(
                f"{path} is a symbolic link; actorq's files must be in its data directory itself"
            ) from None
        raise


def _tighten_fd(fd: int, path: Path) -> None:
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        raise PermissionError(f"{path} is not a regular file")
    if stat.S_IMODE(st.st_mode) != FILE_MODE:
        os.fchmod(fd, FILE_MODE)


def private_file(path: Path, *, create: bool = True) -> None:
    """Make ``path`` a 0600 regular file: create it (empty) if ``create`` and missing, tighten it
    if it exists with another mode. A missing file with ``create=False`` is left missing."""
    flags = os.O_RDONLY | (os.O_CREAT if create else 0)
    try:
        fd = _open_own(path, flags)
    except FileNotFoundError:
        if create:
            raise
        return
    try:
        _tighten_fd(fd, path)
    finally:
        os.close(fd)


def open_private(path: Path, flags: int) -> int:
    """``os.open`` for a file of the data directory: created 0600, tightened to 0600 if it
    existed looser, never through a symbolic link. The caller owns the descriptor."""
    fd = _open_own(path, flags | os.O_CREAT)
    try:
        _tighten_fd(fd, path)
    except BaseException:
        os.close(fd)
        raise
    return fd


def tighten_tree_top(directory: Path) -> None:
    """Tighten what sits directly in ``directory``: regular files to 0600, directories to 0700
    (symbolic links are not followed, and not changed)."""
    with os.scandir(directory) as entries:
        for entry in entries:
            if entry.is_symlink():
                continue
            if entry.is_dir(follow_symlinks=False):
                if stat.S_IMODE(entry.stat(follow_symlinks=False).st_mode) != DIR_MODE:
                    fd = os.open(entry.path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
                    try:
                        os.fchmod(fd, DIR_MODE)
                    finally:
                        os.close(fd)
            elif entry.is_file(follow_symlinks=False):
                private_file(Path(entry.path), create=False)
