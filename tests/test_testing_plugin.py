"""The pytest plugin users get with actorq (``actorq.testing``): a project defines its registry
as the ``actorq_registry`` fixture and its tests get a served registry and clients, sync or async,
plus the fake LLM. Run here as a user's project would run it: a separate pytest process."""

from __future__ import annotations

import importlib.metadata
import tomllib
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent

CONFTEST = """
from typing import TypedDict

import pytest

from actorq import ActorContext, actor, queue, setup


class Add(TypedDict):
    n: int


async def run(c: ActorContext) -> None:
    async for m in c.queue.iter(completable=True):
        c.state["total"] = c.state.get("total", 0) + m.body["n"]
        await m.complete({"total": c.state["total"]})


async def total(c: ActorContext) -> int:
    return int(c.state.get("total", 0))


counter = actor(queues={"add": queue(Add, dict)}, actions={"total": total}, run=run, state=dict)
registry = setup(use={"counter": counter})


@pytest.fixture
def actorq_registry():
    return registry
"""

TESTS = """
import httpx
import pytest

from actorq.errors import Unauthorized, ValidationError
from conftest import registry


def test_sync_client(actorq_sync_client):
    h = actorq_sync_client.counter.get_or_create(["a"])
    r = h.send("add", {"n": 2}, wait=True, timeout=10)
    assert r.status == "completed" and r.response == {"total": 2}
    assert h.total() == 2
    with pytest.raises(ValidationError):
        h.send("add", {"n": "two"})


async def test_async_client(actorq_client):
    h = actorq_client.counter.get_or_create(["a"])
    assert (await h.send("add", {"n": 5}, wait=True, timeout=10)).response == {"total": 5}


def test_each_test_gets_a_fresh_server(actorq_sync_client):
    assert actorq_sync_client.counter.get_or_create(["a"]).total() == 0


def test_serve_with_options(actorq_serve):
    one = actorq_serve(registry, token="t-1234")
    two = actorq_serve(registry)
    assert one.url != two.url
    with pytest.raises(Unauthorized):
        one.sync_client(token=None).counter.get_or_create(["a"]).total()
    assert one.sync_client().counter.get_or_create(["a"]).total() == 0
    assert httpx.get(f"{two.url}/healthz").json()["status"] == "ok"


def test_fake_llm(fake_llm):
    fake_llm.script(["scripted answer"])
    r = httpx.post(
        f"{fake_llm.url}/chat/completions",
        json={"model": "stand-in", "stream": False, "messages": [{"role": "user", "content": "hi"}]},
    )
    assert r.status_code == 200 and "scripted answer" in r.text
    assert len(fake_llm.requests) == 1
    assert ".pi/agent/models.json" in fake_llm.agent_files()
"""


def plugin_args() -> list[str]:
    """``-p actorq.testing.plugin`` unless this environment's actorq already registers it (an
    install from a pyproject.toml that has the entry point)."""
    names = {ep.value for ep in importlib.metadata.entry_points(group="pytest11")}
    return [] if "actorq.testing.plugin" in names else ["-p", "actorq.testing.plugin"]


def test_the_entry_point_names_the_plugin() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["entry-points"]["pytest11"] == {"actorq": "actorq.testing.plugin"}


def test_a_project_tests_its_registry_with_the_fixtures(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_counter=TESTS)
    pytester.makeini("[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n")
    result = pytester.runpytest_subprocess(*plugin_args(), "-q", "-p", "no:cacheprovider", timeout=120)
    result.assert_outcomes(passed=5)


def test_without_a_registry_fixture_the_error_says_what_to_define(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_it(actorq_sync_client):\n    pass\n")
    result = pytester.runpytest_subprocess(*plugin_args(), "-q", "-p", "no:cacheprovider", timeout=60)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture named 'actorq_registry'*"])
