"""End-to-end demo: start the server as its own process on embedded SQLite, then act as a client.

Runs ``python -m actorq serve examples.demo_app:registry`` on a free port with its data in a fresh
temporary directory (or ``$ACTORQ_DEMO_DATA``), waits for ``/healthz``, then: the reviewer (a
completable review by the real pi agent in a sandboxed VM, waited on like a function call), the task
runner (three tasks with progress events) and the issue worker (a webhook action into the actor's own
queue); prints what happens and the queues as the server and ``actorq queue`` see them; stops the
server with SIGTERM (a graceful shutdown) and exits 0. pi talks to Anthropic when
``ANTHROPIC_API_KEY`` is set, otherwise to the local stand-in model, and the demo says which.
``make demo`` runs this file.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from actorq.client import create_client  # noqa: E402
from examples import issue_worker, reviewer, task_runner  # noqa: E402

console = Console()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_llm() -> tuple[str, subprocess.Popen[bytes] | None]:
    """Anthropic when ANTHROPIC_API_KEY is set; else the stand-in model (started here) or $ACTORQ_LLM_URL."""
    if os.environ.get("ANTHROPIC_API_KEY") and not os.environ.get("ACTORQ_LLM_URL"):
        console.print("pi will use [bold]Anthropic[/] (ANTHROPIC_API_KEY is set)")
        return "", None
    if os.environ.get("ACTORQ_LLM_URL"):
        url = os.environ["ACTORQ_LLM_URL"]
        console.print(f"pi will use the model at {url} (ACTORQ_LLM_URL)")
        return url, None
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "actorq.testing.fake_llm", "--port", str(port)],
        stdout=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{url}/models", timeout=0.5)
            break
        except httpx.TransportError:
            time.sleep(0.05)
    console.print(
        f"pi will use the local [bold]stand-in model[/] at {url} (no ANTHROPIC_API_KEY set; "
        "set it to use Anthropic)"
    )
    return url, proc


def start_server(data: Path, port: int, llm_url: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    if llm_url:
        env["ACTORQ_LLM_URL"] = llm_url
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "actorq",
            "serve",
            "examples.demo_app:registry",
            "--port",
            str(port),
            "--storage",
            str(data),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=0.5).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("server did not start")


def say(text: str) -> None:
    console.print(f"  {text}", markup=False, highlight=False)


async def client_flow(url: str) -> None:
    async with create_client(url) as client:
        console.rule("reviewer: completable message to pi in a sandboxed VM, wait=True, timeout=120")
        result = await reviewer.main(client, say)
        if result.status != "completed":
            raise SystemExit(f"review did not complete: {result}")
        console.rule("task runner: three durable tasks, one at a time")
        log = await task_runner.main(client, say)
        if len(log) != len(task_runner.TASKS):
            raise SystemExit(f"the runner did not finish the tasks: {log}")
        console.rule("issue worker: webhook action -> own queue -> triage")
        triaged = await issue_worker.main(client, say)
        if len(triaged) != len(issue_worker.ISSUES):
            raise SystemExit(f"the issue worker did not finish: {triaged}")
        console.rule("what the server holds")
        table = Table("actor", "key", "queue", "completed", "pending", "dead")
        for info in await client.list_actors():
            for q in await client.actor(info.name).get_for_id(info.actor_id).queues():
                table.add_row(
                    info.name, json.dumps(info.key), q.queue, str(q.completed), str(q.pending), str(q.dead)
                )
        console.print(table)


def show_cli(url: str) -> None:
    """The same server through the command line (a separate process, the sync client)."""
    console.rule("actorq queue runner main")
    subprocess.run(
        [sys.executable, "-m", "actorq", "--url", url, "queue", "runner", "main"], cwd=ROOT, check=True
    )


def stop_server(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)  # graceful: the current handler may finish, the rest stays queued
    try:
        return proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
        console.print("[red]server did not stop within 30 s of SIGTERM; killed[/]")
        return 1


def main() -> int:
    data = Path(os.environ.get("ACTORQ_DEMO_DATA") or tempfile.mkdtemp(prefix="actorq-demo-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    console.print(f"[bold]actorq demo[/]: starting the server on {url}, SQLite in {data}")
    llm_url, llm = start_llm()
    try:
        proc = start_server(data, port, llm_url)
        try:
            console.print(f"server is up (pid {proc.pid}, /healthz answered)")
            asyncio.run(client_flow(url))
            show_cli(url)
        finally:
            code = stop_server(proc)
    finally:
        if llm is not None:
            llm.terminate()
            llm.wait(10)
    console.print(f"server stopped with SIGTERM (exit code {code}); everything it accepted is in {data}")
    if code != 0:
        return code
    console.print("[bold green]demo finished[/]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
