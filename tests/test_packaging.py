"""What ``pip install actorq`` brings and what it does not: the core install (SQLite, server,
clients, CLI) never imports asyncpg or the Agent Client Protocol library; PostgreSQL and agent VMs
are extras, and using one without it installed says which extra to install."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

from actorq._version import __version__

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
OPTIONAL = ("asyncpg", "acp", "croniter")

# blocks the optional packages as if they were not installed
NOT_INSTALLED = """
import importlib.abc, sys
class NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if any(name == b or name.startswith(b + ".") for b in {blocked!r}):
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None
sys.meta_path.insert(0, NotInstalled())
"""

USE_SQLITE = """
import asyncio, sys, tempfile
import actorq, actorq.client, actorq.cli
from actorq import ActorContext, actor, queue, setup

async def run(c: ActorContext) -> None:
    async for m in c.queue.iter(completable=True):
        await m.complete(m.body * 2)

registry = setup(use={"double": actor(queues={"in": queue(int, int)}, run=run)})

async def main() -> None:
    async with registry.test(storage=tempfile.mkdtemp()) as client:
        r = await client.double.get_or_create(["a"]).send("in", 21, wait=True, timeout=10)
        assert r.response == 42, r
    with actorq.client.create_sync_client("http://127.0.0.1:9") as sync:
        assert sync.url

asyncio.run(main())
loaded = sorted(m for m in sys.modules if m.split(".")[0] in OPTIONAL)
print("LOADED", loaded)
"""


def python(code: str) -> subprocess.CompletedProcess[str]:
    code = f"OPTIONAL = {OPTIONAL!r}\n" + textwrap.dedent(code)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)


def test_the_core_dependencies_leave_postgres_and_agents_to_extras() -> None:
    core = " ".join(PYPROJECT["dependencies"])
    for optional in ("asyncpg", "agent-client-protocol", "croniter"):
        assert optional not in core, optional
    extras = PYPROJECT["optional-dependencies"]
    assert [d.split(">")[0] for d in extras["postgres"]] == ["asyncpg"]
    assert sorted(d.split(">")[0] for d in extras["agents"]) == ["agent-client-protocol", "croniter"]
    assert extras["all"] == ["actorq[postgres,agents]"]
    assert "actorq[all]" in extras["dev"]


def test_license_classifiers_and_urls() -> None:
    text = (ROOT / "LICENSE").read_text()
    assert text.lstrip().startswith("Apache License") and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text  # the full text, not a pointer to it
    assert PYPROJECT["license"] == "Apache-2.0" and PYPROJECT["license-files"] == ["LICENSE"]
    assert "Typing :: Typed" in PYPROJECT["classifiers"]
    assert {"Homepage", "Repository", "Documentation", "Issues"} <= set(PYPROJECT["urls"])
    assert PYPROJECT["version"] == __version__


def test_sqlite_server_clients_and_cli_import_no_optional_package() -> None:
    done = python(USE_SQLITE)
    assert done.returncode == 0, done.stderr
    assert "LOADED []" in done.stdout, done.stdout


def test_without_the_extras_the_core_works_and_each_extra_is_named() -> None:
    blocked = NOT_INSTALLED.format(blocked=set(OPTIONAL))
    done = python(blocked + USE_SQLITE)
    assert done.returncode == 0, done.stderr

    postgres = python(
        blocked
        + """
from actorq._extras import MissingDependency
from actorq.storage import open_storage
try:
    open_storage("postgresql://127.0.0.1/test")
except MissingDependency as exc:
    print("ERROR", exc)
"""
    )
    assert "ERROR PostgreSQL storage needs the 'asyncpg' package" in postgres.stdout, postgres.stderr
    assert "pip install 'actorq[postgres]'" in postgres.stdout

    agents = python(
        blocked
        + """
from actorq._extras import MissingDependency
try:
    import actorq.agent_os
except MissingDependency as exc:
    print("ERROR", exc)
"""
    )
    assert "ERROR Agent VMs (actorq.agent_os) needs the 'acp' package" in agents.stdout, agents.stderr
    assert "pip install 'actorq[agents]'" in agents.stdout


def test_a_broken_dependency_is_not_passed_off_as_a_missing_one() -> None:
    """asyncpg installed but one of its own imports failing: that error, unchanged."""
    done = python(
        NOT_INSTALLED.format(blocked={"asyncpg.protocol"})
        + """
from actorq._extras import MissingDependency
try:
    from actorq.storage.postgres import PostgresStorage
except MissingDependency as exc:
    print("MISSING", exc)
except ImportError as exc:
    print("BROKEN", exc.name)
"""
    )
    assert done.stdout.startswith("BROKEN asyncpg"), (done.stdout, done.stderr)


def test_the_cli_names_the_agents_extra_when_it_is_missing() -> None:
    done = python(
        NOT_INSTALLED.format(blocked=set(OPTIONAL))
        + """
import sys
from actorq.cli import main
sys.argv = ["actorq", "software", "install", "pi"]
main()
"""
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "pip install 'actorq[agents]'" in done.stderr, done.stderr
