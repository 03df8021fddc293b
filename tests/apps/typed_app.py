"""Typed queues and actions, sent to and called by reference (checked with ``mypy --strict`` by
tests/typing/test_mypy.py, and run by tests/test_typed_calls.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypedDict

from actorq import ActorContext, actor, queue, setup


class ReviewIn(TypedDict):
    file: str


@dataclass
class Verdict:
    summary: str
    score: int


class Tally(TypedDict):
    reviewed: int


review_q = queue(ReviewIn, Verdict)
notes_q = queue(str)
shared_q = queue(int)  # declared under two names below: refer to it by name


async def rate(c: ActorContext[Tally], file: str, *, bonus: int = 0) -> Verdict:
    return Verdict(summary=f"rated {file}", score=len(file) + bonus)


async def tally(c: ActorContext[Tally]) -> int:
    return c.state["reviewed"]


async def not_an_action(c: ActorContext, n: int) -> int:
    return n


async def review_loop(c: ActorContext[Tally]) -> None:
    async for m in c.queue.iter(review_q, completable=True):
        c.state["reviewed"] += 1
        await m.complete(Verdict(summary=f"reviewed {m.body['file']}", score=c.state["reviewed"]))


async def ask(c: ActorContext, file: str) -> dict[str, Any]:
    """From inside an actor: the same reference calls, in-process."""
    ref = c.actors.reviewer.get_or_create(["inner"])
    r = await ref.send(review_q, ReviewIn(file=file), wait=True, timeout=10)
    assert r.response is not None
    v = await ref.call(rate, file, bonus=1)
    return {
        "response": [type(r.response).__name__, r.response.summary, r.response.score],
        "rated": [type(v).__name__, v.score],
        "tally": await ref.call(tally),
    }


reviewer = actor(
    queues={"review": review_q, "notes": notes_q, "a": shared_q, "b": shared_q},
    actions={"rate": rate, "tally": tally},
    run=review_loop,
    state=lambda: Tally(reviewed=0),
)
caller = actor(actions={"ask": ask})
registry = setup(use={"reviewer": reviewer, "caller": caller})
