"""SQLite (WAL) driver: the embedded default, one process per data directory.

Owns: the writer thread that group-commits every operation arriving while the previous
transaction is written, so concurrent sends share one fsync (``writer.py``, on
``actorq._batching``), the migrations (``schema.sql`` is what they produce) and the named queries.
Imports only ``actorq.storage``, ``actorq.errors`` and ``actorq._batching``; never ``actorq.core``,
``actorq.server``, ``actorq.client`` or ``actorq.agent_os``.
"""

from actorq.storage.sqlite.driver import SQLiteStorage

__all__ = ["SQLiteStorage"]
