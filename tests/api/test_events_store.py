"""The events store on both databases it supports: SQLite (a file, in process) and a real
PostgreSQL (a server process started here: those cases are marked e2e)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from temporal_automations.api.events_store import EventsStore, StoredQuery, StoreUnavailable
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
