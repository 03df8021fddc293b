"""The README's first steps work as written: its ``app.py`` served by ``actorq serve app:registry``
from the directory it is in, and the two commands after it print what their comments say."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import httpx

from actorq.client import create_sync_client
from actorq.server.serve import free_port

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
SECTION = README[README.index("## First steps") : README.index("## Quick start")]


def test_the_first_steps_come_before_the_demo_and_keep_its_commands() -> None:
    assert README.index("## First steps") < README.index("make demo")
    assert "pip install actorq" in SECTION
    quick = README[README.index("## Quick start") :]
    assert quick.split("```sh\n", 1)[1].startswith("make demo\nmake test\n```")


def test_the_readme_app_serves_and_answers_as_shown(tmp_path: Path) -> None:
    code = re.search(r"```python\n(# app\.py\n.*?)```", SECTION, re.S)
    assert code, "the first steps show app.py"
    assert len(code.group(1).strip().splitlines()) <= 14
    (tmp_path / "app.py").write_text(code.group(1))
    commands = re.search(r"```sh\n(actorq serve app:registry.*?)```", SECTION, re.S)
    assert commands
    lines = [line.split("#", 1)[0].strip() for line in commands.group(1).strip().splitlines()]
    assert lines[0] == "actorq serve app:registry"

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "ACTORQ_URL": url, "COLUMNS": "200"}
    env.pop("ACTORQ_TOKEN", None)
    server = subprocess.Popen(
        [sys.executable, "-m", "actorq", "serve", "app:registry", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert server.poll() is None, server.stderr.read() if server.stderr else ""
            try:
                if httpx.get(f"{url}/healthz", timeout=0.5).status_code == 200:
                    break
            except httpx.TransportError:
                assert time.monotonic() < deadline
                time.sleep(0.05)

        def actorq(line: str) -> str:
            done = subprocess.run(
                [sys.executable, "-m", "actorq", *shlex.split(line)[1:]],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert done.returncode == 0, done.stderr
            return done.stdout

        sent = json.loads(actorq(lines[1]))
        assert sent["status"] == "completed" and sent["response"] == "hello, world! (#1)"
        assert json.loads(actorq(lines[2])) == 1
        with create_sync_client(url) as client:
            answer = client.greeter.get_or_create(["main"]).send("greet", "you", wait=True).response
        assert answer == "hello, you! (#2)" and '"hello, you! (#2)"' in SECTION
        assert (tmp_path / ".actorq").is_dir(), "data in ./.actorq/"
    finally:
        server.terminate()
        server.wait(30)
