"""Batching: whatever arrives while a batch is in flight goes out together as the next batch.

One logic, three users: the SQLite writer thread (a batch is one transaction), the PostgreSQL
group commit (a batch is one statement) and the async client's send coalescing (a batch is one
batch request). The rules, the same for all three:

* calls wait in arrival order; the next batch is whole calls from the front, at most
  ``max_batch`` in total size (a call bigger than that goes alone), so a call is never split;
* every call gets its own result, delivered to its own future; an exception in the runner's
  list of results fails that call alone, an exception raised by the runner fails every call of
  that batch (and no other);
* a caller that gave up (its future is done) before its batch left may be dropped, so nothing is
  done for it (``drop_cancelled``).

:class:`Pending` is that logic with no I/O and no locks. :class:`AsyncBatcher` runs it on an
event loop (a batch on the wire at most ``max_inflight`` times at once), :class:`ThreadBatcher` on
a worker thread that owns a resource, for callers on any event loop.

Owns no connection, no SQL and no wire format; imports nothing from actorq (the client uses it,
and the client must not import the storage).
"""

from __future__ import annotations

import asyncio
import logging
import queue as stdqueue
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

T = TypeVar("T")  # one call's input
R = TypeVar("R")  # one call's output
E = TypeVar("E")  # one waiting entry (a call with whatever its runner needs to answer it)

# run(batch) -> one output per call, in order; an exception in the list fails that call alone
Runner = Callable[[list[T]], Awaitable[Sequence["R | BaseException"]]]
SyncRunner = Callable[[list[T]], Sequence["R | BaseException"]]

log = logging.getLogger("actorq.batching")


class Pending(Generic[E]):
    """The entries waiting for a batch, in arrival order; :meth:`take` cuts the next batch."""

    __slots__ = ("_entries", "_gone", "_max_batch", "_size")

    def __init__(
        self,
        max_batch: int,
        size: Callable[[E], int] | None = None,
        gone: Callable[[E], bool] | None = None,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._entries: deque[E] = deque()
        self._max_batch = max_batch
        self._size = size  # None: every entry counts 1
        self._gone = gone  # None: nobody is ever dropped

    def put(self, entry: E) -> None:
        self._entries.append(entry)

    def __len__(self) -> int:
        return len(self._entries)

    def take(self) -> list[E]:
        """The next batch: whole entries from the front, in order, ``max_batch`` in total size
        at most (one entry bigger than that goes alone); entries that are ``gone`` are dropped.
        Empty only if nothing but gone entries was waiting."""
        entries, gone, size = self._entries, self._gone, self._size
        if size is None and gone is None:  # the common case, without a call per entry
            return [entries.popleft() for _ in range(min(len(entries), self._max_batch))]
        batch: list[E] = []
        total = 0
        while entries:
            entry = entries[0]
            n = 1 if size is None else size(entry)
            if batch and total + n > self._max_batch:
                break
            entries.popleft()
            if gone is not None and gone(entry):
                continue
            batch.append(entry)
            total += n
        return batch


def settle(futures: Sequence[asyncio.Future[Any]], outcome: Sequence[Any] | BaseException) -> None:
    """Give each call of a batch its own result: ``outcome`` is one result per future (an
    exception in it fails that call alone), or one exception that fails them all (a cancellation
    cancels them). Futures already done (their caller gave up) are left alone."""
    if isinstance(outcome, BaseException):
        for fut in futures:
            if fut.done():
                continue
            if isinstance(outcome, asyncio.CancelledError):
                fut.cancel()
            else:
                fut.set_exception(outcome)
        return
    for fut, res in zip(futures, outcome, strict=True):
        if fut.done():
            continue
        if isinstance(res, BaseException):
            fut.set_exception(res)
        else:
            fut.set_result(res)


class AsyncBatcher(Generic[T, R]):
    """``await batcher(call)`` on one event loop; ``run`` carries each batch.

    A batch that fails with one of ``split_on`` (the other side refused something in it) runs
    again one call at a time, so a bad call fails alone.
    """

    def __init__(
        self,
        run: Runner[T, R],
        *,
        size: Callable[[T], int] | None = None,
        max_batch: int = 500,
        max_inflight: int = 2,
        split_on: tuple[type[BaseException], ...] = (),
        drop_cancelled: bool = True,
    ) -> None:
        self._run = run
        self._split_on = split_on
        self._max_inflight = max_inflight
        self._pending: Pending[tuple[T, asyncio.Future[R]]] = Pending(
            max_batch,
            None if size is None else (lambda entry: size(entry[0])),
            _future_done if drop_cancelled else None,
        )
        self._inflight = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self.batches = 0  # batches run (calls / batches is the batching achieved)
        self.calls = 0

    async def __call__(self, call: T) -> R:
        fut: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.put((call, fut))
        if self._inflight < self._max_inflight:
            self._inflight += 1
            task = asyncio.create_task(self._drain())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await fut

    async def _run_batch(self, calls: list[T]) -> Sequence[R | BaseException]:
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
            while self._pending:
                batch = self._pending.take()
                if not batch:
                    continue
                self.batches += 1
                self.calls += len(batch)
                futures = [fut for _, fut in batch]
                try:
                    results = await self._run_batch([call for call, _ in batch])
                except BaseException as exc:
                    settle(futures, exc)
                    if not isinstance(exc, Exception):
                        raise
                    continue
                settle(futures, results)
        finally:
            self._inflight -= 1


class ThreadBatcher(Generic[T, R]):
    """The same rules for a worker thread that owns a resource (a database connection): callers
    on any event loop :meth:`submit`; the thread calls :meth:`serve` with a blocking runner.

    Every call is run (a cancelled caller's too: the runner may already have been handed it), and
    results go back to each caller's loop in one callback per loop and batch.
    """

    def __init__(self, *, max_batch: int, size: Callable[[T], int] | None = None) -> None:
        self._inbox: stdqueue.SimpleQueue[tuple[T, asyncio.Future[R], asyncio.AbstractEventLoop] | None] = (
            stdqueue.SimpleQueue()
        )
        self._max_batch = max_batch
        self._size = size
        self.batches = 0
        self.calls = 0

    def submit(self, call: T) -> asyncio.Future[R]:
        """Queue ``call`` (from a coroutine); its future resolves on the caller's loop."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[R] = loop.create_future()
        self._inbox.put((call, fut, loop))
        return fut

    def stop(self) -> None:
        """Ask :meth:`serve` to return once every call submitted before this one has run."""
        self._inbox.put(None)

    def serve(self, run: SyncRunner[T, R]) -> None:
        """The thread's loop: block for a call, take whatever else has arrived, run a batch."""
        size = self._size
        pending: Pending[tuple[T, asyncio.Future[R], asyncio.AbstractEventLoop]] = Pending(
            self._max_batch, None if size is None else (lambda entry: size(entry[0]))
        )
        inbox = self._inbox
        stopping = False
        while True:
            if not pending:
                if stopping:
                    return
                first = inbox.get()
                if first is None:
                    return
                pending.put(first)
            while not stopping:
                try:
                    entry = inbox.get_nowait()
                except stdqueue.Empty:
                    break
                if entry is None:
                    stopping = True
                else:
                    pending.put(entry)
            batch = pending.take()
            self.batches += 1
            self.calls += len(batch)
            outcome: Sequence[R | BaseException] | BaseException
            try:
                outcome = run([call for call, _, _ in batch])
            except Exception as exc:
                outcome = exc
            _deliver(batch, outcome)


def _deliver(
    batch: list[tuple[Any, asyncio.Future[Any], asyncio.AbstractEventLoop]],
    outcome: Sequence[Any] | BaseException,
) -> None:
    """From the worker thread: settle each call on its own loop, one callback per loop."""
    first = batch[0][2]
    if all(loop is first for _, _, loop in batch):  # the usual case: one event loop
        _call_soon(first, [fut for _, fut, _ in batch], outcome)
        return
    by_loop: dict[asyncio.AbstractEventLoop, tuple[list[asyncio.Future[Any]], list[Any]]] = {}
    if isinstance(outcome, BaseException):
        for _, fut, loop in batch:
            by_loop.setdefault(loop, ([], []))[0].append(fut)
        for loop, (futures, _) in by_loop.items():
            _call_soon(loop, futures, outcome)
        return
    for (_, fut, loop), res in zip(batch, outcome, strict=True):
        futures, results = by_loop.setdefault(loop, ([], []))
        futures.append(fut)
        results.append(res)
    for loop, (futures, results) in by_loop.items():
        _call_soon(loop, futures, results)


def _call_soon(
    loop: asyncio.AbstractEventLoop,
    futures: list[asyncio.Future[Any]],
    outcome: Sequence[Any] | BaseException,
) -> None:
    try:
        loop.call_soon_threadsafe(settle, futures, outcome)
    except RuntimeError:  # the loop is closed; nobody is waiting any more
        pass


def _future_done(entry: tuple[Any, asyncio.Future[Any]]) -> bool:
    return entry[1].done()
