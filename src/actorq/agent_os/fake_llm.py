"""The fake LLM moved to :mod:`actorq.testing.fake_llm`; this name keeps older imports (and
``python -m actorq.agent_os.fake_llm``) working."""

from actorq.testing.fake_llm import (
    DEFAULT_MODEL,
    PROVIDER,
    FakeLLM,
    Reply,
    main,
    message_text,
    pi_agent_files,
    stand_in_reply,
    summarize,
)

__all__ = [
    "DEFAULT_MODEL",
    "PROVIDER",
    "FakeLLM",
    "Reply",
    "main",
    "message_text",
    "pi_agent_files",
    "stand_in_reply",
    "summarize",
]

if __name__ == "__main__":
    main()
