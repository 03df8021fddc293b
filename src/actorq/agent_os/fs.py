"""A VM's files as its file actions see them: VM paths resolved safely onto the VM's root on disk.

File actions reach the VM's own tree, ``/home/user`` (persistent) and ``/tmp`` (private, emptied
when the VM wakes). A VM path is resolved the way ``openat2(RESOLVE_IN_ROOT)`` would: component
by component, following symlinks inside the VM; ``..`` above ``/``, a symlink whose target leaves
those trees, and anything that ends outside them raise :class:`PathOutsideVM`. Relative paths are
relative to ``/home/user``. The host never follows a VM symlink to a host path.

Must not import the core or storage.
"""

from __future__ import annotations

import os
import shutil
import stat as stat_mod
from dataclasses import dataclass
from pathlib import Path

from actorq.errors import BadRequest, NotFound, PathOutsideVM

HOME = "/home/user"
_ROOTS = ("/home/user", "/tmp")
_MAX_LINKS = 40


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


class VMFileSystem:
    def __init__(self, root: Path, owner: int | None = None) -> None:
        self.root = root
        self._real_root = os.path.realpath(root)
        self.owner = owner  # host uid VM processes run as: what this writes must be theirs too

    def _own(self, path: Path | str) -> None:
        if self.owner is not None:
            os.lchown(path, self.owner, self.owner)

    # -- resolution ------------------------------------------------------------------------
    def vm_path(self, path: str) -> str:
        """Normalise a VM path lexically (``..`` above ``/`` is refused); no symlinks followed."""
        if not isinstance(path, str) or not path:
            raise BadRequest("a VM path is a non-empty string")
        if "\0" in path:
            raise BadRequest("a VM path cannot contain NUL")
        parts: list[str] = [] if path.startswith("/") else _split(HOME)
        for part in _split(path):
            if part == "..":
                if not parts:
                    raise PathOutsideVM(f"{path!r} climbs above the VM's root", details={"path": path})
                parts.pop()
            else:
                parts.append(part)
        return "/" + "/".join(parts)

    def _check_tree(self, vm: str, original: str) -> None:
        if not any(vm == r or vm.startswith(r + "/") for r in _ROOTS):
            raise PathOutsideVM(
                f"{original!r} is outside the VM's files (/home/user and /tmp)",
                details={"path": original, "resolved": vm},
            )

    def resolve(self, path: str, *, follow_last: bool = True) -> tuple[str, Path]:
        """(VM path, host path) with symlinks resolved inside the VM; refuses escapes."""
        vm = self.vm_path(path)
        self._check_tree(vm, path)
        todo = _split(vm)
        done: list[str] = []
        hops = 0
        while todo:
            part = todo.pop(0)
            if part == "..":
                if not done:
                    raise PathOutsideVM(f"{path!r} climbs above the VM's root", details={"path": path})
                done.pop()
                continue
            host = os.path.join(self.root, *done, part)
            last = not todo
            if os.path.islink(host) and (follow_last or not last):
                hops += 1
                if hops > _MAX_LINKS:
                    raise BadRequest(f"too many levels of symbolic links in {path!r}")
                target = os.readlink(host)
                if target.startswith("/"):
                    tvm = self.vm_path(target)
                    if not any(tvm == r or tvm.startswith(r + "/") for r in _ROOTS):
                        raise PathOutsideVM(
                            f"{path!r} goes through a symlink to {target!r}, outside the VM's files",
                            details={"path": path, "target": target},
                        )
                    done = []
                    todo = _split(target) + todo
                else:
                    todo = _split(target) + todo
                continue
            done.append(part)
        resolved_vm = "/" + "/".join(done)
        self._check_tree(resolved_vm, path)
        host_path = Path(self.root, *done)
        real = os.path.realpath(host_path)  # defence in depth: the host's own view must agree
        if real != self._real_root and not real.startswith(self._real_root + os.sep):
            raise PathOutsideVM(f"{path!r} resolves outside the VM", details={"path": path})
        return resolved_vm, host_path

    def cwd(self, path: str) -> str:
        """A working directory for a VM process, as a resolved VM path (it must exist)."""
        vm, host = self.resolve(path)
        if not host.is_dir():
            raise NotFound(f"cwd {path!r} is not a directory in the VM")
        return vm

    def host(self, path: str, *, follow_last: bool = True) -> Path:
        return self.resolve(path, follow_last=follow_last)[1]

    # -- operations --------------------------------------------------------------------------
    def read_file(self, path: str) -> bytes:
        host = self.host(path)
        try:
            with open(host, "rb") as f:
                return f.read()
        except FileNotFoundError:
            raise NotFound(f"no such file in the VM: {path}") from None
        except IsADirectoryError:
            raise BadRequest(f"{path} is a directory") from None

    def read_text(self, path: str) -> str:
        return self.read_file(path).decode("utf-8", "replace")

    def write_file(self, path: str, data: str | bytes) -> int:
        """Write a file, creating missing parent directories; returns bytes written."""
        raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        vm, host = self.resolve(path)
        if vm in _ROOTS:
            raise BadRequest(f"{path} is a directory")
        self._mkdirs(os.path.dirname(vm))
        if host.is_dir():
            raise BadRequest(f"{path} is a directory")
        tmp = host.with_name(f".{host.name}.actorq-tmp")
        with open(tmp, "wb") as f:
            f.write(raw)
        self._own(tmp)
        os.replace(tmp, host)
        return len(raw)

    def write_text(self, path: str, text: str) -> None:
        self.write_file(path, text)

    def _mkdirs(self, vm_dir: str) -> None:
        # one component at a time, re-resolving, so a symlinked parent cannot lead outside
        parts = _split(vm_dir)
        for i in range(1, len(parts) + 1):
            sub = "/" + "/".join(parts[:i])
            if not any(sub == r or sub.startswith(r + "/") for r in _ROOTS):
                continue
            host = self.host(sub)
            if host.is_dir():
                continue
            if host.exists():
                raise BadRequest(f"{sub} exists and is not a directory")
            host.mkdir()
            self._own(host)

    def mkdir(self, path: str) -> None:
        self._mkdirs(self.vm_path(path))
        self.host(path)

    def readdir(self, path: str) -> list[str]:
        host = self.host(path)
        if not host.exists():
            raise NotFound(f"no such directory in the VM: {path}")
        if not host.is_dir():
            raise BadRequest(f"{path} is not a directory")
        return sorted(n for n in os.listdir(host) if not n.endswith(".actorq-tmp"))

    def readdir_recursive(self, path: str, *, max_entries: int = 100_000) -> list[DirEntry]:
        vm, host = self.resolve(path)
        if not host.is_dir():
            raise NotFound(f"no such directory in the VM: {path}")
        out: list[DirEntry] = []
        for dirpath, dirnames, filenames in os.walk(host, followlinks=False):
            dirnames.sort()
            rel = os.path.relpath(dirpath, host)
            base = vm if rel == "." else f"{vm.rstrip('/')}/{rel}"
            for name in [*dirnames, *sorted(filenames)]:
                full = os.path.join(dirpath, name)
                st = os.lstat(full)
                is_dir = stat_mod.S_ISDIR(st.st_mode)
                out.append(DirEntry(f"{base.rstrip('/')}/{name}", name, is_dir, 0 if is_dir else st.st_size))
                if len(out) >= max_entries:
                    return out
        return out

    def stat(self, path: str) -> FileStat:
        vm, host = self.resolve(path)
        try:
            st = os.stat(host)
        except FileNotFoundError:
            raise NotFound(f"no such file in the VM: {path}") from None
        return FileStat(
            path=vm,
            size=st.st_size,
            is_directory=stat_mod.S_ISDIR(st.st_mode),
            is_file=stat_mod.S_ISREG(st.st_mode),
            is_symlink=os.path.islink(self.host(path, follow_last=False)),
            mode=stat_mod.S_IMODE(st.st_mode),
            mtime=st.st_mtime,
        )

    def exists(self, path: str) -> bool:
        try:
            return self.host(path).exists()
        except NotFound:
            return False

    def move(self, src: str, dst: str) -> None:
        s_vm, s_host = self.resolve(src, follow_last=False)
        d_vm, d_host = self.resolve(dst, follow_last=False)
        if s_vm in _ROOTS or d_vm in _ROOTS:
            raise BadRequest("cannot move the VM's /home/user or /tmp")
        if not os.path.lexists(s_host):
            raise NotFound(f"no such file in the VM: {src}")
        self._mkdirs(os.path.dirname(d_vm))
        os.replace(s_host, d_host) if not d_host.is_dir() else shutil.move(str(s_host), str(d_host))

    def delete_file(self, path: str, *, recursive: bool = False) -> None:
        vm, host = self.resolve(path, follow_last=False)
        if vm in _ROOTS:
            raise BadRequest("cannot delete the VM's /home/user or /tmp")
        if not os.path.lexists(host):
            raise NotFound(f"no such file in the VM: {path}")
        if host.is_dir() and not host.is_symlink():
            if not recursive:
                try:
                    host.rmdir()
                except OSError:
                    raise BadRequest(f"{path} is a non-empty directory; pass recursive=True") from None
                return
            shutil.rmtree(host)
        else:
            host.unlink()
