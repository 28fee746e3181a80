"""The event router's index: which automations an event is delivered to (no Temporal needed)."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

from temporal_automations.api.routing import STORED_PAYLOAD_BYTES, AutomationIndex, stored
from temporal_automations.domain.automations import Automation, automation_resource_id
from temporal_automations.domain.events import EventIn
from temporal_automations.domain.inputs import AutomationCore


def automation(enabled: bool = True, **trigger: object) -> Automation:
    core = AutomationCore.model_validate(
        {
            "name": "a",
            "enabled": enabled,
            "trigger": {"posture": "Reactive", **trigger},
            "actions": [{"type": "do-nothing"}],
        }
    )
    now = datetime.now(UTC)
    return core.to_automation(uuid4(), now, now)


def event(name: str, resource_id: str = "prefect.flow-run.1", **extra: object) -> EventIn:
    return EventIn.model_validate(
        {"event": name, "resource": {"prefect.resource.id": resource_id}, **extra}
    )


def ids(automations: list[Automation]) -> set[str]:
    return {str(a.id) for a in automations}


def test_exact_names_globs_and_any_name_are_found() -> None:
    exact = automation(expect=["prefect.flow-run.Failed"])
    glob = automation(expect=["prefect.flow-run.*"])
    after_only = automation(after=["prefect.flow-run.Running"], expect=["x.never"])
    anything = automation()
    index = AutomationIndex([exact, glob, after_only, anything])

    assert ids(index.interested(event("prefect.flow-run.Failed"))) == ids([exact, glob, anything])
    assert ids(index.interested(event("prefect.flow-run.Running"))) == ids(
        [glob, after_only, anything]
    )
    assert ids(index.interested(event("prefect.work-queue.ready"))) == ids([anything])


def test_disabled_automations_get_nothing() -> None:
    paused = automation(enabled=False, expect=["x"])
    assert AutomationIndex([paused]).interested(event("x")) == []


def test_match_and_match_related_are_checked_before_delivery() -> None:
    only_deployment = automation(
        expect=["prefect.flow-run.Failed"],
        match_related={"prefect.resource.id": "prefect.deployment.abc"},
    )
    index = AutomationIndex([only_deployment])
    unrelated = event("prefect.flow-run.Failed")
    related = event(
        "prefect.flow-run.Failed",
        related=[
            {"prefect.resource.id": "prefect.deployment.abc", "prefect.resource.role": "deployment"}
        ],
    )
    assert index.interested(unrelated) == []
    assert ids(index.interested(related)) == ids([only_deployment])


def test_an_automation_never_receives_its_own_lifecycle_events() -> None:
    listens_to_all = automation()
    other = automation()
    index = AutomationIndex([listens_to_all, other])
    own = event("prefect.automation.triggered", automation_resource_id(listens_to_all.id))
    assert ids(index.interested(own)) == ids([other])


def test_the_name_cache_does_not_leak_between_indexes() -> None:
    first = automation(expect=["x"])
    index = AutomationIndex([first])
    assert ids(index.interested(event("x"))) == ids([first])
    second = automation(expect=["x"])
    assert ids(AutomationIndex([first, second]).interested(event("x"))) == ids([first, second])


def test_an_oversized_payload_is_stored_trimmed_with_a_marker() -> None:
    small = event("x", payload={"note": "fine"})
    assert stored(small) is small
    big = event("x", payload={"log": "y" * (STORED_PAYLOAD_BYTES + 1)})
    kept = stored(big)
    assert kept.id == big.id and kept.resource == big.resource
    assert kept.payload["trimmed"] is True
    assert kept.payload["original_bytes"] > STORED_PAYLOAD_BYTES
    assert kept.payload["excerpt"].startswith('{"log":"yyy')
