"""The ``actorq`` CLI against real servers: what each command prints, what it changes, its exit codes.

Most tests drive the typer app in-process (CliRunner) against a real server that ``registry.test()``
runs in a background thread; the last ones run the real entry point as a subprocess, and ``serve``
as a server process.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue as stdlib_queue
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypedDict

import httpx
import pytest
from typer.testing import CliRunner

from actorq import ActorContext, actor, queue, setup
from actorq._version import __version__
from actorq.cli import app
from tests.conftest import ROOT, ServerProcess


class Order(TypedDict):
    item: str
    qty: int


FLAKY = {"broken": True}  # read by the server thread, flipped by the tests


async def jobs_loop(c: ActorContext) -> None:
    async for m in c.queue.iter("tasks"):  # "orders" is never received: it only fills up
        if m.body.get("flaky") and FLAKY["broken"]:
            raise RuntimeError(f"broken on attempt {m.attempt}")
        c.state["done"].append(m.body.get("n"))


async def done(c: ActorContext) -> list[Any]:
    return list(c.state["done"])


async def add(c: ActorContext, a: int, b: int) -> int:
    return a + b


async def announce(c: ActorContext, text: str, *, times: int = 1, loud: bool = False) -> int:
    for i in range(times):
        c.broadcast("announced", {"text": text.upper() if loud else text, "i": i})
    return times


async def explode(c: ActorContext) -> None:
    raise ValueError("kaboom [bold]not markup[/bold]")


async def ask_loop(c: ActorContext) -> None:
    async for m in c.queue.iter(completable=True):
        if m.body.get("slow"):
            await asyncio.sleep(m.body["slow"])
        await m.complete({"echo": m.body})


registry = setup(
    use={
        "jobs": actor(
            queues={"tasks": queue(dict[str, Any]), "orders": queue(Order, max_size=2)},
            run=jobs_loop,
            actions={"done": done, "add": add, "explode": explode, "announce": announce},
            state=lambda: {"done": []},
            max_attempts=2,
            retry_backoff=0.01,
            retry_backoff_max=0.05,
        ),
        "asker": actor(queues={"ask": queue(dict[str, Any], dict[str, Any])}, run=ask_loop),
    }
)


@contextmanager
def server_thread(**options: Any) -> Iterator[str]:
    """``registry.test()`` (a real uvicorn server, temporary SQLite) on its own loop in a thread."""
    ready: stdlib_queue.Queue[str | BaseException] = stdlib_queue.Queue()
    stop = threading.Event()

    async def run() -> None:
        try:
            async with registry.test(**options) as client:
                ready.put(client.url)
                while not stop.is_set():
                    await asyncio.sleep(0.02)
        except BaseException as exc:
            ready.put(exc)
            raise

    thread = threading.Thread(target=asyncio.run, args=(run(),), daemon=True)
    thread.start()
    got = ready.get(timeout=60)
    if isinstance(got, BaseException):
        raise got
    try:
        yield got
    finally:
        stop.set()
        thread.join(30)


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with server_thread() as u:
        yield u


@pytest.fixture(scope="module")
def token_url() -> Iterator[str]:
    with server_thread(token="s3cret") as u:
        yield u


@pytest.fixture(autouse=True)
def _flaky_reset() -> Iterator[None]:
    FLAKY["broken"] = True
    yield
    FLAKY["broken"] = True


runner = CliRunner()
CLEAN_ENV: dict[str, str | None] = {"COLUMNS": "200", "ACTORQ_URL": None, "ACTORQ_TOKEN": None}


class Run:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err

    def json(self) -> Any:
        return json.loads(self.out)


def cli(*args: str, env: dict[str, str | None] | None = None) -> Run:
    result = runner.invoke(app, list(args), env={**CLEAN_ENV, **(env or {})})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Run(result.exit_code, result.stdout, result.stderr)


def at(url: str, *args: str) -> Run:
    """Run a command with ``--url`` after it (the per-command form)."""
    return cli(*args, "--url", url)


def table_rows(text: str, first: str) -> list[list[str]]:
    """The cells of every rich table row whose first cell is ``first``."""
    rows = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if cells and cells[0] == first:
            rows.append(cells)
    return rows


def eventually(check: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


# --- send ------------------------------------------------------------------------------------------


def test_send_prints_the_receipt_and_the_actor_processes_in_order(url: str) -> None:
    first = at(url, "send", "jobs", "s1", "tasks", '{"n": 1}')
    assert first.code == 0, first.err
    receipt = first.json()
    assert receipt["id"] == 1 and receipt["duplicate"] is False and receipt["actor_id"]
    for n in (2, 3):
        assert at(url, "send", "jobs", "s1", "tasks", json.dumps({"n": n})).json()["id"] == n
    assert eventually(lambda: at(url, "call", "jobs", "s1", "done").json() == [1, 2, 3])


def test_key_forms_address_the_same_actor(url: str) -> None:
    a = at(url, "send", "jobs", "team,alpha", "tasks", '{"n": 1}').json()
    b = at(url, "send", "jobs", '["team", "alpha"]', "tasks", '{"n": 2}').json()
    c = at(url, "send", "jobs", "team", "tasks", '{"n": 3}').json()
    assert a["actor_id"] == b["actor_id"] != c["actor_id"]
    assert (a["id"], b["id"], c["id"]) == (1, 2, 1)
    listed = at(url, "actors", "--name", "jobs").out
    assert table_rows(listed, a["actor_id"]) == [[a["actor_id"], "jobs", '["team", "alpha"]']]


def test_send_wait_returns_the_response_and_result_finds_it_later(url: str) -> None:
    run = at(url, "send", "asker", "w1", "ask", '{"q": "hi"}', "--wait", "--timeout", "20")
    assert run.code == 0, run.err
    got = run.json()
    assert got["status"] == "completed" and got["response"] == {"echo": {"q": "hi"}}
    assert got["attempt"] == 1
    later = at(url, "result", "asker", "w1", str(got["id"]))
    assert later.code == 0 and later.json() == {
        "id": got["id"],
        "status": "completed",
        "response": {"echo": {"q": "hi"}},
        "error": None,
        "attempt": 1,
    }


def test_send_wait_that_times_out_exits_1_and_the_result_arrives_later(url: str) -> None:
    run = at(url, "send", "asker", "w2", "ask", '{"slow": 1.0}', "--wait", "--timeout", "0.1")
    assert run.code == 1 and run.json()["status"] == "timed_out"
    assert "message timed_out" in run.err
    msg_id = str(run.json()["id"])
    finished = at(url, "result", "asker", "w2", msg_id, "--wait", "--timeout", "20")
    assert finished.code == 0 and finished.json()["response"] == {"echo": {"slow": 1.0}}


def test_idempotency_key_gives_the_same_message(url: str) -> None:
    first = at(url, "send", "jobs", "idem", "tasks", '{"n": 1}', "--idempotency-key", "order-42").json()
    again = at(url, "send", "jobs", "idem", "tasks", '{"n": 1}', "--idempotency-key", "order-42").json()
    assert again["id"] == first["id"] and again["duplicate"] is True and first["duplicate"] is False
    assert eventually(lambda: at(url, "call", "jobs", "idem", "done").json() == [1])
    time.sleep(0.2)  # a duplicate that slipped through would have been processed by now
    assert at(url, "call", "jobs", "idem", "done").json() == [1]


def test_delayed_send_shows_as_delayed_with_its_message(url: str) -> None:
    sent = at(url, "send", "jobs", "later", "tasks", '{"n": 9}', "--delay", "600").json()
    run = at(url, "queue", "jobs", "later")
    assert run.code == 0, run.err
    assert table_rows(run.out, "tasks") == [["tasks", "0", "1", "0", "0", "0", "1000"]]
    (row,) = table_rows(run.out, str(sent["id"]))
    assert row[1:4] == ["tasks", "pending", "0"]
    assert at(url, "call", "jobs", "later", "done").json() == []


# --- call / actors ---------------------------------------------------------------------------------


def test_call_passes_json_arguments_and_maps_errors(url: str) -> None:
    ok = at(url, "call", "jobs", "calc", "add", "2", "40")
    assert ok.code == 0 and ok.json() == 42
    arity = at(url, "call", "jobs", "calc", "add", "2")
    assert arity.code == 2 and "validation_error" in arity.err and arity.out == ""
    unknown = at(url, "call", "jobs", "calc", "nosuch")
    assert unknown.code == 2 and "not_found" in unknown.err
    raised = at(url, "call", "jobs", "calc", "explode")
    assert raised.code == 1 and "actor_error" in raised.err
    assert "kaboom [bold]not markup[/bold]" in raised.err  # printed as text, not as rich markup


def test_actors_table_and_name_filter(url: str) -> None:
    at(url, "send", "asker", "listed", "ask", "{}", "--wait", "--timeout", "20")
    at(url, "call", "jobs", "listed", "done")
    everyone = at(url, "actors")
    assert everyone.code == 0
    rows = [[c.strip() for c in line.split("│")[1:-1]] for line in everyone.out.splitlines()]
    assert {"jobs", "asker"} <= {row[1] for row in rows if len(row) == 3}
    only = at(url, "actors", "--name", "asker")
    listed = [line for line in only.out.splitlines() if '["listed"]' in line]
    assert len(listed) == 1 and "asker" in listed[0]
    assert "jobs" not in only.out
    assert "actor(s)" in only.out


# --- queue / dead letters / result -----------------------------------------------------------------


def test_failed_message_is_dead_lettered_listed_retried_and_deleted(url: str) -> None:
    failed = at(url, "send", "jobs", "dl", "tasks", '{"flaky": true, "n": 7}', "--wait", "--timeout", "30")
    assert failed.code == 1
    got = failed.json()
    assert got["status"] == "failed" and "broken on attempt 2" in got["error"]
    assert got["attempt"] == 2, "the waited answer counts deliveries like the dead letter"
    looked_up = at(url, "result", "jobs", "dl", str(got["id"])).json()
    assert (looked_up["status"], looked_up["attempt"]) == ("failed", 2)

    shown = at(url, "queue", "jobs", "dl")
    assert table_rows(shown.out, "tasks") == [["tasks", "0", "0", "0", "0", "1", "1000"]]
    assert "dead letters" in shown.out
    (letter,) = table_rows(shown.out, str(got["id"]))
    assert letter[1:3] == ["tasks", "2"] and "broken on attempt 2" in letter[4]

    listed = at(url, "dead-letters", "jobs", "dl")
    assert listed.code == 0 and "1 dead letter(s)" in listed.out
    assert '{"flaky": true, "n": 7}' in listed.out

    FLAKY["broken"] = False
    retried = at(url, "dead-letters", "jobs", "dl", "--retry", str(got["id"]))
    assert retried.code == 0 and f"dead letter {got['id']} retried" in retried.out
    after = at(url, "result", "jobs", "dl", str(got["id"]), "--wait", "--timeout", "30")
    assert after.code == 0 and after.json()["status"] == "completed"
    assert at(url, "call", "jobs", "dl", "done").json() == [7]
    assert "0 dead letter(s)" in at(url, "dead-letters", "jobs", "dl").out

    FLAKY["broken"] = True
    second = at(url, "send", "jobs", "dl", "tasks", '{"flaky": true}', "--wait", "--timeout", "30").json()
    assert second["status"] == "failed"
    deleted = at(url, "dead-letters", "jobs", "dl", "--delete", str(second["id"]))
    assert deleted.code == 0 and "deleted" in deleted.out
    assert "0 dead letter(s)" in at(url, "dead-letters", "jobs", "dl").out
    gone = at(url, "result", "jobs", "dl", str(second["id"]))
    assert gone.code == 2 and "not_found" in gone.err
    again = at(url, "dead-letters", "jobs", "dl", "--delete", str(second["id"]))
    assert again.code == 2 and "not_found" in again.err
    assert at(url, "dead-letters", "jobs", "dl", "--retry", "999").code == 2


def test_full_queue_and_invalid_body_exit_2_and_store_nothing(url: str) -> None:
    for item in ("a", "b"):
        assert at(url, "send", "jobs", "full", "orders", json.dumps({"item": item, "qty": 1})).code == 0
    full = at(url, "send", "jobs", "full", "orders", '{"item": "c", "qty": 1}')
    assert full.code == 2 and "queue_full" in full.err and "429" in full.err
    invalid = at(url, "send", "jobs", "full2", "orders", '{"item": "c"}')
    assert invalid.code == 2 and "validation_error" in invalid.err and "qty" in invalid.err
    shown = at(url, "queue", "jobs", "full")
    assert table_rows(shown.out, "orders") == [["orders", "2", "0", "0", "0", "0", "2"]]
    assert [r[2] for r in table_rows(shown.out, "1") + table_rows(shown.out, "2")] == ["pending", "pending"]


def test_unknown_things_are_404_and_inspection_creates_nothing(url: str) -> None:
    assert at(url, "send", "nosuch", "k", "q", "{}").code == 2
    no_queue = at(url, "send", "jobs", "k404", "nosuch", "{}")
    assert no_queue.code == 2 and "not_found" in no_queue.err
    for args in (
        ("queue", "jobs", "never"),
        ("dead-letters", "jobs", "never"),
        ("result", "jobs", "never", "1"),
    ):
        run = at(url, *args)
        assert run.code == 2 and "not_found" in run.err, args
    assert '["never"]' not in at(url, "actors").out


def test_bad_local_input_exits_2_before_any_request(url: str) -> None:
    body = at(url, "send", "jobs", "k", "tasks", "{not json")
    assert body.code == 2 and "not valid JSON" in body.err
    key = at(url, "send", "jobs", "[1, 2]", "tasks", "{}")
    assert key.code == 2 and "list of strings" in key.err
    arg = at(url, "call", "jobs", "k", "add", "1", "two")
    assert arg.code == 2 and "argument 1" in arg.err
    assert '["k"]' not in at(url, "actors", "--name", "jobs").out


# --- where the server is: --url / ACTORQ_URL / --token / ACTORQ_TOKEN -------------------------------


def test_url_as_global_option_env_var_and_per_command_override(url: str) -> None:
    assert cli("--url", url, "call", "jobs", "where", "add", "1", "1").json() == 2
    assert cli("call", "jobs", "where", "add", "1", "2", env={"ACTORQ_URL": url}).json() == 3
    override = cli("--url", "http://127.0.0.1:1", "call", "jobs", "where", "add", "1", "3", "--url", url)
    assert override.code == 0 and override.json() == 4


def test_unreachable_server_exits_1(url: str) -> None:
    run = cli("--url", "http://127.0.0.1:1", "actors")
    assert run.code == 1 and "unavailable" in run.err


def test_token(token_url: str) -> None:
    missing = at(token_url, "actors")
    assert missing.code == 2 and "unauthorized" in missing.err and "401" in missing.err
    wrong = cli("--url", token_url, "--token", "nope", "actors")
    assert wrong.code == 2 and "unauthorized" in wrong.err
    assert cli("--url", token_url, "--token", "s3cret", "call", "jobs", "t", "add", "1", "1").json() == 2
    assert cli("--url", token_url, "actors", env={"ACTORQ_TOKEN": "s3cret"}).code == 0
    assert cli("actors", "--url", token_url, "--token", "s3cret").code == 0


# --- the real entry point and `serve` ---------------------------------------------------------------


def test_entry_point_prints_errors_in_red_on_stderr(url: str) -> None:
    env = {**os.environ, "FORCE_COLOR": "1", "ACTORQ_URL": url, "COLUMNS": "200"}
    env.pop("ACTORQ_TOKEN", None)
    proc = subprocess.run(
        [sys.executable, "-m", "actorq", "queue", "nosuch", "k"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "not_found" in proc.stderr and "unknown actor type 'nosuch'" in proc.stderr
    assert "\x1b[1;31m" in proc.stderr  # bold red


def test_serve_takes_the_token_from_the_environment(tmp_path: Path) -> None:
    server = ServerProcess("tests.apps.api_app:registry", tmp_path / "data", env={"ACTORQ_TOKEN": "t0k"})
    server.start()
    try:
        body = '{"n": 21}'
        denied = cli("--url", server.url, "send", "api", "main", "jobs", body)
        assert denied.code == 2 and "unauthorized" in denied.err
        run = cli("--url", server.url, "--token", "t0k", "send", "api", "main", "jobs", body, "--wait")
        assert run.code == 0, run.err
        assert run.json()["response"] == {"doubled": 42}
        assert server.terminate() == 0
    finally:
        server.stop()


def test_serve_rejects_a_bad_target(tmp_path: Path) -> None:
    for target, expected in (
        ("tests.apps.semantics:nothing", "not an actorq registry"),
        ("no_such_module_xyz:registry", "cannot import"),
    ):
        proc = subprocess.run(
            [sys.executable, "-m", "actorq", "serve", target, "--storage", str(tmp_path)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 2 and expected in proc.stderr, proc.stderr


# --- version, keyword arguments, watch, progress ------------------------------------------------------


def test_version() -> None:
    run = cli("--version")
    assert run.code == 0 and run.out.strip() == f"actorq {__version__}"


def test_call_takes_keyword_arguments_as_name_equals_json(url: str) -> None:
    ok = at(url, "call", "jobs", "kw", "announce", '"hi"', "--kw", "times=3", "--kw", "loud=true")
    assert ok.code == 0, ok.err
    assert ok.json() == 3
    by_name = at(url, "call", "jobs", "kw", "announce", "--kw", 'text="x"')
    assert by_name.code == 0 and by_name.json() == 1
    for bad, why in (
        (["--kw", "times"], "expected NAME=JSON"),
        (["--kw", "=3"], "expected NAME=JSON"),
        (["--kw", "times=three"], "not valid JSON"),
        (["--kw", "times=1", "--kw", "times=2"], "given twice"),
    ):
        run = at(url, "call", "jobs", "kw", "announce", '"hi"', *bad)
        assert run.code == 2 and why in run.err, (bad, run.err)
    unknown = at(url, "call", "jobs", "kw", "announce", '"hi"', "--kw", "nope=1")
    assert unknown.code == 2 and "validation_error" in unknown.err
    wrong_type = at(url, "call", "jobs", "kw", "announce", '"hi"', "--kw", 'times="3x"')
    assert wrong_type.code == 2 and "validation_error" in wrong_type.err


def entry_point(*args: str, url: str, env: dict[str, str] | None = None) -> list[str]:
    return [sys.executable, "-m", "actorq", *args, "--url", url]


def cli_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "COLUMNS": "200", **extra}
    env.pop("ACTORQ_TOKEN", None)
    return env


def test_watch_streams_the_actors_events_as_json_lines(url: str) -> None:
    assert at(url, "call", "jobs", "w", "announce", '"before"').code == 0  # the actor exists
    watcher = subprocess.Popen(
        entry_point("watch", "jobs", "w", "--count", "3", url=url),
        cwd=ROOT,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert watcher.stderr is not None
        assert "watching jobs" in watcher.stderr.readline()  # subscribed: what comes now is seen
        assert at(url, "call", "jobs", "w", "announce", '"one"', "--kw", "times=2").code == 0
        assert at(url, "call", "jobs", "w", "announce", '"two"').code == 0
        out, err = watcher.communicate(timeout=30)
    finally:
        watcher.kill()
    assert watcher.returncode == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    assert events == [
        {"name": "announced", "data": {"text": "one", "i": 0}},
        {"name": "announced", "data": {"text": "one", "i": 1}},
        {"name": "announced", "data": {"text": "two", "i": 0}},
    ]


def test_watch_of_an_unknown_actor_exits_2_and_creates_nothing(url: str) -> None:
    run = at(url, "watch", "jobs", "never-made", "--count", "1")
    assert run.code == 2 and "not_found" in run.err and run.out == ""
    assert table_rows(at(url, "actors", "--name", "jobs").out, "never-made") == []
    assert at(url, "watch", "nosuch", "k").code == 2


def test_send_wait_shows_progress_on_stderr_and_only_json_on_stdout(url: str) -> None:
    proc = subprocess.run(
        entry_point(
            "send", "asker", '["p", "[bold]"]', "ask", '{"slow": 1.0}', "--wait", "--timeout", "20", url=url
        ),
        cwd=ROOT,
        env=cli_env(FORCE_COLOR="1", TERM="xterm"),  # stderr counts as a terminal: the spinner runs
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    plain = re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout)  # FORCE_COLOR colours stdout's JSON too
    assert json.loads(plain)["response"] == {"echo": {"slow": 1.0}}  # nothing else on stdout
    assert """waiting for the 'ask' message of asker ["p", "[bold]"], up to 20 s""" in proc.stderr


def serve_second(target_args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "actorq", "serve", "tests.apps.api_app:registry", *target_args],
        cwd=ROOT,
        env={**cli_env(), "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_serve_on_a_data_directory_in_use_is_one_clean_line(tmp_path: Path) -> None:
    first = ServerProcess("tests.apps.api_app:registry", tmp_path / "data").start()
    try:
        from actorq.server.serve import free_port

        second = serve_second(["--port", str(free_port()), "--storage", str(tmp_path / "data")])
        assert second.returncode == 1
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1, second.stderr
        assert lines[0].startswith("actorq serve: data directory") and "in use" in lines[0]
        assert f"pid {first.proc.pid if first.proc else ''}" in lines[0]
        assert "Traceback" not in second.stderr and second.stdout == ""
        assert httpx.get(first.url + "/healthz").status_code == 200  # the first one is unharmed
    finally:
        first.stop()


def test_serve_on_a_port_in_use_is_one_clean_line_and_touches_no_data(tmp_path: Path) -> None:
    first = ServerProcess("tests.apps.api_app:registry", tmp_path / "data").start()
    try:
        other = tmp_path / "other"
        second = serve_second(["--port", str(first.port), "--storage", str(other)])
        assert second.returncode == 1
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1, second.stderr
        assert lines[0] == (
            f"actorq serve: port {first.port} on 127.0.0.1 is in use by another process "
            "(choose another with --port)"
        )
        assert not other.exists(), "refused before the data directory was made"
        assert httpx.get(first.url + "/healthz").status_code == 200
    finally:
        first.stop()


def test_typed_results_print_as_their_fields(capsys: pytest.CaptureFixture[str]) -> None:
    """`actorq call` on an agent VM action prints the result's fields (it comes back typed)."""
    from actorq.cli import print_json
    from actorq.vm_types import ExecResult

    print_json([ExecResult(0, "hi\n", "")])
    shown = json.loads(capsys.readouterr().out)
    assert shown[0]["exit_code"] == 0 and shown[0]["stdout"] == "hi\n"
