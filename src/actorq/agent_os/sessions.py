"""Agent sessions of one VM: live drivers in memory, their metadata in the VM's persisted state.

Metadata (id, agent type, cwd, transcript location, status) lives in ``c.state["sessions"]`` so a
session outlives its process: after a sleep or restart it is ``stopped`` and resumes from the
agent's own transcript in the VM (``resume_session``, or the next ``send_prompt``). The ``env`` a
session was created with holds secrets, so it is kept only in this process's memory, never in the
state, on disk or in logs: after a restart, ``resume_session(..., env=...)`` passes it again.

A session's permission policy (its own, from ``create_session(permissions=...)``, else the VM
type's) is kept in its metadata; the drivers ask ``Approvals`` (``approvals.py``) for the verdict
on each tool call. The prompt in progress is remembered so a held call answered after a restart
can re-run it (``rerun``).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

from actorq.agent_os.agents.base import AgentControls, AgentDriver, DriverOptions, Launcher, Permit
from actorq.agent_os.agents.mcp import check_mcp_servers
from actorq.agent_os.agents.process import mask_secrets
from actorq.agent_os.approvals import Approvals, Verdict
from actorq.agent_os.files import VMFiles
from actorq.agent_os.host import HOME
from actorq.agent_os.permissions import Permissions, ToolRequest
from actorq.agent_os.sandbox import check_env, check_timeout
from actorq.agent_os.warm import CONFIG_FILES, Pool, Pooled
from actorq.errors import ActorqError, BadRequest, NotFound, SessionClosed, Unsupported
from actorq.vm_types import PromptResult, Session, SessionModes

T = TypeVar("T")
AgentFactory = Callable[[DriverOptions, VMFiles], AgentDriver]

# (vm actor id, session id) -> env; process memory only (secrets never reach disk)
_ENV: dict[tuple[str, str], dict[str, str]] = {}
# (vm actor id, session id) -> MCP servers (their env and headers are secrets too)
_MCP: dict[tuple[str, str], list[dict[str, Any]]] = {}


@dataclass
class _Live:
    driver: AgentDriver
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def _session(sid: str, meta: Mapping[str, Any]) -> Session:
    return Session(
        session_id=sid,
        agent_type=meta["agent_type"],
        cwd=meta["cwd"],
        created_at=meta["created_at"],
        status=meta["status"],
        transcript=meta.get("transcript"),
        warm=bool(meta.get("warm")),
    )


def _restore(table: dict[tuple[str, str], T], key: tuple[str, str], value: T | None) -> None:
    if value is None:
        table.pop(key, None)
    else:
        table[key] = value


def _name(what: str, value: Any) -> None:
    if not isinstance(value, str) or not value or len(value) > 1024 or "\0" in value:
        raise BadRequest(f"{what} is a non-empty string of at most 1024 characters without NUL")


class SessionManager:
    def __init__(
        self,
        actor_id: str,
        state: dict[str, Any],
        agents: Mapping[str, AgentFactory],
        fs: VMFiles,
        launcher: Launcher,
        emit: Callable[[str, Any], None],
        save: Callable[[], Any],
        *,
        approvals: Approvals | None = None,
        permissions: Permissions | None = None,
    ) -> None:
        self.actor_id = actor_id
        self.meta: dict[str, dict[str, Any]] = state.setdefault("sessions", {})
        self.agents = agents
        self.fs = fs
        self.launcher = launcher
        self.emit = emit
        self.save = save
        self.live: dict[str, _Live] = {}
        self.approvals = approvals
        self.permissions = permissions  # the VM type's policy; a session's own overrides it
        self._prompts: dict[str, str] = {}  # session id -> the prompt in progress
        self.pool: Pool | None = None  # warm agents (``warm.py``), set by the machine when it has one
        for m in self.meta.values():  # processes do not survive a sleep or restart
            if m["status"] in ("ready", "busy"):
                m["status"] = "stopped"

    def _meta(self, sid: str) -> dict[str, Any]:
        if not isinstance(sid, str) or sid not in self.meta:
            raise NotFound(f"no session {sid!r} in this VM", details={"sessions": sorted(self.meta)})
        return self.meta[sid]

    async def _start(self, sid: str, meta: dict[str, Any], resume: bool) -> _Live:
        factory = self.agents[meta["agent_type"]]
        opts = DriverOptions(
            session_id=sid,
            env=_ENV.get((self.actor_id, sid), {}),
            cwd=meta["cwd"],
            additional_instructions=meta.get("additional_instructions"),
            launcher=self.launcher,
            emit=self.emit,
            resume_from=meta.get("transcript") if resume else None,
            mcp_servers=_MCP.get((self.actor_id, sid), []),
            permit=self._permit(sid, meta),
        )
        driver = factory(opts, self.fs)
        await driver.start()
        live = _Live(driver)
        self.live[sid] = live
        meta["transcript"] = driver.transcript or meta.get("transcript")
        meta["status"] = "ready"
        await self.save()
        return live

    def _permit(self, sid: str, meta: Mapping[str, Any]) -> Permit | None:
        own = meta.get("permissions")
        policy = Permissions.parse(own) if own is not None else self.permissions
        approvals = self.approvals
        if policy is None or approvals is None:
            return None

        def mask(value: Any) -> Any:  # the session's secrets stay out of requests and their events
            return mask_secrets(value, _ENV.get((self.actor_id, sid), {}))

        async def permit(req: ToolRequest) -> Verdict:
            return await approvals.decide(sid, policy, req, self._prompts.get(sid), mask)

        return permit

    async def start_pooled(self, agent_type: str) -> Pooled:
        """Start an agent for the warm pool: no caller env, the home as cwd, no instructions."""
        sid = "ses_" + uuid.uuid4().hex[:16]
        stamp = await self._config_stamp(agent_type)
        opts = DriverOptions(
            session_id=sid,
            env={},
            cwd=HOME,
            additional_instructions=None,
            launcher=self.launcher,
            emit=self.emit,
            # the VM type's policy, fixed at start: only calls that bring none of their own take it
            permit=self._permit(sid, {}),
        )
        driver = self.agents[agent_type](opts, self.fs)
        try:
            await driver.start()
        except BaseException:  # cancelled (the VM sleeps) or failed: leave no process behind
            await driver.close()
            raise
        return Pooled(agent_type, sid, driver, stamp)

    async def _config_stamp(self, agent_type: str) -> tuple[object, ...]:
        """(size, mtime) of the files the agent type reads at start; ``None`` for a missing one."""
        out: list[object] = []
        for path in CONFIG_FILES.get(agent_type, ()):
            try:
                st = await self.fs.stat(path)
            except (ActorqError, OSError):
                out.append(None)
            else:
                out.append((st.size, st.mtime))
        return tuple(out)

    async def _take_warm(
        self, agent_type: str, env: dict[str, str], cwd: str, additional_instructions: str | None
    ) -> Pooled | None:
        """A pooled agent for this call, if the pool has one that can serve it (``warm.py``)."""
        if self.pool is None or env or cwd != HOME:
            return None
        stamp: tuple[object, ...] | None = None
        while (pooled := await self.pool.take(agent_type)) is not None:
            if stamp is None:
                stamp = await self._config_stamp(agent_type)
            if pooled.stamp == stamp:
                break
            await pooled.driver.close()  # started before its config files changed: stale
        if pooled is not None and additional_instructions:
            instruct = getattr(pooled.driver, "instruct", None)
            if instruct is None:  # instructions only on its command line (pi): it cannot serve this
                self.pool.put_back(pooled)
                return None
            instruct(additional_instructions)
        return pooled

    async def create(
        self,
        agent_type: str,
        *,
        env: Mapping[str, str] | None,
        cwd: str,
        additional_instructions: str | None,
        mcp_servers: list[dict[str, Any]] | None = None,
        permissions: Any = None,
    ) -> Session:
        if agent_type not in self.agents:
            raise NotFound(f"unknown agent type {agent_type!r}", details={"agent_types": sorted(self.agents)})
        if additional_instructions is not None and not isinstance(additional_instructions, str):
            raise BadRequest("additional_instructions is a string")
        policy = Permissions.parse(permissions)  # ValidationError before anything starts
        vm_cwd = await self.fs.cwd(cwd)
        servers = check_mcp_servers(mcp_servers)
        checked = check_env(env)
        # a pooled agent was started under the VM type's policy and without MCP servers: a session
        # with a policy or MCP servers of its own starts cold
        warm = None
        if policy is None and not servers:
            warm = await self._take_warm(agent_type, checked, vm_cwd, additional_instructions)
        if warm is not None:
            return await self._adopt(agent_type, warm, additional_instructions)
        sid = "ses_" + uuid.uuid4().hex[:16]
        _ENV[(self.actor_id, sid)] = checked
        if servers:
            _MCP[(self.actor_id, sid)] = servers
        meta: dict[str, Any] = {
            "agent_type": agent_type,
            "cwd": vm_cwd,
            "created_at": time.time(),
            "status": "starting",
            "transcript": None,
            "additional_instructions": additional_instructions,
        }
        if policy is not None:
            meta["permissions"] = policy.to_dict()
        try:
            self.meta[sid] = meta
            await self._start(sid, meta, resume=False)
        except BaseException:
            self.meta.pop(sid, None)
            _ENV.pop((self.actor_id, sid), None)
            _MCP.pop((self.actor_id, sid), None)
            raise
        session = _session(sid, meta)
        self.emit("session_created", asdict(session))
        return session

    async def _adopt(self, agent_type: str, warm: Pooled, additional_instructions: str | None) -> Session:
        """A pooled agent becomes a session: recorded, live, announced, as a cold one would be."""
        sid = warm.session_id
        _ENV[(self.actor_id, sid)] = {}
        meta: dict[str, Any] = {
            "agent_type": agent_type,
            "cwd": HOME,
            "created_at": time.time(),
            "status": "ready",
            "transcript": warm.driver.transcript,
            "additional_instructions": additional_instructions,
            "warm": True,
        }
        self.meta[sid] = meta
        self.live[sid] = _Live(warm.driver)
        try:
            await self.save()
        except BaseException:
            self.meta.pop(sid, None)
            self.live.pop(sid, None)
            _ENV.pop((self.actor_id, sid), None)
            await warm.driver.close()
            raise
        session = _session(sid, meta)
        self.emit("session_created", asdict(session))
        return session

    async def _live(self, sid: str) -> _Live:
        meta = self._meta(sid)
        if meta["status"] == "closed":
            raise SessionClosed(f"session {sid} is closed")
        live = self.live.get(sid)
        if live is None:
            live = await self._start(sid, meta, resume=True)
        return live

    async def prompt(self, sid: str, prompt: str, timeout: float | None) -> PromptResult:
        if not isinstance(prompt, str) or not prompt:
            raise BadRequest("prompt is a non-empty string")
        timeout = check_timeout(timeout)
        live = await self._live(sid)
        async with live.lock:
            meta = self._meta(sid)
            if meta["status"] == "closed":
                raise SessionClosed(f"session {sid} is closed")
            meta["status"] = "busy"
            self._prompts[sid] = prompt
            try:
                result = await live.driver.prompt(prompt, timeout)
            finally:
                self._prompts.pop(sid, None)
                if self.approvals is not None and self.live.get(sid) is live:
                    # the turn is over and the agent lives on: nobody waits on its requests any more
                    # (an agent stopped under it, by a sleep or the disk cap, leaves them resumable)
                    await self.approvals.cancel(sid, waiting_only=True)
                if meta["status"] == "busy":
                    meta["status"] = "ready"
                meta["transcript"] = live.driver.transcript or meta.get("transcript")
                await self.save()
        return result

    async def cancel(self, sid: str) -> bool:
        meta = self._meta(sid)
        if meta["status"] == "closed":
            raise SessionClosed(f"session {sid} is closed")
        live = self.live.get(sid)
        if live is None or not live.lock.locked():
            return False
        if self.approvals is not None:  # a held tool call would keep the agent from winding down
            await self.approvals.cancel(sid, waiting_only=True)
        await live.driver.cancel()
        return True

    async def close(self, sid: str) -> Session:
        meta = self._meta(sid)
        live = self.live.pop(sid, None)
        if live is not None:
            await live.driver.close()
        meta["status"] = "closed"
        if self.approvals is not None:
            await self.approvals.cancel(sid)
        _ENV.pop((self.actor_id, sid), None)
        _MCP.pop((self.actor_id, sid), None)
        await self.save()
        session = _session(sid, meta)
        self.emit("session_closed", {"session_id": sid})
        return session

    async def resume(
        self, sid: str, env: Mapping[str, str] | None, mcp_servers: list[dict[str, Any]] | None = None
    ) -> Session:
        meta = self._meta(sid)
        if meta["status"] == "closed":
            raise SessionClosed(f"session {sid} is closed")
        servers = check_mcp_servers(mcp_servers) if mcp_servers is not None else None
        if servers is not None and sid in self.live:
            raise BadRequest(
                "the session's agent is running with its MCP servers; they are given again only to a "
                "stopped session (after a restart or sleep)"
            )
        key = (self.actor_id, sid)
        before_env, before_mcp = _ENV.get(key), _MCP.get(key)
        if env is not None:
            _ENV[key] = check_env(env)
        if servers is not None:
            _MCP[key] = servers
        if sid not in self.live:
            try:
                await self._start(sid, meta, resume=True)
            except BaseException:  # e.g. MCP servers this agent does not take: keep what it had
                _restore(_ENV, key, before_env)
                _restore(_MCP, key, before_mcp)
                raise
        return _session(sid, meta)

    async def controls(self, sid: str, what: str) -> AgentControls:
        """The live driver of a session, if it offers session controls (else Unsupported)."""
        driver = (await self._live(sid)).driver
        if not isinstance(driver, AgentControls):
            raise Unsupported(
                f"{driver.agent_type} sessions do not offer {what}",
                details={"agent_type": driver.agent_type, "feature": what},
            )
        return driver

    async def get_modes(self, sid: str) -> SessionModes:
        return await (await self.controls(sid, "modes")).get_modes()

    async def set_mode(self, sid: str, mode: str) -> SessionModes:
        _name("mode", mode)
        return await (await self.controls(sid, "modes")).set_mode(mode)

    async def get_config_options(self, sid: str) -> list[dict[str, Any]]:
        return await (await self.controls(sid, "config options")).get_config_options()

    async def set_config_option(self, sid: str, config_id: str, value: str | bool) -> list[dict[str, Any]]:
        _name("config_id", config_id)
        if not isinstance(value, bool):
            _name("value", value)
        return await (await self.controls(sid, "config options")).set_config_option(config_id, value)

    async def set_model(self, sid: str, model: str) -> list[dict[str, Any]]:
        _name("model", model)
        return await (await self.controls(sid, "models")).set_model(model)

    def list(self) -> list[Session]:
        return [_session(sid, m) for sid, m in self.meta.items()]

    async def stop_all(self) -> None:
        """The VM sleeps: stop every agent process (the warm pool's too); sessions (and their held
        tool calls) stay resumable."""
        if self.pool is not None:
            await self.pool.close()
        for sid, live in list(self.live.items()):
            try:
                await live.driver.close()
            finally:
                self.live.pop(sid, None)
                if self.meta.get(sid, {}).get("status") in ("ready", "busy"):
                    self.meta[sid]["status"] = "stopped"

    async def rerun(self, sid: str, request_id: str) -> PromptResult | None:
        """A held tool call was answered after its agent was gone (a restart, the VM slept): start
        the agent again from its transcript and send the interrupted prompt again; the agent's
        same call then gets the stored answer (``Approvals.decide``). ``None`` if there is nothing
        to re-run (already re-run, the session closed, a newer prompt holds the session)."""
        approvals = self.approvals
        rec = approvals.resumable(sid, request_id) if approvals is not None else None
        if rec is None or approvals is None or self.meta.get(sid, {}).get("status") == "closed":
            return None
        live = self.live.get(sid)
        if live is not None and live.lock.locked():
            return None  # someone prompts it now: their turn decides (the answer stays stored)
        try:
            return await self.prompt(sid, rec["prompt"], None)
        finally:
            if rec.get("resume"):  # the re-run never asked for that call again
                rec["resume"] = False
                await self.save()
