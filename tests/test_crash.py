"""Crash tests: ``kill -9`` a real server process mid-work, restart it on the same data directory,
and check from the handlers' own journal that nothing acknowledged was lost, nothing ran twice
(but the message in flight at the kill, redelivered with attempt 2), order held, and no two
messages of one actor ever overlapped in time."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from actorq.client import create_client, create_sync_client
from tests.apps.journal import assert_no_overlap, read_journal
from tests.conftest import ServerProcess, wait_for

TARGET = "tests.apps.journal:registry"


def ends(events: list[dict[str, Any]], actor: str) -> Counter[int]:
    return Counter(e["id"] for e in events if e["ev"] == "end" and e["actor"] == actor)


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    return tmp_path / "journal.jsonl"


def start(
    server_factory: type[ServerProcess],
    data_dir: Path,
    journal: Path,
    port: int | None = None,
    args: list[str] | None = None,
) -> ServerProcess:
    return server_factory(
        TARGET, data_dir, port=port, env={"ACTORQ_TEST_JOURNAL": str(journal)}, args=args
    ).start()


def test_kill9_mid_message_redelivers_in_place(
    server_factory: type[ServerProcess], data_dir: Path, journal: Path
) -> None:
    for round_no in range(3):  # several rounds on the same data dir: ids keep growing
        server = start(server_factory, data_dir, journal)
        actor = f"a{round_no}"
        with create_sync_client(server.url) as client:
            h = client.worker.get_or_create([actor])
            ids = [
                h.send("tasks", {"n": i, "sleep_first_attempt": 60 if i == 5 else 0}).id for i in range(12)
            ]
        assert ids == list(range(1, 13))
        wait_for(
            lambda a=actor: any(
                e["ev"] == "start" and e["actor"] == a and e["id"] == 6 for e in read_journal(journal)
            ),
            what="message 6 to start",
        )
        kill_time = time.time_ns()
        killed = server.proc.pid  # type: ignore[union-attr]
        server.kill9()
        before = read_journal(journal)
        done_before = ends(before, actor)
        assert set(done_before) == {1, 2, 3, 4, 5}, done_before

        # restart with NO client request: the actor must be woken by recovery alone
        server = start(server_factory, data_dir, journal, port=server.port)
        wait_for(lambda a=actor: len(ends(read_journal(journal), a)) == 12, what="all 12 messages to finish")
        events = [e for e in read_journal(journal) if e["actor"] == actor]
        assert ends(events, actor) == Counter({i: 1 for i in range(1, 13)}), (
            "each message finished exactly once"
        )
        starts = [(e["id"], e["attempt"]) for e in events if e["ev"] == "start"]
        assert Counter(i for i, _ in starts) == Counter({**{i: 1 for i in range(1, 13)}, 6: 2})
        # FIFO, and the redelivered message keeps its place ahead of later ones
        assert starts == [
            (1, 1),
            (2, 1),
            (3, 1),
            (4, 1),
            (5, 1),
            (6, 1),
            (6, 2),
            *[(i, 1) for i in range(7, 13)],
        ]
        pids = {e["pid"] for e in events}
        assert len(pids) == 2
        assert_no_overlap(events, [(killed, kill_time)])
        server.terminate()


def test_kill9_while_sends_arrive(server_factory: type[ServerProcess], data_dir: Path, journal: Path) -> None:
    server = start(server_factory, data_dir, journal)
    url, port = server.url, server.port
    senders, per_sender = 4, 40
    receipts: dict[str, int] = {}

    async def send_all() -> None:
        async with create_client(url, retry_for=60) as client:
            h = client.worker.get_or_create(["b"])

            async def sender(s: int) -> None:
                for i in range(per_sender):
                    body = {"s": s, "i": i, "sleep": 0.002}
                    r = await h.send("tasks", body, idempotency_key=f"k-{s}-{i}")
                    receipts[f"{s}-{i}"] = r.id

            await asyncio.gather(*(sender(s) for s in range(senders)))

    box: list[BaseException] = []

    def runner() -> None:
        try:
            asyncio.run(send_all())
        except BaseException as exc:  # surfaced below
            box.append(exc)

    thread = threading.Thread(target=runner)
    thread.start()
    wait_for(lambda: len(receipts) >= 30, what="30 receipts")
    kill_time = time.time_ns()
    killed = server.proc.pid  # type: ignore[union-attr]
    server.kill9()
    time.sleep(0.3)  # senders hit connection errors and keep retrying
    server = start(server_factory, data_dir, journal, port=port)
    thread.join(90)
    assert not thread.is_alive() and not box, box
    total = senders * per_sender
    assert len(receipts) == total
    assert len(set(receipts.values())) == total, "every send got its own message id (no duplicates)"
    wait_for(
        lambda: set(ends(read_journal(journal), "b")) >= set(receipts.values()),
        timeout=60,
        what="every receipted message to be processed",
    )
    events = [e for e in read_journal(journal) if e["actor"] == "b"]
    done = ends(events, "b")
    assert set(done) == set(receipts.values()), "only sent messages were processed"
    twice = [i for i, n in done.items() if n > 1]
    assert len(twice) <= 1, f"only the in-flight message may run twice: {twice}"
    bodies = {f"{e['body']['s']}-{e['body']['i']}": e["id"] for e in events if e["ev"] == "end"}
    assert bodies == receipts, "each body was processed under the id its sender was given"
    starts = [e["id"] for e in events if e["ev"] == "start"]
    first_seen = list(dict.fromkeys(starts))
    assert first_seen == sorted(first_seen), "messages started in id order"
    assert_no_overlap(events, [(killed, kill_time)])
    server.terminate()


def test_waiting_sender_survives_kill9(
    server_factory: type[ServerProcess], data_dir: Path, journal: Path
) -> None:
    server = start(server_factory, data_dir, journal)
    port = server.port
    result: list[Any] = []

    def ask() -> None:
        with create_sync_client(server.url, retry_for=60) as client:
            result.append(
                client.replier.get_or_create(["w"]).send(
                    "ask", {"n": 7, "sleep_first_attempt": 60}, wait=True, timeout=120
                )
            )

    thread = threading.Thread(target=ask)
    thread.start()
    wait_for(
        lambda: any(e["ev"] == "start" and e["actor"] == "w" for e in read_journal(journal)),
        what="the completable message to start",
    )
    server.kill9()
    server = start(server_factory, data_dir, journal, port=port)
    thread.join(90)
    assert result, "the waiting sender got an answer"
    r = result[0]
    assert r.status == "completed"
    assert r.response == {"n": 7, "attempt": 2}
    events = [e for e in read_journal(journal) if e["actor"] == "w"]
    assert {e["id"] for e in events} == {r.id}, "the retried wait is on the same message"
    assert [e["attempt"] for e in events if e["ev"] == "start"] == [1, 2]
    server.terminate()


def test_sigterm_lets_current_handler_finish(
    server_factory: type[ServerProcess], data_dir: Path, journal: Path
) -> None:
    server = start(server_factory, data_dir, journal)
    with create_sync_client(server.url) as client:
        h = client.worker.get_or_create(["g"])
        h.send("tasks", {"n": 0, "sleep": 1.0})
        for i in range(1, 4):
            h.send("tasks", {"n": i, "sleep": 0.5})
    wait_for(
        lambda: any(e["ev"] == "start" and e["actor"] == "g" for e in read_journal(journal)),
        what="first message to start",
    )
    t0 = time.monotonic()
    assert server.terminate() == 0
    assert time.monotonic() - t0 < 10
    done = ends(read_journal(journal), "g")
    assert 1 in done, "the handler running at SIGTERM finished"
    server = start(server_factory, data_dir, journal, port=server.port)
    wait_for(
        lambda: len(ends(read_journal(journal), "g")) == 4, what="the rest to be processed after restart"
    )
    events = [e for e in read_journal(journal) if e["actor"] == "g"]
    assert ends(events, "g") == Counter({1: 1, 2: 1, 3: 1, 4: 1}), "nothing ran twice across a graceful stop"
    server.terminate()


def test_sigterm_past_grace_redelivers(
    server_factory: type[ServerProcess], data_dir: Path, journal: Path
) -> None:
    server = start(server_factory, data_dir, journal, args=["--grace", "1"])
    with create_sync_client(server.url) as client:
        client.worker.get_or_create(["h"]).send("tasks", {"n": 0, "sleep_first_attempt": 60})
    wait_for(
        lambda: any(e["ev"] == "start" and e["actor"] == "h" for e in read_journal(journal)),
        what="the long message to start",
    )
    t0 = time.monotonic()
    server.terminate(timeout=20)
    assert time.monotonic() - t0 < 8, "shutdown is bounded by the grace period"
    server = start(server_factory, data_dir, journal, port=server.port)
    wait_for(lambda: ends(read_journal(journal), "h")[1] == 1, what="redelivery after restart")
    starts = [e["attempt"] for e in read_journal(journal) if e["actor"] == "h" and e["ev"] == "start"]
    assert starts == [1, 2]
    server.terminate()


def test_second_server_on_same_data_dir_refuses(
    server_factory: type[ServerProcess], data_dir: Path, journal: Path
) -> None:
    server = start(server_factory, data_dir, journal)
    with pytest.raises(RuntimeError, match="in use by another actorq process"):
        start(server_factory, data_dir, journal)
    with create_sync_client(server.url) as client:
        assert client.health()["status"] == "ok"
    server.terminate()


def test_websocket_reopens_after_the_server_is_killed_and_restarted(tmp_path: Path) -> None:
    """One SQLite server: kill -9 it under a connected client, start it again on the same port:
    the client's connection re-opens by itself and events and actions flow again."""
    server = ServerProcess("tests.apps.cluster_ws_app:registry", tmp_path / "data").start()

    async def scenario() -> None:
        async with create_client(server.url) as client:
            conn = await client.emitter.get_or_create(["k"]).connect()
            await client.emitter.get_or_create(["k"]).send("tasks", {"n": 1})
            assert (await conn.next_event(10)).data["n"] == 1
            await asyncio.to_thread(server.kill9)
            await asyncio.to_thread(server.start)
            deadline = time.monotonic() + 20
            while conn.reconnects == 0 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert conn.reconnects == 1 and conn.close_code == 1006, (conn.reconnects, conn.close_code)
            await client.emitter.get_or_create(["k"]).send("tasks", {"n": 2})
            assert (await conn.next_event(10)).data == {"n": 2, "pid": server.proc.pid}  # type: ignore[union-attr]
            assert await conn.where() == server.proc.pid  # type: ignore[union-attr]
            await conn.close()

    try:
        asyncio.run(scenario())
    finally:
        server.stop()
