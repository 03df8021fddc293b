"""What every agent driver implements, and the values sessions return.

A driver runs one agent process (one session) inside a VM's sandbox and speaks that agent's
protocol. It never touches the host filesystem or storage: it gets a launcher that starts
processes inside the sandbox and a callback that broadcasts events to connected clients.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from actorq.agent_os.approvals import Verdict
from actorq.agent_os.permissions import ToolRequest
from actorq.agent_os.process import VMProcess
from actorq.vm_types import PromptResult, SessionModes


class Launcher(Protocol):
    async def __call__(self, argv: list[str], *, cwd: str, env: Mapping[str, str]) -> VMProcess:
        """Start ``argv`` inside the VM's sandbox with stdin, stdout and stderr as pipes."""
        ...


EventSink = Callable[[str, Any], None]  # broadcast(event_name, data) to the VM's connected clients
# the session's permission policy: the verdict on one tool call (an "ask" waits for an answer)
Permit = Callable[[ToolRequest], Awaitable[Verdict]]


@dataclass
class DriverOptions:
    session_id: str
    env: Mapping[str, str]  # secrets live here: never write them to disk or logs
    cwd: str
    additional_instructions: str | None
    launcher: Launcher
    emit: EventSink
    resume_from: str | None = None  # VM path of a transcript to continue (resume_session)
    # MCP servers in their normal form (agents/mcp.py); may hold secrets like ``env``
    mcp_servers: list[dict[str, Any]] = field(default_factory=list)
    permit: Permit | None = None  # None: no policy, every tool call runs (the sandbox is the boundary)


class AgentDriver(Protocol):
    """One live agent process. ``prompt`` is called one at a time (the VM serialises them)."""

    agent_type: str

    async def start(self) -> None:
        """Start the agent and wait until it accepts prompts; raise PromptFailed if it cannot."""
        ...

    async def prompt(self, text: str, timeout: float | None) -> PromptResult:
        """Send a prompt and wait for the agent to finish its turn(s)."""
        ...

    async def cancel(self) -> None:
        """Abort the prompt in progress (``prompt`` then returns with stop_reason "aborted")."""
        ...

    async def close(self) -> None:
        """Stop the agent process (idempotent)."""
        ...

    @property
    def transcript(self) -> str | None:
        """VM path of the agent's persisted session (for resume after a restart), once known."""
        ...


@runtime_checkable
class AgentControls(Protocol):
    """The session controls a driver may offer besides prompts. A driver without one of these
    methods (or whose agent lacks the feature) makes the action raise ``Unsupported``."""

    async def get_modes(self) -> SessionModes: ...

    async def set_mode(self, mode: str) -> SessionModes: ...

    async def get_config_options(self) -> list[dict[str, Any]]: ...

    async def set_config_option(self, config_id: str, value: str | bool) -> list[dict[str, Any]]: ...

    async def set_model(self, model: str) -> list[dict[str, Any]]: ...
