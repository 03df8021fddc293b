"""Group commit (actorq/_batching.py AsyncBatcher): what the PostgreSQL driver's batching promises."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from actorq._batching import AsyncBatcher
from actorq.storage.postgres import PostgresStorage
from actorq.storage.protocol import SendRequest
from tests.storage.conftest import pg_up, postgres_factory

NOW = 1_700_000_000.0


class Recorder:
    """A runner that records each batch and holds it until released."""

    def __init__(self) -> None:
        self.batches: list[list[list[int]]] = []
        self.release = asyncio.Event()
        self.fail_on: int | None = None

    async def __call__(self, calls: list[list[int]]) -> list[list[int] | BaseException]:
        self.batches.append(calls)
        await self.release.wait()
        if self.fail_on is not None and any(self.fail_on in c for c in calls):
            raise RuntimeError("boom")
        return [ValueError(f"bad {c}") if -1 in c else [x * 10 for x in c] for c in calls]


async def test_calls_arriving_while_one_is_in_flight_go_together_and_are_never_split() -> None:
    rec = Recorder()
    gc: AsyncBatcher[list[int], list[int]] = AsyncBatcher(rec, size=len, max_batch=5, max_inflight=1)
    first = asyncio.ensure_future(gc([1]))
    await asyncio.sleep(0)
    rest = [asyncio.ensure_future(gc(c)) for c in ([2, 3], [4, 5, 6], [7], [8, 9, 10, 11, 12, 13])]
    await asyncio.sleep(0)
    rec.release.set()
    assert await first == [10]
    assert [await r for r in rest] == [[20, 30], [40, 50, 60], [70], [80, 90, 100, 110, 120, 130]]
    # the first alone; then whole calls up to 5 items; a call bigger than a batch goes alone
    assert rec.batches == [[[1]], [[2, 3], [4, 5, 6]], [[7]], [[8, 9, 10, 11, 12, 13]]]


async def test_per_call_errors_and_whole_batch_errors() -> None:
    rec = Recorder()
    gc: AsyncBatcher[list[int], list[int]] = AsyncBatcher(rec, max_inflight=1)
    rec.release.set()
    a, b = await asyncio.gather(gc([1]), gc([-1]), return_exceptions=True)
    assert a == [10] and isinstance(b, ValueError)
    rec.fail_on = 2
    rec.release.clear()
    calls = [asyncio.ensure_future(gc([1]))]
    await asyncio.sleep(0)  # [1] leaves alone; [2] and [3] wait for it and go together
    calls += [asyncio.ensure_future(gc(c)) for c in ([2], [3])]
    await asyncio.sleep(0)
    rec.release.set()
    out = await asyncio.gather(*calls, return_exceptions=True)
    assert out[0] == [10]
    assert isinstance(out[1], RuntimeError) and isinstance(out[2], RuntimeError), "its batch failed"


async def test_a_batch_failing_with_split_on_runs_again_one_call_at_a_time() -> None:
    rec = Recorder()
    gc: AsyncBatcher[list[int], list[int]] = AsyncBatcher(rec, max_inflight=1, split_on=(RuntimeError,))
    rec.fail_on = 2
    calls = [asyncio.ensure_future(gc([1]))]
    await asyncio.sleep(0)
    calls += [asyncio.ensure_future(gc(c)) for c in ([2], [3])]
    await asyncio.sleep(0)
    rec.release.set()
    out = await asyncio.gather(*calls, return_exceptions=True)
    assert out[0] == [10] and isinstance(out[1], RuntimeError) and out[2] == [30], "only the bad call fails"
    assert rec.batches == [[[1]], [[2], [3]], [[2]], [[3]]]


async def test_a_call_cancelled_before_its_batch_left_is_dropped() -> None:
    rec = Recorder()
    gc: AsyncBatcher[list[int], list[int]] = AsyncBatcher(rec, max_inflight=1)
    first = asyncio.ensure_future(gc([1]))
    await asyncio.sleep(0)
    gone = asyncio.ensure_future(gc([2]))
    kept = asyncio.ensure_future(gc([3]))
    await asyncio.sleep(0)
    gone.cancel()
    rec.release.set()
    assert await first == [10] and await kept == [30]
    assert [2] not in [c for batch in rec.batches for c in batch]


needs_pg = pytest.mark.skipif(not pg_up(), reason="PostgreSQL is not running")


@pytest.fixture
async def pg(tmp_path: Path) -> AsyncIterator[PostgresStorage]:
    s = await postgres_factory(tmp_path)
    assert isinstance(s, PostgresStorage)
    await s.open()
    try:
        yield s
    finally:
        await s.close()


@needs_pg
async def test_postgres_a_call_the_database_refuses_fails_alone(
    pg: PostgresStorage, caplog: pytest.LogCaptureFixture
) -> None:
    """A NUL character is refused by PostgreSQL text: its batch falls back to one call at a time,
    so the good sends merged with it are stored and only the bad one fails."""
    for i in range(4):
        await pg.resolve_actor("w", (f"k{i}",), create=True, must_create=False, new_id=f"a{i}", now=NOW)
    good = [pg.send(SendRequest(f"a{i}", "q", '{"ok":1}', 100, NOW), NOW) for i in range(4) for _ in range(5)]
    bad = pg.send(SendRequest("a0", "q", '"\x00"', 100, NOW), NOW)
    out = await asyncio.gather(*good[:10], bad, *good[10:], return_exceptions=True)
    errors = [o for o in out if isinstance(o, BaseException)]
    assert len(errors) == 1 and "0x00" in str(errors[0])
    for i in range(4):
        stats = await pg.queue_stats(f"a{i}", NOW)
        assert sum(s.pending for s in stats) == 5
    assert [r for r in caplog.records if "running them one by one" in r.getMessage()], "it did share a batch"
