"""POST /api/automations/statuses: the counters of many automations in one request, on a real
stack (dev server, worker, API). Bounded (at most 500 ids), one entry per id asked (unknown and
missing ones included), answered without a worker."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from openapi_spec_validator import validate

from temporal_automations.api.app import create_app
from temporal_automations.settings import Settings
from tests.stack import Stack, running_stack
from tests.support import event_json, eventually, send

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with running_stack() as started:
        yield started


@pytest.fixture
def api(stack: Stack) -> Iterator[httpx.Client]:
    with stack.sync_client() as client:
        yield client


def create(api: httpx.Client, name: str, expect: str) -> str:
    answer = api.post(
        "/automations/",
        json={
            "name": name,
            "trigger": {"posture": "Reactive", "expect": [expect], "threshold": 1, "within": 0},
            "actions": [{"type": "do-nothing"}],
        },
    )
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def statuses(api: httpx.Client, ids: list[str]) -> list[dict[str, Any]]:
    answer = api.post("/automations/statuses", json={"ids": ids})
    assert answer.status_code == 200, answer.text
    entries: list[dict[str, Any]] = answer.json()["statuses"]
    return entries


def test_a_mix_of_fired_quiet_and_missing_ids_in_the_order_asked(api: httpx.Client) -> None:
    name = f"bulk.{uuid.uuid4()}"
    fired = create(api, "bulk fired", name)
    quiet = create(api, "bulk quiet", f"{name}.never")
    missing = str(uuid.uuid4())
    send(api, event_json(name, "bulk.resource"))

    def counted() -> list[dict[str, Any]]:
        entries = statuses(api, [missing, fired, quiet, fired])
        assert entries[1]["state"] == "ok" and entries[1]["firings"] == 1, entries
        return entries

    entries = eventually(counted, what="the fired automation's counters")
    assert [e["id"] for e in entries] == [missing, fired, quiet, fired]
    assert entries[0] == {
        "id": missing,
        "state": "not_found",
        "firings": None,
        "last_fired": None,
        "events_received": None,
        "errors": None,
        "last_error": None,
    }
    assert entries[1]["events_received"] == 1 and entries[1]["last_fired"] is not None
    assert entries[2]["state"] == "ok"
    assert (entries[2]["firings"], entries[2]["last_fired"]) == (0, None)
    assert entries[3] == entries[1]  # an id asked twice is answered twice
    # The same counters as the automation's own status.
    single = api.get(f"/automations/{fired}/status").json()["stats"]
    assert (single["firings"], single["events_received"]) == (1, 1)


def test_bounds_500_ids_at_most_uuids_only_no_other_fields(api: httpx.Client) -> None:
    five_hundred = [str(uuid.uuid4()) for _ in range(500)]
    entries = statuses(api, five_hundred)
    assert len(entries) == 500 and {e["state"] for e in entries} == {"not_found"}
    assert statuses(api, []) == []

    too_many = api.post("/automations/statuses", json={"ids": [*five_hundred, str(uuid.uuid4())]})
    assert too_many.status_code == 422
    assert too_many.json()["detail"][0]["loc"] == ["body", "ids"]
    not_uuid = api.post("/automations/statuses", json={"ids": ["automation-1' OR 1=1"]})
    assert not_uuid.status_code == 422
    assert api.post("/automations/statuses", json={"ids": [], "more": 1}).status_code == 422
    assert api.post("/automations/statuses", json={}).status_code == 422


def test_documented_in_openapi() -> None:
    document = create_app(Settings(_env_file=None, api_key="k")).openapi()
    validate(document)
    operation = document["paths"]["/api/automations/statuses"]["post"]
    assert {"200", "401", "413", "422", "503"} <= set(operation["responses"])
    answer = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert answer == {"$ref": "#/components/schemas/StatusesAnswer"}


def test_answers_without_a_worker(stack: Stack, api: httpx.Client) -> None:
    """No workflow can answer a query while no worker runs; the counters come from the memos
    all the same (no query per automation waiting for its timeout)."""
    ids = [create(api, f"bulk no worker {n}", f"bulk.{uuid.uuid4()}") for n in range(3)]
    eventually(lambda: all(e["state"] == "ok" for e in statuses(api, ids)), what="listed")
    stack.stop_worker()
    try:
        assert [e["state"] for e in statuses(api, ids)] == ["ok"] * 3
    finally:
        stack.start_worker()
