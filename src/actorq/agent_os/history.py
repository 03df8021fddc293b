"""A VM's event history: every event it broadcasts, numbered and kept on disk, bounded.

Each event (session, process, shell, cron, limits) gets the next sequence number of its VM
(``seq``, from 1, never reused) in its data before it is broadcast, and is appended to one file per
VM beside the VM's root (``<data>/actors/<id>/events.jsonl``, outside anything a VM process
sees) as a JSON line. The line is written at once (it survives the server being killed) and the
file is ``fdatasync``ed in batches, ``SYNC_DELAY`` after the first unsynced event and when the VM
sleeps. The last ``limit`` events, at most ``max_bytes`` of them, stay in memory for ``page``;
older ones are dropped, and the file is rewritten with what is kept once it holds twice that.

Clients that connect late or reconnect catch up with ``page(since=last_seen)`` after connecting
and drop what they already saw by ``seq`` (docs/agent_os.md has the recipe).

Must not import the core or storage.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
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


def check_since(since: object, limit: object) -> tuple[int, int]:
    if isinstance(since, bool) or not isinstance(since, int) or since < 0:
        raise BadRequest(
            "since is a sequence number >= 0 (0: from the oldest kept)", details={"field": "since"}
        )
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise BadRequest(f"limit is a whole number from 1 to {MAX_PAGE}", details={"field": "limit"})
    return since, limit


class History:
    """One VM's numbered events: in memory (the newest ``limit``) and in its file."""

    def __init__(self, path: Path, limit: int = DEFAULT_LIMIT, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.path = path
        self.limit = limit
        self.max_bytes = max_bytes
        self.last_seq = 0
        self._entries: list[_Entry] = []
        self._bytes = 0  # of the kept lines
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

    def _parse(self, end: int) -> list[_Entry]:
        """The events of the file's first ``end`` bytes (what it held when opened), in a thread."""
        with self.path.open("rb") as f:
            raw = f.read(end)
        lines = raw.splitlines(keepends=True)
        try:  # one parse of the whole file is twice as fast as one a line
            events: list[Any] = json.loads(b"[" + b",".join(lines) + b"]")
        except ValueError:
            events = [_parse(line) for line in lines]
        out: list[_Entry] = []
        last = 0
        for line, event in zip(lines, events, strict=True):
            try:
                seq = int(event["seq"])
            except (KeyError, TypeError, ValueError):
                log.warning("VM event history %s: skipped an unreadable line", self.path.name)
                continue
            if seq > last:
                last = seq
                out.append(_Entry(seq, _session_of(event.get("data")), event, line))
        return out[-self.limit :]

    async def _merge(self, parsing: asyncio.Future[list[_Entry]]) -> None:
        try:
            parsed = await parsing
        except Exception as exc:  # an unreadable file must not stop the VM: its history starts over
            log.warning("VM event history %s not read: %s", self.path.name, exc)
            parsed = []
        recorded, self._entries, self._bytes = self._entries, [], 0
        for entry in (*parsed, *recorded):  # what was recorded meanwhile comes after the file's
            self._keep(entry)
        self._loaded = True
        if not self._closed:
            self._trim()

    async def ready(self) -> None:
        """Wait until the file's events are in memory (reading them if nothing did yet)."""
        await asyncio.shield(self._start_loading())

    def _keep(self, entry: _Entry) -> None:
        self._entries.append(entry)
        self._bytes += len(entry.line)
        drop = 0
        while len(self._entries) - drop > 1 and (
            len(self._entries) - drop > self.limit or self._bytes > self.max_bytes
        ):
            self._bytes -= len(self._entries[drop].line)
            drop += 1
        if drop:
            del self._entries[:drop]

    def _trim(self) -> None:
        """Rewrite the file with only what is kept once it holds twice that (a crash midway leaves
        the old file whole: the new one replaces it by rename)."""
        if not self._loaded or (
            self._file_lines <= 2 * max(len(self._entries), 1) and self._file_bytes <= 2 * self._bytes + 65536
        ):
            return
        tmp = self.path.with_suffix(".tmp")
        data = b"".join(e.line for e in self._entries)
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
        self._file_bytes, self._file_lines = len(data), len(self._entries)

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
        line = (json.dumps(event, separators=(",", ":"), ensure_ascii=False, default=str) + "\n").encode()
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
                elif self._file_lines > 2 * self.limit or self._file_bytes > 2 * self.max_bytes:
                    self._start_loading()  # the rewrite needs the file's events: read them now
                self._schedule_sync()
        except OSError as exc:  # a full disk must not stop the VM: the event is still broadcast
            log.warning("VM event history: event %d not written (%s)", seq, exc)
        return body

    @property
    def first_seq(self) -> int:
        return self._entries[0].seq if self._entries else self.last_seq + 1

    async def page(self, since: int = 0, limit: int = 1000, session_id: str | None = None) -> EventPage:
        """Events with ``seq > since`` (of one session, or all), oldest first, at most ``limit``."""
        since, limit = check_since(since, limit)
        await self.ready()
        entries = self._entries
        start = bisect.bisect_right(entries, since, key=lambda e: e.seq)
        if session_id is None:
            chosen = entries[start : start + limit]
            more = start + limit < len(entries)
        else:
            chosen = []
            more = False
            for e in entries[start:] if start else entries:
                if e.session_id == session_id:
                    if len(chosen) == limit:
                        more = True
                        break
                    chosen.append(e)
        first = self.first_seq
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
        return {e.session_id for e in self._entries if e.session_id is not None}

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
