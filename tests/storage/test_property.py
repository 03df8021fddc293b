"""A hypothesis state machine drives the SQLite driver with random sends, receives, completions,
receiver crashes, process restarts and dead-letter retries, checking every answer against a
simple reference model of the delivery rules (README, What is promised)."""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from actorq.errors import QueueFull
from actorq.storage.postgres import PostgresStorage
from actorq.storage.protocol import MessageStatus, SendRequest, Storage
from actorq.storage.sqlite import SQLiteStorage
from tests.storage.conftest import PG_DSN

QUEUES = ("a", "b")
MAX_SIZE = 3
MAX_ATTEMPTS = 3
NOW = 1_000.0


@dataclass
class Msg:
    id: int
    queue: str
    status: MessageStatus
    attempt: int = 0


class QueueMachine(RuleBasedStateMachine):
    @initialize()
    def open(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.dir = Path(tempfile.mkdtemp(prefix="actorq-prop-"))
        self.schema = "prop_" + uuid.uuid4().hex[:12]
        self.storage = self.make_storage()
        self.run(self.storage.open())
        rec, _ = self.run(
            self.storage.resolve_actor("w", ("k",), create=True, must_create=False, new_id="A", now=NOW)
        )
        assert rec is not None
        self.model: dict[int, Msg] = {}
        self.keys: dict[str, int] = {}
        self.next_id = 1
        self.held: list[int] = []

    def make_storage(self) -> Storage:
        return SQLiteStorage(self.dir)

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        if hasattr(self, "storage"):
            self.run(self.storage.close())
            self.drop()
            self.loop.close()
            shutil.rmtree(self.dir, ignore_errors=True)

    def drop(self) -> None:
        pass

    def pending(self, queue: str) -> int:
        return sum(1 for m in self.model.values() if m.queue == queue and m.status == MessageStatus.PENDING)

    @rule(queue=st.sampled_from(QUEUES), key=st.sampled_from([None, None, "k1", "k2", "k3"]))
    def send(self, queue: str, key: str | None) -> None:
        req = SendRequest("A", queue, json.dumps({"q": queue}), MAX_SIZE, NOW, key)
        if key is not None and key in self.keys:
            out = self.run(self.storage.send(req, NOW))
            assert out.duplicate and out.id == self.keys[key]
            return
        if self.pending(queue) >= MAX_SIZE:
            try:
                self.run(self.storage.send(req, NOW))
            except QueueFull:
                return
            raise AssertionError("send past max_size was accepted")
        out = self.run(self.storage.send(req, NOW))
        assert (out.id, out.duplicate) == (self.next_id, False)
        self.model[out.id] = Msg(out.id, queue, MessageStatus.PENDING)
        if key is not None:
            self.keys[key] = out.id
        self.next_id += 1

    @rule(count=st.integers(1, 3), only=st.sampled_from([None, "a", "b"]), ack=st.booleans())
    def receive(self, count: int, only: str | None, ack: bool) -> None:
        ack_ids = tuple(self.held) if ack else ()
        if not ack:  # an un-acked receiver crashed first: release what it held
            self.crash()
        queues = (only,) if only else None
        out = self.run(
            self.storage.receive(
                "A", queues, count, ack_ids=ack_ids, state=None, now=NOW, max_attempts=MAX_ATTEMPTS
            )
        )
        for i in ack_ids:
            self.model[i].status = MessageStatus.COMPLETED
        assert sorted(out.acked) == sorted(ack_ids)
        want, dead = [], []
        for m in sorted(self.model.values(), key=lambda m: m.id):
            if len(want) >= count:
                break
            if m.status != MessageStatus.PENDING or (only and m.queue != only):
                continue
            if m.attempt >= MAX_ATTEMPTS:
                m.status = MessageStatus.DEAD
                dead.append(m.id)
                continue
            m.status = MessageStatus.INFLIGHT
            m.attempt += 1
            want.append((m.id, m.attempt))
        assert [(m.id, m.attempt) for m in out.messages] == want, "lowest ready ids first, attempt + 1"
        assert [d.id for d in out.dead] == dead
        self.held = [i for i, _ in want]

    @precondition(lambda self: bool(self.held))
    @rule()
    def complete(self) -> None:
        i = self.held.pop(0)
        assert self.run(self.storage.complete("A", i, '"done"', state=None, now=NOW))
        self.model[i].status = MessageStatus.COMPLETED
        assert not self.run(self.storage.complete("A", i, '"again"', state=None, now=NOW))

    @rule()
    def crash(self) -> None:
        held, self.held = tuple(self.held), []
        dead = self.run(self.storage.release("A", held, error="crash", max_attempts=MAX_ATTEMPTS, now=NOW))
        want = []
        for i in held:
            m = self.model[i]
            if m.attempt >= MAX_ATTEMPTS:
                m.status = MessageStatus.DEAD
                want.append(i)
            else:
                m.status = MessageStatus.PENDING
        assert [d.id for d in dead] == want

    @rule()
    def restart(self) -> None:
        self.run(self.storage.close())
        self.storage = self.make_storage()
        self.run(self.storage.open())
        with_work = self.run(self.storage.recover(NOW))
        self.held = []
        for m in self.model.values():
            if m.status == MessageStatus.INFLIGHT:
                m.status = MessageStatus.PENDING
        assert with_work == (
            ["A"] if any(m.status == MessageStatus.PENDING for m in self.model.values()) else []
        )

    @rule(data=st.data())
    def retry_dead(self, data: st.DataObject) -> None:
        dead = sorted(i for i, m in self.model.items() if m.status == MessageStatus.DEAD)
        if not dead:
            return
        i = data.draw(st.sampled_from(dead))
        assert self.run(self.storage.retry_dead("A", i, NOW))
        self.model[i].status = MessageStatus.PENDING
        self.model[i].attempt = 0

    @invariant()
    def counts_match(self) -> None:
        if not hasattr(self, "storage"):
            return
        stats = {s.queue: s for s in self.run(self.storage.queue_stats("A", NOW))}
        for q in QUEUES:
            mine = [m for m in self.model.values() if m.queue == q]
            got = stats.get(q)
            counts = tuple(sum(1 for m in mine if m.status == s) for s in MessageStatus)
            have = (got.pending, got.inflight, got.completed, got.dead) if got else (0, 0, 0, 0)
            assert have == counts, (q, have, counts)
        dead = self.run(self.storage.list_messages("A", MessageStatus.DEAD, 1000))
        assert [m.id for m in dead] == sorted(
            i for i, m in self.model.items() if m.status == MessageStatus.DEAD
        )
        for q in QUEUES:  # the O(1) size counter agrees with the rows
            if self.pending(q) < MAX_SIZE:
                continue
            try:
                self.run(self.storage.send(SendRequest("A", q, "{}", MAX_SIZE, NOW, None), NOW))
            except QueueFull:
                continue
            raise AssertionError("size counter drifted")


class PostgresQueueMachine(QueueMachine):
    """The same model against the PostgreSQL driver (a schema per run; a restart reopens it)."""

    def make_storage(self) -> Storage:
        return PostgresStorage(PG_DSN, schema=self.schema, min_size=1, max_size=2)

    def drop(self) -> None:
        async def drop() -> None:
            conn = await asyncpg.connect(PG_DSN)
            try:
                await conn.execute(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")
            finally:
                await conn.close()

        self.run(drop())


QueueMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)
PostgresQueueMachine.TestCase.settings = settings(max_examples=25, stateful_step_count=40, deadline=None)
TestQueueModel = QueueMachine.TestCase
TestQueueModelPostgres = PostgresQueueMachine.TestCase
