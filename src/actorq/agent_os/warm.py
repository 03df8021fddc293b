"""Warm sessions: agent processes started ahead of ``create_session``, per VM key and agent type.

``agent_os(..., warm_pool=2)`` keeps two started agents of every agent type of the VM ready while
it is awake (``warm_pool={"pi": 2}``: only the types named). The pool belongs to one awake VM
(one key): it fills in the background when the VM wakes, hands a ready agent to a
``create_session`` that it can serve (the call then costs no process start), refills behind it,
and is stopped with the VM's other processes when the VM sleeps (or goes over its disk cap).

What a pooled agent can serve is what it was started with. Agents read their configuration files
at start (pi its ``~/.pi/agent/models.json`` and ``settings.json``), so each pooled agent records
the size and mtime of its type's files (``CONFIG_FILES``) when it starts, and one whose files have
changed since is closed rather than handed out (that call goes cold; the pool refills with agents
that see the new files). Beyond that it serves calls with no caller ``env`` (its environment is
fixed when the process starts: pi reads ``ANTHROPIC_API_KEY`` then), the default ``cwd``
(``/home/user``) and, for agents that take instructions only on their command line (pi's
``--append-system-prompt``), no ``additional_instructions``; an ACP agent takes them with the first
prompt, so a pooled one serves calls with instructions too. Any other call starts its agent cold,
exactly as without a pool. The pool never holds a caller's secrets.

Pooled processes run in the VM's sandbox and cgroups like any session's, so they count against the
VM's memory and pids limits. The pool therefore only starts one while the VM's use, plus what one
more agent took the last time, stays within half of each limit (the other half is the caller's);
an agent that fails to start (a limit hit, a broken install) stops the filling for this wake.

Must not import the core or storage.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from actorq.agent_os.agents.base import AgentDriver
from actorq.agent_os.cgroups import Usage

log = logging.getLogger("actorq.agent_os.warm")

WarmPool = int | Mapping[str, int]
# what one more agent is assumed to cost before one was measured
_FIRST_GUESS_MEMORY = 128 << 20
_FIRST_GUESS_PIDS = 16

# VM paths an agent type reads when it starts: a pooled agent is stale once one of them changed
CONFIG_FILES: dict[str, tuple[str, ...]] = {
    "pi": tuple(f"/home/user/.pi/agent/{f}" for f in ("models.json", "settings.json", "auth.json")),
    "claude": ("/home/user/.claude.json", "/home/user/.claude/settings.json"),
    "codex": ("/home/user/.codex/config.toml", "/home/user/.codex/auth.json"),
    "gemini": ("/home/user/.gemini/settings.json",),
}


def pool_sizes(warm_pool: WarmPool | None, agent_types: Mapping[str, object]) -> dict[str, int]:
    """``agent_os(warm_pool=...)`` checked: ``{agent_type: size}``; ValueError when it is wrong."""
    if warm_pool is None:
        return {}
    if isinstance(warm_pool, bool):
        raise ValueError(f"warm_pool is a count or a {{agent_type: count}} mapping, not {warm_pool!r}")
    if isinstance(warm_pool, int):
        sizes = dict.fromkeys(agent_types, warm_pool)
    elif isinstance(warm_pool, Mapping):
        sizes = dict(warm_pool)
        unknown = sorted(set(sizes) - set(agent_types))
        if unknown:
            raise ValueError(f"warm_pool names unknown agent types {unknown}; known: {sorted(agent_types)}")
    else:
        raise ValueError(f"warm_pool is a count or a {{agent_type: count}} mapping, not {warm_pool!r}")
    for name, n in sizes.items():
        if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= 64:
            raise ValueError(f"warm_pool[{name!r}] is a count from 0 to 64, not {n!r}")
    return {k: n for k, n in sizes.items() if n > 0}


@dataclass
class Pooled:
    """One started agent waiting in the pool, under the session id it will be handed out as."""

    agent_type: str
    session_id: str
    driver: AgentDriver
    stamp: tuple[object, ...] = ()  # CONFIG_FILES' (size, mtime) as of its start


@dataclass
class _Slot:
    ready: list[Pooled] = field(default_factory=list)
    starting: int = 0
    waiters: list[asyncio.Future[Pooled | None]] = field(default_factory=list)

    def wake_one(self, pooled: Pooled | None) -> bool:
        """Hand ``pooled`` to a caller waiting for it (``None``: tell them none is coming)."""
        while self.waiters:
            fut = self.waiters.pop(0)
            if not fut.done():
                fut.set_result(pooled)
                return True
        return False


class Pool:
    """The pool of one awake VM (see the module docstring)."""

    def __init__(
        self,
        sizes: Mapping[str, int],
        start: Callable[[str], Awaitable[Pooled]],
        *,
        usage: Callable[[], Usage | None] = lambda: None,
        memory_mb: int | None = None,
        pids: int | None = None,
    ) -> None:
        self.sizes = dict(sizes)
        self._start = start  # agent_type -> coroutine giving a started Pooled
        self._usage = usage
        self._memory_limit = None if memory_mb is None else memory_mb << 20
        self._pids_limit = pids
        self._slots = {t: _Slot() for t in self.sizes}
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing: set[asyncio.Future[None]] = set()
        self._closed = False
        self._failed: set[str] = set()
        self._cost_memory = _FIRST_GUESS_MEMORY
        self._cost_pids = _FIRST_GUESS_PIDS
        self.served = 0  # sessions handed out warm
        self.blocked = 0  # fills held back by the VM's limits

    @property
    def ready(self) -> dict[str, int]:
        return {t: len(s.ready) for t, s in self._slots.items()}

    def fill(self) -> None:
        """Start what is missing (in the background); what the limits allow, one at a time per type."""
        if self._closed:
            return
        for agent_type, size in self.sizes.items():
            slot = self._slots[agent_type]
            if agent_type in self._failed or slot.starting or len(slot.ready) >= size:
                continue
            if not self._room():
                self.blocked += 1
                continue
            slot.starting += 1
            task = asyncio.create_task(self._fill_one(agent_type), name=f"vm-warm-{agent_type}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _room(self) -> bool:
        u = self._usage()
        if u is None:
            return True
        if self._memory_limit is not None and u.memory_bytes is not None:
            if u.memory_bytes + self._cost_memory > self._memory_limit // 2:
                return False
        if self._pids_limit is not None and u.pids is not None:
            if u.pids + self._cost_pids > self._pids_limit // 2:
                return False
        return True

    async def _fill_one(self, agent_type: str) -> None:
        slot = self._slots[agent_type]
        before = self._usage()
        try:
            pooled = await self._start(agent_type)
        except asyncio.CancelledError:
            slot.starting -= 1
            raise
        except Exception as exc:  # a limit hit, a broken install: cold sessions say what is wrong
            slot.starting -= 1
            self._failed.add(agent_type)
            while slot.wake_one(None):
                pass
            log.warning("warm %s agent did not start (%s); no more warm ones this wake", agent_type, exc)
            return
        slot.starting -= 1
        after = self._usage()
        if before is not None and after is not None:
            if before.memory_bytes is not None and after.memory_bytes is not None:
                self._cost_memory = max(after.memory_bytes - before.memory_bytes, 1 << 20)
            if before.pids is not None and after.pids is not None:
                self._cost_pids = max(after.pids - before.pids, 1)
        if self._closed:
            await pooled.driver.close()
            return
        if not slot.wake_one(pooled):
            slot.ready.append(pooled)
        self.fill()

    def put_back(self, pooled: Pooled) -> None:
        """A taken agent the call could not use after all: ready again, first in line."""
        self.served -= 1
        if self._closed:
            self._discard(pooled)
        else:
            slot = self._slots[pooled.agent_type]
            if not slot.wake_one(pooled):
                slot.ready.insert(0, pooled)

    async def take(self, agent_type: str) -> Pooled | None:
        """A ready agent of that type (the pool refills behind it), or ``None``. With none ready but
        one starting, it waits for that one: never slower than starting a fresh one cold."""
        slot = self._slots.get(agent_type)
        if slot is None or self._closed:
            return None
        if not slot.ready and slot.starting:
            fut: asyncio.Future[Pooled | None] = asyncio.get_running_loop().create_future()
            slot.waiters.append(fut)
            try:
                pooled = await fut
            except asyncio.CancelledError:
                if fut.done() and not fut.cancelled() and (got := fut.result()) is not None:
                    slot.ready.insert(0, got)  # handed over as our caller left: keep it
                raise
            if pooled is not None and _alive(pooled.driver):
                self.served += 1
                self.fill()
                return pooled
            if pooled is not None:
                self._discard(pooled)
        while slot.ready:
            pooled = slot.ready.pop(0)
            if _alive(pooled.driver):
                self.served += 1
                self.fill()
                return pooled
            self._discard(pooled)  # it died while waiting: not handed out
        self.fill()
        return None

    def _discard(self, pooled: Pooled) -> None:
        task = asyncio.ensure_future(pooled.driver.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        """Stop every pooled agent and the filling (the VM sleeps); idempotent."""
        self._closed = True
        tasks: list[asyncio.Future[None]] = [*self._tasks, *self._closing]
        for filling in self._tasks:  # a start cancelled closes its own agent (start_pooled)
            filling.cancel()
        for fut in tasks:
            with contextlib.suppress(BaseException):
                await fut
        for slot in self._slots.values():
            while slot.wake_one(None):
                pass
            ready, slot.ready = slot.ready, []
            for pooled in ready:
                with contextlib.suppress(Exception):
                    await pooled.driver.close()


def _alive(driver: AgentDriver) -> bool:
    proc = getattr(driver, "_proc", None)
    return proc is not None and proc.returncode is None


__all__ = ["Pool", "Pooled", "WarmPool", "pool_sizes"]
