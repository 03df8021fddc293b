"""A registry with agent VMs (network on and off) for the agent_os tests and crash tests."""

from __future__ import annotations

import os

from actorq import ActorContext, actor, setup
from actorq.agent_os import Network, acp_agent, agent_os, software
from actorq.agent_os.permissions import Permissions, ask

# the test session's fake LLM (tests/conftest.py) is reached through this declared host port
LLM = Network(host_ports=[int(os.environ["ACTORQ_LLM_PORT"])] if "ACTORQ_LLM_PORT" in os.environ else [])
vm = agent_os(software=[software.common, software.pi], network=LLM, sleep_timeout=2.0, exec_timeout=20.0)
offline = agent_os(software=[software.common], network=False, sleep_timeout=2.0)
# an ACP agent (a stdlib-only stub, written into the VM by the test) as a second agent type
acpvm = agent_os(
    software=[software.common], agents={"stub": acp_agent(["python3", "/home/user/acp_stub_agent.py"])}
)
# the same two agents with a policy on the VM type: writes and shell commands wait for an answer
HELD = Permissions(rules=[ask(["write", "edit", "bash"])], timeout=120.0)
permvm = agent_os(
    software=[software.common, software.pi],
    network=LLM,
    sleep_timeout=2.0,
    exec_timeout=20.0,
    permissions=HELD,
)
permacp = agent_os(
    software=[software.common],
    agents={"stub": acp_agent(["python3", "/home/user/acp_stub_agent.py"])},
    permissions=HELD,
)

# real Claude Code under that policy, its fake Anthropic API on the same forwarded port
permclaude = agent_os(software=[software.common, software.claude], network=LLM, permissions=HELD)


async def approve(c: ActorContext, vm_key: str, session_id: str) -> str:
    """An actor answering a VM's held tool calls: allow every pending one of the session."""
    held = c.actors.agent_os("permvm").get_or_create([vm_key])
    answered = [
        await held.respond_permission(session_id, r.request_id, "allow")
        for r in await held.list_permission_requests(session_id)
    ]
    return ",".join(a.status for a in answered)


reviewer = actor(actions={"approve": approve})
registry = setup(
    use={
        "vm": vm,
        "offline": offline,
        "acpvm": acpvm,
        "permvm": permvm,
        "permacp": permacp,
        "permclaude": permclaude,
        "reviewer": reviewer,
    }
)
