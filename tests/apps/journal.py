"""Actors that write every step to a journal file (``$ACTORQ_TEST_JOURNAL``), one fsync'd JSON
line per event, so crash tests can see what ran, how often, in which order and when."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from actorq import ActorContext, actor, queue, setup


def journal(event: dict[str, Any]) -> None:
    path = os.environ["ACTORQ_TEST_JOURNAL"]
    line = json.dumps({**event, "pid": os.getpid(), "t": time.time_ns()})
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def read_journal(path: Path) -> list[dict[str, Any]]:
    """Every event written so far (by every process), in file order."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def assert_no_overlap(events: list[dict[str, Any]], excuses: list[tuple[int, int]]) -> None:
    """Per actor, a message starts only after the previous one ended, on any node; the only
    excuse is a node that was killed (its open message never ends) — ``(pid, kill time)``."""
    by_actor: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        by_actor[e["actor"]].append(e)
    for name, evs in by_actor.items():
        evs.sort(key=lambda e: e["t"])
        open_msg: dict[str, Any] | None = None
        for e in evs:
            if e["ev"] == "start":
                if open_msg is not None:
                    assert any(open_msg["pid"] == pid and open_msg["t"] < k < e["t"] for pid, k in excuses), (
                        f"{name}: message {e['id']} (pid {e['pid']}) started while {open_msg} was running"
                    )
                open_msg = e
            else:
                assert open_msg is not None and (open_msg["id"], open_msg["pid"]) == (e["id"], e["pid"]), (
                    f"{name}: unmatched end {e}"
                )
                open_msg = None


async def _work(c: ActorContext, msg_id: int, attempt: int, body: dict[str, Any]) -> None:
    journal({"ev": "start", "actor": c.key[0], "id": msg_id, "attempt": attempt, "body": body})
    delay = float(body.get("sleep", 0))
    if attempt == 1:
        delay += float(body.get("sleep_first_attempt", 0))
    if delay:
        await asyncio.sleep(delay)
    journal({"ev": "end", "actor": c.key[0], "id": msg_id, "attempt": attempt, "body": body})


async def run_plain(c: ActorContext) -> None:
    async for m in c.queue.iter():
        await _work(c, m.id, m.attempt, m.body)


async def run_completable(c: ActorContext) -> None:
    async for m in c.queue.iter(completable=True):
        await _work(c, m.id, m.attempt, m.body)
        await m.complete({"n": m.body.get("n"), "attempt": m.attempt})


worker = actor(queues={"tasks": queue(dict)}, run=run_plain, max_attempts=10)
replier = actor(queues={"ask": queue(dict)}, run=run_completable, max_attempts=10)
registry = setup(use={"worker": worker, "replier": replier})
