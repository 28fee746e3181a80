"""The events store's writer: a child process of the API that inserts what the API accepted.

Measured on the ingest benchmark, inserting in the API process cost it a fifth to a half of
its throughput: the database work, the rows built in Python and the driver's parameter binding
all held the API's one interpreter lock. Here the API writes each accepted batch to this
process's stdin (the request body as it came, or serialized once); parsing, rows and the
database run in this process: msgspec splits the body and decodes the batch's columns in one
pass, the plain SQLite driver inserts 250 rows a statement, and frames that arrive within
COMMIT_WINDOW share a transaction. Its CPU an event, standalone (`bench/writer_cpu.py`: the
1% ingest load's frames at 40,000 events/s, alternating with the previous version): 5.9-7.2
µs, against 10.9-12.5 before, and 5.6 against 13.4 with a million events stored; ~30 through
pydantic models and the async adapter.

Protocol. stdin: frames of `!QQ` (body length, received µs) then a JSON list of events.
stdout: one line per frame, in order: `ok` or `fail <reason>`. The parent counts the frames it
has sent and the answers it got; a frame that failed, or that was in flight when this process
died, becomes a gap in the feed.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import json
import sqlite3
import struct
import sys
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import msgspec
from pydantic import TypeAdapter

from temporal_automations import event_loop
from temporal_automations.domain.events import RESOURCE_ID

FRAME = struct.Struct("!QQ")
MAX_ROWS_PER_INSERT = 2_000
ROWS_PER_STATEMENT = 250  # SQLite: 1,500 parameters (its limit is 32,766)
COMMIT_WINDOW = 0.05  # seconds a frame waits for others to share its transaction
MAX_RECENT_IDS = 200_000
# A new SQLite file's page size (an existing one keeps its own): rows of a few hundred bytes
# fill a 16 KB page a quarter as often as a 4 KB one (measured: ~9% of an insert's cost).
SQLITE_PAGE_SIZE = 16_384
Row = tuple[str, int, int, str, str, str]
_instant = TypeAdapter(datetime)


class _Columns(msgspec.Struct):
    """What a row needs of an event; msgspec skips the rest of it unparsed."""

    id: str
    occurred: Any
    event: str
    resource: dict[str, Any]


class _Resource(msgspec.Struct, gc=False):
    id: str = msgspec.field(name=RESOURCE_ID, default="")


class _BatchColumns(msgspec.Struct, gc=False):
    """The same columns, for a whole batch in one decode: only the resource id of `resource`
    is built, and the structs are not tracked by the garbage collector."""

    id: str
    occurred: Any
    event: str
    resource: _Resource


_list_of_raw = msgspec.json.Decoder(list[msgspec.Raw])
_columns = msgspec.json.Decoder(_Columns)
_batch_columns = msgspec.json.Decoder(list[_BatchColumns])


def _occurred(value: Any) -> datetime:
    try:
        return datetime.fromisoformat(value)
    except (TypeError, ValueError):
        # Another form pydantic accepted at the edge (a Unix time, nanoseconds…).
        return _instant.validate_python(value)


def _canonical_id(value: str) -> str:
    # The edge accepted it as a UUID: 36 characters is the hyphenated form, already canonical
    # when lower case (braces, URNs and bare hex have other lengths).
    return value if len(value) == 36 and value == value.lower() else str(UUID(value))


def _row(raw: msgspec.Raw, received: int) -> Row:
    """One event's row; its JSON kept as it came, unless its time had to be normalized."""
    text = bytes(raw).decode()
    columns = _columns.decode(raw)
    occurred = _occurred(columns.occurred)
    if occurred.tzinfo is None or not isinstance(columns.occurred, str):
        # A time without a zone is UTC, as the API's edge takes it; a Unix time is stored as
        # an instant. Then the event is serialized again.
        occurred = occurred if occurred.tzinfo else occurred.replace(tzinfo=UTC)
        item = json.loads(text)
        item["occurred"] = occurred.isoformat()
        text = json.dumps(item, separators=(",", ":"))
    return (
        _canonical_id(columns.id),  # the dedupe key and what id filters compare
        round(occurred.timestamp() * 1_000_000),  # exact for 1970–2999 within 0.5 µs
        received,
        columns.event,
        str(columns.resource.get(RESOURCE_ID, "")),
        text,
    )


def rows_of(body: bytes, received: int) -> list[Row]:
    """Rows from a batch the API validated: each event's text is a span of the body (msgspec
    splits the list without building the events), and the four columns of every event are
    decoded in one pass over the body. An event whose id or time is not in the usual form
    (a time with its zone, a lower-case hyphenated id) takes `_row`, as does a whole batch
    that the one-pass decode does not take (a resource id that is not a string).
    Measured on 300,000 events shaped like the ingest bench's: 1.6 µs an event with `_row`
    for each, 1.0 in one pass."""
    raws = _list_of_raw.decode(body)
    try:
        batch = _batch_columns.decode(body)
    except msgspec.ValidationError:
        return [_row(raw, received) for raw in raws]
    rows: list[Row] = []
    append = rows.append
    fromisoformat = datetime.fromisoformat
    # Ids in lower case, checked once for the batch (`islower` on each was 3% of the writer).
    ids = "".join([columns.id for columns in batch])
    lower_case = ids == ids.lower()
    for columns, raw in zip(batch, raws, strict=True):
        event_id, occurred = columns.id, columns.occurred
        if (
            type(occurred) is str
            and len(event_id) == 36
            and (lower_case or event_id == event_id.lower())
        ):
            try:
                instant = fromisoformat(occurred)
            except ValueError:
                instant = None
            if instant is not None and instant.tzinfo is not None:
                append(
                    (
                        event_id,
                        round(instant.timestamp() * 1_000_000),
                        received,
                        columns.event,
                        columns.resource.id,
                        bytes(raw).decode(),
                    )
                )
                continue
        append(_row(raw, received))
    return rows


class RecentIds:
    """At least the last `limit` event ids written (at most twice as many): a client's retry,
    or the same event sent by two sources, arrives within minutes (the router remembers ids
    for as long). Two generations of sets: a lookup is two set probes and forgetting is
    dropping the older set whole (measured: 0.2 µs an event, 0.3 with one ordered dict whose
    oldest keys were deleted one by one)."""

    def __init__(self, limit: int = MAX_RECENT_IDS) -> None:
        self.limit = limit
        self._current: set[str] = set()
        self._previous: set[str] = set()

    def fresh(self, rows: list[Row]) -> list[Row]:
        current, previous = self._current, self._previous
        kept = [row for row in rows if row[0] not in current and row[0] not in previous]
        before = len(current)
        current.update([row[0] for row in kept])
        if len(current) - before != len(kept):  # the same id twice in this batch
            first: dict[str, Row] = {}
            for row in kept:
                first.setdefault(row[0], row)
            kept = list(first.values())
        if len(current) >= self.limit:
            self._previous, self._current = current, set()
        return kept


def _sqlite(path: str | None) -> sqlite3.Connection:
    connection = sqlite3.connect(path or ":memory:", timeout=30)
    connection.execute(f"PRAGMA page_size={SQLITE_PAGE_SIZE}")  # a new file only
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    # 64 MB of page cache (the default is 2 MB): with a million events stored, an insert's
    # index pages are mostly cached (measured: 12.1 -> 10.3 µs an event at 1M rows).
    connection.execute("PRAGMA cache_size=-65536")
    return connection


def insert_sqlite(database: sqlite3.Connection, insert_one: str, rows: list[Row]) -> None:
    """Rows inserted ROWS_PER_STATEMENT at a time, with one multi-row INSERT statement: the
    driver's per-row step and reset were a third of an insert (measured in memory, without
    indexes: 1.66 µs an event with executemany, 1.11 with 100 rows a statement, 1.11 with
    500). What does not fill a statement goes row by row."""
    full = len(rows) - len(rows) % ROWS_PER_STATEMENT
    if full:
        values = ", ".join(["(?, ?, ?, ?, ?, ?)"] * ROWS_PER_STATEMENT)
        statement = insert_one.replace("(?, ?, ?, ?, ?, ?)", values)
        for start in range(0, full, ROWS_PER_STATEMENT):
            chunk = rows[start : start + ROWS_PER_STATEMENT]
            database.execute(statement, list(itertools.chain.from_iterable(chunk)))
    if full < len(rows):
        database.executemany(insert_one, rows[full:])


async def _read_frames(queue: asyncio.Queue[tuple[bytes, int] | None]) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**26)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    try:
        while True:
            size, received = FRAME.unpack(await reader.readexactly(FRAME.size))
            await queue.put((await reader.readexactly(size), received))
    except asyncio.IncompleteReadError:
        await queue.put(None)  # the API closed our stdin: done


async def _serve(url: str) -> None:
    from temporal_automations.api.events_store import INSERT_SQL, create_tables, engine_for

    engine = engine_for(url)
    # What the imports made lives as long as this process: out of the collector's sight, a
    # full collection no longer walks it (they were ~12% of the writer's samples, perf).
    gc.freeze()
    database = _sqlite(engine.url.database) if engine.dialect.name == "sqlite" else None
    recent = RecentIds()
    queue: asyncio.Queue[tuple[bytes, int] | None] = asyncio.Queue(maxsize=100)
    reading = asyncio.create_task(_read_frames(queue))
    out = sys.stdout.buffer
    created = False
    done = False
    while not done:
        frame = await queue.get()
        if frame is None:
            break
        frames = [frame]
        # What arrives within the window goes into the same transaction: a commit costs per
        # frame what it writes again (the tree's last pages, the WAL's header, a checkpoint's
        # share). Measured on the 1% ingest load's frames (500 events, 80 a second): 2.5-2.8
        # µs an event to insert and commit each frame, 2.1-2.3 committing every 4. A writer
        # that is behind (frames waiting) does not wait.
        if queue.empty():
            await asyncio.sleep(COMMIT_WINDOW)
        while not queue.empty() and len(frames) < 50:
            more = queue.get_nowait()
            if more is None:
                done = True
                break
            frames.append(more)
        answer = b"ok\n"
        try:
            if not created:
                await create_tables(engine)
                created = True
            rows = [row for body, at in frames for row in rows_of(body, at)]
            if database is not None:
                rows = recent.fresh(rows)
                # SQLite: the plain driver, synchronously (this process has nothing else to
                # do meanwhile), without the async adapter's thread hops.
                with database:
                    insert_sqlite(database, INSERT_SQL["sqlite"], rows)
            else:
                async with engine.begin() as connection:
                    for start in range(0, len(rows), MAX_ROWS_PER_INSERT):
                        await connection.exec_driver_sql(
                            INSERT_SQL[engine.dialect.name],
                            rows[start : start + MAX_ROWS_PER_INSERT],
                        )
        except Exception as error:
            reason = (str(error).splitlines() or [type(error).__name__])[0][:300]
            answer = f"fail {reason}\n".encode()
            created = False
        out.write(answer * len(frames))
        out.flush()
    reading.cancel()
    if database is not None:
        database.close()
    await engine.dispose()


if __name__ == "__main__":
    event_loop.run(_serve(sys.argv[1]))
