"""Test-fire and backtest against a real stack: the same firings as the real workflow, and no
side effect at all."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.support import STUCK_TRIGGER, Receiver, event_json, eventually, send, settled


def create(api: httpx.Client, body: dict[str, Any]) -> str:
    response = api.post("/automations/", json=body)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def tried(api: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    response = api.post("/automations/test", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def lifecycle_count(api: httpx.Client, automation_id: str) -> int:
    body = {"filter": {"resource": {"id": [f"prefect.automation.{automation_id}"]}}}
    return api.post("/events/filter", json=body).json()["total"]


def test_a_test_fire_gives_exactly_the_firings_of_the_real_workflow(
    api: httpx.Client, receiver: Receiver
) -> None:
    kind = f"tf.{uuid.uuid4().hex[:8]}"
    definition = {
        "name": f"test-fire {kind}",
        "trigger": {
            "posture": "Reactive",
            "expect": [f"{kind}.failed"],
            "for_each": ["prefect.resource.id"],
            "threshold": 2,
            "within": 3600,
        },
        "actions": [
            {
                "type": "call-webhook",
                "url": f"{receiver.url}/hook",
                "headers": {"Authorization": "Bearer very-secret"},
                "payload": '{"run": "{{ event.resource.id }}", "count": {{ firing.count }}}',
            }
        ],
    }
    automation_id = create(api, definition)
    start = datetime.now(UTC) - timedelta(minutes=5)
    runs = [f"prefect.flow-run.{uuid.uuid4()}" for _ in range(3)]
    # Run 0 fails twice (fires), run 1 three times (fires once: threshold 2, then 1 more),
    # run 2 once (does not fire); plus events it does not expect.
    sequence = [0, 1, 2, 0, 1, 1]
    events = [
        event_json(f"{kind}.failed", runs[r], occurred=(start + timedelta(seconds=i)).isoformat())
        for i, r in enumerate(sequence)
    ] + [event_json(f"{kind}.other", runs[0])]
    send(api, *events)
    status = settled(api, automation_id, received=len(sequence))
    live = sorted(
        (f["state"], f["labels"]["prefect.resource.id"], f["event_id"])
        for f in status["stats"]["recent"]
    )
    assert len(live) == 2
    eventually(lambda: len(receiver.requests_snapshot("/hook")) == 2, what="2 webhooks")
    sent_bodies = sorted(r.body.decode() for r in receiver.requests_snapshot("/hook"))
    # triggered, action.triggered, action.executed for each firing: in the feed.
    eventually(lambda: lifecycle_count(api, automation_id) >= 6, what="lifecycle events stored")
    lifecycle_before = lifecycle_count(api, automation_id)
    # Each firing links to its own lifecycle events: they name it in their payload.
    firing_id = status["stats"]["recent"][0]["id"]
    own = api.post("/events/filter", json={"filter": {"text": {"query": firing_id}}}).json()
    names = sorted(e["event"] for e in own["events"])
    assert names == sorted(
        ["prefect.automation.triggered", "prefect.automation.action.triggered",
         "prefect.automation.action.executed"]
    )  # fmt: skip
    related = [r["prefect.resource.id"] for e in own["events"] for r in e["related"]]
    assert related and all(r.startswith("prefect.event.") for r in related)

    result = tried(api, {"automation_id": automation_id, "events": events})
    tested = sorted(
        (f["state"], f["labels"]["prefect.resource.id"], f["event"]["id"])
        for f in result["firings"]
    )
    assert tested == live
    actions = [f["actions"][0] for f in result["firings"]]
    assert all(a["status"] == "not sent" for a in actions)
    assert sorted(a["request"]["body"] for a in actions) == sent_bodies  # rendered the same
    assert all(a["request"]["headers"] == {"Authorization": "********"} for a in actions)
    assert result["events_scanned"] == len(events)

    # The definition itself (not saved) gives the same firings.
    by_definition = tried(api, {"automation": definition, "events": events})
    by_definition_ids = sorted(f["event"]["id"] for f in by_definition["firings"])
    assert by_definition_ids == sorted(x[2] for x in tested)

    # No side effect: no webhook, nothing received by the automation, no lifecycle event.
    after = settled(api, automation_id, received=len(sequence))
    assert after["stats"]["events_received"] == status["stats"]["events_received"]
    assert after["stats"]["firings"] == status["stats"]["firings"]
    assert len(receiver.requests_snapshot("/hook")) == 2
    assert lifecycle_count(api, automation_id) == lifecycle_before


def test_a_backtest_over_a_stored_day_finds_the_stuck_runs_live_detection_found(
    api: httpx.Client,
) -> None:
    now = datetime.now(UTC)
    tag = f"prefect.tag.{uuid.uuid4().hex[:8]}"
    trigger = {**STUCK_TRIGGER, "match_related": {"prefect.resource.id": tag}}
    automation_id = create(api, {"name": f"stuck {tag}", "trigger": trigger, "actions": []})

    def event(name: str, run: str, ago: timedelta) -> dict[str, Any]:
        related = [{"prefect.resource.id": tag, "prefect.resource.role": "tag"}]
        return event_json(name, run, occurred=(now - ago).isoformat(), related=related)

    fine, stuck, late_failure, young = (f"prefect.flow-run.{uuid.uuid4()}" for _ in range(4))
    day = [
        event("prefect.flow-run.Running", fine, timedelta(hours=20)),
        event("prefect.flow-run.Completed", fine, timedelta(hours=19, minutes=50)),
        event("prefect.flow-run.Running", stuck, timedelta(hours=10)),
        event("prefect.flow-run.Running", late_failure, timedelta(hours=5)),
        event("prefect.flow-run.Failed", late_failure, timedelta(hours=4)),
        event("prefect.flow-run.Running", young, timedelta(minutes=10)),
    ]
    send(api, *day)
    status = settled(api, automation_id, received=len(day))
    live = sorted(
        (f["state"], f["labels"]["prefect.resource.id"]) for f in status["stats"]["recent"]
    )
    # The late failure fired at its deadline, and resolved when its Failed came after it.
    expected = [("resolved", late_failure), ("triggered", late_failure), ("triggered", stuck)]
    assert live == sorted(expected)

    day_ago = (now - timedelta(days=1)).isoformat()

    def stored_day() -> bool:
        body = {"filter": {"related": {"id": [tag]}, "occurred": {"since": day_ago}}}
        return api.post("/events/filter", json=body).json()["total"] == len(day)

    eventually(stored_day, what="the day's events stored")
    backtest = tried(
        api,
        {
            "automation_id": automation_id,
            "events": {"from": day_ago, "to": now.isoformat()},
        },
    )
    found = sorted((f["state"], f["labels"]["prefect.resource.id"]) for f in backtest["firings"])
    assert found == live
    assert backtest["events_evaluated"] == len(day) and not backtest["capped"]
    firing = next(f for f in backtest["firings"] if f["labels"]["prefect.resource.id"] == stuck)
    # Fired at its deadline, 30 minutes after the run's first Running, in event time.
    deadline = datetime.fromisoformat(firing["window_end"])
    assert abs(deadline - (now - timedelta(hours=9, minutes=30))) < timedelta(seconds=1)

    capped = tried(
        api,
        {
            "automation_id": automation_id,
            "events": {"from": day_ago},
            "max_events": 2,
        },
    )
    assert capped["capped"] and capped["events_scanned"] == 2


def test_refusals(api: httpx.Client) -> None:
    event = event_json("x", "r")
    neither = api.post("/automations/test", json={"events": [event]})
    assert neither.status_code == 422
    missing = api.post(
        "/automations/test", json={"automation_id": str(uuid.uuid4()), "events": [event]}
    )
    assert missing.status_code == 404
    backwards = api.post(
        "/automations/test",
        json={
            "automation": {"name": "n", "trigger": {"posture": "Reactive"}},
            "events": {"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"},
        },
    )
    assert backwards.status_code == 422
