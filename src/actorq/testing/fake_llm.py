"""A small OpenAI-compatible chat-completions server on 127.0.0.1: the test suite's (and demo's) LLM.

Agents in VMs (pi's ``openai-completions`` provider) talk to it exactly as they would to a real
provider, so tests run the whole chain with no network and no API key. Three ways to use it::

    async with FakeLLM() as llm:            # tests: free port, llm.url ends in /v1
        llm.script([Reply.error(500, "boom"), Reply.text("hi", delay=5)])
        ...                                 # llm.requests holds every request body received

    python -m actorq.testing.fake_llm --port 8765      # demo: a deterministic "stand-in model"

With no script queued it behaves as the stand-in model (:func:`stand_in_reply`): asked to write
something to a file path it answers with one ``write`` tool call holding a deterministic summary of
the prompt; after the tool result it answers with a short final text; otherwise a short text.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import re
import time
from collections import deque
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

DEFAULT_MODEL = "stand-in"
PROVIDER = "actorq-fake"


@dataclass(frozen=True)
class Reply:
    """One canned answer: text, a tool call, an HTTP error, or a malformed stream.

    ``delay`` (seconds) is spent after the response has started streaming (headers and the first
    chunk are sent), so a client sees a prompt in progress and can cancel it.
    """

    kind: str  # "text" | "tool_call" | "error" | "malformed"
    content: str = ""  # text, or the error body
    tool: str = ""
    arguments: dict[str, Any] = field(default_factory=dict)
    status: int = 500
    delay: float = 0.0

    @staticmethod
    def text(content: str, *, delay: float = 0.0) -> Reply:
        return Reply("text", content=content, delay=delay)

    @staticmethod
    def tool_call(name: str, arguments: dict[str, Any], *, delay: float = 0.0) -> Reply:
        return Reply("tool_call", tool=name, arguments=dict(arguments), delay=delay)

    @staticmethod
    def error(status: int = 500, body: str = "fake LLM failure", *, delay: float = 0.0) -> Reply:
        return Reply("error", status=status, content=body, delay=delay)

    @staticmethod
    def malformed(*, delay: float = 0.0) -> Reply:
        return Reply("malformed", delay=delay)


# --- the stand-in model ----------------------------------------------------------------------

# "write a summary to /home/user/review.txt: ..." / "write the result into /tmp/x.md"
_WRITE_TO = re.compile(r"\bwrite\b[^\n]*?\b(?:to|into)\s+(/[^\s:,;'\"`]+)", re.IGNORECASE)
_DEFS = re.compile(r"^\s*(?:async\s+)?(?:def|class)\s+([A-Za-z_]\w*)", re.MULTILINE)


def message_text(message: dict[str, Any]) -> str:
    """The text of a chat message whose content is a string or a list of parts."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def summarize(text: str) -> str:
    """A short deterministic summary: line count, def/class names, first non-empty line."""
    lines = text.splitlines()
    first = next((ln.strip() for ln in lines if ln.strip()), "")
    names = _DEFS.findall(text)
    return (
        "Summary (stand-in model)\n"
        f"lines: {len(lines)}\n"
        f"definitions: {', '.join(names) if names else '(none)'}\n"
        f"first line: {first[:200]}\n"
    )


def stand_in_reply(messages: list[dict[str, Any]]) -> Reply:
    """The built-in behaviour, a pure function of the conversation so runs are reproducible."""
    if not messages:
        return Reply.text("Hello from the stand-in model.")
    last = messages[-1]
    if last.get("role") == "tool":
        result = message_text(last).strip().splitlines()
        note = f" ({result[0][:120]})" if result else ""
        return Reply.text(f"Done: the tool finished{note}.")
    prompt = next((message_text(m) for m in reversed(messages) if m.get("role") == "user"), "")
    match = _WRITE_TO.search(prompt)
    if match:
        path = match.group(1).rstrip(".")
        # summarise what follows the path (the material), or the whole prompt if nothing does
        material = prompt[match.end() :].lstrip(" :.\n") or prompt
        return Reply.tool_call("write", {"path": path, "content": summarize(material)})
    words = len(prompt.split())
    return Reply.text(f"Stand-in model here: I read your {words}-word message.")


# --- SSE encoding ----------------------------------------------------------------------------


def _chunk(cid: str, model: str, delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
    return {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


async def _wait_unless_gone(request: web.Request, seconds: float) -> bool:
    """Sleep ``seconds`` in small steps; False as soon as the client has hung up."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        transport = request.transport
        if transport is None or transport.is_closing():
            return False
        await asyncio.sleep(min(0.05, max(deadline - time.monotonic(), 0)))
    return True


def _sse(obj: Any) -> bytes:
    data = obj if isinstance(obj, str) else json.dumps(obj)
    return f"data: {data}\n\n".encode()


class FakeLLM:
    """The server. ``url`` is the base URL (ends in ``/v1``) once started."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, model: str = DEFAULT_MODEL) -> None:
        self.host = host
        self.port = port
        self.model = model
        self.requests: list[dict[str, Any]] = []
        self._script: deque[Reply] = deque()
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._handlers: set[asyncio.Task[Any]] = set()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def script(self, replies: Iterable[Reply | str]) -> None:
        """Queue canned replies, consumed one per chat request (a ``str`` is a text reply)."""
        self._script.extend(Reply.text(r) if isinstance(r, str) else r for r in replies)

    @property
    def pending(self) -> int:
        """How many scripted replies are not consumed yet."""
        return len(self._script)

    def agent_files(self) -> dict[str, str]:
        return pi_agent_files(self.url, self.model)

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        addresses = self._runner.addresses
        if addresses:
            self.port = int(addresses[0][1])

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        # a slow scripted reply must not hold up shutdown (aiohttp waits for open handlers)
        for task in list(self._handlers):
            task.cancel()
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> FakeLLM:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"object": "list", "data": [{"id": self.model, "object": "model", "owned_by": PROVIDER}]}
        )

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            return await self._answer(request)
        finally:
            self._handlers.discard(task)

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"error": {"message": "request body is not JSON"}}, status=400)
        if not isinstance(body, dict):
            return web.json_response({"error": {"message": "request body must be an object"}}, status=400)
        self.requests.append(body)
        messages = body.get("messages")
        reply = (
            self._script.popleft()
            if self._script
            else stand_in_reply(messages if isinstance(messages, list) else [])
        )
        model = str(body.get("model") or self.model)
        if reply.kind == "error":
            if reply.delay:
                await asyncio.sleep(reply.delay)
            err = {"error": {"message": reply.content, "type": "server_error", "code": reply.status}}
            return web.json_response(err, status=reply.status)
        if body.get("stream") is False:
            return await self._plain(reply, model)
        return await self._stream(request, reply, model, body)

    async def _plain(self, reply: Reply, model: str) -> web.Response:
        """A non-streaming answer, for clients that ask for one."""
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.kind == "malformed":
            return web.Response(text="{not json", content_type="application/json")
        message, finish = self._message(reply)
        return web.json_response(
            {
                "id": f"chatcmpl-{next(self._ids)}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}
                ],
                "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
            }
        )

    def _message(self, reply: Reply) -> tuple[dict[str, Any], str]:
        if reply.kind == "tool_call":
            call = {
                "index": 0,
                "id": f"call_{next(self._ids)}",
                "type": "function",
                "function": {"name": reply.tool, "arguments": json.dumps(reply.arguments)},
            }
            return {"content": None, "tool_calls": [call]}, "tool_calls"
        return {"content": reply.content}, "stop"

    async def _stream(
        self, request: web.Request, reply: Reply, model: str, body: dict[str, Any]
    ) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        cid = f"chatcmpl-{next(self._ids)}"
        # the client may hang up (abort) at any point; that ends this reply quietly
        with contextlib.suppress(ConnectionError):
            await resp.write(_sse(_chunk(cid, model, {"role": "assistant", "content": ""}, None)))
            if reply.delay and not await _wait_unless_gone(request, reply.delay):
                return resp
            async for event in self._events(cid, model, reply, body):
                await resp.write(event)
            await resp.write_eof()
        return resp

    async def _events(self, cid: str, model: str, reply: Reply, body: dict[str, Any]) -> AsyncIterator[bytes]:
        if reply.kind == "malformed":
            yield b"data: {this is not json\n\n"
            return
        message, finish = self._message(reply)
        if reply.kind == "tool_call":
            yield _sse(_chunk(cid, model, {"tool_calls": message["tool_calls"]}, None))
        else:
            # a few deltas so clients see streaming, split on word boundaries
            for piece in re.findall(r"\S+\s*|\s+", reply.content) or [""]:
                yield _sse(_chunk(cid, model, {"content": piece}, None))
        yield _sse(_chunk(cid, model, {}, finish))
        options = body.get("stream_options")
        if isinstance(options, dict) and options.get("include_usage"):
            usage = {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20}
            yield _sse(
                {"id": cid, "object": "chat.completion.chunk", "model": model, "choices": [], "usage": usage}
            )
        yield _sse("[DONE]")


def pi_agent_files(base_url: str, model: str = DEFAULT_MODEL, *, retries: int = 0) -> dict[str, str]:
    """``.pi/agent/models.json`` and ``settings.json`` (paths relative to /home/user) for this server.

    ``retries`` is pi's own retry count on transient errors (0 by default so a scripted HTTP 500
    fails the prompt at once); the HTTP client's retries are always off for the same reason.
    """
    models = {
        "providers": {
            PROVIDER: {
                "baseUrl": base_url,
                "api": "openai-completions",
                "apiKey": "fake-llm-key",  # the server ignores it; pi requires one
                "compat": {"supportsDeveloperRole": False, "supportsReasoningEffort": False},
                "models": [
                    {
                        "id": model,
                        "name": f"{model} (fake LLM)",
                        "reasoning": False,
                        "input": ["text"],
                        "contextWindow": 128000,
                        "maxTokens": 4096,
                    }
                ],
            }
        }
    }
    settings = {
        "defaultProvider": PROVIDER,
        "defaultModel": model,
        "retry": {
            "enabled": retries > 0,
            "maxRetries": max(retries, 0),
            "baseDelayMs": 50,
            "provider": {"maxRetries": 0},
        },
    }
    return {
        ".pi/agent/models.json": json.dumps(models, indent=2) + "\n",
        ".pi/agent/settings.json": json.dumps(settings, indent=2) + "\n",
    }


async def _serve(host: str, port: int, model: str) -> None:
    async with FakeLLM(host=host, port=port, model=model) as llm:
        print(f"fake LLM ({model}) listening on {llm.url}", flush=True)
        await asyncio.Event().wait()  # until interrupted


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A deterministic OpenAI-compatible stand-in model.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.host, args.port, args.model))


if __name__ == "__main__":
    main()
