"""Every example runs for real: its client flow in-process against its own registry (a real server
on SQLite), each file as a script, and ``examples/demo.py`` end to end as ``make demo`` runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from examples import demo_app, issue_worker, reviewer, task_runner

from actorq import ValidationError
from tests.conftest import ROOT


def silent(_: str) -> None:
    pass


async def test_task_runner_works_tasks_one_at_a_time_and_keeps_its_log(tmp_path: Path) -> None:
    lines: list[str] = []
    async with task_runner.registry.test(storage=tmp_path) as client:
        log = await task_runner.main(client, lines.append)
        assert (await client.runner.get_or_create(["main"]).history())["count"] == 3
    assert log == [
        {"id": 1, "title": "lint", "attempt": 1},
        {"id": 2, "title": "test", "attempt": 1},
        {"id": 3, "title": "package", "attempt": 1},
    ]
    progress = [line.strip() for line in lines if "progress" in line]
    # one task at a time: every step of a task comes before any step of the next one
    assert progress == [
        "progress: lint step 1/2",
        "progress: lint step 2/2",
        "progress: test step 1/3",
        "progress: test step 2/3",
        "progress: test step 3/3",
        "progress: package step 1/1",
    ]

    # the count and log are durable: a new server on the same data directory continues them
    async with task_runner.registry.test(storage=tmp_path) as client:
        handle = client.runner.get_or_create(["main"])
        assert (await handle.history())["count"] == 3
        again = await task_runner.main(client, silent)
        assert (await handle.history())["count"] == 6
    assert again[:3] == log
    assert [(d["id"], d["title"]) for d in again[3:]] == [(4, "lint"), (5, "test"), (6, "package")]


async def test_task_runner_refuses_a_malformed_task() -> None:
    async with task_runner.registry.test() as client:
        handle = client.runner.get_or_create(["main"])
        with pytest.raises(ValidationError) as err:
            await handle.send("tasks", {"title": "no steps"})
        assert "steps" in str(err.value.details)
        (tasks,) = await handle.queues()
        assert (tasks.pending, tasks.completed) == (0, 0)


async def test_reviewer_answers_a_completable_message() -> None:
    async with reviewer.registry.test() as client:
        result = await reviewer.main(client, silent)
        assert result.status == "completed"
        assert result.response == {"summary": "add.py: 3 lines; TODOs on lines [2]"}

        handle = client.reviewer.get_or_create(["main"])
        later = await handle.result(result.id)
        assert (later.status, later.response) == ("completed", result.response)
        long_file = {"file": "long.py", "content": "x = 1\n" + "y" * 120 + "\n"}
        second = await handle.send("review", long_file, wait=True, timeout=120)
        assert second.response == {"summary": "long.py: 2 lines; no TODOs; lines over 100 characters: [2]"}
        assert await handle.reviewed() == 2

        with pytest.raises(ValidationError) as err:
            await handle.send("review", {"file": "no-content.py"}, wait=True, timeout=5)
        assert "content" in str(err.value.details)
        assert await handle.reviewed() == 2
        (review,) = await handle.queues()
        assert (review.pending, review.completed) == (0, 2)


async def test_issue_worker_ingests_through_its_own_queue_and_records_results() -> None:
    async with issue_worker.registry.test() as client:
        done = await issue_worker.main(client, silent)
        assert done == [
            {"id": 1, "title": "App crashes on start", "label": "bug"},
            {"id": 2, "title": "Add dark mode", "label": "feature"},
        ]
        handle = client.issues.get_or_create(["acme/app"])
        with pytest.raises(ValidationError, match="title"):  # the action's own check
            await handle.ingest_issue("   ", "body")
        with pytest.raises(ValidationError, match="argument 0"):  # checked against its annotations
            await handle.ingest_issue(42, "body")
        (issues,) = await handle.queues()
        assert (issues.pending, issues.in_flight, issues.completed) == (
            0,
            0,
            2,
        )  # nothing queued by the refusals
        assert await handle.results() == done

        other = client.issues.get_or_create(["acme/other"])  # another key: its own queue and results
        assert await other.ingest_issue("Slow search", "takes 10 s") == 1
        assert await issue_worker.main(client, silent) == [
            {"id": 3, "title": "App crashes on start", "label": "bug"},
            {"id": 4, "title": "Add dark mode", "label": "feature"},
        ]


def test_demo_app_serves_all_three() -> None:
    assert set(demo_app.registry.definitions) == {"runner", "reviewer", "issues"}


@pytest.mark.parametrize("name", ["task_runner", "reviewer", "issue_worker"])
def test_each_example_runs_as_a_script(name: str) -> None:
    proc = subprocess.run(
        [sys.executable, f"examples/{name}.py"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    expected = {
        "task_runner": "runner history: ['lint', 'test', 'package'] (3 task(s) done in all)",
        "reviewer": "review completed (message 1): add.py: 3 lines; TODOs on lines [2]",
        "issue_worker": "triaged #2 'Add dark mode' -> feature",
    }[name]
    assert expected in proc.stdout


def test_demo_end_to_end(tmp_path: Path) -> None:
    env = {**os.environ, "ACTORQ_DEMO_DATA": str(tmp_path / "demo"), "COLUMNS": "120"}
    env.pop("ACTORQ_URL", None)
    env.pop("ACTORQ_TOKEN", None)
    proc = subprocess.run(
        [sys.executable, "examples/demo.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    expected = [
        "server is up",
        "task 'lint' queued as message 1",
        "task 'package' queued as message 3",
        "progress: test step 3/3",
        "runner history: ['lint', 'test', 'package'] (3 task(s) done in all)",
        "webhook: issue 'App crashes on start' queued as message 1",
        "webhook: issue 'Add dark mode' queued as message 2",
        "triaged #1 'App crashes on start' -> bug",
        "triaged #2 'Add dark mode' -> feature",
        "waiting for it (timeout 120 s)",
        "review completed (message 1): add.py: 3 lines; TODOs on lines [2]",
        "actorq queue runner main",
        "server stopped with SIGTERM (exit code 0)",
        "demo finished",
    ]
    positions = [out.find(line) for line in expected]
    assert all(p >= 0 for p in positions), [
        line for line, p in zip(expected, positions, strict=True) if p < 0
    ]
    assert positions == sorted(positions), "the demo's steps came out of order"
    # the server's own view, and the CLI's queue table, both after the flow
    rows = [[c.strip() for c in line.split("│")[1:-1]] for line in out.splitlines() if "│" in line]
    assert ["runner", '["main"]', "tasks", "3", "0", "0"] in rows
    assert ["issues", '["acme/app"]', "issues", "2", "0", "0"] in rows
    assert ["reviewer", '["main"]', "review", "1", "0", "0"] in rows
    assert ["tasks", "0", "0", "0", "3", "0", "1000"] in rows  # `actorq queue runner main`
    assert (tmp_path / "demo" / "actorq.db").exists()
