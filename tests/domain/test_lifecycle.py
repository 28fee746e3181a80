"""The automation's own events: their shape, and that an automation ignores its own."""

from __future__ import annotations

from temporal_automations.domain.automations import (
    automation_id_from_resource,
    automation_resource_id,
)
from temporal_automations.domain.evaluation import Firing, TriggerEvaluator, bucket_key
from temporal_automations.domain.events import RESOURCE_ID, RESOURCE_ROLE, EventIn
from temporal_automations.domain.lifecycle import (
    ACTION_EXECUTED,
    ACTION_FAILED,
    ACTION_TRIGGERED,
    EMBEDDED_PAYLOAD_DEPTH,
    RESOLVED,
    TRIGGERED,
    action_event,
    chain_depth,
    firing_depth,
    firing_event,
    is_own_event,
)
from tests.domain.builders import FAILED, at, automation, event, trigger, uid

RUN = f"prefect.flow-run.{uid(5)}"
LABELS = {RESOURCE_ID: RUN}


def firing(state: str = "triggered", with_event: bool = True) -> Firing:
    return Firing(
        state=state,  # type: ignore[arg-type]
        key=bucket_key(LABELS),
        labels=LABELS,
        event=event(FAILED, 10, RUN, id=uid(7)) if with_event else None,
        occurred=at(20),
    )


def test_triggered_event_names_the_automation_and_the_triggering_event() -> None:
    a = automation()
    e = firing_event(a, firing(), uid(8), uid(9))
    assert e.event == TRIGGERED == "prefect.automation.triggered"
    assert e.id == uid(9)
    assert e.occurred == at(20)
    assert e.resource == {
        RESOURCE_ID: f"prefect.automation.{uid(1)}",
        "prefect.resource.name": "watch runs",
        "prefect.posture": "Reactive",
    }
    assert e.related == [
        {RESOURCE_ID: f"prefect.event.{uid(7)}", RESOURCE_ROLE: "triggering-event"}
    ]
    assert e.payload["firing_id"] == str(uid(8))
    assert e.payload["triggering_labels"] == LABELS
    assert e.payload["triggering_event"]["id"] == str(uid(7))
    assert e.payload["triggering_event"]["event"] == FAILED


def test_resolved_event() -> None:
    e = firing_event(automation(), firing("resolved"), uid(8), uid(9))
    assert e.event == RESOLVED == "prefect.automation.resolved"


def test_a_firing_without_an_event_has_no_triggering_event() -> None:
    a = automation(trigger={"posture": "Proactive", "expect": ["beat"], "within": 60})
    e = firing_event(a, firing(with_event=False), uid(8), uid(9))
    assert e.related == []
    assert e.payload["triggering_event"] is None
    assert e.resource["prefect.posture"] == "Proactive"


def test_action_events_per_outcome() -> None:
    a = automation()
    for outcome, name in (
        ("triggered", ACTION_TRIGGERED),
        ("executed", ACTION_EXECUTED),
        ("failed", ACTION_FAILED),
    ):
        e = action_event(
            a,
            firing(),
            uid(8),
            uid(9),
            at(30),
            outcome=outcome,
            action_index=2,
            action_type="call-webhook",
        )
        assert e.event == name == f"prefect.automation.action.{outcome}"
        assert e.occurred == at(30)
        assert e.resource[RESOURCE_ID] == a.resource_id
        assert e.related[0][RESOURCE_ROLE] == "triggering-event"
        assert e.payload == {
            "firing_id": str(uid(8)),
            "action_index": 2,
            "action_type": "call-webhook",
            "invocation": f"{uid(1)}:{uid(8)}:2",
            "chain_depth": 1,
        }
        assert e.follows is None


def test_failed_action_event_carries_its_reason_and_follows_its_triggered_event() -> None:
    e = action_event(
        automation(),
        firing(),
        uid(8),
        uid(10),
        at(30),
        outcome="failed",
        action_index=0,
        action_type="pause-deployment",
        reason="no deployment could be inferred",
        follows=uid(9),
    )
    assert e.payload["reason"] == "no deployment could be inferred"
    assert e.follows == uid(9)


def test_automation_resource_ids_round_trip() -> None:
    assert automation_resource_id(uid(1)) == f"prefect.automation.{uid(1)}"
    assert automation_id_from_resource({RESOURCE_ID: f"prefect.automation.{uid(1)}"}) == uid(1)
    assert automation_id_from_resource({RESOURCE_ID: "prefect.automation.nope"}) is None
    assert automation_id_from_resource({RESOURCE_ID: f"prefect.deployment.{uid(1)}"}) is None
    assert automation_id_from_resource({}) is None


def test_is_own_event_for_every_own_lifecycle_event() -> None:
    a = automation()
    own = [firing_event(a, firing(s), uid(8), uid(9)) for s in ("triggered", "resolved")]
    own += [
        action_event(a, firing(), uid(8), uid(9), at(0), outcome=o, action_index=0, action_type="x")
        for o in ("triggered", "executed", "failed")
    ]
    assert all(is_own_event(a.id, e) for e in own)


def test_another_automations_events_are_not_own() -> None:
    other = automation(id=str(uid(2)), name="other")
    e = firing_event(other, firing(), uid(8), uid(9))
    assert not is_own_event(uid(1), e)
    assert is_own_event(uid(2), e)


def test_only_automation_events_on_the_automations_resource_are_own() -> None:
    own_resource = {RESOURCE_ID: f"prefect.automation.{uid(1)}"}
    assert not is_own_event(uid(1), EventIn(event="custom.thing", resource=own_resource))
    assert not is_own_event(uid(1), event("prefect.automation.triggered", 0, RUN))
    assert not is_own_event(
        uid(1), EventIn(event="prefect.automation.triggered", resource={RESOURCE_ID: "x"})
    )


def test_one_automation_can_react_to_another() -> None:
    other = automation(id=str(uid(2)), name="other")
    watcher = TriggerEvaluator(
        trigger(
            posture="Reactive",
            expect=[TRIGGERED],
            match={RESOURCE_ID: f"prefect.automation.{uid(2)}"},
        )
    )
    (fired,) = watcher.receive([firing_event(other, firing(), uid(8), uid(9))], at(21))
    assert fired.state == "triggered" and fired.event is not None
    assert fired.event.related[0][RESOURCE_ID] == f"prefect.event.{uid(7)}"


# --------------------------------------------------------------------------- chains and bounds


def test_each_link_of_a_chain_of_automations_is_one_deeper() -> None:
    first = firing_event(automation(), firing(), uid(8), uid(9))
    assert chain_depth(event(FAILED, 0, RUN)) == 0  # anything but a lifecycle event
    assert first.payload["chain_depth"] == chain_depth(first) == 1
    other = automation(id=str(uid(2)), name="other")
    second = firing_event(
        other,
        Firing(state="triggered", key="[]", labels={}, event=first, occurred=at(21)),
        uid(10),
        uid(11),
    )
    assert chain_depth(second) == 2
    action = action_event(
        other,
        Firing(state="triggered", key="[]", labels={}, event=second, occurred=at(22)),
        uid(12),
        uid(13),
        at(22),
        outcome="executed",
        action_index=0,
        action_type="do-nothing",
    )
    assert chain_depth(action) == 3


def test_a_spoofed_chain_depth_counts_as_a_first_link() -> None:
    own = {RESOURCE_ID: f"prefect.automation.{uid(3)}"}
    for spoof in ("20", -5, True, None, 2.5):
        spoofed = EventIn(event=TRIGGERED, resource=own, payload={"chain_depth": spoof})
        assert chain_depth(spoofed) == 1
    trusted = EventIn(event=TRIGGERED, resource=own, payload={"chain_depth": 7})
    assert (
        firing_depth(Firing(state="triggered", key="", labels={}, event=trusted, occurred=at(0)))
        == 8
    )


def test_the_embedded_triggering_event_is_cut_in_depth_and_size() -> None:
    deep: dict[str, object] = {"leaf": 1}
    for _ in range(25):
        deep = {"next": deep}
    big = {"blob": "x" * 100_000}
    for payload in (deep, big):
        trigger_event = EventIn(event=FAILED, resource={RESOURCE_ID: RUN}, payload=payload)
        f = Firing(state="triggered", key="", labels={}, event=trigger_event, occurred=at(0))
        embedded = firing_event(automation(), f, uid(8), uid(9)).payload["triggering_event"]
        assert len(str(embedded)) < 20_000
        level, node = 0, embedded["payload"]
        while isinstance(node, dict) and "next" in node:
            level, node = level + 1, node["next"]
        assert level <= EMBEDDED_PAYLOAD_DEPTH
