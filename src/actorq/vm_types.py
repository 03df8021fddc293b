"""The results of the agent VM's built-in actions, and a typed handle listing those actions.

Shared by the agent VM (which returns these objects), the server (which names their type in an
action's answer), both clients (which rebuild them from that name) and the core's in-process
handles, so ``(await vm.exec("ls")).exit_code`` holds inside an actor and through either client.

Each result also reads like the dict earlier versions of the clients returned
(``r["exit_code"]``), so code written against those keeps working.

A shared leaf: imports only :mod:`actorq._typing` and :mod:`actorq.errors`, never a layer.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, cast

from actorq._typing import decode_bytes
from actorq.errors import ActorqError

HOME = "/home/user"  # a VM's home and the default working directory of its actions


class _Fields:
    """Read access by field name, as the dicts the clients used to return allowed."""

    __slots__ = ()

    def __getitem__(self, key: str) -> Any:
        if key not in _field_names(type(self)):
            raise KeyError(key)
        return getattr(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key) if key in _field_names(type(self)) else default

    def __contains__(self, key: object) -> bool:
        return key in _field_names(type(self))

    def keys(self) -> list[str]:
        return list(_field_names(type(self)))


def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cast(Any, cls)))


# -- agent sessions ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Session(_Fields):
    """One agent session of a VM (``vm.create_session`` returns it)."""

    session_id: str
    agent_type: str
    cwd: str = HOME
    created_at: float = 0.0
    status: str = "ready"  # "ready" | "busy" | "closed" | "stopped" (process gone; resumable)
    transcript: str | None = None  # VM path of the agent's own session file, used to resume
    warm: bool = False  # create_session handed out an agent the VM's warm pool had started


@dataclass(frozen=True)
class PromptResult(_Fields):
    """What ``send_prompt`` returns: why the agent stopped and its final assistant text."""

    stop_reason: str
    text: str
    events: int = 0  # how many agent events this prompt produced
    tool_calls: list[str] = field(default_factory=list)  # names of the tools the agent ran
    # tokens this prompt used, when the agent reports them: "input", "output", "cache_read",
    # "cache_write" (and "total"); None when it does not
    usage: dict[str, int] | None = None


@dataclass(frozen=True)
class SessionModes(_Fields):
    """An agent session's modes (``get_modes`` / ``set_mode``): the current one and the choices,
    each ``{"id", "name", "description"}`` as the agent describes it."""

    current_mode_id: str | None
    available_modes: list[dict[str, Any]] = field(default_factory=list)


# -- processes -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ExecResult(_Fields):
    exit_code: int
    stdout: str
    stderr: str
    timed_out: bool = False
    truncated: bool = False
    duration_ms: float = 0.0


@dataclass(frozen=True)
class SpawnedProcess(_Fields):
    """What ``spawn`` returns at once; its output arrives as ``process_output`` events."""

    pid: int
    command: str
    args: list[str]


@dataclass(frozen=True)
class ProcessInfo(_Fields):
    pid: int
    command: str
    args: list[str]
    running: bool
    exit_code: int | None
    started_at: float
    stdout_tail: str = ""
    stderr_tail: str = ""


# -- files ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FileStat(_Fields):
    path: str
    size: int
    is_directory: bool
    is_file: bool
    is_symlink: bool
    mode: int
    mtime: float


@dataclass(frozen=True)
class DirEntry(_Fields):
    path: str  # VM path
    name: str
    is_directory: bool
    size: int


@dataclass(frozen=True)
class BatchReadResult(_Fields):
    """One item of ``read_files``: the file's content, or the error it met (agentOS's fields)."""

    path: str
    content: bytes | None = None
    error: dict[str, Any] | None = None  # the typed error's wire form: code, message, ...


@dataclass(frozen=True)
class BatchWriteResult(_Fields):
    """One item of ``write_files``: whether it was written, or the error it met (agentOS's fields)."""

    path: str
    success: bool = True
    error: dict[str, Any] | None = None


# -- network and cron ----------------------------------------------------------------------------
@dataclass(frozen=True)
class FetchResult(_Fields):
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class PreviewUrl(_Fields):
    """A signed URL that serves a VM port over the actorq server (``create_signed_preview_url``):
    ``url`` is the path on the server (``/v1/preview/<token>/``), opened without the API token."""

    id: str
    url: str
    port: int
    expires_at: float


@dataclass(frozen=True)
class CronJob(_Fields):
    """A cron job as ``schedule_cron`` / ``list_cron_jobs`` show it."""

    id: str
    schedule: str
    action: dict[str, Any]
    next_run: float
    created_at: float
    last_run: float | None = None
    last_result: Any = None
    runs: int = 0


@dataclass(frozen=True)
class PermissionRequest(_Fields):
    """A tool call an agent asked for and its VM's policy holds for an answer
    (``list_permission_requests``, ``respond_permission``, the ``permission_request`` event)."""

    request_id: str
    session_id: str
    tool: str  # the agent's name for the tool (pi: "bash"; ACP agents: the kind)
    kind: str  # read | edit | delete | move | search | execute | think | fetch | other
    title: str = ""
    command: str | None = None
    paths: list[str] = field(default_factory=list)
    hosts: list[str] = field(default_factory=list)
    input: Any = None  # the tool's arguments
    status: str = "pending"  # "pending" | "allowed" | "denied" | "cancelled"
    created_at: float = 0.0
    expires_at: float = 0.0  # then it gets the policy's on_timeout answer
    answered_at: float | None = None
    answered_by: str | None = None  # "client" | "timeout" | "cancel"


def _policy(value: Any) -> Any:
    """A permissions policy as it travels to the VM: its JSON form (``to_dict``) if it has one."""
    to_dict = getattr(value, "to_dict", None)
    return to_dict() if callable(to_dict) else value


# -- event history -------------------------------------------------------------------------------
@dataclass(frozen=True)
class EventPage(_Fields):
    """A page of a VM's numbered events (``get_events`` / ``get_session_events``).

    ``events``: ``{"seq", "time", "name", "data"}`` each, oldest first, ``data`` as it was broadcast
    (its ``seq`` included); ``first_seq``: from it on, the VM let no event go; ``last_seq``: the
    newest it recorded; ``next_since``: the ``since`` of the next page; ``more``: a next page
    holds more; ``dropped``: events after the ``since`` asked for are gone (older than ``first_seq``).
    """

    events: list[dict[str, Any]]
    first_seq: int
    last_seq: int
    next_since: int
    more: bool = False
    dropped: bool = False


@dataclass(frozen=True)
class VMUsage(_Fields):
    """A VM's limits and what it uses now (``get_usage``).

    ``limits``: ``memory_bytes``, ``cpus`` (cores), ``pids``, ``disk_bytes`` (``/home/user``) and
    ``tmp_bytes`` as the VM type declares them (``None``: no limit). ``cgroups``: the memory, CPU
    and process limits are enforced by cgroups (else by rlimits, and the usage fields from them are
    ``None``). Usage: ``memory_bytes`` (now) and ``memory_peak_bytes`` of all the VM's processes,
    ``pids`` (processes and threads now), ``cpu_seconds`` (used since it woke), ``oom_kills`` and
    ``forks_refused`` (at the limits), ``disk_bytes`` (``/home/user``, measured when asked) and
    ``disk_over`` (over its disk limit: processes stopped, writes refused).
    """

    limits: dict[str, Any]
    cgroups: bool = False
    memory_bytes: int | None = None
    memory_peak_bytes: int | None = None
    pids: int | None = None
    cpu_seconds: float | None = None
    oom_kills: int | None = None
    forks_refused: int | None = None
    disk_bytes: int | None = None
    disk_over: bool = False


RESULT_TYPES: dict[str, type] = {
    cls.__name__: cls
    for cls in (
        Session,
        PromptResult,
        SessionModes,
        ExecResult,
        SpawnedProcess,
        ProcessInfo,
        FileStat,
        DirEntry,
        BatchReadResult,
        BatchWriteResult,
        FetchResult,
        PreviewUrl,
        CronJob,
        PermissionRequest,
        EventPage,
        VMUsage,
    )
}
_NAMES: dict[type, str] = {cls: name for name, cls in RESULT_TYPES.items()}


def result_type(value: Any) -> str | None:
    """The name an action's answer gives its result: ``"ExecResult"``, ``"list[Session]"``, or
    ``None`` for anything that is not one of these types (plain JSON, bytes, an empty list)."""
    name = _NAMES.get(type(value))
    if name is not None:
        return name
    if isinstance(value, list) and value:
        first = _NAMES.get(type(value[0]))
        if first is not None and all(type(v) is type(value[0]) for v in value):
            return f"list[{first}]"
    return None


def _build(cls: type, data: Any) -> Any:
    if not isinstance(data, dict):
        raise ActorqError(f"unexpected answer from the server: a {cls.__name__} is an object")
    # a newer server may send fields this version does not know: leave them out
    known = {k: v for k, v in data.items() if k in _field_names(cls)}
    try:
        return cls(**known)
    except TypeError as exc:
        raise ActorqError(f"unexpected answer from the server: not a {cls.__name__} ({exc})") from None


def typed_result(data: Any, type_name: str | None) -> Any:
    """An action's result as the answer carries it (bytes already decoded) rebuilt as the type
    it names; an unknown name (a newer server's type) leaves the plain JSON value."""
    if not type_name:
        return data
    many = type_name.startswith("list[") and type_name.endswith("]")
    cls = RESULT_TYPES.get(type_name[5:-1] if many else type_name)
    if cls is None:
        return data
    if many:
        if not isinstance(data, list):
            raise ActorqError(f"unexpected answer from the server: {type_name} is a list")
        return [_build(cls, item) for item in data]
    return _build(cls, data)


def decode_result(data: Any, type_name: str | None) -> Any:
    """:func:`typed_result` of an answer still holding ``{"$bytes": ...}`` values."""
    return typed_result(decode_bytes(data), type_name)


# -- typed VM handles ----------------------------------------------------------------------------
class AgentOSActions:
    """Every built-in action of an agent VM, with its signature and result type.

    Mixed into the in-process handle (``c.actors.agent_os("vm")``) and the async client's handle
    (``client.agent_os("vm")``); each method is a call of the action of the same name.
    """

    async def action(self, name: str, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError  # the handle this is mixed into calls the action

    # sessions
    async def create_session(
        self,
        agent_type: str,
        *,
        env: dict[str, str] | None = None,
        cwd: str = HOME,
        additional_instructions: str | None = None,
        mcp_servers: list[dict[str, Any]] | None = None,
        permissions: Any = None,  # a Permissions (actorq.agent_os.permissions) or its to_dict() form
    ) -> Session:
        return cast(
            Session,
            await self.action(
                "create_session",
                agent_type,
                env=env,
                cwd=cwd,
                additional_instructions=additional_instructions,
                mcp_servers=mcp_servers,
                permissions=_policy(permissions),
            ),
        )

    async def get_modes(self, session_id: str) -> SessionModes:
        return cast(SessionModes, await self.action("get_modes", session_id))

    async def set_mode(self, session_id: str, mode: str) -> SessionModes:
        return cast(SessionModes, await self.action("set_mode", session_id, mode))

    async def get_config_options(self, session_id: str) -> list[dict[str, Any]]:
        return cast(list[dict[str, Any]], await self.action("get_config_options", session_id))

    async def set_config_option(
        self, session_id: str, config_id: str, value: str | bool
    ) -> list[dict[str, Any]]:
        return cast(
            list[dict[str, Any]], await self.action("set_config_option", session_id, config_id, value)
        )

    async def set_model(self, session_id: str, model: str) -> list[dict[str, Any]]:
        return cast(list[dict[str, Any]], await self.action("set_model", session_id, model))

    async def send_prompt(
        self, session_id: str, prompt: str, *, timeout: float | None = None
    ) -> PromptResult:
        return cast(PromptResult, await self.action("send_prompt", session_id, prompt, timeout=timeout))

    async def cancel_prompt(self, session_id: str) -> bool:
        return cast(bool, await self.action("cancel_prompt", session_id))

    async def close_session(self, session_id: str) -> Session:
        return cast(Session, await self.action("close_session", session_id))

    async def list_sessions(self) -> list[Session]:
        return cast(list[Session], await self.action("list_sessions"))

    async def resume_session(
        self,
        session_id: str,
        *,
        env: dict[str, str] | None = None,
        mcp_servers: list[dict[str, Any]] | None = None,
    ) -> Session:
        return cast(
            Session, await self.action("resume_session", session_id, env=env, mcp_servers=mcp_servers)
        )

    # files
    async def read_file(self, path: str) -> bytes:
        return cast(bytes, await self.action("read_file", path))

    async def write_file(self, path: str, data: str | bytes) -> int:
        return cast(int, await self.action("write_file", path, data))

    async def read_files(self, paths: list[str]) -> list[BatchReadResult]:
        return cast(list[BatchReadResult], await self.action("read_files", paths))

    async def write_files(self, files: list[dict[str, Any]]) -> list[BatchWriteResult]:
        return cast(list[BatchWriteResult], await self.action("write_files", files))

    async def mkdir(self, path: str) -> None:
        await self.action("mkdir", path)

    async def readdir(self, path: str = HOME) -> list[str]:
        return cast(list[str], await self.action("readdir", path))

    async def readdir_recursive(self, path: str = HOME) -> list[DirEntry]:
        return cast(list[DirEntry], await self.action("readdir_recursive", path))

    async def stat(self, path: str) -> FileStat:
        return cast(FileStat, await self.action("stat", path))

    async def exists(self, path: str) -> bool:
        return cast(bool, await self.action("exists", path))

    async def move(self, src: str, dst: str) -> None:
        await self.action("move", src, dst)

    async def delete_file(self, path: str, *, recursive: bool = False) -> None:
        await self.action("delete_file", path, recursive=recursive)

    # processes
    async def exec(
        self,
        command: str,
        *,
        cwd: str = HOME,
        env: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> ExecResult:
        return cast(ExecResult, await self.action("exec", command, cwd=cwd, env=env, timeout=timeout))

    async def spawn(
        self,
        command: str,
        args: list[str] | None = None,
        *,
        cwd: str = HOME,
        env: dict[str, str] | None = None,
    ) -> SpawnedProcess:
        return cast(SpawnedProcess, await self.action("spawn", command, args, cwd=cwd, env=env))

    async def wait_process(self, pid: int, *, timeout: float | None = None) -> int | None:
        return cast("int | None", await self.action("wait_process", pid, timeout=timeout))

    async def list_processes(self) -> list[ProcessInfo]:
        return cast(list[ProcessInfo], await self.action("list_processes"))

    async def kill_process(self, pid: int, *, signal: int = 9) -> None:
        await self.action("kill_process", pid, signal=signal)

    async def write_process_stdin(self, pid: int, data: str | bytes) -> int:
        return cast(int, await self.action("write_process_stdin", pid, data))

    async def close_process_stdin(self, pid: int) -> None:
        await self.action("close_process_stdin", pid)

    # shells
    async def open_shell(
        self,
        *,
        command: str | None = None,
        cols: int = 80,
        rows: int = 24,
        cwd: str = HOME,
        env: dict[str, str] | None = None,
    ) -> str:
        return cast(
            str, await self.action("open_shell", command=command, cols=cols, rows=rows, cwd=cwd, env=env)
        )

    async def write_shell(self, shell_id: str, data: str | bytes) -> int:
        return cast(int, await self.action("write_shell", shell_id, data))

    async def resize_shell(self, shell_id: str, cols: int, rows: int) -> None:
        await self.action("resize_shell", shell_id, cols, rows)

    async def close_shell(self, shell_id: str) -> None:
        await self.action("close_shell", shell_id)

    # event history
    async def get_events(self, *, since: int = 0, limit: int = 1000) -> EventPage:
        return cast(EventPage, await self.action("get_events", since=since, limit=limit))

    async def get_session_events(self, session_id: str, *, since: int = 0, limit: int = 1000) -> EventPage:
        return cast(EventPage, await self.action("get_session_events", session_id, since=since, limit=limit))

    # limits and usage
    async def get_usage(self) -> VMUsage:
        return cast(VMUsage, await self.action("get_usage"))

    # network
    async def vm_fetch(
        self,
        port: int,
        url: str = "/",
        *,
        method: str = "GET",
        headers: dict[str, str] | None = None,
        body: str | bytes | None = None,
    ) -> FetchResult:
        return cast(
            FetchResult,
            await self.action("vm_fetch", port, url, method=method, headers=headers, body=body),
        )

    async def create_signed_preview_url(self, port: int, ttl: float = 3600.0) -> PreviewUrl:
        return cast(PreviewUrl, await self.action("create_signed_preview_url", port, ttl))

    async def expire_signed_preview_url(self, url_or_id: str) -> bool:
        return cast(bool, await self.action("expire_signed_preview_url", url_or_id))

    async def list_preview_urls(self) -> list[PreviewUrl]:
        return cast(list[PreviewUrl], await self.action("list_preview_urls"))

    async def preview_request(self, token: str, request: dict[str, Any]) -> FetchResult:
        return cast(FetchResult, await self.action("preview_request", token, request))

    # cron
    async def schedule_cron(self, schedule: str, action: dict[str, Any]) -> CronJob:
        return cast(CronJob, await self.action("schedule_cron", schedule, action))

    async def list_cron_jobs(self) -> list[CronJob]:
        return cast(list[CronJob], await self.action("list_cron_jobs"))

    async def cancel_cron_job(self, job_id: str) -> bool:
        return cast(bool, await self.action("cancel_cron_job", job_id))

    # permissions
    async def list_permission_requests(self, session_id: str | None = None) -> list[PermissionRequest]:
        return cast(
            list[PermissionRequest], await self.action("list_permission_requests", session_id=session_id)
        )

    async def respond_permission(self, session_id: str, request_id: str, decision: str) -> PermissionRequest:
        return cast(
            PermissionRequest, await self.action("respond_permission", session_id, request_id, decision)
        )


class SyncAgentOSActions:
    """:class:`AgentOSActions` for the sync client (``create_sync_client(...).agent_os("vm")``)."""

    def action(self, name: str, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError  # the handle this is mixed into calls the action

    def create_session(
        self,
        agent_type: str,
        *,
        env: dict[str, str] | None = None,
        cwd: str = HOME,
        additional_instructions: str | None = None,
        mcp_servers: list[dict[str, Any]] | None = None,
        permissions: Any = None,  # a Permissions (actorq.agent_os.permissions) or its to_dict() form
    ) -> Session:
        return cast(
            Session,
            self.action(
                "create_session",
                agent_type,
                env=env,
                cwd=cwd,
                additional_instructions=additional_instructions,
                mcp_servers=mcp_servers,
                permissions=_policy(permissions),
            ),
        )

    def get_modes(self, session_id: str) -> SessionModes:
        return cast(SessionModes, self.action("get_modes", session_id))

    def set_mode(self, session_id: str, mode: str) -> SessionModes:
        return cast(SessionModes, self.action("set_mode", session_id, mode))

    def get_config_options(self, session_id: str) -> list[dict[str, Any]]:
        return cast(list[dict[str, Any]], self.action("get_config_options", session_id))

    def set_config_option(self, session_id: str, config_id: str, value: str | bool) -> list[dict[str, Any]]:
        return cast(list[dict[str, Any]], self.action("set_config_option", session_id, config_id, value))

    def set_model(self, session_id: str, model: str) -> list[dict[str, Any]]:
        return cast(list[dict[str, Any]], self.action("set_model", session_id, model))

    def send_prompt(self, session_id: str, prompt: str, *, timeout: float | None = None) -> PromptResult:
        return cast(PromptResult, self.action("send_prompt", session_id, prompt, timeout=timeout))

    def cancel_prompt(self, session_id: str) -> bool:
        return cast(bool, self.action("cancel_prompt", session_id))

    def close_session(self, session_id: str) -> Session:
        return cast(Session, self.action("close_session", session_id))

    def list_sessions(self) -> list[Session]:
        return cast(list[Session], self.action("list_sessions"))

    def resume_session(
        self,
        session_id: str,
        *,
        env: dict[str, str] | None = None,
        mcp_servers: list[dict[str, Any]] | None = None,
    ) -> Session:
        return cast(Session, self.action("resume_session", session_id, env=env, mcp_servers=mcp_servers))

    def read_file(self, path: str) -> bytes:
        return cast(bytes, self.action("read_file", path))

    def write_file(self, path: str, data: str | bytes) -> int:
        return cast(int, self.action("write_file", path, data))

    def read_files(self, paths: list[str]) -> list[BatchReadResult]:
        return cast(list[BatchReadResult], self.action("read_files", paths))

    def write_files(self, files: list[dict[str, Any]]) -> list[BatchWriteResult]:
        return cast(list[BatchWriteResult], self.action("write_files", files))

    def mkdir(self, path: str) -> None:
        self.action("mkdir", path)

    def readdir(self, path: str = HOME) -> list[str]:
        return cast(list[str], self.action("readdir", path))

    def readdir_recursive(self, path: str = HOME) -> list[DirEntry]:
        return cast(list[DirEntry], self.action("readdir_recursive", path))

    def stat(self, path: str) -> FileStat:
        return cast(FileStat, self.action("stat", path))

    def exists(self, path: str) -> bool:
        return cast(bool, self.action("exists", path))

    def move(self, src: str, dst: str) -> None:
        self.action("move", src, dst)

    def delete_file(self, path: str, *, recursive: bool = False) -> None:
        self.action("delete_file", path, recursive=recursive)

    def exec(
        self,
        command: str,
        *,
        cwd: str = HOME,
        env: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> ExecResult:
        return cast(ExecResult, self.action("exec", command, cwd=cwd, env=env, timeout=timeout))

    def spawn(
        self,
        command: str,
        args: list[str] | None = None,
        *,
        cwd: str = HOME,
        env: dict[str, str] | None = None,
    ) -> SpawnedProcess:
        return cast(SpawnedProcess, self.action("spawn", command, args, cwd=cwd, env=env))

    def wait_process(self, pid: int, *, timeout: float | None = None) -> int | None:
        return cast("int | None", self.action("wait_process", pid, timeout=timeout))

    def list_processes(self) -> list[ProcessInfo]:
        return cast(list[ProcessInfo], self.action("list_processes"))

    def kill_process(self, pid: int, *, signal: int = 9) -> None:
        self.action("kill_process", pid, signal=signal)

    def write_process_stdin(self, pid: int, data: str | bytes) -> int:
        return cast(int, self.action("write_process_stdin", pid, data))

    def close_process_stdin(self, pid: int) -> None:
        self.action("close_process_stdin", pid)

    # shells
    def open_shell(
        self,
        *,
        command: str | None = None,
        cols: int = 80,
        rows: int = 24,
        cwd: str = HOME,
        env: dict[str, str] | None = None,
    ) -> str:
        return cast(str, self.action("open_shell", command=command, cols=cols, rows=rows, cwd=cwd, env=env))

    def write_shell(self, shell_id: str, data: str | bytes) -> int:
        return cast(int, self.action("write_shell", shell_id, data))

    def resize_shell(self, shell_id: str, cols: int, rows: int) -> None:
        self.action("resize_shell", shell_id, cols, rows)

    def close_shell(self, shell_id: str) -> None:
        self.action("close_shell", shell_id)

    # event history
    def get_events(self, *, since: int = 0, limit: int = 1000) -> EventPage:
        return cast(EventPage, self.action("get_events", since=since, limit=limit))

    def get_session_events(self, session_id: str, *, since: int = 0, limit: int = 1000) -> EventPage:
        return cast(EventPage, self.action("get_session_events", session_id, since=since, limit=limit))

    def get_usage(self) -> VMUsage:
        return cast(VMUsage, self.action("get_usage"))

    def vm_fetch(
        self,
        port: int,
        url: str = "/",
        *,
        method: str = "GET",
        headers: dict[str, str] | None = None,
        body: str | bytes | None = None,
    ) -> FetchResult:
        return cast(
            FetchResult, self.action("vm_fetch", port, url, method=method, headers=headers, body=body)
        )

    def create_signed_preview_url(self, port: int, ttl: float = 3600.0) -> PreviewUrl:
        return cast(PreviewUrl, self.action("create_signed_preview_url", port, ttl))

    def expire_signed_preview_url(self, url_or_id: str) -> bool:
        return cast(bool, self.action("expire_signed_preview_url", url_or_id))

    def list_preview_urls(self) -> list[PreviewUrl]:
        return cast(list[PreviewUrl], self.action("list_preview_urls"))

    def preview_request(self, token: str, request: dict[str, Any]) -> FetchResult:
        return cast(FetchResult, self.action("preview_request", token, request))

    def schedule_cron(self, schedule: str, action: dict[str, Any]) -> CronJob:
        return cast(CronJob, self.action("schedule_cron", schedule, action))

    def list_cron_jobs(self) -> list[CronJob]:
        return cast(list[CronJob], self.action("list_cron_jobs"))

    def cancel_cron_job(self, job_id: str) -> bool:
        return cast(bool, self.action("cancel_cron_job", job_id))

    def list_permission_requests(self, session_id: str | None = None) -> list[PermissionRequest]:
        return cast(list[PermissionRequest], self.action("list_permission_requests", session_id=session_id))

    def respond_permission(self, session_id: str, request_id: str, decision: str) -> PermissionRequest:
        return cast(PermissionRequest, self.action("respond_permission", session_id, request_id, decision))


__all__ = [
    "RESULT_TYPES",
    "AgentOSActions",
    "BatchReadResult",
    "BatchWriteResult",
    "CronJob",
    "DirEntry",
    "ExecResult",
    "FetchResult",
    "FileStat",
    "ProcessInfo",
    "PromptResult",
    "Session",
    "SpawnedProcess",
    "SyncAgentOSActions",
    "VMUsage",
    "decode_result",
    "result_type",
    "typed_result",
]
