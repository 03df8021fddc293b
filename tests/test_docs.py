"""The repository stands alone: its docs and code never cite documents outside it, and every
relative link in the Markdown docs points at a file (and heading) that exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TEXT = [
    *ROOT.glob("*.md"),
    *(ROOT / "docs").glob("*.md"),
    *(ROOT / "bench").glob("*.md"),
    *(ROOT / "examples").glob("*.md"),
    *(ROOT / "src").rglob("*.py"),
    *(ROOT / "examples").rglob("*.py"),
    *(ROOT / "bench").glob("*.py"),
]
# a section sign, "SPEC" as a word, or "issue 12" / "issue #12": references the reader cannot follow
OUTSIDE = re.compile(r"§|\bSPEC\b|(?i:\bspec\.md\b|\bthe spec\b|\bissues? #?\d+\b)")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _anchor(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_no_citations_of_outside_documents() -> None:
    hits = []
    for path in TEXT:
        if path == Path(__file__):
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if OUTSIDE.search(line):
                hits.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not hits, "\n".join(hits)


DOCS = [p for p in TEXT if p.suffix == ".md"]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(doc: Path) -> None:
    broken = []
    for target in LINK.findall(doc.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+:", target):
            continue  # http(s), mailto
        file_part, _, anchor = target.partition("#")
        dest = (doc.parent / file_part).resolve() if file_part else doc
        if not dest.exists():
            broken.append(target)
            continue
        if anchor and dest.suffix == ".md":
            text = dest.read_text(encoding="utf-8")
            headings = {_anchor(m.group(1)) for m in re.finditer(r"^#+\s+(.*)$", text, re.M)}
            if anchor not in headings:
                broken.append(target)
    assert not broken, f"{doc.relative_to(ROOT)}: {broken}"
