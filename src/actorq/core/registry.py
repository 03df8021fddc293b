"""The registry: the set of actor types an application serves, by name.

It is all the runtime needs to know about an application. The entry points that serve a registry
(``start``, ``serve``, ``test``, ``app``) belong to :class:`actorq.app.App`, which sits above the
core and the server.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from actorq.core.definitions import ActorDefinition
from actorq.errors import NotFound

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


class Registry:
    def __init__(self, use: Mapping[str, ActorDefinition]) -> None:
        for name, definition in use.items():
            if not _NAME.match(name):
                raise ValueError(f"actor name {name!r} must be a Python identifier (letters, digits, _)")
            if not isinstance(definition, ActorDefinition):
                raise TypeError(f"{name!r} must be declared with actor(...)")
        self.definitions: dict[str, ActorDefinition] = dict(use)

    def definition(self, name: str) -> ActorDefinition:
        d = self.definitions.get(name)
        if d is None:
            raise NotFound(f"unknown actor type {name!r}", details={"actors": sorted(self.definitions)})
        return d
