"""Sends and calls by reference (``handle.send(review_q, body)``, ``handle.call(rate, ...)``) give
the declared types at run time too, through both clients and inside an actor: a response is the
queue's response type, an action's result its function's return type. References that cannot be
resolved (a queue under two names, a function that is no action) are a TypeError before anything
is sent; a body that fails the queue's type is refused on the sender's side, unsent."""

from __future__ import annotations

import asyncio

import pytest

from actorq import ValidationError
from actorq.client import create_sync_client
from actorq.results import SendReceipt
from tests.apps.typed_app import (
    ReviewIn,
    Verdict,
    not_an_action,
    notes_q,
    rate,
    registry,
    review_q,
    shared_q,
    tally,
)


async def test_reference_calls_through_the_async_client() -> None:
    async with registry.test() as client:
        h = client.reviewer.get_or_create(["async"])
        r = await h.send(review_q, ReviewIn(file="a.py"), wait=True, timeout=10)
        assert r.status == "completed"
        assert r.response == Verdict(summary="reviewed a.py", score=1)  # a Verdict, not a dict
        by_name = await h.send("review", {"file": "b.py"}, wait=True, timeout=10)
        assert by_name.response == {"summary": "reviewed b.py", "score": 2}  # by name: plain JSON
        receipt = await h.send(notes_q, "a note")
        assert isinstance(receipt, SendReceipt) and receipt.queue == "notes"
        later = await h.result(r.id, review_q)  # looked up later, typed by its queue
        assert later.response == Verdict(summary="reviewed a.py", score=1)
        assert (await h.result(r.id)).response == {"summary": "reviewed a.py", "score": 1}
        v = await h.call(rate, "abc", bonus=2)
        assert v == Verdict(summary="rated abc", score=5)
        async with await h.connect() as conn:
            assert await conn.call(rate, "ws") == Verdict(summary="rated ws", score=2)
        assert await h.call(tally) == 2
        assert await h.rate("abc") == {"summary": "rated abc", "score": 3}  # by name: plain JSON


def test_reference_calls_through_the_sync_client() -> None:
    async def main() -> None:
        async with registry.test() as client:

            def flow() -> None:
                with create_sync_client(client.url) as sync:
                    h = sync.reviewer.get_or_create(["sync"])
                    r = h.send(review_q, ReviewIn(file="s.py"), wait=True, timeout=10)
                    assert r.response == Verdict(summary="reviewed s.py", score=1)
                    assert h.result(r.id, review_q).response == r.response
                    assert h.send(notes_q, "n").queue == "notes"
                    assert h.call(rate, "xy") == Verdict(summary="rated xy", score=2)
                    assert h.call(tally) == 1

            await asyncio.to_thread(flow)

    asyncio.run(main())


async def test_reference_calls_inside_an_actor() -> None:
    async with registry.test() as client:
        got = await client.caller.get_or_create(["c"]).ask("in.py")
        assert got == {
            "response": ["Verdict", "reviewed in.py", 1],
            "rated": ["Verdict", 6],
            "tally": 1,
        }


async def test_unresolvable_references_are_type_errors_and_send_nothing() -> None:
    async with registry.test() as client:
        h = client.reviewer.get_or_create(["bad"])
        with pytest.raises(TypeError, match="several names"):
            await h.send(shared_q, 1)
        with pytest.raises(TypeError, match="not an action"):
            await h.call(not_an_action, 1)
        with pytest.raises(ValidationError):
            await h.send(review_q, {"nope": 1}, wait=True)  # type: ignore[typeddict-unknown-key]
        assert await h.send("a", 1) is not None  # by name, each of its names works
        seen = {q.queue: q.pending + q.in_flight + q.completed + q.dead for q in await h.queues()}
        assert seen.get("review", 0) == 0 and seen["a"] == 1
