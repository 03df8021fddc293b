"""Rows (tuples from any driver, in the column order of the named queries) to records."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from actorq.storage.protocol import ActorRecord, MessageRecord, MessageStatus


def actor(row: Sequence[Any]) -> ActorRecord:
    return ActorRecord(
        actor_id=row[0],
        name=row[1],
        key=tuple(json.loads(row[2])),
        state=row[3],
        created_at=row[4],
        state_version=row[5],
    )


def message(row: Sequence[Any]) -> MessageRecord:
    return MessageRecord(
        actor_id=row[0],
        id=row[1],
        queue=row[2],
        body=row[3],
        status=MessageStatus(row[4]),
        attempt=row[5],
        created_at=row[6],
        available_at=row[7],
        completed_at=row[8],
        response=row[9],
        error=row[10],
        traceparent=row[11],
    )


def key_json(key: tuple[str, ...]) -> str:
    return json.dumps(list(key), separators=(",", ":"), ensure_ascii=False)


def with_(msg: MessageRecord, **changes: Any) -> MessageRecord:
    return replace(msg, **changes)
