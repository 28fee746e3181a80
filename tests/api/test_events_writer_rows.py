"""The events writer's rows: what it stores of each event the edge accepted, decoded from the
request body as it came (msgspec splits it, the columns are read without building events)."""

from __future__ import annotations

import json
import sqlite3
import uuid
from datetime import UTC, datetime

import pytest

from temporal_automations.api.batches import validate_inline
from temporal_automations.api.events_store import INSERT_SQL
from temporal_automations.api.events_writer import (
    ROWS_PER_STATEMENT,
    RecentIds,
    Row,
    insert_sqlite,
    rows_of,
)


def accepted(events: list[dict[str, object]]) -> bytes:
    """A body the edge takes (validated as the API does), as it would reach the writer."""
    body = json.dumps(events).encode()
    validate_inline(body)
    return body


def test_each_event_keeps_its_own_text_and_columns() -> None:
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    events = [
        {
            "id": first,
            "occurred": "2026-12-01T10:00:00+00:00",
            "event": "prefect.flow-run.Completed",
            "resource": {"prefect.resource.id": "prefect.flow-run.1", "x": "é ✓"},
            "payload": {"nested": [1, {"a": "b"}]},
        },
        {
            "id": second,
            "occurred": "2026-12-01T12:00:00+02:00",
            "event": "other",
            "resource": {"prefect.resource.id": "r.2"},
        },
    ]
    rows = rows_of(accepted(events), received=42)
    assert [row[0] for row in rows] == [first, second]
    assert [row[1] for row in rows] == [
        round(datetime(2026, 12, 1, 10, tzinfo=UTC).timestamp() * 1_000_000)
    ] * 2
    assert [row[2] for row in rows] == [42, 42]
    assert [row[3] for row in rows] == ["prefect.flow-run.Completed", "other"]
    assert [row[4] for row in rows] == ["prefect.flow-run.1", "r.2"]
    assert [json.loads(row[5]) for row in rows] == events


def test_ids_are_stored_canonical_whatever_form_the_edge_accepted() -> None:
    value = uuid.uuid4()
    forms = [str(value).upper(), value.hex, f"urn:uuid:{value}", "{" + str(value) + "}"]
    body = accepted(
        [
            {"id": form, "occurred": "2026-12-01T10:00:00Z", "event": "e",
             "resource": {"prefect.resource.id": "r"}}
            for form in forms
        ]
    )  # fmt: skip
    assert {row[0] for row in rows_of(body, 0)} == {str(value)}


def test_times_without_a_zone_are_utc_and_unix_times_are_instants() -> None:
    body = accepted(
        [
            {"id": str(uuid.uuid4()), "occurred": "2026-12-01T10:00:00", "event": "naive",
             "resource": {"prefect.resource.id": "r"}},
            {"id": str(uuid.uuid4()), "occurred": 1_796_119_200, "event": "unix",
             "resource": {"prefect.resource.id": "r"}},
        ]
    )  # fmt: skip
    naive, unix = rows_of(body, 0)
    assert naive[1] == round(datetime(2026, 12, 1, 10, tzinfo=UTC).timestamp() * 1_000_000)
    assert json.loads(naive[5])["occurred"] == "2026-12-01T10:00:00+00:00"
    assert unix[1] == 1_796_119_200 * 1_000_000
    assert datetime.fromisoformat(json.loads(unix[5])["occurred"]).timestamp() == 1_796_119_200


def test_a_batch_mixing_usual_and_unusual_forms_keeps_every_event_in_order() -> None:
    """Events in the usual form take the one-pass decode; the others (a time without a zone,
    an upper-case id) are normalized one by one, in their place in the batch."""
    upper = uuid.uuid4()
    events = [
        {"id": str(uuid.uuid4()), "occurred": "2026-12-01T10:00:00.123456+00:00",
         "event": "usual", "resource": {"prefect.resource.id": "r.1", "other": "x"}},
        {"id": str(upper).upper(), "occurred": "2026-12-01T10:00:00Z", "event": "upper",
         "resource": {"prefect.resource.id": "r.2"}},
        {"id": str(uuid.uuid4()), "occurred": "2026-12-01T10:00:00", "event": "naive",
         "resource": {"prefect.resource.id": "r.3"}},
        {"id": str(uuid.uuid4()), "occurred": "2026-12-01T11:00:00-01:00", "event": "offset",
         "resource": {"prefect.resource.id": "r.4"}},
    ]  # fmt: skip
    rows = rows_of(accepted(events), received=7)
    ten = round(datetime(2026, 12, 1, 10, tzinfo=UTC).timestamp() * 1_000_000)
    assert [row[3] for row in rows] == ["usual", "upper", "naive", "offset"]
    assert [row[1] for row in rows] == [ten + 123_456, ten, ten, ten + 2 * 3_600_000_000]
    assert rows[1][0] == str(upper)
    assert [row[4] for row in rows] == ["r.1", "r.2", "r.3", "r.4"]
    assert json.loads(rows[0][5]) == events[0]
    assert json.loads(rows[2][5])["occurred"] == "2026-12-01T10:00:00+00:00"


def row(event_id: str) -> Row:
    return (event_id, 0, 0, "e", "r", "{}")


def test_repeated_ids_are_written_once_within_a_batch_and_across_batches() -> None:
    recent = RecentIds()
    first = recent.fresh([row("a"), row("b"), row("a")])
    assert [r[0] for r in first] == ["a", "b"]
    assert [r[0] for r in recent.fresh([row("b"), row("c")])] == ["c"]


def test_recent_ids_remember_at_least_the_last_limit_ids() -> None:
    recent = RecentIds(limit=10)
    for number in range(25):
        assert recent.fresh([row(str(number))])
    # The last 10 are remembered whatever the generations' boundaries.
    assert recent.fresh([row(str(number)) for number in range(15, 25)]) == []
    assert [r[0] for r in recent.fresh([row("0")])] == ["0"]  # long forgotten


@pytest.mark.parametrize("count", [1, ROWS_PER_STATEMENT, ROWS_PER_STATEMENT + 1, 600])
def test_rows_are_inserted_whole_and_in_order_in_multi_row_statements(count: int) -> None:
    database = sqlite3.connect(":memory:")
    database.execute(
        "CREATE TABLE events (seq INTEGER PRIMARY KEY, id, occurred, received, event, "
        "resource_id, data)"
    )
    rows = [(str(uuid.uuid4()), n, 7, f"e.{n}", f"r.{n}", f'{{"n":{n}}}') for n in range(count)]
    insert_sqlite(database, INSERT_SQL["sqlite"], rows)
    stored = database.execute(
        "SELECT id, occurred, received, event, resource_id, data FROM events ORDER BY seq"
    ).fetchall()
    assert stored == rows
    database.close()
