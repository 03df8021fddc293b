"""Load named SQL (``-- name: x`` sections) and numbered migrations shipped beside a driver."""

from __future__ import annotations

import re
from importlib import resources

_NAME = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)


def load_queries(package: str, filename: str = "queries.sql") -> dict[str, str]:
    text = resources.files(package).joinpath(filename).read_text("utf-8")
    parts = _NAME.split(text)
    return {parts[i]: parts[i + 1].strip() for i in range(1, len(parts), 2)}


def load_migrations(package: str) -> list[tuple[int, str, str]]:
    """``(version, filename, sql)`` for every ``NNNN_*.sql`` in ``package/migrations``, in order."""
    folder = resources.files(package).joinpath("migrations")
    out: list[tuple[int, str, str]] = []
    for entry in folder.iterdir():
        name = entry.name
        if name.endswith(".sql") and name[:4].isdigit():
            out.append((int(name[:4]), name, entry.read_text("utf-8")))
    return sorted(out)
