"""The fake Anthropic Messages API speaks the wire format Claude Code reads: SSE events in order,
a tool call as input_json_delta pieces that join to its input, plain JSON when not streaming."""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from actorq.testing.fake_anthropic import FakeAnthropic

WRITE = {"name": "Write", "description": "write a file", "input_schema": {"type": "object"}}


def _events(raw: str) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for block in raw.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        out.append((lines["event"], json.loads(lines["data"])))
    return out


async def test_streamed_tool_call_then_text_and_side_calls() -> None:
    async with FakeAnthropic() as api, aiohttp.ClientSession() as http:
        prompt = {
            "role": "user",
            "content": [{"type": "text", "text": "Write a summary to /home/user/a.txt: x"}],
        }
        body = {"model": "m", "stream": True, "tools": [WRITE], "messages": [prompt]}
        async with http.post(api.url + "/v1/messages", json=body) as r:
            assert r.headers["Content-Type"].startswith("text/event-stream")
            events = _events(await r.text())
        names = [e for e, _ in events]
        assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
        assert events[names.index("content_block_start")][1]["content_block"]["name"] == "Write"
        args = "".join(d["delta"]["partial_json"] for e, d in events if e == "content_block_delta")
        assert json.loads(args)["file_path"] == "/home/user/a.txt"
        assert events[-2][1]["delta"]["stop_reason"] == "tool_use"

        result = {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "ok"}]}
        body = {
            "model": "m",
            "tools": [WRITE],
            "messages": [prompt, {"role": "assistant", "content": []}, result],
        }
        async with http.post(api.url + "/v1/messages", json=body) as r:
            msg = await r.json()
        assert msg["stop_reason"] == "end_turn" and msg["content"][0]["text"].startswith("Done")

        async with http.post(api.url + "/v1/messages", json={"model": "m", "messages": [prompt]}) as r:
            assert (await r.json())["content"][0]["text"] == "ok"  # a side call: no tools
        async with http.post(api.url + "/v1/messages/count_tokens", json={"messages": [prompt]}) as r:
            assert (await r.json())["input_tokens"] > 0
        async with http.post(api.url + "/v1/messages", data=b"not json") as r:
            assert r.status == 400
        assert len(api.requests) == 2 and len(api.side_calls) == 1
