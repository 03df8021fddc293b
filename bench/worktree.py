"""Another git revision of this repository, checked out beside it for a before/after benchmark."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def git_worktree(rev: str) -> Iterator[Path]:
    """A detached ``git worktree`` of ``rev`` in a temporary directory, removed afterwards.

    Its ``src`` is that revision's package: put it first on ``PYTHONPATH`` to run it."""
    tmp = Path(tempfile.mkdtemp(prefix="actorq-bench-baseline-"))
    tree = tmp / "tree"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(tree), rev], check=True)
    try:
        yield tree
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False)
        shutil.rmtree(tmp, ignore_errors=True)


def short_commit(rev: str) -> str:
    """``rev`` as an abbreviated commit id ("" if git does not know it)."""
    r = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--verify", "-q", "--short", f"{rev}^{{commit}}"],
        capture_output=True,
        text=True,
    )
    return r.stdout.strip()


def dirty() -> bool:
    """Whether the working tree has changes not yet committed (its figures are not HEAD's)."""
    r = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
    )
    return bool(r.stdout.strip())
