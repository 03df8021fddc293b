"""The ACP driver: any agent that speaks the Agent Client Protocol over stdio, run inside the VM.

ACP (agentclientprotocol.com) is JSON-RPC 2.0 over newline-delimited stdio. We are the *client*:
we launch the agent command in the sandbox, ``initialize`` it, open (or load) a session and send
prompts; the agent streams ``session/update`` notifications back and may call us for
``fs/read_text_file`` / ``fs/write_text_file`` and ``session/request_permission``. The JSON-RPC
plumbing is the ``agent-client-protocol`` package (import name ``acp``).

File requests name VM paths; they are served by the ``fs`` object the VM hands us (its resolver,
which refuses anything outside the VM), never by opening host paths here. Without one we do not
advertise the fs capability, and the agent uses its own tools inside the sandbox instead.

Plugging in an agent is one declaration::

    vm = agent_os(agents={"claude": acp_agent(["claude-code-acp"], name="claude")})
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, cast

import acp
import pydantic
from acp.client.connection import ClientSideConnection
from acp.schema import (
    AgentMessageChunk,
    AgentPlanUpdate,
    AgentThoughtChunk,
    AllowedOutcome,
    ClientCapabilities,
    ConfigOptionUpdate,
    CurrentModeUpdate,
    DeniedOutcome,
    EnvVariable,
    FileSystemCapabilities,
    HttpHeader,
    HttpMcpServer,
    Implementation,
    McpServerStdio,
    PermissionOption,
    ReadTextFileResponse,
    RequestPermissionResponse,
    SessionInfoUpdate,
    TextContentBlock,
    ToolCallProgress,
    ToolCallStart,
    ToolCallUpdate,
    UsageUpdate,
    UserMessageChunk,
    WriteTextFileResponse,
)

from actorq.agent_os.agents.base import DriverOptions
from actorq.agent_os.agents.process import AgentProcess
from actorq.agent_os.permissions import ToolRequest
from actorq.errors import ActorqError, BadRequest, NotFound, PromptFailed, SessionClosed, Unsupported
from actorq.vm_types import PromptResult, SessionModes

_PREVIEW = 200  # characters of a tool call's title kept in an event
T = TypeVar("T")


class TextFiles(Protocol):
    """VM-path text file access (the VM's own file actions, run on its host thread as its uid);
    raises PathOutsideVM for paths out of the VM."""

    async def read_text(self, vm_path: str, /) -> str: ...

    async def write_text(self, vm_path: str, text: str, /) -> None: ...


@dataclass(frozen=True)
class AcpAgent:
    """Declares an ACP agent type: the command that starts it inside the VM, and its name."""

    name: str
    command: tuple[str, ...]
    start_timeout: float = 60.0
    auth_method: str | None = None  # an ``authenticate`` method id sent after initialize (codex: api-key)

    @property
    def agent_type(self) -> str:
        return self.name

    def driver(self, opts: DriverOptions, *, fs: TextFiles | None = None) -> AcpDriver:
        driver = AcpDriver(
            opts, list(self.command), fs=fs, agent_type=self.name, start_timeout=self.start_timeout
        )
        driver.auth_method = self.auth_method
        return driver


def acp_agent(
    command: Sequence[str], *, name: str = "acp", start_timeout: float = 60.0, auth_method: str | None = None
) -> AcpAgent:
    """An agent type for any ACP agent command (e.g. ``["claude-code-acp"]``), run in the VM;
    ``auth_method``: an ACP ``authenticate`` method id to send before the session opens."""
    if isinstance(command, str) or not command or not all(isinstance(a, str) and a for a in command):
        raise ValueError("acp_agent(command) takes a non-empty list of strings, e.g. ['claude-code-acp']")
    return AcpAgent(name=name, command=tuple(command), start_timeout=start_timeout, auth_method=auth_method)


@dataclass
class _Turn:
    """What one prompt collected from the agent's session updates."""

    text: list[str] = field(default_factory=list)
    events: int = 0
    tool_calls: list[str] = field(default_factory=list)


def _client_version() -> str:
    try:
        return importlib.metadata.version("actorq")
    except importlib.metadata.PackageNotFoundError:
        return "0"


def _block_text(block: Any) -> str | None:
    return block.text if isinstance(block, TextContentBlock) else None


def _describe(update: Any) -> dict[str, Any]:
    """A compact, JSON-safe event for a session update (full tool contents and diffs are left out)."""
    kind = str(getattr(update, "session_update", "unknown"))
    out: dict[str, Any] = {"type": kind}
    if isinstance(update, AgentMessageChunk | AgentThoughtChunk | UserMessageChunk):
        text = _block_text(update.content)
        if text is not None:
            out["text"] = text
        else:
            out["content_type"] = update.content.type
    elif isinstance(update, ToolCallStart | ToolCallProgress):
        out["tool_call_id"] = update.tool_call_id
        for key in ("title", "kind", "status"):
            value = getattr(update, key)
            if value is not None:
                out[key] = value[:_PREVIEW] if key == "title" else value
    elif isinstance(update, AgentPlanUpdate):
        out["entries"] = [{"content": e.content, "status": e.status} for e in update.entries]
    elif isinstance(update, CurrentModeUpdate):
        out["mode"] = update.current_mode_id
    elif isinstance(update, SessionInfoUpdate):
        if update.title is not None:
            out["title"] = update.title
    elif isinstance(update, UsageUpdate):
        out["used"] = update.used
        out["size"] = update.size
    return out


class _Client:
    """The client half of ACP: the callbacks the agent may invoke while it works."""

    def __init__(self, driver: AcpDriver) -> None:
        self._driver = driver

    async def session_update(self, session_id: str, update: Any, **kwargs: Any) -> None:
        self._driver._on_update(update)

    async def request_permission(
        self, session_id: str, tool_call: ToolCallUpdate, options: list[PermissionOption], **kwargs: Any
    ) -> RequestPermissionResponse:
        # Without a policy nobody is watching to click "allow": the sandbox is the boundary, so we
        # grant the first allow option. With one, the session's policy (and maybe a person) decides.
        # After a cancel ACP wants pending permission requests answered "cancelled".
        d = self._driver
        if d._opts.permit is not None:
            return await self._by_policy(tool_call, options)
        allow = next((o for o in options if o.kind.startswith("allow")), None)
        if d._cancelling or allow is None:
            d._emit({"type": "permission", "tool_call_id": tool_call.tool_call_id, "outcome": "cancelled"})
            return RequestPermissionResponse(outcome=DeniedOutcome(outcome="cancelled"))
        d._emit({"type": "permission", "tool_call_id": tool_call.tool_call_id, "option": allow.option_id})
        return RequestPermissionResponse(
            outcome=AllowedOutcome(outcome="selected", option_id=allow.option_id)
        )

    async def _by_policy(
        self, tool_call: ToolCallUpdate, options: list[PermissionOption]
    ) -> RequestPermissionResponse:
        d = self._driver
        assert d._opts.permit is not None
        req = ToolRequest.from_acp(
            tool_call.kind,
            tool_call.title,
            tool_call.raw_input,
            [loc.path for loc in tool_call.locations or []],
            d._opts.cwd,
        )
        verdict = await d._opts.permit(req)
        # "once" options: the policy decides every call, the agent must not remember an "always"
        wanted = ("allow_once", "allow_always") if verdict.allowed else ("reject_once", "reject_always")
        option = next((o for kind in wanted for o in options if o.kind == kind), None)
        event = {"type": "permission", "tool_call_id": tool_call.tool_call_id, "reason": verdict.reason}
        if verdict.request_id is not None:
            event["request_id"] = verdict.request_id
        if d._cancelling or option is None:
            d._emit({**event, "outcome": "cancelled"})
            return RequestPermissionResponse(outcome=DeniedOutcome(outcome="cancelled"))
        d._emit({**event, "outcome": "allowed" if verdict.allowed else "denied", "option": option.option_id})
        return RequestPermissionResponse(
            outcome=AllowedOutcome(outcome="selected", option_id=option.option_id)
        )

    async def read_text_file(
        self, session_id: str, path: str, line: int | None = None, limit: int | None = None, **kwargs: Any
    ) -> ReadTextFileResponse:
        fs = self._files()
        text = await _fs_call(path, fs.read_text(path))
        if line is not None or limit is not None:
            lines = text.splitlines(keepends=True)
            start = max((line or 1) - 1, 0)
            text = "".join(lines[start : start + limit if limit is not None else None])
        return ReadTextFileResponse(content=text)

    async def write_text_file(
        self, session_id: str, path: str, content: str, **kwargs: Any
    ) -> WriteTextFileResponse:
        fs = self._files()
        await _fs_call(path, fs.write_text(path, content))
        return WriteTextFileResponse()

    def _files(self) -> TextFiles:
        if self._driver._fs is None:
            raise acp.RequestError.method_not_found("fs (this client has no file access)")
        return self._driver._fs


async def _fs_call(path: str, call: Awaitable[T]) -> T:
    """Await a VM file action and turn its failures into JSON-RPC errors for the agent."""
    try:
        return await call
    except NotFound:
        raise acp.RequestError.resource_not_found(path) from None
    except ActorqError as exc:  # PathOutsideVM and friends: the agent asked for something not allowed
        raise acp.RequestError.invalid_params({"path": path, "message": exc.message}) from None
    except FileNotFoundError:
        raise acp.RequestError.resource_not_found(path) from None
    except (IsADirectoryError, NotADirectoryError, UnicodeDecodeError) as exc:
        raise acp.RequestError.invalid_params({"path": path, "message": str(exc)}) from None
    except OSError as exc:
        raise acp.RequestError.internal_error({"path": path, "message": exc.strerror or str(exc)}) from None


ASKING_MODE = "default"  # the mode of Claude Code and Gemini that asks before edits and commands


class AcpDriver(AgentProcess):
    """One ACP agent process and its one ACP session (see the module docstring)."""

    def __init__(
        self,
        opts: DriverOptions,
        command: list[str],
        *,
        fs: TextFiles | None = None,
        agent_type: str = "acp",
        start_timeout: float = 60.0,
        cancel_grace: float = 5.0,
    ) -> None:
        if not command:
            raise ValueError("an ACP agent needs a command")
        super().__init__(opts)
        self.agent_type = agent_type
        self._command = list(command)
        self._fs = fs
        self._start_timeout = start_timeout
        self._cancel_grace = cancel_grace
        self._conn: ClientSideConnection | None = None
        self._acp_session: str | None = None
        self._pending_instructions = opts.additional_instructions or None
        self._turn: _Turn | None = None
        self._replaying = False
        self._cancelling = False
        self._lock = asyncio.Lock()
        # what session/new (or load) and later updates said the session offers; None = not offered
        self._modes: SessionModes | None = None
        self._config: list[dict[str, Any]] | None = None
        self._mcp_http = False  # the agent takes http MCP servers (mcpCapabilities.http)
        self.auth_method: str | None = None

    @property
    def transcript(self) -> str | None:
        """The ACP session id: pass it back as ``resume_from`` to ``session/load`` it after a restart."""
        return self._acp_session

    def instruct(self, text: str) -> None:
        """Instructions for a started agent (a warm one): they go with its first prompt."""
        self._pending_instructions = text or None

    async def start(self) -> None:
        if self._closed:
            raise SessionClosed("the ACP session was closed")
        try:
            async with asyncio.timeout(self._start_timeout):
                await self._start()
        except TimeoutError:
            await self.close()
            raise PromptFailed(
                f"ACP agent {self._command[0]!r} did not start within {self._start_timeout:g}s"
                f"{self._stderr_suffix()}",
                details={"reason": "timeout"},
            ) from None
        except BaseException:
            await self.close()
            raise

    async def _start(self) -> None:
        opts = self._opts
        proc = await self._spawn(self._command, opts.env)
        assert proc.stdin is not None and proc.stdout is not None
        self._conn = acp.connect_to_agent(cast(acp.Client, _Client(self)), proc.stdin, proc.stdout)
        has_fs = self._fs is not None
        init = await self._call(
            "initialize",
            self._conn.initialize(
                protocol_version=acp.PROTOCOL_VERSION,
                client_capabilities=ClientCapabilities(
                    fs=FileSystemCapabilities(read_text_file=has_fs, write_text_file=has_fs), terminal=False
                ),
                client_info=Implementation(name="actorq", version=_client_version()),
            ),
        )
        if self.auth_method is not None:  # e.g. codex: "api-key" reads the key from the session's env
            await self._call("authenticate", self._conn.authenticate(method_id=self.auth_method))
        caps = init.agent_capabilities
        can_load = bool(caps is not None and caps.load_session)
        self._mcp_http = bool(caps is not None and caps.mcp_capabilities and caps.mcp_capabilities.http)
        mcp_servers = self._mcp_servers()
        if opts.resume_from and can_load:
            self._replaying = True  # the agent replays the old conversation as session updates
            try:
                loaded = await self._call(
                    "session/load",
                    self._conn.load_session(
                        cwd=opts.cwd, session_id=opts.resume_from, mcp_servers=mcp_servers
                    ),
                )
                self._acp_session = opts.resume_from
                if loaded is not None:
                    self._offers(loaded.modes, loaded.config_options)
                await self._asking_mode()
                self._pending_instructions = None  # the loaded conversation already carries them
                return
            except PromptFailed as exc:
                if self._exited():
                    raise
                # The agent forgot the session (e.g. its store was wiped): a fresh one beats none.
                self._emit({"type": "resume_failed", "reason": exc.message})
            finally:
                self._replaying = False
        elif opts.resume_from:
            self._emit({"type": "resume_failed", "reason": "the agent does not support session/load"})
        new = await self._call("session/new", self._conn.new_session(cwd=opts.cwd, mcp_servers=mcp_servers))
        self._acp_session = new.session_id
        self._offers(new.modes, new.config_options)
        await self._asking_mode()

    async def _asking_mode(self) -> None:
        """Under a policy, the agent's mode that asks before every edit or command.

        Claude Code starts in "auto" (a classifier approves calls, edits in the cwd never ask) when
        nothing says otherwise, so no ``session/request_permission`` would reach the policy; its
        "default" mode (Gemini's too) asks. An agent without such a mode is left as it is.
        """
        if self._opts.permit is None or self._modes is None:
            return
        if self._modes.current_mode_id == ASKING_MODE:
            return
        if any(m.get("id") == ASKING_MODE for m in self._modes.available_modes):
            await self.set_mode(ASKING_MODE)

    def _mcp_servers(self) -> list[Any]:
        """The session's MCP servers as ACP's types; http ones only if the agent said it takes them."""
        out: list[Any] = []
        for server in self._opts.mcp_servers:
            if server["type"] == "stdio":
                env = [EnvVariable(name=k, value=v) for k, v in server["env"].items()]
                out.append(
                    McpServerStdio(
                        name=server["name"], command=server["command"], args=server["args"], env=env
                    )
                )
            elif not self._mcp_http:
                raise Unsupported(
                    f"this ACP agent ({self.agent_type}) does not take http MCP servers",
                    details={"agent_type": self.agent_type, "feature": "mcp_http", "server": server["name"]},
                )
            else:
                headers = [HttpHeader(name=k, value=v) for k, v in server["headers"].items()]
                out.append(
                    HttpMcpServer(type="http", name=server["name"], url=server["url"], headers=headers)
                )
        return out

    def _offers(self, modes: Any, config_options: Any) -> None:
        if modes is not None:
            self._modes = SessionModes(
                current_mode_id=modes.current_mode_id,
                available_modes=[
                    m.model_dump(exclude_none=True, exclude={"field_meta"}) for m in modes.available_modes
                ],
            )
        if config_options is not None:
            self._config = [
                o.model_dump(by_alias=True, exclude_none=True, exclude={"field_meta"}) for o in config_options
            ]

    # -- session controls ------------------------------------------------------------------------

    def _session_conn(self) -> tuple[ClientSideConnection, str]:
        if self._closed:
            raise SessionClosed("the ACP session was closed")
        if self._conn is None or self._acp_session is None:
            raise PromptFailed("the ACP agent is not started")
        return self._conn, self._acp_session

    def _unsupported(self, what: str) -> Unsupported:
        return Unsupported(
            f"this ACP agent ({self.agent_type}) offers no {what}",
            details={"agent_type": self.agent_type, "feature": what},
        )

    async def get_modes(self) -> SessionModes:
        self._session_conn()
        if self._modes is not None:
            return self._modes
        mode = self._option(category="mode")
        if mode is None:
            raise self._unsupported("modes")
        return SessionModes(
            current_mode_id=mode.get("currentValue"),
            available_modes=[{"id": o["value"], "name": o["name"]} for o in _choices(mode)],
        )

    async def set_mode(self, mode: str) -> SessionModes:
        conn, session = self._session_conn()
        modes = await self.get_modes()
        ids = [m["id"] for m in modes.available_modes]
        if mode not in ids:
            raise NotFound(f"this agent has no mode {mode!r}", details={"modes": ids})
        if self._modes is None:  # modes offered only as a config option
            option = self._option(category="mode")
            assert option is not None
            await self.set_config_option(option["id"], mode)
            return await self.get_modes()
        await self._call("session/set_mode", conn.set_session_mode(session_id=session, mode_id=mode))
        self._modes = SessionModes(current_mode_id=mode, available_modes=modes.available_modes)
        return self._modes

    async def get_config_options(self) -> list[dict[str, Any]]:
        self._session_conn()
        if self._config is None:
            raise self._unsupported("config options")
        return self._config

    async def set_config_option(self, config_id: str, value: str | bool) -> list[dict[str, Any]]:
        conn, session = self._session_conn()
        options = await self.get_config_options()
        option = next((o for o in options if o.get("id") == config_id), None)
        if option is None:
            raise NotFound(
                f"this agent has no config option {config_id!r}",
                details={"config_options": [o.get("id") for o in options]},
            )
        if option.get("type") == "boolean" and not isinstance(value, bool):
            raise BadRequest(f"config option {config_id!r} takes true or false")
        if option.get("type") == "select":
            values = [c["value"] for c in _choices(option)]
            if not isinstance(value, str) or value not in values:
                raise BadRequest(
                    f"config option {config_id!r} takes one of {values}", details={"values": values}
                )
        resp = await self._call(
            "session/set_config_option",
            conn.set_config_option(config_id=config_id, session_id=session, value=value),
        )
        if resp is not None and resp.config_options is not None:
            self._offers(None, resp.config_options)
        else:
            option["currentValue"] = value
        return self._config or []

    async def set_model(self, model: str) -> list[dict[str, Any]]:
        """ACP offers the model as a config option of category "model" (session/set_config_option)."""
        self._session_conn()
        option = self._option(category="model")
        if option is None:
            raise self._unsupported("models")
        return await self.set_config_option(option["id"], model)

    def _option(self, *, category: str) -> dict[str, Any] | None:
        return next((o for o in self._config or [] if o.get("category") == category), None)

    async def prompt(self, text: str, timeout: float | None) -> PromptResult:
        async with self._lock:
            if self._closed:
                raise SessionClosed("the ACP session was closed")
            if self._conn is None or self._acp_session is None:
                raise PromptFailed("the ACP agent is not started")
            if self._pending_instructions:
                text = f"{self._pending_instructions}\n\n{text}"
                self._pending_instructions = None
            turn = self._turn = _Turn()
            self._cancelling = False
            task = asyncio.ensure_future(
                self._call(
                    "session/prompt",
                    self._conn.prompt(session_id=self._acp_session, prompt=[acp.text_block(text)]),
                )
            )
            try:
                done, _ = await asyncio.wait({task}, timeout=timeout)
                if not done:
                    # Ask the agent to stop, and give it a moment so it is idle for the next prompt.
                    await self.cancel()
                    await asyncio.wait({task}, timeout=self._cancel_grace)
                    raise PromptFailed(
                        f"the ACP agent did not finish the prompt within {timeout:g}s",
                        details={"reason": "timeout"},
                    )
                response = task.result()
            finally:
                if not task.done():
                    task.cancel()
                    with contextlib.suppress(BaseException):
                        await task
                elif not task.cancelled():
                    task.exception()  # retrieved here so an abandoned failure is not reported twice
                self._turn = None
            stop = str(response.stop_reason)
            self._emit({"type": "stop", "stop_reason": stop})
            usage = response.usage
            return PromptResult(
                stop_reason=stop,
                text="".join(turn.text),
                events=turn.events,
                tool_calls=turn.tool_calls,
                usage=None
                if usage is None
                else {
                    "input": usage.input_tokens,
                    "output": usage.output_tokens,
                    "cache_read": usage.cached_read_tokens or 0,
                    "cache_write": usage.cached_write_tokens or 0,
                    "total": usage.total_tokens,
                },
            )

    async def cancel(self) -> None:
        conn, session = self._conn, self._acp_session
        if self._closed or conn is None or session is None:
            return
        self._cancelling = True
        # A notification; if the agent is gone the write can fail or (acp's sender) never finish.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(conn.cancel(session_id=session), 2.0)

    async def close(self) -> None:
        """End the ACP connection (its requests fail as SessionClosed), then the agent process
        (``AgentProcess._stop``; stdout, no longer read by the connection, is read to EOF)."""
        if self._closed:
            return
        self._closed = True
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._conn.close(), 2.0)
        await self._stop(drain_stdout=True)

    # -- internals -------------------------------------------------------------------------------

    async def _call(self, what: str, request: Any) -> Any:
        """Await one ACP request, turning every way it can fail into PromptFailed (or SessionClosed)."""
        try:
            return await request
        except acp.RequestError as exc:
            if self._closed:
                raise SessionClosed("the ACP session was closed") from None
            raise PromptFailed(
                self._mask(
                    f"ACP agent error on {what}: {exc}" + (f" ({_short(exc.data)})" if exc.data else "")
                ),
                details={"method": what, "code": exc.code, "data": self._masked(exc.data)},
            ) from None
        except (ConnectionError, OSError):
            if self._closed:
                raise SessionClosed("the ACP session was closed") from None
            code = await self._last_words()
            state = f"exited with code {code}" if code is not None else "closed its connection"
            raise PromptFailed(
                f"ACP agent {self._command[0]!r} {state} during {what}{self._stderr_suffix()}",
                details={"method": what, "exit_code": code},
            ) from None
        except pydantic.ValidationError as exc:
            raise PromptFailed(
                f"ACP agent sent an invalid {what} response: {exc.error_count()} error(s)",
                details={"method": what, "errors": exc.errors(include_url=False, include_input=False)},
            ) from None

    def _on_update(self, update: Any) -> None:
        if isinstance(update, CurrentModeUpdate) and self._modes is not None:
            self._modes = SessionModes(
                current_mode_id=update.current_mode_id, available_modes=self._modes.available_modes
            )
        elif isinstance(update, ConfigOptionUpdate):
            self._offers(None, update.config_options)
        event = _describe(update)
        turn = self._turn
        if turn is not None:
            turn.events += 1
            if isinstance(update, AgentMessageChunk):
                text = _block_text(update.content)
                if text:
                    turn.text.append(text)
            elif isinstance(update, ToolCallStart):
                turn.tool_calls.append(update.title or update.kind or update.tool_call_id)
        if self._replaying:
            event["replay"] = True
        self._emit(event)

    def _exited(self) -> bool:
        return self._proc is None or self._proc.returncode is not None

    def _stderr_suffix(self) -> str:
        tail = self._stderr_tail()
        return f": {tail[-500:]}" if tail else ""


def _choices(option: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A select option's choices, flattened out of their groups."""
    out: list[dict[str, Any]] = []
    for choice in option.get("options") or []:
        if isinstance(choice, dict) and "value" in choice:
            out.append(choice)
        elif isinstance(choice, dict):
            out.extend(c for c in choice.get("options") or [] if isinstance(c, dict) and "value" in c)
    return out


def _short(value: Any, limit: int = 300) -> str:
    text = (value.get("details") or value.get("message")) if isinstance(value, dict) else None
    return str(text if text is not None else value)[:limit]


__all__ = ["AcpAgent", "AcpDriver", "TextFiles", "acp_agent"]
