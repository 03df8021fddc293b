"""Software a VM can run: host directories mounted read-only, and npm packages from a local cache.

A :class:`Software` is a declaration: what to mount where, what to add to ``PATH``, and (for npm
packages) how to install it once into the cache (``actorq software install``). Nothing here runs
inside a VM; the sandbox reads these declarations to build its mounts.

Adding a package is one line::

    eslint = npm_package("eslint", "9.0.0")          # mounted at /opt/eslint, its bins on PATH
    vm = agent_os(software=[software.common, software.pi, eslint])
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from actorq.errors import SandboxUnavailable

PI_PACKAGE = "@mariozechner/pi-coding-agent"
PI_VERSION = "0.73.1"


def cache_dir() -> Path:
    """Where npm packages are installed once: ``$ACTORQ_SOFTWARE`` or ``~/.cache/actorq/software``."""
    raw = os.environ.get("ACTORQ_SOFTWARE")
    return Path(raw) if raw else Path.home() / ".cache" / "actorq" / "software"


@dataclass(frozen=True)
class Software:
    """Read-only mounts (host path → VM path), extra ``PATH`` entries and an optional npm install."""

    name: str
    mounts: tuple[tuple[str, str], ...] = ()
    path: tuple[str, ...] = ()  # VM directories put in front of PATH
    npm: tuple[str, str] | None = None  # (package, version) installed into cache_dir()/<name>-<version>

    @property
    def install_dir(self) -> Path | None:
        if self.npm is None:
            return None
        return cache_dir() / f"{self.name}-{self.npm[1]}"

    def resolved_mounts(self) -> list[tuple[str, str]]:
        """The mounts with the cache resolved; raises SandboxUnavailable if something is missing."""
        out: list[tuple[str, str]] = []
        for host, vm in self.mounts:
            if host.startswith("$CACHE"):
                assert self.install_dir is not None
                host = str(self.install_dir) + host[len("$CACHE") :]
                _world_readable(self.install_dir)
            if not os.path.exists(host):
                hint = (
                    f"; install it with `actorq software install {self.name}`" if self.npm is not None else ""
                )
                raise SandboxUnavailable(
                    f"software {self.name!r} is not installed ({host} is missing){hint}",
                    details={"software": self.name, "missing": host},
                )
            out.append((host, vm))
        return out

    def installed(self) -> bool:
        try:
            self.resolved_mounts()
        except SandboxUnavailable:
            return False
        return True

    def install(self, *, quiet: bool = True) -> Path | None:
        """Install the npm package into the cache (atomically; a no-op when already there)."""
        if self.npm is None or self.installed():
            return self.install_dir
        target = self.install_dir
        assert target is not None
        npm = shutil.which("npm")
        if npm is None:
            raise SandboxUnavailable("npm is needed to install software; install Node.js 20+ and npm")
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{self.name}-", dir=target.parent))
        try:
            package, version = self.npm
            cmd = [npm, "install", "--prefix", str(staging), "--no-audit", "--no-fund", "--omit=dev"]
            if quiet:
                cmd.append("--silent")
            subprocess.run([*cmd, f"{package}@{version}"], check=True)
            if target.exists():
                shutil.rmtree(target)
            staging.rename(target)
            _world_readable(target)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
        return target


def _world_readable(path: Path) -> None:
    """mkdtemp made the install directory 0700; VM processes (an unprivileged uid) must read it."""
    try:
        mode = path.stat().st_mode
        if mode & 0o005 != 0o005:
            path.chmod(mode | 0o755)
    except OSError:
        pass  # not ours to change: the sandbox will say what it cannot read


def npm_package(package: str, version: str, *, name: str | None = None) -> Software:
    """An npm package pinned at ``version``, mounted read-only at ``/opt/<name>``, bins on PATH."""
    short = name or package.rsplit("/", 1)[-1]
    return Software(
        name=short,
        mounts=(("$CACHE", f"/opt/{short}"),),
        path=(f"/opt/{short}/node_modules/.bin",),
        npm=(package, version),
    )


# The host's own tools, read-only: shell, coreutils, git, node, python and their libraries, and the
# host's /etc (certificates, resolver, alternatives). Sandboxed processes are uid 1000 in their own
# user namespace, where host-owned files count as "other": they read only what any unprivileged host
# user could (not /etc/shadow). One bind of /etc instead of a list of files: each bind costs bwrap
# ~0.15 ms and the list took cold start from ~6 to ~9 ms. The VM's own passwd/group/hostname are
# bound on top by the sandbox.
common = Software(
    name="common",
    mounts=(("/usr", "/usr"), ("/etc", "/etc")),
    path=("/usr/local/bin", "/usr/bin", "/bin"),
)

# actorq's pi extensions (the permission hook), shipped in the package and mounted read-only next
# to pi: the VM cannot change what pi loads to enforce a policy
PI_HOOKS_DIR = Path(__file__).resolve().parent / "agents" / "pi_hooks"
PI_HOOKS_VM_DIR = "/opt/actorq-pi-hooks"
pi = replace(
    npm_package(PI_PACKAGE, PI_VERSION, name="pi"),
    mounts=(("$CACHE", "/opt/pi"), (str(PI_HOOKS_DIR), PI_HOOKS_VM_DIR)),
)
PI_CLI = f"/opt/pi/node_modules/{PI_PACKAGE}/dist/cli.js"

# ACP agents, each run by the ACP driver under the agent type of the same name (``vm.py``); pinned
# like pi. claude: Claude Code through the Agent SDK (the SDK package ships Claude Code as a native
# binary for the platform); codex: OpenAI's Codex (``@openai/codex``, native too); gemini: Gemini
# CLI in its ACP mode (``--acp``; ``--experimental-acp`` is this version's deprecated spelling);
# pi-acp: pi over ACP (it runs ``pi``, so it wants ``software.pi`` beside it).
CLAUDE_PACKAGE, CLAUDE_VERSION = "@agentclientprotocol/claude-agent-acp", "0.101.0"
CODEX_PACKAGE, CODEX_VERSION = "@agentclientprotocol/codex-acp", "2.6.0"
GEMINI_PACKAGE, GEMINI_VERSION = "@google/gemini-cli", "0.61.0"
PI_ACP_PACKAGE, PI_ACP_VERSION = "pi-acp", "0.0.34"
claude = npm_package(CLAUDE_PACKAGE, CLAUDE_VERSION, name="claude")
codex = npm_package(CODEX_PACKAGE, CODEX_VERSION, name="codex")
gemini = npm_package(GEMINI_PACKAGE, GEMINI_VERSION, name="gemini")
pi_acp = npm_package(PI_ACP_PACKAGE, PI_ACP_VERSION, name="pi-acp")

# agent type -> the command that starts it in the VM (through the ACP driver)
ACP_AUTH: dict[str, str] = {"codex": "api-key"}  # agent type -> ACP authenticate method it needs
ACP_COMMANDS: dict[str, tuple[str, ...]] = {
    "claude": ("node", f"/opt/claude/node_modules/{CLAUDE_PACKAGE}/dist/index.js"),
    "codex": ("node", f"/opt/codex/node_modules/{CODEX_PACKAGE}/dist/index.js"),
    "gemini": ("node", f"/opt/gemini/node_modules/{GEMINI_PACKAGE}/bundle/gemini.js", "--experimental-acp"),
    "pi-acp": ("node", f"/opt/pi-acp/node_modules/{PI_ACP_PACKAGE}/dist/index.js"),
}

BUILTIN: dict[str, Software] = {
    "common": common,
    "pi": pi,
    "claude": claude,
    "codex": codex,
    "gemini": gemini,
    "pi-acp": pi_acp,
}


def install(names: Sequence[str] = ("pi",), *, quiet: bool = True) -> list[Path]:
    """Install the named built-in packages into the cache (``actorq software install``)."""
    out: list[Path] = []
    for n in names:
        sw = BUILTIN.get(n)
        if sw is None:
            raise ValueError(f"unknown software {n!r}; known: {', '.join(sorted(BUILTIN))}")
        path = sw.install(quiet=quiet)
        if path is not None:
            out.append(path)
    return out


__all__ = [
    "ACP_AUTH",
    "ACP_COMMANDS",
    "PI_CLI",
    "PI_VERSION",
    "Software",
    "cache_dir",
    "claude",
    "codex",
    "common",
    "gemini",
    "install",
    "npm_package",
    "pi",
    "pi_acp",
]
