"""Which model the examples' pi agent talks to.

With ``ACTORQ_LLM_URL`` set (the tests, and ``make demo`` without an API key) the VM's
``~/.pi/agent/models.json`` and ``settings.json`` point pi at that OpenAI-compatible server (the
stand-in model in :mod:`actorq.testing.fake_llm`). Otherwise pi uses Anthropic through
``ANTHROPIC_API_KEY``, passed to the session's env (kept in memory only, never on disk).
"""

from __future__ import annotations

import os
import urllib.parse
from typing import Any

from actorq.agent_os import Network
from actorq.testing.fake_llm import pi_agent_files

LLM_URL_ENV = "ACTORQ_LLM_URL"
LLM_PORT_ENV = "ACTORQ_LLM_PORT"


def network() -> Network:
    """The examples' VMs reach the internet (Anthropic), plus the stand-in model's port on the host
    when one is used: a VM reaches nothing of the host's loopback unless its port is declared."""
    url = os.environ.get(LLM_URL_ENV)
    parts = urllib.parse.urlsplit(url) if url else None
    if parts is not None and parts.hostname in ("127.0.0.1", "localhost") and parts.port:
        return Network(host_ports=[parts.port])
    if os.environ.get(LLM_PORT_ENV):
        return Network(host_ports=[int(os.environ[LLM_PORT_ENV])])
    return Network()


def pi_env() -> dict[str, str]:
    key = os.environ.get("ANTHROPIC_API_KEY", "")
    return {"ANTHROPIC_API_KEY": key} if key else {}


async def configure_pi(vm: Any) -> str:
    """Write the VM's pi settings for the stand-in model when asked to; say which model is used."""
    url = os.environ.get(LLM_URL_ENV)
    if url:
        for path, text in pi_agent_files(url).items():
            await vm.write_file(f"/home/user/{path}", text)
        return f"stand-in model at {url}"
    return "Anthropic (ANTHROPIC_API_KEY)"
