"""Agent VM tests run the real pi binary from the software cache (``actorq software install pi``,
which ``make test`` runs first; ``$ACTORQ_SOFTWARE`` or ``~/.cache/actorq/software``)."""

from __future__ import annotations

import pytest

from actorq.agent_os import software


@pytest.fixture(autouse=True, scope="session")
def _pi_installed() -> None:
    if not software.pi.installed():
        pytest.fail("the pi agent is not installed: run `make setup` (or `actorq software install pi`)")
