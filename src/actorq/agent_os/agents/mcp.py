"""MCP servers handed to an agent session: their one wire shape, checked before anything starts.

A caller lists them in ``create_session(..., mcp_servers=[...])``; each is either

* stdio: ``{"name", "command", "args": [...], "env": {NAME: value}}`` (``"type": "stdio"`` may be
  given; the command runs inside the VM, started by the agent), or
* http: ``{"type": "http", "name", "url", "headers": {NAME: value}}`` (``type`` may be left out
  when ``url`` is given).

``env`` values and ``headers`` often hold secrets, so, like a session's ``env``, the list lives only
in the server's memory (see ``sessions.py``), never in the VM's state or in logs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from actorq.agent_os.sandbox import check_env
from actorq.errors import BadRequest

MAX_SERVERS = 32
_MAX_TEXT = 4096


def _text(server: int, key: str, value: Any, *, empty: bool = False) -> str:
    if not isinstance(value, str) or (not value and not empty) or len(value) > _MAX_TEXT or "\0" in value:
        raise BadRequest(
            f"mcp_servers[{server}].{key} is a string without NUL, 1..{_MAX_TEXT} characters",
            details={"index": server, "field": key},
        )
    try:
        value.encode()
    except UnicodeEncodeError:
        raise BadRequest(
            f"mcp_servers[{server}].{key} is not valid Unicode", details={"index": server, "field": key}
        ) from None
    return value


def _strings(server: int, key: str, value: Any) -> dict[str, str]:
    try:
        return check_env(value if value is not None else {})
    except BadRequest as exc:
        raise BadRequest(
            f"mcp_servers[{server}].{key}: {exc.message}", details={"index": server, "field": key}
        ) from None


def check_mcp_servers(servers: Any) -> list[dict[str, Any]]:
    """The ``mcp_servers`` argument as given over the wire, in its one normal form, or BadRequest."""
    if servers is None:
        return []
    if not isinstance(servers, list) or len(servers) > MAX_SERVERS:
        raise BadRequest(f"mcp_servers is a list of at most {MAX_SERVERS} servers")
    out: list[dict[str, Any]] = []
    names: set[str] = set()
    for i, raw in enumerate(servers):
        if not isinstance(raw, Mapping):
            raise BadRequest(f"mcp_servers[{i}] is an object", details={"index": i})
        kind = raw.get("type", "http" if "url" in raw else "stdio")
        allowed = {
            "stdio": {"type", "name", "command", "args", "env"},
            "http": {"type", "name", "url", "headers"},
        }
        if kind not in allowed:
            raise BadRequest(f"mcp_servers[{i}].type is 'stdio' or 'http'", details={"index": i})
        extra = sorted(set(raw) - allowed[kind])
        if extra:
            raise BadRequest(
                f"mcp_servers[{i}] ({kind}) has unknown fields: {', '.join(map(str, extra))[:200]}",
                details={"index": i, "fields": [str(k)[:100] for k in extra[:10]]},
            )
        name = _text(i, "name", raw.get("name"))
        if name in names:
            raise BadRequest(f"two MCP servers are named {name!r}", details={"index": i})
        names.add(name)
        if kind == "stdio":
            args = raw.get("args", [])
            if not isinstance(args, list):
                raise BadRequest(f"mcp_servers[{i}].args is a list of strings", details={"index": i})
            out.append(
                {
                    "type": "stdio",
                    "name": name,
                    "command": _text(i, "command", raw.get("command")),
                    "args": [_text(i, "args", a, empty=True) for a in args],
                    "env": _strings(i, "env", raw.get("env")),
                }
            )
        else:
            url = _text(i, "url", raw.get("url"))
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise BadRequest(f"mcp_servers[{i}].url is an http(s) URL", details={"index": i})
            out.append(
                {
                    "type": "http",
                    "name": name,
                    "url": url,
                    "headers": _strings(i, "headers", raw.get("headers")),
                }
            )
    return out


__all__ = ["MAX_SERVERS", "check_mcp_servers"]
