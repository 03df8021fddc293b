"""Durable storage behind one protocol (:class:`~actorq.storage.protocol.Storage`).

Owns: the on-disk layout of actors, messages, state and schedules (each driver's ``schema.sql``),
and the transactions that keep queue semantics atomic (send with size check and idempotency,
receive with acknowledgement and state, complete, release, recovery); for a database shared by
several nodes also node leases (:class:`~actorq.storage.protocol.LeasedStorage`) and VM snapshots.
Drivers: ``sqlite`` (embedded default) and ``postgres`` (several nodes). The contract is the
conformance suite in ``tests/storage/``, run against every driver.
Imports only ``actorq.errors`` and ``actorq._batching`` from the rest of actorq; never
``actorq.core``, ``actorq.server``, ``actorq.client`` or ``actorq.agent_os``: storage knows rows,
not actors.
"""

from __future__ import annotations

import os
from pathlib import Path

from actorq.storage.protocol import (
    ActorRecord,
    MessageRecord,
    MessageStatus,
    QueueDepth,
    QueueStats,
    ReceiveOutcome,
    ScheduleRecord,
    SendOutcome,
    SendRequest,
    Storage,
)

DEFAULT_DATA_DIR = ".actorq"


def open_storage(spec: str | os.PathLike[str] | Storage | None = None) -> Storage:
    """Build the storage named by ``spec``: a driver instance, a directory path, or a URL.

    ``None`` means ``$ACTORQ_DATA`` or ``./.actorq``. ``postgresql://...`` selects PostgreSQL.
    """
    if spec is not None and not isinstance(spec, (str, os.PathLike)):
        return spec
    raw = os.fspath(spec) if spec is not None else os.environ.get("ACTORQ_DATA", DEFAULT_DATA_DIR)
    if raw.startswith(("postgresql://", "postgres://")):
        from actorq.storage.postgres import PostgresStorage

        return PostgresStorage(raw, schema=os.environ.get("ACTORQ_PG_SCHEMA", "actorq"))
    from actorq.storage.sqlite import SQLiteStorage

    return SQLiteStorage(Path(raw))


__all__ = [
    "ActorRecord",
    "MessageRecord",
    "MessageStatus",
    "QueueDepth",
    "QueueStats",
    "ReceiveOutcome",
    "ScheduleRecord",
    "SendOutcome",
    "SendRequest",
    "Storage",
    "open_storage",
]
