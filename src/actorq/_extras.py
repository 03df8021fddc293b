"""Optional dependencies: what each extra of the package brings, and the error when one is missing.

``pip install actorq`` is enough for actors on SQLite, the server, the clients and the CLI;
``actorq[postgres]`` adds asyncpg (PostgreSQL storage, several nodes), ``actorq[agents]`` adds the
Agent Client Protocol library and croniter (agent VMs), ``actorq[all]`` both. A leaf: imports no
other part of actorq.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType


class MissingDependency(ImportError):
    """A feature whose optional dependency is not installed; the message says what to install."""


def require(module: str, extra: str, feature: str) -> ModuleType:
    """Import ``module``, or raise :class:`MissingDependency` naming the extra that brings it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        try:
            installed = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            installed = False
        if installed:
            raise  # it is there but one of its own imports is broken: not ours to explain
        raise MissingDependency(
            f"{feature} needs the {module!r} package, which is not installed: pip install 'actorq[{extra}]'",
            name=module,
        ) from exc
