"""The events store's writer: a child process of the API that inserts what the API accepted.

Measured on the ingest benchmark, inserting in the API process cost it a fifth to a half of
its throughput: the database work, the rows built in Python and the driver's parameter binding
all held the API's one interpreter lock. Here the API only serializes each accepted batch once
(pydantic-core) and writes it to this process's stdin; parsing, rows and the database run in
this process.

Protocol. stdin: frames of `!QQ` (body length, received µs) then a JSON list of events.
stdout: one line per frame, in order: `ok` or `fail <reason>`. The parent counts the frames it
has sent and the answers it got; a frame that failed, or that was in flight when this process
died, becomes a gap in the feed.
"""

from __future__ import annotations

import asyncio
import struct
import sys
from datetime import UTC, datetime

from pydantic import TypeAdapter

from temporal_automations.domain.events import RESOURCE_ID, Event

FRAME = struct.Struct("!QQ")
MAX_ROWS_PER_INSERT = 2_000
_events = TypeAdapter(list[Event])


def _micros(instant: datetime) -> int:
    # Exact for years 1970–2999: a double holds their microseconds within 0.5.
    return round(instant.timestamp() * 1_000_000)


def _utc(event: Event) -> Event:
    """A time without a zone is UTC, as the API's edge takes it (the writer may get the body
    as the client wrote it)."""
    if event.occurred.tzinfo is not None:
        return event
    return event.model_copy(update={"occurred": event.occurred.replace(tzinfo=UTC)})


def rows_of(body: bytes, received: int) -> list[tuple[str, int, int, str, str, str]]:
    return [
        (
            str(event.id),
            _micros(event.occurred),
            received,
            event.event,
            event.resource.get(RESOURCE_ID, ""),
            event.model_dump_json(),
        )
        for event in map(_utc, _events.validate_json(body))
    ]


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
        # Whatever else has arrived meanwhile goes into the same transaction.
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
            async with engine.begin() as connection:
                for start in range(0, len(rows), MAX_ROWS_PER_INSERT):
                    await connection.exec_driver_sql(
                        INSERT_SQL[engine.dialect.name], rows[start : start + MAX_ROWS_PER_INSERT]
                    )
        except Exception as error:
            reason = (str(error).splitlines() or [type(error).__name__])[0][:300]
            answer = f"fail {reason}\n".encode()
            created = False
        out.write(answer * len(frames))
        out.flush()
    reading.cancel()
    await engine.dispose()


if __name__ == "__main__":
    asyncio.run(_serve(sys.argv[1]))
