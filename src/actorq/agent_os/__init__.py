"""The agent VM: sandboxed Linux workspaces per actor key, and coding agents running inside them.

Owns: VM roots on disk (``fs``), the bubblewrap sandbox (``sandbox``), processes, cron jobs, agent
sessions and their drivers (``agents/pi.py``, ``agents/acp.py``), and the software mounted into VMs.
Uses the core like any actor (``agent_os()`` returns an ``actor(...)`` definition); must not import
``actorq.server``, ``actorq.client`` or ``actorq.storage``.
"""

from actorq.agent_os import software
from actorq.agent_os.agents.acp import AcpAgent, acp_agent
from actorq.agent_os.agents.base import PromptResult, Session
from actorq.agent_os.cron import CronJob
from actorq.agent_os.fetch import FetchResult
from actorq.agent_os.files import FileResult
from actorq.agent_os.fs import DirEntry, FileStat
from actorq.agent_os.limits import UNLIMITED, Limits, Network
from actorq.agent_os.processes import ExecResult, ProcessInfo, SpawnedProcess
from actorq.agent_os.software import Software, npm_package
from actorq.agent_os.vm import agent_os
from actorq.errors import PathOutsideVM, PromptFailed, ResourceLimit, SandboxUnavailable, SessionClosed

__all__ = [
    "AcpAgent",
    "CronJob",
    "DirEntry",
    "ExecResult",
    "FetchResult",
    "FileResult",
    "FileStat",
    "Limits",
    "Network",
    "PathOutsideVM",
    "ProcessInfo",
    "PromptFailed",
    "PromptResult",
    "ResourceLimit",
    "SandboxUnavailable",
    "Session",
    "SessionClosed",
    "Software",
    "SpawnedProcess",
    "UNLIMITED",
    "acp_agent",
    "agent_os",
    "npm_package",
    "software",
]
