"""An agent VM type for the several-nodes tests: a VM's /home/user must follow its actor."""

from __future__ import annotations

import os

from actorq import setup
from actorq.agent_os import agent_os, software

vm = agent_os(
    software=[software.common],
    sleep_timeout=60.0,
    snapshot_interval=float(os.environ.get("ACTORQ_TEST_SNAPSHOT_INTERVAL", "1.0")),
)
registry = setup(use={"vm": vm})
