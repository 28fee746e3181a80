"""The events store: what the API accepted, kept for the feed, test-fire and backtests.

Not a second source of truth. An event is accepted once the automations that care have it
(Temporal); the store gets a copy afterwards, off the request's path:

- `record()` only writes the accepted batch to a writer child process (api/events_writer.py)
  and tells live subscribers; the ingest path never waits for the database, and the database
  work does not hold the API's interpreter lock;
- when the database is down, the writer has died, or it is too far behind (64 MB unread),
  events are still accepted and evaluated; what could not be written is remembered as a *gap*
  (when, how many, why), which the feed reports, so a reader knows it is incomplete;
- a retention task deletes events that occurred longer ago than the retention setting.

One async SQLAlchemy layer for SQLite (the default, a file in the data folder) and PostgreSQL.
Instants are stored as integer microseconds since the epoch (UTC): the same type, comparisons
and arithmetic on both databases. The whole event is kept as JSON; occurred has an index
(PostgreSQL also (name, occurred) and the event id), which reads filter on first.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import sys
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

from pydantic import TypeAdapter
from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    false,
    func,
    or_,
    select,
)
from sqlalchemy import event as sqlalchemy_event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool
from sqlalchemy.sql import Select

from temporal_automations.api.events_writer import FRAME, SQLITE_PAGE_SIZE
from temporal_automations.devserver import die_with_parent
from temporal_automations.domain.events import Event

log = logging.getLogger("automations.events_store")

# Bytes sent to the writer and not yet taken by it; past this, events are a gap, not memory.
MAX_UNWRITTEN_BYTES = 64 * 2**20
RESTART_WRITER_AFTER = 2.0  # seconds, when the writer process has died
F_SETPIPE_SZ = 1031  # Linux fcntl
WRITER_NICENESS = 10  # where SCHED_IDLE is not available
MAX_GAPS = 100
MAX_SUBSCRIBER_QUEUE = 10_000  # a live reader this far behind is disconnected
PURGE_EVERY = timedelta(minutes=10)

metadata = MetaData()
events_table = Table(
    "events",
    metadata,
    # An integer key in arrival order: inserts append to the table's B-tree, and it orders
    # events that occurred at the same instant (as the workflows got them). Random keys are
    # what an insert pays for (measured on SQLite: 11.3 µs an event with a unique index on the
    # event id, 4.6 without): resource ids have no index, and on SQLite neither has the event
    # id (the writer drops repeated ids it has seen recently, as the router remembers them);
    # reads by either filter within the occurred range. PostgreSQL, on its own server, keeps a
    # unique index on the id, which dedupes for good.
    Column(
        "seq",
        BigInteger().with_variant(Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    Column("id", String(36), nullable=False),
    Column("occurred", BigInteger, nullable=False),  # microseconds since the epoch, UTC
    Column("received", BigInteger, nullable=False),
    Column("event", String(1024), nullable=False),
    Column("resource_id", String(4096), nullable=False),
    Column("data", Text, nullable=False),  # the event as JSON
    Index("events_id", "id", unique=True).ddl_if(dialect="postgresql"),
    # Its entries are (occurred, seq): reads in occurred order, ties by arrival, need no sort.
    Index("events_occurred", "occurred"),
    # Not on SQLite, where the writer shares the API's cores: it was a third of an insert's
    # cost (measured: 7.2 -> 5.2 µs an event), and reads by name scan the occurred range.
    Index("events_event_occurred", "event", "occurred").ddl_if(dialect="postgresql"),
)
INSERT_SQL = {
    # Plain driver SQL with tuples: the SQLAlchemy statement compiled per row cost more than
    # the database's own work. SQLite: repeated ids are dropped by the writer beforehand.
    "sqlite": "INSERT INTO events (id, occurred, received, event, resource_id, data) "
    "VALUES (?, ?, ?, ?, ?, ?)",
    "postgresql": "INSERT INTO events (id, occurred, received, event, resource_id, data) "
    "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_batch_json = TypeAdapter(list[Event])


def to_micros(instant: datetime) -> int:
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=UTC)
    return (instant - _EPOCH) // timedelta(microseconds=1)


def _fast_micros(instant: datetime) -> int:
    """to_micros for the write path: a quarter of its cost; exact for years 1970–2999 (a
    double holds their microseconds within 0.5, and `round` takes the nearest)."""
    return round(instant.timestamp() * 1_000_000)


def from_micros(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


class StoreUnavailable(RuntimeError):
    """The events store could not answer a read (not configured, or its database is down)."""


@dataclass
class Gap:
    """Events accepted but not written: the feed is incomplete between `start` and `end`."""

    start: datetime
    end: datetime
    events: int
    reason: str

    def as_json(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "events": self.events,
            "reason": self.reason,
        }


class Span(NamedTuple):
    """A batch, as far as a gap needs it."""

    events: int
    start: datetime
    end: datetime


def _span(batch: list[Event]) -> Span:
    occurred = [event.occurred for event in batch]
    return Span(len(batch), min(occurred), max(occurred))


@dataclass
class StoredQuery:
    """What SQL can filter on; the rest (labels, related resources) is `matches`, in Python."""

    since: datetime
    until: datetime
    names: list[str] | None = None
    name_prefixes: list[str] | None = None
    exclude_names: list[str] | None = None
    exclude_prefixes: list[str] | None = None
    resource_ids: list[str] | None = None
    resource_prefixes: list[str] | None = None
    ids: list[str] | None = None
    descending: bool = True
    matches: Callable[[Event], bool] | None = None


@dataclass(eq=False)
class Subscriber:
    """A live reader (the `/api/events/out` websocket): gets each recorded event it wants."""

    wants: Callable[[Event], bool]
    queue: asyncio.Queue[Event | None] = field(default_factory=asyncio.Queue)
    dropped: bool = False


class EventsStore:
    def __init__(self, url: str, retention: timedelta) -> None:
        self.url = url
        self.retention = retention
        self.engine: AsyncEngine = engine_for(url)
        self.dialect = self.engine.dialect.name
        self._writer: asyncio.subprocess.Process | None = None
        self._frames: FrameSender | None = None
        # Sent to the writer, in order: how many events and when they occurred (first, last),
        # enough for a gap. Not the events: held until the writer answers (tens of ms), 500
        # models a batch outlived the cheap collections, and the API's full ones walked them
        # (measured with perf on the 1% load: its garbage collection 28% -> 35% of its CPU).
        self._unacknowledged: deque[Span] = deque()
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self._subscribers: set[Subscriber] = set()
        self.gaps: deque[Gap] = deque(maxlen=MAX_GAPS)
        self.healthy = False
        self.last_error: str | None = None
        self.written = 0
        self._idle = asyncio.Event()
        self._idle.set()
        # Batches sent to the writer, and of those, answered (written, failed or a gap).
        self._batches_sent = 0
        self._batches_done = 0
        self._progress = asyncio.Event()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Create the table if needed and start the writer process and the retention task.
        A database that is down now is not fatal: what cannot be written becomes a gap."""
        if self.dialect == "sqlite":
            path = self.engine.url.database
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
        try:
            await create_tables(self.engine)
            self.healthy = True
        except Exception as error:
            self._down(_short(error))
        self._tasks.append(asyncio.create_task(self._purge_forever(), name="events-retention"))
        await self._start_writer()

    async def _start_writer(self) -> None:
        if self._closing:
            return
        read_end, write_end = os.pipe()
        try:
            self._writer = await asyncio.create_subprocess_exec(
                sys.executable, "-P", "-m", "temporal_automations.api.events_writer", self.url,
                stdin=read_end, stdout=asyncio.subprocess.PIPE,
                preexec_fn=_writer_process_setup,
            )  # fmt: skip
        except Exception as error:
            os.close(write_end)
            self._down(f"the events writer did not start: {_short(error)}")
            self._tasks.append(asyncio.create_task(self._restart_writer_later()))
            return
        finally:
            os.close(read_end)
        self._frames = FrameSender(write_end)
        self._tasks.append(asyncio.create_task(self._read_answers(self._writer)))

    async def _restart_writer_later(self) -> None:
        await asyncio.sleep(RESTART_WRITER_AFTER)
        await self._start_writer()

    async def close(self) -> None:
        """Let the writer finish what it has (briefly), stop the tasks, end live streams."""
        self._closing = True
        writer = self._writer
        if writer is not None and self._frames is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._frames.drained(), timeout=5)
            self._frames.close()
            try:
                await asyncio.wait_for(writer.wait(), timeout=10)
            except TimeoutError:
                writer.kill()  # by its PID
                await writer.wait()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.flushed(), timeout=5)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for subscriber in list(self._subscribers):
            subscriber.queue.put_nowait(None)
        self._gap_for_unacknowledged("the API stopped before these were written")
        await self.engine.dispose()

    # ------------------------------------------------------------------ writing

    def record(
        self, events: Sequence[Event], received: datetime | None = None, raw: bytes | None = None
    ) -> None:
        """Hand accepted events to the writer process and to live subscribers. Never blocks,
        never raises: the store must not cost the ingest path its events. `raw`: the request
        body they were validated from, sent as it is when no event took a default (its id
        or occurred), which spares serializing them again."""
        if not events:
            return
        batch = list(events)
        writer, frames = self._writer, self._frames
        if frames is None or frames.broken or writer is None or writer.returncode is not None:
            self._add_gap(_span(batch), "the events writer was not running")
        elif frames.pending > MAX_UNWRITTEN_BYTES:
            self._add_gap(_span(batch), "the events store fell too far behind")
        else:
            body = raw if raw is not None and _as_sent(batch) else _batch_json.dump_json(batch)
            received_at = _fast_micros(received or datetime.now(UTC))
            frames.send(FRAME.pack(len(body), received_at))
            frames.send(body)
            self._unacknowledged.append(_span(batch))
            self._batches_sent += 1
            self._idle.clear()
        if self._subscribers:
            self._publish(batch)

    async def flushed(self) -> None:
        """Until nothing recorded is left unwritten (or not a gap)."""
        await self._idle.wait()

    async def written_so_far(self) -> None:
        """Until what was recorded before this call is written (or became a gap), whatever
        is recorded meanwhile: a backfill read after it holds every event recorded before
        (the writer commits what arrives within a short window together)."""
        target = self._batches_sent
        while self._batches_done < target:
            self._progress.clear()
            await self._progress.wait()

    def _batch_done(self) -> None:
        self._batches_done += 1
        self._progress.set()

    async def _read_answers(self, writer: asyncio.subprocess.Process) -> None:
        """The writer answers each frame, in order: written, or failed (a gap)."""
        assert writer.stdout is not None
        while line := await writer.stdout.readline():
            if not self._unacknowledged:
                continue
            span = self._unacknowledged.popleft()
            self._batch_done()
            if line.startswith(b"ok"):
                self.written += span.events
                if not self.healthy:
                    log.info("the events store is writing again")
                self.healthy, self.last_error = True, None
            else:
                reason = line[5:].decode(errors="replace").strip()
                self._down(reason)
                self._add_gap(span, f"the events store's database failed: {reason}")
            if not self._unacknowledged:
                self._idle.set()
        await writer.wait()
        if self._frames is not None:
            self._frames.close()
        self._gap_for_unacknowledged(f"the events writer exited (code {writer.returncode})")
        if not self._closing:
            self._down(f"the events writer exited (code {writer.returncode})")
            await asyncio.sleep(RESTART_WRITER_AFTER)
            await self._start_writer()

    def _down(self, reason: str) -> None:
        if self.last_error is None:
            log.warning("the events store is not writing: %s", reason)
        self.healthy = False
        self.last_error = reason

    def _gap_for_unacknowledged(self, reason: str) -> None:
        while self._unacknowledged:
            self._add_gap(self._unacknowledged.popleft(), reason)
            self._batch_done()
        self._idle.set()

    def _add_gap(self, span: Span, reason: str) -> None:
        last = self.gaps[-1] if self.gaps else None
        if last is not None and last.reason == reason:
            last.start, last.end = min(last.start, span.start), max(last.end, span.end)
            last.events += span.events
        else:
            self.gaps.append(Gap(span.start, span.end, span.events, reason))

    def gaps_between(self, since: datetime, until: datetime) -> list[Gap]:
        return [gap for gap in self.gaps if gap.start <= until and gap.end >= since]

    # ------------------------------------------------------------------ retention

    async def _purge_forever(self) -> None:
        while True:
            await asyncio.sleep(min(PURGE_EVERY, self.retention / 10).total_seconds())
            with contextlib.suppress(Exception):
                await self.purge()

    async def purge(self, now: datetime | None = None) -> int:
        """Delete events that occurred before `now - retention`; returns how many."""
        horizon = to_micros((now or datetime.now(UTC)) - self.retention)
        try:
            async with self.engine.begin() as connection:
                result = await connection.execute(
                    delete(events_table).where(events_table.c.occurred < horizon)
                )
        except Exception as error:
            self._down(_short(error))
            raise StoreUnavailable(_short(error)) from error
        return int(result.rowcount or 0)

    # ------------------------------------------------------------------ reading

    def _where(self, query: StoredQuery, statement: Select[Any]) -> Select[Any]:
        table = events_table.c
        statement = statement.where(
            table.occurred >= to_micros(query.since), table.occurred <= to_micros(query.until)
        )
        if query.ids is not None:
            statement = statement.where(table.id.in_(query.ids))
        if query.names is not None:
            statement = statement.where(table.event.in_(query.names))
        if query.name_prefixes is not None:
            statement = statement.where(_prefixed(table.event, query.name_prefixes))
        if query.exclude_names:
            statement = statement.where(table.event.not_in(query.exclude_names))
        for prefix in query.exclude_prefixes or []:
            statement = statement.where(~table.event.startswith(prefix, autoescape=True))
        if query.resource_ids is not None:
            statement = statement.where(table.resource_id.in_(query.resource_ids))
        if query.resource_prefixes is not None:
            statement = statement.where(_prefixed(table.resource_id, query.resource_prefixes))
        return statement

    async def read(
        self, query: StoredQuery, limit: int, offset: int = 0, scan_cap: int = 100_000
    ) -> tuple[list[Event], int, bool]:
        """Matching events in `occurred` order (ties in the order they arrived), the `limit`
        after `offset`; also the total that match, and whether a Python-side filter stopped
        at `scan_cap` rows."""
        order = (
            (events_table.c.occurred.desc(), events_table.c.seq.desc())
            if query.descending
            else (events_table.c.occurred.asc(), events_table.c.seq.asc())
        )
        try:
            async with self.engine.connect() as connection:
                if query.matches is None:
                    total = (
                        await connection.execute(
                            self._where(query, select(func.count()).select_from(events_table))
                        )
                    ).scalar_one()
                    rows = await connection.execute(
                        self._where(query, select(events_table.c.data, events_table.c.received))
                        .order_by(*order)
                        .offset(offset)
                        .limit(limit)
                    )
                    return [_loaded(row) for row in rows], int(total), False
                matched: list[Event] = []
                total = 0
                scanned = 0
                capped = False
                stream = await connection.stream(
                    self._where(query, select(events_table.c.data, events_table.c.received))
                    .order_by(*order)
                    .execution_options(yield_per=1_000)
                )
                async for row in stream:
                    scanned += 1
                    if scanned > scan_cap:
                        capped = True
                        break
                    event = _loaded(row)
                    if not query.matches(event):
                        continue
                    if offset <= total < offset + limit:
                        matched.append(event)
                    total += 1
                await stream.close()
                return matched, total, capped
        except Exception as error:
            self._down(_short(error))
            raise StoreUnavailable(_short(error)) from error

    async def events(self, query: StoredQuery, cap: int) -> tuple[list[Event], bool]:
        """Up to `cap` matching events in the query's order, and whether the cap was hit."""
        events, _, capped = await self.read(query, limit=cap + 1, scan_cap=10 * cap + 1)
        if len(events) > cap:
            return events[:cap], True
        return events, capped

    async def count_by(
        self, query: StoredQuery, countable: str, bucket: timedelta | None = None
    ) -> list[tuple[str, int, int, int]]:
        """Counts of matching events by `day` (or `bucket`), `event` or `resource`: rows of
        (value, count, first occurred, last occurred) in micros. Label filters are applied
        in Python (bounded scan)."""
        try:
            async with self.engine.connect() as connection:
                if query.matches is not None:
                    return await self._count_in_python(connection, query, countable, bucket)
                table = events_table.c
                if countable == "day":
                    size = to_micros(_EPOCH + (bucket or timedelta(days=1)))
                    start = to_micros(query.since)
                    key = ((table.occurred - start) // size).label("value")
                else:
                    key = (table.event if countable == "event" else table.resource_id).label(
                        "value"
                    )
                statement = self._where(
                    query,
                    select(key, func.count(), func.min(table.occurred), func.max(table.occurred)),
                ).group_by(key)
                rows = await connection.execute(statement)
                return [(str(r[0]), int(r[1]), int(r[2]), int(r[3])) for r in rows]
        except Exception as error:
            self._down(_short(error))
            raise StoreUnavailable(_short(error)) from error

    async def _count_in_python(
        self, connection: Any, query: StoredQuery, countable: str, bucket: timedelta | None
    ) -> list[tuple[str, int, int, int]]:
        counts: dict[str, list[int]] = {}
        size = to_micros(_EPOCH + (bucket or timedelta(days=1)))
        start = to_micros(query.since)
        stream = await connection.stream(
            self._where(query, select(events_table.c.data)).execution_options(yield_per=1_000)
        )
        scanned = 0
        async for row in stream:
            scanned += 1
            if scanned > 100_000:
                break
            event = Event.model_validate_json(row[0])
            assert query.matches is not None
            if not query.matches(event):
                continue
            occurred = to_micros(event.occurred)
            if countable == "day":
                value = str((occurred - start) // size)
            elif countable == "event":
                value = event.event
            else:
                value = event.resource_id
            entry = counts.setdefault(value, [0, occurred, occurred])
            entry[0] += 1
            entry[1], entry[2] = min(entry[1], occurred), max(entry[2], occurred)
        await stream.close()
        return [(value, c, first, last) for value, (c, first, last) in counts.items()]

    # ------------------------------------------------------------------ live

    def subscribe(self, wants: Callable[[Event], bool]) -> Subscriber:
        subscriber = Subscriber(wants=wants)
        self._subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.discard(subscriber)

    def _publish(self, events: Iterable[Event]) -> None:
        for subscriber in list(self._subscribers):
            for event in events:
                try:
                    wanted = subscriber.wants(event)
                except Exception:
                    wanted = False
                if not wanted:
                    continue
                if subscriber.queue.qsize() >= MAX_SUBSCRIBER_QUEUE:
                    # A reader this slow would hold memory without end: it is cut off, and
                    # told so; it can reconnect and backfill from the store.
                    subscriber.dropped = True
                    self._subscribers.discard(subscriber)
                    subscriber.queue.put_nowait(None)
                    break
                subscriber.queue.put_nowait(event)

    # ------------------------------------------------------------------ status

    def status(self) -> dict[str, Any]:
        return {
            "backend": self.dialect,
            "healthy": self.healthy,
            "last_error": self.last_error,
            "retention_seconds": self.retention.total_seconds(),
            "unwritten": sum(span.events for span in self._unacknowledged),
            "written": self.written,
            "gaps": [gap.as_json() for gap in self.gaps],
        }


def _writer_process_setup() -> None:
    """In the writer process: it dies with the API, and it runs only on CPU time nothing else
    wants (SCHED_IDLE; nice 10 where that is not available). Under a full CPU the copy waits
    (its backlog is bounded; past it, a gap), never the ingest path. Measured on the 1% ingest
    load, 13 alternating rounds of 300,000 events on 2 cores (bench/ingest.py's load): median
    40,812 events/s without the store, 38,294 with the writer at nice 10 (a waking request
    still waited for it), 42,968 with SCHED_IDLE; 1,500,000 events in a row left no gap, the
    writer 0.2 s behind at the end."""
    die_with_parent()
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):  # not Linux
        os.nice(WRITER_NICENESS)


class FrameSender:
    """Bytes to the writer's stdin, queued frame by frame, written when the pipe has room.

    asyncio's pipe transport keeps one bytearray and deletes what was written from its front:
    with the writer a few megabytes behind, every write moved the whole backlog (measured: the
    API's CPU per event rose with the backlog). Here a written frame is dropped whole, and a
    partly written one is resumed from an offset. The pipe is widened to 1 MB (Linux), so a
    500-event request usually goes in one write."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.pending = 0  # bytes queued, not yet in the pipe
        self.broken = False
        self._frames: deque[bytes] = deque()
        self._offset = 0
        self._watching = False
        self._empty = asyncio.Event()
        self._empty.set()
        self._loop = asyncio.get_running_loop()
        os.set_blocking(fd, False)
        with contextlib.suppress(OSError):
            fcntl.fcntl(fd, F_SETPIPE_SZ, 2**20)

    def send(self, data: bytes) -> None:
        if self.broken:
            return
        self._frames.append(data)
        self.pending += len(data)
        self._empty.clear()
        if not self._watching:
            self._flush()

    def _flush(self) -> None:
        while self._frames:
            frame = self._frames[0]
            try:
                written = os.write(self.fd, memoryview(frame)[self._offset :])
            except BlockingIOError:
                written = 0
            except OSError:  # the writer is gone: its answers' reader records the gap
                self._break()
                return
            self._offset += written
            self.pending -= written
            if self._offset < len(frame):
                if not self._watching:
                    self._loop.add_writer(self.fd, self._flush)
                    self._watching = True
                return
            self._frames.popleft()
            self._offset = 0
        if self._watching:
            self._loop.remove_writer(self.fd)
            self._watching = False
        self._empty.set()

    async def drained(self) -> None:
        await self._empty.wait()

    def _break(self) -> None:
        self.broken = True
        self._frames.clear()
        self.pending = 0
        self._empty.set()
        if self._watching:
            self._loop.remove_writer(self.fd)
            self._watching = False

    def close(self) -> None:
        """End of input for the writer (it finishes what it has read and exits)."""
        self._break()
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = -1


async def create_tables(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
        if engine.dialect.name == "sqlite":
            # A table made before 2026-12-05 has an (event, occurred) index, which inserts
            # paid for; dropped (its rows stay as they are, and read the same).
            await connection.exec_driver_sql("DROP INDEX IF EXISTS events_event_occurred")


def engine_for(url: str) -> AsyncEngine:
    if url.startswith("sqlite") and (url.endswith(":memory:") or url.endswith("://")):
        # One connection shared, or each would see its own empty database.
        return create_async_engine(
            url, poolclass=StaticPool, connect_args={"check_same_thread": False}
        )
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30})

        @sqlalchemy_event.listens_for(engine.sync_engine, "connect")
        def _pragmas(connection: Any, record: Any) -> None:
            # WAL: readers do not block the writer. synchronous=NORMAL: no fsync per commit;
            # a power loss may lose the last moments of a copy that is not the source of truth.
            cursor = connection.cursor()
            cursor.execute(f"PRAGMA page_size={SQLITE_PAGE_SIZE}")  # a new file only
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    return create_async_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)


def _prefixed(column: Any, prefixes: list[str]) -> Any:
    return or_(*(column.startswith(p, autoescape=True) for p in prefixes)) if prefixes else false()


_SENT_BY_CLIENT = frozenset(("id", "occurred"))


def _as_sent(events: list[Event]) -> bool:
    """Every event carried its own id and occurred (none was filled in by a default). On the
    ingest path: the fields-set attribute and a constant set, not the property and a new set
    for each event (measured: 0.40 -> 0.14 µs an event, of the API's ~21)."""
    return all(event.__pydantic_fields_set__ >= _SENT_BY_CLIENT for event in events)


def _loaded(row: Any) -> Event:
    """An event read back, with the time the API received it (Prefect's `received`)."""
    event = Event.model_validate_json(row[0])
    if event.received is None:
        event = event.model_copy(update={"received": from_micros(row[1])})
    return event


def _short(error: BaseException) -> str:
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return text[:300]
