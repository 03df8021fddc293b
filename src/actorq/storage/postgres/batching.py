"""Group commit for the PostgreSQL driver: calls that arrive while earlier ones are on the wire go
to the database together, as one statement in one transaction.

This is what the SQLite driver's single writer does for free. Here it turns a node's hundreds of
concurrent sends and receives a second (one per HTTP request, one per awake actor) into a few
round trips and commits, which is where PostgreSQL's and the node's time went. A call is never
split across batches (a ``send_many``'s items keep their order and share a commit); a call whose
caller was cancelled before its batch left is dropped; a batch that fails with one of ``split_on``
(the database refused something in it) is run again one call at a time, so a bad call fails
alone. Owns no connection and no SQL: the driver hands it the function that runs one batch.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")  # one call's input
R = TypeVar("R")  # one call's output

# run(batch) -> one output per call, in order; an exception in the list fails that call alone
Runner = Callable[[list[T]], Awaitable[list["R | BaseException"]]]

log = logging.getLogger("actorq.storage.postgres")


class GroupCommit(Generic[T, R]):
    def __init__(
        self,
        run: Runner[T, R],
        *,
        size: Callable[[T], int] = lambda _call: 1,
        max_batch: int = 500,
        max_inflight: int = 2,
        split_on: tuple[type[BaseException], ...] = (),
    ) -> None:
        self._run = run
        self._split_on = split_on
        self._size = size
        self._max_batch = max_batch
        self._max_inflight = max_inflight
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        self._inflight = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self.batches = 0  # statements sent (for /metrics: calls / batches is the batching achieved)
        self.calls = 0

    async def __call__(self, call: T) -> R:
        fut: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((call, fut))
        if self._inflight < self._max_inflight:
            self._inflight += 1
            task = asyncio.create_task(self._drain())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await fut

    def _take(self) -> list[tuple[T, asyncio.Future[R]]]:
        batch: list[tuple[T, asyncio.Future[R]]] = []
        total = 0
        while self._queue:
            call, fut = self._queue[0]
            n = self._size(call)
            if batch and total + n > self._max_batch:
                break
            del self._queue[0]
            if fut.done():  # the caller gave up before its call left: nothing was written
                continue
            batch.append((call, fut))
            total += n
        return batch

    async def _run_batch(self, calls: list[T]) -> list[R | BaseException]:
        try:
            return await self._run(calls)
        except self._split_on as exc:
            if len(calls) == 1:
                raise
            log.warning("a batch of %d calls failed (%r); running them one by one", len(calls), exc)
            return [await self._run_alone(call) for call in calls]

    async def _run_alone(self, call: T) -> R | BaseException:
        try:
            return (await self._run([call]))[0]
        except Exception as exc:
            return exc

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch = self._take()
                if not batch:
                    continue
                self.batches += 1
                self.calls += len(batch)
                try:
                    results = await self._run_batch([call for call, _ in batch])
                except BaseException as exc:
                    for _, fut in batch:
                        if fut.done():
                            continue
                        if isinstance(exc, asyncio.CancelledError):
                            fut.cancel()
                        else:
                            fut.set_exception(exc)
                    if not isinstance(exc, Exception):
                        raise
                    continue
                for (_, fut), res in zip(batch, results, strict=True):
                    if fut.done():
                        continue
                    if isinstance(res, BaseException):
                        fut.set_exception(res)
                    else:
                        fut.set_result(res)
        finally:
            self._inflight -= 1
