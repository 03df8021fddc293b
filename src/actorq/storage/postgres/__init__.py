"""PostgreSQL driver (asyncpg): the storage protocol for several server nodes sharing one database.

Owns: the pool and migrations (``database.py``; ``schema.sql`` is what the migrations produce),
node registration, actor leases with fencing epochs and cross-node wake-ups (``leases.py``), the
group-committed hot paths (``batched.py``) and their result codes (``codes.py``), VM snapshots.
Passes the same conformance suite as SQLite. Imports only ``actorq.storage``, ``actorq.errors``,
``actorq._batching`` and ``actorq._extras`` (asyncpg is the ``postgres`` extra); never
``actorq.core``, ``actorq.server``, ``actorq.client`` or ``actorq.agent_os``.
"""

# ruff: noqa: E402  (the extra is checked before the imports that need it)
from actorq._extras import require

require("asyncpg", "postgres", "PostgreSQL storage")

from actorq.storage.postgres.driver import PostgresStorage

__all__ = ["PostgresStorage"]
