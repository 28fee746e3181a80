"""Replay safety: what workflows store is lenient and versioned; what clients send is strict.

A running automation's definition sits in its workflow history. The stored models must read
whatever an older or newer version wrote there (never refuse, never draw a uuid4 or a time),
while the edge models refuse bad requests with a 422 naming the field.
"""

from __future__ import annotations

import json
import math
import uuid
from datetime import timedelta
from typing import Any, get_args

import pytest
from pydantic import BaseModel, ValidationError

from temporal_automations.domain.automations import (
    SECRET_MASK,
    Automation,
    CallWebhook,
    DoNothing,
    EventTrigger,
    PauseAutomation,
    RunDeployment,
    SendNotification,
)
from temporal_automations.domain.inputs import (
    MAX_SCHEDULE_AFTER,
    MAX_THRESHOLD,
    MAX_WITHIN,
    ActionInput,
    AutomationCore,
    EventTriggerInput,
)
from tests.domain.builders import T0, at, uid

DAY = 86400.0


def stored(**fields: Any) -> dict[str, Any]:
    """An automation as a workflow's history holds it (JSON)."""
    data: dict[str, Any] = {
        "id": str(uid(1)),
        "created": T0.isoformat(),
        "updated": T0.isoformat(),
        "name": "n",
        "trigger": {"id": str(uid(2)), "posture": "Reactive", "expect": ["x"]},
        "actions": [{"type": "do-nothing"}],
    }
    data.update(fields)
    return data


def sent(**fields: Any) -> dict[str, Any]:
    """An automation as a client POSTs it."""
    data: dict[str, Any] = {
        "name": "n",
        "trigger": {"posture": "Reactive"},
        "actions": [{"type": "do-nothing"}],
    }
    data.update(fields)
    return data


def refused(data: dict[str, Any]) -> list[dict[str, Any]]:
    with pytest.raises(ValidationError) as raised:
        AutomationCore.model_validate(data)
    return raised.value.errors()


# --------------------------------------------------------------------------- stored: lenient


def test_fields_of_a_future_version_are_ignored_at_every_level() -> None:
    data = stored(
        colour="blue",
        trigger={"id": str(uid(2)), "posture": "Reactive", "debounce": 5},
        actions=[{"type": "call-webhook", "url": "https://x.test", "retries": 3}],
        schema_version=2,
    )
    automation = Automation.model_validate(data)
    dumped = automation.model_dump(mode="json")
    assert "colour" not in dumped and "debounce" not in dumped["trigger"]
    assert "retries" not in dumped["actions"][0]
    assert automation.schema_version == 2


def test_an_older_history_without_schema_version_reads_as_version_1() -> None:
    assert Automation.model_validate(stored()).schema_version == 1


@pytest.mark.parametrize(
    ("trigger", "field", "kept"),
    [
        ({"posture": "Reactive", "within": 400 * DAY}, "within", 400 * DAY),
        ({"posture": "Proactive", "within": 5}, "within", 5),
        ({"posture": "Reactive", "threshold": MAX_THRESHOLD * 10}, "threshold", MAX_THRESHOLD * 10),
        ({"posture": "Reactive", "threshold": -1}, "threshold", -1),
    ],
)
def test_a_trigger_the_edge_now_refuses_still_reads_as_it_was_stored(
    trigger: dict[str, Any], field: str, kept: float
) -> None:
    automation = Automation.model_validate(stored(trigger={"id": str(uid(2)), **trigger}))
    assert getattr(automation.trigger, field) == kept
    assert refused(sent(trigger=trigger))  # while the edge refuses it


def test_actions_the_edge_refuses_still_read_as_they_were_stored() -> None:
    actions = [
        {"type": "call-webhook", "url": "ftp://old.test"},
        {"type": "call-webhook"},
        {"type": "send-notification", "url": []},
        {"type": "pause-automation"},  # selected, without automation_id
        {"type": "run-deployment", "source": "inferred", "schedule_after": 400 * DAY},
    ]
    automation = Automation.model_validate(stored(actions=actions))
    webhook, no_target, notification, pause, run = automation.actions
    assert isinstance(webhook, CallWebhook) and webhook.url == "ftp://old.test"
    assert isinstance(no_target, CallWebhook) and no_target.url is None
    assert isinstance(notification, SendNotification) and notification.urls == []
    assert isinstance(pause, PauseAutomation) and pause.selected_id is None
    assert isinstance(run, RunDeployment) and run.schedule_after == 400 * DAY
    assert refused(sent(actions=actions))


def test_an_empty_name_and_an_endless_loop_still_read() -> None:
    loop = stored(
        name="",
        trigger={"id": str(uid(2)), "posture": "Reactive", "expect": ["prefect.flow-run.*"]},
        actions=[{"type": "run-deployment", "source": "inferred"}],
    )
    assert Automation.model_validate(loop).name == ""


def test_proactive_within_zero_is_normalised_the_same_when_stored() -> None:
    automation = Automation.model_validate(
        stored(trigger={"id": str(uid(2)), "posture": "Proactive", "within": 0})
    )
    assert automation.trigger.within == 10


# --------------------------------------------------------------------------- stored: no defaults


@pytest.mark.parametrize("missing", ["id", "created", "updated"])
def test_an_automation_without_its_identity_or_times_is_an_error(missing: str) -> None:
    data = stored()
    del data[missing]
    with pytest.raises(ValidationError) as raised:
        Automation.model_validate(data)
    assert [tuple(e["loc"]) for e in raised.value.errors()] == [(missing,)]


def test_a_stored_trigger_without_id_is_an_error() -> None:
    with pytest.raises(ValidationError) as raised:
        EventTrigger.model_validate({"posture": "Reactive"})
    assert [tuple(e["loc"]) for e in raised.value.errors()] == [("id",)]


def test_reading_the_same_history_twice_gives_equal_automations() -> None:
    # What a replay does: nothing may be drawn afresh (no uuid4(), no now()).
    text = json.dumps(stored(actions=[{"type": "call-webhook", "url": "https://x.test"}]))
    first, second = Automation.model_validate_json(text), Automation.model_validate_json(text)
    assert first == second
    assert first.trigger.id == uid(2) and first.created == T0


def test_an_automation_round_trips_through_json() -> None:
    data = stored(
        trigger={
            "id": str(uid(2)),
            "posture": "Proactive",
            "after": ["start"],
            "expect": ["b", "a"],
            "for_each": ["prefect.resource.id"],
            "match_related": [{"prefect.resource.role": "deployment"}],
            "within": timedelta(minutes=30),
        },
        actions=[
            {"type": "call-webhook", "url": "https://x.test", "headers": {"k": "v"}},
            {"type": "run-deployment", "deployment_id": str(uid(3)), "schedule_after": 60},
            {"type": "change-flow-run-state", "state": "FAILED"},
        ],
        actions_on_resolve=[{"type": "send-notification", "url": ["a://b", "c://d"]}],
        tags=["t"],
    )
    automation = Automation.model_validate(data)
    again = Automation.model_validate_json(automation.model_dump_json())
    assert again == automation
    assert again.model_dump(mode="json") == automation.model_dump(mode="json")
    assert again.trigger.within == 1800 and again.trigger.expect == ["a", "b"]


# --------------------------------------------------------------------------- edge → stored


def test_to_automation_gives_the_stored_classes_with_the_given_identity() -> None:
    core = AutomationCore.model_validate(
        sent(
            description="d",
            enabled=False,
            tags=["t"],
            trigger={"posture": "Proactive", "expect": ["x"], "within": 60, "threshold": 2},
            actions=[{"type": "pause-automation", "source": "inferred"}],
            actions_on_trigger=[{"type": "call-webhook", "url": "https://x.test"}],
            actions_on_resolve=[{"type": "do-nothing"}],
            owner_resource="prefect.deployment.d",
        )
    )
    automation = core.to_automation(uid(5), T0, at(60))
    assert (automation.id, automation.created, automation.updated) == (uid(5), T0, at(60))
    assert type(automation) is Automation and automation.schema_version == 1
    assert type(automation.trigger) is EventTrigger
    assert type(automation.actions[0]) is PauseAutomation
    assert type(automation.actions_on_trigger[0]) is CallWebhook
    assert type(automation.actions_on_resolve[0]) is DoNothing
    # Every field the client gave arrives: none is dropped on the way (extra="ignore" would).
    kept = automation.model_dump(exclude={"id", "created", "updated", "schema_version"})
    assert kept == core.model_dump()
    # The trigger id was drawn at the edge, once: converting again keeps it.
    assert core.to_automation(uid(5), T0, T0).trigger.id == automation.trigger.id


def test_two_requests_get_different_trigger_ids() -> None:
    first, second = (AutomationCore.model_validate(sent()) for _ in range(2))
    assert first.trigger.id != second.trigger.id


# --------------------------------------------------------------------------- edge: strict


def test_unknown_fields_are_refused_at_the_edge_with_their_location() -> None:
    found = refused(
        sent(
            colour="blue",
            trigger={"posture": "Reactive", "debounce": 5},
            actions=[{"type": "do-nothing", "retries": 3}],
        )
    )
    assert {tuple(e["loc"]) for e in found} == {
        ("colour",),
        ("trigger", "debounce"),
        ("actions", 0, "do-nothing", "retries"),
    }
    assert {e["type"] for e in found} == {"extra_forbidden"}


def test_a_client_may_not_set_the_stored_fields() -> None:
    found = refused(sent(id=str(uid(1)), created=T0.isoformat(), schema_version=1))
    assert {tuple(e["loc"]) for e in found} == {("id",), ("created",), ("schema_version",)}


@pytest.mark.parametrize(
    "within",
    [math.nan, math.inf, -math.inf, 1e12, 400 * DAY, timedelta(days=400), MAX_WITHIN + 1, -1],
)
def test_within_must_be_finite_and_at_most_366_days(within: float | timedelta) -> None:
    for posture in ("Reactive", "Proactive"):
        found = refused(sent(trigger={"posture": posture, "within": within}))
        assert [tuple(e["loc"]) for e in found] == [("trigger", "within")]
        json.dumps([e["input"] for e in found], allow_nan=False)  # the 422 can carry it


@pytest.mark.parametrize(
    ("field", "token"),
    [("within", "NaN"), ("within", "Infinity"), ("within", "-Infinity"), ("threshold", "NaN")],
)
def test_non_finite_json_numbers_are_refused_with_an_error_json_can_carry(
    field: str, token: str
) -> None:
    # The 422 echoes each error's input; a float NaN there cannot be written as JSON (that
    # made the answer a 500), so the input comes back as the token the client sent.
    body = f'{{"name": "n", "trigger": {{"posture": "Reactive", "{field}": {token}}}}}'
    with pytest.raises(ValidationError) as raised:
        AutomationCore.model_validate_json(body)
    (error,) = raised.value.errors()
    assert tuple(error["loc"]) == ("trigger", field)
    assert error["input"] == token


def test_within_of_366_days_is_the_longest_accepted() -> None:
    assert MAX_WITHIN == 366 * DAY
    trigger = {"posture": "Proactive", "within": timedelta(days=366)}
    assert AutomationCore.model_validate(sent(trigger=trigger)).trigger.within == MAX_WITHIN


@pytest.mark.parametrize("threshold", [MAX_THRESHOLD + 1, 10**12, -1, math.nan, math.inf])
def test_threshold_is_bounded(threshold: float) -> None:
    found = refused(sent(trigger={"posture": "Reactive", "threshold": threshold}))
    assert [tuple(e["loc"]) for e in found] == [("trigger", "threshold")]
    json.dumps([e["input"] for e in found], allow_nan=False)  # the 422 can carry it


def test_threshold_of_the_maximum_is_accepted() -> None:
    core = AutomationCore.model_validate(
        sent(trigger={"posture": "Reactive", "threshold": MAX_THRESHOLD})
    )
    assert core.trigger.threshold == MAX_THRESHOLD == 100_000


@pytest.mark.parametrize("schedule_after", [math.nan, math.inf, MAX_SCHEDULE_AFTER + 1, -1])
def test_run_deployment_schedule_after_is_finite_and_bounded(schedule_after: float) -> None:
    action = {"type": "run-deployment", "source": "inferred", "schedule_after": schedule_after}
    # Proactive, so that the endless-loop rule (Reactive only) does not also answer.
    found = refused(sent(trigger={"posture": "Proactive"}, actions=[action]))
    assert [tuple(e["loc"]) for e in found] == [("actions", 0, "run-deployment", "schedule_after")]
    json.dumps([e["input"] for e in found], allow_nan=False)  # the 422 can carry it


def test_the_edge_keeps_prefects_field_names() -> None:
    """POST/PUT stay Prefect-shaped: the same fields as the stored model, no more, no fewer."""
    stored_fields = set(Automation.model_fields) - {"id", "created", "updated", "schema_version"}
    assert set(AutomationCore.model_json_schema()["properties"]) == stored_fields
    assert set(EventTriggerInput.model_fields) == set(EventTrigger.model_fields)


def test_every_stored_action_has_a_strict_variant_with_the_same_fields() -> None:
    strict: list[type[BaseModel]] = list(get_args(get_args(ActionInput)[0]))
    stored_types = {base for cls in strict for base in cls.__bases__}
    for cls in strict:
        (base,) = cls.__bases__
        assert set(cls.model_fields) == set(base.model_fields), cls
        assert cls.model_config.get("extra") == "forbid", cls
    stored_union = get_args(get_args(Automation.model_fields["actions"].annotation)[0])[0]
    assert stored_types == set(get_args(stored_union))


def test_a_masked_header_sent_back_keeps_the_secret_at_the_same_place() -> None:
    def with_headers(*headers: dict[str, str]) -> Automation:
        actions = [
            {"type": "call-webhook", "url": "https://example.com/h", "headers": h} for h in headers
        ]
        return Automation.model_validate(
            {
                "id": str(uuid.UUID(int=1)),
                "created": "2026-01-01T00:00:00Z",
                "updated": "2026-01-01T00:00:00Z",
                "name": "a",
                "trigger": {"id": str(uuid.UUID(int=2)), "posture": "Reactive"},
                "actions": actions,
            }
        )

    current = with_headers({"Authorization": "real", "X-Other": "o"}, {"Token": "t"})
    edited = with_headers(
        {"Authorization": SECRET_MASK, "X-Other": "new"},
        {"Token": SECRET_MASK, "Extra": SECRET_MASK},
    )
    kept = edited.keeping_secrets_of(current)
    assert kept.actions[0].headers == {"Authorization": "real", "X-Other": "new"}
    # A mask with nothing behind it stays a mask (there is no secret to keep).
    assert kept.actions[1].headers == {"Token": "t", "Extra": SECRET_MASK}
    untouched = with_headers({"Authorization": "mine"})
    assert untouched.keeping_secrets_of(current) is untouched
