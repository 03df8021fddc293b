#!/usr/bin/env python3
"""A tiny ACP agent for tests: JSON-RPC 2.0 over newline-delimited stdio, stdlib only.

It runs INSIDE the sandbox with the host's /usr/bin/python3, so it must not import anything
outside the standard library. Behaviour, keyed on words in the prompt text:

* always: streams agent_message_chunk updates ("Hello from stub. You said: <prompt>"), one
  tool_call and its tool_call_update, then stopReason "end_turn";
* ``write CONTENT to /ABS/PATH``: asks session/request_permission, then calls the client's
  fs/write_text_file and reports "wrote PATH" or "write failed: <error message>";
* ``read /ABS/PATH``: calls fs/read_text_file and reports "read: <content>";
* ``FAIL``: answers the prompt with a JSON-RPC error;
* ``SLOW``: waits for session/cancel, then stopReason "cancelled";
* ``EXIT``: the process exits in the middle of the prompt.

Sessions are remembered in ~/.acp-stub-sessions so session/load works after a restart.

Session controls: it offers modes ``ask`` / ``code`` (session/set_mode) and a ``model`` config
option (``stub-small`` / ``stub-large``, session/set_config_option), and an answer to a
prompt with ``STATE`` in it ends with ``[mode=M model=X]``; with ``STUB_PLAIN=1`` in its
environment it offers neither. The MCP servers of each session/new and session/load are appended
to ~/.acp-stub-mcp.jsonl; it takes http MCP servers unless ``STUB_NO_HTTP=1``. Each prompt
reports usage (20 in, 10 out, 5 cache read).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import sys
import threading
import uuid

SESSIONS_FILE = os.path.join(os.path.expanduser("~"), ".acp-stub-sessions")

_write_lock = threading.Lock()
_pending: dict[int, dict] = {}
_pending_cv = threading.Condition()
_ids = itertools.count(1000)
_cancelled: dict[str, threading.Event] = {}
MCP_FILE = os.path.join(os.path.expanduser("~"), ".acp-stub-mcp.jsonl")
PLAIN = os.environ.get("STUB_PLAIN") == "1"
MODES = [{"id": "ask", "name": "Ask"}, {"id": "code", "name": "Code", "description": "edits files"}]
MODELS = [{"value": "stub-small", "name": "Small"}, {"value": "stub-large", "name": "Large"}]
_mode: dict[str, str] = {}
_model: dict[str, str] = {}


def offers(sid: str) -> dict:
    """What session/new and session/load say this session offers (nothing with STUB_PLAIN)."""
    if PLAIN:
        return {}
    return {
        "modes": {"currentModeId": _mode.setdefault(sid, "ask"), "availableModes": MODES},
        "configOptions": config_options(sid),
    }


def config_options(sid: str) -> list:
    return [
        {
            "id": "model",
            "name": "Model",
            "category": "model",
            "type": "select",
            "currentValue": _model.setdefault(sid, "stub-small"),
            "options": MODELS,
        }
    ]


def record_mcp(method: str, params: dict, sid: str) -> None:
    with open(MCP_FILE, "a") as f:
        f.write(
            json.dumps({"method": method, "sessionId": sid, "mcpServers": params.get("mcpServers")}) + "\n"
        )


def send(msg: dict) -> None:
    data = json.dumps(msg) + "\n"
    with _write_lock:
        sys.stdout.write(data)
        sys.stdout.flush()


def notify(method: str, params: dict) -> None:
    send({"jsonrpc": "2.0", "method": method, "params": params})


def call_client(method: str, params: dict) -> dict:
    """Send a request to the client and block until its response (the reader thread delivers it)."""
    rid = next(_ids)
    send({"jsonrpc": "2.0", "id": rid, "method": method, "params": params})
    with _pending_cv:
        while rid not in _pending:
            if not _pending_cv.wait(timeout=60):
                return {"error": {"code": -1, "message": "client did not answer"}}
        return _pending.pop(rid)


def update(session_id: str, upd: dict) -> None:
    notify("session/update", {"sessionId": session_id, "update": upd})


def chunk(session_id: str, text: str) -> None:
    update(session_id, {"sessionUpdate": "agent_message_chunk", "content": {"type": "text", "text": text}})


def known_sessions() -> set[str]:
    try:
        with open(SESSIONS_FILE) as f:
            return {line.strip() for line in f if line.strip()}
    except FileNotFoundError:
        return set()


class RpcError(Exception):
    def __init__(self, code: int, message: str, data: object = None) -> None:
        super().__init__(message)
        self.code, self.message, self.data = code, message, data


def handle_prompt(params: dict) -> dict:
    sid = params["sessionId"]
    if sid not in known_sessions():
        raise RpcError(-32002, "Resource not found", {"uri": sid})
    text = "".join(b.get("text", "") for b in params.get("prompt", []) if b.get("type") == "text")
    cancel = _cancelled.setdefault(sid, threading.Event())
    cancel.clear()
    if "FAIL" in text:
        raise RpcError(-32603, "Internal error", {"details": f"stub failure requested: {text}"})
    if "EXIT" in text:
        chunk(sid, "exiting")
        sys.stdout.flush()
        os._exit(3)
    chunk(sid, "Hello from stub. ")
    chunk(sid, f"You said: {text}")
    if "SLOW" in text:
        cancel.wait(timeout=60)
        return {"stopReason": "cancelled" if cancel.is_set() else "end_turn"}
    tool_id = f"call-{uuid.uuid4().hex[:8]}"
    m = re.search(r"write (.+?) to (/\S+)", text)
    r = re.search(r"read (/\S+)", text)
    if m:
        content, path = m.group(1), m.group(2)
        update(
            sid,
            {
                "sessionUpdate": "tool_call",
                "toolCallId": tool_id,
                "title": f"Write {path}",
                "kind": "edit",
                "status": "pending",
            },
        )
        perm = call_client(
            "session/request_permission",
            {
                "sessionId": sid,
                "toolCall": {"toolCallId": tool_id, "title": f"Write {path}", "kind": "edit"},
                "options": [
                    {"optionId": "no", "name": "Reject", "kind": "reject_once"},
                    {"optionId": "yes", "name": "Allow", "kind": "allow_once"},
                ],
            },
        )
        outcome = (perm.get("result") or {}).get("outcome") or {}
        if outcome.get("outcome") != "selected" or outcome.get("optionId") != "yes":
            update(sid, {"sessionUpdate": "tool_call_update", "toolCallId": tool_id, "status": "failed"})
            chunk(sid, f"\npermission denied: {json.dumps(perm)}")
            return {"stopReason": "end_turn"}
        resp = call_client("fs/write_text_file", {"sessionId": sid, "path": path, "content": content})
        if "error" in resp:
            update(sid, {"sessionUpdate": "tool_call_update", "toolCallId": tool_id, "status": "failed"})
            chunk(sid, f"\nwrite failed: {json.dumps(resp['error'])}")
        else:
            update(sid, {"sessionUpdate": "tool_call_update", "toolCallId": tool_id, "status": "completed"})
            chunk(sid, f"\nwrote {path}")
    elif r:
        path = r.group(1)
        update(
            sid,
            {
                "sessionUpdate": "tool_call",
                "toolCallId": tool_id,
                "title": f"Read {path}",
                "kind": "read",
                "status": "in_progress",
            },
        )
        resp = call_client("fs/read_text_file", {"sessionId": sid, "path": path})
        if "error" in resp:
            update(sid, {"sessionUpdate": "tool_call_update", "toolCallId": tool_id, "status": "failed"})
            chunk(sid, f"\nread failed: {json.dumps(resp['error'])}")
        else:
            update(sid, {"sessionUpdate": "tool_call_update", "toolCallId": tool_id, "status": "completed"})
            chunk(sid, f"\nread: {resp['result']['content']}")
    else:
        update(
            sid,
            {
                "sessionUpdate": "tool_call",
                "toolCallId": tool_id,
                "title": "think",
                "kind": "think",
                "status": "in_progress",
            },
        )
        update(sid, {"sessionUpdate": "tool_call_update", "toolCallId": tool_id, "status": "completed"})
    if "STATE" in text and not PLAIN:
        chunk(sid, f"\n[mode={_mode.get(sid, 'ask')} model={_model.get(sid, 'stub-small')}]")
    usage = {"totalTokens": 35, "inputTokens": 20, "outputTokens": 10, "cachedReadTokens": 5}
    return {"stopReason": "end_turn", "usage": usage}


def handle_request(msg: dict) -> None:
    method, params = msg.get("method"), msg.get("params") or {}
    try:
        if method == "initialize":
            result: object = {
                "protocolVersion": 1,
                "agentCapabilities": {
                    "loadSession": True,
                    "mcpCapabilities": {"http": os.environ.get("STUB_NO_HTTP") != "1"},
                },
                "agentInfo": {"name": "acp-stub", "version": "0.1"},
                "authMethods": [],
            }
        elif method == "session/new":
            sid = f"stub-{uuid.uuid4().hex[:12]}"
            with open(SESSIONS_FILE, "a") as f:
                f.write(sid + "\n")
            record_mcp(method, params, sid)
            result = {"sessionId": sid, **offers(sid)}
        elif method == "session/load":
            if params.get("sessionId") not in known_sessions():
                raise RpcError(-32002, "Resource not found", {"uri": params.get("sessionId")})
            record_mcp(method, params, params["sessionId"])
            result = offers(params["sessionId"])
        elif method == "session/set_mode" and not PLAIN:
            sid, mode = params.get("sessionId"), params.get("modeId")
            if mode not in [m["id"] for m in MODES]:
                raise RpcError(-32602, "Invalid params", {"modeId": mode})
            _mode[sid] = mode
            update(sid, {"sessionUpdate": "current_mode_update", "currentModeId": mode})
            result = {}
        elif method == "session/set_config_option" and not PLAIN:
            sid = params.get("sessionId")
            if params.get("configId") != "model" or params.get("value") not in [m["value"] for m in MODELS]:
                raise RpcError(-32602, "Invalid params", params)
            _model[sid] = params["value"]
            result = {"configOptions": config_options(sid)}
        elif method == "session/prompt":
            result = handle_prompt(params)
        else:
            raise RpcError(-32601, "Method not found", {"method": method})
        send({"jsonrpc": "2.0", "id": msg["id"], "result": result})
    except RpcError as exc:
        err = {"code": exc.code, "message": exc.message}
        if exc.data is not None:
            err["data"] = exc.data
        send({"jsonrpc": "2.0", "id": msg["id"], "error": err})


def main() -> None:
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        msg = json.loads(line)
        if "method" not in msg:  # a response to one of our requests to the client
            with _pending_cv:
                _pending[msg["id"]] = msg
                _pending_cv.notify_all()
        elif "id" not in msg:  # a notification
            if msg["method"] == "session/cancel":
                _cancelled.setdefault(msg["params"]["sessionId"], threading.Event()).set()
        else:  # requests run on their own thread so a prompt can wait for cancel or the client
            threading.Thread(target=handle_request, args=(msg,), daemon=True).start()


if __name__ == "__main__":
    main()
