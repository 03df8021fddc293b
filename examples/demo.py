"""End-to-end demo: start the server as its own process on embedded SQLite, then act as a client.

Runs the task runner (three tasks with progress events), the issue worker (webhook action into a
queue) and a completable review waited on like a function call; prints what happens; stops the
server with SIGTERM (a graceful shutdown). ``make demo`` runs this file.
"""

from __future__ import annotations

import asyncio
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


def start_server(data: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
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


async def client_flow(url: str) -> None:
    def say(text: str) -> None:
        console.print(f"  {text}", markup=False, highlight=False)

    async with create_client(url) as client:
        console.rule("task runner: three durable tasks, one at a time")
        await task_runner.main(client, say)
        console.rule("issue worker: webhook action -> queue -> triage")
        await issue_worker.main(client, say)
        console.rule("reviewer: completable message, wait=True, timeout=120")
        result = await reviewer.main(client, say)
        if result.status != "completed":
            raise SystemExit(f"review did not complete: {result}")


def main() -> int:
    data = Path(os.environ.get("ACTORQ_DEMO_DATA") or tempfile.mkdtemp(prefix="actorq-demo-"))
    port = free_port()
    console.print(f"[bold]actorq demo[/]: server on http://127.0.0.1:{port}, SQLite in {data}")
    proc = start_server(data, port)
    try:
        asyncio.run(client_flow(f"http://127.0.0.1:{port}"))
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
    console.print(f"server stopped gracefully (exit code {code}); everything it accepted is in {data}")
    console.print("[bold green]demo finished[/]")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
