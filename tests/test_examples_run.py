"""Every example runs for real: in-process against its own registry, and the demo end to end."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from examples import demo_app, issue_worker, reviewer, task_runner

from tests.conftest import ROOT


async def test_task_runner() -> None:
    lines: list[str] = []
    async with task_runner.registry.test() as client:
        done = await task_runner.main(client, lines.append)
    assert [d["title"] for d in done] == ["lint", "test", "package"]
    assert [d["id"] for d in done] == [1, 2, 3]
    assert sum("progress" in line for line in lines) == 6


async def test_reviewer() -> None:
    async with reviewer.registry.test() as client:
        result = await reviewer.main(client, lambda _: None)
        assert result.status == "completed"
        assert result.response == {"summary": "add.py: 3 lines; TODOs on lines [2]"}


async def test_issue_worker() -> None:
    async with issue_worker.registry.test() as client:
        done = await issue_worker.main(client, lambda _: None)
        assert [(d["id"], d["label"]) for d in done] == [(1, "bug"), (2, "feature")]
        from actorq import ValidationError

        try:
            await client.issues.get_or_create(["acme/app"]).ingest_issue("  ", "no title")
        except ValidationError as exc:
            assert "title" in exc.message
        else:
            raise AssertionError("an empty title must be refused")


def test_demo_end_to_end(tmp_path: Path) -> None:
    env = {**os.environ, "ACTORQ_DEMO_DATA": str(tmp_path / "demo"), "COLUMNS": "120"}
    proc = subprocess.run(
        [sys.executable, "examples/demo.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    for expected in (
        "runner history: ['lint', 'test', 'package']",
        "-> bug",
        "-> feature",
        "review completed",
        "TODOs on lines [2]",
        "exit code 0",
        "demo finished",
    ):
        assert expected in out, expected
    assert (tmp_path / "demo" / "actorq.db").exists()


def test_demo_app_serves_all_three() -> None:
    assert set(demo_app.registry.definitions) == {"runner", "reviewer", "issues"}
