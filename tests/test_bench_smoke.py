"""The benchmark script runs end to end (small counts) and writes every metric; no timing asserts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT


def test_bench_quick_writes_all_metrics(tmp_path: Path) -> None:
    out = tmp_path / "core.json"
    proc = subprocess.run(
        [sys.executable, "bench/bench_core.py", "--quick", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert doc["quick"] is True and doc["machine"]["cpus"] >= 1
    results = doc["results"]
    assert set(results) == {
        "sends_one_client_process",
        "sends_one_request_per_send",
        "sends_four_client_processes",
        "completable_rtt",
        "ws_action_rtt",
        "wake_from_sleep",
        "sleeping_actors",
    }
    assert all(results[k]["sends_per_s"] > 0 for k in results if k.startswith("sends_"))
    assert results["sleeping_actors"]["still_awake"] == 0
    assert "actorq core benchmarks" in proc.stdout
