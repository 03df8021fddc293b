"""The VM's file actions: each is one call on the machine's ``VMFiles`` (``files.py``), which runs
it on the VM's host thread as the VM's uid with every path resolved inside the VM (``fs.py``)."""

from __future__ import annotations

from typing import Any

from actorq.agent_os.host import HOME
from actorq.agent_os.machine import running
from actorq.core import ActorContext
from actorq.vm_types import BatchReadResult, BatchWriteResult, DirEntry, FileStat


async def read_file(c: ActorContext, path: str) -> bytes:
    return await running(c).files.read_file(path)


async def write_file(c: ActorContext, path: str, data: str | bytes) -> int:
    return await running(c).files.write_file(path, data)


async def read_files(c: ActorContext, paths: list[str]) -> list[BatchReadResult]:
    return await running(c).files.read_files(paths)


async def write_files(c: ActorContext, files_: list[dict[str, Any]]) -> list[BatchWriteResult]:
    return await running(c).files.write_files(files_)


async def mkdir(c: ActorContext, path: str) -> None:
    await running(c).files.mkdir(path)


async def readdir(c: ActorContext, path: str = HOME) -> list[str]:
    return await running(c).files.readdir(path)


async def readdir_recursive(c: ActorContext, path: str = HOME) -> list[DirEntry]:
    return await running(c).files.readdir_recursive(path)


async def stat(c: ActorContext, path: str) -> FileStat:
    return await running(c).files.stat(path)


async def exists(c: ActorContext, path: str) -> bool:
    return await running(c).files.exists(path)


async def move(c: ActorContext, src: str, dst: str) -> None:
    await running(c).files.move(src, dst)


async def delete_file(c: ActorContext, path: str, *, recursive: bool = False) -> None:
    await running(c).files.delete_file(path, recursive=recursive)
