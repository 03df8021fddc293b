"""How a VM path becomes an open descriptor: the kernel resolves it inside the VM's root.

File actions reach the VM's own trees, ``/home/user`` (persistent) and ``/tmp`` (a tmpfs of the
VM's). Every path is resolved by ``openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`` under the VM's
root (a directory of the VM's host thread that holds only those two trees, see ``host.py``): the
kernel follows symlinks as the VM sees them, treats ``/`` and ``..`` as the VM's root, and resolves
atomically, so a VM process swapping directories and links mid-call can at worst redirect an action
to another place inside its own trees. What it opened must then lie in ``/home/user`` or ``/tmp``
(read from the open descriptor, not recomputed from the path), or the call fails with
:class:`PathOutsideVM`. Below a directory already open, a name is opened with
``openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`` (:func:`open_child`): one step, never a link.
These two are the only ways agent_os opens a VM file by name (``fs.py`` for single paths,
``trees.py`` for walks).

Must run on the VM's host thread with the VM's uid for file access (``VMHost.as_vm_user``). Errors
name VM paths only, never where the VM lives on the host. Must not import the core or storage.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Callable, Iterator

from actorq.agent_os import _linux
from actorq.errors import ActorqError, BadRequest, NotFound, PathOutsideVM, ResourceLimit, Unavailable

HOME = "/home/user"
ROOTS = ("/home/user", "/tmp")
MAX_LINKS = 40
_IN_ROOT = _linux.RESOLVE_IN_ROOT | _linux.RESOLVE_NO_MAGICLINKS
_BENEATH = _linux.RESOLVE_BENEATH | _linux.RESOLVE_NO_SYMLINKS | _linux.RESOLVE_NO_MAGICLINKS


def open_child(dir_fd: int, name: str, flags: int) -> int:
    """``name`` (one entry, or ``"."``) in the open directory ``dir_fd``; never through a link."""
    return _linux.openat2(dir_fd, name, flags, _BENEATH)


def _split(path: str) -> list[str]:
    return [p for p in path.split("/") if p not in ("", ".")]


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
    return any(vm == r or vm.startswith(r + "/") for r in ROOTS)


def check_tree(vm: str, original: str) -> None:
    if not _in_trees(vm):
        raise PathOutsideVM(
            f"{original!r} is outside the VM's files (/home/user and /tmp)",
            details={"path": original, "resolved": vm},
        )


@contextlib.contextmanager
def errors(path: str, missing: Callable[[], ActorqError] | None = None) -> Iterator[None]:
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


class VMRoot:
    """Path resolution under one VM's root, ``root_fd`` (its ``vm/`` directory) whose path in the
    host thread's namespace is ``root_path``; ``fs.VMFileSystem`` adds the file actions."""

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
        check_tree(vm, original)
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
            if hops > MAX_LINKS:
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
        return errors(path, lambda: self._explain(path))

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
                            with errors(sub):
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
        check_tree(vm, path)
        if vm in ROOTS:
            raise BadRequest(f"{path} is one of the VM's roots (/home/user, /tmp)", details={"path": path})
        parent, _, name = vm.rpartition("/")
        fd = self._make_dirs(parent, path) if create else self._dir(parent, path)
        return fd, name, vm

    def cwd(self, path: str) -> str:
        """A working directory for a VM process, as a resolved VM path (it must exist)."""
        vm = vm_path(path)
        check_tree(vm, path)
        fd = self._dir(vm, path)
        try:
            return self.where(fd, path)
        finally:
            os.close(fd)
