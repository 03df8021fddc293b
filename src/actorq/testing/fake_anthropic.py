"""A small Anthropic Messages API server on 127.0.0.1: the test suite's provider for Claude Code.

Claude Code (through ``claude-agent-acp``) talks to it as to Anthropic when ``ANTHROPIC_BASE_URL``
points here (any ``ANTHROPIC_API_KEY`` will do)::

    async with FakeAnthropic() as api:      # free port; api.url has no /v1 (the client adds it)
        env = api.agent_env()               # ANTHROPIC_BASE_URL, a key, no non-essential traffic
        ...                                 # api.requests holds every /v1/messages body received

``POST /v1/messages`` answers as Anthropic does, streamed (SSE ``message_start``,
``content_block_start`` / ``content_block_delta`` with ``text_delta`` or ``input_json_delta`` /
``content_block_stop``, ``message_delta`` with the ``stop_reason``, ``message_stop``) or as one
JSON message. Like :class:`~actorq.testing.fake_llm.FakeLLM` it is a deterministic stand-in
model: asked (with a ``Write`` tool offered) to "write ... to /some/path: material", it calls
``Write`` with ``file_path`` and a summary of the material; after that tool's result it answers
with a short final text. Claude Code's side calls (titles, topic checks, quota probes: requests
with no tools) get a short text and are counted in ``side_calls``; ``count_tokens`` is answered
too. Replies can also be scripted (:class:`~actorq.testing.fake_llm.Reply`).
"""

from __future__ import annotations

import contextlib
import itertools
import json
from collections import deque
from collections.abc import AsyncIterator, Iterable
from typing import Any

from aiohttp import web

from actorq.testing.fake_llm import _WRITE_TO, Reply, summarize

MODEL = "claude-stand-in"


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text"]
        return "".join(str(t) for t in texts)
    return ""


def _has_tool_result(content: Any) -> bool:
    return isinstance(content, list) and any(
        isinstance(b, dict) and b.get("type") == "tool_result" for b in content
    )


def stand_in_reply(body: dict[str, Any]) -> Reply:
    """The built-in behaviour: a pure function of the request (see the module docstring)."""
    # the user's turns only: Claude Code also puts ``system`` entries (its environment) in messages
    messages = [m for m in body.get("messages") or [] if isinstance(m, dict) and m.get("role") == "user"]
    tools = {t.get("name") for t in body.get("tools") or [] if isinstance(t, dict)}
    last = messages[-1] if messages else {}
    if _has_tool_result(last.get("content")):
        return Reply.text("Done: the file is written.")
    prompt = _text(last.get("content"))
    match = _WRITE_TO.search(prompt)
    if match and "Write" in tools:
        path = match.group(1).rstrip(".")
        material = prompt[match.end() :].lstrip(" :.\n") or prompt
        return Reply.tool_call("Write", {"file_path": path, "content": summarize(material)})
    return Reply.text(f"Stand-in model here: I read your {len(prompt.split())}-word message.")


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


class FakeAnthropic:
    """The server (see the module docstring)."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self.requests: list[dict[str, Any]] = []  # main-agent requests (with tools)
        self.side_calls: list[dict[str, Any]] = []  # requests without tools
        self.paths: list[str] = []  # every path asked for, answered or not
        self._script: deque[Reply] = deque()
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def agent_env(self) -> dict[str, str]:
        """The env that points Claude Code here and keeps it from anything else on the network."""
        return {
            "ANTHROPIC_BASE_URL": self.url,
            "ANTHROPIC_API_KEY": "sk-ant-fake-key-for-tests",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_AUTOUPDATER": "1",
            "DISABLE_TELEMETRY": "1",
            "DISABLE_ERROR_REPORTING": "1",
        }

    def script(self, replies: Iterable[Reply | str]) -> None:
        """Queue answers for the next main-agent requests (strings are text replies)."""
        self._script.extend(Reply.text(r) if isinstance(r, str) else r for r in replies)

    async def start(self) -> None:
        app = web.Application(client_max_size=64 << 20)
        app.router.add_post("/v1/messages", self._messages)
        app.router.add_post("/v1/messages/count_tokens", self._count)
        app.router.add_route("*", "/{tail:.*}", self._other)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        addresses = self._runner.addresses
        if addresses:
            self.port = int(addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            with contextlib.suppress(Exception):
                await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeAnthropic:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _other(self, request: web.Request) -> web.Response:
        self.paths.append(request.path)
        return web.json_response(
            {"type": "error", "error": {"type": "not_found_error", "message": "not here"}}, status=404
        )

    async def _count(self, request: web.Request) -> web.Response:
        self.paths.append(request.path)
        body = await request.json()
        return web.json_response({"input_tokens": max(1, len(json.dumps(body)) // 4)})

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        self.paths.append(request.path)
        try:
            body = await request.json()
        except ValueError:
            return web.json_response(
                {"type": "error", "error": {"type": "invalid_request_error", "message": "not JSON"}},
                status=400,
            )
        if body.get("tools"):
            self.requests.append(body)
            reply = self._script.popleft() if self._script else stand_in_reply(body)
        else:
            self.side_calls.append(body)
            reply = Reply.text("ok")
        if reply.kind == "error":
            return web.json_response(
                {"type": "error", "error": {"type": "api_error", "message": reply.content}},
                status=reply.status,
            )
        model = str(body.get("model") or MODEL)
        mid = f"msg_fake{next(self._ids):06d}"
        if not body.get("stream"):
            return web.json_response(self._message(mid, model, reply))
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        async for chunk in self._events(mid, model, reply):
            await resp.write(chunk)
        await resp.write_eof()
        return resp

    def _message(self, mid: str, model: str, reply: Reply) -> dict[str, Any]:
        if reply.kind == "tool_call":
            content: list[dict[str, Any]] = [
                {"type": "tool_use", "id": f"toolu_{mid}", "name": reply.tool, "input": reply.arguments}
            ]
            stop = "tool_use"
        else:
            content, stop = [{"type": "text", "text": reply.content}], "end_turn"
        return {
            "id": mid,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": {"input_tokens": 10, "output_tokens": 10},
        }

    async def _events(self, mid: str, model: str, reply: Reply) -> AsyncIterator[bytes]:
        start = self._message(mid, model, reply) | {"content": [], "stop_reason": None}
        start["usage"] = {"input_tokens": 10, "output_tokens": 1}
        yield _sse("message_start", {"type": "message_start", "message": start})
        yield _sse("ping", {"type": "ping"})
        if reply.kind == "tool_call":
            block = {"type": "tool_use", "id": f"toolu_{mid}", "name": reply.tool, "input": {}}
            args = json.dumps(reply.arguments)
            parts = [args[i : i + 40] for i in range(0, len(args), 40)]
            deltas = [{"type": "input_json_delta", "partial_json": p} for p in parts]
            stop = "tool_use"
        else:
            block = {"type": "text", "text": ""}
            words = reply.content.split(" ")
            deltas = [
                {"type": "text_delta", "text": w + (" " if i < len(words) - 1 else "")}
                for i, w in enumerate(words)
            ]
            stop = "end_turn"
        yield _sse("content_block_start", {"type": "content_block_start", "index": 0, "content_block": block})
        for d in deltas:
            yield _sse("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": d})
        yield _sse("content_block_stop", {"type": "content_block_stop", "index": 0})
        yield _sse(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop, "stop_sequence": None},
                "usage": {"output_tokens": 10},
            },
        )
        yield _sse("message_stop", {"type": "message_stop"})


__all__ = ["MODEL", "FakeAnthropic", "stand_in_reply"]
