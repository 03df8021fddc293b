"""Agent VM tests run the real pi binary from the software cache (``actorq software install pi``,
which ``make test`` runs first; ``$ACTORQ_SOFTWARE`` or ``~/.cache/actorq/software``), in real
sandboxes (the server runs as root: each VM gets its own namespaces, cgroups and uid)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from actorq.agent_os import Limits, Network, software
from actorq.agent_os.software import Software
from actorq.agent_os.workspace import Workspace
from actorq.testing import FakeLLM
from tests.conftest import LLM_PORT


@pytest.fixture(autouse=True, scope="session")
def _pi_installed() -> None:
    if not software.pi.installed():
        pytest.fail("the pi agent is not installed: run `make setup` (or `actorq software install pi`)")


@asynccontextmanager
async def open_workspace(
    tmp_path: Path,
    sw: Sequence[Software],
    *,
    network: Network | None = None,
    limits: Limits | None = None,
    name: str = "test-vm",
) -> AsyncIterator[Workspace]:
    """A VM's machinery without an actor around it (what the VM actor opens on each wake)."""
    ws = await Workspace.open(
        tmp_path / name,
        data_dir=tmp_path,
        name=name,
        software=sw,
        network=network or Network(outbound=False),
        limits=limits or Limits(),
    )
    try:
        yield ws
    finally:
        await ws.close()


@pytest.fixture
async def llm() -> AsyncIterator[FakeLLM]:
    """The fake OpenAI-compatible LLM on the port the VM test apps forward into their VMs."""
    async with FakeLLM(port=LLM_PORT) as server:
        yield server
