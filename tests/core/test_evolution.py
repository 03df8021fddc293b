"""Evolving bodies and state across deploys: a stored body that no longer fits its queue, and
``state_version`` / ``migrate_state``. Each "deploy" is another registry on the same storage.

Each test runs twice (tests/core/conftest.py): on a bare Runtime, and through a real server with
the async client over HTTP."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, TypedDict

import pytest

from actorq import ActorContext, ActorError, actor, queue, setup
from tests.core.conftest import OpenActors


# -- bodies -----------------------------------------------------------------------------------------
class TaskV1(TypedDict):
    file: str


class TaskV2(TypedDict):
    file: str
    priority: int  # added as required: bodies stored before no longer fit


evolved_seen: list[Any] = []


async def evolved_loop(c: ActorContext) -> None:
    async for m in c.queue.iter():
        evolved_seen.append(m.body)


before = setup(use={"evolving": actor(queues={"tasks": queue(TaskV1)})})  # no run: messages wait
after = setup(use={"evolving": actor(queues={"tasks": queue(TaskV2)}, run=evolved_loop, max_attempts=5)})


async def test_a_stored_body_that_no_longer_fits_is_dead_lettered_at_once(
    open_actors: OpenActors, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    evolved_seen.clear()
    async with open_actors(before, storage=tmp_path) as client:
        h = client.evolving.get_or_create(["e"])
        old = await h.send("tasks", {"file": "a.py"})
    async with open_actors(after, storage=tmp_path) as client:
        h = client.evolving.get("e")
        r = await h.result(old.id, wait=True, timeout=10)
        assert (r.status, r.attempt) == ("failed", 1), "dead-lettered on its first delivery, not retried"
        assert r.error is not None and r.error.startswith("body no longer matches queue 'tasks' type: ")
        assert "priority: Field required" in r.error, r.error
        [letter] = await h.dead_letters()
        assert letter.id == old.id and letter.error == r.error
        new = await h.send("tasks", {"file": "b.py", "priority": 2}, wait=True, timeout=10)
        assert new.status == "completed" and evolved_seen == [{"file": "b.py", "priority": 2}]
    assert not [rec for rec in caplog.records if rec.exc_info], "a clear reason, no traceback"


# -- state ------------------------------------------------------------------------------------------
migrations: list[tuple[Any, int]] = []  # (the old state, from_version) of every migrate_state call
run_saw: list[Any] = []  # c.state as the run loop first saw it, per message


async def count(c: ActorContext) -> Any:
    return c.state


async def add(c: ActorContext, n: int) -> int:
    c.state["count"] += n
    return int(c.state["count"])


async def add_total(c: ActorContext, n: int) -> int:
    c.state["total"] += n
    return int(c.state["total"])


async def watch_state(c: ActorContext) -> None:
    async for _ in c.queue.iter():
        run_saw.append(copy.deepcopy(c.state))


def to_v2(old: Any, from_version: int) -> Any:
    migrations.append((copy.deepcopy(old), from_version))
    return {"total": old["count"], "seen": []}


async def to_v3(old: Any, from_version: int) -> Any:
    migrations.append((copy.deepcopy(old), from_version))
    if from_version < 2:
        old = {"total": old["count"], "seen": []}
    return {**old, "label": "v3"}


def broken(old: Any, from_version: int) -> Any:
    raise ValueError("cannot read this state")


def keeper(**kw: Any) -> Any:
    return setup(use={"keeper": actor(queues={"q": queue()}, run=watch_state, **kw)})


v1 = keeper(state={"count": 0}, actions={"add": add, "state": count})
v2 = keeper(
    state={"total": 0, "seen": []},
    state_version=2,
    migrate_state=to_v2,
    actions={"add": add_total, "state": count},
)
v3 = keeper(
    state={"total": 0, "seen": [], "label": "new"},
    state_version=3,
    migrate_state=to_v3,
    actions={"add": add_total, "state": count},
)
v2_broken = keeper(state={}, state_version=2, migrate_state=broken, actions={"state": count})
v2_not_json = keeper(
    state={}, state_version=2, migrate_state=lambda old, v: {"when": object()}, actions={"state": count}
)


@pytest.fixture(autouse=True)
def _clear() -> None:
    migrations.clear()
    run_saw.clear()


async def test_state_is_migrated_on_wake_before_run_and_actions(
    open_actors: OpenActors, tmp_path: Path
) -> None:
    async with open_actors(v1, storage=tmp_path) as client:
        assert await client.keeper.get_or_create(["k"]).add(5) == 5
    async with open_actors(v2, storage=tmp_path) as client:
        h = client.keeper.get("k")
        assert (await h.send("q", None, wait=True, timeout=10)).status == "completed"
        assert run_saw == [{"total": 5, "seen": []}], "run saw the migrated state"
        assert migrations == [({"count": 5}, 1)]
        assert await h.add(1) == 6
    async with open_actors(v2, storage=tmp_path) as client:
        assert await client.keeper.get("k").state() == {"total": 6, "seen": []}
        assert len(migrations) == 1, "the version was saved with the migrated state: no second call"


async def test_an_async_migration_gets_the_version_it_starts_from(
    open_actors: OpenActors, tmp_path: Path
) -> None:
    async with open_actors(v1, storage=tmp_path) as client:
        await client.keeper.get_or_create(["from1"]).add(2)
    async with open_actors(v2, storage=tmp_path) as client:
        await client.keeper.get_or_create(["from2"]).add(7)  # a fresh actor, born at version 2
    migrations.clear()
    async with open_actors(v3, storage=tmp_path) as client:
        assert await client.keeper.get("from1").state() == {"total": 2, "seen": [], "label": "v3"}
        assert await client.keeper.get("from2").state() == {"total": 7, "seen": [], "label": "v3"}
    assert migrations == [({"count": 2}, 1), ({"total": 7, "seen": []}, 2)]


async def test_a_fresh_actor_starts_at_the_declared_version(open_actors: OpenActors, tmp_path: Path) -> None:
    for _ in range(2):
        async with open_actors(v3, storage=tmp_path) as client:
            assert (await client.keeper.get_or_create(["new"]).state())["label"] == "new"
    assert migrations == []


async def test_a_state_newer_than_the_code_refuses_to_wake(open_actors: OpenActors, tmp_path: Path) -> None:
    async with open_actors(v2, storage=tmp_path) as client:
        await client.keeper.get_or_create(["n"]).add(3)
    async with open_actors(v1, storage=tmp_path) as client:  # a rollback to older code
        h = client.keeper.get("n")
        with pytest.raises(ActorError, match=r"state_version 2.*knows only up to 1") as err:
            await h.state()
        assert err.value.details == {"state_version": 2, "code_state_version": 1}
        sent = await h.send("q", "kept for later")
        assert (await h.result(sent.id)).status == "pending", "accepted, not handled by code that cannot"
    async with open_actors(v2, storage=tmp_path) as client:
        h = client.keeper.get("n")
        assert (await h.result(sent.id, wait=True, timeout=10)).status == "completed"
        assert await h.state() == {"total": 3, "seen": []}, "nothing was changed"


async def test_a_failing_migration_refuses_to_wake_and_changes_nothing(
    open_actors: OpenActors, tmp_path: Path
) -> None:
    async with open_actors(v1, storage=tmp_path) as client:
        await client.keeper.get_or_create(["b"]).add(1)
    async with open_actors(v2_broken, storage=tmp_path) as client:
        with pytest.raises(ActorError, match=r"migrate_state .* raised ValueError: cannot read this state"):
            await client.keeper.get("b").state()
    async with open_actors(v2_not_json, storage=tmp_path) as client:
        with pytest.raises(ActorError, match=r"migrate_state .* returned a state that is not JSON"):
            await client.keeper.get("b").state()
    async with open_actors(v1, storage=tmp_path) as client:
        assert await client.keeper.get("b").state() == {"count": 1}


def test_state_version_is_declared_with_its_migration() -> None:
    with pytest.raises(TypeError, match="migrate_state"):
        actor(state={}, state_version=2)
    with pytest.raises(ValueError, match="state_version"):
        actor(state={}, state_version=0)
    with pytest.raises(TypeError, match="state_version"):
        actor(state={}, state_version="2", migrate_state=to_v2)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="migrate_state"):
        actor(state={}, state_version=2, migrate_state="to_v2")  # type: ignore[arg-type]
    assert actor(state={}).state_version == 1
