"""Forwarding requests to the node that owns an actor (several nodes on one PostgreSQL database).

A forwarded request carries ``X-Actorq-Forwarded: 1`` so the receiving node never forwards it
again (if it no longer owns the actor it answers 503 and the client retries). When the owner
cannot be reached while its lease is live, the caller gets ``Unavailable`` (503 with
``Retry-After``) and nothing was written.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import aiohttp

from actorq._typing import decode_bytes, encode_bytes
from actorq.errors import Unavailable, error_from_dict

FORWARDED_HEADER = "x-actorq-forwarded"


class HttpForwarder:
    def __init__(self, token: str | None = None, *, connect_timeout: float = 2.0) -> None:
        self._headers = {FORWARDED_HEADER: "1", "content-type": "application/json"}
        if token:
            self._headers["authorization"] = f"Bearer {token}"
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout)
        self._session: aiohttp.ClientSession | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                headers=self._headers,
                timeout=self._timeout,
                connector=aiohttp.TCPConnector(limit=256),
            )
        return self._session

    async def call_action(
        self, address: str, actor_id: str, name: str, args: list[Any], kwargs: dict[str, Any] | None
    ) -> Any:
        url = f"http://{address}/v1/actors/{quote(actor_id, safe='')}/actions/{quote(name, safe='')}"
        body = json.dumps({"args": encode_bytes(args), "kwargs": encode_bytes(kwargs or {})})
        try:
            async with self._get_session().post(url, data=body) as resp:
                text = await resp.read()
                status = resp.status
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise Unavailable(
                f"the node owning actor {actor_id} ({address}) cannot be reached: {exc!r}", retry_after=1.0
            ) from exc
        try:
            data = json.loads(text) if text else None
        except ValueError:
            data = text.decode("utf-8", "replace")
        if status >= 400:
            raise error_from_dict(status, data)
        return decode_bytes(data["result"]) if isinstance(data, dict) else None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
