"""SQLite (WAL) driver: the embedded default. One writer thread group-commits every operation
that arrives while the previous transaction is being written, so concurrent sends share one fsync."""

from actorq.storage.sqlite.driver import SQLiteStorage

__all__ = ["SQLiteStorage"]
