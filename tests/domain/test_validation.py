"""Validation at the edge: what a create or an event may and may not contain."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from temporal_automations.domain.automations import Posture
from temporal_automations.domain.events import (
    MAX_EVENT_NAME,
    MAX_RELATED,
    RESOURCE_ID,
    RESOURCE_ROLE,
    EventIn,
)
from temporal_automations.domain.inputs import (
    AutomationCore,
    CallWebhookInput,
    EventTriggerInput,
    PauseAutomationInput,
)
from tests.domain.builders import uid


def core(**fields: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "n",
        "trigger": {"posture": "Reactive"},
        "actions": [{"type": "do-nothing"}],
    }
    data.update(fields)
    return data


def errors(model: type, data: dict[str, Any]) -> list[dict[str, Any]]:
    with pytest.raises(ValidationError) as raised:
        model.model_validate(data)
    return raised.value.errors()


def locations(model: type, data: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [tuple(error["loc"]) for error in errors(model, data)]


def messages(model: type, data: dict[str, Any]) -> str:
    return " | ".join(error["msg"] for error in errors(model, data))


# --------------------------------------------------------------------------- unknown fields


def test_unknown_top_level_field_is_rejected_and_named() -> None:
    (error,) = errors(AutomationCore, core(colour="blue"))
    assert error["type"] == "extra_forbidden"
    assert error["loc"] == ("colour",)


def test_unknown_trigger_field_is_rejected_and_named() -> None:
    (error,) = errors(AutomationCore, core(trigger={"posture": "Reactive", "withn": 60}))
    assert error["type"] == "extra_forbidden"
    assert error["loc"] == ("trigger", "withn")


def test_unknown_action_field_is_rejected_and_named() -> None:
    bad = core(actions=[{"type": "call-webhook", "url": "https://x.test", "verb": "GET"}])
    found = errors(AutomationCore, bad)
    assert [e["type"] for e in found] == ["extra_forbidden"]
    assert found[0]["loc"][0] == "actions" and found[0]["loc"][-1] == "verb"


def test_unknown_action_type_is_rejected() -> None:
    assert any(
        loc[0] == "actions" for loc in locations(AutomationCore, core(actions=[{"type": "x"}]))
    )


def test_events_ignore_unknown_fields() -> None:
    # Prefect's clients send more than we use; events are not refused for it.
    e = EventIn.model_validate({"event": "x", "resource": {RESOURCE_ID: "r"}, "extra": 1})
    assert e.event == "x"


# --------------------------------------------------------------------------- triggers


def test_missing_posture_is_rejected() -> None:
    found = errors(AutomationCore, core(trigger={"expect": ["x"]}))
    assert ("trigger", "posture") in [tuple(e["loc"]) for e in found]
    assert any(e["type"] == "missing" for e in found)


def test_unknown_posture_is_rejected() -> None:
    assert ("trigger", "posture") in locations(AutomationCore, core(trigger={"posture": "Meh"}))


@pytest.mark.parametrize("fields", [{}, {"within": 0}, {"within": 0.0}, {"within": timedelta()}])
def test_proactive_within_zero_or_missing_becomes_ten_seconds(fields: dict[str, Any]) -> None:
    assert EventTriggerInput.model_validate({"posture": "Proactive", **fields}).within == 10.0


@pytest.mark.parametrize("within", [0.5, 5, 9.99])
def test_proactive_within_below_ten_seconds_is_an_error_on_within(within: float) -> None:
    found = errors(AutomationCore, core(trigger={"posture": "Proactive", "within": within}))
    assert [tuple(e["loc"]) for e in found] == [("trigger", "within")]
    assert "at least 10" in found[0]["msg"]


def test_proactive_within_ten_or_more_is_kept() -> None:
    assert EventTriggerInput.model_validate({"posture": "Proactive", "within": 10}).within == 10
    assert EventTriggerInput.model_validate({"posture": "Proactive", "within": 1800}).within == 1800


def test_reactive_within_may_be_zero_or_short() -> None:
    assert EventTriggerInput.model_validate({"posture": "Reactive"}).within == 0
    assert EventTriggerInput.model_validate({"posture": "Reactive", "within": 5}).within == 5


def test_within_accepts_a_timedelta_and_refuses_negative_seconds() -> None:
    t = EventTriggerInput.model_validate({"posture": "Reactive", "within": timedelta(minutes=2)})
    assert t.within == 120 and t.window == timedelta(minutes=2)
    assert ("within",) in locations(EventTriggerInput, {"posture": "Reactive", "within": -1})


def test_negative_threshold_is_rejected() -> None:
    found = locations(AutomationCore, core(trigger={"posture": "Reactive", "threshold": -1}))
    assert found == [("trigger", "threshold")]


def test_threshold_defaults_to_one_and_zero_is_allowed() -> None:
    assert EventTriggerInput.model_validate({"posture": "Reactive"}).threshold == 1
    assert EventTriggerInput.model_validate({"posture": "Reactive", "threshold": 0}).threshold == 0


def test_name_sets_are_sorted_and_deduplicated() -> None:
    t = EventTriggerInput.model_validate(
        {"posture": Posture.Reactive, "expect": ["b", "a", "b"], "after": ("z", "y")}
    )
    assert t.expect == ["a", "b"] and t.after == ["y", "z"]


# --------------------------------------------------------------------------- actions


def test_selected_pause_automation_needs_automation_id() -> None:
    msg = messages(AutomationCore, core(actions=[{"type": "pause-automation"}]))
    assert "automation_id is required" in msg
    msg = messages(
        AutomationCore, core(actions=[{"type": "resume-automation", "source": "selected"}])
    )
    assert "automation_id is required" in msg


def test_selected_pause_automation_with_an_id_is_accepted() -> None:
    selected = {"source": "selected", "automation_id": str(uid(9))}
    action = PauseAutomationInput.model_validate(selected)
    assert action.selected_id == uid(9)


def test_inferred_pause_automation_forbids_automation_id() -> None:
    bad = core(
        actions=[{"type": "pause-automation", "source": "inferred", "automation_id": str(uid(9))}]
    )
    assert "automation_id is not allowed" in messages(AutomationCore, bad)
    ok = PauseAutomationInput.model_validate({"source": "inferred"})
    assert ok.selected_id is None


@pytest.mark.parametrize(
    ("kind", "field"),
    [
        ("pause-deployment", "deployment_id"),
        ("run-deployment", "deployment_id"),
        ("pause-work-queue", "work_queue_id"),
        ("resume-work-pool", "work_pool_id"),
    ],
)
def test_every_targeted_action_follows_the_source_rule(kind: str, field: str) -> None:
    assert f"{field} is required" in messages(AutomationCore, core(actions=[{"type": kind}]))
    inferred_with_id = {"type": kind, "source": "inferred", field: str(uid(3))}
    assert f"{field} is not allowed" in messages(AutomationCore, core(actions=[inferred_with_id]))


@pytest.mark.parametrize(
    "url", ["ftp://example.test/x", "example.test", "javascript:alert(1)", "file:///etc/passwd"]
)
def test_call_webhook_url_must_be_http_or_https(url: str) -> None:
    assert locations(AutomationCore, core(actions=[{"type": "call-webhook", "url": url}]))


@pytest.mark.parametrize("url", ["http://example.test/hook", "https://example.test/hook?a=1"])
def test_call_webhook_accepts_http_and_https(url: str) -> None:
    action = CallWebhookInput.model_validate({"url": url})
    assert action.url == url and action.method == "POST"


def test_call_webhook_needs_exactly_one_target() -> None:
    with pytest.raises(ValidationError, match="either url or block_document_id"):
        CallWebhookInput.model_validate({})
    with pytest.raises(ValidationError, match="either url or block_document_id"):
        CallWebhookInput.model_validate({"url": "https://x.test", "block_document_id": str(uid(4))})


def test_actions_in_every_group_are_validated() -> None:
    for group in ("actions", "actions_on_trigger", "actions_on_resolve"):
        bad = core(**{group: [{"type": "call-webhook", "url": "ftp://x"}]})
        assert any(loc[0] == group for loc in locations(AutomationCore, bad))


# --------------------------------------------------------------------------- events


def event_data(**fields: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"event": "x", "resource": {RESOURCE_ID: "prefect.flow-run.1"}}
    data.update(fields)
    return data


def test_event_resource_needs_a_resource_id() -> None:
    assert RESOURCE_ID in messages(EventIn, event_data(resource={"name": "no id"}))
    assert RESOURCE_ID in messages(EventIn, event_data(resource={RESOURCE_ID: ""}))


def test_related_resource_needs_an_id_and_a_role() -> None:
    assert RESOURCE_ROLE in messages(EventIn, event_data(related=[{RESOURCE_ID: "prefect.tag.a"}]))
    assert RESOURCE_ID in messages(EventIn, event_data(related=[{RESOURCE_ROLE: "tag"}]))
    ok = EventIn.model_validate(
        event_data(related=[{RESOURCE_ID: "prefect.tag.a", RESOURCE_ROLE: "tag"}])
    )
    assert ok.related_by_role("tag") == [{RESOURCE_ID: "prefect.tag.a", RESOURCE_ROLE: "tag"}]


def test_at_most_100_related_resources() -> None:
    one = {RESOURCE_ID: "prefect.tag.a", RESOURCE_ROLE: "tag"}
    assert len(EventIn.model_validate(event_data(related=[one] * MAX_RELATED)).related) == 100
    assert locations(EventIn, event_data(related=[one] * (MAX_RELATED + 1))) == [("related",)]


def test_event_name_is_1_to_1024_characters() -> None:
    assert EventIn.model_validate(event_data(event="e" * MAX_EVENT_NAME)).event == "e" * 1024
    assert locations(EventIn, event_data(event="e" * (MAX_EVENT_NAME + 1))) == [("event",)]
    assert locations(EventIn, event_data(event="")) == [("event",)]


def test_at_most_500_resource_labels() -> None:
    labels = {RESOURCE_ID: "r", **{f"l{i}": "v" for i in range(499)}}
    assert len(EventIn.model_validate(event_data(resource=labels)).resource) == 500
    assert "at most 500" in messages(EventIn, event_data(resource={**labels, "one-more": "v"}))


def test_naive_occurred_is_taken_as_utc() -> None:
    e = EventIn.model_validate(event_data(occurred="2026-01-01T10:00:00"))
    assert e.occurred == datetime(2026, 1, 1, 10, tzinfo=UTC)
    assert e.occurred.utcoffset() == timedelta(0)
    naive = EventIn.model_validate(event_data(occurred=datetime(2026, 1, 1, 10)))
    assert naive.occurred == datetime(2026, 1, 1, 10, tzinfo=UTC)


def test_aware_occurred_is_converted_to_utc() -> None:
    paris = timezone(timedelta(hours=1))
    e = EventIn.model_validate(event_data(occurred=datetime(2026, 1, 1, 11, tzinfo=paris)))
    assert e.occurred == datetime(2026, 1, 1, 10, tzinfo=UTC)
    assert e.occurred.tzinfo == UTC


def test_event_resources_are_resource_then_related_in_order() -> None:
    a = {RESOURCE_ID: "prefect.deployment.a", RESOURCE_ROLE: "deployment"}
    b = {RESOURCE_ID: "prefect.tag.b", RESOURCE_ROLE: "tag"}
    e = EventIn.model_validate(event_data(related=[a, b]))
    assert [r[RESOURCE_ID] for r in e.resources()] == [
        "prefect.flow-run.1",
        "prefect.deployment.a",
        "prefect.tag.b",
    ]
    assert e.resource_id == "prefect.flow-run.1"


def test_send_notification_needs_a_url() -> None:
    assert locations(AutomationCore, core(actions=[{"type": "send-notification", "url": []}]))


def test_change_flow_run_state_refuses_an_unknown_state() -> None:
    bad = core(actions=[{"type": "change-flow-run-state", "state": "NOPE"}])
    assert locations(AutomationCore, bad)


def test_a_run_deployment_that_would_trigger_itself_forever_is_refused() -> None:
    run_selected = {"type": "run-deployment", "source": "selected", "deployment_id": str(uid(13))}
    # Reactive on every flow run's Running: the deployment's own runs would trigger it forever.
    endless = core(
        trigger={"posture": "Reactive", "expect": ["prefect.flow-run.Running"]},
        actions=[run_selected],
    )
    with pytest.raises(ValidationError, match="trigger itself forever"):
        AutomationCore.model_validate(endless)
    inferred = core(
        trigger={"posture": "Reactive", "expect": ["prefect.flow-run.*"]},
        actions=[{"type": "run-deployment", "source": "inferred"}],
    )
    with pytest.raises(ValidationError, match="inferred deployment"):
        AutomationCore.model_validate(inferred)
    # Narrowed to other runs, on Failed only, or Proactive: fine.
    failed_only = {"posture": "Reactive", "expect": ["prefect.flow-run.Failed"]}
    AutomationCore.model_validate(core(trigger=failed_only, actions=[run_selected]))
    other_flow = {
        **endless["trigger"],
        "match_related": {"prefect.resource.role": "flow", "prefect.resource.name": "etl"},
    }
    AutomationCore.model_validate(core(trigger=other_flow, actions=[run_selected]))
    proactive = {**endless["trigger"], "posture": "Proactive"}
    AutomationCore.model_validate(core(trigger=proactive, actions=[run_selected]))
