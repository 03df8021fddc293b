"""What every storage driver must do (the contract of ``actorq.storage.protocol``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from actorq.errors import QueueFull, Unavailable
from actorq.storage.protocol import MessageStatus, QueueDepth, SendRequest, Storage
from actorq.storage.sqlite import SQLiteStorage

NOW = 1_700_000_000.0


async def new_actor(s: Storage, name: str = "w", key: tuple[str, ...] = ("k",), actor_id: str = "a1") -> str:
    rec, created = await s.resolve_actor(name, key, create=True, must_create=False, new_id=actor_id, now=NOW)
    assert rec is not None and created
    return rec.actor_id


def req(
    actor_id: str,
    queue: str = "q",
    body: str = "{}",
    *,
    max_size: int = 100,
    at: float = NOW,
    key: str | None = None,
) -> SendRequest:
    return SendRequest(actor_id, queue, body, max_size, at, key)


async def receive(
    s: Storage,
    actor_id: str,
    count: int = 1,
    *,
    queues: tuple[str, ...] | None = None,
    ack: tuple[int, ...] = (),
    state: str | None = None,
    now: float = NOW,
    max_attempts: int = 5,
):  # type: ignore[no-untyped-def]
    return await s.receive(
        actor_id, queues, count, ack_ids=ack, state=state, now=now, max_attempts=max_attempts
    )


async def test_resolve_actor_modes(storage: Storage) -> None:
    assert await storage.resolve_actor("w", ("k",), create=False, must_create=False, new_id="x", now=NOW) == (
        None,
        False,
    )
    a = await new_actor(storage)
    rec, created = await storage.resolve_actor(
        "w", ("k",), create=True, must_create=False, new_id="other", now=NOW
    )
    assert rec is not None and rec.actor_id == a and not created
    assert await storage.resolve_actor("w", ("k",), create=True, must_create=True, new_id="o2", now=NOW) == (
        None,
        False,
    )
    b, _ = await storage.resolve_actor("w", ("k", "2"), create=True, must_create=True, new_id="b1", now=NOW)
    assert b is not None and b.key == ("k", "2")
    other_type, _ = await storage.resolve_actor(
        "v", ("k",), create=True, must_create=False, new_id="c1", now=NOW
    )
    assert other_type is not None and other_type.actor_id == "c1"
    loaded = await storage.load_actor(a)
    assert loaded is not None and (loaded.name, loaded.key, loaded.state) == ("w", ("k",), None)
    assert await storage.load_actor("missing") is None
    assert [r.actor_id for r in await storage.list_actors(None, 10, None)] == ["a1", "b1", "c1"]
    assert [r.actor_id for r in await storage.list_actors("w", 10, None)] == ["a1", "b1"]
    assert [r.actor_id for r in await storage.list_actors(None, 1, "a1")] == ["b1"]


async def test_ids_are_per_actor_and_fifo(storage: Storage) -> None:
    a = await new_actor(storage)
    b = await new_actor(storage, key=("other",), actor_id="b1")
    ids_a = [(await storage.send(req(a, body=f'"{i}"'), NOW)).id for i in range(5)]
    ids_b = [(await storage.send(req(b), NOW)).id for _ in range(2)]
    assert ids_a == [1, 2, 3, 4, 5] and ids_b == [1, 2]
    out = await receive(storage, a, 2)
    assert [(m.id, m.body, m.attempt, m.status) for m in out.messages] == [
        (1, '"0"', 1, MessageStatus.INFLIGHT),
        (2, '"1"', 1, MessageStatus.INFLIGHT),
    ]
    out = await receive(storage, a, 10, ack=(1, 2))
    assert out.acked == [1, 2] and [m.id for m in out.messages] == [3, 4, 5]
    assert (await storage.get_message(a, 1)).status == MessageStatus.COMPLETED  # type: ignore[union-attr]


async def test_send_many_in_order_with_per_item_failures(storage: Storage) -> None:
    a = await new_actor(storage)
    out = await storage.send_many(
        [
            req(a, max_size=2),
            req(a, max_size=2, key="k"),
            req(a, max_size=2),
            req(a, "other", max_size=2),
            req(a, max_size=2, key="k"),
        ],
        NOW,
    )
    assert [getattr(o, "id", None) for o in out] == [1, 2, None, 3, 2]
    assert isinstance(out[2], QueueFull) and getattr(out[4], "duplicate", False)
    stats = {s.queue: s.pending for s in await storage.queue_stats(a, NOW)}
    assert stats == {"q": 2, "other": 1}


async def test_concurrent_sends_get_gapless_ids(storage: Storage) -> None:
    a = await new_actor(storage)
    outs = await asyncio.gather(*(storage.send(req(a, max_size=1000), NOW) for _ in range(200)))
    assert sorted(o.id for o in outs) == list(range(1, 201))


async def test_queue_filter_and_state_saved_with_ack(storage: Storage) -> None:
    a = await new_actor(storage)
    await storage.send(req(a, "x"), NOW)
    await storage.send(req(a, "y"), NOW)
    await storage.send(req(a, "x"), NOW)
    out = await receive(storage, a, 5, queues=("y",))
    assert [m.id for m in out.messages] == [2]
    out = await receive(storage, a, 5, queues=("x",), ack=(2,), state='{"n":1}')
    assert [m.id for m in out.messages] == [1, 3] and out.acked == [2]
    assert (await storage.load_actor(a)).state == '{"n":1}'  # type: ignore[union-attr]
    await storage.save_state(a, '{"n":2}')
    assert (await storage.load_actor(a)).state == '{"n":2}'  # type: ignore[union-attr]


async def test_state_keeps_the_version_it_was_saved_at(storage: Storage) -> None:
    a = await new_actor(storage)
    rec = await storage.load_actor(a)
    assert rec is not None and (rec.state, rec.state_version) == (None, 1), "version 1 until told"
    await storage.save_state(a, '{"v":3}', version=3)
    rec = await storage.load_actor(a)
    assert rec is not None and (rec.state, rec.state_version) == ('{"v":3}', 3)
    await storage.save_state(a, '{"v":4}')  # no version: the stored one stays
    await storage.send(req(a), NOW)
    await receive(storage, a, state='{"v":5}')
    await storage.complete(a, 1, None, state='{"v":6}', now=NOW)
    for rec in (
        await storage.load_actor(a),
        (await storage.resolve_actor("w", ("k",), create=True, must_create=False, new_id="x", now=NOW))[0],
        (await storage.list_actors("w", 10, None))[0],
    ):
        assert rec is not None and (rec.state, rec.state_version) == ('{"v":6}', 3)
    await storage.save_state(a, '{"v":1}', version=1)  # an older version may be written back too
    assert (await storage.load_actor(a)).state_version == 1  # type: ignore[union-attr]


async def test_complete(storage: Storage) -> None:
    a = await new_actor(storage)
    await storage.send(req(a), NOW)
    assert not await storage.complete(a, 1, '"r"', state=None, now=NOW), "not in flight yet"
    await receive(storage, a)
    assert await storage.complete(a, 1, '"r"', state='{"s":1}', now=NOW + 1)
    m = await storage.get_message(a, 1)
    assert m is not None and (m.status, m.response, m.completed_at) == (
        MessageStatus.COMPLETED,
        '"r"',
        NOW + 1,
    )
    assert (await storage.load_actor(a)).state == '{"s":1}'  # type: ignore[union-attr]
    assert not await storage.complete(a, 1, '"again"', state=None, now=NOW), "completing twice fails"


async def test_release_keeps_place_and_counts_attempts(storage: Storage) -> None:
    a = await new_actor(storage)
    for _ in range(3):
        await storage.send(req(a), NOW)
    out = await receive(storage, a)
    assert out.messages[0].id == 1
    assert await storage.release(a, (1,), error="crash", max_attempts=5, now=NOW) == []
    out = await receive(storage, a)
    assert (out.messages[0].id, out.messages[0].attempt) == (1, 2), "redelivered first, attempt + 1"
    assert (await storage.get_message(a, 1)).error == "crash"  # type: ignore[union-attr]


async def test_dead_letters_via_release_and_receive(storage: Storage) -> None:
    a = await new_actor(storage)
    await storage.send(req(a), NOW)
    await storage.send(req(a, body='"second"'), NOW)
    for attempt in (1, 2):
        out = await receive(storage, a, max_attempts=3)
        assert (out.messages[0].id, out.messages[0].attempt) == (1, attempt)
        assert await storage.release(a, (1,), error=f"e{attempt}", max_attempts=3, now=NOW) == []
    out = await receive(storage, a, max_attempts=3)
    dead = await storage.release(a, (1,), error="e3", max_attempts=3, now=NOW)
    assert [(d.id, d.status, d.error) for d in dead] == [(1, MessageStatus.DEAD, "e3")]
    out = await receive(storage, a, max_attempts=3)
    assert [m.id for m in out.messages] == [2], "the dead letter is skipped"
    # a message whose attempts ran out while in flight (process crash) dies at the next receive
    await storage.release(a, (2,), error=None, max_attempts=1, now=NOW)  # attempt 1 >= 1: dead
    assert [m.id for m in await storage.list_messages(a, MessageStatus.DEAD, 10)] == [1, 2]
    await storage.send(req(a), NOW)
    out = await receive(storage, a, max_attempts=1)
    assert [m.id for m in out.messages] == [3]
    assert await storage.recover(NOW) == ["a1"], "a restart finds message 3 in flight"
    out = await receive(storage, a, max_attempts=1)
    assert out.messages == [] and [d.id for d in out.dead] == [3]
    assert await storage.retry_dead(a, 1, NOW)
    assert not await storage.retry_dead(a, 1, NOW)
    out = await receive(storage, a, max_attempts=1)
    assert [(m.id, m.attempt) for m in out.messages] == [(1, 1)], "retried: attempts start again"
    assert await storage.delete_dead(a, 2) and not await storage.delete_dead(a, 2)
    assert await storage.get_message(a, 2) is None


async def test_release_with_no_attempts_left_dead_letters_at_once(storage: Storage) -> None:
    """``max_attempts=0``: the core's way to dead-letter a message it cannot hand to a receiver
    (a stored body that no longer fits its queue's type), with its reason, on first delivery."""
    a = await new_actor(storage)
    await storage.send(req(a, max_size=1), NOW)
    await receive(storage, a)
    dead = await storage.release(a, (1,), error="body no longer fits", max_attempts=0, now=NOW + 1)
    assert [(d.id, d.status, d.attempt, d.error) for d in dead] == [
        (1, MessageStatus.DEAD, 1, "body no longer fits")
    ]
    rec = await storage.get_message(a, 1)
    assert rec is not None and (rec.status, rec.attempt, rec.completed_at) == (MessageStatus.DEAD, 1, NOW + 1)
    assert rec.error == "body no longer fits"
    await storage.send(req(a, max_size=1), NOW)  # the dead letter no longer counts against max_size
    assert [s.dead for s in await storage.queue_stats(a, NOW)] == [1]


async def test_max_size_counts_pending_only(storage: Storage) -> None:
    a = await new_actor(storage)
    for _ in range(2):
        await storage.send(req(a, max_size=2), NOW)
    with pytest.raises(QueueFull):
        await storage.send(req(a, max_size=2), NOW)
    await storage.send(req(a, "other", max_size=2), NOW)  # per queue
    await receive(storage, a, queues=("q",))
    assert (await storage.send(req(a, max_size=2), NOW)).id == 4, "in flight does not count"
    with pytest.raises(QueueFull):
        await storage.send(req(a, max_size=2), NOW)
    await storage.release(a, (1,), error=None, max_attempts=5, now=NOW)
    with pytest.raises(QueueFull):  # released back to pending: counts again
        await storage.send(req(a, max_size=3), NOW)
    stats = {s.queue: s for s in await storage.queue_stats(a, NOW)}
    assert (stats["q"].pending, stats["q"].inflight, stats["other"].pending) == (3, 0, 1)


async def test_max_size_after_acks_dead_letters_and_recovery(storage: Storage) -> None:
    """The pending count follows every way a message leaves or re-enters pending."""
    a = await new_actor(storage)
    for _ in range(3):
        await storage.send(req(a, max_size=3), NOW)
    out = await receive(storage, a, 2)  # 1, 2 in flight: room for two more
    await receive(storage, a, 0, ack=tuple(m.id for m in out.messages))  # acknowledged: still room
    await storage.send(req(a, max_size=3), NOW)
    assert [m.id for m in (await receive(storage, a, 1)).messages] == [3]
    dead = await storage.release(a, (3,), error="boom", max_attempts=1, now=NOW)  # to the dead letters
    assert [d.id for d in dead] == [3]
    for _ in range(2):
        await storage.send(req(a, max_size=3), NOW)
    with pytest.raises(QueueFull):
        await storage.send(req(a, max_size=3), NOW)
    await receive(storage, a, 2)  # two in flight, one pending
    await storage.recover(NOW)  # single-node restart: in flight back to pending
    with pytest.raises(QueueFull):
        await storage.send(req(a, max_size=3), NOW)
    assert (await storage.send(req(a, max_size=4), NOW)).id == 7
    stats = {s.queue: s for s in await storage.queue_stats(a, NOW)}
    assert (stats["q"].pending, stats["q"].completed, stats["q"].dead) == (4, 2, 1)


async def test_idempotency(storage: Storage) -> None:
    a = await new_actor(storage)
    one = await storage.send(req(a, key="k1"), NOW)
    two = await storage.send(req(a, body='"different"', key="k1"), NOW + 5)
    assert (one.id, one.duplicate) == (1, False) and (two.id, two.duplicate, two.created_at) == (1, True, NOW)
    assert (await storage.send(req(a, key="k2"), NOW)).id == 2
    b = await new_actor(storage, key=("b",), actor_id="b1")
    assert (await storage.send(req(b, key="k1"), NOW)).duplicate is False, "keys are per actor"
    stats = await storage.queue_stats(a, NOW)
    assert stats[0].pending == 2


async def test_delayed_messages(storage: Storage) -> None:
    a = await new_actor(storage)
    await storage.send(req(a, at=NOW + 10), NOW)
    await storage.send(req(a, at=NOW + 5), NOW)
    out = await receive(storage, a)
    assert out.messages == [] and out.next_available_at == NOW + 5
    assert await storage.next_available_at(a, NOW) == (False, NOW + 5)
    out = await receive(storage, a, now=NOW + 6)
    assert [m.id for m in out.messages] == [2]
    assert await storage.next_available_at(a, NOW + 11) == (True, None)
    stats = await storage.queue_stats(a, NOW + 6)
    assert (stats[0].pending, stats[0].delayed, stats[0].inflight) == (0, 1, 1)


async def test_queue_depths_sum_each_actor_type_and_queue_in_one_query(storage: Storage) -> None:
    """The figures /metrics reads: per (actor type, queue), over every actor of the type."""
    assert await storage.queue_depths(NOW) == []
    a = await new_actor(storage, "w", ("a",), "a1")
    b = await new_actor(storage, "w", ("b",), "b1")
    v = await new_actor(storage, "v", ("a",), "v1")
    for actor_id in (a, a, a, b, b):
        await storage.send(req(actor_id, "q"), NOW)
    await storage.send(req(a, "later", at=NOW + 60), NOW)
    await storage.send(req(v, "q"), NOW)
    await receive(storage, a, 2)  # a1: 1, 2 in flight
    dead = await storage.release(a, (1,), error="boom", max_attempts=1, now=NOW)
    assert [d.id for d in dead] == [1]
    out = await receive(storage, b, 1)
    await receive(storage, b, 0, ack=tuple(m.id for m in out.messages))  # completed: not counted
    assert await storage.queue_depths(NOW) == [
        QueueDepth("v", "q", pending=1, delayed=0, inflight=0, dead=0),
        QueueDepth("w", "later", pending=0, delayed=1, inflight=0, dead=0),
        QueueDepth("w", "q", pending=2, delayed=0, inflight=1, dead=1),  # a1's 3 and b1's 2
    ]
    due = {(d.name, d.queue): d for d in await storage.queue_depths(NOW + 61)}
    assert (due["w", "later"].pending, due["w", "later"].delayed) == (1, 0), "due now: pending"


async def test_recover_and_reopen(make_storage: Callable[[], Awaitable[Storage]]) -> None:
    s = await make_storage()
    await s.open()
    a = await new_actor(s)
    b = await new_actor(s, key=("b",), actor_id="b1")
    await new_actor(s, key=("c",), actor_id="c1")
    for _ in range(3):
        await s.send(req(a), NOW)
    await s.send(req(b), NOW)
    await receive(s, a, 2)
    await receive(s, b)
    await s.close()  # as if the process died with 3 messages in flight
    s = await make_storage()
    await s.open()
    try:
        assert sorted(await s.recover(NOW)) == ["a1", "b1"]
        out = await receive(s, a, 5)
        assert [(m.id, m.attempt) for m in out.messages] == [(1, 2), (2, 2), (3, 1)]
        assert (await s.queue_stats(a, NOW))[0].inflight == 3
        with pytest.raises(QueueFull):
            await s.send(req(b, max_size=1), NOW)  # b's in-flight message is pending again
    finally:
        await s.close()


async def test_purge_completed(storage: Storage) -> None:
    a = await new_actor(storage)
    await storage.send(req(a, key="old"), NOW)
    await storage.send(req(a), NOW)
    await receive(storage, a, 2)
    await storage.complete(a, 1, None, state=None, now=NOW)
    await storage.complete(a, 2, None, state=None, now=NOW + 100)
    assert await storage.purge_completed(NOW + 50) == 1
    assert await storage.get_message(a, 1) is None and await storage.get_message(a, 2) is not None
    assert (await storage.send(req(a), NOW)).id == 3, "ids never go back"


async def test_schedules(storage: Storage) -> None:
    assert await storage.next_schedule_at() is None
    s1 = await storage.add_schedule("a1", NOW + 10, "tick", "[1]")
    s2 = await storage.add_schedule("a1", NOW + 5, "tock", "[]")
    assert await storage.next_schedule_at() == NOW + 5
    assert [s.id for s in await storage.due_schedules(NOW + 6, 10)] == [s2]
    await storage.finish_schedule(s2, retry_at=NOW + 20)
    due = await storage.due_schedules(NOW + 30, 10)
    assert [(s.id, s.action, s.args, s.attempt) for s in due] == [
        (s1, "tick", "[1]", 0),
        (s2, "tock", "[]", 1),
    ]
    await storage.finish_schedule(s1, retry_at=None)
    await storage.finish_schedule(s2, retry_at=None)
    assert await storage.next_schedule_at() is None


async def test_sqlite_refuses_a_second_open(tmp_path: Path) -> None:
    first = SQLiteStorage(tmp_path)
    await first.open()
    try:
        with pytest.raises(Unavailable, match="in use by another actorq process"):
            await SQLiteStorage(tmp_path).open()
    finally:
        await first.close()
    again = SQLiteStorage(tmp_path)
    await again.open()  # the lock went with the first
    await again.close()


def test_now_is_a_fixed_epoch() -> None:
    assert NOW < time.time()


async def test_send_many_across_actors_keeps_each_actors_order(storage: Storage) -> None:
    actors = [await new_actor(storage, key=(f"m{i}",), actor_id=f"m{i}") for i in range(5)]
    items = [req(actors[(i * 3) % 5], body=f'{{"n":{i}}}') for i in range(40)]
    out = await storage.send_many(items, NOW)
    for a in actors:
        mine = [(o.id, it.body) for o, it in zip(out, items, strict=True) if it.actor_id == a]  # type: ignore[union-attr]
        assert [i for i, _ in mine] == list(range(1, len(mine) + 1)), "ids per actor, in submission order"
        got = await receive(storage, a, 100)
        assert [m.body for m in got.messages] == [b for _, b in mine]


async def test_concurrent_multi_actor_batches_do_not_deadlock(
    storage: Storage, caplog: pytest.LogCaptureFixture
) -> None:
    """Batches naming the same actors in opposite orders, with receives and acks running at once:
    all finish without a deadlock (PostgreSQL would detect it and the driver would fall back to
    one call at a time, with a warning), every message stored once, ids gap-free per actor."""
    actors = [await new_actor(storage, key=(f"d{i}",), actor_id=f"d{i}") for i in range(12)]

    async def batch(k: int) -> None:
        order = actors if k % 2 else list(reversed(actors))
        for _ in range(5):
            await storage.send_many([req(a, max_size=10_000) for a in order for _ in range(2)], NOW)

    async def consume(a: str) -> int:
        got, ack = 0, ()
        for _ in range(30):
            out = await receive(storage, a, 4, ack=ack)
            ack = tuple(m.id for m in out.messages)
            got += len(out.messages)
            await asyncio.sleep(0)
        return got

    results = await asyncio.wait_for(
        asyncio.gather(*(batch(k) for k in range(8)), *(consume(a) for a in actors)), 60
    )
    assert all(r is None for r in results[:8])
    assert not [r for r in caplog.records if "running them one by one" in r.getMessage()]
    for a in actors:
        stats = await storage.queue_stats(a, NOW)
        total = sum(s.pending + s.inflight + s.completed for s in stats)
        assert total == 8 * 5 * 2
        rows = await storage.list_messages(a, MessageStatus.PENDING, 1000)
        inflight = await storage.list_messages(a, MessageStatus.INFLIGHT, 1000)
        done = sum(s.completed for s in stats)
        assert len(rows) + len(inflight) + done == 80


async def test_concurrent_completions_of_many_actors_each_answered_alone(storage: Storage) -> None:
    actors = [await new_actor(storage, key=(f"c{i}",), actor_id=f"c{i}") for i in range(6)]
    for a in actors:
        for _ in range(2):
            await storage.send(req(a), NOW)
        assert [m.id for m in (await receive(storage, a, 2)).messages] == [1, 2]
    outs = await asyncio.gather(
        *(
            storage.complete(a, i, f'"{a}.{i}"', state=f'{{"last":{i}}}', now=NOW)
            for a in actors
            for i in (1, 2)
        ),
        storage.complete(actors[1], 99, '"nosuch"', state=None, now=NOW),
    )
    assert outs == [True] * 12 + [False]
    assert not await storage.complete(actors[0], 1, '"again"', state=None, now=NOW), "no longer in flight"
    for a in actors:
        for i in (1, 2):
            m = await storage.get_message(a, i)
            assert m is not None and m.status == MessageStatus.COMPLETED and m.response == f'"{a}.{i}"'
        assert (await storage.load_actor(a)).state in ('{"last":1}', '{"last":2}')  # type: ignore[union-attr]


async def test_traceparent_rides_with_the_message(storage: Storage) -> None:
    a = await new_actor(storage)
    tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    other = "00-1af7651916cd43dd8448eb211c80319c-c7ad6b7169203331-00"
    plain = SendRequest(a, "q", "{}", 100, NOW)
    sent = await storage.send(SendRequest(a, "q", "{}", 100, NOW, traceparent=tp), NOW)
    await storage.send(plain, NOW)
    many = SendRequest(a, "q", "{}", 100, NOW, traceparent=other)
    await storage.send_many([many, plain], NOW)
    out = await receive(storage, a, 10)
    assert [m.traceparent for m in out.messages] == [tp, None, other, None]
    rec = await storage.get_message(a, sent.id)
    assert rec is not None and rec.traceparent == tp
    await storage.release(a, (sent.id,), error="x", max_attempts=5, now=NOW)
    assert [m.traceparent for m in (await receive(storage, a, 1)).messages] == [tp]
    listed = await storage.list_messages(a, MessageStatus.INFLIGHT, 10, None)
    assert [m.traceparent for m in listed] == [tp, None, other, None]
