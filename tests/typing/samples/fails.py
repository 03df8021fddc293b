"""User code with mistakes ``mypy --strict`` must catch: each line marked ``# E: code`` must have
that error, and no other line may have one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict

from actorq import ActorContext, actor, queue
from actorq.client import create_client, create_sync_client


class ReviewIn(TypedDict):
    file: str


@dataclass
class Verdict:
    summary: str


review_q = queue(ReviewIn, Verdict)


async def approve(c: ActorContext, reason: str, *, score: int = 1) -> Verdict:
    return Verdict(reason)


async def loop(c: ActorContext[int]) -> None:
    c.state.append(1)  # E: attr-defined
    m = await c.queue.next(review_q, completable=True)
    m.body["path"]  # E: typeddict-item
    n: int = m.body["file"]  # E: assignment
    await m.complete({"summary": "as a dict"})  # E: arg-type
    await m.complete()  # E: call-arg
    await m.complete(Verdict("fine"))
    later = await c.queue.next(review_q, timeout=5)
    later.body  # E: union-attr
    ref = c.actors.reviewer.get_or_create(["x"])
    await ref.send(review_q, ReviewIn(path="a"))  # E: typeddict-unknown-key, typeddict-item
    await ref.send(review_q, "a.py", wait=True)  # E: call-overload
    await ref.send(undefined_q, ReviewIn(file="a"))  # E: name-defined
    await ref.call(approve, 3)  # E: arg-type
    await ref.call(approve)  # E: call-arg
    await ref.call(approve, "ok", scor=2)  # E: call-arg
    await ref.call(undefined_action, "ok")  # E: name-defined
    await c.queue.send(review_q, 42)  # E: misc
    print(n)


async def client_code() -> None:
    client = create_client()
    h = client.reviewer.get_or_create(["x"])
    r = await h.send(review_q, ReviewIn(file="a.py"), wait=True)
    r.response.summary  # E: union-attr
    as_int: int = r.response  # E: assignment
    if r.response is not None:
        r.response.nonexistent  # E: attr-defined
    v = await h.call(approve, "ok")
    v.score  # E: attr-defined
    vm = client.agent_os("vm").get_or_create(["x"])
    e = await vm.exec("ls")
    e.exitcode  # E: attr-defined
    out: bytes = e.stdout  # E: assignment
    await vm.exec(["ls"])  # E: arg-type
    s = await vm.create_session("pi")
    s.id  # E: attr-defined
    print(as_int, out)


def sync_code() -> None:
    client = create_sync_client()
    h = client.reviewer.get_or_create(["x"])
    h.send(review_q, {"file": 1}, wait=True)  # E: call-overload
    st = client.agent_os().get_or_create(["x"]).stat("/home/user")
    st.isdir  # E: attr-defined


reviewer = actor(queues={"review": review_q}, actions={"approve": approve}, run=loop)
