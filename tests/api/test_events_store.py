"""The events store on both databases it supports: SQLite (a file, in process) and a real
PostgreSQL (a server process started here: those cases are marked e2e)."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import event as sqlalchemy_event

from temporal_automations.api.events_store import (
    EventsStore,
    StoredQuery,
    StoreUnavailable,
    to_micros,
)
from temporal_automations.domain.events import Event
from tests.postgres_server import PostgresServer, running_postgres

NOW = datetime.now(UTC).replace(microsecond=0)


async def fresh_database(server: PostgresServer) -> str:
    name = f"t{uuid.uuid4().hex[:12]}"
    connection = await server.connect()
    try:
        await connection.execute(f"CREATE DATABASE {name}")
    finally:
        await connection.close()
    return server.url.rsplit("/", 1)[0] + f"/{name}"


# PostgreSQL is a real server process (tests/postgres_server.py): those cases are end to end.
@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.e2e)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[EventsStore]:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'events.db'}"
    else:
        url = await fresh_database(request.getfixturevalue("postgres"))
    events_store = EventsStore(url, retention=timedelta(days=7))
    await events_store.start()
    try:
        yield events_store
    finally:
        await events_store.close()


def make(name: str, resource: str, occurred: datetime, **fields: object) -> Event:
    return Event.model_validate(
        {
            "id": str(uuid.uuid4()),
            "event": name,
            "occurred": occurred,
            "resource": {"prefect.resource.id": resource},
            **fields,
        }
    )


def everything(**fields: object) -> StoredQuery:
    return StoredQuery(since=NOW - timedelta(days=30), until=NOW + timedelta(days=1), **fields)


async def test_recorded_events_are_read_back_filtered_and_ordered(store: EventsStore) -> None:
    run = f"prefect.flow-run.{uuid.uuid4()}"
    events = [
        make("prefect.flow-run.Running", run, NOW - timedelta(minutes=3)),
        make("prefect.flow-run.Completed", run, NOW - timedelta(minutes=1)),
        make("prefect.work-queue.ready", "prefect.work-queue.q", NOW - timedelta(minutes=2)),
    ]
    store.record(events)
    store.record(events[:1])  # delivered twice: stored once
    await store.flushed()

    found, total, capped = await store.read(everything(), limit=10)
    assert [e.id for e in found] == [events[1].id, events[2].id, events[0].id]  # newest first
    assert total == 3 and not capped
    assert found[1].received is not None  # when the API took it, as Prefect's ReceivedEvent
    assert found[1].model_copy(update={"received": None}) == events[2]

    oldest_first, _, _ = await store.read(everything(descending=False), limit=2)
    assert [e.id for e in oldest_first] == [events[0].id, events[2].id]

    flow_runs, total, _ = await store.read(
        everything(name_prefixes=["prefect.flow-run."]), limit=1, offset=1
    )
    assert total == 2 and [e.id for e in flow_runs] == [events[0].id]

    by_resource, total, _ = await store.read(everything(resource_ids=[run]), limit=10)
    assert total == 2 and {e.id for e in by_resource} == {events[0].id, events[1].id}

    in_range, total, _ = await store.read(
        StoredQuery(since=NOW - timedelta(minutes=2, seconds=30), until=NOW), limit=10
    )
    assert total == 2

    excluded, total, _ = await store.read(
        everything(exclude_prefixes=["prefect.flow-run."]), limit=10
    )
    assert [e.id for e in excluded] == [events[2].id]


async def test_label_filters_run_in_python_over_the_sql_prefilter(store: EventsStore) -> None:
    tagged = make(
        "prefect.flow-run.Failed",
        f"prefect.flow-run.{uuid.uuid4()}",
        NOW,
        related=[{"prefect.resource.id": "prefect.tag.nightly", "prefect.resource.role": "tag"}],
    )
    store.record([tagged, make("prefect.flow-run.Failed", "prefect.flow-run.x", NOW)])
    await store.flushed()
    query = everything(matches=lambda e: bool(e.related_by_role("tag")))
    found, total, _ = await store.read(query, limit=10)
    assert [e.id for e in found] == [tagged.id] and total == 1


async def test_counts_by_day_event_and_resource(store: EventsStore) -> None:
    since = NOW - timedelta(days=3)
    store.record(
        [
            make("a.one", "r.1", since + timedelta(hours=1)),
            make("a.one", "r.2", since + timedelta(hours=2)),
            make("a.two", "r.1", since + timedelta(days=2, hours=1)),
        ]
    )
    await store.flushed()
    query = StoredQuery(since=since, until=NOW)
    by_day = {value: count for value, count, *_ in await store.count_by(query, "day")}
    assert by_day == {"0": 2, "2": 1}
    by_event = {value: count for value, count, *_ in await store.count_by(query, "event")}
    assert by_event == {"a.one": 2, "a.two": 1}
    by_resource = {value: count for value, count, *_ in await store.count_by(query, "resource")}
    assert by_resource == {"r.1": 2, "r.2": 1}


async def test_retention_deletes_events_older_than_the_setting(store: EventsStore) -> None:
    old = make("old", "r", NOW - timedelta(days=8))
    recent = make("recent", "r", NOW - timedelta(days=6))
    store.record([old, recent])
    await store.flushed()
    assert await store.purge(NOW) == 1
    found, _, _ = await store.read(StoredQuery(since=NOW - timedelta(days=30), until=NOW), limit=10)
    assert [e.id for e in found] == [recent.id]


@pytest.mark.e2e
async def test_a_database_that_goes_down_leaves_a_gap_not_an_error(tmp_path: Path) -> None:
    with running_postgres() as server:
        url = await fresh_database(server)
        store = EventsStore(url, retention=timedelta(days=7))
        await store.start()
        try:
            store.record([make("before", "r", NOW)])
            await store.flushed()
            assert store.healthy
            server.stop()
            lost = [make("during", "r", NOW + timedelta(seconds=i)) for i in range(3)]
            store.record(lost)  # never raises
            await store.flushed()
            assert not store.healthy
            gaps = store.gaps_between(NOW, NOW + timedelta(minutes=1))
            assert sum(gap.events for gap in gaps) == 3
            assert "database failed" in gaps[0].reason
            with pytest.raises(StoreUnavailable):
                await store.read(everything(), limit=1)
        finally:
            await store.close()


async def test_events_that_occurred_at_the_same_instant_read_in_arrival_order(
    store: EventsStore,
) -> None:
    # Ids in descending order, so an order by id would be the reverse of arrival.
    ids = sorted((uuid.uuid4() for _ in range(5)), reverse=True)
    same = [
        Event.model_validate(
            {"id": str(event_id), "event": "tie", "occurred": NOW,
             "resource": {"prefect.resource.id": "r"}}
        )
        for event_id in ids
    ]  # fmt: skip
    store.record(same[:3])
    store.record(same[3:])
    await store.flushed()
    oldest_first, _, _ = await store.read(everything(descending=False), limit=10)
    assert [e.id for e in oldest_first] == ids
    newest_first, total, _ = await store.read(everything(), limit=2, offset=1)
    assert [e.id for e in newest_first] == [ids[3], ids[2]] and total == 5


# The SQLite layout of before 2026-12-05 (tables made by earlier versions): the same columns,
# and an (event, occurred) index that inserts paid for.
OLD_SQLITE_LAYOUT = [
    "CREATE TABLE events (seq INTEGER NOT NULL PRIMARY KEY, id VARCHAR(36) NOT NULL, "
    "occurred BIGINT NOT NULL, received BIGINT NOT NULL, event VARCHAR(1024) NOT NULL, "
    "resource_id VARCHAR(4096) NOT NULL, data TEXT NOT NULL)",
    "CREATE INDEX events_occurred ON events (occurred)",
    "CREATE INDEX events_event_occurred ON events (event, occurred)",
]


async def test_a_table_of_the_old_layout_loses_its_name_index_and_keeps_its_rows(
    tmp_path: Path,
) -> None:
    path = tmp_path / "events.db"
    old = make("before.upgrade", "r.old", NOW - timedelta(hours=1))
    with sqlite3.connect(path) as database:
        for statement in OLD_SQLITE_LAYOUT:
            database.execute(statement)
        database.execute(
            "INSERT INTO events (id, occurred, received, event, resource_id, data) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (str(old.id), to_micros(old.occurred), to_micros(NOW), old.event, "r.old",
             old.model_dump_json()),
        )  # fmt: skip
    database.close()
    store = EventsStore(f"sqlite+aiosqlite:///{path}", retention=timedelta(days=7))
    await store.start()
    try:
        new = make("after.upgrade", "r.new", NOW)
        store.record([new])
        await store.flushed()
        found, total, _ = await store.read(everything(), limit=10)
        assert [e.id for e in found] == [new.id, old.id] and total == 2
        by_name, total, _ = await store.read(everything(names=["before.upgrade"]), limit=10)
        assert [e.id for e in by_name] == [old.id] and total == 1
    finally:
        await store.close()
    with sqlite3.connect(path) as database:
        indexes = {row[1] for row in database.execute("PRAGMA index_list(events)")}
    database.close()
    assert indexes == {"events_occurred"}


async def test_a_feed_page_is_read_off_the_occurred_index_without_a_sort(tmp_path: Path) -> None:
    """The occurred index's entries are (occurred, seq): a page in either order is read off
    the index, not sorted from every event in the range (ties by id needed that sort)."""
    path = tmp_path / "events.db"
    store = EventsStore(f"sqlite+aiosqlite:///{path}", retention=timedelta(days=7))
    pages: list[tuple[str, tuple[object, ...]]] = []

    def keep(conn: object, cursor: object, statement: str, parameters: object, *_: object) -> None:
        if "ORDER BY" in statement:
            pages.append((statement, tuple(parameters)))  # type: ignore[call-overload]

    sqlalchemy_event.listen(store.engine.sync_engine, "before_cursor_execute", keep)
    await store.start()
    try:
        for descending in (True, False):
            await store.read(everything(descending=descending), limit=50)
    finally:
        await store.close()
    assert len(pages) == 2
    with sqlite3.connect(path) as database:
        for statement, parameters in pages:
            plan = database.execute(f"EXPLAIN QUERY PLAN {statement}", parameters).fetchall()
            details = " ".join(str(row[-1]) for row in plan)
            assert "events_occurred" in details and "TEMP B-TREE" not in details, details
    database.close()


async def test_what_was_recorded_before_is_readable_once_written_so_far_returns(
    store: EventsStore,
) -> None:
    """A websocket's backfill awaits it: an event accepted before a reader subscribed is in
    the store when the backfill reads, even while later events keep arriving."""
    first = make("first", "r", NOW)
    store.record([first])
    waiting = asyncio.create_task(store.written_so_far())
    store.record([make("later", "r", NOW)])  # recorded after the call: not waited for
    await asyncio.wait_for(waiting, timeout=30)
    found, _, _ = await store.read(everything(names=["first"]), limit=10)
    assert [e.id for e in found] == [first.id]
    await store.flushed()


async def test_the_writer_runs_only_on_cpu_time_nothing_else_wants(tmp_path: Path) -> None:
    """The copy must not take the ingest path's CPU: the writer process is SCHED_IDLE."""
    store = EventsStore(
        f"sqlite+aiosqlite:///{tmp_path / 'events.db'}", retention=timedelta(days=7)
    )
    await store.start()
    try:
        assert store._writer is not None
        stat = Path(f"/proc/{store._writer.pid}/stat").read_text().rsplit(")", 1)[1].split()
        assert int(stat[38]) == os.SCHED_IDLE  # field 41 of proc(5): the policy
        store.record([make("still", "written", NOW)])
        await store.flushed()
        assert store.written == 1
    finally:
        await store.close()


def test_the_writer_starts_without_importing_temporal() -> None:
    """At SCHED_IDLE a slow start runs into the first load: the writer's imports (its module and
    the store's, which it runs `_serve` with) leave temporalio out, ~0.6 s of CPU."""
    probe = (
        "import sys, temporal_automations.api.events_writer, temporal_automations.api.events_store;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('temporalio', 'fastapi')))"
    )
    imported = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert imported == "[]"
