"""The optional part of the storage protocol that moves node-local files between nodes.

A driver whose database is shared by several nodes (PostgreSQL) implements it, so an agent VM's
``/home/user`` can follow its actor to whichever node owns it. The embedded SQLite driver does
not: its files never leave the one node. Snapshots are opaque, already-compressed chunks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable


@runtime_checkable
class SnapshotStorage(Protocol):
    async def save_snapshot(self, actor_id: str, generation: int, chunks: Sequence[bytes]) -> None:
        """Replace the actor's snapshot with ``chunks`` (in one transaction) at ``generation``."""
        ...

    async def load_snapshot(self, actor_id: str) -> tuple[int, list[bytes]] | None:
        """The actor's latest snapshot as (generation, chunks), or None."""
        ...
