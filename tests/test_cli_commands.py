"""The CLI against a real server process: each command's output and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from actorq.cli import app
from tests.conftest import ROOT, ServerProcess

runner = CliRunner()


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data = tmp_path_factory.mktemp("cli") / "data"
    server = ServerProcess("tests.apps.semantics:registry", data).start()
    try:
        yield server.url
    finally:
        server.terminate()
        server.stop()


def cli(url: str, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, [*args, "--url", url], env={"COLUMNS": "200"})
    return result.exit_code, result.output


def test_send_and_wait_and_result(url: str) -> None:
    code, output = cli(url, "send", "echo", "main", "q", '{"hello": "cli"}')
    assert code == 0, output
    sent = json.loads(output)
    assert sent["id"] == 1 and sent["duplicate"] is False
    code, output = cli(url, "send", "echo", "main", "q", '{"n": 2}', "--wait", "--timeout", "10")
    assert code == 0 and json.loads(output)["response"] == {"echo": {"n": 2}, "key": ["main"]}
    code, output = cli(url, "result", "echo", "main", "1", "--wait", "--timeout", "5")
    assert code == 0 and json.loads(output)["status"] == "completed"
    code, output = cli(url, "send", "echo", '["multi", "part"]', "q", "1", "--idempotency-key", "k")
    again = cli(url, "send", "echo", "multi,part", "q", "1", "--idempotency-key", "k")[1]
    assert json.loads(again)["duplicate"] is True and json.loads(again)["id"] == json.loads(output)["id"]


def test_call_actors_and_queue_tables(url: str) -> None:
    code, output = cli(url, "call", "counter", "c1", "add", "5")
    assert code == 0 and json.loads(output) == 5
    code, output = cli(url, "actors", "--name", "counter")
    assert code == 0 and "counter" in output and '["c1"]' in output
    cli(url, "send", "plain", "p", "tasks", '{"fail_until": 99}', "--wait", "--timeout", "10")
    cli(url, "send", "plain", "p", "other", "1", "--delay", "60")
    code, output = cli(url, "queue", "plain", "p")
    assert code == 0, output
    assert "tasks" in output and "dead letters" in output and "boom on attempt 3" in output
    assert "pending" in output and "other" in output
    code, output = cli(url, "dead-letters", "plain", "p")
    assert code == 0 and "1 dead letter(s)" in output
    assert cli(url, "dead-letters", "plain", "p", "--delete", "1")[0] == 0
    assert "0 dead letter(s)" in cli(url, "dead-letters", "plain", "p")[1]


def test_errors_exit_non_zero(url: str) -> None:
    code, output = cli(url, "send", "nosuch", "k", "q", "{}")
    assert code == 2 and "not_found" in output
    code, output = cli(url, "call", "counter", "c1", "add")
    assert code == 2 and "validation_error" in output
    code, output = cli(url, "call", "counter", "c1", "explode")
    assert code == 1 and "actor_error" in output and "kaboom" in output
    code, output = cli(url, "send", "plain", "p", "tasks", "{not json")
    assert code == 2 and "not valid JSON" in output
    code, output = cli(url, "send", "plain", "p", "tasks", '{"fail_until": 99}', "--wait", "--timeout", "10")
    assert code == 1 and '"failed"' in output
    code, output = cli("http://127.0.0.1:1", "actors")
    assert code == 1 and "unavailable" in output


def test_serve_rejects_a_bad_target(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "actorq", "serve", "tests.apps.semantics:nothing", "--storage", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode != 0 and "not an actorq registry" in proc.stderr
