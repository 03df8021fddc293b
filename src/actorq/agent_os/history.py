"""A VM's event history: every event it broadcasts, numbered and kept on disk, bounded.

Each event (session, process, shell, cron, limits) gets the next sequence number of its VM
(``seq``, from 1, never reused) in its data before it is broadcast, and is appended to one file per
VM beside the VM's root (``<data>/actors/<id>/events.jsonl``, outside anything a VM process
sees) as a JSON line. The line is written at once (it survives the server being killed) and the
file is ``fdatasync``ed in batches, ``SYNC_DELAY`` after the first unsynced event and when the VM
sleeps. The last ``limit`` events of agent sessions and, apart, the last ``limit`` others (process
and shell output, ...), at most ``max_bytes`` of each, stay in memory for ``page``; older ones are
dropped, and the file is rewritten with what is kept once it holds twice that (its first line then
says up to which ``seq`` each kind was let go, so ``first_seq`` and ``dropped`` hold after a restart).

Clients that connect late or reconnect catch up with ``page(since=last_seen)`` after connecting
and drop what they already saw by ``seq`` (docs/agent_os.md has the recipe).

Must not import the core or storage.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import heapq
import itertools
import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from actorq.errors import BadRequest
from actorq.vm_types import EventPage

log = logging.getLogger("actorq.agent_os")

HISTORY_FILE = "events.jsonl"  # in the VM actor's files directory, beside (not in) the VM's root
DEFAULT_LIMIT = 10_000
DEFAULT_MAX_BYTES = 32 * 1024 * 1024
MAX_PAGE = 10_000  # events one get_events call returns at most
SYNC_DELAY = 0.05  # seconds an event may wait for its fdatasync


class _Entry:
    __slots__ = ("event", "line", "seq", "session_id")

    def __init__(self, seq: int, session_id: str | None, event: dict[str, Any], line: bytes) -> None:
        self.seq = seq
        self.session_id = session_id
        self.event = event
        self.line = line


def _session_of(data: Any) -> str | None:
    sid = data.get("session_id") if isinstance(data, dict) else None
    return sid if isinstance(sid, str) else None


def _parse(line: bytes) -> Any:
    try:
        return json.loads(line)
    except ValueError:
        return None


def _line(event: dict[str, Any]) -> bytes:
    text = json.dumps(event, separators=(",", ":"), ensure_ascii=False, default=str) + "\n"
    try:
        return text.encode()
    except UnicodeEncodeError:  # a lone surrogate (an agent's JSON may carry one): escape it
        return (json.dumps(event, separators=(",", ":"), default=str) + "\n").encode()


def check_since(since: object, limit: object) -> tuple[int, int]:
    if isinstance(since, bool) or not isinstance(since, int) or since < 0:
        raise BadRequest(
            "since is a sequence number >= 0 (0: from the oldest kept)", details={"field": "since"}
        )
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise BadRequest(f"limit is a whole number from 1 to {MAX_PAGE}", details={"field": "limit"})
    return since, limit


class _Stream:
    """Kept events of one kind, oldest first, bounded; ``dropped`` is the newest seq let go."""

    __slots__ = ("bytes", "dropped", "entries")

    def __init__(self) -> None:
        self.entries: list[_Entry] = []
        self.bytes = 0
        self.dropped = 0

    def keep(self, entry: _Entry, limit: int, max_bytes: int) -> None:
        self.entries.append(entry)
        self.bytes += len(entry.line)
        drop = 0
        while len(self.entries) - drop > 1 and (len(self.entries) - drop > limit or self.bytes > max_bytes):
            self.bytes -= len(self.entries[drop].line)
            drop += 1
        if drop:
            self.dropped = self.entries[drop - 1].seq
            del self.entries[:drop]

    def after(self, since: int) -> list[_Entry]:
        return self.entries[bisect.bisect_right(self.entries, since, key=lambda e: e.seq) :]


class History:
    """One VM's numbered events: in memory (the newest ``limit``) and in its file."""

    def __init__(self, path: Path, limit: int = DEFAULT_LIMIT, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.path = path
        self.limit = limit
        self.max_bytes = max_bytes
        self.last_seq = 0
        # a session's events and the rest are kept apart, each up to the bounds, so a process that
        # prints a lot cannot push an agent session's events out
        self._sessions = _Stream()
        self._other = _Stream()
        self._file_bytes = 0
        self._file_lines = 0
        self._fd: int | None = None
        self._lock = threading.Lock()  # the descriptor, between the loop and the sync thread
        self._sync_pending = False
        self._closed = False
        self._loaded = False  # the file's events are in memory (until then only what was recorded)
        self._loading: asyncio.Future[None] | None = None
        self._end = 0  # the file's size when opened: what _parse reads

    @classmethod
    async def open(
        cls, path: Path, limit: int = DEFAULT_LIMIT, max_bytes: int = DEFAULT_MAX_BYTES
    ) -> History:
        """Open the file and learn its last number; the events themselves are read when first
        needed (``page``, or the file outgrowing its bound), so a wake does not pay for them."""
        self = cls(path, limit, max_bytes)
        self._end = await asyncio.to_thread(self._open_file)
        return self

    def _start_loading(self) -> asyncio.Future[None]:
        if self._loading is None:
            parsing = asyncio.get_running_loop().run_in_executor(None, self._parse, self._end)
            self._loading = asyncio.ensure_future(self._merge(parsing))
        return self._loading

    # -- disk -----------------------------------------------------------------------------------
    def _open_file(self) -> int:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            raw = b""
        end = raw.rfind(b"\n") + 1  # a line cut short by a crash is dropped
        stop = end
        while stop > 0:  # the last line that reads (only it is parsed here)
            start = raw.rfind(b"\n", 0, stop - 1) + 1
            event = _parse(raw[start:stop])
            if isinstance(event, dict) and isinstance(event.get("seq"), int):
                self.last_seq = event["seq"]
                break
            stop = start
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        if end != len(raw):
            os.truncate(self.path, end)
        self._file_bytes, self._file_lines = end, raw.count(b"\n", 0, end)
        return end

    def _parse(self, end: int) -> tuple[list[_Entry], list[int]]:
        """The events of the file's first ``end`` bytes (what it held when opened), in a thread, and
        what its last rewrite had let go of (sessions', others')."""
        with self.path.open("rb") as f:
            raw = f.read(end)
        lines = raw.splitlines(keepends=True)
        try:  # one parse of the whole file is twice as fast as one a line
            events: list[Any] = json.loads(b"[" + b",".join(lines) + b"]")
        except ValueError:
            events = [_parse(line) for line in lines]
        out: list[_Entry] = []
        last = 0
        dropped = [0, 0]
        for line, event in zip(lines, events, strict=True):
            if isinstance(event, dict) and "dropped" in event and "seq" not in event:
                with contextlib.suppress(TypeError, ValueError):
                    dropped = [max(int(x), d) for x, d in zip(event["dropped"], dropped, strict=True)]
                continue
            try:
                seq = int(event["seq"])
            except (KeyError, TypeError, ValueError):
                log.warning("VM event history %s: skipped an unreadable line", self.path.name)
                continue
            if seq > last:
                last = seq
                out.append(_Entry(seq, _session_of(event.get("data")), event, line))
        return out, dropped

    async def _merge(self, parsing: asyncio.Future[tuple[list[_Entry], list[int]]]) -> None:
        try:
            parsed, marks = await parsing
        except Exception as exc:  # an unreadable file must not stop the VM: its history starts over
            log.warning("VM event history %s not read: %s", self.path.name, exc)
            parsed, marks = [], [0, 0]
        recorded, before = self._kept(), (self._sessions, self._other)
        self._sessions, self._other = _Stream(), _Stream()
        for entry in (*parsed, *recorded):  # what was recorded meanwhile comes after the file's
            self._keep(entry)
        for new, old, mark in zip((self._sessions, self._other), before, marks, strict=True):
            new.dropped = max(new.dropped, old.dropped, mark)  # let go before the file was read
        self._loaded = True
        if not self._closed:
            self._trim()

    async def ready(self) -> None:
        """Wait until the file's events are in memory (reading them if nothing did yet)."""
        await asyncio.shield(self._start_loading())

    def _keep(self, entry: _Entry) -> None:
        stream = self._sessions if entry.session_id is not None else self._other
        stream.keep(entry, self.limit, self.max_bytes)

    def _kept(self, since: int = 0) -> list[_Entry]:
        """Every kept event after ``since``, in order."""
        return list(heapq.merge(self._sessions.after(since), self._other.after(since), key=lambda e: e.seq))

    def _trim(self) -> None:
        """Rewrite the file with only what is kept once it holds twice that (a crash midway leaves
        the old file whole: the new one replaces it by rename)."""
        kept = len(self._sessions.entries) + len(self._other.entries)
        if not self._loaded or (
            self._file_lines <= 2 * max(kept, 1)
            and self._file_bytes <= 2 * (self._sessions.bytes + self._other.bytes) + 65536
        ):
            return
        tmp = self.path.with_suffix(".tmp")
        entries = self._kept()
        # what was let go is said first, so a restart knows where the kept events are complete from
        marks = json.dumps({"dropped": [self._sessions.dropped, self._other.dropped]}).encode() + b"\n"
        data = marks + b"".join(e.line for e in entries)
        with self._lock:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fdatasync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
            if self._fd is not None:
                os.close(self._fd)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        self._file_bytes, self._file_lines = len(data), len(entries) + 1

    def _sync(self) -> None:
        with self._lock:
            self._sync_pending = False
            if self._fd is not None:
                os.fdatasync(self._fd)

    def _schedule_sync(self) -> None:
        if self._sync_pending:
            return
        self._sync_pending = True
        loop = asyncio.get_running_loop()

        def synced(f: asyncio.Future[None]) -> None:
            if not f.cancelled() and f.exception() is not None:
                log.warning("VM event history not synced: %s", f.exception())

        def start() -> None:
            loop.run_in_executor(None, self._sync).add_done_callback(synced)

        loop.call_later(SYNC_DELAY, start)

    # -- events ---------------------------------------------------------------------------------
    def record(self, name: str, data: Any) -> dict[str, Any]:
        """Number ``data`` (a dict: the event's fields), keep it and return what is broadcast."""
        self.last_seq += 1
        seq = self.last_seq
        body = {**data, "seq": seq} if isinstance(data, dict) else {"value": data, "seq": seq}
        event = {"seq": seq, "time": time.time(), "name": name, "data": body}
        line = _line(event)
        self._keep(_Entry(seq, _session_of(body), event, line))
        try:
            if self._closed:  # an event after the VM went to sleep (a process's exit): append it
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
                try:
                    os.write(fd, line)
                finally:
                    os.close(fd)
            elif self._fd is not None:
                os.write(self._fd, line)
                self._file_bytes += len(line)
                self._file_lines += 1
                if self._loaded:
                    self._trim()
                elif self._file_lines > 4 * self.limit or self._file_bytes > 4 * self.max_bytes:
                    self._start_loading()  # the rewrite needs the file's events: read them now
                self._schedule_sync()
        except OSError as exc:  # a full disk must not stop the VM: the event is still broadcast
            log.warning("VM event history: event %d not written (%s)", seq, exc)
        return body

    def skip_to(self, seq: int) -> None:
        """Events up to ``seq`` were numbered elsewhere (another node): go on after it, and say
        that those are not here."""
        if seq > self.last_seq:
            self.last_seq = seq
            self._sessions.dropped = max(self._sessions.dropped, seq)
            self._other.dropped = max(self._other.dropped, seq)

    def _first(self, *streams: _Stream) -> int:
        """The seq from which nothing of ``streams`` was let go."""
        return max(st.dropped for st in streams) + 1

    @property
    def first_seq(self) -> int:
        return self._first(self._sessions, self._other)

    async def page(self, since: int = 0, limit: int = 1000, session_id: str | None = None) -> EventPage:
        """Events with ``seq > since`` (of one session, or all), oldest first, at most ``limit``."""
        since, limit = check_since(since, limit)
        await self.ready()
        streams: tuple[_Stream, ...]
        if session_id is None:
            streams = (self._sessions, self._other)
            found = heapq.merge(self._sessions.after(since), self._other.after(since), key=lambda e: e.seq)
        else:
            streams = (self._sessions,)
            found = (e for e in self._sessions.after(since) if e.session_id == session_id)
        chosen = list(itertools.islice(found, limit + 1))
        more = len(chosen) > limit
        del chosen[limit:]
        first = self._first(*streams)
        return EventPage(
            events=[e.event for e in chosen],
            first_seq=first,
            last_seq=self.last_seq,
            # where the next call starts: everything up to it was looked at
            next_since=chosen[-1].seq if more else max(since, self.last_seq),
            more=more,
            dropped=since + 1 < first,
        )

    def sessions(self) -> set[str]:
        return {e.session_id for e in self._sessions.entries if e.session_id is not None}

    async def close(self) -> None:
        """The VM sleeps: sync what was written; later events are appended one by one."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            await self.ready()
        await asyncio.to_thread(self._close)

    def _close(self) -> None:
        with self._lock:
            if self._fd is not None:
                with contextlib.suppress(OSError):
                    os.fdatasync(self._fd)
                os.close(self._fd)
                self._fd = None
