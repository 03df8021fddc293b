"""Agent VM registries for the escape suite: a default one, and VM types built per test with the
network and limits a test declares (``Network`` and ``Limits`` may not exist yet: then the test
that needs them fails on its own, the module still imports)."""

from __future__ import annotations

from typing import Any

import pytest

import actorq.agent_os
from actorq import App, setup
from actorq.agent_os import acp_agent, agent_os, software
from actorq.core.definitions import ActorDefinition

# the VM network policy and resource limits (they may not exist yet)
Network: Any = getattr(actorq.agent_os, "Network", None)
Limits: Any = getattr(actorq.agent_os, "Limits", None)

SOFTWARE = [software.common, software.pi]


def vm_type(**options: Any) -> ActorDefinition:
    return agent_os(software=SOFTWARE, exec_timeout=30.0, sleep_timeout=60.0, **options)


def network(**kwargs: Any) -> Any:
    """``Network(**kwargs)``, or the test fails: the VM network policy is missing."""
    if Network is None:
        pytest.fail("actorq.agent_os.Network does not exist: VMs have no network policy to declare")
    return Network(**kwargs)


def limits(**kwargs: Any) -> Any:
    """``Limits(**kwargs)``, or the test fails: per-VM resource limits are missing."""
    if Limits is None:
        pytest.fail("actorq.agent_os.Limits does not exist: VMs have no resource limits")
    return Limits(**kwargs)


def build(**types: ActorDefinition) -> App:
    return setup(use=types)


# "vm": the default network (its own namespace, host unreachable); "offline": loopback only;
# "acpvm": an ACP agent (the stub the test writes into the VM) whose fs requests the host serves
registry = build(
    vm=vm_type(),
    offline=vm_type(network=False),
    acpvm=vm_type(agents={"stub": acp_agent(["python3", "/home/user/acp_stub_agent.py"])}),
)
