"""domain/simulation.py on its own: pure, fast, the workflow's evaluator underneath."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from temporal_automations.domain.lifecycle import CHAIN_DEPTH, MAX_CHAIN_DEPTH
from temporal_automations.domain.simulation import simulate
from tests.support import STUCK_TRIGGER, make_automation, make_event

T0 = datetime(2026, 12, 1, 12, tzinfo=UTC)


def run_id() -> str:
    return f"prefect.flow-run.{uuid.uuid4()}"


def test_proactive_deadlines_fire_in_event_time_and_events_are_taken_in_occurred_order() -> None:
    automation = make_automation(STUCK_TRIGGER, [{"type": "cancel-flow-run"}])
    stuck, done = run_id(), run_id()
    events = [  # delivered out of order: evaluated in occurred order
        make_event("prefect.flow-run.Completed", done, occurred=T0 + timedelta(minutes=5)),
        make_event("prefect.flow-run.Running", stuck, occurred=T0),
        make_event("prefect.flow-run.Running", done, occurred=T0 + timedelta(minutes=1)),
    ]
    result = simulate(automation, events, since=T0, until=T0 + timedelta(hours=1))
    (firing,) = result.firings
    assert firing.firing.labels == {"prefect.resource.id": stuck}
    assert firing.firing.occurred == T0 + timedelta(minutes=30)  # at its deadline
    (action,) = firing.actions
    assert action.status == "not sent" and action.target == stuck
    assert result.events_scanned == result.events_evaluated == 3 and not result.capped


def test_until_bounds_the_deadlines_played() -> None:
    automation = make_automation(STUCK_TRIGGER)
    events = [make_event("prefect.flow-run.Running", run_id(), occurred=T0)]
    assert simulate(automation, events, until=T0 + timedelta(minutes=29)).firings == []
    # Default: the last event plus one window, so the stuck run shows.
    assert len(simulate(automation, events).firings) == 1


def test_the_cap_is_said_and_own_lifecycle_events_are_not_evaluated() -> None:
    automation = make_automation({"posture": "Reactive", "expect": []})
    own = make_event(
        "prefect.automation.triggered", automation.resource_id, occurred=T0 - timedelta(seconds=1)
    )
    events = [make_event("x", "r", occurred=T0), own, make_event("y", "r", occurred=T0)]
    result = simulate(automation, events, max_events=2)
    assert result.capped and result.events_scanned == 2
    assert result.events_evaluated == 1  # the first (in occurred order) is its own event
    assert len(result.firings) == 1


def test_a_firing_at_the_end_of_a_chain_is_not_acted_on() -> None:
    automation = make_automation(
        {"posture": "Reactive", "expect": ["prefect.automation.triggered"]},
        [{"type": "do-nothing"}],
    )
    deep = make_event("prefect.automation.triggered", f"prefect.automation.{uuid.uuid4()}")
    deep = deep.model_copy(update={"payload": {CHAIN_DEPTH: MAX_CHAIN_DEPTH}})
    (firing,) = simulate(automation, [deep]).firings
    assert not firing.acted_on and "chain" in (firing.not_acted_on_because or "")
    assert firing.actions == []


def test_secrets_are_masked_and_a_missing_target_is_a_would_fail() -> None:
    automation = make_automation(
        {"posture": "Reactive", "expect": ["x"]},
        [
            {"type": "call-webhook", "url": "https://h.example/x", "headers": {"T": "secret"}},
            {"type": "send-notification", "url": "slack://token-a/token-b/token-c"},
            {"type": "cancel-flow-run"},
        ],
    )
    (firing,) = simulate(automation, [make_event("x", "not-a-flow-run", occurred=T0)]).firings
    webhook, notification, cancel = firing.actions
    assert webhook.request["headers"] == {"T": "********"}
    assert notification.request["to"] == ["slack://********"]
    assert cancel.target is None and "no flow-run could be inferred" in (cancel.would_fail or "")


def test_a_composite_without_until_settles_after_its_longest_child_window() -> None:
    # A composite has no window of its own: the default end is the last event plus its longest
    # child window and its `within` (it was an AttributeError before, caught by mypy).
    stuck = dict(STUCK_TRIGGER, type="event")
    automation = make_automation(
        {"type": "compound", "require": "any", "within": 60, "triggers": [stuck]}
    )
    events = [make_event("prefect.flow-run.Running", run_id(), occurred=T0)]
    result = simulate(automation, events)
    assert result.evaluated_until == T0 + timedelta(minutes=30, seconds=60)
    assert len(result.firings) == 1
