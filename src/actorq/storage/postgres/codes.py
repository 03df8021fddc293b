"""The result codes the PostgreSQL functions return, one enum per function family.

``schema.sql`` declares the same codes in its header and annotates every literal it uses with
the member's name (``3 /* SendCode.NO_ACTOR */``); ``tests/storage/test_schema.py`` checks that
both agree with these enums. Message statuses are :class:`~actorq.storage.protocol.MessageStatus`.
"""

from __future__ import annotations

from enum import IntEnum


class SendCode(IntEnum):
    """``send_one`` / ``send_many``: ``o_status`` of one send."""

    STORED = 0
    DUPLICATE = 1  # an idempotency key seen before: ``o_id`` is the existing message
    FULL = 2  # ``max_size`` reached: ``o_pending`` is the queue's depth
    NO_ACTOR = 3


class ReceiveRow(IntEnum):
    """``receive_msgs`` / ``receive_many``: what one returned row (``kind``) says."""

    ACKED = 0  # ``id`` was acknowledged
    DELIVERED = 1  # a message handed out (attempt already + 1)
    DEAD = 2  # a message moved to the dead letters instead
    NOTHING = 3  # nothing handed out: ``available_at`` is the earliest delayed message
    LEASE_LOST = 9  # the fence refused the call: nothing was written


class CompleteCode(IntEnum):
    """``complete_msg`` / ``complete_many``: the outcome of one completion."""

    NOT_INFLIGHT = 0
    COMPLETED = 1
    LEASE_LOST = 9  # the fence refused the call: nothing was written
