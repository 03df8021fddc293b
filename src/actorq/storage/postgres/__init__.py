"""PostgreSQL driver (asyncpg): the same storage protocol and conformance suite as SQLite.

Single-node semantics today; node leases, fencing epochs and forwarding are the scale-out
issue's work and will extend this driver, not replace it.
"""

from actorq.storage.postgres.driver import PostgresStorage

__all__ = ["PostgresStorage"]
