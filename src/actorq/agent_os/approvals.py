"""Pending permission requests of one VM: held tool calls, persisted, answered by any client.

When a session's policy says ``ask`` for a tool call, :meth:`Approvals.decide` records a request in
the VM's persisted state (``c.state["permissions"]``, saved before anyone hears of it), broadcasts a
``permission_request`` event and waits for :meth:`respond` (the ``respond_permission`` action) or
the policy's timeout (then the answer is the policy's ``on_timeout``). The agent is told the answer
and goes on.

A request outlives the agent process waiting on it: after a server crash (or the VM sleeping) it is
still listed as pending, its timeout still runs from the time it was asked, and an answer to it is
stored, not lost. The VM then *resumes* the interrupted prompt: the agent is started again from its
transcript, the prompt that was in progress is sent again, and when the agent asks for the same tool
call again (same tool and the same arguments) the stored answer is applied at once without asking
anyone (``on_orphan_answer`` is how the VM is told to do that; ``actions/permissions.py``).

A request's life: ``pending`` -> ``allowed`` | ``denied`` (by a client or the timeout) or
``cancelled`` (the prompt was cancelled or ended, or the session closed). Answering a request that
is no longer pending is a :class:`~actorq.errors.CompletionError` (409) and changes nothing.

Knows nothing of actors: it gets the state dict, a save callback and the broadcast.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

from actorq.agent_os.permissions import ANSWERS, Permissions, ToolRequest
from actorq.errors import BadRequest, CompletionError, NotFound, ValidationError
from actorq.vm_types import PermissionRequest

INPUT_PREVIEW = 8192  # characters of a call's arguments kept in its request (a write's content can be big)
MAX_PENDING = 100  # pending requests per session: each is saved in the state; more are refused
MAX_PATHS = 100  # paths of a call kept in its request (the policy saw them all)
KEEP_ANSWERED = 200  # answered requests kept (to tell "answered already" from "no such request")


@dataclass(frozen=True)
class Verdict:
    """What the agent is told: run the call or not, and why."""

    allowed: bool
    reason: str
    request_id: str | None = None  # set when a person (or the timeout) answered


def _bounded(value: Any) -> Any:
    """The call's arguments as stored and shown: whole if small, else a cut JSON text."""
    text = json.dumps(value, default=str)
    return value if len(text) <= INPUT_PREVIEW else text[:INPUT_PREVIEW] + "…"


def _cut(text: str | None) -> str | None:
    return text if text is None or len(text) <= INPUT_PREVIEW else text[:INPUT_PREVIEW] + "…"


def public(rid: str, rec: dict[str, Any]) -> PermissionRequest:
    return PermissionRequest(
        request_id=rid,
        session_id=rec["session_id"],
        tool=rec["tool"],
        kind=rec["kind"],
        title=rec["title"],
        command=rec.get("command"),
        paths=list(rec.get("paths") or []),
        hosts=list(rec.get("hosts") or []),
        input=rec.get("input"),
        status=rec["status"],
        created_at=rec["created_at"],
        expires_at=rec["expires_at"],
        answered_at=rec.get("answered_at"),
        answered_by=rec.get("answered_by"),
    )


class Approvals:
    def __init__(
        self,
        state: dict[str, Any],
        save: Callable[[], Awaitable[Any]],
        emit: Callable[[str, Any], None],
        on_orphan_answer: Callable[[str, str], Awaitable[None]],
    ) -> None:
        self.records: dict[str, dict[str, Any]] = state.setdefault("permissions", {})
        self._save = save
        self._emit = emit
        self._on_orphan_answer = on_orphan_answer
        self._waiters: dict[str, asyncio.Future[str]] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        for rid, rec in self.records.items():  # asked before a restart: their timeouts still run
            if rec["status"] == "pending":
                self._arm(rid, rec)

    # --- the agent's side -------------------------------------------------------------------

    async def decide(
        self,
        session_id: str,
        policy: Permissions,
        req: ToolRequest,
        prompt: str | None,
        mask: Callable[[Any], Any] = lambda value: value,
    ) -> Verdict:
        """The verdict on one tool call; an ``ask`` waits here until it is answered. ``mask`` cuts
        the session's secrets out of what is stored and broadcast (the policy sees the call whole)."""
        decision = policy.decide(req)
        if decision.action != "ask":
            if decision.action == "allow":
                return Verdict(True, f"allowed by the VM's policy ({decision.reason})")
            return Verdict(False, f"Permission denied by the VM's policy ({decision.reason})")
        fp = req.fingerprint
        for old_id, old in self.records.items():  # answered while the agent was gone: apply it now
            if old["session_id"] == session_id and old.get("fingerprint") == fp and old.get("resume"):
                old["resume"] = False
                await self._save()
                return self._verdict(old_id, old)
        if sum(r["session_id"] == session_id and r["status"] == "pending" for r in self.records.values()) >= (
            MAX_PENDING
        ):
            return Verdict(
                False, f"Permission denied: this session has {MAX_PENDING} requests waiting for an answer"
            )
        rid = "perm_" + uuid.uuid4().hex[:16]
        now = time.time()
        rec: dict[str, Any] = {
            "session_id": session_id,
            "tool": req.tool,
            "kind": req.kind,
            "title": mask(req.title),
            "command": _cut(mask(req.command)),
            "paths": [_cut(str(p)) for p in mask(list(req.paths))[:MAX_PATHS]],
            "hosts": list(req.hosts),
            "input": _bounded(mask(req.input)),
            "fingerprint": fp,
            "prompt": prompt,
            "status": "pending",
            "created_at": now,
            "expires_at": now + policy.timeout,
            "on_timeout": policy.on_timeout,
            "answered_at": None,
            "answered_by": None,
            "resume": False,
        }
        fut: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._waiters[rid] = fut
        self.records[rid] = rec
        try:
            await self._save()  # durable before anyone can see it
            self._arm(rid, rec)
            self._emit("permission_request", asdict(public(rid, rec)))
            await fut
        finally:
            self._waiters.pop(rid, None)
        return self._verdict(rid, rec)

    @staticmethod
    def _verdict(rid: str, rec: dict[str, Any]) -> Verdict:
        status = rec["status"]
        by = rec.get("answered_by")
        if status == "allowed":
            return Verdict(True, f"allowed by {by}", rid)
        why = {"timeout": "nobody answered in time", "cancelled": "the request was cancelled"}.get(
            str(by), f"denied by {by}"
        )
        return Verdict(False, f"Permission denied: {why} (request {rid})", rid)

    # --- the answering side -----------------------------------------------------------------

    async def respond(self, session_id: str, request_id: str, decision: str) -> PermissionRequest:
        if decision not in ANSWERS:
            raise ValidationError(
                f"decision is 'allow' or 'deny', not {decision!r}", details={"allowed": list(ANSWERS)}
            )
        if not isinstance(session_id, str) or not isinstance(request_id, str):
            raise BadRequest("session_id and request_id are strings")
        rec = self.records.get(request_id)
        if rec is None or rec["session_id"] != session_id:
            raise NotFound(
                f"no permission request {request_id!r} in session {session_id!r}",
                details={"pending": [r.request_id for r in self.list(session_id)]},
            )
        if rec["status"] != "pending":
            raise CompletionError(
                f"permission request {request_id} was answered already ({rec['status']})",
                details={"status": rec["status"], "answered_by": rec.get("answered_by")},
            )
        return await self._answer(request_id, "allowed" if decision == "allow" else "denied", "client")

    async def _answer(self, rid: str, status: str, by: str) -> PermissionRequest:
        rec = self.records[rid]
        rec.update(status=status, answered_at=time.time(), answered_by=by)
        timer = self._timers.pop(rid, None)
        if timer is not None:
            timer.cancel()
        fut = self._waiters.get(rid)
        orphan = fut is None and status != "cancelled" and rec.get("prompt") is not None
        rec["resume"] = orphan
        self._prune()
        await self._save()
        if fut is not None and not fut.done():
            fut.set_result(status)
        out = public(rid, rec)
        self._emit("permission_resolved", asdict(out))
        if orphan:
            await self._on_orphan_answer(rec["session_id"], rid)
        return out

    def _arm(self, rid: str, rec: dict[str, Any]) -> None:
        delay = max(rec["expires_at"] - time.time(), 0.0)
        self._timers[rid] = asyncio.get_running_loop().call_later(delay, self._expire, rid)

    def _expire(self, rid: str) -> None:
        self._timers.pop(rid, None)
        rec = self.records.get(rid)
        if rec is None or rec["status"] != "pending":
            return
        status = "allowed" if rec.get("on_timeout") == "allow" else "denied"
        task = asyncio.ensure_future(self._answer(rid, status, "timeout"))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def cancel(self, session_id: str, *, waiting_only: bool = False) -> None:
        """Cancel a session's pending requests (those an agent waits on, or all of them)."""
        for rid, rec in list(self.records.items()):
            if rec["session_id"] != session_id or rec["status"] != "pending":
                continue
            if waiting_only and rid not in self._waiters:
                continue
            await self._answer(rid, "cancelled", "cancel")

    def _prune(self) -> None:
        done = [rid for rid, r in self.records.items() if r["status"] != "pending" and not r.get("resume")]
        for rid in done[: max(len(done) - KEEP_ANSWERED, 0)]:
            del self.records[rid]

    # --- reading ----------------------------------------------------------------------------

    def list(self, session_id: str | None = None) -> list[PermissionRequest]:
        if session_id is not None and not isinstance(session_id, str):
            raise BadRequest("session_id is a string")
        return [
            public(rid, r)
            for rid, r in self.records.items()
            if r["status"] == "pending" and (session_id is None or r["session_id"] == session_id)
        ]

    def resumable(self, session_id: str, request_id: str) -> dict[str, Any] | None:
        """The record of an answer stored for an agent that is gone, if it still waits to be applied."""
        rec = self.records.get(request_id)
        if rec is None or rec["session_id"] != session_id or not rec.get("resume"):
            return None
        return rec

    async def close(self) -> None:
        """The VM sleeps: stop the timers; pending requests stay (they are resumed on wake)."""
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
