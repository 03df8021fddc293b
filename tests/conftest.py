"""Shared fixtures: temporary data directories and real server processes (for crash tests).

The suite is laid out by surface: ``test_http_routes`` (every route's happy paths),
``test_bad_input`` (every bad input and its typed error), ``test_clients`` (the async and sync
twins), ``test_websocket``; ``core/`` (behaviour of the Runtime, on it alone and over HTTP; its
harness in core/conftest.py), ``cluster/`` (several server nodes on PostgreSQL; its harness in
cluster/conftest.py), ``storage/`` (the drivers' conformance), ``agent_os/`` (agent VMs); the
other modules one feature each (CLI, crash recovery, tokens, browsers, OpenAPI...).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from actorq.server.serve import free_port

ROOT = Path(__file__).resolve().parent.parent


def _llm_port() -> int:
    """A free port outside the ephemeral range, so no outgoing connection takes it meanwhile."""
    import random
    import socket

    for _ in range(100):
        port = random.randint(20000, 30000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port for the fake LLM")


# Agent VMs reach the host only through ports they declare (Network(host_ports=[...])), so the fake
# LLM of the whole test session listens on one port that the test registries declare; servers the
# tests start as processes inherit it.
LLM_PORT = int(os.environ.setdefault("ACTORQ_LLM_PORT", str(_llm_port())))


class ServerProcess:
    """``python -m actorq serve TARGET`` in a child process on a free loopback port."""

    def __init__(
        self,
        target: str,
        data_dir: Path,
        *,
        port: int | None = None,
        env: dict[str, str] | None = None,
        args: list[str] | None = None,
        storage: str | None = None,
    ) -> None:
        self.target = target
        self.storage = storage or str(data_dir)  # a data directory, or a postgresql:// URL
        self.data_dir = data_dir
        self.port = port or free_port()
        self.env = env or {}
        self.args = args or []
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir.parent / f"server-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> ServerProcess:
        env = {
            **os.environ,
            "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
            **self.env,
        }
        log = open(self.log_path, "ab")  # owned by the child for its life
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "actorq",
                "serve",
                self.target,
                "--port",
                str(self.port),
                "--storage",
                self.storage,
                "--log-level",
                "warning",
                *self.args,
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=0.5).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"server did not become healthy:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-5000:]
        except FileNotFoundError:
            return ""

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def start_all(servers: list[ServerProcess]) -> list[ServerProcess]:
    """Start several servers at once (each start waits for its /healthz)."""
    errors: list[BaseException] = []

    def boot(s: ServerProcess) -> None:
        try:
            s.start()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=boot, args=(s,)) for s in servers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    return servers


def stop_all(servers: list[ServerProcess]) -> None:
    """Kill what is still running, resuming first any server a test left stopped (SIGSTOP)."""
    for s in servers:
        if s.proc is not None:
            if s.proc.poll() is None:
                s.proc.send_signal(signal.SIGCONT)
            s.stop()


def wait_for(predicate: Any, timeout: float = 30.0, what: str = "condition") -> None:
    """Poll ``predicate`` (a blocking check on real processes) until true, or fail saying what."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    return d


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[type[ServerProcess]]:
    started: list[ServerProcess] = []

    class Factory(ServerProcess):
        def start(self, timeout: float = 20.0) -> ServerProcess:
            started.append(self)
            return super().start(timeout)

    yield Factory
    for s in started:
        s.stop()
