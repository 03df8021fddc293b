"""A VM's file actions on single paths, each resolved inside the VM (``paths.py``).

Resolution is ``paths.VMRoot``'s; this module does what each action does once it holds an open
directory. The final step of a change is always ``*at()`` on that directory with names that cannot
be links (``O_EXCL|O_NOFOLLOW`` temp files with random names, ``renameat``, ``unlinkat``), so
nothing on the host is ever written through a link made inside the VM; recursive listing and
deletion walk descriptors (``trees.py``).

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

from actorq.agent_os.paths import MAX_LINKS, VMRoot, check_tree, open_child, vm_path
from actorq.agent_os.trees import remove_tree, walk
from actorq.errors import BadRequest, MessageTooLarge, NotFound
from actorq.vm_types import DirEntry, FileStat

_TMP_SUFFIX = ".actorq-tmp"
MAX_READ = 64 * 1024 * 1024  # bytes read_file returns at most: larger files go through exec/vm_fetch
MAX_ENTRIES = 100_000  # names readdir / readdir_recursive return at most


def _show(name: str) -> str:
    """A file name as text: bytes that are not UTF-8 become U+FFFD (JSON carries only Unicode)."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


class VMFileSystem(VMRoot):
    """The file actions on one VM (``VMRoot`` resolves their paths)."""

    def read_file(self, path: str, max_bytes: int = MAX_READ) -> bytes:
        vm = vm_path(path)
        check_tree(vm, path)
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
        for _ in range(MAX_LINKS):
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
        check_tree(vm, path)
        os.close(self._make_dirs(vm, path))

    def readdir(self, path: str) -> list[str]:
        vm = vm_path(path)
        check_tree(vm, path)
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
        check_tree(vm, path)
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
        check_tree(vm, path)
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
        check_tree(vm, path)
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
                        inner = open_child(d_fd, d_name, os.O_PATH | os.O_DIRECTORY)
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
