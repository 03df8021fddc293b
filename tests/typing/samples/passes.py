"""User code that must type-check under ``mypy --strict``: typed queues, a completable response
type, actions called by reference with arguments, typed state and bodies, typed responses through
both clients, and the agent VM's typed results through both clients and inside an actor."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypedDict, assert_type

from actorq import ActorContext, Message, QueueDefinition, SendReceipt, SendResult, actor, queue, setup
from actorq.agent_os import ExecResult, FileStat, Session, agent_os
from actorq.client import create_client, create_sync_client


class ReviewIn(TypedDict):
    file: str


@dataclass
class Verdict:
    summary: str
    score: int


class Counter(TypedDict):
    n: int


review_q = queue(ReviewIn, Verdict)
assert_type(review_q, QueueDefinition[ReviewIn, Verdict])
assert_type(queue(), QueueDefinition[Any, None])
assert_type(queue(int), QueueDefinition[int, None])
assert_type(queue(int, None, max_size=10), QueueDefinition[int, None])
assert_type(queue(body_type=ReviewIn, response_type=Verdict), QueueDefinition[ReviewIn, Verdict])
assert_type(queue(int | str), QueueDefinition[Any, Any])  # a union is not a class
tasks_q = queue(str)


async def approve(c: ActorContext[Counter], reason: str, *, score: int = 1) -> Verdict:
    c.state["n"] += 1
    n: int = c.state["n"]
    return Verdict(reason, score + n)


async def loop(c: ActorContext[Counter]) -> None:
    m = await c.queue.next(review_q, completable=True)  # no timeout: never None
    assert_type(m, Message[ReviewIn, Verdict])
    file: str = m.body["file"]
    await m.complete(Verdict(summary=file, score=c.state["n"]))
    maybe = await c.queue.next(review_q, timeout=1.0)  # a timeout: None when it passes
    assert_type(maybe, Message[ReviewIn, Verdict] | None)
    if maybe is not None:
        await maybe.complete(Verdict("late", 0))
    async for msg in c.queue.iter(review_q, completable=True):
        assert_type(msg.body, ReviewIn)
        await msg.complete(Verdict(msg.body["file"], 1))
    plain = await c.queue.next(tasks_q)
    assert_type(plain.body, str)
    await plain.complete()  # a queue without a response type completes with nothing
    by_name = await c.queue.next("review")  # string forms stay Any
    assert_type(by_name, Message[Any, Any])
    by_name.body.anything_goes()
    await by_name.complete({"anything": 1})
    assert_type(await c.queue.next(["review", tasks_q], timeout=1), Message[Any, Any] | None)
    await c.queue.send(tasks_q, "more")
    await c.schedule.after(5, approve, "later")

    other = c.actors.reviewer.get_or_create(["other"])
    r = await other.send(review_q, ReviewIn(file="a.py"), wait=True, timeout=30)
    assert_type(r, SendResult[Verdict | None])
    if r.response is not None:
        summary: str = r.response.summary
        c.log.info(summary)
    assert_type(await other.send(review_q, ReviewIn(file="b.py")), SendReceipt)
    assert_type(await other.call(approve, "ok", score=2), Verdict)
    untyped = await other.send("review", {"file": "c.py"}, wait=True)
    untyped.response["summary"].upper()  # by name: Any, as before

    vm = c.actors.agent_os("vm").get_or_create(["sandbox"])
    session = await vm.create_session("pi", env={"ANTHROPIC_API_KEY": ""})
    assert_type(session, Session)
    prompt = await vm.send_prompt(session.session_id, "hello")
    stop: str = prompt.stop_reason
    c.log.info(stop)
    text: bytes = await vm.read_file("/home/user/review.txt")
    c.log.info(text.decode())


def bare_generics(c: ActorContext, m: Message, r: SendResult) -> None:
    """Bare generics, as code written before the types had parameters: all Any."""
    c.state.anything = 1
    m.body.anything()
    r.response.whatever()


reviewer = actor(
    queues={"review": review_q, "tasks": tasks_q},
    actions={"approve": approve},
    run=loop,
    state=lambda: Counter(n=0),
)
registry = setup(use={"reviewer": reviewer, "vm": agent_os()})


async def async_client_code() -> None:
    client = create_client("http://127.0.0.1:6420")
    h = client.reviewer.get_or_create(["main"])
    r = await h.send(review_q, ReviewIn(file="x.py"), wait=True, timeout=120)
    assert r.response is not None
    score: int = r.response.score
    print(score, r.status)
    assert_type(await h.result(r.id, review_q), SendResult[Verdict | None])
    assert_type(await h.result(r.id), SendResult[Any])
    async with await h.connect() as conn:
        assert_type(await conn.call(approve, "ws"), Verdict)
    v = await h.call(approve, "fine")
    print(v.summary)
    old = await h.send("review", {"file": "x.py"}, wait=True)
    print(old.response["summary"])
    vm = client.agent_os("vm").get_or_create(["sandbox"])
    e = await vm.exec("ls", cwd="/home/user")
    assert_type(e, ExecResult)
    code: int = e.exit_code
    st = await vm.stat("/home/user")
    assert_type(st, FileStat)
    print(code, st.is_directory, (await vm.list_processes())[0].pid)
    untyped_vm = client.vm.get_or_create(["sandbox"])
    print((await untyped_vm.exec("ls"))["exit_code"])  # the untyped handle: Any, as before
    await client.close()


def sync_client_code() -> None:
    with create_sync_client("http://127.0.0.1:6420") as client:
        h = client.reviewer.get_or_create(["main"])
        r = h.send(review_q, ReviewIn(file="x.py"), wait=True)
        assert_type(r.response, Verdict | None)
        assert_type(h.call(approve, "fine", score=3), Verdict)
        vm = client.agent_os().get_or_create(["sandbox"])
        assert_type(vm.exec("ls"), ExecResult)
        assert_type(vm.create_session("pi").session_id, str)
