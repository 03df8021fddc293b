"""The file actions of one awake VM, as coroutines: each runs on the VM's host thread as its uid.

This is the only way the rest of agent_os (VM actions, agent drivers' ``fs/*`` callbacks, sessions'
working directories) touches a VM's files: ``fs.VMFileSystem`` does the resolving, ``VMHost`` gives
the thread and credentials, ``DiskGuard`` refuses writes over the disk cap.

Must not import the core or storage.
"""

from __future__ import annotations

from actorq.agent_os.disk import DiskGuard
from actorq.agent_os.fs import DirEntry, FileStat, VMFileSystem
from actorq.agent_os.host import VMHost


class VMFiles:
    def __init__(self, host: VMHost, fs: VMFileSystem, disk: DiskGuard) -> None:
        self.host = host
        self.fs = fs
        self.disk = disk

    async def read_file(self, path: str) -> bytes:
        return await self.host.as_vm_user(self.fs.read_file, path)

    async def read_text(self, path: str) -> str:
        return await self.host.as_vm_user(self.fs.read_text, path)

    async def write_file(self, path: str, data: str | bytes) -> int:
        size = len(data.encode("utf-8", "replace")) if isinstance(data, str) else len(data)
        await self.disk.check(size)
        n = await self.host.as_vm_user(self.fs.write_file, path, data)
        self.disk.wrote(n)
        return n

    async def write_text(self, path: str, text: str) -> None:
        await self.write_file(path, text)

    async def mkdir(self, path: str) -> None:
        await self.disk.check()
        await self.host.as_vm_user(self.fs.mkdir, path)

    async def readdir(self, path: str) -> list[str]:
        return await self.host.as_vm_user(self.fs.readdir, path)

    async def readdir_recursive(self, path: str) -> list[DirEntry]:
        return await self.host.as_vm_user(self.fs.readdir_recursive, path)

    async def stat(self, path: str) -> FileStat:
        return await self.host.as_vm_user(self.fs.stat, path)

    async def exists(self, path: str) -> bool:
        return await self.host.as_vm_user(self.fs.exists, path)

    async def move(self, src: str, dst: str) -> None:
        await self.host.as_vm_user(self.fs.move, src, dst)

    async def delete_file(self, path: str, *, recursive: bool = False) -> None:
        await self.host.as_vm_user(self.fs.delete_file, path, recursive=recursive)
        if self.disk.over:  # freeing space is how a VM gets back under its cap: look again now
            await self.disk.measure()

    async def cwd(self, path: str) -> str:
        return await self.host.as_vm_user(self.fs.cwd, path)
