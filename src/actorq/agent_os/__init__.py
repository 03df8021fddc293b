"""The agent VM: sandboxed Linux workspaces per actor key, and coding agents running inside them.

Owns, by module:

* the actor type: ``vm`` (``agent_os()``, the wake and sleep of a VM), ``machine`` (``VMConfig``,
  the awake ``Machine`` in ``c.vars``), ``actions/`` (the actions, one module per concern, and the
  one ``ACTIONS`` table);
* one awake VM's machinery: ``workspace`` (opens and closes it as a whole), ``host`` (the VM's host
  thread: namespaces, mounts, credentials, relays), ``sandbox`` (bubblewrap), ``seccomp``,
  ``network`` (the VM's network namespace and slirp4netns), ``cgroups``, ``uids``, ``disk`` (the
  disk cap), ``limits`` (``Limits``, ``Network``);
* a VM's files: ``paths`` (how a VM path is resolved, openat2 inside the VM's root), ``fs``
  (single-path file actions), ``trees`` (descriptor walks), ``files`` (the async file actions on
  the host thread), ``snapshot`` (packing the home to move it between nodes);
* what runs in a VM: ``process`` (``VMProcess``), ``processes`` (exec/spawn), ``sessions`` (agent
  sessions), ``permissions`` / ``approvals`` (policies on agents' tool calls, the calls held for an
  answer), ``agents/`` (the drivers), ``fetch`` (``vm_fetch``), ``cron`` (job validation);
* ``software`` (what is mounted) and ``fake_llm`` (the stand-in model for tests and the demo);
* ``metrics``: the VM's Prometheus series, in the core's registry.

The actions' result types (``ExecResult``, ``Session``, ...) and the typed handle listing the
actions (``AgentOSActions``) live in the shared leaf ``actorq.vm_types``, re-exported here: the
server and both clients use them too.

Uses the core like any actor, through its public facade (``actorq.core``: ``actor``,
``ActorContext``, ``ActorDefinition``, ``METRICS_REGISTRY``), and only in ``vm``, ``machine``,
``metrics`` and ``actions/``; everything else here knows nothing of actors. Must not import
``actorq.server``, ``actorq.client`` or ``actorq.storage`` (snapshots reach storage only through
``c.snapshots``).
"""

# ruff: noqa: E402  (the extra is checked before the imports that need it)
from actorq._extras import require

# agent VMs are the ``agents`` extra: say what to install before an import deep inside fails
require("acp", "agents", "Agent VMs (actorq.agent_os)")
require("croniter", "agents", "Agent VMs (actorq.agent_os)")

from actorq.agent_os import software
from actorq.agent_os.agents.acp import AcpAgent, acp_agent
from actorq.agent_os.limits import UNLIMITED, Limits, Network
from actorq.agent_os.permissions import Permissions, Rule, allow, ask, deny
from actorq.agent_os.software import Software, npm_package
from actorq.agent_os.vm import agent_os
from actorq.errors import (
    PathOutsideVM,
    PromptFailed,
    ResourceLimit,
    SandboxUnavailable,
    SessionClosed,
    Unsupported,
)
from actorq.vm_types import (
    AgentOSActions,
    BatchReadResult,
    BatchWriteResult,
    CronJob,
    DirEntry,
    ExecResult,
    FetchResult,
    FileStat,
    PermissionRequest,
    PreviewUrl,
    ProcessInfo,
    PromptResult,
    Session,
    SessionModes,
    SpawnedProcess,
)

__all__ = [
    "AcpAgent",
    "AgentOSActions",
    "BatchReadResult",
    "BatchWriteResult",
    "CronJob",
    "DirEntry",
    "ExecResult",
    "FetchResult",
    "FileStat",
    "Limits",
    "Network",
    "PathOutsideVM",
    "PermissionRequest",
    "Permissions",
    "PreviewUrl",
    "ProcessInfo",
    "PromptFailed",
    "PromptResult",
    "ResourceLimit",
    "Rule",
    "SandboxUnavailable",
    "Session",
    "SessionClosed",
    "SessionModes",
    "Software",
    "SpawnedProcess",
    "UNLIMITED",
    "Unsupported",
    "acp_agent",
    "agent_os",
    "allow",
    "ask",
    "deny",
    "npm_package",
    "software",
]
