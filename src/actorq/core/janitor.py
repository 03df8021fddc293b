"""The janitor: completed messages (and their responses) are purged once ``result_ttl`` passes."""

from __future__ import annotations

import asyncio
import logging
import time

from actorq.storage.protocol import Storage

log = logging.getLogger("actorq.runtime")


async def purge_loop(storage: Storage, result_ttl: float) -> None:
    """Purge now, then every ``result_ttl / 10`` (between 10 s and an hour), until cancelled."""
    while True:
        try:
            n = await storage.purge_completed(time.time() - result_ttl)
            if n:
                log.info("purged %d completed messages older than %.0fs", n, result_ttl)
        except Exception as exc:
            log.warning("purge failed: %s", exc)
        await asyncio.sleep(min(3600.0, max(10.0, result_ttl / 10)))
