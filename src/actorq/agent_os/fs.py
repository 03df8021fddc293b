"""A VM's files as its file actions see them, resolved by the kernel inside the VM's root.

File actions reach the VM's own trees, ``/home/user`` (persistent) and ``/tmp`` (a tmpfs of the
VM's). Every path is resolved by ``openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`` under the VM's
root (a directory of the VM's host thread that holds only those two trees, see ``host.py``): the
kernel follows symlinks as the VM sees them, treats ``/`` and ``..`` as the VM's root, and resolves
atomically, so a VM process swapping directories and links mid-call can at worst redirect an action
to another place inside its own trees. What it opened must then lie in ``/home/user`` or ``/tmp``
(read from the open descriptor, not recomputed from the path), or the call fails with
:class:`PathOutsideVM`. The final step of a change is always ``*at()`` on an open directory with
names that cannot be links (``O_EXCL|O_NOFOLLOW`` temp files with random names, ``renameat``,
``unlinkat``), so nothing on the host is ever written through a link made inside the VM.

The methods are synchronous and must run on the VM's host thread with the VM's uid for file access
(``VMHost.as_vm_user``): that is the second wall, should a check here be wrong. Errors name VM paths
only, never where the VM lives on the host.

Must not import the core or storage.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat as stat_mod
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from actorq.agent_os import _linux
from actorq.errors import (
    ActorqError,
    BadRequest,
    MessageTooLarge,
    NotFound,
    PathOutsideVM,
    ResourceLimit,
    Unavailable,
)

HOME = "/home/user"
_ROOTS = ("/home/user", "/tmp")
_MAX_LINKS = 40
_TMP_SUFFIX = ".actorq-tmp"
MAX_READ = 64 * 1024 * 1024  # bytes read_file returns at most: larger files go through exec/vm_fetch
MAX_ENTRIES = 100_000  # names readdir / readdir_recursive return at most
_IN_ROOT = _linux.RESOLVE_IN_ROOT | _linux.RESOLVE_NO_MAGICLINKS
_BENEATH = _linux.RESOLVE_BENEATH | _linux.RESOLVE_NO_SYMLINKS | _linux.RESOLVE_NO_MAGICLINKS


@dataclass(frozen=True)
class FileStat:
    path: str
    size: int
    is_directory: bool
    is_file: bool
    is_symlink: bool
    mode: int
    mtime: float


@dataclass(frozen=True)
class DirEntry:
    path: str  # VM path
    name: str
    is_directory: bool
    size: int


def _split(path: str) -> list[str]:
    return [p for p in path.split("/") if p not in ("", ".")]


def _show(name: str) -> str:
    """A file name as text: bytes that are not UTF-8 become U+FFFD (JSON carries only Unicode)."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def vm_path(path: str) -> str:
    """Normalise a VM path lexically (``..`` above ``/`` is refused); relative paths are under HOME."""
    if not isinstance(path, str) or not path:
        raise BadRequest("a VM path is a non-empty string")
    if "\0" in path:
        raise BadRequest("a VM path cannot contain NUL")
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest("a VM path must be valid Unicode (no lone surrogates)") from None
    if len(path) > 4096:
        raise BadRequest("a VM path is at most 4096 characters")
    parts: list[str] = [] if path.startswith("/") else _split(HOME)
    for part in _split(path):
        if part == "..":
            if not parts:
                raise PathOutsideVM(f"{path!r} climbs above the VM's root", details={"path": path})
            parts.pop()
        else:
            parts.append(part)
    return "/" + "/".join(parts)


def _in_trees(vm: str) -> bool:
    return any(vm == r or vm.startswith(r + "/") for r in _ROOTS)


def _check_tree(vm: str, original: str) -> None:
    if not _in_trees(vm):
        raise PathOutsideVM(
            f"{original!r} is outside the VM's files (/home/user and /tmp)",
            details={"path": original, "resolved": vm},
        )


@contextlib.contextmanager
def _errors(path: str, missing: Callable[[], ActorqError] | None = None) -> Iterator[None]:
    """OS errors as typed errors naming the VM path (never a host path); ``missing`` explains a
    name that does not resolve (a link out of the VM is PathOutsideVM, not NotFound)."""
    try:
        yield
    except OSError as exc:
        code = exc.errno
        name = errno.errorcode.get(code or 0, "E?")
        details = {"path": path, "errno": name}
        if code in (errno.ENOENT, errno.ENOTDIR):
            if missing is not None:
                raise missing() from None
            raise NotFound(f"no such file in the VM: {path}", details=details) from None
        if code == errno.EISDIR:
            raise BadRequest(f"{path} is a directory", details=details) from None
        if code == errno.ELOOP:
            raise BadRequest(f"too many levels of symbolic links in {path}", details=details) from None
        if code in (errno.EACCES, errno.EPERM):
            raise BadRequest(f"permission denied in the VM: {path}", details=details) from None
        if code == errno.ENAMETOOLONG:
            raise BadRequest(f"a name in {path} is too long", details=details) from None
        if code == errno.ENOTEMPTY:
            raise BadRequest(
                f"{path} is a non-empty directory; pass recursive=True", details=details
            ) from None
        if code in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            raise ResourceLimit(f"the VM is out of space writing {path}", details=details) from None
        if code == errno.EXDEV:
            raise BadRequest(f"{path}: cannot move between /home/user and /tmp", details=details) from None
        if code in (errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.EAGAIN):  # the server's, not the VM's
            raise Unavailable(f"the server cannot do this file action now: {os.strerror(code)}") from None
        if code in (errno.EIO, errno.EBADF, errno.EFAULT):
            raise ActorqError(f"file action on {path} failed: {os.strerror(code)}", details=details) from None
        # what the VM made of its files: a socket (ENXIO), a move into itself (EINVAL), a busy or
        # read-only mount, an existing name... the request cannot be done, and nothing changed
        raise BadRequest(
            f"file action on {path} refused: {os.strerror(code or 0)}", details=details
        ) from None


class VMFileSystem:
    """File actions on one VM, relative to ``root_fd`` (its ``vm/`` directory) whose path in the
    host thread's namespace is ``root_path``."""

    def __init__(self, root_fd: int, root_path: str) -> None:
        self._root = root_fd
        self._prefix = root_path.rstrip("/")

    # -- resolution ------------------------------------------------------------------------
    vm_path = staticmethod(vm_path)

    def _open(self, vm: str, flags: int, *, follow: bool = True) -> int:
        if not follow:
            flags |= os.O_NOFOLLOW
        return _linux.openat2(self._root, vm.lstrip("/") or ".", flags, _IN_ROOT)

    def where(self, fd: int, original: str) -> str:
        """The VM path of an open file, which must be inside /home/user or /tmp."""
        real = _linux.fd_path(fd)
        if real.endswith(" (deleted)"):
            raise NotFound(f"no such file in the VM: {original}", details={"path": original})
        if real != self._prefix and not real.startswith(self._prefix + "/"):
            raise PathOutsideVM(f"{original!r} resolves outside the VM", details={"path": original})
        vm = real[len(self._prefix) :] or "/"
        _check_tree(vm, original)
        return vm

    def _explain(self, path: str) -> ActorqError:
        """Why ``path`` did not resolve: it leads out of the VM's trees (through ``..`` above the
        root or a link), or it simply does not exist. Only chooses the error; decides nothing."""
        try:
            todo = _split(vm_path(path))
        except ActorqError as exc:
            return exc
        done: list[str] = []
        hops = 0
        while todo:
            part = todo.pop(0)
            if part == "..":
                if not done:
                    return PathOutsideVM(f"{path!r} climbs above the VM's root", details={"path": path})
                done.pop()
                continue
            try:
                fd = self._open("/" + "/".join(done), os.O_PATH | os.O_DIRECTORY)
            except OSError:
                break
            try:
                target: str | None = os.readlink(part, dir_fd=fd)
            except OSError:
                target = None
            finally:
                os.close(fd)
            if target is None:
                done.append(part)
                continue
            hops += 1
            if hops > _MAX_LINKS:
                break
            if target.startswith("/"):
                try:
                    outside = not _in_trees(vm_path(target))
                except ActorqError:
                    outside = True
                if outside:
                    return PathOutsideVM(
                        f"{path!r} goes through a symlink to {target!r}, outside the VM's files",
                        details={"path": path, "target": target},
                    )
                done = []
            todo = _split(target) + todo
        if not _in_trees("/" + "/".join(done)):
            return PathOutsideVM(
                f"{path!r} is outside the VM's files (/home/user and /tmp)", details={"path": path}
            )
        return NotFound(f"no such file in the VM: {path}", details={"path": path})

    def _errors(self, path: str) -> contextlib.AbstractContextManager[None]:
        return _errors(path, lambda: self._explain(path))

    def _dir(self, vm: str, original: str) -> int:
        """An O_PATH descriptor of an existing directory inside the trees."""
        with self._errors(original):
            fd = self._open(vm, os.O_PATH | os.O_DIRECTORY)
        try:
            self.where(fd, original)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _make_dirs(self, vm: str, original: str) -> int:
        """Like ``mkdir -p`` inside the VM; returns an O_PATH descriptor of the directory."""
        parts = _split(vm)
        top = 2 if vm.startswith(HOME) else 1
        fd = self._dir("/" + "/".join(parts[:top]), original)
        try:
            for i in range(top + 1, len(parts) + 1):
                sub = "/" + "/".join(parts[:i])
                for _ in range(3):  # a VM racing us to create or remove the same name
                    try:
                        nxt = self._open(sub, os.O_PATH | os.O_DIRECTORY)
                        break
                    except FileNotFoundError:
                        try:
                            os.mkdir(parts[i - 1], 0o755, dir_fd=fd)
                        except FileExistsError:
                            # there, yet it does not resolve: a link to nowhere, or out of the VM
                            why = self._explain(sub)
                            if isinstance(why, NotFound):
                                why = BadRequest(
                                    f"{sub} is a link to a missing directory", details={"path": sub}
                                )
                            raise why from None
                        except OSError:
                            with _errors(sub):
                                raise
                    except NotADirectoryError:
                        raise BadRequest(
                            f"{sub} exists and is not a directory", details={"path": sub}
                        ) from None
                    except OSError:
                        with self._errors(sub):
                            raise
                else:
                    raise NotFound(f"{sub} keeps disappearing", details={"path": sub})
                try:
                    self.where(nxt, original)
                except BaseException:
                    os.close(nxt)
                    raise
                os.close(fd)
                fd = nxt
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _parent(self, path: str, *, create: bool = False) -> tuple[int, str, str]:
        """(directory fd, leaf name, VM path) of the entry ``path`` names, not following the leaf."""
        vm = vm_path(path)
        _check_tree(vm, path)
        if vm in _ROOTS:
            raise BadRequest(f"{path} is one of the VM's roots (/home/user, /tmp)", details={"path": path})
        parent, _, name = vm.rpartition("/")
        fd = self._make_dirs(parent, path) if create else self._dir(parent, path)
        return fd, name, vm

    def cwd(self, path: str) -> str:
        """A working directory for a VM process, as a resolved VM path (it must exist)."""
        vm = vm_path(path)
        _check_tree(vm, path)
        fd = self._dir(vm, path)
        try:
            return self.where(fd, path)
        finally:
            os.close(fd)

    # -- operations --------------------------------------------------------------------------
    def read_file(self, path: str, max_bytes: int = MAX_READ) -> bytes:
        vm = vm_path(path)
        _check_tree(vm, path)
        with self._errors(path):
            fd = self._open(vm, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
        try:
            self.where(fd, path)
            st = os.fstat(fd)
            if stat_mod.S_ISDIR(st.st_mode):
                raise BadRequest(f"{path} is a directory", details={"path": path})
            if not stat_mod.S_ISREG(st.st_mode):
                raise BadRequest(f"{path} is not a regular file", details={"path": path})
            if st.st_size > max_bytes:
                raise MessageTooLarge(
                    f"{path} is {st.st_size} bytes; read_file returns at most {max_bytes}",
                    details={"path": path, "size": st.st_size, "max_bytes": max_bytes},
                )
            chunks, total = [], 0
            with self._errors(path):
                while chunk := os.read(fd, 1 << 20):
                    chunks.append(chunk)
                    total += len(chunk)
                    if total > max_bytes:
                        raise MessageTooLarge(f"{path} grew past {max_bytes} bytes while being read")
            return b"".join(chunks)
        finally:
            os.close(fd)

    def read_text(self, path: str) -> str:
        return self.read_file(path).decode("utf-8", "replace")

    def write_file(self, path: str, data: str | bytes) -> int:
        """Write a file, creating missing parent directories; returns bytes written.

        A symlink at the leaf is followed inside the VM (as ``echo > link`` would), one hop at a
        time with the VM path recomputed, so the write itself is always a rename in a directory we
        hold open.
        """
        try:
            raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        except UnicodeEncodeError:
            raise BadRequest(
                "file contents given as text must be valid Unicode (no lone surrogates)"
            ) from None
        target = path
        for _ in range(_MAX_LINKS):
            fd, name, _ = self._parent(target, create=True)
            try:
                with self._errors(path):
                    try:
                        st: os.stat_result | None = os.stat(name, dir_fd=fd, follow_symlinks=False)
                    except FileNotFoundError:
                        st = None
                    if st is not None and stat_mod.S_ISLNK(st.st_mode):
                        link = os.readlink(name, dir_fd=fd)
                        here = self.where(fd, path)
                        target = link if link.startswith("/") else f"{here}/{link}"
                        continue
                    if st is not None and stat_mod.S_ISDIR(st.st_mode):
                        raise BadRequest(f"{path} is a directory", details={"path": path})
                    self._replace(fd, name, raw)
                return len(raw)
            finally:
                os.close(fd)
        raise BadRequest(f"too many levels of symbolic links in {path}", details={"path": path})

    @staticmethod
    def _replace(dir_fd: int, name: str, raw: bytes) -> None:
        tmp = f".{name[:200]}.{secrets.token_hex(8)}{_TMP_SUFFIX}"
        fd = os.open(
            tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=dir_fd
        )
        try:
            try:
                view = memoryview(raw)
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
            os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dir_fd)
            raise

    def write_text(self, path: str, text: str) -> None:
        self.write_file(path, text)

    def mkdir(self, path: str) -> None:
        vm = vm_path(path)
        _check_tree(vm, path)
        os.close(self._make_dirs(vm, path))

    def readdir(self, path: str) -> list[str]:
        vm = vm_path(path)
        _check_tree(vm, path)
        with self._errors(path):
            try:
                fd = self._open(vm, os.O_RDONLY | os.O_DIRECTORY)
            except NotADirectoryError:
                raise BadRequest(f"{path} is not a directory", details={"path": path}) from None
        try:
            self.where(fd, path)
            names: list[str] = []
            with self._errors(path), os.scandir(fd) as it:
                for entry in it:
                    if len(names) >= MAX_ENTRIES:
                        raise MessageTooLarge(
                            f"{path} holds more than {MAX_ENTRIES} entries; list it with exec",
                            details={"path": path, "max_entries": MAX_ENTRIES},
                        )
                    names.append(entry.name)
        finally:
            os.close(fd)
        return sorted(_show(n) for n in names if not n.endswith(_TMP_SUFFIX))

    def readdir_recursive(self, path: str, *, max_entries: int = MAX_ENTRIES) -> list[DirEntry]:
        vm = vm_path(path)
        _check_tree(vm, path)
        with self._errors(path):
            fd = self._open(vm, os.O_RDONLY | os.O_DIRECTORY)
        try:
            base = self.where(fd, path).rstrip("/")
            out: list[DirEntry] = []
            for rel, _, entries in walk(fd):
                prefix = f"{base}/{rel}" if rel else base
                dirs = [(n, s) for n, s in entries if stat_mod.S_ISDIR(s.st_mode)]
                files = [(n, s) for n, s in entries if not stat_mod.S_ISDIR(s.st_mode)]
                for n, s in [*dirs, *files]:
                    if n.endswith(_TMP_SUFFIX):
                        continue
                    is_dir = stat_mod.S_ISDIR(s.st_mode)
                    out.append(DirEntry(_show(f"{prefix}/{n}"), _show(n), is_dir, 0 if is_dir else s.st_size))
                    if len(out) >= max_entries:
                        return out
            return out
        finally:
            os.close(fd)

    def stat(self, path: str) -> FileStat:
        vm = vm_path(path)
        _check_tree(vm, path)
        with self._errors(path):
            fd = self._open(vm, os.O_PATH)
        try:
            resolved = self.where(fd, path)
            st = os.fstat(fd)
        finally:
            os.close(fd)
        with self._errors(path):
            lfd = self._open(vm, os.O_PATH, follow=False)
        try:
            is_link = stat_mod.S_ISLNK(os.fstat(lfd).st_mode)
        finally:
            os.close(lfd)
        return FileStat(
            path=resolved,
            size=st.st_size,
            is_directory=stat_mod.S_ISDIR(st.st_mode),
            is_file=stat_mod.S_ISREG(st.st_mode),
            is_symlink=is_link,
            mode=stat_mod.S_IMODE(st.st_mode),
            mtime=st.st_mtime,
        )

    def exists(self, path: str) -> bool:
        vm = vm_path(path)
        _check_tree(vm, path)
        try:
            fd = self._open(vm, os.O_PATH)
        except OSError:
            return False
        try:
            self.where(fd, path)
            return True
        except NotFound:
            return False
        finally:
            os.close(fd)

    def move(self, src: str, dst: str) -> None:
        s_fd, s_name, _ = self._parent(src)
        try:
            with self._errors(src):
                os.stat(s_name, dir_fd=s_fd, follow_symlinks=False)
            d_fd, d_name, _ = self._parent(dst, create=True)
            try:
                with self._errors(dst):
                    try:
                        d_st: os.stat_result | None = os.stat(d_name, dir_fd=d_fd, follow_symlinks=False)
                    except FileNotFoundError:
                        d_st = None
                    if d_st is not None and stat_mod.S_ISDIR(d_st.st_mode):  # into that directory
                        inner = _linux.openat2(d_fd, d_name, os.O_PATH | os.O_DIRECTORY, _BENEATH)
                        os.close(d_fd)
                        d_fd, d_name = inner, s_name
                    try:
                        os.rename(s_name, d_name, src_dir_fd=s_fd, dst_dir_fd=d_fd)
                    except OSError as exc:
                        if exc.errno != errno.EXDEV:
                            raise
                        self._copy_across(s_fd, s_name, d_fd, d_name, src)
            finally:
                os.close(d_fd)
        finally:
            os.close(s_fd)

    def _copy_across(self, s_fd: int, s_name: str, d_fd: int, d_name: str, src: str) -> None:
        """``/home/user`` and ``/tmp`` are different filesystems: copy a regular file, then unlink."""
        fd = os.open(s_name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=s_fd)
        try:
            if not stat_mod.S_ISREG(os.fstat(fd).st_mode):
                raise BadRequest(
                    f"only files move between /home/user and /tmp; {src} is not one", details={"path": src}
                )
            chunks = []
            while chunk := os.read(fd, 1 << 20):
                chunks.append(chunk)
        finally:
            os.close(fd)
        self._replace(d_fd, d_name, b"".join(chunks))
        os.unlink(s_name, dir_fd=s_fd)

    def delete_file(self, path: str, *, recursive: bool = False) -> None:
        fd, name, _ = self._parent(path)
        try:
            with self._errors(path):
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                if stat_mod.S_ISDIR(st.st_mode):
                    if recursive:
                        remove_tree(fd, name)
                    else:
                        os.rmdir(name, dir_fd=fd)
                else:
                    os.unlink(name, dir_fd=fd)
        finally:
            os.close(fd)


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
    return _linux.openat2(fd, name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, _BENEATH)


def walk(top_fd: int) -> Iterator[tuple[str, int, list[tuple[str, os.stat_result]]]]:
    """Every directory under ``top_fd`` (a directory descriptor), top-down and sorted, as (path
    relative to the top, its descriptor (valid until the next step), [(name, lstat)]). Links are
    never followed: each subdirectory is opened by one name relative to its parent's descriptor,
    and what vanished or changed is skipped. No recursion and no long paths, since a VM can nest
    directories thousands deep; past
    ``MAX_DEPTH`` levels it raises BadRequest rather than holding a descriptor per level."""
    stack: list[tuple[int, str, Iterator[str]]] = []
    try:
        fd = _linux.openat2(top_fd, ".", os.O_RDONLY | os.O_DIRECTORY, _BENEATH)
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
