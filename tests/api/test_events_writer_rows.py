"""The events writer's rows: what it stores of each event the edge accepted, decoded from the
request body as it came (msgspec splits it, the columns are read without building events)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

from temporal_automations.api.batches import validate_inline
from temporal_automations.api.events_writer import rows_of


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
