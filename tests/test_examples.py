"""Every example runs for real, with the real pi agent in a sandboxed VM talking to the fake LLM:
its client flow in-process against its own registry (a real server on SQLite), each file as a
script, and ``examples/demo.py`` end to end as ``make demo`` runs it. Assertions cover what the
LLM received and what landed in the VMs: queue → actor → VM → pi → tool call → file → read_file."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from examples import demo_app, issue_worker, reviewer, task_runner

from actorq import ValidationError
from actorq.agent_os.fake_llm import FakeLLM
from tests.conftest import LLM_PORT, ROOT


def silent(_: str) -> None:
    pass


@pytest.fixture
async def llm(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeLLM]:
    async with FakeLLM(port=LLM_PORT) as server:
        monkeypatch.setenv("ACTORQ_LLM_URL", server.url)
        monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
        yield server


def user_texts(llm: FakeLLM) -> list[str]:
    """The user prompts pi sent to the model, in order (one per prompt, the first of each turn)."""
    out: list[str] = []
    for req in llm.requests:
        msgs = [m for m in req["messages"] if m["role"] == "user"]
        text = msgs[-1]["content"] if msgs else ""
        text = text if isinstance(text, str) else " ".join(p.get("text", "") for p in text)
        if not out or out[-1] != text:
            out.append(text)
    return out


def tool_results(llm: FakeLLM) -> list[dict[str, Any]]:
    return [m for req in llm.requests for m in req["messages"] if m["role"] == "tool"]


async def test_reviewer_reviews_a_vm_file_with_pi(llm: FakeLLM, tmp_path: Path) -> None:
    async with reviewer.registry.test(storage=tmp_path) as client:
        result = await reviewer.main(client, silent)
        assert result.status == "completed"
        summary = result.response["summary"]
        assert "lines: 8" in summary and "add, Calculator, total" in summary
        # the file pi wrote through its `write` tool is what the sender got back
        vm = client.vm.get_or_create(["reviewer"])
        assert (await vm.read_file("/home/user/review.txt")).decode() == summary
        handle = client.reviewer.get_or_create(["main"])
        later = await handle.result(result.id)
        assert (later.status, later.response) == ("completed", result.response)
        assert await handle.reviewed() == 1
        with pytest.raises(ValidationError) as err:
            await handle.send("review", {"path": "x.py"}, wait=True, timeout=5)
        assert "file" in str(err.value.details)
    prompts = user_texts(llm)
    assert len(prompts) == 1 and "/home/user/review.txt" in prompts[0] and "class Calculator" in prompts[0]
    assert {r["model"] for r in llm.requests} == {"stand-in"}
    assert any("lines: 8" in json.dumps(m) or "review.txt" in json.dumps(m) for m in tool_results(llm))
    # the model saw the prompt, asked for `write`, got the tool result, then finished: two requests
    assert len(llm.requests) == 2


async def test_task_runner_works_tasks_one_at_a_time_with_pi(llm: FakeLLM, tmp_path: Path) -> None:
    lines: list[str] = []
    async with task_runner.registry.test(storage=tmp_path) as client:
        log = await task_runner.main(client, lines.append)
        vm = client.vm.get_or_create(["runner"])
        for entry in log:
            text = (await vm.read_file(entry["output"])).decode()
            assert text.startswith("Summary (stand-in model)")
    assert [(d["id"], d["title"], d["attempt"]) for d in log] == [
        (1, "lint", 1),
        (2, "test", 1),
        (3, "package", 1),
    ]
    progress = [line.strip() for line in lines if "progress" in line]
    assert progress == [  # one task at a time: each finishes before the next starts
        "progress: lint started",
        "progress: lint done",
        "progress: test started",
        "progress: test done",
        "progress: package started",
        "progress: package done",
    ]
    prompts = user_texts(llm)
    assert [p.split(".")[0] for p in prompts] == ["Task: lint", "Task: test", "Task: package"]
    # the log is durable: a new server on the same directory continues it, pi resumes in the VM
    async with task_runner.registry.test(storage=tmp_path) as client:
        assert (await client.runner.get_or_create(["main"]).history())["count"] == 3


async def test_task_runner_refuses_a_malformed_task(llm: FakeLLM) -> None:
    async with task_runner.registry.test() as client:
        handle = client.runner.get_or_create(["main"])
        with pytest.raises(ValidationError) as err:
            await handle.send("tasks", {"title": "no instructions"})
        assert "instructions" in str(err.value.details)
        (tasks,) = await handle.queues()
        assert (tasks.pending, tasks.completed) == (0, 0)


async def test_issue_worker_triages_through_its_own_queue_with_pi(llm: FakeLLM) -> None:
    async with issue_worker.registry.test() as client:
        done = await issue_worker.main(client, silent)
        assert [(d["id"], d["title"]) for d in done] == [(1, "App crashes on start"), (2, "Add dark mode")]
        vm = client.vm.get_or_create(["issues", "acme/app"])
        for d in done:
            assert (await vm.read_file(f"/home/user/issues/{d['id']}.md")).decode() == d["triage"]
        handle = client.issues.get_or_create(["acme/app"])
        with pytest.raises(ValidationError, match="title"):  # the action's own check
            await handle.ingest_issue("   ", "body")
        with pytest.raises(ValidationError, match="argument 0"):  # checked against its annotations
            await handle.ingest_issue(42, "body")
        (issues,) = await handle.queues()
        assert (issues.pending, issues.in_flight, issues.completed) == (0, 0, 2)
    prompts = user_texts(llm)
    assert "# App crashes on start" in prompts[0] and "stack trace attached" in prompts[0]
    assert "# Add dark mode" in prompts[1]
    systems = {m["content"] for r in llm.requests for m in r["messages"] if m["role"] == "system"}
    assert any("You triage issues" in s for s in systems)  # additional_instructions reached the model


def test_demo_app_serves_all_three_and_the_vm() -> None:
    assert set(demo_app.registry.definitions) == {"runner", "reviewer", "issues", "vm"}


@pytest.fixture
async def llm_env(llm: FakeLLM) -> dict[str, str]:
    env = {**os.environ, "ACTORQ_LLM_URL": llm.url, "COLUMNS": "120"}
    for k in ("ACTORQ_URL", "ACTORQ_TOKEN", "ANTHROPIC_API_KEY"):
        env.pop(k, None)
    return env


@pytest.mark.parametrize("name", ["task_runner", "reviewer", "issue_worker"])
async def test_each_example_runs_as_a_script(name: str, llm_env: dict[str, str]) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        f"examples/{name}.py",
        cwd=ROOT,
        env=llm_env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, out.decode()
    expected = {
        "task_runner": "package: Summary (stand-in model)",
        "reviewer": "review completed (message 1):",
        "issue_worker": "triaged #2 'Add dark mode': Summary (stand-in model)",
    }[name]
    assert expected in out.decode()


def test_demo_end_to_end_with_its_own_stand_in_model(tmp_path: Path) -> None:
    env = {**os.environ, "ACTORQ_DEMO_DATA": str(tmp_path / "demo"), "COLUMNS": "120"}
    for k in ("ACTORQ_URL", "ACTORQ_TOKEN", "ANTHROPIC_API_KEY", "ACTORQ_LLM_URL"):
        env.pop(k, None)
    proc = subprocess.run(
        [sys.executable, "examples/demo.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=240
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    expected = [
        "pi will use the local stand-in model",
        "server is up",
        "wrote /home/user/src/calc.py into the reviewer's VM",
        "waiting for it (wait=True, timeout=120)",
        "review completed (message 1):",
        "definitions: add, Calculator, total",
        "task 'lint' queued as message 1",
        "progress: package done",
        "webhook: issue 'App crashes on start' queued as message 1",
        "triaged #2 'Add dark mode'",
        "actorq queue runner main",
        "server stopped with SIGTERM (exit code 0)",
        "demo finished",
    ]
    positions = [out.find(line) for line in expected]
    assert all(p >= 0 for p in positions), [
        line for line, p in zip(expected, positions, strict=True) if p < 0
    ]
    assert positions == sorted(positions), "the demo's steps came out of order"
    rows = [[c.strip() for c in line.split("│")[1:-1]] for line in out.splitlines() if "│" in line]
    assert ["runner", '["main"]', "tasks", "3", "0", "0"] in rows
    assert ["issues", '["acme/app"]', "issues", "2", "0", "0"] in rows
    assert ["reviewer", '["main"]', "review", "1", "0", "0"] in rows
    assert (tmp_path / "demo" / "actorq.db").exists()
    reviews = list((tmp_path / "demo" / "actors").glob("*/vm/home/user/review.txt"))
    assert len(reviews) == 1 and "definitions: add, Calculator, total" in reviews[0].read_text()
