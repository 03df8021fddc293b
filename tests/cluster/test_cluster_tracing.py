"""Trace context across nodes: an action forwarded to the actor's owner and a message handled
on another node than the one it was sent to stay in the caller's trace."""

from __future__ import annotations

import time

import httpx

from tests.apps.journal import read_journal
from tests.cluster.conftest import Cluster

TARGET = "tests.apps.cluster_trace_app:registry"


def header(trace_id: str) -> dict[str, str]:
    return {"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"}


def test_forwarded_actions_and_messages_handled_elsewhere_keep_the_trace(cluster: Cluster) -> None:
    nodes = cluster.start(TARGET, 2)
    actor_id = httpx.post(
        nodes[0].url + "/v1/actors", json={"name": "traced", "key": ["t"]}, timeout=10
    ).json()["actor_id"]
    action = f"/v1/actors/{actor_id}/actions/where"
    owner_pid = httpx.post(nodes[0].url + action, json={"args": []}, timeout=10).json()["result"]
    other = cluster.others(cluster.by_pid(owner_pid))[0]
    forwarded = "a1" * 16
    r = httpx.post(other.url + action, json={"args": []}, headers=header(forwarded), timeout=10)
    assert r.status_code == 200 and r.json()["result"] == owner_pid  # ran on the owner
    sent = "b2" * 16
    url = f"{other.url}/v1/actors/{actor_id}/queues/q/messages"
    r = httpx.post(url, json={"body": 1}, headers=header(sent), timeout=10)
    assert r.status_code == 201, r.text
    deadline = time.monotonic() + 20
    while not any(e["ev"] == "message" for e in read_journal(cluster.journal)):
        assert time.monotonic() < deadline, "the message was not handled"
        time.sleep(0.05)
    events = read_journal(cluster.journal)
    assert [(e["pid"], e["trace"]) for e in events if e["trace"] == forwarded] == [(owner_pid, forwarded)]
    handled = [e for e in events if e["ev"] == "message"]
    assert [(e["pid"], e["trace"]) for e in handled] == [(owner_pid, sent)]
