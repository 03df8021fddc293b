"""Permissions and approvals for agents in VMs: policy matching (fast, no VM), then real pi against
the fake LLM and the ACP stub agent with tool calls held for approval, and a held call surviving a
``kill -9`` of a real server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from actorq import NotFound, ValidationError
from actorq.agent_os.permissions import Permissions, Rule, ToolRequest, allow, ask, deny
from actorq.errors import CompletionError

# -- policy matching ------------------------------------------------------------------------------


def pi(tool: str, **args: Any) -> ToolRequest:
    return ToolRequest.from_pi(tool, args, "/home/user/project")


def acp(kind: str, *, paths: tuple[str, ...] = (), raw: Any = None, title: str = "t") -> ToolRequest:
    return ToolRequest.from_acp(kind, title, raw, paths, "/home/user")


def test_first_match_wins_and_the_default_applies() -> None:
    p = Permissions(rules=[deny("bash", command="rm *"), ask("bash"), allow("read")], default="deny")
    assert p.decide(pi("bash", command="rm -rf /")).action == "deny"
    assert p.decide(pi("bash", command="ls")).action == "ask"
    assert p.decide(pi("read", path="a.txt")).action == "allow"
    d = p.decide(pi("write", path="a.txt", content="x"))
    assert d.action == "deny" and d.rule is None


def test_tool_names_and_kinds_match_both_agents() -> None:
    p = Permissions(rules=[ask("execute"), deny("edit")])
    assert p.decide(pi("bash", command="ls")).action == "ask"  # pi's bash is an execute
    assert p.decide(acp("execute", raw={"command": "ls"})).action == "ask"
    assert p.decide(pi("write", path="x", content="")).action == "deny"
    assert p.decide(acp("edit", paths=("/home/user/x",))).action == "deny"
    assert p.decide(acp("read")).action == "allow"
    assert Permissions(rules=[deny(["read", "search"])]).decide(pi("grep", pattern="x")).action == "deny"


def test_path_patterns_inside_and_outside_a_directory() -> None:
    p = Permissions(rules=[ask(path="!/home/user/project/**"), allow(path="/home/user/project/**")], default="deny")
    assert p.decide(pi("write", path="src/a.py", content="")).action == "allow"  # relative to cwd
    assert p.decide(pi("write", path="/home/user/project", content="")).action == "allow"
    assert p.decide(pi("write", path="../other/a.py", content="")).action == "ask"
    assert p.decide(pi("edit", path="/etc/passwd")).action == "ask"
    assert p.decide(pi("bash", command="cat /etc/passwd")).action == "deny"  # no path: no match
    one_level = Permissions(rules=[deny(path="/home/user/*.txt")])
    assert one_level.decide(pi("write", path="/home/user/a.txt", content="")).action == "deny"
    assert one_level.decide(pi("write", path="/home/user/d/a.txt", content="")).action == "allow"
    move = acp("move", paths=("/home/user/project/a", "/tmp/a"))
    assert Permissions(rules=[allow(path="/home/user/project/**")], default="deny").decide(move).action == "deny"


def test_command_glob_and_regex_and_host_patterns() -> None:
    p = Permissions(
        rules=[
            deny(command="re:\\bsudo\\b"),
            ask(host="*.example.com"),
            deny(host="!github.com"),
            allow(command="git *"),
        ],
        default="ask",
    )
    assert p.decide(pi("bash", command="echo hi && sudo ls")).action == "deny"
    assert p.decide(pi("bash", command="curl https://api.example.com/x")).action == "ask"
    assert p.decide(pi("bash", command="curl https://evil.org/x")).action == "deny"
    assert p.decide(pi("bash", command="git clone https://github.com/a/b")).action == "allow"
    assert p.decide(pi("bash", command="git status")).action == "allow"
    assert p.decide(acp("fetch", raw={"url": "https://API.example.com"})).action == "ask"
    assert p.decide(pi("bash", command="make")).action == "ask"


@pytest.mark.parametrize(
    "build",
    [
        lambda: Rule("maybe"),
        lambda: ask(command="re:(unclosed"),
        lambda: ask(path="relative/*"),
        lambda: ask(path=""),
        lambda: ask(host="a host"),
        lambda: ask(host="http://x/"),
        lambda: ask("bad tool name!"),
        lambda: ask(command="[abc"),
        lambda: Permissions(default="sometimes"),
        lambda: Permissions(on_timeout="ask"),
        lambda: Permissions(timeout=0),
        lambda: Permissions(timeout=float("inf")),
        lambda: Permissions.parse({"rules": [{"action": "ask", "paht": "/x"}]}),
        lambda: Permissions.parse({"rules": [{"tool": "bash"}]}),
        lambda: Permissions.parse({"rulez": []}),
        lambda: Permissions.parse("allow everything"),
    ],
)
def test_bad_policies_are_validation_errors(build: Any) -> None:
    with pytest.raises(ValidationError):
        build()


def test_a_policy_round_trips_through_json() -> None:
    p = Permissions(rules=[ask("bash", command="rm *"), deny(path="!/home/user/**")], timeout=5, on_timeout="allow")
    again = Permissions.parse(json.loads(json.dumps(p.to_dict())))
    assert again == p


def test_a_request_fingerprint_ignores_the_call_id_but_not_its_input() -> None:
    assert pi("write", path="a", content="x").fingerprint == pi("write", path="a", content="x").fingerprint
    assert pi("write", path="a", content="x").fingerprint != pi("write", path="a", content="y").fingerprint
