"""Sends: each one validated (body type and size, delay, key), stored, then its actor poked.

One send is one storage call; a batch (:meth:`Sender.send_items`) is one transaction in which each
item succeeds or fails alone. A blocking send (``block=True``) on a full queue waits for room and
tries again until its deadline.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opentelemetry.trace import Span, SpanKind

from actorq.core import metrics, tracing
from actorq.core.definitions import QueueDefinition
from actorq.errors import ActorqError, BadRequest, QueueFull
from actorq.results import ActorInfo, SendReceipt
from actorq.storage.protocol import SendRequest, Storage

if TYPE_CHECKING:
    from actorq.core.directory import ActorDirectory
    from actorq.core.waiters import Waiters


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One item of a batch send."""

    queue: str
    body: Any = None
    delay: float | None = None
    idempotency_key: str | None = None
    # the W3C trace context the item was sent in (a client's span); None: the current context
    traceparent: str | None = None
    tracestate: str | None = None


def request(
    actor_id: str,
    queue: str,
    qdef: QueueDefinition,
    body: Any,
    delay: float | None,
    idempotency_key: str | None,
    traceparent: str | None = None,
) -> SendRequest:
    """Validate one send (body type and size, delay, key) into a storage request that carries
    ``traceparent``, the send's span."""
    body_json = qdef.encode_body(body)
    if delay is not None and (not math.isfinite(delay) or delay < 0):
        raise BadRequest("delay must be a non-negative number of seconds")
    if idempotency_key is not None and not (0 < len(idempotency_key) <= 200):
        raise BadRequest("idempotency_key must be 1 to 200 characters")
    available_at = time.time() + (delay or 0.0)
    return SendRequest(actor_id, queue, body_json, qdef.max_size, available_at, idempotency_key, traceparent)


def _type_of(info: ActorInfo | ActorqError) -> str:
    assert isinstance(info, ActorInfo)  # only a known actor's items reach storage
    return info.name


class Sender:
    def __init__(
        self, storage: Storage, directory: ActorDirectory, waiters: Waiters, max_wait: float
    ) -> None:
        self.storage = storage
        self.directory = directory
        self.waiters = waiters
        self.max_wait = max_wait

    async def send(
        self,
        actor_id: str,
        queue: str,
        qdef: QueueDefinition,
        body: Any,
        block: bool,
        timeout: float | None,
        delay: float | None,
        idempotency_key: str | None,
        traceparent: str | None = None,
    ) -> SendReceipt:
        req = request(actor_id, queue, qdef, body, delay, idempotency_key, traceparent)
        available_at = req.available_at
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.max_wait if timeout is None else min(timeout, self.max_wait))
        while True:
            try:
                pending = asyncio.ensure_future(self.storage.send(req, time.time()))
                if delay is None:
                    # Let an awake receiver ask right behind this send: both usually land in the
                    # same group commit, so the message is handed out with the commit that stores it.
                    self.directory.prepoke(actor_id)
                out = await pending
                break
            except QueueFull:
                remaining = deadline - loop.time()
                if not block or remaining <= 0:
                    raise
                await self.waiters.room(actor_id, queue, remaining)
        if not out.duplicate:
            self.directory.poke(actor_id, available_at)
        return SendReceipt(id=out.id, actor_id=actor_id, queue=queue, duplicate=out.duplicate)

    async def send_items(self, items: list[tuple[str, Outgoing]]) -> list[SendReceipt | ActorqError]:
        """Plain sends to any actors in one transaction; each item succeeds or fails alone (unknown
        actor, validation, size, full queue), in order; one actor's items keep their order."""
        infos: dict[str, ActorInfo | ActorqError] = {}
        for actor_id, _ in items:
            if actor_id not in infos:
                try:
                    infos[actor_id] = await self.directory.actor_info(actor_id)
                except ActorqError as exc:
                    infos[actor_id] = exc
        results: list[SendReceipt | ActorqError | None] = [None] * len(items)
        reqs: list[tuple[int, SendRequest]] = []
        spans: list[Span] = []  # each item's PRODUCER span, a child of the context it was sent in
        for i, (actor_id, item) in enumerate(items):
            info = infos[actor_id]
            if isinstance(info, ActorqError):
                results[i] = info
                continue
            span = tracing.tracer.start_span(
                f"send {item.queue}",
                context=tracing.remote_context(item.traceparent, item.tracestate),
                kind=SpanKind.PRODUCER,
                attributes=tracing.messaging("send", item.queue, info.name, actor_id),
            )
            try:
                qdef = self.directory.registry.definition(info.name).get_queue(item.queue)
                req = request(
                    actor_id,
                    item.queue,
                    qdef,
                    item.body,
                    item.delay,
                    item.idempotency_key,
                    tracing.traceparent_of(span),
                )
            except ActorqError as exc:
                results[i] = exc
                tracing.end_span(span, exc)
                continue
            reqs.append((i, req))
            spans.append(span)
        if reqs:
            actors = {r.actor_id for _, r in reqs}
            try:
                sent = asyncio.ensure_future(self.storage.send_many([r for _, r in reqs], time.time()))  # noqa: RUF006 - awaited below
                for actor_id in actors:
                    self.directory.prepoke(actor_id)
                outs = await sent
            except BaseException as exc:
                for span in spans:
                    tracing.end_span(span, exc)
                raise
            for (i, req), out, span in zip(reqs, outs, spans, strict=True):
                span.set_attribute("messaging.batch.message_count", len(reqs))
                if isinstance(out, ActorqError):
                    results[i] = out
                    tracing.end_span(span, out)
                    continue
                span.set_attribute("messaging.message.id", str(out.id))
                tracing.end_span(span)
                results[i] = SendReceipt(
                    id=out.id, actor_id=req.actor_id, queue=req.queue, duplicate=out.duplicate
                )
                if not out.duplicate:
                    metrics.sent(_type_of(infos[req.actor_id]), req.queue)
                    self.directory.poke(req.actor_id, req.available_at)
        return [r for r in results if r is not None]
