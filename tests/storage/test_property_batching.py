"""Property tests of the batching helper (actorq/_batching.py) under the SQLite writer, the
PostgreSQL group commit and the client's send coalescing: every call gets exactly its own result,
arrival order is kept, ``max_batch`` holds, and a failing call or batch fails nothing else."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from actorq._batching import AsyncBatcher, Pending, ThreadBatcher


@dataclass(frozen=True)
class Call:
    id: int
    size: int = 1
    fails: bool = False  # its result is an exception: it fails alone
    poison: bool = False  # the whole batch it is in raises


class Refused(Exception):
    pass


def answer(call: Call) -> str | BaseException:
    return ValueError(f"bad {call.id}") if call.fails else f"ok {call.id}"


def greedy(calls: list[Call], max_batch: int) -> list[list[Call]]:
    """What cutting ``calls`` into batches should give: whole calls, in order, as many as fit."""
    out: list[list[Call]] = []
    total = 0
    for c in calls:
        if out and total + c.size <= max_batch:
            out[-1].append(c)
            total += c.size
        else:
            out.append([c])
            total = c.size
    return out


calls_st = st.lists(
    st.builds(
        lambda size, fails, poison: (size, fails, poison),
        st.integers(1, 6),
        st.booleans(),
        st.booleans() | st.just(False),
    ),
    min_size=1,
    max_size=40,
).map(lambda specs: [Call(i, s, f, p) for i, (s, f, p) in enumerate(specs)])


# -- the pure core ----------------------------------------------------------------------------
@given(calls=calls_st, max_batch=st.integers(1, 12), gone=st.sets(st.integers(0, 39)))
def test_pending_cuts_whole_calls_in_order_as_many_as_fit(
    calls: list[Call], max_batch: int, gone: set[int]
) -> None:
    pending: Pending[Call] = Pending(max_batch, lambda c: c.size, lambda c: c.id in gone)
    for c in calls:
        pending.put(c)
    batches: list[list[Call]] = []
    while pending:
        batch = pending.take()
        if batch:
            batches.append(batch)
    assert [c for b in batches for c in b] == [c for c in calls if c.id not in gone]
    for batch in batches:
        assert len(batch) == 1 or sum(c.size for c in batch) <= max_batch
    if not gone:
        assert batches == greedy(calls, max_batch)


# -- on an event loop (PostgreSQL group commit, client coalescing) ------------------------------
@settings(max_examples=150, deadline=None)
@given(
    calls=calls_st,
    max_batch=st.integers(1, 12),
    max_inflight=st.integers(1, 3),
    split=st.booleans(),
    waves=st.lists(st.integers(1, 8), min_size=1, max_size=10),
    yields=st.lists(st.integers(0, 3), min_size=1, max_size=10),
)
def test_async_batcher_gives_each_call_its_own_result(
    calls: list[Call], max_batch: int, max_inflight: int, split: bool, waves: list[int], yields: list[int]
) -> None:
    batches: list[list[Call]] = []

    async def run(batch: list[Call]) -> list[str | BaseException]:
        batches.append(batch)
        for _ in range(yields[len(batches) % len(yields)]):
            await asyncio.sleep(0)
        if any(c.poison for c in batch):
            raise Refused(str([c.id for c in batch]))
        return [answer(c) for c in batch]

    async def main() -> list[str | BaseException]:
        batcher: AsyncBatcher[Call, str] = AsyncBatcher(
            run,
            size=lambda c: c.size,
            max_batch=max_batch,
            max_inflight=max_inflight,
            split_on=(Refused,) if split else (),
        )
        tasks: list[asyncio.Task[str]] = []
        i = w = 0
        while i < len(calls):  # calls arrive in waves while earlier batches are in flight
            n = waves[w % len(waves)]
            tasks += [asyncio.create_task(batcher(c)) for c in calls[i : i + n]]
            i, w = i + n, w + 1
            await asyncio.sleep(0)
        return list(await asyncio.gather(*tasks, return_exceptions=True))

    results = asyncio.run(main())
    first_runs = batches
    if split:  # a refused batch runs again one call at a time: those re-runs are singletons
        first_runs = []
        for b in batches:
            if not (first_runs and len(b) == 1 and b[0] in (c for fb in first_runs for c in fb)):
                first_runs.append(b)
    batch_of = {c.id: b for b in first_runs for c in b}
    for call, res in zip(calls, results, strict=True):
        poisoned = any(c.poison for c in batch_of[call.id])
        if call.poison or (poisoned and not split):
            assert isinstance(res, Refused), "the batch that raised fails its calls"
        elif call.fails:
            assert isinstance(res, ValueError) and str(res) == f"bad {call.id}"
        else:
            assert res == f"ok {call.id}", "each call gets exactly its own result"
    for b in batches:
        assert len(b) == 1 or sum(c.size for c in b) <= max_batch
    assert sorted(c.id for b in first_runs for c in b) == [c.id for c in calls], "each call runs once"
    if max_inflight == 1:
        assert [c.id for b in first_runs for c in b] == [c.id for c in calls], "arrival order kept"


@settings(max_examples=60, deadline=None)
@given(calls=calls_st, max_batch=st.integers(1, 12))
def test_async_batcher_sends_what_arrived_meanwhile_as_the_next_batch(
    calls: list[Call], max_batch: int
) -> None:
    """One batch in flight: the first call goes alone, everything that arrives while it is on the
    wire follows in as few batches as ``max_batch`` allows."""
    batches: list[list[Call]] = []
    release = asyncio.Event()

    async def run(batch: list[Call]) -> list[str | BaseException]:
        batches.append(batch)
        await release.wait()
        return [answer(c) for c in batch]

    async def main() -> None:
        batcher: AsyncBatcher[Call, str] = AsyncBatcher(
            run, size=lambda c: c.size, max_batch=max_batch, max_inflight=1
        )
        tasks = [asyncio.create_task(batcher(calls[0]))]
        await asyncio.sleep(0)
        tasks += [asyncio.create_task(batcher(c)) for c in calls[1:]]
        await asyncio.sleep(0)
        release.set()
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(main())
    assert batches == [[calls[0]], *greedy(calls[1:], max_batch)]


# -- on a worker thread (the SQLite writer) --------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(calls=calls_st, max_batch=st.integers(1, 12), waves=st.lists(st.integers(1, 8), min_size=1))
def test_thread_batcher_gives_each_call_its_own_result_in_order(
    calls: list[Call], max_batch: int, waves: list[int]
) -> None:
    batches: list[list[Call]] = []

    def run(batch: list[Call]) -> list[str | BaseException]:
        batches.append(batch)
        if any(c.poison for c in batch):
            raise Refused("batch")
        return [answer(c) for c in batch]

    batcher: ThreadBatcher[Call, str] = ThreadBatcher(max_batch=max_batch, size=lambda c: c.size)
    thread = threading.Thread(target=batcher.serve, args=(run,))
    thread.start()

    async def main() -> list[str | BaseException]:
        futures: list[asyncio.Future[str]] = []
        i = w = 0
        while i < len(calls):
            n = waves[w % len(waves)]
            futures += [batcher.submit(c) for c in calls[i : i + n]]
            i, w = i + n, w + 1
            await asyncio.sleep(0.0005 * (w % 3))
        return list(await asyncio.gather(*futures, return_exceptions=True))

    try:
        results = asyncio.run(main())
    finally:
        batcher.stop()
        thread.join(10)
    assert not thread.is_alive(), "stop() ends serve() once the submitted calls have run"
    assert [c for b in batches for c in b] == calls, "every call runs once, in arrival order"
    batch_of = {c.id: b for b in batches for c in b}
    for call, res in zip(calls, results, strict=True):
        if any(c.poison for c in batch_of[call.id]):
            assert isinstance(res, Refused)
        elif call.fails:
            assert isinstance(res, ValueError) and str(res) == f"bad {call.id}"
        else:
            assert res == f"ok {call.id}"
    for b in batches:
        assert len(b) == 1 or sum(c.size for c in b) <= max_batch
