"""Matching (docs/semantics.md "Matching") and validation at the edge."""

from __future__ import annotations

from datetime import datetime

import pytest
from pydantic import ValidationError

from temporal_automations.domain.events import EventIn
from temporal_automations.domain.inputs import AutomationCore, EventTriggerInput
from temporal_automations.domain.matching import label_matches, related_matches, resource_matches
from tests.support import make_event


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        ("prefect.flow-run.*", "prefect.flow-run.1", True),
        ("prefect.flow-run.*", "prefect.deployment.1", False),
        ("Prefect.*", "prefect.x", False),  # case-sensitive
        ("run-?", "run-7", False),  # only a trailing * and a leading ! are special
        ("run-?", "run-?", True),
        ("run-[ab]", "run-c", False),
        ("!prefect.flow-run.*", "prefect.deployment.1", True),
        ("!prefect.flow-run.*", "prefect.flow-run.1", False),
        ("*", None, False),  # a missing label never matches...
        ("!anything", None, False),  # ...negated or not
    ],
)
def test_label_globs(pattern: str, value: str | None, expected: bool) -> None:
    assert label_matches(pattern, value) is expected


def test_resource_spec_is_and_of_labels_and_or_of_values() -> None:
    labels = {"prefect.resource.id": "prefect.flow-run.1", "env": "prod"}
    assert resource_matches({}, labels)
    assert resource_matches({"env": ["dev", "prod"]}, labels)
    assert not resource_matches({"env": ["dev", "test"]}, labels)
    assert resource_matches({"env": "prod", "prefect.resource.id": "prefect.flow-run.*"}, labels)
    assert not resource_matches(
        {"env": "prod", "prefect.resource.id": "prefect.work-queue.*"}, labels
    )
    assert not resource_matches({"team": "*"}, labels)


def test_match_related_any_resource_per_spec_and_every_spec_in_a_list() -> None:
    related = [
        {"prefect.resource.id": "prefect.deployment.d1", "prefect.resource.role": "deployment"},
        {"prefect.resource.id": "prefect.tag.nightly", "prefect.resource.role": "tag"},
    ]
    deployment = {"prefect.resource.role": "deployment"}
    nightly = {"prefect.resource.id": "prefect.tag.nightly"}
    weekly = {"prefect.resource.id": "prefect.tag.weekly"}
    assert related_matches({}, [])
    assert related_matches(deployment, related)
    assert related_matches([deployment, nightly], related)
    assert not related_matches([deployment, weekly], related)
    assert not related_matches(nightly, [])


def trigger(**fields: object) -> EventTriggerInput:
    return EventTriggerInput.model_validate({"posture": "Reactive", **fields})


def test_covers_checks_names_resource_and_related() -> None:
    failed = make_event("prefect.flow-run.Failed")
    assert trigger().covers(failed)
    assert trigger(expect=["prefect.flow-run.*"]).covers(failed)
    assert trigger(after=["prefect.flow-run.Failed"], expect=["x"]).covers(failed)
    assert not trigger(expect=["prefect.flow-run.Completed"]).covers(failed)
    assert not trigger(match={"prefect.resource.id": "prefect.deployment.*"}).covers(failed)
    assert not trigger(match_related={"prefect.resource.role": "deployment"}).covers(failed)


def test_for_each_keys_read_resource_and_related_labels() -> None:
    event = make_event(
        "x",
        "prefect.flow-run.1",
        related=[
            {"prefect.resource.id": "prefect.deployment.d1", "prefect.resource.role": "deployment"}
        ],
    )
    keyed = trigger(for_each=["related:deployment:prefect.resource.id", "prefect.resource.id"])
    assert keyed.bucket_labels(event) == {
        "prefect.resource.id": "prefect.flow-run.1",
        "related:deployment:prefect.resource.id": "prefect.deployment.d1",
    }
    assert trigger(for_each=["missing"]).bucket_labels(event) == {"missing": ""}


# --------------------------------------------------------------------------- validation


def core(**fields: object) -> dict[str, object]:
    return {
        "name": "n",
        "trigger": {"posture": "Reactive"},
        "actions": [{"type": "do-nothing"}],
        **fields,
    }


def error_locations(data: dict[str, object]) -> list[tuple[object, ...]]:
    with pytest.raises(ValidationError) as raised:
        AutomationCore.model_validate(data)
    return [error["loc"] for error in raised.value.errors()]


def test_unknown_fields_are_named() -> None:
    assert ("bogus",) in error_locations(core(bogus=1))
    assert ("trigger", "bogus") in error_locations(
        core(trigger={"posture": "Reactive", "bogus": 1})
    )


def test_trigger_rules() -> None:
    assert ("trigger", "posture") in error_locations(core(trigger={}))
    assert ("trigger", "within") in error_locations(
        core(trigger={"posture": "Proactive", "within": 5})
    )
    assert error_locations(core(trigger={"posture": "Reactive", "threshold": -1}))
    assert error_locations(core(trigger={"posture": "Sideways"}))
    proactive = EventTriggerInput.model_validate({"posture": "Proactive"})
    assert proactive.within == 10
    assert EventTriggerInput.model_validate({"posture": "Proactive", "within": 0}).within == 10


def test_action_rules() -> None:
    assert error_locations(core(actions=[{"type": "pause-automation"}]))  # selected needs an id
    assert error_locations(
        core(
            actions=[
                {
                    "type": "pause-automation",
                    "source": "inferred",
                    "automation_id": "6f1c0d1e-0000-4000-8000-000000000001",
                }
            ]
        )
    )
    assert error_locations(core(actions=[{"type": "call-webhook", "url": "ftp://x"}]))
    assert error_locations(core(actions=[{"type": "launch-rocket"}]))
    assert error_locations(core(actions=[{"type": "send-notification", "url": []}]))
    ok = AutomationCore.model_validate(
        core(actions=[{"type": "pause-automation", "source": "inferred"}])
    )
    assert ok.actions[0].type == "pause-automation"


def test_event_rules() -> None:
    def bad(**fields: object) -> None:
        with pytest.raises(ValidationError):
            EventIn.model_validate(
                {"event": "x", "resource": {"prefect.resource.id": "r"}, **fields}
            )

    bad(resource={"no": "id"})
    bad(event="")
    bad(event="x" * 1025)
    bad(related=[{"prefect.resource.id": "r2"}])  # no role
    bad(related=[{"prefect.resource.id": "r", "prefect.resource.role": "t"}] * 101)
    naive = EventIn.model_validate(
        {"event": "x", "resource": {"prefect.resource.id": "r"}, "occurred": "2026-01-01T10:00:00"}
    )
    assert naive.occurred == datetime.fromisoformat("2026-01-01T10:00:00+00:00")


def test_prefect_actions_need_a_target_rule_and_endless_loops_are_refused() -> None:
    deployment = "6f1c0d1e-0000-4000-8000-00000000000d"
    run_selected = {"type": "run-deployment", "source": "selected", "deployment_id": deployment}
    assert error_locations(core(actions=[{"type": "run-deployment"}]))  # selected needs an id
    assert error_locations(
        core(
            actions=[
                {"type": "pause-work-queue", "source": "inferred", "work_queue_id": deployment}
            ]
        )
    )
    assert error_locations(core(actions=[{"type": "change-flow-run-state", "state": "NOPE"}]))
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
    AutomationCore.model_validate(
        core(
            trigger={"posture": "Reactive", "expect": ["prefect.flow-run.Failed"]},
            actions=[run_selected],
        )
    )
    AutomationCore.model_validate(
        core(
            trigger={
                "posture": "Reactive",
                "expect": ["prefect.flow-run.Running"],
                "match_related": {"prefect.resource.role": "flow", "prefect.resource.name": "etl"},
            },
            actions=[run_selected],
        )
    )
    AutomationCore.model_validate(
        core(trigger={**endless["trigger"], "posture": "Proactive"}, actions=[run_selected])  # type: ignore[dict-item]
    )
