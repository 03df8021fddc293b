"""The benchmark script runs end to end (small counts) and writes every metric; no timing asserts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.storage.conftest import pg_up


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


def test_cluster_bench_quick_writes_all_metrics(tmp_path: Path) -> None:
    if not pg_up():
        pytest.skip("PostgreSQL is not running")
    out = tmp_path / "cluster.json"
    proc = subprocess.run(
        [sys.executable, "bench/bench_cluster.py", "--total", "400", "--many", "64", "--out", str(out)],
        cwd=ROOT,
        env={**os.environ, "ACTORQ_LEASE_TTL": "2"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads(out.read_text())["results"]
    sends = {
        "sqlite_one_node",
        "sqlite_one_node_many",
        "postgres_three_nodes_owner",
        "postgres_three_nodes_any",
        "postgres_three_nodes_any_many",
    }
    assert set(results) == sends | {"takeover_after_kill9"}
    assert all(results[k]["sends_per_s"] > 0 and results[k]["ratio_to_sqlite"] > 0 for k in sends)
    assert results["postgres_three_nodes_any_many"]["senders"] == 64
    assert results["takeover_after_kill9"]["lease_ttl_s"] == 2.0
    assert "actorq scale-out benchmarks" in proc.stdout


@pytest.mark.timeout(600)
def test_compare_quick_writes_every_round(tmp_path: Path) -> None:
    # RivetKit's peer is left out (its npm install is slow); the baseline is HEAD in a git worktree
    out = tmp_path / "compare.json"
    argv = ["--quick", "--no-rivetkit", "--baseline", "HEAD", "--rounds", "2", "--out", str(out)]
    proc = subprocess.run(
        [sys.executable, "bench/compare.py", *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=540,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert doc["quick"] is True and doc["machine"]["cpus"] >= 1
    results = doc["results"]
    assert results["config"]["order"] == ["now", "baseline", "echo"]
    assert results["revisions"]["baseline"]["commit"] == results["revisions"]["now"]["commit"]
    actorq_workloads = {
        "seq_send",
        "conc_send",
        "conc_send_single",
        "completable_rtt",
        "action_rtt",
        "ws_action_rtt",
    }
    assert len(results["rounds"]) == 2
    for r in results["rounds"]:
        assert set(r) == {"now", "baseline", "echo"}
        assert set(r["now"]["figures"]) == set(r["baseline"]["figures"]) == actorq_workloads
        assert set(r["echo"]["figures"]) == {"seq_send", "conc_send", "completable_rtt", "action_rtt"}
        for side in r.values():
            for fig in side["figures"].values():
                assert fig["n"] > 0 and fig["ops_per_s"] > 0 and 0 < fig["p50_ms"] <= fig["p99_ms"]
        # the baseline's actorq came from its worktree, not from this tree
        assert r["now"]["actorq"].startswith(str(ROOT / "src"))
        assert not r["baseline"]["actorq"].startswith(str(ROOT))
    spread = results["summary"]["now"]["seq_send"]["ops_per_s"]
    assert spread["rounds"] == 2 and spread["min"] <= spread["median"] <= spread["max"]
    assert set(results["ratios"]) == {"now/baseline", "now/echo"}
    assert results["ratios"]["now/baseline"]["completable_rtt.p50_ms"] > 0
    assert "side by side" in proc.stdout
