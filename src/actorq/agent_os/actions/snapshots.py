"""The VM actor's side of snapshots: ``/home/user`` follows the VM's actor across nodes.

Only with storage that moves files between nodes (``c.snapshots``, PostgreSQL). On wake,
``restore_job`` says whether shared storage holds a newer generation than this node's disk and
returns the job that unpacks it (the host thread runs it before it binds the home); ``save`` packs
the home on the VM's host thread as its uid and stores it as the next generation (on sleep, after
every process stopped, and every ``snapshot_interval`` seconds from ``save_every``). Packing and
unpacking themselves are ``snapshot.py``'s.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

from actorq.agent_os import snapshot
from actorq.agent_os.host import VMHost
from actorq.agent_os.machine import VMVars
from actorq.core import ActorContext
from actorq.errors import ActorqError

_GEN_FILE = ".snapshot-generation"  # beside home/, in the VM root: which snapshot the disk holds


def _local_generation(root: Path) -> int:
    try:
        return int((root / _GEN_FILE).read_text())
    except (OSError, ValueError):
        return 0


async def restore_job(c: ActorContext, root: Path, home: Path, uid: int) -> Callable[[], None] | None:
    """On wake: if shared storage holds a newer snapshot than this node's disk, the job unpacking it
    (run by the VM's host thread before it binds the home)."""
    store = c.snapshots
    wanted = int(c.state.get("snapshot_generation", 0)) if isinstance(c.state, dict) else 0
    if store is None or wanted <= _local_generation(root):
        return None
    found = await store.load_snapshot(c.actor_id)
    if found is None:
        c.log.warning("VM snapshot %d is missing from storage; keeping the local files", wanted)
        return None
    generation, chunks = found

    def job() -> None:
        snapshot.unpack(chunks, home, owner=uid)
        (root / _GEN_FILE).write_text(str(generation))
        c.log.info("restored VM files from snapshot %d (%d bytes)", generation, sum(map(len, chunks)))

    return job


def _pack(host: VMHost) -> list[bytes]:
    fd = os.open(host.stage.home, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return snapshot.pack(fd)
    finally:
        os.close(fd)


async def save(c: ActorContext, host: VMHost) -> None:
    store = c.snapshots
    if store is None:
        return
    try:
        chunks = await host.as_vm_user(_pack, host)
    except ActorqError as exc:
        c.log.error("VM snapshot skipped: %s", exc.message)
        return
    generation = int(c.state.get("snapshot_generation", 0)) + 1
    await store.save_snapshot(c.actor_id, generation, chunks)
    c.state["snapshot_generation"] = generation
    await c.save_state()
    (c.files_dir / "vm" / _GEN_FILE).write_text(str(generation))


async def save_every(c: ActorContext, interval: float) -> None:
    v: VMVars = c.vars
    while True:
        await asyncio.sleep(interval)
        if v.machine is None:
            return
        try:
            await save(c, v.machine.host)
        except Exception as exc:  # a failed periodic snapshot must not end the VM
            c.log.warning("periodic VM snapshot failed: %s", exc)
