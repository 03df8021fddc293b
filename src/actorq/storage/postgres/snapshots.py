"""VM snapshots in PostgreSQL: one row per 1 MiB chunk, replaced whole in one transaction."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg


async def save(conn: asyncpg.Connection, actor_id: str, generation: int, chunks: Sequence[bytes]) -> None:
    async with conn.transaction():
        await conn.execute("DELETE FROM vm_snapshots WHERE actor_id = $1", actor_id)
        await conn.executemany(
            "INSERT INTO vm_snapshots (actor_id, seq, generation, data) VALUES ($1, $2, $3, $4)",
            [(actor_id, i, generation, c) for i, c in enumerate(chunks)],
        )


async def load(conn: asyncpg.Connection, actor_id: str) -> tuple[int, list[bytes]] | None:
    rows = await conn.fetch(
        "SELECT generation, data FROM vm_snapshots WHERE actor_id = $1 ORDER BY seq", actor_id
    )
    if not rows:
        return None
    return int(rows[0]["generation"]), [bytes(r["data"]) for r in rows]
