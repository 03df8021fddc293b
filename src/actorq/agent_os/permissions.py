"""Permission policies for agents in VMs: which tool calls run, which are refused, which wait for a
person (``Permissions``, ``Rule``, and the ``allow`` / ``deny`` / ``ask`` shorthands).

A policy is an ordered list of rules and a default. Each tool call an agent wants to make becomes a
:class:`ToolRequest` (its tool, kind, command, paths and hosts); the first rule whose criteria all
match decides; no match means the policy's ``default``. A rule's criteria:

* ``tool``: tool names or kinds, any of which matches. ACP agents report a kind (``read``,
  ``edit``, ``delete``, ``move``, ``search``, ``execute``, ``think``, ``fetch``, ``other``); pi
  reports its tool's name (``read``, ``write``, ``edit``, ``bash``, ``grep``, ``find``, ``ls``) and
  its kind is derived (``bash`` is ``execute``, ``write`` and ``edit`` are ``edit``, ...), so either
  spelling matches;
* ``command``: a shell command pattern (only requests that carry a command match);
* ``path``: a VM path pattern; it matches when every path the request names matches (only
  requests that name paths match);
* ``host``: a network host pattern; it matches when every host the request names matches.

Patterns are globs (``*`` any characters in commands and hosts; in paths ``*`` stays within one
segment and ``**`` crosses segments, ``/a/**`` matching ``/a`` itself too), ``re:<regex>`` for a
regular expression (searched in commands, matched whole against paths and hosts), and a leading
``!`` negates (``path="!/home/user/project/**"``: a path outside the project). A bad pattern, tool
name, action or timeout is a :class:`~actorq.errors.ValidationError` where the policy is built.

``ask`` rules hold the call until someone answers (``approvals.py``); an ask not answered within
``timeout`` seconds gets ``on_timeout``.

Knows nothing of actors or agents' protocols; ``approvals.py`` and the drivers use it.
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import json
import math
import posixpath
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from actorq.errors import ValidationError

ACTIONS = ("allow", "deny", "ask")
ANSWERS = ("allow", "deny")
ACP_KINDS = ("read", "edit", "delete", "move", "search", "execute", "think", "fetch", "other")
PI_KINDS = {
    "read": "read",
    "write": "edit",
    "edit": "edit",
    "bash": "execute",
    "grep": "search",
    "find": "search",
    "ls": "search",
}
MAX_TIMEOUT = 7 * 24 * 3600.0
_TOOL_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")
_URL_HOST = re.compile(r"\b[a-z][a-z0-9+.-]*://(?:[^@/\s'\"]*@)?(\[[^\]]+\]|[^/:\s'\"?#]+)", re.I)
_PATH_KEYS = ("path", "file_path", "filePath", "abs_path", "absPath", "source", "destination", "target")


@dataclass(frozen=True)
class ToolRequest:
    """One tool call an agent wants to make, as the policy sees it."""

    tool: str  # the agent's own name for the tool (pi: "bash"; ACP: its kind)
    kind: str  # one of ACP_KINDS
    title: str = ""
    command: str | None = None
    paths: tuple[str, ...] = ()
    hosts: tuple[str, ...] = ()
    input: Any = None  # the tool's arguments (JSON), for people deciding

    @property
    def fingerprint(self) -> str:
        """Stable identity of the call (not its id): an answer stored for it applies to the same
        call asked again after a restart."""
        raw = json.dumps(
            [self.tool, self.kind, self.title, self.command, self.paths, self.hosts, self.input],
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(raw.encode()).hexdigest()[:32]

    @classmethod
    def from_pi(cls, tool: str, args: Any, cwd: str) -> ToolRequest:
        """A pi tool call (``tool_call`` event: its name and input)."""
        args = args if isinstance(args, dict) else {}
        command = args.get("command") if tool == "bash" else None
        command = command if isinstance(command, str) else None
        paths = _paths_of(args, cwd)
        if tool in ("grep", "find", "ls") and not paths:
            paths = (posixpath.normpath(cwd),)  # they search the working directory by default
        return cls(
            tool=tool,
            kind=PI_KINDS.get(tool, "other"),
            title=f"{tool} {command or ' '.join(paths)}".strip()[:500],
            command=command,
            paths=paths,
            hosts=_hosts_in(command or "", args),
            input=args,
        )

    @classmethod
    def from_acp(
        cls, kind: str | None, title: str | None, raw_input: Any, locations: Iterable[str], cwd: str
    ) -> ToolRequest:
        """An ACP ``session/request_permission`` tool call."""
        k = kind if kind in ACP_KINDS else "other"
        args = raw_input if isinstance(raw_input, dict) else {}
        command = args.get("command") if isinstance(args.get("command"), str) else None
        if command is None and isinstance(args.get("cmd"), str):
            command = args["cmd"]
        if isinstance(command, str) and isinstance(args.get("args"), list):
            command = " ".join([command, *map(str, args["args"])])
        paths = tuple(dict.fromkeys([*(_norm(p, cwd) for p in locations if p), *_paths_of(args, cwd)]))
        return cls(
            tool=k,
            kind=k,
            title=(title or k)[:500],
            command=command,
            paths=paths,
            hosts=_hosts_in(command or "", args),
            input=raw_input,
        )


def _norm(path: str, cwd: str) -> str:
    return posixpath.normpath(posixpath.join(cwd, path))


def _paths_of(args: Mapping[str, Any], cwd: str) -> tuple[str, ...]:
    found = [args[k] for k in _PATH_KEYS if isinstance(args.get(k), str) and args[k]]
    return tuple(dict.fromkeys(_norm(p, cwd) for p in found))


def _hosts_in(command: str, args: Mapping[str, Any]) -> tuple[str, ...]:
    texts = [command, *(v for k, v in args.items() if k in ("url", "uri", "host") and isinstance(v, str))]
    hosts: list[str] = []
    for text in texts:
        hosts += [m.group(1).strip("[]").lower() for m in _URL_HOST.finditer(text)]
    host = args.get("host")
    if isinstance(host, str) and "://" not in host and host:
        hosts.append(host.lower())
    return tuple(dict.fromkeys(hosts))


# -- patterns ------------------------------------------------------------------------------------
def _path_regex(glob: str) -> str:
    out, i = [], 0
    while i < len(glob):
        if glob.startswith("/**", i) and i + 3 == len(glob):
            out.append("(?:/.*)?")  # "/a/**" is /a and everything below it
            i += 3
        elif glob.startswith("**", i):
            out.append(".*")
            i += 2
        elif glob[i] == "*":
            out.append("[^/]*")
            i += 1
        elif glob[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(glob[i]))
            i += 1
    return "".join(out)


@functools.lru_cache(maxsize=1024)
def _compile(what: str, pattern: str) -> tuple[bool, re.Pattern[str], bool]:
    """(negated, regex, search-not-fullmatch) for a pattern; ValidationError if it is not one."""
    if not isinstance(pattern, str) or not pattern.strip():
        raise ValidationError(f"a {what} pattern is a non-empty string", details={"pattern": pattern})
    negated = pattern.startswith("!")
    body = pattern[1:] if negated else pattern
    if body.startswith("re:"):
        try:
            rx = re.compile(body[3:], re.I if what == "host" else 0)
        except re.error as exc:
            raise ValidationError(
                f"bad {what} regex {body[3:]!r}: {exc}", details={"pattern": pattern}
            ) from None
        return negated, rx, what == "command"
    if not body:
        raise ValidationError(f"a {what} pattern is a non-empty string", details={"pattern": pattern})
    if what == "path":
        if not body.startswith("/") or "\0" in body:
            raise ValidationError(
                f"a path pattern is absolute (starts with /), not {pattern!r}", details={"pattern": pattern}
            )
        return negated, re.compile(_path_regex(posixpath.normpath(body) if "*" not in body else body)), False
    if what == "host" and (any(ch.isspace() for ch in body) or "/" in body):
        raise ValidationError(
            f"a host pattern is a host name or glob (e.g. *.example.com), not {pattern!r}",
            details={"pattern": pattern},
        )
    if "[" in body and "]" not in body[body.index("[") :]:
        raise ValidationError(f"bad {what} glob {pattern!r}: unclosed [", details={"pattern": pattern})
    return negated, re.compile(fnmatch.translate(body.lower() if what == "host" else body)), False


def _matches(what: str, pattern: str, values: Sequence[str]) -> bool:
    negated, rx, search = _compile(what, pattern)
    if not values:
        return False
    hit = all((rx.search(v) if search else rx.fullmatch(v.lower() if what == "host" else v)) for v in values)
    return not hit if negated else hit


def _check_choice(name: str, value: Any, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ValidationError(
            f"{name} is one of {', '.join(map(repr, choices))}, not {value!r}",
            details={"field": name, "allowed": list(choices)},
        )
    return str(value)


# -- rules and policies --------------------------------------------------------------------------
@dataclass(frozen=True)
class Rule:
    """``action`` (allow / deny / ask) for the calls matching every criterion given."""

    action: str
    tool: tuple[str, ...] = ()  # empty: any tool
    command: str | None = None
    path: str | None = None
    host: str | None = None

    def __post_init__(self) -> None:
        _check_choice("a rule's action", self.action, ACTIONS)
        tools = (self.tool,) if isinstance(self.tool, str) else self.tool
        if not isinstance(tools, tuple | list) or not all(
            isinstance(t, str) and (t == "*" or _TOOL_NAME.match(t)) for t in tools
        ):
            raise ValidationError(
                f"a rule's tool is a tool name or kind (or a list of them), not {self.tool!r}",
                details={"kinds": list(ACP_KINDS)},
            )
        object.__setattr__(self, "tool", tuple(tools))
        for what in ("command", "path", "host"):
            value = getattr(self, what)
            if value is not None:
                _compile(what, value)

    def matches(self, req: ToolRequest) -> bool:
        if self.tool and "*" not in self.tool and req.tool not in self.tool and req.kind not in self.tool:
            return False
        if self.command is not None and not _matches(
            "command", self.command, [req.command] if req.command is not None else []
        ):
            return False
        if self.path is not None and not _matches("path", self.path, req.paths):
            return False
        return self.host is None or _matches("host", self.host, req.hosts)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"action": self.action}
        if self.tool:
            out["tool"] = list(self.tool)
        for key in ("command", "path", "host"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out

    @classmethod
    def parse(cls, value: Any) -> Rule:
        if isinstance(value, Rule):
            return value
        if not isinstance(value, Mapping):
            raise ValidationError(f"a rule is a Rule or an object, not {type(value).__name__}")
        unknown = set(value) - {"action", "tool", "command", "path", "host"}
        if unknown:
            raise ValidationError(f"unknown rule fields: {', '.join(sorted(unknown))}")
        if "action" not in value:
            raise ValidationError("a rule needs an action (allow, deny or ask)")
        tool = value.get("tool") or ()
        return cls(
            action=value["action"],
            tool=(tool,) if isinstance(tool, str) else tuple(tool) if isinstance(tool, list) else tool,
            command=value.get("command"),
            path=value.get("path"),
            host=value.get("host"),
        )


def _rule(
    action: str,
    tool: str | Sequence[str] | None,
    command: str | None,
    path: str | None,
    host: str | None,
) -> Rule:
    tools = () if tool is None else (tool,) if isinstance(tool, str) else tuple(tool)
    return Rule(action=action, tool=tools, command=command, path=path, host=host)


def allow(
    tool: str | Sequence[str] | None = None,
    *,
    command: str | None = None,
    path: str | None = None,
    host: str | None = None,
) -> Rule:
    """A rule letting matching calls run."""
    return _rule("allow", tool, command, path, host)


def deny(
    tool: str | Sequence[str] | None = None,
    *,
    command: str | None = None,
    path: str | None = None,
    host: str | None = None,
) -> Rule:
    """A rule refusing matching calls (the agent is told they were denied)."""
    return _rule("deny", tool, command, path, host)


def ask(
    tool: str | Sequence[str] | None = None,
    *,
    command: str | None = None,
    path: str | None = None,
    host: str | None = None,
) -> Rule:
    """A rule holding matching calls until someone answers (``respond_permission``)."""
    return _rule("ask", tool, command, path, host)


@dataclass(frozen=True)
class Decision:
    action: str  # allow / deny / ask
    rule: int | None  # index of the rule that decided; None: the default
    reason: str


@dataclass(frozen=True)
class Permissions:
    """A policy: ``rules`` (first match wins), else ``default``; an ``ask`` waits at most ``timeout``
    seconds for an answer, then gets ``on_timeout``."""

    rules: tuple[Rule, ...] = field(default_factory=tuple)
    default: str = "allow"
    timeout: float = 300.0
    on_timeout: str = "deny"

    def __post_init__(self) -> None:
        if isinstance(self.rules, Rule | Mapping | str) or not isinstance(self.rules, Iterable):
            raise ValidationError("rules is a list of rules")
        object.__setattr__(self, "rules", tuple(Rule.parse(r) for r in self.rules))
        _check_choice("default", self.default, ACTIONS)
        _check_choice("on_timeout", self.on_timeout, ANSWERS)
        t = self.timeout
        if (
            isinstance(t, bool)
            or not isinstance(t, int | float)
            or not math.isfinite(t)
            or not 0 < t <= MAX_TIMEOUT
        ):
            raise ValidationError(
                f"timeout is a number of seconds in (0, {MAX_TIMEOUT:g}], not {t!r}",
                details={"field": "timeout"},
            )
        object.__setattr__(self, "timeout", float(t))

    def decide(self, req: ToolRequest) -> Decision:
        for i, rule in enumerate(self.rules):
            if rule.matches(req):
                return Decision(rule.action, i, f"rule {i}")
        return Decision(self.default, None, "its default")

    def to_dict(self) -> dict[str, Any]:
        return {
            "rules": [r.to_dict() for r in self.rules],
            "default": self.default,
            "timeout": self.timeout,
            "on_timeout": self.on_timeout,
        }

    @classmethod
    def parse(cls, value: Any) -> Permissions | None:
        """A policy from a ``Permissions``, its JSON form (``to_dict``) or ``None``."""
        if value is None or isinstance(value, Permissions):
            return value
        if not isinstance(value, Mapping):
            raise ValidationError(f"permissions is a Permissions or an object, not {type(value).__name__}")
        unknown = set(value) - {"rules", "default", "timeout", "on_timeout"}
        if unknown:
            raise ValidationError(f"unknown permissions fields: {', '.join(sorted(unknown))}")
        return cls(
            rules=tuple(value.get("rules") or ()),
            default=value.get("default", "allow"),
            timeout=value.get("timeout", 300.0),
            on_timeout=value.get("on_timeout", "deny"),
        )


__all__ = ["ACP_KINDS", "Decision", "Permissions", "Rule", "ToolRequest", "allow", "ask", "deny"]
