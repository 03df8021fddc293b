"""Logs of a served registry: ``actorq serve`` and ``registry.start()`` log alike to stderr,
``c.log`` inside a handler included; ``ACTORQ_LOG_FORMAT=json`` gives one JSON object per line
naming the actor, the message and the trace; no line holds the token or a VM's env."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from actorq.client import SyncClient
from actorq.server.logs import JsonFormatter, TextFormatter, redact_value
from actorq.server.serve import free_port
from tests.apps.log_app import VM_SECRET
from tests.conftest import ROOT, ServerProcess

TOKEN = "log-test-token-5b4a39281706"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


def lines_of(text: str) -> list[dict[str, Any]]:
    out = []
    for line in text.splitlines():
        if line.strip():
            out.append(json.loads(line))  # every line is one JSON object, uvicorn's too
    return out


def test_json_lines_name_the_actor_message_and_trace_and_hold_no_secret(tmp_path: Path) -> None:
    server = ServerProcess(
        "tests.apps.log_app:registry",
        tmp_path / "data",
        env={"ACTORQ_LOG_FORMAT": "json", "ACTORQ_TOKEN": TOKEN},
        args=["--log-level", "debug", "--access-log"],
    ).start()
    try:
        with SyncClient(server.url, token=TOKEN) as client:
            h = client.logger.get_or_create(["alice@example.com"])
            actor_id = h.resolve()
            r = httpx.post(
                f"{server.url}/v1/actors/{actor_id}/queues/q/messages",
                json={"body": "vm", "wait": True, "timeout": 60},
                headers={
                    "Authorization": f"Bearer {TOKEN}",
                    "traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01",
                },
                timeout=70,
            )
            assert r.status_code == 200 and r.json()["status"] == "completed", r.text
            assert h.ping() == "pong"
            # the token where a careless client could put it: a query string
            httpx.get(f"{server.url}/v1/actors?token={TOKEN}", timeout=5)
    finally:
        server.terminate()
    text = server.log_path.read_text()
    assert TOKEN not in text
    assert VM_SECRET not in text
    lines = lines_of(text)
    assert {"time", "level", "logger", "message"} <= set(lines[0])
    handling = [ln for ln in lines if ln["message"] == "handling body vm"]
    assert len(handling) == 1
    line = handling[0]
    assert line["logger"] == "actorq.actor.logger" and line["level"] == "INFO"
    assert line["actor"] == "logger" and line["actor_id"] == actor_id
    assert line["key"] == ["alice@example.com"] and line["message_id"] == 1 and line["queue"] == "q"
    # no SDK in the server: the caller's trace still runs through, the handler's lines carry it
    assert line["trace_id"] == TRACE_ID and len(line["span_id"]) == 16
    vm_said = [ln for ln in lines if ln["message"] == "vm said set"]
    assert vm_said and vm_said[0]["trace_id"] == TRACE_ID
    ping = [ln for ln in lines if ln["message"] == "ping action"]
    assert ping and ping[0]["action"] == "ping" and ping[0]["actor_id"] == actor_id
    assert "message_id" not in ping[0]
    assert any(ln["logger"].startswith("uvicorn") for ln in lines)


def test_registry_start_logs_like_actorq_serve(tmp_path: Path) -> None:
    port = free_port()
    log_path = tmp_path / "start.log"
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    env.pop("ACTORQ_LOG_FORMAT", None)
    env.pop("ACTORQ_TOKEN", None)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "tests/apps/log_app.py", str(port), str(tmp_path / "data")],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None, log_path.read_text()
            try:
                if httpx.get(url + "/healthz", timeout=0.5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.05)
        with SyncClient(url) as client:
            r = client.logger.get_or_create(["k"]).send("q", 42, wait=True, timeout=10)
            assert r.status == "completed"
    finally:
        proc.terminate()
        proc.wait(30)
    text = log_path.read_text()
    assert " INFO actorq.actor.logger: handling body 42" in text, text
    assert "actorq runtime started" in text  # the runtime's own lines, at info like actorq serve


def test_a_bad_log_format_is_refused(tmp_path: Path) -> None:
    env = {**os.environ, "ACTORQ_LOG_FORMAT": "xml"}
    r = subprocess.run(
        [sys.executable, "-m", "actorq", "serve", "tests.apps.log_app:registry", "--storage", str(tmp_path)],
        cwd=ROOT,
        env={**env, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and "ACTORQ_LOG_FORMAT" in r.stderr


def test_the_token_is_blanked_anywhere_in_a_line_and_its_traceback() -> None:
    secret = "s3cr3t-token-value-91"
    redact_value(secret)
    try:
        raise ValueError(f"bad header {secret}")
    except ValueError:
        exc_info = sys.exc_info()
    for formatter in (TextFormatter(), JsonFormatter()):
        record = logging.LogRecord("actorq.x", logging.ERROR, __file__, 1, "got %s", (secret,), exc_info)
        out = formatter.format(record)
        assert secret not in out and "[redacted]" in out and "ValueError" in out
