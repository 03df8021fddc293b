"""Walks of a directory tree through descriptors, never following a link, however deep.

``walk`` (listing, snapshots, disk accounting, ownership) and ``remove_tree`` open each
subdirectory by one name relative to its parent's descriptor (``paths.open_child``), skip what
vanished or changed meanwhile, and hold at most ``MAX_DEPTH`` descriptors, since a VM can nest
directories thousands deep. They run on the host (as root before a VM runs, or on the VM's host
thread as its uid) over trees a VM process may be changing.

Must not import the core or storage.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat as stat_mod
from collections.abc import Iterator

from actorq.agent_os.paths import open_child
from actorq.errors import BadRequest

MAX_DEPTH = 1024  # directory levels a host-side walk descends (one open descriptor per level)


def _listing(fd: int) -> list[tuple[str, os.stat_result]]:
    entries: list[tuple[str, os.stat_result]] = []
    with os.scandir(fd) as it:
        for e in it:
            with contextlib.suppress(OSError):
                entries.append((e.name, e.stat(follow_symlinks=False)))
    entries.sort(key=lambda x: x[0])
    return entries


def _child(fd: int, name: str) -> int:
    """A subdirectory, by one name that cannot be a link (it may have been swapped for one)."""
    return open_child(fd, name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)


def walk(top_fd: int) -> Iterator[tuple[str, int, list[tuple[str, os.stat_result]]]]:
    """Every directory under ``top_fd`` (a directory descriptor), top-down and sorted, as (path
    relative to the top, its descriptor (valid until the next step), [(name, lstat)]). Links are
    never followed: each subdirectory is opened by one name relative to its parent's descriptor,
    and what vanished or changed is skipped. No recursion and no long paths, since a VM can nest
    directories thousands deep; past
    ``MAX_DEPTH`` levels it raises BadRequest rather than holding a descriptor per level."""
    stack: list[tuple[int, str, Iterator[str]]] = []
    try:
        fd = open_child(top_fd, ".", os.O_RDONLY | os.O_DIRECTORY)
        entries = _listing(fd)
        stack.append((fd, "", iter([n for n, st in entries if stat_mod.S_ISDIR(st.st_mode)])))
        yield "", fd, entries
        while stack:
            fd, rel, names = stack[-1]
            name = next(names, None)
            if name is None:
                os.close(fd)
                stack.pop()
                continue
            try:
                child = _child(fd, name)
            except OSError:
                continue
            try:
                entries = _listing(child)
            except OSError:
                os.close(child)
                continue
            if len(stack) >= MAX_DEPTH:
                os.close(child)
                raise BadRequest(f"the tree is more than {MAX_DEPTH} directories deep", details={"at": rel})
            sub = f"{rel}/{name}" if rel else name
            stack.append((child, sub, iter([n for n, st in entries if stat_mod.S_ISDIR(st.st_mode)])))
            yield sub, child, entries
    finally:
        for fd, _, _ in stack:
            os.close(fd)


def remove_tree(parent_fd: int, name: str) -> None:
    """``rm -r`` of ``name`` in ``parent_fd``, never following a link, however deep: levels past
    ``MAX_DEPTH`` are first moved up next to the tree (a rename), so descriptors stay bounded."""
    counter = 0
    todo = [name]
    while todo:
        top = todo.pop()
        chain: list[tuple[int, str]] = []  # (descriptor of a directory, its name in the one above)
        try:
            chain.append((_child(parent_fd, top), top))
            while chain:
                fd, _ = chain[-1]
                sub: str | None = None
                with os.scandir(fd) as it:
                    for e in it:
                        if e.is_dir(follow_symlinks=False):
                            sub = e.name
                        else:
                            with contextlib.suppress(FileNotFoundError):
                                os.unlink(e.name, dir_fd=fd)
                if sub is not None and len(chain) >= MAX_DEPTH:
                    counter += 1
                    moved = f".actorq-rm-{secrets.token_hex(6)}-{counter}"
                    os.rename(sub, moved, src_dir_fd=fd, dst_dir_fd=parent_fd)
                    todo.append(moved)
                    continue
                if sub is not None:
                    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                        chain.append((_child(fd, sub), sub))
                    continue
                os.close(fd)
                _, leaf = chain.pop()
                above = chain[-1][0] if chain else parent_fd
                with contextlib.suppress(FileNotFoundError):
                    os.rmdir(leaf, dir_fd=above)
        finally:
            for fd, _ in chain:
                os.close(fd)


def usage(top_fd: int) -> int:
    """Bytes of disk the tree under ``top_fd`` takes (allocated blocks, not apparent sizes);
    raises BadRequest for a tree too deep to walk (its size cannot be known, so it is not allowed)."""
    total = 0
    for _, _, entries in walk(top_fd):
        total += sum(s.st_blocks * 512 for _, s in entries)
    return total


def chown_tree(top_fd: int, uid: int) -> None:
    """Give everything under ``top_fd`` (and itself) to ``uid``, links included, never through one."""
    os.chown(top_fd, uid, uid)
    for _, fd, entries in walk(top_fd):
        for name, _ in entries:
            with contextlib.suppress(FileNotFoundError):
                os.chown(name, uid, uid, dir_fd=fd, follow_symlinks=False)
