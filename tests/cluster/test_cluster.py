"""Several server nodes sharing one PostgreSQL database.

Real ``actorq serve`` processes on loopback ports, one fresh schema per test, a 2 s lease TTL.
The ``worker`` actor (tests/apps/cluster_app.py) journals start/end of every message with its
node's pid to a file all nodes share, and appends ``[id, attempt, pid]`` to its state, which is
committed with the acknowledgement (so only fenced commits of the owner land there).
The database-restart test restarts the shared PostgreSQL server: it is the module's last test.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from actorq.client import create_client, create_sync_client
from actorq.errors import LeaseLost
from actorq.storage.postgres import PostgresStorage
from actorq.storage.protocol import SendRequest
from tests.apps.journal import assert_no_overlap, read_journal
from tests.cluster.conftest import TTL, Cluster
from tests.conftest import ServerProcess, wait_for
from tests.storage.conftest import PG_DSN, pg_up

TARGET = "tests.apps.cluster_app:registry"
CLAIM = 1.0  # the claim scan's period (RuntimeConfig.claim_interval)


def metric_values(text: str) -> dict[str, Any]:
    """``name{labels}`` -> value for each sample line; info metrics keyed by name and first label."""
    out: dict[str, Any] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
            if "_info{" in name:
                out[name.split("=", 1)[0]] = name
    return out


def done_list(node: ServerProcess, key: str) -> list[list[int]]:
    with create_sync_client(node.url, retry_for=30) as client:
        out: list[list[int]] = client.worker.get_or_create([key]).done()
        return out


# -- three nodes, clients talking to any of them ---------------------------------------------------
def test_three_nodes_serve_one_actor_space(cluster: Cluster) -> None:
    nodes = cluster.start(TARGET, 3)

    async def scenario() -> None:
        clients = [create_client(n.url) for n in nodes]
        try:
            workers = [c.worker.get_or_create(["w"]) for c in clients]
            receipts = await asyncio.gather(*(workers[i % 3].send("tasks", {"i": i}) for i in range(60)))
            assert sorted(r.id for r in receipts) == list(range(1, 61)), "per-actor ids across nodes"
            # actions from any node run on the one owner (forwarded), state is one
            counters = [c.counter.get_or_create(["c"]) for c in clients]
            assert [await counters[i % 3].add(1) for i in range(6)] == [1, 2, 3, 4, 5, 6]
            assert len({await h.where() for h in counters}) == 1
            # waits from any node complete (the owner's completion NOTIFYs the waiting node)
            for i, c in enumerate(clients):
                r = await c.replier.get_or_create(["r"]).send("ask", {"n": i}, wait=True, timeout=10)
                assert (r.status, r.response["n"]) == ("completed", i)
            owner = await workers[0].where()
            assert {await w.where() for w in workers} == {owner}
            deadline = time.monotonic() + 20
            while len(await workers[1].done()) < 60 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            done = await workers[2].done()
            assert [d[0] for d in done] == list(range(1, 61)), "FIFO, each once"
            assert {d[2] for d in done} == {owner}
        finally:
            for c in clients:
                await c.close()

    asyncio.run(scenario())
    assert_no_overlap(read_journal(cluster.journal), [])
    # /metrics on each node: its leases, forwarded actions and the driver's batching
    scraped = [metric_values(httpx.get(n.url + "/metrics", timeout=5).text) for n in nodes]
    assert len({m["actorq_cluster_node_info{address"] for m in scraped}) == 3, "one node id each"
    assert sum(m["actorq_cluster_leases_held"] for m in scraped) >= 3, "worker, counter, replier"
    assert sum(m["actorq_cluster_actions_forwarded_total"] for m in scraped) >= 4, "4 of 6 adds"
    # any node says which node owns an actor
    found = httpx.post(nodes[0].url + "/v1/actors", json={"name": "worker", "key": ["w"]}, timeout=5)
    worker_id = found.json()["actor_id"]
    owners = [httpx.get(f"{n.url}/v1/actors/{worker_id}", timeout=5).json() for n in nodes]
    assert len({o["owner"]["node"] for o in owners}) == 1 and [o["awake"] for o in owners].count(True) == 1
    awake_on = next(n for n, o in zip(nodes, owners, strict=True) if o["awake"])
    assert owners[0]["owner"]["address"] == awake_on.url.removeprefix("http://")
    # queue depths are the database's, the same figures on every node (never to be summed)
    later = httpx.post(nodes[1].url + "/v1/actors", json={"name": "worker", "key": ["later"]}, timeout=5)
    sent = httpx.post(
        f"{nodes[1].url}/v1/actors/{later.json()['actor_id']}/queues/tasks/messages",
        json={"body": {"i": -1}, "delay": 3600},
        timeout=5,
    )
    assert sent.status_code == 201, sent.text
    deadline = time.monotonic() + 10
    while True:
        depths = [
            {k: v for k, v in metric_values(httpx.get(n.url + "/metrics", timeout=5).text).items()
             if k.startswith("actorq_queue_messages{")}
            for n in nodes
        ]  # fmt: skip
        if depths[0] == depths[1] == depths[2] or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert depths[0] == depths[1] == depths[2]
    assert depths[0]['actorq_queue_messages{actor="worker",queue="tasks",state="delayed"}'] == 1
    for op in ("send", "receive", "complete"):
        batches = sum(m[f'actorq_storage_batches_total{{op="{op}"}}'] for m in scraped)
        calls = sum(m[f'actorq_storage_batched_calls_total{{op="{op}"}}'] for m in scraped)
        assert 0 < batches <= calls, op
    # graceful shutdown releases leases at once: another node takes the actor without waiting TTL
    owner_pid = done_list(nodes[0], "w")[0][2]
    owner = cluster.by_pid(owner_pid)
    assert owner.terminate() == 0
    other = cluster.others(owner)[0]
    t0 = time.monotonic()
    with create_sync_client(other.url) as client:
        assert client.counter.get_or_create(["c"]).add(1) == 7
        assert client.worker.get_or_create(["w"]).where() != owner_pid
    assert time.monotonic() - t0 < TTL, "released leases are taken at once"


# -- kill -9 of the owner of a busy actor ------------------------------------------------------
def test_kill9_of_owner_another_node_takes_over(cluster: Cluster) -> None:
    nodes = cluster.start(TARGET, 3)
    with create_sync_client(nodes[0].url) as client:
        h = client.worker.get_or_create(["busy"])
        first = [h.send("tasks", {"i": i, "sleep": 0.03}).id for i in range(60)]
        wait_for(
            lambda: len([e for e in read_journal(cluster.journal) if e["ev"] == "end"]) >= 10, what="work"
        )
    # the owner from the journal, not through an action: an action interleaving with a message
    # would persist that message's state change before its acknowledgement (by design, on any storage)
    owner_pid = read_journal(cluster.journal)[0]["pid"]
    owner = cluster.by_pid(owner_pid)
    kill_ns = time.time_ns()
    owner.kill9()
    kill_at = time.time()
    survivors = cluster.others(owner)
    # more sends through the survivors while nobody owns the actor: stored at once, run later
    later: list[int] = []
    for i, node in enumerate(survivors * 5):
        with create_sync_client(node.url) as client:
            later.append(client.worker.get_or_create(["busy"]).send("tasks", {"j": i}).id)

    def taken_over() -> list[dict[str, Any]]:
        return [e for e in read_journal(cluster.journal) if e["ev"] == "start" and e["pid"] != owner_pid]

    wait_for(lambda: bool(taken_over()), timeout=TTL + 5, what="another node to take the actor over")
    takeover = taken_over()[0]["t"] / 1e9 - kill_at
    print(f"takeover after kill -9: {takeover:.2f}s (ttl {TTL}s)")
    assert takeover <= TTL + CLAIM, f"takeover took {takeover:.2f}s (promised: within TTL + 1 s)"
    acknowledged = set(first) | set(later)
    wait_for(lambda: len(done_list(survivors[0], "busy")) >= len(acknowledged), timeout=30, what="drain")
    done = done_list(survivors[1], "busy")
    ids = [d[0] for d in done]
    assert Counter(ids) == Counter(acknowledged), "every acknowledged message processed, once"
    assert ids == sorted(ids), "FIFO held across the takeover"
    redelivered = [d for d in done if d[1] > 1]
    assert len(redelivered) <= 1 and all(d[2] != owner_pid for d in redelivered)
    events = [e for e in read_journal(cluster.journal) if e["actor"] == "busy"]
    assert_no_overlap(events, [(owner_pid, kill_ns)])


# -- SIGSTOP the owner past its lease, SIGCONT it: its late writes are refused -------------------
def test_paused_owner_is_fenced_after_takeover(cluster: Cluster) -> None:
    nodes = cluster.start(TARGET, 3)
    with create_sync_client(nodes[1].url) as client:
        h = client.worker.get_or_create(["paused"])
        ids = [h.send("tasks", {"i": i, "sleep": 0.3}).id for i in range(14)]
        wait_for(
            lambda: any(e["ev"] == "end" for e in read_journal(cluster.journal)), what="the first message"
        )
    owner_pid = read_journal(cluster.journal)[0]["pid"]  # (not an action: see the kill -9 test)
    owner = cluster.by_pid(owner_pid)
    assert owner.proc is not None
    # pause it while it holds a message (mid-handler): it cannot renew, cannot even notice
    owner.proc.send_signal(signal.SIGSTOP)
    stopped_at = time.time()
    try:
        # an action through another node is forwarded to the paused owner, which accepts the
        # connection but never answers: once its lease lapses the caller gets 503, not a hang
        survivor = cluster.others(owner)[0]
        with create_sync_client(survivor.url) as client:
            actor_id = client.worker.get_or_create(["paused"]).resolve()
        t0 = time.monotonic()
        r = httpx.post(
            f"{survivor.url}/v1/actors/{actor_id}/actions/where", json={"args": []}, timeout=TTL * 3 + 5
        )
        waited = time.monotonic() - t0
        print(f"action via a survivor while the owner is paused: HTTP {r.status_code} after {waited:.2f}s")
        assert waited < TTL * 2 + 2, waited
        if r.status_code == 503:
            assert int(r.headers["retry-after"]) >= 1 and r.json()["error"]["code"] == "unavailable"
        else:  # the lease had lapsed already and this node claimed the actor itself
            assert r.status_code == 200 and r.json()["result"] != owner_pid, r.text

        def others_started() -> list[dict[str, Any]]:
            return [
                e
                for e in read_journal(cluster.journal)
                if e["ev"] == "start" and e["pid"] != owner_pid and e["t"] / 1e9 > stopped_at
            ]

        wait_for(lambda: bool(others_started()), timeout=TTL + 5, what="takeover of the paused node's actor")
        print(f"takeover after SIGSTOP: {others_started()[0]['t'] / 1e9 - stopped_at:.2f}s")
        wait_for(lambda: len(others_started()) >= 3, timeout=10, what="the new owner to make progress")
    finally:
        owner.proc.send_signal(signal.SIGCONT)
    wait_for(lambda: len(done_list(survivor, "paused")) >= len(ids), timeout=30, what="drain")
    time.sleep(TTL)  # the resumed node had every chance to write late
    done = done_list(survivor, "paused")
    assert [d[0] for d in done] == ids, f"each message recorded once, in order: no stale commit: {done}"
    new_pids = {d[2] for d in done[len(done) // 2 :]}
    assert owner_pid not in new_pids
    assert owner.proc.poll() is None, "the resumed node keeps running"
    assert httpx.get(owner.url + "/healthz", timeout=5).status_code == 200
    with create_sync_client(owner.url) as client:  # and serves the actor by forwarding to its owner
        assert client.worker.get_or_create(["paused"]).where() != owner_pid
    assert "lease" in owner.log().lower(), "the resumed node noticed it lost the lease"


# -- the fencing epoch, deterministically, at the storage level ----------------------------------
async def test_stale_epoch_writes_are_refused(schema: str) -> None:
    a = PostgresStorage(PG_DSN, schema=schema)
    b = PostgresStorage(PG_DSN, schema=schema)
    await a.open()
    await b.open()
    try:

        def ignore(*_: Any) -> None:
            return None

        await a.join(None, ignore, ignore, ignore)
        await b.join("b:1", ignore, ignore, ignore)
        rec, _ = await a.resolve_actor("x", ("k",), create=True, must_create=False, new_id="x1", now=1.0)
        assert rec is not None
        lease = await a.acquire("x1", 0.3)
        assert lease.acquired
        lost = await b.acquire("x1", 0.3)
        assert not lost.acquired and lost.owner == a.node_id, "a live lease is not taken"
        for i in range(2):
            await b.send(SendRequest("x1", "q", json.dumps(i), 10, 0.0), time.time())
        out = await a.receive("x1", None, 1, ack_ids=(), state=None, now=time.time(), max_attempts=5)
        assert [(m.id, m.attempt) for m in out.messages] == [(1, 1)]
        await asyncio.sleep(0.4)  # a is "paused" past its lease
        taken = await b.acquire("x1", 5.0)
        assert taken.acquired and taken.epoch == lease.epoch + 1
        with pytest.raises(LeaseLost):
            await a.complete("x1", 1, "null", state='{"stale": true}', now=time.time())
        with pytest.raises(LeaseLost):
            await a.receive("x1", None, 1, ack_ids=(1,), state=None, now=time.time(), max_attempts=5)
        with pytest.raises(LeaseLost):
            await a.save_state("x1", '{"stale": true}')
        with pytest.raises(LeaseLost):
            await a.release("x1", (1,), error=None, max_attempts=5, now=time.time())
        assert await a.renew(1.0) == set()
        out = await b.receive("x1", None, 2, ack_ids=(), state=None, now=time.time(), max_attempts=5)
        assert [(m.id, m.attempt) for m in out.messages] == [(1, 2), (2, 1)], "redelivered first, attempt + 1"
        assert (await b.load_actor("x1")) == rec, "no stale state landed"
        await b.leave()  # graceful: released at once
        assert (await a.acquire("x1", 1.0)).acquired
    finally:
        await a.close()
        await b.close()


# -- requests for an actor whose owner cannot be reached; sleep releases the lease ---------------
async def test_unreachable_owner_is_503_and_sleep_releases_the_lease(schema: str) -> None:
    from actorq import actor, setup
    from actorq.server.serve import free_port
    from tests.apps.cluster_app import add

    napper = actor(state=lambda: {"total": 0}, actions={"add": add}, sleep_timeout=0.3)
    reg = setup(use={"counter": napper})
    conn = await asyncpg.connect(PG_DSN)
    try:
        async with reg.test(storage=PostgresStorage(PG_DSN, schema=schema)) as client:
            h = client.counter.get_or_create(["nap"])
            assert await h.add(2) == 2
            lease = f"SELECT node_id, epoch FROM {schema}.leases WHERE actor_id = $1"
            owner, epoch = await conn.fetchrow(lease, h.actor_id)
            assert owner is not None, "awake: leased"
            deadline = time.monotonic() + 10
            while (await conn.fetchrow(lease, h.actor_id))[0] is not None and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            assert (await conn.fetchrow(lease, h.actor_id))[0] is None, "asleep: lease released at once"
            assert await h.add(1) == 3, "woken again (a new epoch) with its state"
            assert (await conn.fetchrow(lease, h.actor_id))[1] == epoch + 1

            # another node (a ghost at a dead address) holds a live lease on a second actor
            other = client.counter.get_or_create(["ghosted"])
            await other.resolve()
            await conn.execute(
                f"INSERT INTO {schema}.nodes VALUES ('ghost', $1, 0, 0)", f"127.0.0.1:{free_port()}"
            )
            await conn.execute(
                f"INSERT INTO {schema}.leases VALUES ($1, 'ghost', 7, "
                "extract(epoch from clock_timestamp()) + 60)",
                other.actor_id,
            )
            async with httpx.AsyncClient(base_url=client.url) as http:
                r = await http.post(f"/v1/actors/{other.actor_id}/actions/add", json={"args": [5]})
            assert r.status_code == 503 and int(r.headers["retry-after"]) >= 1, r.text
            assert r.json()["error"]["code"] == "unavailable"
            state = await conn.fetchval(
                f"SELECT state FROM {schema}.actors WHERE actor_id = $1", other.actor_id
            )
            assert state is None, "nothing written"
            assert tuple(await conn.fetchrow(lease, other.actor_id)) == ("ghost", 7), "lease untouched"
    finally:
        await conn.close()


# -- the database restarts under load (last: it restarts the shared server) ---------------------
def _restart_postgres() -> None:
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    wait_for(pg_up, timeout=30, what="PostgreSQL to come back")


@pytest.mark.skipif(
    not Path("/etc/postgresql").is_dir() or os.geteuid() != 0, reason="needs to restart the local PostgreSQL"
)
def test_database_restart_mid_load(cluster: Cluster) -> None:
    nodes = cluster.start(TARGET, 3)
    receipts: dict[str, int] = {}
    keys = ["r0", "r1", "r2"]
    box: list[BaseException] = []
    stop = threading.Event()

    async def sender(node: ServerProcess, s: int) -> None:
        async with create_client(node.url, retry_for=60) as client:
            i = 0
            while not stop.is_set() or i < 20:
                key = keys[(s + i) % 3]
                r = await client.worker.get_or_create([key]).send(
                    "tasks", {"s": s, "i": i}, idempotency_key=f"{s}-{i}"
                )
                receipts[f"{key}/{s}-{i}"] = r.id
                i += 1
                await asyncio.sleep(0.005)

    def runner() -> None:
        async def all_senders() -> None:
            await asyncio.gather(*(sender(nodes[s % 3], s) for s in range(6)))

        try:
            asyncio.run(all_senders())
        except BaseException as exc:  # surfaced below
            box.append(exc)

    thread = threading.Thread(target=runner)
    thread.start()
    wait_for(lambda: len(receipts) >= 60, what="load")
    _restart_postgres()
    time.sleep(1.0)
    stop.set()
    thread.join(90)
    assert not thread.is_alive() and not box, box
    assert all(n.proc is not None and n.proc.poll() is None for n in nodes), "nodes survive"
    for key in keys:
        want = sorted(v for k, v in receipts.items() if k.startswith(key + "/"))
        assert len(set(want)) == len(want), "idempotency keys: retried sends were not duplicated"
        wait_for(
            lambda key=key, want=want: len(done_list(nodes[0], key)) >= len(want),
            timeout=40,
            what=f"{key} to drain after the restart",
        )
        ids = [d[0] for d in done_list(nodes[1], key)]
        assert sorted(set(ids)) == want, f"{key}: every acknowledged message processed"
        assert len(ids) == len(set(ids)), f"{key}: none recorded twice"
