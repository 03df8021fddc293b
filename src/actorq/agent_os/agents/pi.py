"""The pi driver: the pi coding agent in its RPC mode (JSON lines over stdio), run inside the VM.

We launch ``node <pi cli> --mode rpc`` in the sandbox, ask ``get_state`` (which also tells us the
session file pi writes under ``~/.pi/agent/sessions/``: our transcript), then for each prompt send
``{"type": "prompt"}`` and read pi's events until ``agent_end``. Commands carry an ``id`` and pi
answers each with a ``{"type": "response", "id"}`` line; everything else on stdout is an event.

pi is configured by files in the VM's ``~/.pi/agent/`` (``models.json``, ``settings.json``): the
driver passes only ``--append-system-prompt`` (``additional_instructions``) and ``--session``
(``resume_from``). Secrets reach pi through its environment only; they are never written, logged
or put in events or error messages (they are masked if pi echoes them).

With a permission policy (``DriverOptions.permit``) pi loads actorq's small extension
(``pi_hooks/permissions.js``, shipped in this package and mounted read-only by ``software.pi``, so
nothing in the VM can change it) with ``--no-extensions --extension``: no auto-discovered extension
loads next to it, since one would run in pi's process and could undo the policy; after the start
the driver checks (``get_commands``) that pi did load it from there, or the start fails. It hooks
pi's ``tool_call`` event, which runs before each tool and can block it, and asks us through pi's
RPC extension-UI sub-protocol: an ``input`` dialog titled ``actorq-permission`` whose placeholder
text is the tool's name and arguments. We answer with the
verdict (JSON ``{"allow": bool, "reason": str}``); a denied call is blocked and the model gets the
reason as the tool's error result; a verdict we fail to reach is a denial, never a hang. The
dialog carries pi's abort signal, so aborting a prompt releases a held call (blocked).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from typing import Any

from actorq.agent_os.agents.base import DriverOptions
from actorq.agent_os.agents.process import AgentProcess
from actorq.agent_os.approvals import Verdict
from actorq.agent_os.permissions import ToolRequest
from actorq.agent_os.sandbox import kill_tree
from actorq.agent_os.software import PI_CLI, PI_HOOKS_VM_DIR
from actorq.errors import ActorqError, BadRequest, NotFound, PromptFailed, SessionClosed, Unsupported
from actorq.vm_types import PromptResult, SessionModes

_PREVIEW = 2000  # characters of a tool result / argument kept in an event
_READ_CHUNK = 1 << 16  # stdout is read in chunks: agent_end lines can exceed readline's limit
_MAX_LINE = 64 << 20  # a line longer than this is not pi speaking its protocol: the session ends
_RETRIES_SEEN = "_actorq_retries_seen"  # stamped on agent_end events by the reader
_DIALOGS = {"select", "confirm", "input", "editor"}  # extension UI requests that block for an answer
_THINKING = ("off", "minimal", "low", "medium", "high", "xhigh")  # pi's set_thinking_level levels
_CONTROL_TIMEOUT = 30.0  # seconds for a control command (set_model, get_available_models, ...)
# pi's usage fields -> PromptResult.usage's keys
_USAGE = {"input": "input", "output": "output", "cacheRead": "cache_read", "cacheWrite": "cache_write"}
PERMISSION_TITLE = "actorq-permission"
PI_PERMISSION_HOOK = f"{PI_HOOKS_VM_DIR}/permissions.js"  # read-only in the VM (software.pi)
PERMISSION_MARK = "actorq-permissions"  # the command the hook registers: pi loaded it


def _text_of(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(b.get("text", "")) for b in content if isinstance(b, dict) and b.get("type") == "text"
        )
    return ""


def _preview(value: Any) -> Any:
    """Bound what goes into an event: long strings are cut, structures are kept if small."""
    if isinstance(value, str):
        return value if len(value) <= _PREVIEW else value[:_PREVIEW] + "…"
    text = json.dumps(value, default=str)
    return value if len(text) <= _PREVIEW else text[:_PREVIEW] + "…"


def compact_event(ev: dict[str, Any]) -> dict[str, Any]:
    """The useful fields of a pi event for clients (no partial messages, bounded sizes)."""
    kind = str(ev.get("type", ""))
    out: dict[str, Any] = {"type": kind}
    if kind == "message_update":
        sub = ev.get("assistantMessageEvent") or {}
        out["update"] = sub.get("type")
        if sub.get("type") in ("text_delta", "thinking_delta", "toolcall_delta"):
            out["delta"] = sub.get("delta", "")
        elif sub.get("type") == "toolcall_end":
            call = sub.get("toolCall") or {}
            out.update(
                tool=call.get("name"), tool_call_id=call.get("id"), args=_preview(call.get("arguments"))
            )
    elif kind in ("message_start", "message_end"):
        msg = ev.get("message") or {}
        out["role"] = msg.get("role")
        if kind == "message_end" and msg.get("role") == "assistant":
            out["stop_reason"] = msg.get("stopReason")
            out["text"] = _preview(_text_of(msg))
            if msg.get("errorMessage"):
                out["error"] = msg["errorMessage"]
        elif kind == "message_end" and msg.get("role") == "user":
            out["text"] = _preview(_text_of(msg))  # the prompt, so the history holds it
    elif kind.startswith("tool_execution_"):
        out.update(tool=ev.get("toolName"), tool_call_id=ev.get("toolCallId"))
        if kind == "tool_execution_start":
            out["args"] = _preview(ev.get("args"))
        elif kind == "tool_execution_end":
            out["result"] = _preview(_text_of(ev.get("result") or {}))
            out["is_error"] = bool(ev.get("isError"))
    elif kind == "auto_retry_start":
        out.update(
            attempt=ev.get("attempt"), max_attempts=ev.get("maxAttempts"), error=ev.get("errorMessage")
        )
    elif kind == "auto_retry_end":
        out.update(success=ev.get("success"), attempt=ev.get("attempt"), error=ev.get("finalError"))
    elif kind in ("compaction_start", "compaction_end"):
        out["reason"] = ev.get("reason")
    elif kind == "extension_error":
        out["error"] = ev.get("error")
    return out


class _Turn:
    """What one prompt produced, folded from its events."""

    def __init__(self) -> None:
        self.events = 0
        self.tools: list[str] = []
        self.last_assistant: dict[str, Any] | None = None
        self.errors: list[str] = []
        self.usage: dict[str, int] | None = None  # summed over the turn's assistant messages

    def feed(self, ev: dict[str, Any]) -> None:
        self.events += 1
        kind = ev.get("type")
        if kind == "tool_execution_start":
            self.tools.append(str(ev.get("toolName")))
        elif kind == "message_end":
            msg = ev.get("message") or {}
            if msg.get("role") == "assistant":
                self.last_assistant = msg
                self._add_usage(msg.get("usage"))
        elif kind == "extension_error":
            self.errors.append(str(ev.get("error")))

    def _add_usage(self, usage: Any) -> None:
        if not isinstance(usage, dict):
            return
        total = self.usage if self.usage is not None else dict.fromkeys((*_USAGE.values(), "total"), 0)
        counted = 0
        for src, dst in _USAGE.items():
            n = _count(usage.get(src))
            total[dst] += n
            counted += n
        reported = usage.get("totalTokens")
        total["total"] += _count(reported) if reported is not None else counted
        self.usage = total

    @property
    def stop_reason(self) -> str | None:
        return None if self.last_assistant is None else str(self.last_assistant.get("stopReason"))

    @property
    def text(self) -> str:
        return "" if self.last_assistant is None else _text_of(self.last_assistant)


class PiDriver(AgentProcess):
    """One pi process (one session) speaking RPC mode over the sandbox launcher's pipes."""

    agent_type = "pi"

    def __init__(
        self,
        opts: DriverOptions,
        *,
        start_timeout: float = 60.0,
        abort_grace: float = 10.0,
    ) -> None:
        super().__init__(opts)
        self._asks: set[asyncio.Task[None]] = set()  # tool calls waiting for a verdict
        self._start_timeout = start_timeout
        self._abort_grace = abort_grace
        self._stdout_task: asyncio.Task[None] | None = None
        self._events: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self._lock = asyncio.Lock()
        self._retry_starts = 0  # auto_retry_start events seen (pi retries after an agent_end)
        self._in_flight = False  # a prompt was sent and its final agent_end not read yet
        self._exited = False
        self._transcript: str | None = None
        self.pi_session_id: str | None = None

    @property
    def transcript(self) -> str | None:
        return self._transcript

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        if self._closed:
            raise SessionClosed(f"session {self._opts.session_id} is closed")
        argv = ["node", PI_CLI, "--mode", "rpc"]
        if self._opts.additional_instructions:
            argv += ["--append-system-prompt", self._opts.additional_instructions]
        if self._opts.resume_from:
            argv += ["--session", self._opts.resume_from]
        if self._opts.mcp_servers:  # checked before anything starts: the session is not created
            raise Unsupported(
                "pi does not take MCP servers (give it tools through its extensions instead)",
                details={"agent_type": "pi", "feature": "mcp_servers"},
            )
        if self._opts.permit is not None:
            # only our hook: an auto-discovered extension (~/.pi/agent/extensions, the project's
            # .pi/extensions, settings' packages) runs in pi's process and could undo the policy
            argv += ["--no-extensions", "--extension", PI_PERMISSION_HOOK]
        await self._spawn(argv, {"PI_OFFLINE": "1", **self._opts.env})
        self._stdout_task = asyncio.create_task(self._read_stdout(), name="pi-stdout")
        try:
            state = await self._request({"type": "get_state"}, self._start_timeout)
        except TimeoutError:
            tail = self._stderr_tail()[-1000:]
            await self.close()
            raise PromptFailed(
                f"pi did not answer within {self._start_timeout}s" + (f": {tail}" if tail else ""),
                details={"reason": "start_timeout"},
            ) from None
        except ActorqError as exc:
            await self.close()
            raise PromptFailed(f"pi did not start: {exc.message}", details=exc.details) from None
        if not state.get("success"):
            await self.close()
            raise PromptFailed(f"pi did not start: {self._mask(str(state.get('error')))}")
        if self._opts.permit is not None:
            try:
                await self._check_hook()
            except (ActorqError, TimeoutError) as exc:
                await self.close()
                if isinstance(exc, PromptFailed):
                    raise
                raise PromptFailed(f"pi did not list its extensions: {exc}") from None
        data = state.get("data") or {}
        self._transcript = data.get("sessionFile") or self._opts.resume_from
        self.pi_session_id = data.get("sessionId")

    async def _check_hook(self) -> None:
        """Under a policy, pi must have loaded our hook from its read-only place; else no session.

        pi goes on without an ``--extension`` it cannot load, so a VM without the hook's mount
        (pi's software declared by hand) would run every call unasked: the start fails instead.
        """
        resp = await self._request({"type": "get_commands"}, self._start_timeout)
        commands = (resp.get("data") or {}).get("commands") if resp.get("success") else None
        loaded = any(
            isinstance(c, dict)
            and c.get("name") == PERMISSION_MARK
            and c.get("source") == "extension"
            and (c.get("sourceInfo") or {}).get("path") == PI_PERMISSION_HOOK
            for c in commands or []
        )
        if not loaded:
            raise PromptFailed(
                f"pi did not load actorq's permission hook from {PI_PERMISSION_HOOK}"
                " (it is mounted read-only with software.pi)",
                details={"reason": "permission_hook_missing", "path": PI_PERMISSION_HOOK},
            )

    async def close(self) -> None:
        """Stop pi (it exits at the end of its stdin; ``AgentProcess._stop``). Idempotent."""
        for task in list(self._asks):  # an agent that is gone waits for no verdict
            task.cancel()
        await self._stop([self._stdout_task] if self._stdout_task is not None else [])
        self._fail_pending(SessionClosed(f"session {self._opts.session_id} is closed"))
        self._events.put_nowait(None)  # wakes a prompt still waiting for events

    # --- prompts --------------------------------------------------------------------------

    async def prompt(self, text: str, timeout: float | None) -> PromptResult:
        async with self._lock:
            self._check_usable()
            await self._settle_previous()
            loop = asyncio.get_running_loop()
            deadline = None if timeout is None else loop.time() + timeout

            def left() -> float | None:
                return None if deadline is None else max(deadline - loop.time(), 0.0)

            turn = _Turn()
            try:
                self._in_flight = True
                resp = await self._request({"type": "prompt", "message": text}, left())
                if not resp.get("success"):
                    self._in_flight = False
                    raise PromptFailed(f"pi rejected the prompt: {self._mask(str(resp.get('error')))}")
                await self._consume(turn, left)
            except TimeoutError:
                await self._abort_after_timeout(turn)
                raise PromptFailed(
                    f"pi did not finish the prompt within {timeout}s; it was aborted",
                    details={"reason": "timeout", "timeout": timeout},
                ) from None
            except asyncio.CancelledError:
                # our caller gave up: stop pi's run too (the next prompt waits for it to wind down)
                self._write_nowait({"type": "abort"})
                raise
            return self._result(turn)

    async def _settle_previous(self) -> None:
        """Before a prompt: finish off a run whose caller went away, and pass on late events."""
        if self._in_flight:
            with contextlib.suppress(Exception):
                await self._send({"type": "abort"})
                await asyncio.wait_for(self._drain_until_end(_Turn()), self._abort_grace)
            self._in_flight = False
        while not self._events.empty():
            ev = self._events.get_nowait()
            if ev is None:  # the process is gone: keep telling later waiters so
                self._events.put_nowait(None)
                raise self._gone_error()
            if ev.get("type") != "_malformed":
                self._emit(compact_event(ev))  # e.g. auto_retry_end after a prompt's final agent_end

    async def _consume(self, turn: _Turn, left: Any) -> None:
        """Read events until pi's final ``agent_end`` (one more run follows if pi auto-retries)."""
        while True:
            ev = await asyncio.wait_for(self._events.get(), left())
            if ev is None:
                raise self._gone_error()
            if ev.get("type") == "_malformed":
                raise PromptFailed(
                    f"pi wrote a line that is not JSON: {self._mask(str(ev.get('line')))[:300]}"
                )
            turn.feed(ev)
            self._emit(compact_event(ev))
            if ev.get("type") == "agent_end" and not await self._retrying(turn, ev[_RETRIES_SEEN]):
                self._in_flight = False
                return

    async def _retrying(self, turn: _Turn, before: int) -> bool:
        """After an erroring ``agent_end``: will pi retry? It says so (``auto_retry_start``) in the
        same tick as ``agent_end``, so any command's response is a barrier that settles it;
        ``before`` is how many retries the reader had seen when it read that ``agent_end``."""
        if turn.stop_reason != "error":
            return False
        with contextlib.suppress(TimeoutError, ActorqError):
            await self._request({"type": "get_state"}, 10.0)
        return self._retry_starts > before

    async def _abort_after_timeout(self, turn: _Turn) -> None:
        """Abort the running prompt and let pi wind it down; a pi that will not is killed."""
        with contextlib.suppress(Exception):
            await self._send({"type": "abort"})
            await asyncio.wait_for(self._drain_until_end(turn), self._abort_grace)
            return
        if self._proc is not None and self._proc.returncode is None:
            kill_tree(self._proc)

    async def _drain_until_end(self, turn: _Turn) -> None:
        while True:
            ev = await self._events.get()
            if ev is None:
                raise self._gone_error()
            if ev.get("type") == "_malformed":
                continue
            turn.feed(ev)
            self._emit(compact_event(ev))
            if ev.get("type") == "agent_end":
                self._in_flight = False
                return

    def _result(self, turn: _Turn) -> PromptResult:
        stop = turn.stop_reason
        if stop is None:
            detail = "; ".join(turn.errors) or "no assistant message"
            raise PromptFailed(f"pi ended the prompt without an answer ({self._mask(detail)})")
        if stop == "error":
            msg = (turn.last_assistant or {}).get("errorMessage") or "the agent reported an error"
            raise PromptFailed(self._mask(str(msg)), details={"reason": "agent_error", "stop_reason": stop})
        return PromptResult(
            stop_reason=stop, text=turn.text, events=turn.events, tool_calls=turn.tools, usage=turn.usage
        )

    # --- session controls (models and thinking level; pi has no modes) -----------------------

    async def _command(self, command: dict[str, Any]) -> Any:
        """A control command's ``data``; pi's refusal is a BadRequest with pi's reason."""
        self._check_usable()
        try:
            resp = await self._request(command, _CONTROL_TIMEOUT)
        except TimeoutError:
            raise PromptFailed(
                f"pi did not answer {command['type']} within {_CONTROL_TIMEOUT:g}s",
                details={"reason": "timeout", "command": command["type"]},
            ) from None
        if not resp.get("success"):
            raise BadRequest(
                f"pi refused {command['type']}: {self._mask(str(resp.get('error')))[:500]}",
                details={"command": command["type"]},
            )
        return resp.get("data")

    async def _models(self) -> list[dict[str, Any]]:
        data = await self._command({"type": "get_available_models"})
        models = (data or {}).get("models") if isinstance(data, dict) else None
        return [m for m in models or [] if isinstance(m, dict)]

    async def get_modes(self) -> SessionModes:
        raise Unsupported("pi sessions have no modes", details={"agent_type": "pi", "feature": "modes"})

    async def set_mode(self, mode: str) -> SessionModes:
        return await self.get_modes()

    async def get_config_options(self) -> list[dict[str, Any]]:
        """pi's model and thinking level, in ACP's config option shape."""
        models = await self._models()
        state = await self._command({"type": "get_state"}) or {}
        current = state.get("model") if isinstance(state, dict) else None
        options: list[dict[str, Any]] = [
            {
                "id": "model",
                "name": "Model",
                "category": "model",
                "type": "select",
                "currentValue": _model_ref(current) if isinstance(current, dict) else None,
                "options": [
                    {"value": _model_ref(m), "name": str(m.get("name") or m.get("id"))} for m in models
                ],
            },
            {
                "id": "thought_level",
                "name": "Thinking level",
                "category": "thought_level",
                "type": "select",
                "currentValue": state.get("thinkingLevel") if isinstance(state, dict) else None,
                "options": [{"value": level, "name": level} for level in _THINKING],
            },
        ]
        return options

    async def set_config_option(self, config_id: str, value: str | bool) -> list[dict[str, Any]]:
        if config_id == "model" and isinstance(value, str):
            return await self.set_model(value)
        if config_id == "thought_level" and isinstance(value, str):
            if value not in _THINKING:
                raise BadRequest(f"thought_level is one of {', '.join(_THINKING)}")
            await self._command({"type": "set_thinking_level", "level": value})
            return await self.get_config_options()
        if config_id in ("model", "thought_level"):
            raise BadRequest(f"{config_id} takes a string value")
        raise NotFound(
            f"pi has no config option {config_id!r}", details={"config_options": ["model", "thought_level"]}
        )

    async def set_model(self, model: str) -> list[dict[str, Any]]:
        """Switch to a model of ``models.json`` (or pi's built-ins): ``provider/id`` or a bare id."""
        models = await self._models()
        match = [m for m in models if model in (_model_ref(m), m.get("id"))]
        if len(match) != 1:
            raise NotFound(
                f"pi has no model {model!r}"
                if not match
                else f"{model!r} names several models: use provider/id",
                details={"models": [_model_ref(m) for m in models][:100]},
            )
        chosen = match[0]
        await self._command(
            {"type": "set_model", "provider": chosen.get("provider"), "modelId": chosen.get("id")}
        )
        return await self.get_config_options()

    async def cancel(self) -> None:
        """Abort the prompt in progress; that ``prompt`` then returns with stop_reason "aborted"."""
        if self._closed:
            raise SessionClosed(f"session {self._opts.session_id} is closed")
        if self._proc is None or self._exited:
            return
        # pi answers abort once the run has wound down; the prompt call reports the outcome
        with contextlib.suppress(Exception):
            await self._send({"type": "abort"})

    # --- protocol plumbing ----------------------------------------------------------------

    async def _write(self, obj: dict[str, Any]) -> bool:
        proc = self._proc
        if proc is None or proc.stdin is None or self._exited:
            return False
        try:
            proc.stdin.write((json.dumps(obj) + "\n").encode())
            await proc.stdin.drain()
        except (ConnectionError, RuntimeError):
            return False
        return True

    def _write_nowait(self, obj: dict[str, Any]) -> None:
        """Best-effort write when we cannot wait (cancellation)."""
        proc = self._proc
        if proc is not None and proc.stdin is not None and not self._exited:
            with contextlib.suppress(Exception):
                proc.stdin.write((json.dumps(obj) + "\n").encode())

    async def _send(self, command: dict[str, Any]) -> asyncio.Future[dict[str, Any]]:
        """Write a command; the future gets pi's response to it."""
        rid = f"aq-{next(self._ids)}"
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        if not await self._write({"id": rid, **command}):
            self._pending.pop(rid, None)
            raise self._gone_error()
        return fut

    async def _request(self, command: dict[str, Any], timeout: float | None) -> dict[str, Any]:
        fut = await self._send(command)
        try:
            return await asyncio.wait_for(fut, timeout)
        finally:  # on timeout, forget it: a late response is then dropped
            self._pending = {rid: f for rid, f in self._pending.items() if f is not fut}

    async def _read_stdout(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        out = self._proc.stdout
        buf = bytearray()
        try:
            while True:
                chunk = await out.read(_READ_CHUNK)
                if not chunk:
                    break
                buf += chunk
                if b"\n" not in chunk:
                    if len(buf) > _MAX_LINE:  # output of the VM's: bounded, whatever it sends
                        self._events.put_nowait({"type": "_malformed", "line": "a line over 64 MiB"})
                        kill_tree(self._proc)
                        break
                    continue  # a long line (agent_end carries whole messages) still arriving
                # split on LF only: U+2028/9 are legal inside pi's JSON strings
                *lines, rest = bytes(buf).split(b"\n")
                buf = bytearray(rest)
                for line in lines:
                    await self._dispatch(line.rstrip(b"\r"))
            if buf.strip():
                await self._dispatch(bytes(buf).rstrip(b"\r"))
        finally:
            await self._last_words()  # the exit code and stderr's end make the error message
            self._exited = True
            self._fail_pending(self._gone_error())
            self._events.put_nowait(None)

    async def _dispatch(self, raw: bytes) -> None:
        if not raw.strip():
            return
        try:
            obj = json.loads(raw)
        except ValueError:
            obj = None
        if not isinstance(obj, dict):
            self._events.put_nowait({"type": "_malformed", "line": raw[:500].decode("utf-8", "replace")})
            return
        kind = obj.get("type")
        if kind == "response":
            fut = self._pending.pop(str(obj.get("id")), None)
            if fut is not None and not fut.done():
                fut.set_result(obj)
            return
        if kind == "extension_ui_request" and obj.get("title") == PERMISSION_TITLE and self._opts.permit:
            # a tool call waiting for the policy: decide off the reader (an ask can take hours)
            task = asyncio.create_task(self._permission(obj), name="pi-permission")
            self._asks.add(task)
            task.add_done_callback(self._asks.discard)
            return
        if kind == "extension_ui_request":
            # nobody is there to answer a dialog: dismiss it so pi does not wait forever
            if obj.get("method") in _DIALOGS:
                await self._write({"type": "extension_ui_response", "id": obj.get("id"), "cancelled": True})
            return
        if kind == "auto_retry_start":
            self._retry_starts += 1
        elif kind == "agent_end":
            obj[_RETRIES_SEEN] = self._retry_starts  # the count as of this line, for _retrying
        self._events.put_nowait(obj)

    async def _permission(self, req: dict[str, Any]) -> None:
        permit = self._opts.permit
        assert permit is not None
        try:
            asked = json.loads(str(req.get("placeholder")))  # input(title, placeholder) carries the call
            tool = str(asked.get("tool"))
            args = asked.get("input")
        except (ValueError, AttributeError):
            tool, args = "unknown", None
        try:
            verdict = await permit(ToolRequest.from_pi(tool, args, self._opts.cwd))
        except ActorqError as exc:  # e.g. the state could not be saved: refuse, and say why
            verdict = Verdict(False, f"Permission denied: the request could not be held ({exc.message})")
        event: dict[str, Any] = {"type": "permission", "tool": tool, "reason": verdict.reason}
        event["outcome"] = "allowed" if verdict.allowed else "denied"
        if verdict.request_id is not None:
            event["request_id"] = verdict.request_id
        self._emit(event)
        answer = json.dumps({"allow": verdict.allowed, "reason": verdict.reason})
        await self._write({"type": "extension_ui_response", "id": req.get("id"), "value": answer})

    # --- helpers --------------------------------------------------------------------------

    def _check_usable(self) -> None:
        if self._closed:
            raise SessionClosed(f"session {self._opts.session_id} is closed")
        if self._proc is None:
            raise PromptFailed("pi is not started")
        if self._exited:
            raise self._gone_error()

    def _fail_pending(self, exc: Exception) -> None:
        pending, self._pending = self._pending, {}
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(exc)
                fut.exception()  # mark retrieved: a waiter may have timed out already

    def _gone_error(self) -> ActorqError:
        if self._closed:
            return SessionClosed(f"session {self._opts.session_id} is closed")
        code = self._proc.returncode if self._proc is not None else None
        tail = self._stderr_tail()
        msg = f"pi exited (code {code})" + (f": {tail[-1000:]}" if tail else "")
        return PromptFailed(msg, details={"reason": "agent_exited", "exit_code": code})


def _count(value: Any) -> int:
    """A token count as pi reported it; anything else counts nothing."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _model_ref(model: dict[str, Any]) -> str:
    return f"{model.get('provider')}/{model.get('id')}"


__all__ = ["PiDriver", "compact_event"]
