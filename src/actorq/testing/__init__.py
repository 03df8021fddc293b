"""Testing helpers for applications built on actorq.

Owns: the pytest plugin (:mod:`actorq.testing.plugin`, registered through the ``pytest11`` entry
point, so installing actorq makes its fixtures available: ``actorq_serve``, ``actorq_server``,
``actorq_client``, ``actorq_sync_client``, ``fake_llm``), the fake OpenAI-compatible LLM
(:mod:`actorq.testing.fake_llm`) and the fake Anthropic Messages API for Claude Code
(:mod:`actorq.testing.fake_anthropic`). Importing this package does not import pytest; only the plugin
does. Uses actorq as its users do: the registry, the server and the clients; never the core or
storage directly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from actorq.testing.fake_anthropic import FakeAnthropic
    from actorq.testing.fake_llm import FakeLLM, Reply, pi_agent_files

__all__ = ["FakeAnthropic", "FakeLLM", "Reply", "pi_agent_files"]


def __getattr__(name: str) -> Any:
    # on first use: pytest imports this package for its plugin in every run, aiohttp is not free
    if name == "FakeAnthropic":
        from actorq.testing import fake_anthropic

        return fake_anthropic.FakeAnthropic
    if name in __all__:
        from actorq.testing import fake_llm

        return getattr(fake_llm, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
