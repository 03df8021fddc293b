"""Queue semantics: serial FIFO delivery, acknowledgement, redelivery and dead letters, completable
messages, waits that time out, delays, idempotency, backpressure, typed bodies, actions.

Each test runs twice (tests/core/conftest.py): on a bare Runtime, and through a real server with
the async client over HTTP."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from actorq import ActorError, MessageTooLarge, NotFound, QueueFull, ValidationError
from tests.apps import semantics
from tests.apps.semantics import Job, Point, ReviewOut, probe, registry
from tests.core.conftest import Actors, OpenActors


@pytest.fixture
async def client(open_actors: OpenActors) -> AsyncIterator[Actors]:
    probe.reset()
    semantics.typed_seen.clear()
    async with open_actors(registry, grace=0.5) as c:
        yield c


async def until(predicate: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        await asyncio.sleep(0.01)
    raise AssertionError("timed out")


async def test_fifo_and_one_at_a_time(client: Actors) -> None:
    h = client.plain.get_or_create(["fifo"])
    receipts = await asyncio.gather(*(h.send("tasks", {"i": i, "sleep": 0.002}) for i in range(40)))
    ids = sorted(r.id for r in receipts)
    assert ids == list(range(1, 41)), "ids are per-actor, monotonic, gap-free"
    await until(lambda: len(probe.seen) == 40)
    assert [s[0] for s in probe.seen] == ids, "delivered in id order"
    assert probe.max_running == 1, "never two messages of one actor at once"
    other = client.plain.get_or_create(["fifo-2"])
    assert (await other.send("tasks", {})).id == 1, "ids are per actor"


async def test_plain_message_acked_when_next_is_asked(client: Actors) -> None:
    probe.gate = asyncio.Event()
    h = client.plain.get_or_create(["ack"])
    await h.send("tasks", {"gate": True})
    await until(lambda: len(probe.seen) == 1)
    [q] = [q for q in await h.queues() if q.queue == "tasks"]
    assert (q.in_flight, q.completed) == (1, 0)
    probe.gate.set()
    r = await h.send("tasks", {}, wait=True, timeout=5)
    assert r.status == "completed" and r.response is None
    [q] = [q for q in await h.queues() if q.queue == "tasks"]
    assert q.completed >= 1


async def test_crashing_handler_redelivers_then_dead_letters(client: Actors) -> None:
    h = client.plain.get_or_create(["dlq"])
    ok = await h.send("tasks", {"fail_until": 1}, wait=True, timeout=10)
    assert ok.status == "completed"
    assert [s[3] for s in probe.seen] == [1, 2], "redelivered with attempt + 1"
    bad = await h.send("tasks", {"fail_until": 99}, wait=True, timeout=10)
    assert bad.status == "failed" and bad.error is not None and "boom on attempt 3" in bad.error
    assert [s[3] for s in probe.seen if s[0] == bad.id] == [1, 2, 3], "max_attempts=3 deliveries"
    [dead] = await h.dead_letters()
    assert dead.id == bad.id and dead.attempt == 3 and dead.body == {"fail_until": 99}
    after = await h.send("tasks", {}, wait=True, timeout=10)
    assert after.status == "completed", "the actor keeps serving after a dead letter"
    looked_up = await h.result(bad.id)
    assert looked_up.status == "failed"
    # retry: back to pending with attempt reset, fails again 3 times
    await h.retry_dead_letter(bad.id)
    again = await h.result(bad.id, wait=True, timeout=10)
    assert again.status == "failed"
    assert [s[3] for s in probe.seen if s[0] == bad.id] == [1, 2, 3, 1, 2, 3]
    await h.delete_dead_letter(bad.id)
    assert await h.dead_letters() == []
    with pytest.raises(NotFound):
        await h.delete_dead_letter(bad.id)


async def test_state_saved_with_ack_and_reset_on_crash(client: Actors) -> None:
    h = client.plain.get_or_create(["state"])
    for _ in range(3):
        await h.send("tasks", {})
    r = await h.send("tasks", {"crash_after_state": True}, wait=True, timeout=10)
    assert r.status == "failed"
    await h.send("tasks", {}, wait=True, timeout=10)
    # 4 good messages; the crashing one changed state three times and none of it was kept
    assert await h.count() == 4


async def test_completable_round_trip_and_timeout_then_lookup(client: Actors) -> None:
    h = client.req.get_or_create(["rr"])
    r = await h.send("ask", {"q": 1}, wait=True, timeout=5)
    assert (r.status, r.response) == ("completed", {"echo": {"q": 1}})
    slow = await h.send("ask", {"sleep": 0.6}, wait=True, timeout=0.1)
    assert slow.status == "timed_out"
    later = await h.result(slow.id, wait=True, timeout=5)
    assert later.status == "completed" and later.response == {"echo": {"sleep": 0.6}}, (
        "a timed-out wait cancels nothing"
    )
    assert (await h.result(slow.id)).status == "completed"


async def test_completion_errors(client: Actors) -> None:
    h = client.req.get_or_create(["ce"])
    r = await h.send("ask", {"forget": True}, wait=True, timeout=5)
    assert r.status == "completed", "the open message stayed with its receiver and was completed"
    assert len(probe.errors) == 1 and "still open" in probe.errors[0]
    r2 = await h.send("ask", {"twice": True}, wait=True, timeout=5)
    assert r2.status == "completed"
    assert "already completed" in probe.errors[1]


async def test_returning_with_open_message_puts_it_back_at_the_head(client: Actors) -> None:
    h = client.req.get_or_create(["head"])
    first = await h.send("ask", {"return_open": True})
    second = await h.send("ask", {"n": 2})
    r = await h.result(first.id, wait=True, timeout=10)
    assert r.status == "failed", "after max_attempts redeliveries it is dead-lettered"
    assert (await h.result(second.id, wait=True, timeout=10)).status == "completed"
    order = [(s[0], s[3]) for s in probe.seen]
    assert order == [(first.id, 1), (first.id, 2), (first.id, 3), (second.id, 1)], order


async def test_next_batch_and_queue_filter(client: Actors) -> None:
    h = client.batcher.get_or_create(["bt"])
    a = await h.send("a", {"x": "a"})
    for i in range(7):
        await h.send("b", {"i": i})
    await until(lambda: len(probe.seen) == 7)
    assert [s[2]["i"] for s in probe.seen] == list(range(7))
    assert all(s[1] == "b" for s in probe.seen) and all(1 <= s[3] <= 3 for s in probe.seen)
    assert (await h.result(a.id)).status == "pending", "a message of another queue is left alone"


async def test_delay_and_idempotency(client: Actors) -> None:
    h = client.echo.get_or_create(["delay"])
    t0 = time.monotonic()
    r = await h.send("q", "later", delay=0.3, wait=True, timeout=5)
    assert r.status == "completed" and time.monotonic() - t0 >= 0.3
    one = await h.send("q", {"x": 1}, idempotency_key="same")
    two = await h.send("q", {"x": 2}, idempotency_key="same")
    assert one.id == two.id and not one.duplicate and two.duplicate
    res = await h.result(one.id, wait=True, timeout=5)
    assert res.response["echo"] == {"x": 1}
    queues = {q.queue: q for q in await h.queues()}
    assert queues["q"].completed == 2, "the duplicate stored nothing"


async def test_queue_full_and_block(client: Actors) -> None:
    probe.gate = asyncio.Event()
    h = client.plain.get_or_create(["full"])
    await h.send("small", {"gate": True})
    await until(lambda: len(probe.seen) == 1)  # in flight: does not count against max_size
    for i in range(3):
        await h.send("small", {"i": i})
    with pytest.raises(QueueFull) as err:
        await h.send("small", {"i": 3})
    assert err.value.retry_after is not None
    t0 = time.monotonic()
    with pytest.raises(QueueFull):
        await h.send("small", {"i": 3}, block=True, timeout=0.3)
    assert time.monotonic() - t0 >= 0.3
    blocked = asyncio.create_task(h.send("small", {"i": "blocked"}, block=True, timeout=10))
    await asyncio.sleep(0.1)
    assert not blocked.done()
    probe.gate.set()
    await blocked
    await until(lambda: len(probe.seen) == 5)
    assert [s[2] for s in probe.seen[1:]] == [{"i": 0}, {"i": 1}, {"i": 2}, {"i": "blocked"}], "nothing lost"


async def test_typed_bodies_and_responses(client: Actors) -> None:
    h = client.typed.get_or_create(["t"])
    r = await h.send("review", {"file": "a.py"}, wait=True, timeout=5, response_type=ReviewOut)
    assert r.response == {"summary": "reviewed a.py"}
    r = await h.send("nested", {"review": {"file": "b.py"}, "tags": ["x", "y"]}, wait=True, timeout=5)
    assert r.response == {"summary": "b.py:x,y"}
    with pytest.raises(ValidationError) as err:
        await h.send("nested", {"review": {"fil": "b.py"}, "tags": ["x"]})
    assert err.value.details[0]["loc"] == ["review", "file"]
    r = await h.send("point", Point(x=2, y=3), wait=True, timeout=5)
    assert r.response == {"summary": "5"}
    r = await h.send("job", Job(name="j", weight=2.5), wait=True, timeout=5)
    assert r.response == {"summary": "jx2.5"}
    assert isinstance(semantics.typed_seen[2], Point) and isinstance(semantics.typed_seen[3], Job)
    with pytest.raises(MessageTooLarge):
        await client.req.get_or_create(["t"]).send("tiny", "x" * 100)


async def test_response_failing_its_type_fails_the_message(open_actors: OpenActors) -> None:
    async with open_actors(registry) as client:
        r = await client.typed.get_or_create(["bad"]).send("bad", 1, wait=True, timeout=20)
        assert r.status == "failed" and r.error is not None and "ValidationError" in r.error


async def test_actions_state_and_errors(client: Actors) -> None:
    h = client.counter.get_or_create(["c"])
    assert await h.add(2) == 2
    assert await h.action("add", 3) == 5
    results = await asyncio.gather(h.slow_add(1, 0.2), h.slow_add(1, 0.1), h.total())
    assert results[2] == 5, "actions interleave at await points"
    assert await h.total() == 7
    with pytest.raises(ValidationError):
        await h.add()
    with pytest.raises(ValidationError):
        await h.add("not a number")
    with pytest.raises(ActorError, match="kaboom"):
        await h.explode()
    with pytest.raises(NotFound):
        await h.nope()
    assert await h.total() == 7


async def test_actor_to_actor(client: Actors) -> None:
    out = await client.fwd.get_or_create(["f"]).forward("k1", {"hello": 1})
    assert out == {
        "status": "completed",
        "response": {"echo": {"hello": 1}, "key": ["k1"]},
        "plain_id": 1,
        "total": 5,
    }


async def test_state_survives_restart(open_actors: OpenActors, tmp_path: Path) -> None:
    async with open_actors(registry, storage=tmp_path) as client:
        assert await client.counter.get_or_create(["p"]).add(41) == 41
    async with open_actors(registry, storage=tmp_path) as client:
        h = client.counter.get("p")
        assert await h.add(1) == 42


async def test_attempt_is_the_number_of_deliveries_everywhere(client: Actors) -> None:
    """A waited send, a result look-up and a dead letter say the same ``attempt``."""
    h = client.plain.get_or_create(["attempts"])
    first = await h.send("tasks", {}, wait=True, timeout=10)
    assert (first.status, first.attempt, first.queue) == ("completed", 1, "tasks")
    assert (await h.result(first.id)).attempt == 1
    again = await h.send("tasks", {"fail_until": 1}, wait=True, timeout=10)
    assert (again.status, again.attempt) == ("completed", 2)
    assert (await h.result(again.id)).attempt == 2
    dead = await h.send("tasks", {"fail_until": 99}, wait=True, timeout=10)
    assert (dead.status, dead.attempt) == ("failed", 3), "max_attempts=3 deliveries"
    assert (await h.result(dead.id)).attempt == 3
    assert (await h.result(dead.id, wait=True, timeout=5)).attempt == 3
    [letter] = await h.dead_letters()
    assert letter.attempt == 3
    r = client.req.get_or_create(["attempts"])
    done = await r.send("ask", {"q": 1}, wait=True, timeout=5)
    assert (done.status, done.attempt, done.queue) == ("completed", 1, "ask")
    assert (await r.result(done.id)).attempt == 1
    slow = await r.send("ask", {"sleep": 0.5}, wait=True, timeout=0.2)
    assert (slow.status, slow.attempt) == ("timed_out", 1), "delivered once, still running"
    assert (await r.result(slow.id, wait=True, timeout=5)).attempt == 1
    pending = await h.send("tasks", {}, delay=60)
    assert (await h.result(pending.id)).attempt == 0, "not delivered yet"


async def test_message_received_in_an_action_goes_back_unless_completed(client: Actors) -> None:
    h = client.manual.get_or_create(["m"])
    sent = await h.send("tasks", {"v": 1})
    assert await h.receive_open() == {"body": {"v": 1}, "attempt": 1}
    assert await h.receive_open() == {"body": {"v": 1}, "attempt": 2}, "back at the head, attempt + 1"
    with pytest.raises(ActorError, match="action failed on attempt 3"):
        await h.receive_and_raise()
    assert await h.receive_and_complete() == {"body": {"v": 1}, "attempt": 4}
    done = await h.result(sent.id)
    assert (done.status, done.response, done.attempt) == ("completed", {"ok": 4}, 4)
    assert await h.try_receive() is None, "nothing left: the completed message is gone"


async def test_plain_message_received_in_an_action(client: Actors) -> None:
    h = client.manual.get_or_create(["p"])
    sent = await h.send("tasks", {"v": 2})
    later = await h.send("tasks", {"v": 3})
    with pytest.raises(ActorError):
        await h.receive_plain_and_raise()
    assert await h.receive_plain() == {"body": {"v": 2}, "attempt": 2}, "redelivered ahead of later ones"
    done = await h.result(sent.id)
    assert (done.status, done.attempt) == ("completed", 2), "acknowledged when the action returned"
    assert await h.receive_plain() == {"body": {"v": 3}, "attempt": 1}
    assert (await h.result(later.id)).status == "completed"


async def test_action_dead_letters_after_max_attempts(client: Actors) -> None:
    h = client.manual.get_or_create(["d"])
    waiting = asyncio.ensure_future(h.send("tasks", {"v": 4}, wait=True, timeout=20))
    for attempt in range(1, 7):
        assert await h.receive_open() == {"body": {"v": 4}, "attempt": attempt}
    r = await waiting
    assert (r.status, r.attempt) == ("failed", 6)
    assert r.error is not None and "without completing" in r.error
    [letter] = await h.dead_letters()
    assert letter.attempt == 6


async def test_a_message_held_by_an_action_does_not_block_the_run_loop(client: Actors) -> None:
    probe.gate = asyncio.Event()
    h = client.manual.get_or_create(["hold"])
    await h.send("tasks", {"v": 5})
    holding = asyncio.ensure_future(h.hold())
    await until(lambda: bool(probe.errors))
    r = await h.send("a", {"run": 1}, wait=True, timeout=10)
    assert r.status == "completed" and [s[2] for s in probe.seen] == [{"run": 1}]
    probe.gate.set()
    assert await holding == {"body": {"v": 5}, "attempt": 1}


async def test_a_response_failing_its_type_raises_to_the_handler_and_leaves_it_open(client: Actors) -> None:
    r = await client.typed.get_or_create(["fix"]).send("fix", {}, wait=True, timeout=10)
    assert (r.status, r.response, r.attempt) == ("completed", {"summary": "fixed"}, 1)
    [err] = semantics.typed_seen[1:]
    assert isinstance(err, ValidationError), "actorq's typed error, not pydantic's"
    assert err.details[0]["loc"] == ["summary"]


async def test_a_background_task_is_a_receiver_of_its_own(client: Actors) -> None:
    h = client.manual.get_or_create(["bg"])
    await h.send("tasks", {"v": 6})
    await h.take_in_background()  # returns at once; its task outlives it
    await until(lambda: bool(probe.errors))
    assert probe.errors == ["background took 1 on attempt 1"]
    assert await h.receive_open() == {"body": {"v": 6}, "attempt": 2}, "settled when the task ended"
