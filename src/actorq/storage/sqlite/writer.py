"""The SQLite writer thread: owns the connection, runs operations in group-committed batches.

Operations queue up while the previous transaction commits (``actorq._batching.ThreadBatcher``:
whatever arrived meanwhile is the next batch, at most ``MAX_BATCH``); the thread runs the whole
batch in one ``BEGIN IMMEDIATE`` transaction, commits once, and every caller gets its own result.
An operation that fails before writing (a typed error such as ``QueueFull``) fails alone; one that
fails otherwise makes the batch run again with each operation inside its own savepoint, so only
its changes are dropped. That is group commit: 32 concurrent senders pay for one fsync, not 32.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from actorq._batching import ThreadBatcher
from actorq.errors import ActorqError, Unavailable
from actorq.storage._sql import load_migrations

Op = Callable[[sqlite3.Connection], Any]
# (operation, whether its commit must reach the disk before it is answered)
Call = tuple[Op, bool]
MAX_BATCH = 1024


class Writer(threading.Thread):
    """Owns the connection; ``submit`` from any event loop, ``stop`` to finish and close."""

    def __init__(self, path: Path, synchronous: str) -> None:
        super().__init__(name=f"actorq-sqlite:{path.name}", daemon=True)
        self.path = path
        self.synchronous = synchronous
        self._synchronous = synchronous
        self._batcher: ThreadBatcher[Call, Any] = ThreadBatcher(max_batch=MAX_BATCH)
        self.ready = threading.Event()
        self.startup_error: BaseException | None = None

    def submit(self, op: Op, durable: bool) -> asyncio.Future[Any]:
        return self._batcher.submit((op, durable))

    def stop(self) -> None:
        """Run what was submitted before, then close the connection and end the thread."""
        self._batcher.stop()

    def run(self) -> None:
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
            conn.execute("PRAGMA busy_timeout=5000")
            conn.execute("PRAGMA foreign_keys=OFF")
            conn.execute("PRAGMA cache_size=-8192")  # 8 MiB: the OS page cache does the rest
            migrate(conn)
        except BaseException as exc:
            self.startup_error = exc
            self.ready.set()
            return
        self.ready.set()
        try:
            self._batcher.serve(lambda calls: self._run_batch(conn, calls))
        finally:
            conn.close()

    def _run_batch(self, conn: sqlite3.Connection, batch: list[Call]) -> list[Any]:
        # A batch that only hands out messages (or reads) need not wait for fsync: losing it to a
        # power cut only forgets a delivery, which recovery redoes. Process crashes lose nothing.
        sync = self.synchronous if any(durable for _, durable in batch) else "NORMAL"
        if sync != self._synchronous:
            conn.execute(f"PRAGMA synchronous={sync}")
            self._synchronous = sync
        try:
            return _run_together(conn, batch)
        except _Unexpected:
            # an operation failed in a way that may have left partial writes: run the batch again,
            # each operation fenced by a savepoint, so only that operation's changes are dropped
            return _run_fenced(conn, batch)
        except Exception as exc:  # the commit itself failed: nothing of this batch is durable
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            err = Unavailable(f"storage write failed: {exc}")
            return [err] * len(batch)


class _Unexpected(Exception):
    """An operation raised something other than a typed error; retry the batch fenced."""


def _run_together(conn: sqlite3.Connection, batch: list[Call]) -> list[Any]:
    """The fast path: one transaction, no savepoints. Operations raise ``ActorqError`` only
    before they write (e.g. QueueFull), so such an error needs no rollback."""
    results: list[Any] = []
    conn.execute("BEGIN IMMEDIATE")
    for op, _ in batch:
        try:
            results.append(op(conn))
        except ActorqError as exc:
            results.append(exc)
        except Exception as exc:
            conn.execute("ROLLBACK")
            raise _Unexpected() from exc
    conn.execute("COMMIT")
    return results


def _run_fenced(conn: sqlite3.Connection, batch: list[Call]) -> list[Any]:
    results: list[Any] = []
    conn.execute("BEGIN IMMEDIATE")
    for op, _ in batch:
        conn.execute("SAVEPOINT op")
        try:
            value = op(conn)
        except Exception as exc:
            conn.execute("ROLLBACK TO op")
            conn.execute("RELEASE op")
            results.append(exc)
        else:
            conn.execute("RELEASE op")
            results.append(value)
    conn.execute("COMMIT")
    return results


def migrate(conn: sqlite3.Connection) -> None:
    """Apply the numbered migrations newer than ``PRAGMA user_version`` (``schema.sql`` is the result)."""
    current = conn.execute("PRAGMA user_version").fetchone()[0]
    for version, _name, sql in load_migrations("actorq.storage.sqlite"):
        if version <= current:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            for stmt in sql.split(";\n"):
                if stmt.strip() and not all(
                    line.strip().startswith("--") or not line.strip() for line in stmt.splitlines()
                ):
                    conn.execute(stmt)
            conn.execute(f"PRAGMA user_version={version}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
