"""``mypy --strict`` on user code: typed queues, actions called by reference and the agent VM's
typed handles catch mistakes, and code that is right (or untyped, by name) passes.

``samples/passes.py`` and ``tests/apps/typed_app.py`` must have no error; each line of
``samples/fails.py`` marked ``# E: code[, code]`` must have exactly those errors, and no other line
any. One mypy run for all of them, its cache in a temporary directory."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

import actorq

HERE = Path(__file__).parent
SAMPLES = HERE / "samples"
PASSING = [SAMPLES / "passes.py", HERE.parent / "apps" / "typed_app.py"]
FAILING = SAMPLES / "fails.py"
_ERROR = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+): error: (?P<msg>.*?)\s+\[(?P<code>[a-z-]+)\]$")
_MARK = re.compile(r"#\s*E:\s*(?P<codes>[a-z, -]+)$")

Errors = dict[Path, dict[int, list[tuple[str, str]]]]


@pytest.fixture(scope="module")
def mypy_errors(tmp_path_factory: pytest.TempPathFactory) -> Errors:
    src = Path(actorq.__file__).resolve().parents[1]  # the actorq under test (a worktree's too)
    env = {**os.environ, "MYPYPATH": f"{src}{os.pathsep}{HERE.parents[1]}"}
    cmd = [
        sys.executable,
        "-m",
        "mypy",
        "--strict",
        "--config-file",
        os.devnull,  # the user's view: none of the project's own settings
        "--follow-imports=silent",  # actorq is checked by its own lint; judge only the samples
        "--cache-dir",
        str(tmp_path_factory.mktemp("mypy-cache")),
        "--no-error-summary",
        "--show-error-codes",
        "--hide-error-context",
        "--no-pretty",
        *map(str, [*PASSING, FAILING]),
    ]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert run.returncode in (0, 1), run.stdout + run.stderr
    out: Errors = defaultdict(lambda: defaultdict(list))
    for line in run.stdout.splitlines():
        m = _ERROR.match(line)
        if m:
            out[Path(m["file"]).resolve()][int(m["line"])].append((m["code"], m["msg"]))
        elif ": error:" in line:
            pytest.fail(f"mypy error without a code: {line}")
    return out


@pytest.mark.parametrize("path", PASSING, ids=lambda p: p.name)
def test_right_code_passes(mypy_errors: Errors, path: Path) -> None:
    assert dict(mypy_errors.get(path.resolve(), {})) == {}


def test_each_mistake_is_caught_where_it_is(mypy_errors: Errors) -> None:
    expected: dict[int, set[str]] = {}
    for number, text in enumerate(FAILING.read_text().splitlines(), start=1):
        m = _MARK.search(text)
        if m:
            expected[number] = {c.strip() for c in m["codes"].split(",")}
    assert len(expected) >= 20  # the markers were read
    got = mypy_errors.get(FAILING.resolve(), {})
    missing = {n: sorted(codes - {c for c, _ in got.get(n, [])}) for n, codes in expected.items()}
    missing = {n: c for n, c in missing.items() if c}
    unexpected = {n: errs for n, errs in got.items() if n not in expected}
    assert missing == {}, f"mistakes mypy did not catch (line: codes): {missing}"
    assert unexpected == {}, f"errors on lines with no mistake: {unexpected}"
