"""The file actions of one awake VM, as coroutines: each runs on the VM's host thread as its uid.

This is the only way the rest of agent_os (VM actions, agent drivers' ``fs/*`` callbacks, sessions'
working directories) touches a VM's files: ``fs.VMFileSystem`` does the resolving (``paths``) and
the change, ``VMHost`` gives the thread and credentials, ``DiskGuard`` refuses writes over the disk
cap. ``read_files`` / ``write_files`` are the batches of the file actions, one result per item.

Must not import the core or storage.
"""

from __future__ import annotations

from typing import Any

from actorq.agent_os.disk import DiskGuard
from actorq.agent_os.fs import MAX_READ, VMFileSystem
from actorq.agent_os.host import VMHost
from actorq.errors import ActorqError, BadRequest, MessageTooLarge
from actorq.vm_types import BatchReadResult, BatchWriteResult, DirEntry, FileStat

MAX_BATCH = 1000  # paths in one read_files / write_files


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

    async def read_files(self, paths: list[str]) -> list[BatchReadResult]:
        if not isinstance(paths, list) or len(paths) > MAX_BATCH:
            raise BadRequest(f"paths is a list of at most {MAX_BATCH} VM paths")
        out: list[BatchReadResult] = []
        budget = MAX_READ  # for the whole answer, not each file
        for p in paths:
            try:
                data = await self.read_file(p)
                if len(data) > budget:
                    raise MessageTooLarge(f"read_files returns at most {MAX_READ} bytes in all")
                budget -= len(data)
                out.append(BatchReadResult(p, data))
            except ActorqError as exc:
                out.append(BatchReadResult(str(p), None, error=exc.to_dict()))
        return out

    async def write_files(self, files: list[dict[str, Any]]) -> list[BatchWriteResult]:
        if not isinstance(files, list) or len(files) > MAX_BATCH:
            raise BadRequest(
                f"files is a list of at most {MAX_BATCH} {{'path': str, 'content': str | bytes}}"
            )
        out: list[BatchWriteResult] = []
        for item in files:
            path = item.get("path") if isinstance(item, dict) else None
            content = item.get("content") if isinstance(item, dict) else None
            try:
                if not isinstance(path, str) or not isinstance(content, (str, bytes)):
                    raise BadRequest("each file is {'path': str, 'content': str | bytes}")
                await self.write_file(path, content)
                out.append(BatchWriteResult(path))
            except ActorqError as exc:
                out.append(BatchWriteResult(str(path), success=False, error=exc.to_dict()))
        return out

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
